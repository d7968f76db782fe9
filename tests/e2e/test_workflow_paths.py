"""The real state machine's failure paths, on the embedded engine (no CF/BOSH needed)."""

import json

from mockstack.base import EmulatorServer
from mockstack.vault import VaultEmulator
from reconciler.store import Store


def _store(engine):
    return Store(engine.tables["CacheTable"], engine.tables["StateTable"], client=engine.client("dynamodb"))


def test_missing_configuration_fails_the_run_cleanly(engine):
    result = engine.run({"source": "schedule", "forced": False}, timeout_s=120)
    assert result.status == "FAILED"
    assert result.error == "ConfigError"
    assert "/blacksmith/reconciler/config" in result.cause
    store = _store(engine)
    assert store.current_lock() is None
    errors = store.recent_errors()
    assert errors and errors[0]["phase"] == "Begin" and errors[0]["message"].startswith("ConfigError")
    assert store.get_metrics()["runs_failed"] == 1


def test_bad_execution_input_is_refused_with_a_clear_error(engine, put_config):
    put_config("reconciler:\n  enabled: true\n")
    result = engine.run({"forced": "yes"}, timeout_s=120)
    assert result.status == "FAILED" and result.error == "InvalidInput"
    assert "forced must be true or false" in result.cause


def test_no_source_available_fails_after_recording(engine, put_config):
    with EmulatorServer(VaultEmulator({}, token="root-token")) as vault:
        put_config(f"vault:\n  address: {vault.url}\n  token: root-token\n")
        result = engine.run({"source": "api", "forced": True}, timeout_s=120)
    assert result.status == "FAILED"
    assert result.error == "NoSourceAvailable"
    store = _store(engine)
    runs = store.list_runs()
    assert runs[0]["status"] == "failed" and runs[0]["forced"] is True
    assert store.current_lock() is None
    assert runs[0]["run_id"] == result.arn.rsplit(":", 1)[-1]
    assert store.recent_errors()[0]["phase"] == "Discover"
    history = [e["type"] for e in engine.history(result.arn)]
    assert "ParallelStateSucceeded" in history  # both discoveries answered "skipped", not crashed


def test_held_lock_refuses_a_second_run_without_releasing_it(engine, put_config):
    put_config("reconciler:\n  enabled: true\n")
    store = _store(engine)
    holder = "arn:aws:states:us-east-1:123456789012:execution:blacksmith-reconcile:other"
    store.acquire_lock("other", holder, 600)
    result = engine.run({"source": "api", "forced": True}, timeout_s=120)
    assert result.status == "FAILED" and result.error == "RunLocked"
    assert holder in result.cause
    assert "stackTrace" not in result.cause and "Traceback" not in result.cause  # the message, not the Lambda error
    assert store.current_lock()["execution_arn"] == holder  # the refused run did not release it
    figures = engine.execution_figures(result.arn)
    assert figures["events_by_type"].get("LambdaFunctionScheduled") == 1  # Begin only
    assert json.loads(engine.client("stepfunctions").describe_execution(
        executionArn=result.arn)["input"])["forced"] is True
