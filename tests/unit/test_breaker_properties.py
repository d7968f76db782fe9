"""The circuit breaker follows its settings exactly: a property test over random interleavings
of threads and outcomes against a simple sequential model of the rules.

Rules (the model): closed, ``failure_threshold`` failures in a row open it and any success
ends the streak; open, calls are refused until ``timeout`` has passed, then it is half-open:
at most ``max_concurrent`` trial calls at once (a trial whose lease ran out is taken over),
``success_threshold`` trial successes close it, one trial failure opens it again. Outcomes of
calls whose permit belongs to an earlier state (a closed permit recorded while open, a trial of
an earlier half-open period) change nothing; 429s and local errors are neutral.

Each thread of the schedule is a real thread; a conductor lets them act one step at a time in
the generated order (acquire a permit, later record its outcome), so every interleaving of
permits and outcomes is reachable and the result is checked after every step.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.errors import CircuitOpen
from reconciler.resilience import ApiPolicy, BreakerConfig, RateLimit, Resilience, RetryPolicy


@dataclass
class Model:
    ft: int
    st: int
    mc: int
    timeout: float
    lease: float
    state: str = "closed"
    failures: int = 0
    successes: int = 0
    inflight: int = 0
    opened_at: float = 0.0
    half_until: float = 0.0

    def acquire(self, now: float) -> tuple[str, float] | None:
        if self.state == "closed":
            return ("closed", 0.0)
        if self.state == "open":
            if now < self.opened_at + self.timeout:
                return None
            self.state, self.successes, self.inflight, self.half_until = "half_open", 0, 1, now + self.lease
            return ("trial", self.opened_at)
        if self.inflight < self.mc:
            self.inflight += 1
            return ("trial", self.opened_at)
        if self.half_until < now:
            self.inflight, self.half_until = 1, now + self.lease
            return ("trial", self.opened_at)
        return None

    def record(self, permit: tuple[str, float], outcome: str, now: float) -> None:
        kind, period = permit
        if kind == "closed":
            if self.state != "closed":
                return
            if outcome == "success":
                self.failures = 0
            elif outcome == "failure":
                self.failures += 1
                if self.failures >= self.ft:
                    self._open(now)
            return
        if self.state != "half_open" or period != self.opened_at:
            return
        if outcome == "success":
            self.successes += 1
            self.inflight -= 1
            if self.successes >= self.st:
                self.state, self.failures, self.successes, self.inflight = "closed", 0, 0, 0
        elif outcome == "failure":
            self._open(now)
        elif self.inflight > 0:
            self.inflight -= 1

    def _open(self, now: float) -> None:
        self.state, self.opened_at, self.successes, self.inflight = "open", now, 0, 0

    def observed(self) -> dict:
        if self.state == "closed":
            return {"cb": "closed", "failures": self.failures}
        if self.state == "open":
            return {"cb": "open"}
        return {"cb": "half_open", "successes": self.successes, "inflight": self.inflight}


def observed(raw: dict) -> dict:
    cb = raw.get("cb", "closed")
    if cb == "closed":
        return {"cb": "closed", "failures": int(raw.get("failures", 0))}
    if cb == "open":
        return {"cb": "open"}
    return {"cb": "half_open", "successes": int(raw.get("successes", 0)), "inflight": int(raw.get("inflight", 0))}


class Conductor:
    """Real threads, one step at a time, in the schedule's order."""

    def __init__(self) -> None:
        self.turn = 0
        self.cond = threading.Condition()

    def wait_for(self, step: int) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self.turn == step)

    def done(self) -> None:
        with self.cond:
            self.turn += 1
            self.cond.notify_all()


steps = st.lists(st.tuples(st.integers(0, 4), st.sampled_from(["success", "failure", "failure", "neutral"]),
                           st.sampled_from([0.001, 0.01, 0.5, 1.0, 2.5, 6.0])), min_size=1, max_size=80)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ft=st.integers(1, 4), st_=st.integers(1, 3), mc=st.integers(1, 3), timeout=st.sampled_from([1.0, 3.0, 5.0]),
       rate_on=st.booleans(), schedule=steps)
def test_breaker_matches_the_sequential_model(ft, st_, mc, timeout, rate_on, schedule):
    now = [1_800_000_000.0]
    rl = RateLimit(requests_per_second=1e6, burst=1_000_000, wait_timeout=5) if rate_on else RateLimit()
    policy = ApiPolicy(api="vault", timeout=2, rate_limit=rl,
                       circuit_breaker=BreakerConfig(True, ft, st_, timeout, mc), retry=RetryPolicy(max_attempts=1))
    guard = Resilience(policy, None, clock=lambda: now[0], sleep=lambda s: None, local_state={}).guard
    model = Model(ft, st_, mc, timeout, guard.half_open_lease)

    # each step: advance the clock, then the step's thread acquires (if idle) or records its outcome
    per_thread: dict[int, list[int]] = {}
    for i, (thread, _outcome, _dt) in enumerate(schedule):
        per_thread.setdefault(thread, []).append(i)
    conductor = Conductor()
    mismatches: list[str] = []
    held: dict[int, tuple] = {}

    def act(thread: int) -> None:
        for i in per_thread[thread]:
            conductor.wait_for(i)
            try:
                _t, outcome, dt = schedule[i]
                now[0] += dt
                if thread not in held:
                    want = model.acquire(now[0])
                    try:
                        permit = guard.acquire()
                    except CircuitOpen:
                        permit = None
                    if (permit is None) != (want is None) or (permit and permit.kind != want[0]):
                        mismatches.append(f"step {i}: acquire gave {permit and permit.kind}, model {want}")
                    if permit is not None and want is not None:
                        held[thread] = (permit, want)
                else:
                    permit, want = held.pop(thread)
                    guard.record(permit, outcome)
                    model.record(want, outcome, now[0])
                got, expect = observed(guard.state.read()), model.observed()
                if got != expect:
                    mismatches.append(f"step {i} ({outcome}): guard {got}, model {expect}")
            finally:
                conductor.done()

    threads = [threading.Thread(target=act, args=(t,)) for t in per_thread]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not mismatches, mismatches[:3]


@dataclass
class _Scattered:
    """The issue's case: scattered failures (never two in a row overall) with many threads in flight."""

    outcomes: list[str] = field(default_factory=lambda: (["failure"] + ["success"] * 4) * 40)


def test_scattered_failures_never_open_it_whatever_the_permits_saw():
    now = [1_800_000_000.0]
    policy = ApiPolicy(api="vault", circuit_breaker=BreakerConfig(True, 5, 2, 45, 3), retry=RetryPolicy(max_attempts=1))
    guard = Resilience(policy, None, clock=lambda: now[0], sleep=lambda s: None, local_state={}).guard
    permits = [guard.acquire() for _ in range(8)]  # 8 calls in flight, all took their permit before any failure
    for i, outcome in enumerate(_Scattered().outcomes):
        guard.record(permits[i % 8], outcome)
        permits[i % 8] = guard.acquire()
        now[0] += 0.1
    assert guard.current() == "closed"
