"""Live progress: while a run writes to Vault, ``/b/status`` names the phase, the Maps' batches
done and total, items, elapsed; the finished run records per-phase durations.

In sequence (``overlap_phases: false``) the first write is in UpdateVault, after every scan
batch. Overlapped (the default) it is an early apply batch's, beside the scan: the run is
still in ScanDeployments, and the apply Map counts the early batches (one per scan batch)
and the items their cuts took so far."""

from __future__ import annotations

import json

import pytest

from mockstack.runner import LOCAL_CONFIG
from reconciler.progress import PHASES
from tests.e2e.support import Gate, intercept, scenario, small_world, store_of, wait_for

CONFIG = LOCAL_CONFIG + "  batch_size: 3\n  batch: {size: 2, min_size: 1, max_parallel_batch: 1}\n" \
                        "  concurrency: {overlap_phases: %s}\n"


def _run_held_at_the_first_write(overlap: str):
    world, _ = small_world(10, seed=3)
    with scenario(world, config_text=CONFIG % overlap) as sc:
        gate = Gate(lambda r: r.method in ("POST", "PUT") and "/v1/secret/data/" in r.path, timeout_s=120)
        with intercept(sc.stack.vault, before=gate):
            arn = sc.engine.start_execution({"source": "test", "forced": True})
            wait_for(gate.held.is_set, timeout_s=120, what="the run's first Vault write")
            code, _, body = sc.api("GET", "/b/status")
            gate.open()
        result = sc.engine.wait(arn, timeout_s=300)
        record = store_of(sc).get_run(arn.rsplit(":", 1)[-1])
        code_after, _, after = sc.api("GET", "/b/status")
    assert code == 200, body
    assert result.status == "SUCCEEDED", result.cause
    assert json.loads(after)["current_execution"] is None and code_after == 200
    return json.loads(body)["current_execution"], result, record


@pytest.mark.parametrize("overlap", ["false", "true"])
def test_status_shows_the_phase_and_batches_while_a_run_is_going(overlap):
    current, result, record = _run_held_at_the_first_write(overlap)
    live = current["progress"]
    assert live["elapsed_s"] > 0
    scan, apply = live["maps"]["scan"], live["maps"]["apply"]
    match = result.output["phases"]["match"]
    if overlap == "false":
        assert current["phase"] == live["phase"] == "UpdateVault"
        assert scan["batches_done"] == scan["batches_total"] > 0 and scan["items_done"] == scan["items_total"]
        assert apply["batches_total"] == match["batches"] > 1
        assert apply["items_total"] == match["to_update"]
        assert [p["phase"] for p in live["phases"]][:5] == list(PHASES[:5])
    else:
        # the write of early batch 0, once scan batch 0 (and the unnamed ones) were read:
        # the scan may still be going (it does not wait for Vault), the run is in its phase
        assert current["phase"] == live["phase"] == "ScanDeployments"
        assert 1 <= scan["batches_done"] <= scan["batches_total"] and scan["batches_total"] > 1
        assert apply["batches_total"] == scan["batches_total"] == match["early_batches"]  # one per scan batch
        assert 0 < apply["items_total"] <= match["to_update"]  # the cuts so far: batch 0's at least
        assert match["applied_early"] > 0
    assert 0 <= apply["batches_done"] < apply["batches_total"]
    assert [p["phase"] for p in live["phases"]][:3] == list(PHASES[:3])
    assert [p["phase"] for p in live["phases"]][-1] == live["phase"]

    durations = record["phase_durations"]
    ran = [p["phase"] for p in durations]
    assert ran == [p for p in PHASES if p in ran]  # in run order
    # with overlap, UpdateVault is the late batches' (there may be none: all applied early)
    assert set(PHASES) - set(ran) <= ({"UpdateVault"} if overlap == "true" else set()), ran
    assert all(p["duration_s"] is not None and p["duration_s"] >= 0 for p in durations)
