"""The embedded engine's mechanics on a tiny fixture template (independent of the real phases):
translate -> create in moto -> execute the ASL -> in-process Lambdas -> output."""

import json
import os
from pathlib import Path

import pytest

from mockstack.aws import AwsEngine, EngineError, FunctionError, ScheduleTrigger, rate_seconds

FIXTURE = Path(__file__).parent / "engine_fixture" / "template.yaml"


@pytest.fixture
def engine():
    with AwsEngine(FIXTURE, parameters={"Greeting": "bonjour"}, stack_name="fixture") as eng:
        yield eng


def test_resources_created_from_the_translated_template(engine):
    assert set(engine.functions) == {"HelloFunction", "WorkerFunction", "FailerFunction"}
    table = engine.tables["Table"]
    ddb = engine.client("dynamodb")
    ttl = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert ttl == {"AttributeName": "expires_at", "TimeToLiveStatus": "ENABLED"}
    assert engine.outputs["Url"] == engine.function_urls["HelloFunction"]
    assert engine.outputs["MachineArn"] == engine.state_machine_arn()
    schedules = engine.client("scheduler").list_schedules()["Schedules"]
    assert [s["State"] for s in schedules] == ["ENABLED"]
    definition = json.loads(engine.client("stepfunctions").describe_state_machine(
        stateMachineArn=engine.state_machine_arn())["definition"])
    assert definition["States"]["Hello"]["Resource"] == engine.functions["HelloFunction"].arn


def test_direct_invoke_runs_handler_with_its_own_environment(engine):
    out = engine.invoke("HelloFunction", {"x": 1})
    assert out["who"] == "bonjour"  # the parameter reached the function's Environment
    assert out["shared"] == "everyone"  # Globals
    assert out["table"] == engine.tables["Table"]
    assert out["in_os_environ"] is False  # per-invocation overlay, process env untouched
    assert out["function"] == engine.function_name("HelloFunction")
    assert 0 < out["remaining_ms"] <= 30_000
    assert out["event"] == {"x": 1}
    assert "WHO" not in os.environ


def test_function_error_carries_exception_class_name(engine):
    with pytest.raises(FunctionError) as info:
        engine.invoke("FailerFunction", {"fail": True})
    assert info.value.error_type == "BatchBroken"
    assert info.value.payload["errorMessage"] == "batch 3 is broken (on purpose)"
    assert info.value.payload["stackTrace"]


def test_execution_map_concurrency_env_isolation_and_output(engine):
    result = engine.run({"items": [1, 2, 3, 4], "conc": 2, "fail": False}, timeout_s=60)
    assert result.status == "SUCCEEDED", result.cause
    out = result.output
    assert out["hello"]["who"] == "bonjour"
    assert [r["item"] for r in out["results"]] == [1, 2, 3, 4]
    assert {r["who"] for r in out["results"]} == {"worker"}
    # the barrier in the worker passed only because two ran at once; never more than MaxConcurrency
    assert max(r["max_running"] for r in out["results"]) == 2
    assert out["check"] == {"ok": True}
    figures = engine.execution_figures(result.arn)
    assert figures["events_by_type"]["MapIterationSucceeded"] == 4
    assert figures["events_by_type"]["LambdaFunctionSucceeded"] == 6
    assert figures["state_transitions"] >= 8
    assert 0 < figures["max_state_payload_bytes"] < 4096


def test_catch_routes_on_custom_error_name(engine):
    result = engine.run({"items": [], "conc": 1, "fail": True}, timeout_s=60)
    assert result.status == "SUCCEEDED", result.cause
    assert result.output["check"] == {"caught": "BatchBroken"}


def test_uncaught_error_fails_the_execution():
    with AwsEngine(FIXTURE, stack_name="fixture2") as engine:
        result = engine.run({"items": [1], "conc": 1, "fail": "crash"}, timeout_s=60)
        assert result.status == "FAILED"
        assert result.error == "RuntimeError"
        assert "not caught by the state machine" in result.cause


def test_schedule_trigger_fires_enabled_schedule(engine):
    trigger = ScheduleTrigger(engine)
    arn = trigger.fire("MachineEvery")
    assert arn and engine.wait(arn, 60).status == "SUCCEEDED"
    assert json.loads(engine.client("stepfunctions").describe_execution(executionArn=arn)["input"])["source"] == \
        "schedule"


CHAIN = {  # a run of 3 executions: each starts the next one of the same machine, as the reconciler's Handover does
    "StartAt": "Count",
    "States": {
        "Count": {"Type": "Pass", "Parameters": {"n.$": "$.n", "next.$": "States.MathAdd($.n, 1)"}, "Next": "More?"},
        "More?": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericLessThan": 3, "Next": "Handover"}],
                  "Default": "Done"},
        "Handover": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution",
                     "Parameters": {"StateMachineArn.$": "$$.StateMachine.Id",
                                    "Name.$": "States.Format('chain-{}', $.next)", "Input": {"n.$": "$.next"}},
                     "ResultSelector": {"execution_arn.$": "$.ExecutionArn"}, "ResultPath": "$.handover",
                     "Next": "HandedOver"},
        "HandedOver": {"Type": "Pass", "Parameters": {"continued": {"execution_arn.$": "$.handover.execution_arn"}},
                       "End": True},
        "Done": {"Type": "Pass", "Parameters": {"last.$": "$.n"}, "End": True},
    },
}


def test_an_execution_starts_its_follow_up_and_wait_follows_the_chain(engine):
    """moto's interpreter calls StartExecution with AWS's field names and returns ExecutionArn
    (mockstack.moto_patches); wait() follows a run's hand-overs to its last execution."""
    sfn = engine.client("stepfunctions")
    machine = sfn.create_state_machine(name="chain", definition=json.dumps(CHAIN),
                                       roleArn="arn:aws:iam::123456789012:role/chain")["stateMachineArn"]
    first = sfn.start_execution(stateMachineArn=machine, name="chain-1", input=json.dumps({"n": 1}))["executionArn"]
    result = engine.wait(first, 60)
    assert result.status == "SUCCEEDED", result.cause
    assert result.output == {"last": 3}
    assert [a.rsplit(":", 1)[-1] for a in result.chain] == ["chain-1", "chain-2", "chain-3"]
    assert result.arn == result.chain[-1] and result.start <= result.stop
    assert engine.wait(first, 60, follow=False).output == {"continued": {"execution_arn": result.chain[1]}}
    figures = engine.chain_figures(result)
    assert figures["executions"] == 3 and len(figures["history_events_per_execution"]) == 3
    assert figures["history_events"] == max(figures["history_events_per_execution"])


def test_the_chain_runs_in_server_mode_too():
    """There the interpreter reaches StartExecution over HTTP (localhost:$MOTO_PORT)."""
    with AwsEngine(FIXTURE, stack_name="served-chain", mode="server", port=_free_port()) as served:
        sfn = served.client("stepfunctions")
        machine = sfn.create_state_machine(name="chain", definition=json.dumps(CHAIN),
                                           roleArn="arn:aws:iam::123456789012:role/chain")["stateMachineArn"]
        first = sfn.start_execution(stateMachineArn=machine, name="chain-1", input=json.dumps({"n": 1}))
        result = served.wait(first["executionArn"], 60)
    assert result.status == "SUCCEEDED" and result.output == {"last": 3} and len(result.chain) == 3, result.cause


def test_bad_parameters_are_named():
    with pytest.raises(EngineError, match="unknown template parameter"):
        AwsEngine(FIXTURE, parameters={"Nope": "1"}).start()


def test_rate_expressions():
    assert rate_seconds("rate(1 hour)") == 3600
    assert rate_seconds("rate(30 minutes)") == 1800
    with pytest.raises(EngineError, match="rate"):
        rate_seconds("cron(0 * * * ? *)")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_server_mode_reached_by_localstack_client():
    from localstack_client.session import Session
    from moto.core.config import default_user_config

    before = json.dumps(default_user_config, sort_keys=True)
    port = _free_port()
    with AwsEngine(FIXTURE, stack_name="served", mode="server", port=port) as engine:
        session = Session(localstack_host=f"127.0.0.1:{port}", region_name="us-east-1")
        sfn = session.client("stepfunctions")
        machines = [m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]]
        assert machines == [engine.state_machine_arn()]
        arn = sfn.start_execution(stateMachineArn=machines[0],
                                  input=json.dumps({"items": [1, 2], "conc": 2, "fail": True}))["executionArn"]
        result = engine.wait(arn, 60)
        assert result.status == "SUCCEEDED", result.cause
        assert [r["who"] for r in result.output["results"]] == ["worker", "worker"]
        assert result.output["check"] == {"caught": "BatchBroken"}
        payload = session.client("lambda").invoke(FunctionName=engine.function_name("HelloFunction"),
                                                  Payload=b'{"via": "localstack-client"}')["Payload"].read()
        assert json.loads(payload)["event"] == {"via": "localstack-client"}
    assert "MOTO_PORT" not in os.environ or os.environ["MOTO_PORT"] != str(port)
    # the server's config call switched execute mode on process-wide; stop puts it back
    assert json.dumps(default_user_config, sort_keys=True) == before
