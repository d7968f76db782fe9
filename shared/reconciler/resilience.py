"""Timeouts, retries, a global rate limiter and a shared circuit breaker for every external API.

One :class:`Resilience` per API endpoint (``cf:<foundation>``, ``bosh:<director>``,
``vault``), built from the settings (contract C) with :meth:`Resilience.from_settings`.
Adapters wrap each wire call::

    guard = Resilience.from_settings(settings, "vault", store=store)
    data = guard.call(lambda: read_secret(path), what=f"GET {path}")

``fn`` must raise domain errors (``reconciler.errors``; an ``ExternalAPIError`` carries the HTTP
``status``) or ``requests`` exceptions (mapped here). Each *attempt* goes through the guard:
the rate limiter reserves a slot (sleeping until it comes, or ``RateLimited`` when it is more
than ``wait_timeout`` away), the circuit breaker refuses at once with ``CircuitOpen`` when open,
and the outcome is recorded. Retries follow ``reconciler.retry``.

Shared state ("guard item", one per API endpoint, DynamoDB state table ``pk=guard``):

* rate limit: GCRA (a token bucket in one number): ``tat`` is the theoretical arrival time of
  the next request; emission interval ``T = 1/requests_per_second``, burst tolerance
  ``tau = (burst-1)*T``. A request *reserves* its slot with one conditional ``UpdateItem``
  (``SET tat = tat + T IF now <= tat <= now + tau + wait_timeout``) and sleeps until
  ``tat_old - tau``. Any window of length w therefore holds at most ``burst + rate*w`` slots,
  however many Lambdas share the item. A caller that wakes (or hears back) more than ``max(T/2, 10 ms)``
  after its slot drops it and reserves another, so late senders cannot bunch up with later
  slots (a missed slot is simply lost: conservative); after 3 such misses in a row the
  caller goes ahead, so a slow store cannot starve it.
* circuit breaker: ``cb`` (closed/open/half_open), ``failures``, ``successes``, ``opened_at``,
  ``inflight`` (half-open trials) and ``half_until`` (a lease, so a crashed trial cannot
  hold the breaker half-open forever). The closed check is folded into the rate-limit
  update's condition, so the common path costs ONE write and no read per request.

A reservation's arrival time is now + the 90th percentile of the guard's recent store
round trips (so a slot is not already late when the answer comes); a bucket last seen idle
is refilled directly; threads of one guard waiting at the same moment share one write
(``tat += k*T``, the same as k reservations in a row). None of this changes the bound.

DynamoDB cost per attempt: at most 1 conditional write (+1 when a guess about an idle
bucket was wrong; shared by the threads of a group); 0 writes on success in a healthy
closed breaker; +1 write per failure (+1 when it opens); half-open trials 2 writes. Rate
limiting disabled and breaker enabled: 1 strongly consistent read. Both disabled: nothing.
Without a store the same algorithms run in process (fallback: ``share`` divides rate and
burst, e.g. by the Map concurrency).
"""

from __future__ import annotations

import logging
import math
import random
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import requests
from botocore.exceptions import ClientError
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from urllib3.connection import HTTPConnection

from reconciler.errors import (
    CircuitOpen,
    ExternalAPIError,
    NotFound,
    PermissionDenied,
    RateLimited,
    ReconcilerError,
    Unauthorized,
    Unavailable,
    VaultSealed,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_STATUSES = frozenset({408, 429, 502, 503, 504})
LATE_FLOOR_S = 0.01  # lateness tolerated before a slot is given up (at least T/2)
MAX_LATE_RETRIES = 3  # then a late slot is used anyway (a slow store must not starve callers)
ARRIVAL_AHEAD_MAX_S = 0.25  # how far ahead of now a reservation may place its arrival (store latency)
DELAY_SAMPLES = 50  # reservation round trips remembered per guard for that estimate
MAX_GROUP = 16  # slots reserved in one write for threads of one guard waiting at the same moment
FOLLOW_WAIT_S = 2.0  # a thread waits this long for its group's reservation before reserving alone

# Fallbacks for a missing setting (the spec's example values); contract C supplies the real ones.
_API_DEFAULTS: dict[str, dict[str, float]] = {
    "bosh": {"rps": 10, "burst": 5, "wait": 5, "ft": 5, "st": 2, "cbt": 60, "mc": 1, "timeout": 30, "conns": 10},
    "cf": {"rps": 20, "burst": 10, "wait": 5, "ft": 3, "st": 2, "cbt": 30, "mc": 2, "timeout": 15, "conns": 20},
    "vault": {"rps": 50, "burst": 20, "wait": 3, "ft": 5, "st": 2, "cbt": 45, "mc": 3, "timeout": 10, "conns": 30},
}


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """Read a setting from a settings object (attributes) or a mapping; duck-typed."""
    if obj is None:
        return default
    value = obj.get(name, default) if isinstance(obj, Mapping) else getattr(obj, name, default)
    if value is not None and hasattr(value, "total_seconds"):
        value = value.total_seconds()
    return default if value is None else value


# --- configuration ---------------------------------------------------------------------


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
        return cls(max_attempts=max(1, int(_get(retry, "max_attempts", d.max_attempts))),
                   initial_delay=float(_get(retry, "initial_delay", d.initial_delay)),
                   max_delay=float(_get(retry, "max_delay", d.max_delay)),
                   multiplier=float(_get(retry, "multiplier", d.multiplier)),
                   jitter=float(_get(retry, "jitter", d.jitter)),
                   retryable_errors=tuple(_get(retry, "retryable_errors", d.retryable_errors) or ()))

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
        """``settings`` is contract C's Settings (``settings.reconciler.apis.<api>``,
        ``settings.reconciler.retry``) or its ``reconciler`` part; read duck-typed."""
        rec = _get(settings, "reconciler", settings)
        apis = _get(rec, "apis")
        a = _get(apis, api)
        d = _API_DEFAULTS.get(api, _API_DEFAULTS["cf"])
        rl, cb = _get(a, "rate_limit"), _get(a, "circuit_breaker")
        return cls(
            api=api, endpoint=endpoint,
            timeout=float(_get(a, "timeout", d["timeout"])),
            max_connections=max(1, int(_get(a, "max_connections", d["conns"]))),
            keep_alive=float(_get(a, "keep_alive", 30.0)),
            rate_limit=RateLimit(requests_per_second=float(_get(rl, "requests_per_second", d["rps"])),
                                 burst=max(1, int(_get(rl, "burst", d["burst"]))),
                                 wait_timeout=float(_get(rl, "wait_timeout", d["wait"]))),
            circuit_breaker=BreakerConfig(enabled=bool(_get(cb, "enabled", True)),
                                          failure_threshold=max(1, int(_get(cb, "failure_threshold", d["ft"]))),
                                          success_threshold=max(1, int(_get(cb, "success_threshold", d["st"]))),
                                          timeout=float(_get(cb, "timeout", d["cbt"])),
                                          max_concurrent=max(1, int(_get(cb, "max_concurrent", d["mc"])))),
            retry=RetryPolicy.from_settings(_get(rec, "retry")),
            # reconciler.timeouts.health_check, never longer than the API's own timeout
            health_timeout=min(float(_get(a, "timeout", d["timeout"])),
                               float(_get(_get(rec, "timeouts"), "health_check", 30.0))),
        )


# --- guard state backends ----------------------------------------------------------------


class ConditionFailed(Exception):
    def __init__(self, old: dict[str, Any]):
        super().__init__("condition failed")
        self.old = old


@dataclass(frozen=True)
class Transition:
    """One conditional state change, written twice: as a DynamoDB update expression (shared
    state) and as Python (in-process fallback), so both backends run the same algorithm."""

    name: str
    update: str
    condition: str
    values: tuple[str, ...]  # placeholders used by update + condition
    check: Callable[[dict[str, Any], dict[str, Any]], bool]
    apply: Callable[[dict[str, Any], dict[str, Any]], None]


def _closed(s: dict[str, Any]) -> bool:
    return s.get("cb", "closed") == "closed"


_CLOSED = "(attribute_not_exists(cb) OR cb = :closed)"


def _steady(breaker: bool) -> Transition:
    def check(s, p):
        return "tat" in s and p["now"] <= s["tat"] <= p["limit"] and (not breaker or _closed(s))

    def apply(s, p):
        s["tat"] = s["tat"] + p["T"]

    return Transition("steady", "SET tat = tat + :T",
                      "tat BETWEEN :now AND :limit" + (f" AND {_CLOSED}" if breaker else ""),
                      ("T", "now", "limit") + (("closed",) if breaker else ()), check, apply)


def _refill(breaker: bool) -> Transition:
    def check(s, p):
        return ("tat" not in s or s["tat"] < p["now"]) and (not breaker or _closed(s))

    def apply(s, p):
        s["tat"] = p["nowT"]

    return Transition("refill", "SET tat = :nowT",
                      "(attribute_not_exists(tat) OR tat < :now)" + (f" AND {_CLOSED}" if breaker else ""),
                      ("nowT", "now") + (("closed",) if breaker else ()), check, apply)


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
    "half_take", "ADD inflight :one", "cb = :half AND inflight < :max", ("one", "half", "max"),
    lambda s, p: s.get("cb") == "half_open" and s.get("inflight", 0) < p["max"], _add(inflight="one"))
HALF_STALE = Transition(
    "half_stale", "SET inflight = :one, half_until = :until", "cb = :half AND half_until < :now",
    ("one", "until", "half", "now"),
    lambda s, p: s.get("cb") == "half_open" and s.get("half_until", 0) < p["now"],
    _set(inflight="one", half_until="until"))
FAIL_CLOSED = Transition(
    "fail_closed", "ADD failures :one", _CLOSED, ("one", "closed"), lambda s, p: _closed(s), _add(failures="one"))
TRIP = Transition(
    "trip", "SET cb = :open, opened_at = :now, successes = :zero, inflight = :zero",
    f"{_CLOSED} AND failures >= :ft", ("open", "now", "zero", "closed", "ft"),
    lambda s, p: _closed(s) and s.get("failures", 0) >= p["ft"],
    _set(cb="open", opened_at="now", successes="zero", inflight="zero"))
RESET_FAILURES = Transition(
    "reset_failures", "SET failures = :zero", _CLOSED, ("zero", "closed"), lambda s, p: _closed(s),
    _set(failures="zero"))
TRIAL_OK = Transition(
    "trial_ok", "ADD successes :one, inflight :minus", "cb = :half", ("one", "minus", "half"),
    lambda s, p: s.get("cb") == "half_open", _add(successes="one", inflight="minus"))
CLOSE = Transition(
    "close", "SET cb = :closed, failures = :zero, successes = :zero, inflight = :zero",
    "cb = :half AND successes >= :st", ("closed", "zero", "half", "st"),
    lambda s, p: s.get("cb") == "half_open" and s.get("successes", 0) >= p["st"],
    _set(cb="closed", failures="zero", successes="zero", inflight="zero"))
TRIAL_FAIL = Transition(
    "trial_fail", "SET cb = :open, opened_at = :now, successes = :zero, inflight = :zero", "cb = :half",
    ("open", "now", "zero", "half"), lambda s, p: s.get("cb") == "half_open",
    _set(cb="open", opened_at="now", successes="zero", inflight="zero"))
TRIAL_NEUTRAL = Transition(
    "trial_neutral", "ADD inflight :minus", "cb = :half AND inflight > :zero", ("minus", "half", "zero"),
    lambda s, p: s.get("cb") == "half_open" and s.get("inflight", 0) > 0, _add(inflight="minus"))

_CONSTANTS = {"closed": "closed", "open": "open", "half": "half_open", "zero": 0, "one": 1, "minus": -1}


def _num(x: float) -> str:
    return repr(round(float(x), 6)) if isinstance(x, float) else str(x)


class DynamoGuardState:
    """Guard state in the DynamoDB state table (shared by every Lambda invocation)."""

    def __init__(self, store: Any, name: str):
        self.store, self.name = store, name
        self.writes = 0  # DynamoDB write requests made (cost figure)
        self.reads = 0

    def update(self, t: Transition, params: dict[str, Any]) -> dict[str, Any]:
        p = {**_CONSTANTS, **params}
        values = {}
        for key in t.values:
            v = p[key]
            values[f":{key}"] = {"S": v} if isinstance(v, str) else {"N": _num(v)}
        self.writes += 1
        try:
            return self.store.guard_update(self.name, UpdateExpression=t.update, ConditionExpression=t.condition,
                                           ExpressionAttributeValues=values)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            from reconciler.store import item_to_dict

            raise ConditionFailed(item_to_dict(exc.response.get("Item")) or {}) from None

    def read(self) -> dict[str, Any]:
        self.reads += 1
        return self.store.guard_state(self.name)


class LocalGuardState:
    """The same state in process memory (no store configured, or unit tests)."""

    _shared: dict[str, dict[str, Any]] = {}
    _lock = threading.Lock()

    def __init__(self, name: str, shared: dict[str, dict[str, Any]] | None = None):
        self.name = name
        self._items = self._shared if shared is None else shared
        self.writes = self.reads = 0

    def update(self, t: Transition, params: dict[str, Any]) -> dict[str, Any]:
        p = {**_CONSTANTS, **params}
        with self._lock:
            state = self._items.setdefault(self.name, {})
            if not t.check(state, p):
                raise ConditionFailed(dict(state))
            t.apply(state, p)
            return dict(state)

    def read(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._items.get(self.name, {}))


def reset_local_state() -> None:
    """Forget the in-process guard state (tests; a new "process")."""
    with LocalGuardState._lock:
        LocalGuardState._shared.clear()


# --- the guard: rate limiter + circuit breaker ------------------------------------------


@dataclass
class _Grant:
    """A reserved slot (``slot``), or no slot and the bucket's state (``old``) to decide on."""

    slot: float | None
    at: float  # the arrival time the reservation was made for
    failures: int = 0
    old: dict[str, Any] = field(default_factory=dict)


class _Ticket:
    """A thread waiting for a group reservation of its guard."""

    __slots__ = ("grant", "lead", "ready")

    def __init__(self) -> None:
        self.grant: _Grant | None = None
        self.lead = False
        self.ready = threading.Event()


@dataclass
class Permit:
    kind: str  # "free" (breaker off), "closed" or "trial" (half-open)
    failures: int = 0
    waited: float = 0.0


class Guard:
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
        self._queue: list[_Ticket] = []  # threads waiting for the next group reservation
        self._leading = False  # a thread is reserving for a group right now

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
                if _closed(old):
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
            if cb_on and not _closed(old):
                return self._breaker_path(old, self.clock())
            needed = float(old.get("tat", got.at)) - tau - got.at
            if needed > self.policy.rate_limit.wait_timeout:
                raise RateLimited(f"{self.name}: local rate limit {self.rps:g}/s (burst {self.burst}) needs a wait of "
                                  f"{needed:.2f}s, more than wait_timeout {self.policy.rate_limit.wait_timeout:g}s",
                                  api=self.policy.api, retry_after=needed)
        raise RateLimited(f"{self.name}: rate limiter state too contended", api=self.policy.api)

    def _take(self, T: float, tau: float, cb_on: bool) -> _Grant:
        """A slot for this caller, reserved together with those of every other thread of this
        guard waiting at the same moment: one thread (the leader) makes one conditional write
        for the whole group (``tat += k*T``), exactly as k reservations one after another."""
        ticket = _Ticket()
        with self._group_lock:
            self._queue.append(ticket)
            if not self._leading:
                self._leading = ticket.lead = True
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
        grants: list[_Grant | None] = [None] * len(group)
        try:
            grants = self._reserve_slots(len(group), T, tau, cb_on)
        finally:  # on an error the followers reserve alone (and meet the error themselves)
            with self._group_lock:
                for t, g in zip(group[1:], grants[1:], strict=True):
                    t.grant = g
                    t.ready.set()
                if self._queue:  # hand over: the next waiting thread leads the next group
                    self._queue[0].lead = True
                    self._queue[0].ready.set()
                else:
                    self._leading = False
        return grants[0] or self._reserve_slots(1, T, tau, cb_on)[0]

    def _reserve_slots(self, k: int, T: float, tau: float, cb_on: bool) -> list[_Grant]:
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

        def slots(tat_before: float, new: dict[str, Any]) -> list[_Grant]:
            failures = int(new.get("failures", 0))
            return [_Grant(max(at, tat_before + j * T - tau), at, failures) for j in range(k)]

        old = None
        if self._tat_seen is not None and self._tat_seen < at:
            # the bucket looked idle: refill first (one write instead of a failed steady + refill)
            try:
                return slots(at, self._reserve(_refill(cb_on), params, now))
            except ConditionFailed as failed:
                old = failed.old
        if old is None or ("tat" in old and at <= old["tat"] <= params["limit"] and (not cb_on or _closed(old))):
            try:
                new = self._reserve(_steady(cb_on), params, now)
                return slots(new["tat"] - k * T, new)  # a slot before the arrival = conforming (burst)
            except ConditionFailed as failed:
                old = failed.old
        fits = 1 + int((at + tau + wait - float(old.get("tat", at))) / T) if "tat" in old else 0
        if 1 <= fits < k and old["tat"] >= at and (not cb_on or _closed(old)):
            # the whole group would reach beyond wait_timeout: slots for the first ones only
            part = {**params, "T": fits * T, "limit": at + tau + wait - (fits - 1) * T}
            try:
                new = self._reserve(_steady(cb_on), part, now)
                return slots(new["tat"] - fits * T, new)[:fits] + [_Grant(None, at, 0, new)] * (k - fits)
            except ConditionFailed as failed:
                old = failed.old
        if (not cb_on or _closed(old)) and ("tat" not in old or old["tat"] < at):
            try:
                return slots(at, self._reserve(_refill(cb_on), params, now))
            except ConditionFailed as failed:
                old = failed.old
        return [_Grant(None, at, 0, old)] * k

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
                                          f"next trial in {opened + cb.timeout - now:.1f}s", api=self.policy.api)
                    self.state.update(OPEN_TO_HALF, {"until": now + self.half_open_lease, "seen": old["opened_at"]})
                    log.info("circuit %s half-open: trial call", self.name)
                    return Permit("trial")
                if int(old.get("inflight", 0)) < cb.max_concurrent:
                    self.state.update(HALF_TAKE, {"max": cb.max_concurrent})
                    return Permit("trial")
                if float(old.get("half_until", 0)) < now:  # trials lost (crashed invocation): take over
                    self.state.update(HALF_STALE, {"until": now + self.half_open_lease, "now": now})
                    return Permit("trial")
                raise CircuitOpen(f"{self.name}: circuit half-open with {int(old.get('inflight', 0))} trial call(s) "
                                  f"in flight (max_concurrent {cb.max_concurrent})", api=self.policy.api)
            except ConditionFailed as failed:
                old = failed.old
        raise CircuitOpen(f"{self.name}: circuit state too contended", api=self.policy.api)

    def record(self, permit: Permit, outcome: str) -> None:
        """``outcome``: ``success`` (answered, incl. 4xx), ``failure`` (timeout, connection, 5xx)
        or ``neutral`` (429, local errors)."""
        if permit.kind == "free" or not self.breaker.enabled:
            return
        now = self.clock()
        try:
            if permit.kind == "closed":
                if outcome == "success" and permit.failures:
                    self.state.update(RESET_FAILURES, {})
                elif outcome == "failure":
                    new = self.state.update(FAIL_CLOSED, {})
                    if int(new.get("failures", 0)) >= self.breaker.failure_threshold:
                        self.state.update(TRIP, {"now": now, "ft": self.breaker.failure_threshold})
                        log.warning("circuit %s opened after %d consecutive failures", self.name,
                                    int(new["failures"]))
            elif outcome == "success":
                new = self.state.update(TRIAL_OK, {})
                if int(new.get("successes", 0)) >= self.breaker.success_threshold:
                    self.state.update(CLOSE, {"st": self.breaker.success_threshold})
                    log.info("circuit %s closed after %d successful trials", self.name, int(new["successes"]))
            elif outcome == "failure":
                self.state.update(TRIAL_FAIL, {"now": now})
                log.warning("circuit %s re-opened: trial call failed", self.name)
            else:
                self.state.update(TRIAL_NEUTRAL, {})
        except ConditionFailed:
            pass  # another invocation changed the state first (opened, closed): theirs stands

    def current(self) -> str:
        return self.state.read().get("cb", "closed")


# --- error classification ----------------------------------------------------------------


def is_certificate_error(exc: BaseException) -> bool:
    """A TLS failure a retry cannot fix (the certificate or host name did not verify), as
    opposed to a handshake cut short by a peer that is down or restarting (EOF, reset)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        for arg in getattr(current, "args", ()):
            if isinstance(arg, BaseException):
                if is_certificate_error(arg):
                    return True
            elif isinstance(arg, str) and ("CERTIFICATE_VERIFY_FAILED" in arg or "certificate verify failed" in arg
                                           or "doesn't match" in arg):
                return True
        current = current.__cause__ or current.__context__
    return False


def from_requests_error(exc: requests.RequestException, api: str, what: str) -> ExternalAPIError:
    """A transport failure as a domain error (never the URL's query or any header)."""
    if isinstance(exc, requests.exceptions.SSLError) and not is_certificate_error(exc):
        return Unavailable(f"{api} {what}: connection closed during the TLS handshake (peer down?)", api=api)
    if isinstance(exc, requests.exceptions.SSLError):
        err = Unavailable(f"{api} {what}: TLS verification failed (check the configured CA certificate)", api=api)
        err.tls = True  # fails closed: never retried (retrying cannot fix a certificate)
        return err
    if isinstance(exc, requests.Timeout):
        return Unavailable(f"{api} {what}: timeout ({type(exc).__name__})", api=api)
    if isinstance(exc, requests.ConnectionError):
        return Unavailable(f"{api} {what}: connection error ({type(exc).__name__})", api=api)
    return Unavailable(f"{api} {what}: request failed ({type(exc).__name__})", api=api)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def error_for_status(response: requests.Response, api: str, what: str) -> ExternalAPIError:
    """Map an HTTP error answer to a domain error. The message names the API, method and path,
    status and a short reason from well-known error fields: never headers or request bodies."""
    status = response.status_code
    reason = _reason(response)
    msg = f"{api} {what}: HTTP {status}" + (f" ({reason})" if reason else "")
    if status == 401:
        return Unauthorized(msg, api=api, status=status)
    if status == 403:
        return PermissionDenied(msg, api=api, status=status)
    if status == 404:
        return NotFound(msg, api=api, status=status)
    if status == 429:
        return RateLimited(msg, api=api, status=status, retry_after=_retry_after(response.headers.get("Retry-After")))
    if status >= 500 or status == 408:
        return Unavailable(msg, api=api, status=status)
    return ExternalAPIError(msg, api=api, status=status)


def _reason(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        text = (response.text or "").strip().splitlines()
        return text[0][:120] if text and response.headers.get("Content-Type", "").startswith("text/") else ""
    parts: list[str] = []
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):  # CF v3
            parts += [str(errors[0].get(k)) for k in ("title", "detail") if errors[0].get(k)]
        elif isinstance(errors, list) and errors:  # Vault
            parts.append(str(errors[0]))
        for key in ("error", "description", "code"):  # UAA, BOSH
            if body.get(key) and not isinstance(body.get(key), dict | list):
                parts.append(str(body[key]))
    return ": ".join(parts)[:200]


# --- the per-endpoint facade ----------------------------------------------------------------


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


# --- HTTP sessions ------------------------------------------------------------------------


class PolicyAdapter(HTTPAdapter):
    """requests adapter applying the API's timeout (when the caller gives none), a bounded
    connection pool (``max_connections``; callers block for a free connection) and TCP
    keep-alive probes every ``keep_alive`` seconds."""

    def __init__(self, policy: ApiPolicy):
        self.policy = policy
        super().__init__(pool_connections=4, pool_maxsize=policy.max_connections, pool_block=True, max_retries=0)

    def init_poolmanager(self, connections, maxsize, block=False, **pool_kwargs):
        options = list(HTTPConnection.default_socket_options) + [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
        idle = max(1, int(self.policy.keep_alive))
        for opt in ("TCP_KEEPIDLE", "TCP_KEEPINTVL"):
            if hasattr(socket, opt):
                options.append((socket.IPPROTO_TCP, getattr(socket, opt), idle))
        pool_kwargs["socket_options"] = options
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        if timeout is None:
            timeout = self.policy.timeout
        return super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies)


def make_session(policy: ApiPolicy, *, verify: bool | str | None = None, ca_cert: str | None = None,
                 skip_ssl_validation: bool = False, user_agent: str = "blacksmith-reconciler") -> requests.Session:
    """A requests Session for one API endpoint. TLS is verified against ``ca_cert`` (a PEM file
    path) or the system CAs; ``skip_ssl_validation`` turns it off (logged loudly). ``verify``
    (what the config's ``tls_verify()`` returns: True, False or a CA path) overrides both."""
    if verify is not None:
        skip_ssl_validation = verify is False
        ca_cert = verify if isinstance(verify, str) else None
    session = requests.Session()
    adapter = PolicyAdapter(policy)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = user_agent
    session.trust_env = False  # no proxy/netrc surprises inside Lambda
    if skip_ssl_validation:
        log.warning("%s: TLS certificate verification disabled (skip_ssl_validation)", policy.name)
        session.verify = False
    elif ca_cert:
        session.verify = ca_cert
    return session


def chunked(items: Iterable[T], size: int) -> Iterable[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


__all__ = ["ApiPolicy", "BreakerConfig", "Guard", "Permit", "RateLimit", "Resilience", "RetryPolicy",
           "error_for_status", "from_requests_error", "make_session"]
