"""A CF request that fails all its retries opens the CF breaker (failure_threshold 3): DiscoverCF
runs the foundation's discovery once more after the breaker's trial, so the run keeps its CF
view (before, the run went on BOSH-only and its CF-derived writes waited for the next run)."""

from __future__ import annotations

import threading

from mockstack.base import json_response
from tests.e2e.support import scenario, small_world


def test_discovery_survives_one_request_failing_all_its_retries():
    world, _expected = small_world(8, seed=5)
    with scenario(world) as reference:
        wanted = reference.run_once()
        wanted_vault = reference.vault_contents()
    with scenario(world) as sc:
        emulator = sc.stack.cf
        original, lock, refused = emulator.handle, threading.Lock(), []

        def handle(request):
            with lock:
                if request.method == "GET" and request.path == "/v3/service_brokers" and len(refused) < 3:
                    refused.append(request.path)  # every attempt of the request: 503
                    return json_response(503, {"errors": [{"code": 10001, "title": "CF-ServiceUnavailable",
                                                           "detail": "injected"}]})
            return original(request)

        emulator.handle = handle
        try:
            run = sc.run_once()
        finally:
            del emulator.handle
        vault = sc.vault_contents()
    assert run["status"] == "SUCCEEDED", run["cause"]
    assert len(refused) == 3
    phases = run["output"]["phases"]
    assert phases["discover_cf"]["status"] == "ok", phases["discover_cf"]
    assert run["output"]["status"] == wanted["output"]["status"]
    assert set(vault) == set(wanted_vault)
