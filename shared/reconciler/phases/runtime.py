"""What every phase works out the same way: batch sizes and Map limits, scratch TTLs, pauses
between batches, a time budget, waits for an open breaker. (Settings, the store and the
ports come in the phase's ``deps``: ``phases/deps.py``.)
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import CircuitOpen, InvalidInput

_log = logging.getLogger("reconciler.phases.runtime")

SCRATCH_TTL_MIN_S = 3600.0  # scratch outlives the run (the run's timeout) by at least an hour
MAX_MAP_ITEMS = 1000  # Map iterations per state: bounds the history (~10 events each) at 50,000 instances
STOP_RESERVE_S = 15.0  # leave the Lambda this much time to save progress and return


def scratch_ttl(s: Any) -> float:
    return max(SCRATCH_TTL_MIN_S, 2 * float(s.reconciler.timeouts.reconciliation_run))


def split(count: int, batch_size: int, max_batches: int = MAX_MAP_ITEMS) -> tuple[int, int]:
    """(effective batch size, number of batches) for ``count`` items: ``batch_size`` unless that
    would make more than ``max_batches`` Map iterations, then the smallest size that fits."""
    if count <= 0:
        return max(1, batch_size), 0
    size = max(1, batch_size, math.ceil(count / max_batches))
    return size, math.ceil(count / size)


def max_map_items(s: Any) -> int:
    """Most batches one Map state iterates over: ``concurrency.queue_size``, at most MAX_MAP_ITEMS."""
    return max(1, min(int(s.reconciler.concurrency.queue_size), MAX_MAP_ITEMS))


ADAPTIVE_SHARE = 4  # an adaptive batch aims at a quarter of its step's timeout


def batch_size(s: Any, phase: str, ms_per_item: float | None) -> int:
    """The batch size of ``phase`` (``scan``: deployments, ``apply``: instances). With
    ``batch.adaptive_scaling`` and a previous run's time per item: as many items as fit in a
    quarter of the step's timeout, within ``[batch.min_size, batch.max_size]``."""
    rc = s.reconciler
    base = rc.batch_size if phase == "scan" else rc.batch.size
    if not rc.batch.adaptive_scaling or not ms_per_item or ms_per_item <= 0:
        return base
    timeout = rc.timeouts.deployment_scan if phase == "scan" else rc.timeouts.vault_operations
    fits = int(timeout * 1000 / ADAPTIVE_SHARE // ms_per_item)
    return max(rc.batch.min_size, min(rc.batch.max_size, fits))


def map_concurrency(s: Any) -> int:
    """Both Map states' MaxConcurrency: batches in flight at once."""
    rc = s.reconciler
    return max(1, min(rc.batch.max_parallel_batch, rc.max_concurrency))


def pause_slots(s: Any) -> int:
    """Batches of one Map that may pause at once: all but one of those in flight (one when a
    single batch is in flight), so while some pause another keeps the API at its rate."""
    return max(1, map_concurrency(s) - 1)


def pause_between_batches(batch: int, offset: int, delay_s: float, s: Any, budget: Budget | None = None, *,
                          sleep: Callable[[float], None] = time.sleep,
                          claim: Callable[[int, float], bool] | None = None) -> float:
    """Wait ``delay_s`` before a batch of the second and later waves (the first
    ``map_concurrency`` batches start at once), on its first invocation only. Returns the pause.

    With ``claim`` (``claim(slots, pause)``: the store's ``claim_pause`` for the run and the
    phase), a batch pauses only when it gets one of :func:`pause_slots` slots: batches that
    finish together no longer all pause together and leave the API idle (the shared rate
    limit, not the pause, keeps the API at its rate and its burst); a batch that finds every
    slot held starts at once."""
    if offset or delay_s <= 0 or batch < map_concurrency(s):
        return 0.0
    pause = delay_s if budget is None else max(0.0, min(delay_s, budget.left_s()))
    if pause and claim is not None and not claim(pause_slots(s), pause):
        _log.debug("batch %d: %d batch(es) already pausing; no pause", batch, pause_slots(s))
        return 0.0
    if pause:
        sleep(pause)
    return pause


def whole_seconds(value: float) -> int:
    """A timeout for ``TimeoutSecondsPath``: a positive integer."""
    return max(1, math.ceil(float(value)))


@dataclass
class Budget:
    """The time an invocation may still use: until the first deadline (the Lambda's timeout,
    or the step's ``timeout_s`` counted from ``started``) less a reserve."""

    context: Any
    reserve_s: float = STOP_RESERVE_S
    timeout_s: float | None = None  # the Task state's TimeoutSeconds for this invocation
    started: float = field(default_factory=time.monotonic)
    clock: Any = time.monotonic

    @classmethod
    def for_batch(cls, context: Any, s: Any, event: Mapping[str, Any]) -> Budget:
        """A batch Lambda's budget: ``timeouts.shutdown_grace_period`` before its first deadline."""
        timeout = event.get("timeout_s") if isinstance(event, Mapping) else None
        return cls(context, reserve_s=float(s.reconciler.timeouts.shutdown_grace_period),
                   timeout_s=float(timeout) if isinstance(timeout, int | float) and timeout > 0 else None)

    @classmethod
    def for_phase(cls, context: Any, event: Mapping[str, Any]) -> Budget:
        """A Vault phase's budget (its Task times out after ``run.timeouts.vault_operations``)."""
        run = event.get("run") if isinstance(event, Mapping) else None
        timeout = (run.get("timeouts") or {}).get("vault_operations") if isinstance(run, Mapping) else None
        return cls(context, timeout_s=float(timeout) if isinstance(timeout, int | float) and timeout > 0 else None)

    def left_s(self) -> float:
        getter = getattr(self.context, "get_remaining_time_in_millis", None)
        left = float("inf") if getter is None else getter() / 1000.0
        if self.timeout_s is not None:
            left = min(left, self.started + self.timeout_s - self.clock())
        return left - self.reserve_s

    def exhausted(self) -> bool:
        return self.left_s() <= 0


OPEN_BREAKER_WAITS = 3  # a trial fails as often as Vault does: a few chances, each within the budget


def through_open_breaker(fn: Any, budget: Budget, *, what: str, sleep: Any = time.sleep,
                         waits: int = OPEN_BREAKER_WAITS) -> Any:
    """``fn()``; when an open circuit refuses it and the breaker lets a trial through within
    this invocation's time, wait for that and run ``fn`` again (its first call is the trial; a
    failed trial re-opens the breaker, so up to ``waits`` waits). For a phase
    whose one job must not fail the run over a breaker that is about to half-open (Match's
    index read, SyncIndex's index write); ``fn`` must be safe to run again."""
    for waited in range(waits + 1):
        try:
            return fn()
        except CircuitOpen as exc:
            wait = exc.retry_in
            if waited == waits or wait is None or wait + 1.0 > budget.left_s():
                raise
            _log.warning("%s: %s; waiting %.1fs for the breaker's trial", what, exc, wait)
            sleep(max(0.0, wait) + 0.5)
    raise AssertionError("unreachable")


OPEN_BREAKER_HANDOVERS = 4  # batch invocations an open breaker may end without progress


def batch_through_open_breaker(attempt: Callable[[dict[str, Any]], dict[str, Any]], event: dict[str, Any],
                               context: Any, settings: Any, *, what: str) -> dict[str, Any]:
    """``attempt(event)`` through :func:`through_open_breaker` within the batch invocation's
    budget; ``attempt`` must be safe to run again from the same input (it re-reads its progress).
    The Task's timeout counts from the first try: a later try gets what is left of ``timeout_s``,
    and the output carries the original one (the next invocation's own).

    When the breaker's next trial does not fit in what is left (a trial fails as often as the
    API does, and each failed one re-opens the breaker for its whole timeout), the batch is
    handed to a fresh invocation with a fresh budget: ``done: false`` at the same offset (the
    state machine invokes the batch again). ``breaker_handovers`` in the event counts those
    hand-overs; after ``OPEN_BREAKER_HANDOVERS`` the open circuit fails the batch (the state
    machine's catch records it as not processed), so the loop is bounded."""
    budget = Budget.for_batch(context, settings, event)
    timeout = event.get("timeout_s")
    handovers = int(event.get("breaker_handovers") or 0)

    def once() -> dict[str, Any]:
        if not isinstance(timeout, int | float) or timeout <= 0:
            return attempt(event)
        left = max(1.0, float(timeout) - (budget.clock() - budget.started))
        return {**attempt({**event, "timeout_s": left}), "timeout_s": timeout}

    try:
        return through_open_breaker(once, budget, what=what)
    except CircuitOpen as exc:
        if exc.retry_in is None or handovers >= OPEN_BREAKER_HANDOVERS:
            raise
        _log.warning("%s: %s; the trial does not fit in this invocation: handing the batch to a fresh one "
                     "(%d of %d)", what, exc, handovers + 1, OPEN_BREAKER_HANDOVERS)
        return {**event, "done": False, "breaker_handovers": handovers + 1}


def require(event: Mapping[str, Any], *keys: str) -> list[Any]:
    """The event's ``keys``, or InvalidInput naming the missing one (a wiring error, not user input)."""
    if not isinstance(event, Mapping):
        raise InvalidInput(f"event: expected a JSON object, got {type(event).__name__}")
    missing = [k for k in keys if k not in event]
    if missing:
        raise InvalidInput(f"event is missing {missing}; it has {sorted(event)}")
    return [event[k] for k in keys]


def now_iso(ts: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if ts is None else ts))
