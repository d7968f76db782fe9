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


def test_a_retry_over_its_own_half_written_tree_takes_no_backup():
    """The root is written last: when its write fails every attempt of the first try, the second
    try finds the instance's other paths written (and adds a history entry to its metadata).
    It takes no backup of that half-written tree: a lost tree (no index entry) gets none, as a
    run without the fault; a tree the first try backed up keeps that one backup only."""
    world, expected = small_world(12, seed=3, lost_both=0.3)
    lost = expected["drift"]["lost_both"][0]
    kept = next(i for i in expected["recoverable_credentials"] if i not in expected["drift"]["lost_both"])
    targets = {f"/v1/secret/data/{lost}", f"/v1/secret/data/{kept}"}
    with scenario(world) as sc:
        emulator = sc.stack.vault
        original, lock, refused = emulator.handle, threading.Lock(), []

        def handle(request):
            with lock:
                if request.method in ("POST", "PUT") and request.path in targets \
                        and refused.count(request.path) < 3:
                    refused.append(request.path)  # every attempt of the first try: 502
                    return json_response(502, {"errors": ["injected: bad gateway"]})
            return original(request)

        emulator.handle = handle
        try:
            run = sc.run_once()
        finally:
            del emulator.handle
        after = sc.vault_contents()
    assert run["status"] == "SUCCEEDED", run["cause"]
    assert sorted(refused) == sorted([*targets] * 3)  # both roots refused on all 3 attempts of try 1
    assert run["output"]["phases"]["apply"]["instances_failed"] == 0 and run["output"]["not_reconciled"] == 0
    assert f"secret/{lost}" in after and f"secret/{kept}" in after
    assert [p for p in after if p.startswith(f"secret/backups/{lost}/")] == []
    assert len([p for p in after if p.startswith(f"secret/backups/{kept}/")]) == 1
