"""A phase whose one job must not fail the run over a breaker about to half-open waits for the
breaker's trial once, within its invocation's time; never longer, never twice."""

import pytest

from reconciler.errors import CircuitOpen
from reconciler.phases.runtime import Budget, through_open_breaker


class Context:
    def __init__(self, left_ms):
        self.left_ms = left_ms

    def get_remaining_time_in_millis(self):
        return self.left_ms


def flaky(errors):
    calls = []

    def fn():
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return "done"
    return fn, calls


def test_waits_for_the_trial_and_runs_once_more():
    fn, calls = flaky([CircuitOpen("vault: circuit open", api="vault", retry_in=12.0)])
    slept = []
    assert through_open_breaker(fn, Budget(Context(300_000)), what="index", sleep=slept.append) == "done"
    assert calls == [1, 1] and slept == [12.5]


@pytest.mark.parametrize("error", [CircuitOpen("open", api="vault", retry_in=500.0),  # beyond the budget
                                   CircuitOpen("open", api="vault")])  # unknown: do not guess
def test_does_not_wait_beyond_its_time_or_blindly(error):
    fn, calls = flaky([error])
    with pytest.raises(CircuitOpen):
        through_open_breaker(fn, Budget(Context(300_000)), what="index", sleep=lambda s: None)
    assert calls == [1]


def test_waits_once_only():
    fn, calls = flaky([CircuitOpen("open", api="vault", retry_in=1.0), CircuitOpen("open", api="vault", retry_in=1.0)])
    with pytest.raises(CircuitOpen):
        through_open_breaker(fn, Budget(Context(300_000)), what="index", sleep=lambda s: None)
    assert calls == [1, 1]
