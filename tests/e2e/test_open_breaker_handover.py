"""An open Vault breaker whose next trial does not fit in an ApplyBatch invocation's time hands
the batch to a fresh invocation (``done: false``, a fresh budget) instead of giving it up; the
steps already done are kept; the hand-overs are bounded (then the batch is recorded as not
processed, never a false success). Through the real state machine."""

from __future__ import annotations

import pytest

from mockstack.runner import LOCAL_CONFIG
from reconciler.errors import CircuitOpen
from reconciler.phases import apply_batch, runtime
from tests.e2e.support import scenario, small_world, store_of

# phases in sequence: apply batch 0 is Match's first cut of 10 (with overlap_phases it would be
# an early batch holding scan batch 0's instances; the hand-over path is the same ApplyBatch)
CONFIG = (LOCAL_CONFIG + "  batch: {size: 10, min_size: 1, adaptive_scaling: false, delay: 0s}\n"
          "  concurrency: {worker_pool_size: 2, overlap_phases: false}\n")
VICTIM = 0  # 10 instances: two steps of 5
ORIGINAL_PROCESS = apply_batch.BatchApply.process
ORIGINAL_RUN = apply_batch.run


def _open(calls: set[int] | None):
    """``process`` of the victim batch refuses with an open circuit whose trial is far beyond any
    budget, on its n-th call for n in ``calls`` (None: every call)."""
    seen: list[int] = []

    def process(self, chunk, pool, may_retry):
        if self.batch == VICTIM and may_retry:
            seen.append(1)
            if calls is None or len(seen) in calls:
                raise CircuitOpen("vault: circuit open (injected)", api="vault", retry_in=500.0)
        return ORIGINAL_PROCESS(self, chunk, pool, may_retry)
    return process


def _counting(outputs: list[dict]):
    def run(event, context, *deps):
        out = ORIGINAL_RUN(event, context, *deps)
        if event.get("batch") == VICTIM:
            outputs.append(out)
        return out
    return run


def _run_with_open_breaker(sc, calls, monkeypatch) -> tuple[dict, list[dict]]:
    """One run whose ApplyBatch finds the Vault breaker open at ``calls`` (None: always); the
    batch invocations' outputs."""
    outputs: list[dict] = []
    monkeypatch.setattr(apply_batch.BatchApply, "process", _open(calls))
    monkeypatch.setattr(apply_batch, "run", _counting(outputs))
    run = sc.run_once()
    monkeypatch.undo()
    assert run["status"] == "SUCCEEDED", run["cause"]
    return run, outputs


@pytest.mark.parametrize(("calls", "handovers"), [({1}, 1), ({2}, 0), ({1, 2, 3}, 3)],
                         ids=["at its start", "after a step", "three times"])
def test_an_open_breaker_hands_the_batch_over(calls, handovers, monkeypatch):
    world, _expected = small_world(14, seed=5)
    with scenario(world, config_text=CONFIG) as sc:
        run, outputs = _run_with_open_breaker(sc, calls, monkeypatch)
        out = run["output"]
        store = store_of(sc)
        assert out["not_reconciled"] == 0, (out["not_reconciled_reasons"], store.recent_errors()[:4])
        assert out["status"] == "succeeded", out
        handed = [o for o in outputs if o.get("done") is False]
        assert len(handed) == len(calls) and handed[-1].get("breaker_handovers", 0) == handovers
        if calls == {2}:  # the first step's figures kept, the second step done by the next invocation
            assert any(o["offset"] == 5 and o["done"] is False for o in outputs), outputs
        figures = store.get_scratch(out["run_id"], f"apply#{VICTIM}#figures") or {}
        assert figures["items"] == 10  # each step counted once
        assert figures["instances"] == sum(figures[f"instances_{k}"] for k in ("written", "unchanged", "failed")) == 8


def test_the_hand_overs_are_bounded(monkeypatch):
    world, _expected = small_world(14, seed=5)
    with scenario(world, config_text=CONFIG) as sc:
        run, outputs = _run_with_open_breaker(sc, None, monkeypatch)
        out = run["output"]
        lost = store_of(sc).get_scratch(out["run_id"], f"apply#{VICTIM}#items")
        assert len(outputs) == runtime.OPEN_BREAKER_HANDOVERS  # then the open circuit fails the batch
        assert out["status"] == "succeeded_with_errors"
        assert out["not_reconciled_reasons"].get("batch_not_processed") == len(lost) == 10
