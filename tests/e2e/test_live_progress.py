"""Live progress: while a run is in its Vault update, ``/b/status`` names the phase, the Map's
batches done and total, items, elapsed; the finished run records per-phase durations."""

from __future__ import annotations

import json

from mockstack.runner import LOCAL_CONFIG
from reconciler.progress import PHASES
from tests.e2e.support import Gate, intercept, scenario, small_world, store_of, wait_for

CONFIG = LOCAL_CONFIG + "  batch: {size: 2, min_size: 1, max_parallel_batch: 1}\n"


def test_status_shows_the_phase_and_batches_while_a_run_is_going():
    world, _ = small_world(10, seed=3)
    with scenario(world, config_text=CONFIG) as sc:
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
    current = json.loads(body)["current_execution"]
    live = current["progress"]
    assert current["phase"] == live["phase"] == "UpdateVault"
    assert live["elapsed_s"] > 0
    scan, apply = live["maps"]["scan"], live["maps"]["apply"]
    assert scan["batches_done"] == scan["batches_total"] > 0 and scan["items_done"] == scan["items_total"]
    assert apply["batches_total"] == result.output["phases"]["match"]["batches"] > 1
    assert 0 <= apply["batches_done"] < apply["batches_total"]
    assert apply["items_total"] == result.output["phases"]["match"]["to_update"]
    assert [p["phase"] for p in live["phases"]][:5] == list(PHASES[:5])

    assert result.status == "SUCCEEDED", result.cause
    durations = record["phase_durations"]
    assert [p["phase"] for p in durations] == list(PHASES)
    assert all(p["duration_s"] is not None and p["duration_s"] >= 0 for p in durations)
    assert json.loads(after)["current_execution"] is None and code_after == 200
