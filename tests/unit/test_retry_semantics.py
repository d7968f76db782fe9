"""Retries per HTTP semantics and ``retry.retryable_errors``: what is retried, for which
requests (idempotent or not), and that each retryable kind can be switched off by the config."""

import random

import pytest
import requests

from reconciler.errors import CasConflict, NotFound, RateLimited, Rejected, TooLarge, Unavailable
from reconciler.resilience import ApiPolicy, BreakerConfig, Resilience, RetryPolicy
from reconciler.resilience.http_errors import from_requests_error

ALL = ("timeout", "connection refused", "rate limit", "temporary")


def guard(patterns=ALL, attempts=3):
    policy = ApiPolicy(api="vault", circuit_breaker=BreakerConfig(enabled=False),
                       retry=RetryPolicy(max_attempts=attempts, initial_delay=0.01, max_delay=5, jitter=0,
                                         retryable_errors=tuple(patterns)))
    slept = []
    g = Resilience(policy, None, local_state={}, sleep=slept.append, rng=random.Random(1))
    return g, slept


def attempts(g, exc, **kw):
    calls = []

    def fn():
        calls.append(1)
        raise exc
    with pytest.raises(type(exc)):
        g.call(fn, **kw)
    return len(calls)


def refused() -> requests.ConnectionError:
    try:
        requests.get("http://127.0.0.1:9", timeout=2)
    except requests.ConnectionError as exc:
        return exc
    raise AssertionError("port 9 answered")


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
def test_temporary_statuses_are_retried_for_idempotent_requests(status):
    g, _ = guard()
    assert attempts(g, Unavailable(f"HTTP {status}", api="vault", status=status)) == 3


@pytest.mark.parametrize("exc", [Unavailable("vault read x: timed out talking to v", api="vault"),
                                 Unavailable("vault read x: cannot connect to v", api="vault")])
def test_timeouts_and_connection_errors_are_retried(exc):
    g, _ = guard()
    assert attempts(g, exc) == 3


def test_429_waits_at_least_retry_after():
    g, slept = guard()
    assert attempts(g, RateLimited("HTTP 429", api="vault", status=429, retry_after=2.0)) == 3
    assert slept == [2.0, 2.0]
    g, _ = guard()
    assert attempts(g, RateLimited("HTTP 429", api="vault", status=429, retry_after=60.0)) == 1  # > max_delay


@pytest.mark.parametrize("exc", [NotFound("404", api="vault", status=404), Rejected("400", api="vault", status=400),
                                 TooLarge("413", api="vault", status=413), CasConflict("409", api="vault", status=409),
                                 RateLimited("our own limiter", api="vault")])
def test_never_retried(exc):
    g, _ = guard()
    assert attempts(g, exc) == 1


@pytest.mark.parametrize("status", [500, 502, 504])
def test_a_write_that_may_have_landed_is_not_repeated(status):
    g, _ = guard()
    assert attempts(g, Unavailable(f"HTTP {status}", api="vault", status=status), idempotent=False) == 1


def test_a_write_that_was_not_processed_is_repeated():
    g, _ = guard()
    assert attempts(g, Unavailable("HTTP 503", api="vault", status=503), idempotent=False) == 3
    assert attempts(g, RateLimited("HTTP 429", api="vault", status=429, retry_after=0), idempotent=False) == 3
    never = from_requests_error(refused(), "vault", "write x")
    assert never.not_sent and attempts(g, never, idempotent=False) == 3
    maybe = from_requests_error(requests.ReadTimeout("read timed out"), "vault", "write x")
    assert not maybe.not_sent and attempts(g, maybe, idempotent=False) == 1


@pytest.mark.parametrize("kind, exc", [
    ("temporary", Unavailable("HTTP 500", api="vault", status=500)),
    ("timeout", Unavailable("vault read x: timed out talking to v", api="vault")),
    ("connection refused", Unavailable("vault read x: cannot connect to v", api="vault")),
    ("rate limit", RateLimited("HTTP 429", api="vault", status=429, retry_after=0)),
])
def test_each_kind_follows_retryable_errors(kind, exc):
    g, _ = guard([k for k in ALL if k != kind])
    assert attempts(g, exc) == 1  # switched off by the config
    g, _ = guard([kind])
    assert attempts(g, exc) == 3
