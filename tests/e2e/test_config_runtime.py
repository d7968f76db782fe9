"""Deploy-time and run-time effects of reconciler.enabled / interval / retry_attempts on the real
state machine (embedded engine)."""

import json

from mockstack.aws import AwsEngine
from mockstack.base import EmulatorServer
from mockstack.runner import ENGINE_PARAMETERS, derived_parameters
from mockstack.vault import VaultEmulator
from reconciler.store import Store


def _store(engine):
    return Store(engine.tables["CacheTable"], engine.tables["StateTable"], client=engine.client("dynamodb"))


def test_scheduled_run_while_disabled_ends_cleanly_as_disabled(engine, put_config):
    put_config("reconciler:\n  enabled: false\n")
    result = engine.run({"source": "schedule", "forced": False}, timeout_s=120)
    assert result.status == "SUCCEEDED"
    assert result.output["run"]["disabled"] is True
    history = list(engine.history(result.arn))
    entered = [e["stateEnteredEventDetails"]["name"] for e in history if e["type"].endswith("StateEntered")]
    assert entered == ["Start", "Begin", "Enabled?", "Disabled"]
    store = _store(engine)
    assert store.current_lock() is None and store.list_runs() == []


def test_forced_run_while_disabled_still_runs(engine, put_config):
    with EmulatorServer(VaultEmulator({}, token="root-token")) as vault:
        put_config(f"reconciler:\n  enabled: false\nvault:\n  address: {vault.url}\n  token: root-token\n")
        result = engine.run({"source": "api", "forced": True}, timeout_s=120)
    assert result.error == "NoSourceAvailable"  # past Begin: it tried to discover
    assert _store(engine).list_runs()[0]["forced"] is True


def test_schedule_and_step_retries_are_derived_from_the_configuration():
    params = derived_parameters("reconciler:\n  interval: 30m\n  enabled: false\n  retry_attempts: 2\n")
    assert params == {"ScheduleExpression": "rate(30 minutes)", "ScheduleEnabled": "false",
                      "StateRetryMaxAttempts": "2"}
    with AwsEngine(parameters={**ENGINE_PARAMETERS, "PhaseTimeoutSeconds": "120", **params}) as eng:
        (schedule,) = eng.schedules.values()
        got = eng.client("scheduler").get_schedule(Name=schedule["name"])
        assert got["ScheduleExpression"] == "rate(30 minutes)" and got["State"] == "DISABLED"
        definition = json.loads(eng.client("stepfunctions").describe_state_machine(
            stateMachineArn=eng.state_machine_arn())["definition"])
        assert {r["MaxAttempts"] for r in definition["States"]["Begin"]["Retry"]} == {2}
        begin_env = eng.functions["BeginFunction"].lambda_environment()
        assert begin_env["SCHEDULE_EXPRESSION"] == "rate(30 minutes)"  # what Begin compares with the config
