"""Each API endpoint's resilience settings (timeouts, rate limit, breaker, retries) and their defaults."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.config.models import CircuitBreaker, Retry, Settings

_RETRY = Retry()  # the defaults live in config/models.py, once
_BREAKER = CircuitBreaker()


def typed_settings(settings: Settings | Mapping[str, Any] | None) -> Settings:
    """The typed Settings (a mapping is validated as the configuration file would be)."""
    if settings is None:
        return Settings()
    if isinstance(settings, Settings):
        return settings
    return Settings.model_validate(settings)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = _RETRY.max_attempts
    initial_delay: float = _RETRY.initial_delay
    max_delay: float = _RETRY.max_delay
    multiplier: float = _RETRY.multiplier
    jitter: float = _RETRY.jitter  # +-10% of each delay
    retryable_errors: tuple[str, ...] = tuple(_RETRY.retryable_errors)

    @classmethod
    def from_settings(cls, retry: Retry) -> RetryPolicy:
        return cls(max_attempts=max(1, int(retry.max_attempts)), initial_delay=float(retry.initial_delay),
                   max_delay=float(retry.max_delay), multiplier=float(retry.multiplier), jitter=float(retry.jitter),
                   retryable_errors=tuple(retry.retryable_errors or ()))

    def patterns(self) -> list[re.Pattern[str]]:
        out = []
        for p in self.retryable_errors:
            try:
                out.append(re.compile(p, re.IGNORECASE))
            except re.error:
                out.append(re.compile(re.escape(p), re.IGNORECASE))
        return out

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Backoff before attempt ``attempt + 1`` (``attempt`` >= 1 failed attempts so far)."""
        base = min(self.max_delay, self.initial_delay * self.multiplier ** (attempt - 1))
        if self.jitter:
            base *= 1 + (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, min(self.max_delay, base))


@dataclass(frozen=True)
class RateLimit:
    requests_per_second: float = 0.0  # 0 or less: no limit
    burst: int = 1
    wait_timeout: float = 5.0

    @property
    def enabled(self) -> bool:
        return self.requests_per_second > 0


@dataclass(frozen=True)
class BreakerConfig:
    enabled: bool = _BREAKER.enabled
    failure_threshold: int = _BREAKER.failure_threshold
    success_threshold: int = _BREAKER.success_threshold
    timeout: float = _BREAKER.timeout  # open -> half-open after this many seconds
    max_concurrent: int = _BREAKER.max_concurrent  # trial calls at once while half-open


@dataclass(frozen=True)
class ApiPolicy:
    api: str
    endpoint: str = ""
    timeout: float = 30.0
    max_connections: int = 10
    keep_alive: float = 30.0
    rate_limit: RateLimit = field(default_factory=RateLimit)
    circuit_breaker: BreakerConfig = field(default_factory=BreakerConfig)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    health_timeout: float = 30.0  # unauthenticated probes (CF GET /, BOSH /info, Vault sys/health)

    @property
    def name(self) -> str:
        return f"{self.api}:{self.endpoint}" if self.endpoint else self.api

    @classmethod
    def from_settings(cls, settings: Settings | Mapping[str, Any] | None, api: str, endpoint: str = "") -> ApiPolicy:
        """``settings.reconciler.apis.<api>`` and ``settings.reconciler.retry`` (None: the defaults)."""
        rec = typed_settings(settings).reconciler
        a = rec.apis.get(api if api in ("bosh", "cf", "vault") else "cf")
        rl, cb = a.rate_limit, a.circuit_breaker
        return cls(
            api=api, endpoint=endpoint,
            timeout=float(a.timeout),
            max_connections=max(1, int(a.max_connections)),
            keep_alive=float(a.keep_alive),
            rate_limit=RateLimit(requests_per_second=float(rl.requests_per_second), burst=max(1, int(rl.burst)),
                                 wait_timeout=float(rl.wait_timeout)),
            circuit_breaker=BreakerConfig(enabled=bool(cb.enabled), failure_threshold=max(1, int(cb.failure_threshold)),
                                          success_threshold=max(1, int(cb.success_threshold)),
                                          timeout=float(cb.timeout), max_concurrent=max(1, int(cb.max_concurrent))),
            retry=RetryPolicy.from_settings(rec.retry),
            # reconciler.timeouts.health_check, never longer than the API's own timeout
            health_timeout=min(float(a.timeout), float(rec.timeouts.health_check)),
        )
