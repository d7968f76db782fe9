"""No false success: every way an apply batch can go missing, forced through the real state
machine, ends the run ``succeeded_with_errors`` with the count of instances not reconciled and
why; ``/b/status`` and ``/b/metrics`` show it, and the next run tries those instances first."""

from __future__ import annotations

import json

import pytest

from mockstack.runner import LOCAL_CONFIG
from reconciler.errors import Unavailable
from reconciler.phases import apply_batch, record_failure
from tests.e2e.support import scenario, small_world, store_of

CONFIG = LOCAL_CONFIG + "  batch: {size: 5, min_size: 1, adaptive_scaling: false, delay: 0s}\n"
VICTIM = 1  # the batch made to go missing


def _raise(exc: BaseException):
    def run(event, context, deps):
        if event.get("batch") == VICTIM:
            raise exc
        return ORIGINAL_APPLY(event, context, deps)
    return run


def _vanish(event, context, deps):
    """Says it finished, leaves no figures: a batch lost some other way (a write that never landed)."""
    if event.get("batch") == VICTIM:
        return {**event, "done": True}
    return ORIGINAL_APPLY(event, context, deps)


ORIGINAL_APPLY = apply_batch.run
ORIGINAL_RECORD = record_failure.run

# how -> (ApplyBatch replacement, RecordFailure replacement or None)
WAYS = {
    "unavailable after the state machine's retries": (_raise(Unavailable("vault: injected", api="vault")), None),
    "an unexpected error (a bug)": (_raise(RuntimeError("injected bug")), None),
    "the batch's failure record fails too": (_raise(RuntimeError("injected bug")), "fail"),
    "figures never written": (_vanish, None),
}


@pytest.fixture(scope="module")
def sc():
    world, _expected = small_world(14, seed=5)
    with scenario(world, config_text=CONFIG) as running:
        yield running


@pytest.mark.parametrize("way", list(WAYS))
def test_a_missing_batch_is_never_a_success(sc, way, monkeypatch):
    apply_run, record = WAYS[way]
    monkeypatch.setattr(apply_batch, "run", apply_run)
    if record == "fail":
        def failing(event, context, deps):
            if event.get("scope") == "batch":
                raise RuntimeError("injected: the failure record could not be written")
            return ORIGINAL_RECORD(event, context, deps)
        monkeypatch.setattr(record_failure, "run", failing)
    run = sc.run_once()
    monkeypatch.undo()
    assert run["status"] == "SUCCEEDED", run["cause"]
    out = run["output"]
    store = store_of(sc)
    lost = [i["instance_id"] for i in store.get_scratch(out["run_id"], f"apply#{VICTIM}#items")]
    assert lost, "the victim batch holds instances"
    assert out["status"] == "succeeded_with_errors"
    assert out["not_reconciled"] == len(lost), (out["not_reconciled_reasons"], store.recent_errors()[:4])
    assert out["not_reconciled_reasons"].get("batch_not_processed") == len(lost)
    status_code, _, body = sc.api("GET", "/b/status")
    status = json.loads(body)
    assert status_code == 200 and status["last_run_status"] == "succeeded_with_errors"
    assert status["last_run_not_reconciled"]["count"] == len(lost)
    _, _, metrics = sc.api("GET", "/b/metrics")
    assert f"blacksmith_reconciler_last_run_instances_not_reconciled {float(len(lost))}" in metrics.decode()

    # the next run (nothing forced to fail) takes those instances first and reconciles everything
    again = sc.run_once()
    assert again["output"]["status"] == "succeeded" and again["output"]["not_reconciled"] == 0
    first = [i["instance_id"] for i in store.get_scratch(again["output"]["run_id"], "apply#0#items")]
    assert set(lost) <= set(first[:len(lost)])  # batch size 5: all of them lead the first batch
