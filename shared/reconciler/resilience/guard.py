"""The guard of one API endpoint: rate limiter (limiter.py) and circuit breaker (breaker.py)
over one shared state item (state.py)."""

from __future__ import annotations

import math
import threading
import time

from reconciler.errors import RateLimited

from .breaker import BreakerPath, Permit
from .limiter import LATE_FLOOR_S, MAX_LATE_RETRIES, Grant, SlotReservations, Ticket
from .policy import ApiPolicy
from .state import DynamoGuardState, LocalGuardState, closed


class Guard(SlotReservations, BreakerPath):
    """Rate limiter and circuit breaker of one API endpoint over a shared state backend."""

    def __init__(self, policy: ApiPolicy, state: DynamoGuardState | LocalGuardState, *, clock=time.time,
                 sleep=time.sleep, share: int = 1):
        self.policy = policy
        self.state = state
        self.clock = clock
        self.sleep = sleep
        rl = policy.rate_limit
        share = max(1, int(share))
        self.rps = rl.requests_per_second / share
        self.burst = max(1, math.floor(rl.burst / share))
        self.breaker = policy.circuit_breaker
        self.half_open_lease = policy.timeout * max(1, policy.retry.max_attempts) + 5.0
        self._delays: list[float] = []  # recent reservation round trips (start -> caller running again)
        self._ahead = 0.0  # how far ahead of now a reservation places its arrival: their 90th percentile
        self._learn_lock = threading.Lock()
        self._tat_seen: float | None = None  # the bucket's tat as last seen by this guard
        self._group_lock = threading.Lock()
        self._queue: list[Ticket] = []  # threads waiting for the next group reservation
        self._leading = False  # a thread is reserving for a group right now
        self._lease: list[Grant] = []  # slots reserved ahead in the shared bucket, not handed out yet
        self._lease_k = 1  # slots the next reservation leases (grows while demand uses them on time)
        self._lease_expired = False  # a leased slot expired unused since the last lease
        self._breaker_seen: tuple[float, int] | None = None  # (when, failures): the last closed breaker reread
        self._record_lock = threading.Lock()  # breaker outcomes applied one at a time (breaker.py)
        self._streak = 0  # consecutive failures as this guard's last breaker write left them

    @property
    def name(self) -> str:
        return self.policy.name

    def acquire(self) -> Permit:
        """Reserve a rate-limit slot (sleeping until it comes) and pass the breaker.
        Raises ``RateLimited`` (slot beyond wait_timeout) or ``CircuitOpen`` (no network)."""
        rate_on = self.rps > 0
        cb_on = self.breaker.enabled
        if not rate_on and not cb_on:
            return Permit("free")
        late = 0
        for _ in range(50):  # contention or lateness: re-evaluate with fresh state
            now = self.clock()
            if not rate_on:
                old = self.state.read()
                if closed(old):
                    return Permit("closed", int(old.get("failures", 0)))
                return self._breaker_path(old, now)
            T = 1.0 / self.rps
            tau = (self.burst - 1) * T
            got = self._take(T, tau, cb_on)
            if got.slot is not None:
                if self._on_time(got.slot, max(T / 2, LATE_FLOOR_S)) or late >= MAX_LATE_RETRIES:
                    return Permit("closed" if cb_on else "free", got.failures, max(0.0, got.slot - now))
                late += 1
                continue  # woke or heard back too late: sending now could bunch with later slots; new slot
            old = got.old
            if cb_on and not closed(old):
                return self._breaker_path(old, self.clock())
            needed = float(old.get("tat", got.at)) - tau - got.at
            if needed > self.policy.rate_limit.wait_timeout:
                raise RateLimited(f"{self.name}: local rate limit {self.rps:g}/s (burst {self.burst}) needs a wait of "
                                  f"{needed:.2f}s, more than wait_timeout {self.policy.rate_limit.wait_timeout:g}s",
                                  api=self.policy.api, retry_after=needed)
        raise RateLimited(f"{self.name}: rate limiter state too contended", api=self.policy.api)

    def current(self) -> str:
        return self.state.read().get("cb", "closed")
