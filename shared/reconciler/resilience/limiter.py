"""The rate-limit half of a :class:`~reconciler.resilience.guard.Guard`: GCRA slot reservations
over the shared state (design: the package docstring)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .policy import ApiPolicy
from .state import CLOSED_CONDITION, ConditionFailed, DynamoGuardState, LocalGuardState, Transition, closed

LATE_FLOOR_S = 0.01  # lateness tolerated before a slot is given up (at least T/2)
MAX_LATE_RETRIES = 3  # then a late slot is used anyway (a slow store must not starve callers)
ARRIVAL_AHEAD_MAX_S = 0.25  # how far ahead of now a reservation may place its arrival (store latency)
DELAY_SAMPLES = 50  # reservation round trips remembered per guard for that estimate
MAX_GROUP = 16  # slots reserved in one write for threads of one guard waiting at the same moment
FOLLOW_WAIT_S = 2.0  # a thread waits this long for its group's reservation before reserving alone
LEASE_MAX = 16  # slots a guard may lease ahead in one write (handed out locally, each at its own time)
BREAKER_RECHECK_S = 0.2  # a breaker reread vouches for this guard's leased slots this long (then read again)


def steady(breaker: bool) -> Transition:
    def check(s, p):
        return "tat" in s and p["now"] <= s["tat"] <= p["limit"] and (not breaker or closed(s))

    def apply(s, p):
        s["tat"] = s["tat"] + p["T"]

    return Transition("steady", "SET tat = tat + :T",
                      "tat BETWEEN :now AND :limit" + (f" AND {CLOSED_CONDITION}" if breaker else ""),
                      ("T", "now", "limit") + (("closed",) if breaker else ()), check, apply)


def refill(breaker: bool) -> Transition:
    def check(s, p):
        return ("tat" not in s or s["tat"] < p["now"]) and (not breaker or closed(s))

    def apply(s, p):
        s["tat"] = p["nowT"]

    return Transition("refill", "SET tat = :nowT",
                      "(attribute_not_exists(tat) OR tat < :now)" + (f" AND {CLOSED_CONDITION}" if breaker else ""),
                      ("nowT", "now") + (("closed",) if breaker else ()), check, apply)


@dataclass
class Grant:
    """A reserved slot (``slot``), or no slot and the bucket's state (``old``) to decide on."""

    slot: float | None
    at: float  # the arrival time the reservation was made for
    failures: int = 0
    old: dict[str, Any] = field(default_factory=dict)


class Ticket:
    """A thread waiting for a group reservation of its guard."""

    __slots__ = ("grant", "lead", "ready")

    def __init__(self) -> None:
        self.grant: Grant | None = None
        self.lead = False
        self.ready = threading.Event()


class SlotReservations:
    """Slot reservation for :class:`Guard` (its ``__init__`` sets the attributes used here)."""

    policy: ApiPolicy
    state: DynamoGuardState | LocalGuardState
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    _delays: list[float]
    _ahead: float
    _learn_lock: threading.Lock
    _tat_seen: float | None
    _group_lock: threading.Lock
    _queue: list[Ticket]
    _leading: bool
    _lease: list[Grant]
    _lease_k: int
    _lease_expired: bool
    _breaker_seen: tuple[float, int] | None

    def _leased(self, tolerance: float) -> Grant | None:
        """The next leased slot still on time (caller holds ``_group_lock``). A lease is slots
        already reserved in the shared bucket, so using them keeps the global bound; a slot
        whose time has passed expires (never used later, so it cannot bunch with a later window)."""
        now = self.clock()
        expired = False
        while self._lease and self._lease[0].slot is not None and self._lease[0].slot < now - tolerance:
            self._lease.pop(0)
            expired = True
        if expired:  # local demand is below the leased share: lease less
            self._lease_k = max(1, self._lease_k // 2)
            self._lease_expired = True
        return self._lease.pop(0) if self._lease else None

    def _breaker_checked(self, leased: Grant) -> Grant:
        """A leased slot was reserved while the breaker was closed, and it may have opened since
        (this or another Lambda's failures): read the state again (one GetItem, no write), at
        most once per ``BREAKER_RECHECK_S`` (a closed reading vouches for the slots used within
        that window; this guard's own failures end it at once, ``record``). So another Lambda's
        opening is seen within that window: at most ``rate x BREAKER_RECHECK_S`` requests of
        all Lambdas together go out after it (they are within the rate limit). Open or
        half-open: the lease is dropped and the caller gets no slot, only the state, so it
        meets the breaker (refused, or the half-open trial) as an unleased caller would."""
        now = self.clock()
        seen = self._breaker_seen
        if seen is not None and 0 <= now - seen[0] <= BREAKER_RECHECK_S:
            return Grant(leased.slot, leased.at, seen[1])
        old = self.state.read()
        if closed(old):
            failures = int(old.get("failures", 0))
            self._breaker_seen = (now, failures)
            return Grant(leased.slot, leased.at, failures)
        self._breaker_seen = None
        with self._group_lock:
            self._lease.clear()
        return Grant(None, self.clock(), old=old)

    def _keep_lease(self, extra: list[Grant]) -> None:
        """Keep the group's extra slots for later callers of this guard (under ``_group_lock``)."""
        self._lease.extend(g for g in extra if g.slot is not None)
        if not self._lease_expired:  # the previous lease was used up on time: lease more
            self._lease_k = min(LEASE_MAX, self._lease_k * 2)
        self._lease_expired = False

    def _take(self, T: float, tau: float, cb_on: bool) -> Grant:
        """A slot for this caller, reserved together with those of every other thread of this
        guard waiting at the same moment: one thread (the leader) makes one conditional write
        for the whole group (``tat += k*T``), exactly as k reservations one after another."""
        ticket = Ticket()
        with self._group_lock:
            leased = self._leased(max(T / 2, LATE_FLOOR_S))
            if leased is None:
                self._queue.append(ticket)
                if not self._leading:
                    self._leading = ticket.lead = True
        if leased is not None:
            return self._breaker_checked(leased) if cb_on else leased
        if not ticket.lead:
            if not ticket.ready.wait(FOLLOW_WAIT_S):
                with self._group_lock:
                    alone = ticket in self._queue and not ticket.lead
                    if alone:  # the leader is stuck in a slow store call: reserve alone
                        self._queue.remove(ticket)
                if alone:
                    return self._reserve_slots(1, T, tau, cb_on)[0]
                ticket.ready.wait(FOLLOW_WAIT_S * 10)
            if not ticket.lead:
                return ticket.grant or self._reserve_slots(1, T, tau, cb_on)[0]
        most = max(1, min(MAX_GROUP, 1 + int((tau + self.policy.rate_limit.wait_timeout) / T)))
        with self._group_lock:
            group = self._queue[:most]  # this leader's own ticket is first
            del self._queue[:len(group)]
        grants: list[Grant | None] = [None] * len(group)
        # lease only once the burst is spent (slots paced by T): leased burst slots held by one
        # Lambda while it sleeps would be lost to the others
        paced = self._tat_seen is not None and self._tat_seen - tau >= self.clock()
        n = min(most, max(len(group), self._lease_k if paced else 1))
        try:
            got = self._reserve_slots(n, T, tau, cb_on)
            grants = list(got[:len(group)])
        finally:  # on an error the followers reserve alone (and meet the error themselves)
            with self._group_lock:
                if grants[0] is not None:
                    self._keep_lease(got[len(group):])
                for t, g in zip(group[1:], grants[1:], strict=True):
                    t.grant = g
                    t.ready.set()
                if self._queue:  # hand over: the next waiting thread leads the next group
                    self._queue[0].lead = True
                    self._queue[0].ready.set()
                else:
                    self._leading = False
        return grants[0] or self._reserve_slots(1, T, tau, cb_on)[0]

    def _reserve_slots(self, k: int, T: float, tau: float, cb_on: bool) -> list[Grant]:
        """Reserve ``k`` consecutive slots in one conditional write (refill an idle bucket,
        or move a running one on); without a slot each grant carries the bucket's state."""
        now = self.clock()
        wait = self.policy.rate_limit.wait_timeout
        # The arrival time is when the caller can send: now + the store's round trip (90th
        # percentile of recent ones), so a slow or jittery store does not make most slots late
        # and every late slot cost another reservation. Any arrival time keeps the bound (slots
        # are spaced by the shared tat); the caller never sends before its slot.
        at = now + min(self._ahead, ARRIVAL_AHEAD_MAX_S, wait)
        params = {"T": k * T, "now": at, "limit": at + tau + wait - (k - 1) * T, "nowT": at + k * T}

        def slots(tat_before: float, new: dict[str, Any]) -> list[Grant]:
            failures = int(new.get("failures", 0))
            return [Grant(max(at, tat_before + j * T - tau), at, failures) for j in range(k)]

        old = None
        if self._tat_seen is not None and self._tat_seen < at:
            # the bucket looked idle: refill first (one write instead of a failed steady + refill)
            try:
                return slots(at, self._reserve(refill(cb_on), params, now))
            except ConditionFailed as failed:
                old = failed.old
        if old is None or ("tat" in old and at <= old["tat"] <= params["limit"] and (not cb_on or closed(old))):
            try:
                new = self._reserve(steady(cb_on), params, now)
                return slots(new["tat"] - k * T, new)  # a slot before the arrival = conforming (burst)
            except ConditionFailed as failed:
                old = failed.old
        fits = 1 + int((at + tau + wait - float(old.get("tat", at))) / T) if "tat" in old else 0
        if 1 <= fits < k and old["tat"] >= at and (not cb_on or closed(old)):
            # the whole group would reach beyond wait_timeout: slots for the first ones only
            part = {**params, "T": fits * T, "limit": at + tau + wait - (fits - 1) * T}
            try:
                new = self._reserve(steady(cb_on), part, now)
                return slots(new["tat"] - fits * T, new)[:fits] + [Grant(None, at, 0, new)] * (k - fits)
            except ConditionFailed as failed:
                old = failed.old
        if (not cb_on or closed(old)) and ("tat" not in old or old["tat"] < at):
            try:
                return slots(at, self._reserve(refill(cb_on), params, now))
            except ConditionFailed as failed:
                old = failed.old
        return [Grant(None, at, 0, old)] * k

    def _reserve(self, t: Transition, params: dict[str, Any], started: float) -> dict[str, Any]:
        """One conditional update of the bucket; learns the store's round trip and the tat."""
        try:
            new = self.state.update(t, params)
        except ConditionFailed as failed:
            self._learn(started, failed.old.get("tat"))
            raise
        self._learn(started, new.get("tat"))
        return new

    def _learn(self, started: float, tat: float | None) -> None:
        delay = max(0.0, self.clock() - started)
        with self._learn_lock:
            self._delays.append(delay)
            if len(self._delays) > DELAY_SAMPLES:
                del self._delays[0]
            ordered = sorted(self._delays)
            self._ahead = ordered[int(0.9 * (len(ordered) - 1))]
            self._tat_seen = tat

    def _on_time(self, slot: float, tolerance: float) -> bool:
        """Sleep until ``slot``; True when the caller can send within ``tolerance`` of it."""
        wait = slot - self.clock()
        if wait > 1e-4:  # (below: float noise on epoch seconds)
            self.sleep(wait)
        return self.clock() - slot <= tolerance
