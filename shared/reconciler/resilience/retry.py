"""The per-endpoint facade: each call goes through the guard, failures are retried by policy."""

from __future__ import annotations

import logging
import random
import threading
import time
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

RETRY_STATUSES = frozenset({408, 429, 502, 503, 504})


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

    def retryable(self, exc: BaseException) -> bool:
        retry = self.policy.retry
        if isinstance(exc, CircuitOpen | VaultSealed) or getattr(exc, "tls", False):
            return False
        if isinstance(exc, RateLimited):
            if exc.status is None:
                return False  # our own limiter's wait_timeout elapsed
            return exc.retry_after is None or exc.retry_after <= retry.max_delay
        if isinstance(exc, ExternalAPIError):
            status = exc.status
            if status is not None and 400 <= status < 500:
                return status in RETRY_STATUSES  # 404, 401, 403, 409, 422 ...: never
            if status in RETRY_STATUSES:
                return True
            if status is None and isinstance(exc, Unavailable):
                return True  # timeout, connection refused/reset
        elif isinstance(exc, ReconcilerError):
            return False  # InvalidInput, ConfigError, CasConflict...: retrying cannot help
        text = str(exc)
        return any(p.search(text) for p in self._patterns)

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

    def call(self, fn: Callable[[], T], *, what: str = "call") -> T:
        """Run ``fn`` with the guard and retries. Raises the final domain error."""
        retrying = Retrying(stop=stop_after_attempt(self.policy.retry.max_attempts), wait=self._wait,
                            retry=retry_if_exception(self.retryable), reraise=True, sleep=self.sleep,
                            before_sleep=self._before_sleep)
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
