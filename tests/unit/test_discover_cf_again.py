"""DiscoverCF runs a foundation's discovery once more when it failed on a transient error (a
request failed all its retries, which with CF's failure_threshold 3 also opens its breaker),
waiting for the breaker's trial when that fits; other failures stay failed at once."""

from __future__ import annotations

from reconciler.cf import CFDiscovery
from reconciler.errors import CircuitOpen, InvalidInput, Unavailable
from reconciler.models import SourceStatus
from reconciler.phases import runtime
from reconciler.phases.discover_cf import discover_foundation


class Client:
    name = "cf"

    def __init__(self, *causes):
        self.causes, self.calls = list(causes), 0

    def discover(self, *, with_bindings: bool = True) -> CFDiscovery:
        self.calls += 1
        cause = self.causes.pop(0) if self.causes else None
        if cause is None:
            return CFDiscovery(foundation=self.name)
        return CFDiscovery(foundation=self.name, status=SourceStatus.FAILED, error=str(cause), cause=cause)


def budget(seconds: float) -> runtime.Budget:
    return runtime.Budget(None, reserve_s=0.0, timeout_s=seconds)


def test_a_request_that_failed_its_retries_gets_the_discovery_run_again_after_the_breaker_trial():
    client = Client(Unavailable("GET /v3/service_brokers: HTTP 503", api="cf", status=503),
                    CircuitOpen("circuit cf:cf open", api="cf", retry_in=0.0))
    result = discover_foundation(client, budget(60))
    assert str(result.status) == "ok" and client.calls == 3  # failed, refused by the open circuit, the trial


def test_one_more_try_only():
    client = Client(Unavailable("503", api="cf", status=503), Unavailable("502", api="cf", status=502))
    result = discover_foundation(client, budget(60))
    assert str(result.status) == "failed" and result.error == "502" and client.calls == 2


def test_a_trial_that_does_not_fit_in_the_step_leaves_the_foundation_failed():
    client = Client(Unavailable("503", api="cf", status=503), CircuitOpen("open", api="cf", retry_in=300.0))
    result = discover_foundation(client, budget(60))
    assert str(result.status) == "failed" and isinstance(result.cause, CircuitOpen) and client.calls == 2


def test_an_answer_cf_gave_or_a_refused_certificate_is_not_asked_again():
    tls = Unavailable("certificate verify failed", api="cf")
    tls.tls = True
    for cause in (InvalidInput("cf:cf: no service broker named 'blacksmith'"), tls):
        client = Client(cause)
        assert str(discover_foundation(client, budget(60)).status) == "failed" and client.calls == 1


def test_a_cf_that_stays_down_costs_one_breaker_wait_only():
    refused = [CircuitOpen("open", api="cf", retry_in=0.0) for _ in range(5)]
    client = Client(Unavailable("connection refused", api="cf"), *refused)
    result = discover_foundation(client, budget(60))
    assert str(result.status) == "failed" and client.calls == 3  # failed, refused, its one trial refused
