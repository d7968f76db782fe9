"""Retry policy, rate limiter and circuit breaker: every setting changes behaviour.

A fake clock (advanced by the fake sleep) makes the timing exact without sleeping; the
DynamoDB backend runs on moto, the in-process fallback on a private dict.
"""

import random
import threading

import boto3
import pytest
import requests
from moto import mock_aws

from reconciler.config.models import Settings
from reconciler.errors import (
    CircuitOpen,
    ExternalAPIError,
    InvalidInput,
    NotFound,
    RateLimited,
    Unauthorized,
    Unavailable,
    VaultSealed,
)
from reconciler.resilience import ApiPolicy, BreakerConfig, RateLimit, Resilience, RetryPolicy
from reconciler.resilience.limiter import BREAKER_RECHECK_S
from reconciler.store import Store, create_tables


class Clock:
    def __init__(self, now=1_800_000_000.0):
        self.now = now
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(monkeypatch, clock):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "eu-west-1"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-west-1")
        create_tables(client, "cache", "state")
        yield Store("cache", "state", client, clock=clock)


def policy(rps=0.0, burst=1, wait_timeout=5.0, breaker=None, retry=None, api="cf", endpoint="prod"):
    return ApiPolicy(api=api, endpoint=endpoint, timeout=5,
                     rate_limit=RateLimit(requests_per_second=rps, burst=burst, wait_timeout=wait_timeout),
                     circuit_breaker=breaker or BreakerConfig(enabled=False),
                     retry=retry or RetryPolicy(max_attempts=1, initial_delay=0.1, max_delay=1, jitter=0))


def make(pol, clock, store=None, **kw):
    if store is None:
        kw.setdefault("local_state", {})
    return Resilience(pol, store, clock=clock, sleep=clock.sleep, rng=random.Random(1), **kw)


def failing(exc, calls):
    def fn():
        calls.append(1)
        raise exc
    return fn


# --- settings are read from the typed Settings model ------------------------------------


def test_policy_from_settings_reads_every_key():
    settings = Settings.model_validate({"reconciler": {
        "apis": {"bosh": {"rate_limit": {"requests_per_second": 7, "burst": 3, "wait_timeout": 2.5},
                          "circuit_breaker": {"enabled": False, "failure_threshold": 9, "success_threshold": 4,
                                              "timeout": 12, "max_concurrent": 2},
                          "timeout": 11, "max_connections": 6, "keep_alive": 20}},
        "retry": {"max_attempts": 4, "initial_delay": 0.5, "max_delay": 8, "multiplier": 3, "jitter": 0.2,
                  "retryable_errors": ["flaky"]}}})
    p = ApiPolicy.from_settings(settings, "bosh", "dir1")
    assert p.name == "bosh:dir1" and p.timeout == 11 and p.max_connections == 6 and p.keep_alive == 20
    assert p.rate_limit == RateLimit(7, 3, 2.5)
    assert p.circuit_breaker == BreakerConfig(False, 9, 4, 12, 2)
    assert p.retry == RetryPolicy(4, 0.5, 8, 3, 0.2, ("flaky",))
    # mappings work too, and missing keys fall back to the spec's example values
    p2 = ApiPolicy.from_settings({"reconciler": {"apis": {"vault": {"timeout": 3}}}}, "vault")
    assert p2.timeout == 3 and p2.rate_limit.requests_per_second == 50 and p2.retry.max_attempts == 3


# --- retry policy ----------------------------------------------------------------------


def test_backoff_follows_initial_delay_multiplier_and_max_delay():
    r = RetryPolicy(initial_delay=1, multiplier=2, max_delay=5, jitter=0)
    assert [r.delay(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]
    r3 = RetryPolicy(initial_delay=0.5, multiplier=3, max_delay=100, jitter=0)
    assert [r3.delay(n) for n in range(1, 4)] == [0.5, 1.5, 4.5]
    rj = RetryPolicy(initial_delay=10, multiplier=1, max_delay=100, jitter=0.1)
    delays = [rj.delay(1, random.Random(i)) for i in range(200)]
    assert min(delays) >= 9 and max(delays) <= 11 and len(set(delays)) > 100


@pytest.mark.parametrize("attempts", [1, 3, 5])
def test_retries_stop_at_max_attempts(clock, attempts):
    res = make(policy(retry=RetryPolicy(max_attempts=attempts, initial_delay=0.1, multiplier=2, max_delay=10,
                                        jitter=0)), clock)
    calls = []
    with pytest.raises(Unavailable):
        res.call(failing(Unavailable("cf GET /v3/x: HTTP 503", api="cf", status=503), calls))
    assert len(calls) == attempts
    assert clock.slept == [0.1 * 2 ** i for i in range(attempts - 1)]
    assert res.take_counts() == {"api_requests_total__cf": attempts, "api_errors_total__cf": attempts}


@pytest.mark.parametrize("exc", [
    NotFound("cf GET /v3/service_instances/x: HTTP 404", api="cf", status=404),
    Unauthorized("HTTP 401", api="cf", status=401),
    ExternalAPIError("HTTP 422 temporary timeout", api="cf", status=422),  # patterns never override a 4xx
    InvalidInput("malformed body"),
    VaultSealed("vault sealed", api="vault", status=503),
])
def test_never_retried(clock, exc):
    res = make(policy(retry=RetryPolicy(max_attempts=5, initial_delay=0.1, jitter=0)), clock)
    calls = []
    with pytest.raises(type(exc)):
        res.call(failing(exc, calls))
    assert len(calls) == 1 and clock.slept == []


@pytest.mark.parametrize("exc", [
    Unavailable("cf GET /v3/x: timeout (ReadTimeout)", api="cf"),
    Unavailable("HTTP 502", api="cf", status=502),
    Unavailable("HTTP 504", api="cf", status=504),
    requests.ConnectionError("refused"),
    requests.ReadTimeout("read timed out"),
])
def test_transport_errors_and_gateway_statuses_are_retried(clock, exc):
    res = make(policy(retry=RetryPolicy(max_attempts=3, initial_delay=0.1, jitter=0)), clock)
    calls = []
    with pytest.raises(Unavailable) as info:
        res.call(failing(exc, calls), what="GET /v3/x")
    assert len(calls) == 3
    if isinstance(exc, requests.RequestException):
        assert "GET /v3/x" in str(info.value)


def test_retryable_error_patterns_decide_other_errors(clock):
    err = Unavailable("vault PUT secret/x: HTTP 500 (temporary storage glitch)", api="vault", status=500)
    with_pattern = make(policy(retry=RetryPolicy(max_attempts=3, initial_delay=0.1, jitter=0,
                                                 retryable_errors=("temporary",))), clock)
    calls = []
    with pytest.raises(Unavailable):
        with_pattern.call(failing(err, calls))
    assert len(calls) == 3
    without = make(policy(retry=RetryPolicy(max_attempts=3, initial_delay=0.1, jitter=0, retryable_errors=())), clock)
    calls = []
    with pytest.raises(Unavailable):
        without.call(failing(err, calls))
    assert len(calls) == 1
    regex = make(policy(retry=RetryPolicy(max_attempts=2, initial_delay=0.1, jitter=0,
                                          retryable_errors=(r"dead ?lock",))), clock)
    calls = []
    with pytest.raises(RuntimeError):
        regex.call(failing(RuntimeError("deadlock detected"), calls))
    assert len(calls) == 2


def test_429_honours_retry_after_up_to_max_delay(clock):
    res = make(policy(retry=RetryPolicy(max_attempts=3, initial_delay=0.1, max_delay=5, jitter=0)), clock)
    calls = []
    result = []

    def fn():
        calls.append(1)
        if len(calls) < 3:
            raise RateLimited("HTTP 429", api="cf", status=429, retry_after=2)
        result.append("ok")
        return "ok"

    assert res.call(fn) == "ok" and len(calls) == 3
    assert clock.slept == [2, 2]  # Retry-After (2 s) wins over the backoff (0.1, 0.2)
    calls = []
    with pytest.raises(RateLimited):  # the server asks for longer than max_delay: give up at once
        res.call(failing(RateLimited("HTTP 429", api="cf", status=429, retry_after=60), calls))
    assert len(calls) == 1


# --- rate limiter ----------------------------------------------------------------------


def max_in_window(times, width=1.0):
    """Most events in any window (t - width, t]."""
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - width + 1e-9:
            j += 1
        best = max(best, i - j + 1)
    return best


@pytest.mark.parametrize("backend", ["local", "dynamodb"])
@pytest.mark.parametrize("rps,burst", [(20, 10), (5, 1), (10, 4)])
def test_rate_limit_bounds_every_window(request, clock, backend, rps, burst):
    store = request.getfixturevalue("store") if backend == "dynamodb" else None
    workers = [make(policy(rps=rps, burst=burst, wait_timeout=100), clock, store) for _ in range(4)]
    if store is None:  # the four share one in-process state
        shared = workers[0].guard.state._items
        for w in workers:
            w.guard.state._items = shared
    grants = []
    for i in range(3 * rps):
        workers[i % 4].call(lambda: None)
        grants.append(clock.now)
    assert sum(1 for t in grants if t == grants[0]) == burst  # exactly `burst` at once
    assert max_in_window(grants) <= rps + burst
    # steady state: one request per 1/rps
    assert grants[-1] - grants[-2] == pytest.approx(1 / rps)


@pytest.mark.parametrize("wait_timeout", [0.0, 0.5, 1.0])
def test_wait_timeout_bounds_how_far_ahead_a_slot_may_be(clock, store, wait_timeout):
    res = make(policy(rps=10, burst=3, wait_timeout=wait_timeout), clock, store)
    res.guard.sleep = lambda s: None  # the callers never get anywhere: time stands still
    granted = 0
    with pytest.raises(RateLimited) as info:
        for _ in range(100):
            res.call(lambda: None)
            granted += 1
    assert granted == 3 + round(wait_timeout * 10)
    assert info.value.status is None and "wait_timeout" in str(info.value)


def test_rate_limit_off_costs_nothing(clock, store):
    res = make(policy(rps=0), clock, store)
    for _ in range(50):
        res.call(lambda: None)
    assert clock.slept == [] and res.guard.state.writes == 0 and res.guard.state.reads == 0


class CountingClient:
    """The boto3 DynamoDB client (moto) counting the UpdateItem calls actually sent."""

    def __init__(self, client):
        self.client, self.update_items = client, 0

    def update_item(self, **kwargs):
        self.update_items += 1
        return self.client.update_item(**kwargs)

    def __getattr__(self, name):
        return getattr(self.client, name)


def test_steady_traffic_leases_slots_at_most_a_quarter_write_per_request(clock, store):
    """Steady traffic at the rate: slots are leased in groups, <= 0.25 UpdateItem per request
    (it was 1.025: one reservation each plus the first fill)."""
    counting = CountingClient(store.client)
    store.client = counting
    res = make(policy(rps=20, burst=5, wait_timeout=10, breaker=BreakerConfig(True, 3, 2, 30, 1)), clock, store)
    grants = []
    for _ in range(200):
        res.call(lambda: grants.append(clock.now))
    # leased slots reread the breaker (one GetItem, no write) once per BREAKER_RECHECK_S (4 slots at
    # 20/s; 182 reads when each leased slot read it); a reserved one learns it from its write
    assert 0 < res.guard.state.reads <= 200 // 4
    print(f"\nlimiter: {counting.update_items} UpdateItem, {res.guard.state.reads} GetItem for 200 requests")
    assert counting.update_items / 200 <= 0.25 and counting.update_items == res.guard.state.writes
    assert max_in_window(grants) <= 20 + 5


def test_a_breaker_that_opened_stops_requests_holding_leased_slots(clock, store):
    """A Lambda holds leased slots (reserved while the breaker was closed); another Lambda's
    failures open the breaker: once the last closed reading is ``BREAKER_RECHECK_S`` old (one
    reread vouches for the leased slots used within that window) the next request is refused
    without touching the network, and the lease is dropped."""
    cfg = BreakerConfig(enabled=True, failure_threshold=3, success_threshold=2, timeout=30, max_concurrent=1)
    a = make(policy(rps=20, burst=5, wait_timeout=10, breaker=cfg), clock, store)
    for _ in range(60):  # steady traffic: the burst is spent, slots are leased ahead
        a.call(lambda: None)
    assert a.guard._lease, "the test needs a lease held"
    held_until = a.guard._lease[-1].slot
    other = make(policy(breaker=cfg), clock, store)  # another Lambda (its rate limit off: no slot, no clock)
    calls: list[float] = []
    down = failing(Unavailable("HTTP 503", api="cf", status=503), calls)
    for _ in range(3):
        with pytest.raises(Unavailable):
            other.call(down)
    assert a.guard.current() == "open"
    calls.clear()
    seen = a.guard._breaker_seen
    vouched_until = seen[0] + BREAKER_RECHECK_S if seen else clock.now - 1
    with pytest.raises(CircuitOpen):
        for _ in range(20):
            a.call(lambda: calls.append(clock.now))
    # only the slots the last closed reading vouched for went out (at most rate x window of them)
    assert all(t <= vouched_until for t in calls) and len(calls) <= 20 * BREAKER_RECHECK_S + 1
    assert clock.now < held_until and not a.guard._lease  # refused on a leased slot still on time


def test_a_lambdas_own_failure_ends_the_breaker_readings_window(clock, store):
    """The guard's own failure ends the window at once: its breaker may have just opened."""
    cfg = BreakerConfig(enabled=True, failure_threshold=1, success_threshold=2, timeout=30, max_concurrent=1)
    a = make(policy(rps=20, burst=5, wait_timeout=10, breaker=cfg), clock, store)
    for _ in range(60):
        a.call(lambda: None)
    assert a.guard._lease and a.guard._breaker_seen is not None
    calls: list[float] = []
    with pytest.raises(Unavailable):
        a.call(failing(Unavailable("HTTP 503", api="cf", status=503), calls))
    assert a.guard._breaker_seen is None and a.guard.current() == "open"
    calls.clear()
    with pytest.raises(CircuitOpen):
        a.call(lambda: calls.append(clock.now))
    assert calls == []


def test_leases_of_several_lambdas_keep_the_bound(clock, store):
    """Several guards (simulated Lambdas) leasing from one table, each serving bursts of its
    own callers: every 1-s window stays within rate + burst, and slots a Lambda leased but did
    not use expire with their time (a later window does not get them)."""
    lambdas = [make(policy(rps=20, burst=5, wait_timeout=10), clock, store) for _ in range(3)]
    rng = random.Random(7)
    grants = []
    for _ in range(400):
        lam = lambdas[rng.randrange(3)]
        lam.call(lambda: grants.append(clock.now))
        if rng.random() < 0.05:
            clock.now += rng.choice([0.3, 1.5])  # a pause: some leased slots expire unused
    assert max_in_window(grants) <= 20 + 5


class SlowStore:
    """The store with a round trip: each guard write takes ``rtt`` seconds of the fake clock."""

    def __init__(self, store, clock, rtt):
        self.store, self.clock, self.rtt = store, clock, rtt

    def guard_update(self, name, **kwargs):
        self.clock.now += self.rtt / 2
        try:
            return self.store.guard_update(name, **kwargs)
        finally:
            self.clock.now += self.rtt / 2

    def guard_state(self, name):
        return self.store.guard_state(name)


@pytest.mark.parametrize("rtt", [0.005, 0.03, 0.2])
def test_slow_store_costs_one_write_per_request_and_keeps_the_bound(clock, store, rtt):
    """A reservation whose answer comes back later than the lateness tolerance (10 ms) must not
    be thrown away and retried for every request: the arrival is placed one round trip ahead."""
    slow = SlowStore(store, clock, rtt)
    workers = [make(policy(rps=50, burst=5, wait_timeout=30), clock, slow) for _ in range(3)]
    grants = []
    for i in range(150):
        workers[i % 3].call(lambda: grants.append(clock.now))
    assert max_in_window(grants) <= 50 + 5
    writes = sum(w.guard.state.writes for w in workers)
    assert writes <= 150 + 3 * 3  # one per request; a few more while each worker learns the round trip


def test_idle_bucket_costs_one_write_per_request(clock, store):
    """Requests slower than the rate find the bucket refilled: one refill write, not a failed
    steady reservation followed by a refill."""
    res = make(policy(rps=100, burst=10, wait_timeout=5), clock, store)

    def slow_request():
        clock.now += 0.05  # each request takes longer than the emission interval
    for _ in range(30):
        res.call(slow_request)
    assert res.guard.state.writes <= 30 + 2


def test_local_fallback_divides_rate_by_share(clock):
    res = make(policy(rps=20, burst=8, wait_timeout=100), clock, share=4)
    grants = []
    for _ in range(20):
        res.call(lambda: None)
        grants.append(clock.now)
    assert sum(1 for t in grants if t == grants[0]) == 2  # burst 8 / 4
    assert grants[-1] - grants[-2] == pytest.approx(1 / 5)  # 20/s / 4


def test_concurrent_threads_share_the_dynamodb_bucket(store):
    """Real threads, real clock, moto shared between threads: grants never exceed the bound."""
    import time

    res = [Resilience(policy(rps=50, burst=5, wait_timeout=30), store) for _ in range(4)]
    grants, lock = [], threading.Lock()

    def sent():
        with lock:
            grants.append(time.time())  # the moment the "request" goes out

    def work(r):
        for _ in range(15):
            r.call(sent)

    threads = [threading.Thread(target=work, args=(r,)) for r in res]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(grants) == 60
    assert max_in_window(grants) <= 50 + 5


def test_threads_of_one_guard_share_the_bucket_within_the_bound(store):
    """A Lambda's worker threads share one guard (grouped reservations): still within the bound."""
    import time

    res = Resilience(policy(rps=50, burst=5, wait_timeout=30), store)
    grants, lock = [], threading.Lock()

    def sent():
        with lock:
            grants.append(time.time())

    def work():
        for _ in range(10):
            res.call(sent)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(grants) == 80
    assert max_in_window(grants) <= 50 + 5


class GatedStore:
    """Holds the first guard write until released, so other threads queue up behind it."""

    def __init__(self, store):
        self.store, self.entered, self.release, self.first = store, threading.Event(), threading.Event(), True

    def guard_update(self, name, **kwargs):
        if self.first:
            self.first = False
            self.entered.set()
            assert self.release.wait(10)
        return self.store.guard_update(name, **kwargs)

    def guard_state(self, name):
        return self.store.guard_state(name)


def test_waiting_threads_get_their_slots_from_one_write(store):
    import time

    gated = GatedStore(store)
    clock = Clock()  # time stands still: no slot is ever late, only the reservations count
    res = Resilience(policy(rps=100, burst=10, wait_timeout=5), gated, clock=clock, sleep=lambda s: None)
    permits, lock = [], threading.Lock()

    def take():
        permit = res.guard.acquire()
        with lock:
            permits.append(permit)

    leader = threading.Thread(target=take)
    leader.start()
    assert gated.entered.wait(10)
    followers = [threading.Thread(target=take) for _ in range(7)]
    for t in followers:
        t.start()
    deadline = time.monotonic() + 10
    while len(res.guard._queue) < 7 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(res.guard._queue) == 7
    gated.release.set()
    for t in [leader, *followers]:
        t.join(timeout=30)
    assert len(permits) == 8
    # the leader: a steady reservation on an empty item fails, then the refill; the 7 that
    # queued meanwhile: one write for all of them
    assert res.guard.state.writes == 3
    assert store.guard_state("cf:prod")["tat"] == pytest.approx(clock.now + 8 / 100)  # 8 slots taken


# --- circuit breaker -------------------------------------------------------------------


def test_breaker_opens_is_shared_and_closes_after_success_threshold(clock, store):
    cfg = BreakerConfig(enabled=True, failure_threshold=3, success_threshold=2, timeout=30, max_concurrent=1)
    a = make(policy(breaker=cfg), clock, store)
    b = make(policy(breaker=cfg), clock, store)  # another Lambda invocation
    calls = []
    down = failing(Unavailable("HTTP 503", api="cf", status=503), calls)
    for _ in range(2):
        with pytest.raises(Unavailable):
            a.call(down)
    assert b.guard.current() == "closed"
    with pytest.raises(Unavailable):
        b.call(down)  # third consecutive failure, from the other worker: opens
    assert a.guard.current() == "open"
    calls.clear()
    with pytest.raises(CircuitOpen, match="circuit open after 3 failures"):
        a.call(lambda: calls.append("network"))
    assert calls == []  # refused without touching the network
    assert store.get_breaker_states()["cf:prod"]["state"] == "open"
    clock.now += 31
    # half-open: max_concurrent=1 trial at a time
    permit = a.guard.acquire()
    assert permit.kind == "trial" and a.guard.current() == "half_open"
    with pytest.raises(CircuitOpen, match="half-open"):
        b.call(lambda: None)
    a.guard.record(permit, "success")
    assert b.guard.current() == "half_open"  # 1 success of 2
    b.call(lambda: "ok")
    assert a.guard.current() == "closed"
    a.call(lambda: "ok")


def test_breaker_half_open_failure_reopens_and_max_concurrent_admits_more(clock, store):
    cfg = BreakerConfig(enabled=True, failure_threshold=1, success_threshold=3, timeout=10, max_concurrent=2)
    a = make(policy(breaker=cfg), clock, store)
    with pytest.raises(Unavailable):
        a.call(failing(Unavailable("timeout", api="cf"), []))
    assert a.guard.current() == "open"
    clock.now += 10
    p1, p2 = a.guard.acquire(), a.guard.acquire()
    assert (p1.kind, p2.kind) == ("trial", "trial")
    with pytest.raises(CircuitOpen):
        a.guard.acquire()
    a.guard.record(p1, "failure")
    assert a.guard.current() == "open"
    with pytest.raises(CircuitOpen):
        a.call(lambda: None)


def test_breaker_lost_trial_lease_is_taken_over(clock, store):
    cfg = BreakerConfig(enabled=True, failure_threshold=1, success_threshold=1, timeout=10, max_concurrent=1)
    a = make(policy(breaker=cfg), clock, store)
    with pytest.raises(Unavailable):
        a.call(failing(Unavailable("timeout", api="cf"), []))
    clock.now += 10
    a.guard.acquire()  # this trial's invocation crashes: never records
    with pytest.raises(CircuitOpen):
        a.guard.acquire()
    clock.now += a.guard.half_open_lease + 1
    assert a.call(lambda: "ok") == "ok" and a.guard.current() == "closed"


def test_successes_reset_consecutive_failures_and_4xx_count_as_healthy(clock, store):
    cfg = BreakerConfig(enabled=True, failure_threshold=2, success_threshold=1, timeout=10, max_concurrent=1)
    a = make(policy(breaker=cfg), clock, store)
    for _ in range(3):
        with pytest.raises(Unavailable):
            a.call(failing(Unavailable("HTTP 502", api="cf", status=502), []))
        with pytest.raises(NotFound):  # the server answered: not a failure
            a.call(failing(NotFound("HTTP 404", api="cf", status=404), []))
    assert a.guard.current() == "closed"


@pytest.mark.parametrize("threshold", [1, 4])
def test_failure_threshold_setting(clock, threshold):
    a = make(policy(breaker=BreakerConfig(True, threshold, 1, 10, 1)), clock)
    for _ in range(threshold - 1):
        with pytest.raises(Unavailable):
            a.call(failing(Unavailable("HTTP 503", api="cf", status=503), []))
    assert a.guard.current() == "closed"
    with pytest.raises(Unavailable):
        a.call(failing(Unavailable("HTTP 503", api="cf", status=503), []))
    assert a.guard.current() == "open"


def test_breaker_disabled_never_opens(clock, store):
    a = make(policy(breaker=BreakerConfig(False, 1, 1, 10, 1)), clock, store)
    for _ in range(5):
        with pytest.raises(Unavailable):
            a.call(failing(Unavailable("HTTP 503", api="cf", status=503), []))
    assert a.call(lambda: "ok") == "ok" and a.guard.state.writes == 0


def test_breaker_timeout_setting(clock):
    for timeout, expect_open in ((5, False), (50, True)):
        a = make(policy(breaker=BreakerConfig(True, 1, 1, timeout, 1)), clock)
        with pytest.raises(Unavailable):
            a.call(failing(Unavailable("x", api="cf"), []))
        clock.now += 10
        if expect_open:
            with pytest.raises(CircuitOpen):
                a.call(lambda: None)
        else:
            assert a.call(lambda: "ok") == "ok"
