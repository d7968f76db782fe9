"""No false success: every way an apply batch can go missing, forced through the real state
machine, ends the run ``succeeded_with_errors`` with the count of instances not reconciled and
why; ``/b/status`` and ``/b/metrics`` show it, and the next run tries those instances first.

Both ways the phases run: in sequence (``overlap_phases: false``: apply batch 1 goes missing)
and overlapped (the default: early batch 1 goes missing, and so does every late batch, where
Match plans its instances again). A failed early batch alone is no loss: the late pass
reconciles its instances, and the run says so without counting them as not reconciled."""

from __future__ import annotations

import json

import pytest

from mockstack.runner import LOCAL_CONFIG
from reconciler.errors import Unavailable
from reconciler.phases import apply_batch, record_failure, retry_first
from tests.e2e.support import scenario, small_world, store_of

CONFIG = LOCAL_CONFIG + "  batch: {size: 5, min_size: 1, adaptive_scaling: false, delay: 0s}\n"
SEQUENCE = CONFIG + "  concurrency: {overlap_phases: false}\n"
VICTIM = 1  # the batch made to go missing (with overlap: the early one, and every late batch)


MODE = {"late_too": False}  # set per test: with overlap, the late batches go missing as well


def victim(event) -> bool:
    return event.get("batch") == VICTIM or (MODE["late_too"] and not event.get("early"))


def _raise(exc: BaseException):
    def run(event, context, deps):
        if victim(event):
            raise exc
        return ORIGINAL_APPLY(event, context, deps)
    return run


def _vanish(event, context, deps):
    """Says it finished, leaves no figures: a batch lost some other way (a write that never landed)."""
    if victim(event):
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


@pytest.fixture(scope="module", params=["sequence", "overlap"])
def sc(request):
    """One scenario per mode (pytest finishes one before it starts the next)."""
    world, _expected = small_world(14, seed=5)
    with scenario(world, config_text=SEQUENCE if request.param == "sequence" else CONFIG) as running:
        running.mode = request.param
        yield running


def _failing_run(sc, way, monkeypatch, *, late_too: bool) -> dict:
    apply_run, record = WAYS[way]
    monkeypatch.setattr(apply_batch, "run", apply_run)
    monkeypatch.setitem(MODE, "late_too", late_too)
    if record == "fail":
        def failing(event, context, deps):
            if event.get("scope") == "batch":
                raise RuntimeError("injected: the failure record could not be written")
            return ORIGINAL_RECORD(event, context, deps)
        monkeypatch.setattr(record_failure, "run", failing)
    run = sc.run_once()
    monkeypatch.undo()
    assert run["status"] == "SUCCEEDED", run["cause"]
    return run["output"]


def _assert_reported(sc, out: dict, lost: list[str]) -> None:
    """The run, /b/status and /b/metrics count exactly ``lost`` as not reconciled."""
    store = store_of(sc)
    assert lost, "the missing batches hold instances"
    assert out["status"] == "succeeded_with_errors"
    assert out["not_reconciled"] == len(lost), (out["not_reconciled_reasons"], store.recent_errors()[:4])
    assert out["not_reconciled_reasons"].get("batch_not_processed") == len(lost)
    status_code, _, body = sc.api("GET", "/b/status")
    status = json.loads(body)
    assert status_code == 200 and status["last_run_status"] == "succeeded_with_errors"
    assert status["last_run_not_reconciled"]["count"] == len(lost)
    _, _, metrics = sc.api("GET", "/b/metrics")
    assert f"blacksmith_reconciler_last_run_instances_not_reconciled {float(len(lost))}" in metrics.decode()
    assert set(lost) <= set(retry_first.get(store)["instances"])  # tried first by the next run


@pytest.mark.parametrize("way", list(WAYS))
def test_a_missing_batch_is_never_a_success(sc, way, monkeypatch):
    overlap = sc.mode == "overlap"
    out = _failing_run(sc, way, monkeypatch, late_too=overlap)
    store, match = store_of(sc), out["phases"]["match"]
    if not overlap:
        lost = [i["instance_id"] for i in store.get_scratch(out["run_id"], f"apply#{VICTIM}#items")]
    else:
        assert match["early_batches"] > VICTIM, match  # the early batches ran: victim 1 was one of them
        # every late batch went missing: what they held is what the run did not reconcile, the
        # instances early batch 1 did not apply among them (Match planned them again)
        lost = [i["instance_id"] for b in range(match["early_batches"], match["apply_batches"])
                for i in store.get_scratch(out["run_id"], f"apply#{b}#items") or []]
        early = store.get_scratch(out["run_id"], f"apply#{VICTIM}#items")  # None: it vanished before its cut
        assert {i["instance_id"] for i in early or []} <= set(lost)
        assert match["applied_early"] + len(lost) == match["to_update"]  # counted once, where planned last
        assert out["phases"]["apply"]["early_batches_missing"] == 1
    _assert_reported(sc, out, lost)

    # the next run (nothing forced to fail) takes those instances first and reconciles everything
    again = sc.run_once()
    assert again["output"]["status"] == "succeeded" and again["output"]["not_reconciled"] == 0
    if not overlap:  # (overlapped, the early batches apply by scan batch: the retried lead the late ones)
        first = [i["instance_id"] for i in store.get_scratch(again["output"]["run_id"], "apply#0#items")]
        assert set(lost) <= set(first[:len(lost)])  # batch size 5: all of them lead the first batch


def test_overlapped_a_failed_early_batch_is_reconciled_by_the_late_pass(sc, monkeypatch):
    if sc.mode != "overlap":
        pytest.skip("early batches are overlap_phases' own")
    out = _failing_run(sc, "unavailable after the state machine's retries", monkeypatch, late_too=False)
    apply, match = out["phases"]["apply"], out["phases"]["match"]
    assert apply["early_batches_missing"] == 1 and apply["batches_missing"] == 0, apply
    # its instances were planned again by Match and reconciled by the late batches: no loss
    assert out["status"] == "succeeded" and out["not_reconciled"] == 0, out["not_reconciled_reasons"]
    assert match["to_update"] > match["applied_early"]
    assert retry_first.get(store_of(sc))["instances"] == []
