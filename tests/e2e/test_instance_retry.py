"""An instance whose Vault request failed all its retries gets one more try in the same batch,
from fresh reads: a short burst of errors costs no run."""

from __future__ import annotations

import threading

from mockstack.base import json_response
from tests.e2e.support import scenario, small_world


def test_an_instance_failing_its_retries_is_tried_again_in_the_batch():
    world, expected = small_world(12, seed=3, missing_credentials=0.2)
    iid = expected["recoverable_credentials"][0]
    target = f"/v1/secret/data/{iid}/credentials"
    with scenario(world) as sc:
        emulator = sc.stack.vault
        original, lock, refused = emulator.handle, threading.Lock(), []

        def handle(request):
            with lock:
                if request.method in ("POST", "PUT") and request.path == target and len(refused) < 3:
                    refused.append(request.method)  # every attempt of the first try: 500
                    return json_response(500, {"errors": ["injected: internal error"]})
            return original(request)

        emulator.handle = handle
        try:
            run = sc.run_once()
        finally:
            del emulator.handle
        after = sc.vault_contents()
    assert run["status"] == "SUCCEEDED", run["cause"]
    assert len(refused) == 3  # the request's own retries (max_attempts 3) all failed
    apply = run["output"]["phases"]["apply"]
    assert apply["instances_failed"] == 0 and run["output"]["not_reconciled"] == 0
    assert after[f"secret/{iid}/credentials"] == expected["recovered_credentials"][iid]
