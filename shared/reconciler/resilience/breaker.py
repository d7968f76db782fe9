"""The circuit-breaker half of a :class:`~reconciler.resilience.guard.Guard`: its transitions
(closed -> open -> half-open -> closed) and the breaker path of an attempt."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reconciler.errors import CircuitOpen

from .policy import ApiPolicy, BreakerConfig
from .state import CLOSED_CONDITION, ConditionFailed, DynamoGuardState, LocalGuardState, Transition, closed

log = logging.getLogger("reconciler.resilience")


def _set(**fields: str) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    def apply(s, p):
        for k, placeholder in fields.items():
            s[k] = p[placeholder]
    return apply


def _add(**fields: str) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    def apply(s, p):
        for k, placeholder in fields.items():
            s[k] = s.get(k, 0) + p[placeholder]
    return apply


def _both(*fns):
    def apply(s, p):
        for fn in fns:
            fn(s, p)
    return apply


OPEN_TO_HALF = Transition(
    "open_to_half", "SET cb = :half, successes = :zero, inflight = :one, half_until = :until",
    "cb = :open AND opened_at = :seen", ("half", "zero", "one", "until", "open", "seen"),
    lambda s, p: s.get("cb") == "open" and s.get("opened_at") == p["seen"],
    _set(cb="half", successes="zero", inflight="one", half_until="until"))
HALF_TAKE = Transition(
    "half_take", "ADD inflight :one", "cb = :half AND inflight < :max AND opened_at = :seen",
    ("one", "half", "max", "seen"),
    lambda s, p: s.get("cb") == "half_open" and s.get("inflight", 0) < p["max"] and s.get("opened_at") == p["seen"],
    _add(inflight="one"))
HALF_STALE = Transition(
    "half_stale", "SET inflight = :one, half_until = :until", "cb = :half AND half_until < :now AND opened_at = :seen",
    ("one", "until", "half", "now", "seen"),
    lambda s, p: s.get("cb") == "half_open" and s.get("half_until", 0) < p["now"] and s.get("opened_at") == p["seen"],
    _set(inflight="one", half_until="until"))
FAIL_CLOSED = Transition(
    "fail_closed", "ADD failures :one", CLOSED_CONDITION, ("one", "closed"), lambda s, p: closed(s),
    _add(failures="one"))
TRIP = Transition(
    "trip", "SET cb = :open, opened_at = :now, successes = :zero, inflight = :zero",
    f"{CLOSED_CONDITION} AND failures >= :ft", ("open", "now", "zero", "closed", "ft"),
    lambda s, p: closed(s) and s.get("failures", 0) >= p["ft"],
    _set(cb="open", opened_at="now", successes="zero", inflight="zero"))
RESET_FAILURES = Transition(
    "reset_failures", "SET failures = :zero", CLOSED_CONDITION, ("zero", "closed"), lambda s, p: closed(s),
    _set(failures="zero"))
TRIAL_OK = Transition(
    "trial_ok", "ADD successes :one, inflight :minus", "cb = :half AND opened_at = :seen",
    ("one", "minus", "half", "seen"),
    lambda s, p: s.get("cb") == "half_open" and s.get("opened_at") == p["seen"],
    _add(successes="one", inflight="minus"))
CLOSE = Transition(
    "close", "SET cb = :closed, failures = :zero, successes = :zero, inflight = :zero",
    "cb = :half AND successes >= :st", ("closed", "zero", "half", "st"),
    lambda s, p: s.get("cb") == "half_open" and s.get("successes", 0) >= p["st"],
    _set(cb="closed", failures="zero", successes="zero", inflight="zero"))
TRIAL_FAIL = Transition(
    "trial_fail", "SET cb = :open, opened_at = :now, successes = :zero, inflight = :zero",
    "cb = :half AND opened_at = :seen", ("open", "now", "zero", "half", "seen"),
    lambda s, p: s.get("cb") == "half_open" and s.get("opened_at") == p["seen"],
    _set(cb="open", opened_at="now", successes="zero", inflight="zero"))
TRIAL_NEUTRAL = Transition(
    "trial_neutral", "ADD inflight :minus", "cb = :half AND inflight > :zero AND opened_at = :seen",
    ("minus", "half", "zero", "seen"),
    lambda s, p: s.get("cb") == "half_open" and s.get("inflight", 0) > 0 and s.get("opened_at") == p["seen"],
    _add(inflight="minus"))


@dataclass
class Permit:
    kind: str  # "free" (breaker off), "closed" or "trial" (half-open)
    failures: int = 0  # the consecutive failures the state held when the permit was taken
    waited: float = 0.0
    period: Any = None  # a trial's half-open period (the opened_at it followed)


class BreakerPath:
    """The breaker for :class:`Guard` (its ``__init__`` sets the attributes used here)."""

    policy: ApiPolicy
    state: DynamoGuardState | LocalGuardState
    clock: Callable[[], float]
    breaker: BreakerConfig
    half_open_lease: float
    _record_lock: threading.Lock
    _streak: int
    _breaker_seen: tuple[float, int] | None

    @property
    def name(self) -> str:
        return self.policy.name

    def _breaker_path(self, old: dict[str, Any], now: float) -> Permit:
        cb = self.breaker
        for _ in range(10):
            state = old.get("cb", "closed")
            try:
                if state == "closed":
                    return Permit("closed", int(old.get("failures", 0)))  # closed again meanwhile
                if state == "open":
                    opened = float(old.get("opened_at", 0))
                    if now < opened + cb.timeout:
                        raise CircuitOpen(f"{self.name}: circuit open after {int(old.get('failures', 0))} failures; "
                                          f"next trial in {opened + cb.timeout - now:.1f}s", api=self.policy.api,
                                          retry_in=opened + cb.timeout - now)
                    self.state.update(OPEN_TO_HALF, {"until": now + self.half_open_lease, "seen": old["opened_at"]})
                    log.info("circuit %s half-open: trial call", self.name)
                    return Permit("trial", period=old["opened_at"])
                if int(old.get("inflight", 0)) < cb.max_concurrent:
                    self.state.update(HALF_TAKE, {"max": cb.max_concurrent, "seen": old.get("opened_at", 0)})
                    return Permit("trial", period=old.get("opened_at", 0))
                if float(old.get("half_until", 0)) < now:  # trials lost (crashed invocation): take over
                    self.state.update(HALF_STALE, {"until": now + self.half_open_lease, "now": now,
                                                   "seen": old.get("opened_at", 0)})
                    return Permit("trial", period=old.get("opened_at", 0))
                raise CircuitOpen(f"{self.name}: circuit half-open with {int(old.get('inflight', 0))} trial call(s) "
                                  f"in flight (max_concurrent {cb.max_concurrent})", api=self.policy.api,
                                  retry_in=min(cb.timeout, 1.0))
            except ConditionFailed as failed:
                old = failed.old
        raise CircuitOpen(f"{self.name}: circuit state too contended", api=self.policy.api)

    def record(self, permit: Permit, outcome: str) -> None:
        """``outcome``: ``success`` (answered, incl. 4xx), ``failure`` (timeout, connection, 5xx)
        or ``neutral`` (429, local errors).

        Closed: ``failure_threshold`` failures in a row open the breaker and any success ends
        the streak. Outcomes are applied one at a time (``_record_lock``) in the order they are
        recorded, so the threads of one invocation see exactly the sequential rules. A healthy
        breaker costs no write per success: a success writes ``failures = 0`` only when a
        failure may be counted, i.e. this guard's last write left one (``_streak``) or the
        state held one when the permit was taken. Across invocations that is the one
        approximation: a success that knows of no failure yet (another Lambda's, landed while
        it was in flight) is not written, and the next success that sees it ends the streak."""
        if permit.kind == "free" or not self.breaker.enabled:
            return
        if outcome == "failure":  # a breaker reread no longer vouches for leased slots (limiter.py)
            self._breaker_seen = None
        with self._record_lock:
            now = self.clock()
            try:
                if permit.kind == "closed":
                    if outcome == "success" and (permit.failures or self._streak):
                        self._seen(self.state.update(RESET_FAILURES, {}))
                    elif outcome == "failure":
                        new = self._seen(self.state.update(FAIL_CLOSED, {}))
                        if int(new.get("failures", 0)) >= self.breaker.failure_threshold:
                            self.state.update(TRIP, {"now": now, "ft": self.breaker.failure_threshold})
                            log.warning("circuit %s opened after %d consecutive failures", self.name,
                                        int(new["failures"]))
                    return
                seen = {"seen": permit.period}
                if outcome == "success":
                    new = self.state.update(TRIAL_OK, seen)
                    if int(new.get("successes", 0)) >= self.breaker.success_threshold:
                        self._seen(self.state.update(CLOSE, {"st": self.breaker.success_threshold}))
                        log.info("circuit %s closed after %d successful trials", self.name, int(new["successes"]))
                elif outcome == "failure":
                    self.state.update(TRIAL_FAIL, {"now": now, **seen})
                    log.warning("circuit %s re-opened: trial call failed", self.name)
                else:
                    self.state.update(TRIAL_NEUTRAL, seen)
            except ConditionFailed:
                pass  # the state moved on first (opened, closed, a new half-open period): theirs stands

    def _seen(self, state: dict[str, Any]) -> dict[str, Any]:
        self._streak = int(state.get("failures", 0)) if state.get("cb", "closed") == "closed" else 0
        return state
