"""Timeouts, retries, a global rate limiter and a shared circuit breaker for every external API.

One :class:`Resilience` per API endpoint (``cf:<foundation>``, ``bosh:<director>``,
``vault``), built from the Settings (config/models.py) with :meth:`Resilience.from_settings`.
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

from .breaker import BreakerPath
from .guard import Guard, Permit
from .http_errors import error_for_status, from_requests_error, is_certificate_error
from .limiter import SlotReservations
from .policy import ApiPolicy, BreakerConfig, RateLimit, RetryPolicy
from .retry import RETRY_STATUSES, Resilience, per_member, take_all_counts
from .sessions import PolicyAdapter, chunked, make_session
from .state import ConditionFailed, DynamoGuardState, LocalGuardState, Transition, reset_local_state

__all__ = ["RETRY_STATUSES", "ApiPolicy", "BreakerConfig", "BreakerPath", "ConditionFailed", "DynamoGuardState",
           "Guard", "LocalGuardState", "Permit", "PolicyAdapter", "RateLimit", "Resilience", "RetryPolicy",
           "SlotReservations", "Transition", "chunked", "error_for_status", "from_requests_error",
           "is_certificate_error", "make_session", "per_member", "reset_local_state",
           "take_all_counts"]
