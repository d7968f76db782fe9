"""A phase whose one job must not fail the run over a breaker about to half-open waits for the
breaker's trial, within its invocation's time; never longer, a bounded number of times."""

import pytest

from reconciler.errors import CircuitOpen
from reconciler.phases.runtime import OPEN_BREAKER_WAITS, Budget, through_open_breaker


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


def test_waits_a_bounded_number_of_times():
    fn, calls = flaky([CircuitOpen("open", api="vault", retry_in=1.0) for _ in range(OPEN_BREAKER_WAITS + 1)])
    with pytest.raises(CircuitOpen):
        through_open_breaker(fn, Budget(Context(300_000)), what="index", sleep=lambda s: None)
    assert len(calls) == OPEN_BREAKER_WAITS + 1
    fn, calls = flaky([CircuitOpen("open", api="vault", retry_in=1.0) for _ in range(OPEN_BREAKER_WAITS)])
    assert through_open_breaker(fn, Budget(Context(300_000)), what="index", sleep=lambda s: None) == "done"


def test_a_batch_is_run_again_after_the_trial_with_what_is_left_of_its_timeout():
    from reconciler.config import load_settings
    from reconciler.phases import runtime

    seen, errors = [], [CircuitOpen("vault: circuit open", api="vault", retry_in=0.0)]

    def attempt(event):
        seen.append(event["timeout_s"])
        if errors:
            raise errors.pop(0)
        return {**event, "offset": 5, "done": True}

    out = runtime.batch_through_open_breaker(attempt, {"batch": 0, "offset": 0, "timeout_s": 120}, Context(300_000),
                                             load_settings(env={}), what="vault: update batch")
    assert len(seen) == 2 and 119 < seen[0] <= 120 and seen[1] <= seen[0] - 0.5  # the second: what is left
    assert out == {"batch": 0, "offset": 5, "done": True, "timeout_s": 120}  # the next invocation's own timeout


def test_a_batch_without_time_for_the_trial_is_handed_to_a_fresh_invocation_a_bounded_number_of_times():
    from reconciler.config import load_settings
    from reconciler.phases import runtime

    def attempt(event):
        raise CircuitOpen("vault: circuit open", api="vault", retry_in=200.0)

    settings = load_settings(env={})
    event = {"batch": 0, "offset": 3, "timeout_s": 120}
    for n in range(1, runtime.OPEN_BREAKER_HANDOVERS + 1):  # done: false, same offset, a fresh budget
        event = runtime.batch_through_open_breaker(attempt, event, Context(300_000), settings,
                                                   what="vault: update batch")
        assert event == {"batch": 0, "offset": 3, "timeout_s": 120, "done": False, "breaker_handovers": n}
    with pytest.raises(CircuitOpen):  # then the open circuit fails the batch (the state machine's catch)
        runtime.batch_through_open_breaker(attempt, event, Context(300_000), settings, what="vault: update batch")
