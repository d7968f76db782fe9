"""Continue-as-new: how many Map batches one state machine execution runs (its *window*),
and how a run larger than that goes on in follow-up executions of the same run id.

A Step Functions execution holds at most 25,000 history events and should end well before
``timeouts.reconciliation_run``. A run larger than one execution's budgets runs its batches
in windows: DiscoverBosh and Match hand their Map only the first window (``cut``:
``batches``, with ``batch_count``, ``batch_next``, ``batch_window`` and ``more``; the late
apply batches are numbered after the early ones of ``overlap_phases``), the ``MoreToScan?`` /
``MoreToApply?`` Choices after the Maps go to ``Handover``, which starts a follow-up
execution of the same state machine (``<run id>-<n>``, ``execution_info``; input
``{"continue": <state>}``) and ends this one without Finish. The follow-up's Begin keeps the
run's lock (it must still be the run's), ``resume`` slides the window on, sized for a fresh
execution, and the ``Resume`` Choice goes on with the scan (no early apply) or the apply.
One run id, one run record, one report (Finish counts every window) across the chain.

The window is the smaller of

* the history budget: ``execution.max_history_events`` less a margin and the states
  outside the Maps, over ~11 events per Map iteration (measured: 10.9 to 11.0); a scan batch
  with an early apply batch beside it costs two iterations;
* the time budget: ``execution.time_share`` of ``timeouts.reconciliation_run``, over a
  batch's time: the longer of the previous run's time per item (batches run
  ``map_concurrency`` at a time) and the rate limit's floor (the rate is global: parallel
  batches share it);

and at least one batch, so every execution makes progress.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import InvalidInput
from . import runtime

EVENTS_PER_ITERATION = 11  # one Map iteration: MapIterationStarted..Succeeded, a Task's 5-6 events, a Choice, a Pass
FIXED_EVENTS = 120  # Start, Begin, Discover's Parallel, Match, SyncIndex, Orphans, Finish, Choices, Handover
MARGIN = 0.1  # continuations (done: false) and retries add events: plan on 90 % of the budget
REQUESTS_PER_ITEM = {"scan": 2.0, "apply": 6.0}  # BOSH per deployment (manifest + instances); Vault per instance
API_OF = {"scan": "bosh", "apply": "vault"}


def iterations_budget(s: Any) -> int:
    """Map iterations one execution may run (both Maps together)."""
    cap = int(s.reconciler.execution.max_history_events)
    return max(1, int((cap * (1 - MARGIN) - FIXED_EVENTS) // EVENTS_PER_ITERATION))


def time_budget_s(s: Any) -> float:
    rc = s.reconciler
    return float(rc.timeouts.reconciliation_run) * float(rc.execution.time_share)


def batch_seconds(s: Any, phase: str, size: int, ms_per_item: float | None) -> tuple[float, float]:
    """(a batch's own time from the previous run's time per item, the rate limit's floor for one batch)."""
    api = getattr(s.reconciler.apis, API_OF[phase])
    rps = float(api.rate_limit.requests_per_second)
    floor = size * REQUESTS_PER_ITEM[phase] / rps if rps > 0 else 0.0
    measured = size * float(ms_per_item) / 1000.0 if ms_per_item and ms_per_item > 0 else 0.0
    return measured, floor


def window(s: Any, phase: str, count: int, size: int, ms_per_item: float | None, *,
           iterations_used: int = 0, seconds_used: float = 0.0, iterations_per_batch: int = 1) -> int:
    """Batches of ``phase`` the next execution runs (of ``count``): within what is left of the
    history budget (``iterations_used`` this execution; a scan batch with an early apply batch
    beside it costs 2 iterations) and of the time budget (``seconds_used``), at least one."""
    if count <= 0:
        return 0
    by_events = (iterations_budget(s) - iterations_used) // max(1, iterations_per_batch)
    left = time_budget_s(s) - seconds_used
    measured, floor = batch_seconds(s, phase, size, ms_per_item)
    conc = runtime.map_concurrency(s)
    if left <= 0:
        by_time = 0
    elif measured <= 0 and floor <= 0:
        by_time = count
    else:
        # W batches take max(ceil(W / conc) * measured, W * floor)
        by_floor = math.floor(left / floor) if floor > 0 else count
        by_measured = math.floor(left / measured) * conc if measured > 0 else count
        by_time = min(by_floor, by_measured)
    return max(1, min(count, by_events, by_time))


def cut(count: int, size: int, start: int = 0) -> dict[str, Any]:
    """The Map's first window of ``count`` batches numbered from ``start`` (the late apply
    batches follow the early ones), ``size`` wide: the fields a phase hands on.
    ``batch_count`` is the last batch number + 1 (every batch of the phase across the chain)."""
    end = start + (min(count, max(1, size)) if count > 0 else 0)
    return {"batches": list(range(start, end)), "batch_count": start + max(0, count), "batch_next": end,
            "batch_window": max(1, size), "more": end < start + max(0, count)}


def slide(part: dict[str, Any], size: int | None = None) -> dict[str, Any]:
    """The next window of a phase's batches (Begin of a follow-up execution), ``size`` wide
    (default: the width it was cut with)."""
    count, start = int(part.get("batch_count") or 0), int(part.get("batch_next") or 0)
    width = max(1, int(size if size is not None else part.get("batch_window") or 1))
    end = min(count, start + width)
    return {**part, "batches": list(range(start, end)), "batch_next": end, "batch_window": width,
            "more": end < count}


def batch_count(part: dict[str, Any]) -> int:
    """All of a phase's batches across the chain (``batch_count``; a state without it: its batches)."""
    if isinstance(part.get("batch_count"), int):
        return int(part["batch_count"])
    return len(part.get("batches") or [])


def left(part: dict[str, Any]) -> int:
    """Batches of the phase not yet handed to a Map."""
    return max(0, batch_count(part) - int(part.get("batch_next") or len(part.get("batches") or [])))


def execution_info(run_id: str, n: int, started_at: str) -> dict[str, Any]:
    """``$.run.chain``: this execution's number in the run's chain, when it started (its own
    time budget) and the name its follow-up takes (``Handover``: ``<run id>-<n + 1>``, at most
    80 characters as Step Functions allows)."""
    suffix = f"-{n + 1}"
    return {"execution": n, "started_at": started_at, "next_name": run_id[:80 - len(suffix)] + suffix}


def resume(s: Any, state: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    """A follow-up execution's state (Begin on ``{"continue": <state>}``): the phase that was
    cut short (``run.chain.resume``: ``scan`` or ``apply``) slid on by a window sized for a
    fresh execution's budgets."""
    out = {k: v for k, v in state.items() if k not in ("handover", "error")}
    run = out.get("run") or {}
    match = out.get("match")
    if isinstance(match, dict) and match.get("more"):
        size = int(match.get("batch_size") or 1)
        width = window(s, "apply", left(match), size, metrics.get("apply_ms_per_item"))
        return {**out, "run": _resuming(run, "apply"), "match": slide(match, width)}
    bosh = (out.get("sources") or {}).get("bosh")
    if isinstance(bosh, dict) and bosh.get("more"):
        size = int(bosh.get("batch_size") or 1)
        width = window(s, "scan", left(bosh), size, metrics.get("scan_ms_per_item"))  # no early apply beside it
        return {**out, "run": _resuming(run, "scan"), "sources": {**out["sources"], "bosh": slide(bosh, width)}}
    raise InvalidInput("continue: the state has no phase with batches left (match.more / sources.bosh.more)")


def _resuming(run: dict[str, Any], phase: str) -> dict[str, Any]:
    """``run.chain.resume``: where the state machine's ``Resume`` Choice goes on."""
    return {**run, "chain": {**(run.get("chain") or {}), "resume": phase}}
