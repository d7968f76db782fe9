"""Execution input as an operator would type it in the Step Functions console. Each must fail
the run with InvalidInput and a cause that says what was wrong and what is accepted: no
Python stack trace, no lock left behind, the refusal recorded."""

from __future__ import annotations

import json

import pytest

from mockstack.aws import AwsEngine
from reconciler.store import Store

FAST = {"StateRetryIntervalSeconds": "1", "StateRetryMaxAttempts": "1", "PhaseTimeoutSeconds": "120"}
U = "0d0e5b4a-1111-4222-8333-444455556666"


@pytest.fixture(scope="module")
def engine():
    with AwsEngine(parameters=FAST) as eng:
        eng.client("ssm").put_parameter(Name="/blacksmith/reconciler/config", Value="reconciler:\n  enabled: true\n",
                                        Type="SecureString", Overwrite=True)
        yield eng


@pytest.mark.parametrize("execution_input, words", [
    ({"forced": "yes"}, "forced must be true or false"),
    ({"frced": True}, "unknown key(s) ['frced']"),
    ({"selection": {"instances": ["not-a-uuid"]}}, "are not UUIDs"),
    ({"selection": {"instances": [U + "\n"]}}, "are not UUIDs"),
    ({"selection": {"instances": [U] * 1001}}, "at most 1000"),
    ({"selection": {"instances": U}}, "a list of at most"),
    ({"selection": {"services": [{"id": 1}]}}, "a list of at most"),
    ({"selection": "all"}, "selection: accepted is"),
    ("hello", "a JSON object is accepted"),
    ([1, 2], "a JSON object is accepted"),
    (42, "a JSON object is accepted"),
])
def test_console_input_is_refused_with_a_clear_cause(engine, execution_input, words):
    result = engine.run(execution_input, timeout_s=120)
    assert (result.status, result.error) == ("FAILED", "InvalidInput"), result.cause
    assert words in result.cause
    for trace in ("stackTrace", "Traceback", 'File "', ".py"):
        assert trace not in result.cause
    store = Store(engine.tables["CacheTable"], engine.tables["StateTable"], client=engine.client("dynamodb"))
    assert store.current_lock() is None  # never taken: the input is checked first
    recorded = store.recent_errors()[0]
    assert recorded["phase"] == "Begin" and recorded["message"].startswith("InvalidInput") and words in \
        recorded["message"]
    assert all(r["status"] != "running" for r in store.list_runs())


def test_the_original_input_stays_visible_in_the_console(engine):
    result = engine.run({"forced": "yes"}, timeout_s=120)
    described = engine.client("stepfunctions").describe_execution(executionArn=result.arn)
    assert json.loads(described["input"]) == {"forced": "yes"}
