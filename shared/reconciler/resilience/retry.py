"""The per-endpoint facade: each call goes through the guard, failures are retried by policy."""

from __future__ import annotations

import logging
import random
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from reconciler.errors import (
    CircuitOpen,
    ExternalAPIError,
    RateLimited,
    ReconcilerError,
    Unavailable,
    VaultSealed,
)

from .guard import Guard
from .http_errors import from_requests_error
from .policy import ApiPolicy
from .state import DynamoGuardState, LocalGuardState

log = logging.getLogger("reconciler.resilience")
T = TypeVar("T")

# What each retried status or failure is, in the words of ``retry.retryable_errors`` (the
# spec's defaults: timeout, connection refused, rate limit, temporary): a kind is retried only
# while one of the patterns matches its name or the error's text.
TEMPORARY_STATUSES = frozenset({408, 500, 502, 503, 504})
RETRY_STATUSES = TEMPORARY_STATUSES | {429}
# without an idempotent request (a KV write without cas), only what surely was not processed
NOT_PROCESSED_STATUSES = frozenset({429, 503})


def failure_kind(exc: BaseException) -> str | None:
    """``timeout``, ``connection refused``, ``rate limit``, ``temporary`` or None (not a
    transient failure: never retried)."""
    if isinstance(exc, CircuitOpen | VaultSealed) or getattr(exc, "tls", False):
        return None
    if isinstance(exc, RateLimited):
        return "rate limit" if exc.status is not None else None  # None: our own limiter's wait_timeout
    if isinstance(exc, ExternalAPIError):
        if exc.status is not None:
            return "temporary" if exc.status in TEMPORARY_STATUSES else None
        if isinstance(exc, Unavailable):
            text = str(exc).lower()
            return "timeout" if "timeout" in text or "timed out" in text else "connection refused"
    return None


_LIVE: weakref.WeakSet[Resilience] = weakref.WeakSet()  # this process's, for take_all_counts


class Resilience:
    """Retry + rate limit + circuit breaker + counters for one API endpoint."""

    def __init__(self, policy: ApiPolicy, store: Any = None, *, clock=time.time, sleep=time.sleep,
                 share: int = 1, rng: random.Random | None = None, local_state: dict | None = None):
        self.policy = policy
        state = DynamoGuardState(store, policy.name) if store is not None else LocalGuardState(policy.name,
                                                                                               local_state)
        self.guard = Guard(policy, state, clock=clock, sleep=sleep, share=share if store is None else 1)
        self.sleep = sleep
        self.rng = rng or random.Random()
        self._patterns = policy.retry.patterns()
        self._lock = threading.Lock()
        self.requests = 0  # attempts that reached the network
        self.errors = 0  # attempts that failed
        self.retries = 0
        _LIVE.add(self)

    @classmethod
    def from_settings(cls, settings: Any, api: str, endpoint: str = "", store: Any = None, **kwargs: Any) -> Resilience:
        return cls(ApiPolicy.from_settings(settings, api, endpoint), store, **kwargs)

    # classification
    def outcome(self, exc: BaseException) -> str:
        if isinstance(exc, RateLimited):
            return "neutral"
        if isinstance(exc, Unavailable):
            return "failure"
        if isinstance(exc, ExternalAPIError):
            return "failure" if (exc.status or 0) >= 500 else "success"  # a 4xx answer: the server works
        return "neutral"

    def retryable(self, exc: BaseException, idempotent: bool = True) -> bool:
        """HTTP semantics, within ``retry.retryable_errors``: timeouts, connection errors, 408,
        500, 502-504 and 429 (its ``Retry-After`` no longer than ``max_delay``) are retried
        when repeating the request is safe (``idempotent``: reads, lists, deletes, KV writes
        with cas, which a replay turns into a clean conflict); otherwise only answers that
        say the request was not processed (429, 503) and connections that never got through.
        Never: other 4xx, CircuitOpen, VaultSealed, TLS verification failures, our own
        limiter's RateLimited, other domain errors (unless their text matches a pattern)."""
        kind = failure_kind(exc)
        if kind is None:
            if isinstance(exc, ReconcilerError):
                return False  # InvalidInput, ConfigError, CasConflict, a 4xx ...: retrying cannot help
            text = str(exc)  # not one of ours (a library's exception): the configured patterns decide
            return any(p.search(text) for p in self._patterns)
        if not any(p.search(kind) or p.search(str(exc)) for p in self._patterns):
            return False  # this kind is not in retry.retryable_errors
        after = exc.retry_after if isinstance(exc, RateLimited) else None
        if after is not None and after > self.policy.retry.max_delay:
            return False  # told to come back later than we would wait
        if idempotent:
            return True
        status = getattr(exc, "status", None)
        return status in NOT_PROCESSED_STATUSES or bool(getattr(exc, "not_sent", False))

    def _wait(self, state: RetryCallState) -> float:
        delay = self.policy.retry.delay(state.attempt_number, self.rng)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited) and exc.retry_after:
            delay = max(delay, exc.retry_after)  # honour Retry-After (retryable() capped it at max_delay)
        return delay

    def _before_sleep(self, state: RetryCallState) -> None:
        with self._lock:
            self.retries += 1
        exc = state.outcome.exception() if state.outcome else None
        log.info("%s: attempt %d failed (%s); retrying in %.2fs", self.policy.name, state.attempt_number,
                 type(exc).__name__, state.upcoming_sleep)

    def call(self, fn: Callable[[], T], *, what: str = "call", idempotent: bool = True) -> T:
        """Run ``fn`` with the guard and retries. Raises the final domain error. ``idempotent``
        False: a request that must not be repeated once the server may have processed it."""
        retrying = Retrying(stop=stop_after_attempt(self.policy.retry.max_attempts), wait=self._wait,
                            retry=retry_if_exception(lambda exc: self.retryable(exc, idempotent)), reraise=True,
                            sleep=self.sleep, before_sleep=self._before_sleep)
        return retrying(self._attempt, fn, what)

    def _attempt(self, fn: Callable[[], T], what: str) -> T:
        permit = self.guard.acquire()
        with self._lock:
            self.requests += 1
        try:
            result = fn()
        except BaseException as exc:
            mapped = from_requests_error(exc, self.policy.api, what) if isinstance(exc, requests.RequestException) \
                else exc
            with self._lock:
                self.errors += 1
            self.guard.record(permit, self.outcome(mapped))
            if mapped is exc:
                raise
            raise mapped from None
        self.guard.record(permit, "success")
        return result

    def take_counts(self) -> dict[str, int]:
        """Counters since the last call, named as ``Store.add_metrics`` takes them; flush them
        once per invocation (one write) instead of per request."""
        with self._lock:
            out = {f"api_requests_total__{self.policy.api}": self.requests,
                   f"api_errors_total__{self.policy.api}": self.errors}
            self.requests = self.errors = 0
        return out


def take_all_counts() -> dict[str, int]:
    """The request and error counters of every :class:`Resilience` of this process since the
    last call, also under the foundation or director each one serves (its endpoint): a handler
    flushes them once per invocation (``ContainerDeps.run``), so ``/b/metrics`` has them."""
    totals: dict[str, int] = {}
    for res in list(_LIVE):
        counts = res.take_counts()
        member = res.policy.endpoint.split(":", 1)[0]  # "<director>:uaa" counts for its director
        for key, value in (per_member(counts, member) if member else counts).items():
            totals[key] = totals.get(key, 0) + value
    return {k: v for k, v in totals.items() if v}


def per_member(counts: dict[str, int], member: str) -> dict[str, int]:
    """``counts`` (``take_counts``) with each request/error counter also under its foundation's
    or director's name (``api_requests_total__cf__m_<hex of the name>``: metric names take
    lower-case letters, digits and ``_`` only); ``/b/metrics`` labels them."""
    tag = member.encode().hex()
    return {**counts, **{f"{k}__m_{tag}": v for k, v in counts.items()
                         if k.startswith(("api_requests_total__", "api_errors_total__")) and tag}}
