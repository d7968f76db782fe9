"""Each API endpoint's resilience settings (timeouts, rate limit, breaker, retries) and their defaults."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

API_DEFAULTS: dict[str, dict[str, float]] = {
    "bosh": {"rps": 10, "burst": 5, "wait": 5, "ft": 5, "st": 2, "cbt": 60, "mc": 1, "timeout": 30, "conns": 10},
    "cf": {"rps": 20, "burst": 10, "wait": 5, "ft": 3, "st": 2, "cbt": 30, "mc": 2, "timeout": 15, "conns": 20},
    "vault": {"rps": 50, "burst": 20, "wait": 3, "ft": 5, "st": 2, "cbt": 45, "mc": 3, "timeout": 10, "conns": 30},
}


def setting(obj: Any, name: str, default: Any = None) -> Any:
    """Read a setting from a settings object (attributes) or a mapping; duck-typed."""
    if obj is None:
        return default
    value = obj.get(name, default) if isinstance(obj, Mapping) else getattr(obj, name, default)
    if value is not None and hasattr(value, "total_seconds"):
        value = value.total_seconds()
    return default if value is None else value


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    initial_delay: float = 1.0
    max_delay: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.1  # +-10% of each delay
    retryable_errors: tuple[str, ...] = ("timeout", "connection refused", "rate limit", "temporary")

    @classmethod
    def from_settings(cls, retry: Any) -> RetryPolicy:
        d = cls()
        return cls(max_attempts=max(1, int(setting(retry, "max_attempts", d.max_attempts))),
                   initial_delay=float(setting(retry, "initial_delay", d.initial_delay)),
                   max_delay=float(setting(retry, "max_delay", d.max_delay)),
                   multiplier=float(setting(retry, "multiplier", d.multiplier)),
                   jitter=float(setting(retry, "jitter", d.jitter)),
                   retryable_errors=tuple(setting(retry, "retryable_errors", d.retryable_errors) or ()))

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
    enabled: bool = True
    failure_threshold: int = 5
    success_threshold: int = 2
    timeout: float = 60.0  # open -> half-open after this many seconds
    max_concurrent: int = 1  # trial calls at once while half-open


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
    def from_settings(cls, settings: Any, api: str, endpoint: str = "") -> ApiPolicy:
        """``settings`` is the Settings (``settings.reconciler.apis.<api>``,
        ``settings.reconciler.retry``) or its ``reconciler`` part; read duck-typed."""
        rec = setting(settings, "reconciler", settings)
        apis = setting(rec, "apis")
        a = setting(apis, api)
        d = API_DEFAULTS.get(api, API_DEFAULTS["cf"])
        rl, cb = setting(a, "rate_limit"), setting(a, "circuit_breaker")
        return cls(
            api=api, endpoint=endpoint,
            timeout=float(setting(a, "timeout", d["timeout"])),
            max_connections=max(1, int(setting(a, "max_connections", d["conns"]))),
            keep_alive=float(setting(a, "keep_alive", 30.0)),
            rate_limit=RateLimit(requests_per_second=float(setting(rl, "requests_per_second", d["rps"])),
                                 burst=max(1, int(setting(rl, "burst", d["burst"]))),
                                 wait_timeout=float(setting(rl, "wait_timeout", d["wait"]))),
            circuit_breaker=BreakerConfig(enabled=bool(setting(cb, "enabled", True)),
                                          failure_threshold=max(1, int(setting(cb, "failure_threshold", d["ft"]))),
                                          success_threshold=max(1, int(setting(cb, "success_threshold", d["st"]))),
                                          timeout=float(setting(cb, "timeout", d["cbt"])),
                                          max_concurrent=max(1, int(setting(cb, "max_concurrent", d["mc"])))),
            retry=RetryPolicy.from_settings(setting(rec, "retry")),
            # reconciler.timeouts.health_check, never longer than the API's own timeout
            health_timeout=min(float(setting(a, "timeout", d["timeout"])),
                               float(setting(setting(rec, "timeouts"), "health_check", 30.0))),
        )
