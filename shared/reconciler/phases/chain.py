"""Continue-as-new: how many Map batches one state machine execution runs (its *window*).

Status: the sizing only. The hand-over (DiscoverBosh/Match cutting windows, Begin's
continuation, the ``MoreToScan?``/``MoreToApply?``/``Handover`` states, the runner following
the chain) is on branch ``chain-wip``, not on main: its chained e2e run still fails in moto's
interpreter at ``Handover`` (States.Runtime). Nothing calls this module on main yet.

A Step Functions execution holds at most 25,000 history events and should end well before
``timeouts.reconciliation_run``. A run larger than one execution's budgets runs its batches
in windows: DiscoverBosh and Match hand their Map only the first window (``batches``, with
``batch_count`` and ``batch_next``), the ``MoreToScan?`` / ``MoreToApply?`` Choices after the
Maps go to ``Handover``, which starts a follow-up execution of the same run id
(``<run id>-<n>``, input ``{"continue": <state>}``), and Begin slides the window on.

The window is the smaller of

* the history budget: ``execution.max_history_events`` less a margin and the states
  outside the Maps, over ~11 events per Map iteration (measured: 10.9 to 11.0);
* the time budget: ``execution.time_share`` of ``timeouts.reconciliation_run``, over a
  batch's time: the longer of the previous run's time per item (batches run
  ``map_concurrency`` at a time) and the rate limit's floor (the rate is global: parallel
  batches share it);

and at least one batch, so every execution makes progress.
"""

from __future__ import annotations

import math
from typing import Any

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
           iterations_used: int = 0, seconds_used: float = 0.0) -> int:
    """Batches of ``phase`` the next execution runs (of ``count``): within what is left of the
    history budget (``iterations_used`` this execution) and of the time budget
    (``seconds_used``), at least one."""
    if count <= 0:
        return 0
    by_events = iterations_budget(s) - iterations_used
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


def cut(count: int, size: int) -> dict[str, Any]:
    """The Map's first window of ``count`` batches, ``size`` wide: the fields a phase hands on."""
    end = min(count, max(1, size)) if count else 0
    return {"batches": list(range(end)), "batch_count": count, "batch_next": end, "batch_window": max(1, size),
            "more": end < count}


def slide(part: dict[str, Any]) -> dict[str, Any]:
    """The next window of a phase's batches (Begin of a follow-up execution)."""
    count, start = int(part.get("batch_count") or 0), int(part.get("batch_next") or 0)
    end = min(count, start + max(1, int(part.get("batch_window") or 1)))
    return {**part, "batches": list(range(start, end)), "batch_next": end, "more": end < count}


def batch_count(part: dict[str, Any]) -> int:
    """All of a phase's batches across the chain (``batch_count``; a state without it: its batches)."""
    if isinstance(part.get("batch_count"), int):
        return int(part["batch_count"])
    return len(part.get("batches") or [])
