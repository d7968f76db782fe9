"""statemachine/reconcile.asl.json: statelint clean, and the behaviour the spec asks of it."""

import json
import re
from pathlib import Path

from statelint.config import Config
from statelint.linter import Linter

from mockstack.aws import substitute_definition

ROOT = Path(__file__).resolve().parents[2]
TEXT = (ROOT / "statemachine/reconcile.asl.json").read_text()


def _dummy_substitutions() -> dict[str, str]:
    subs = {}
    for name in set(re.findall(r"\$\{(\w+)\}", TEXT)):
        subs[name] = (f"arn:aws:lambda:us-east-1:123456789012:function:{name[:-3]}" if name.endswith("Arn") else "2")
    return subs


ASL = json.loads(substitute_definition(TEXT, _dummy_substitutions()))


def _all_states(states=None, prefix=""):
    for name, state in (states or ASL["States"]).items():
        yield prefix + name, state
        for branch in state.get("Branches", []):
            yield from _all_states(branch["States"], f"{prefix}{name}/")
        if "ItemProcessor" in state:
            yield from _all_states(state["ItemProcessor"]["States"], f"{prefix}{name}/")


STATES = dict(_all_states())


def test_statelint_clean():
    problems = Linter.validate(json.dumps(ASL), Config())
    assert problems == []


def test_jsonpath_only():
    assert "QueryLanguage" not in TEXT


def test_six_phases_readable():
    top = list(ASL["States"])
    for phase in ["Discover", "ScanAndApply", "Match", "UpdateVault", "SyncIndex", "Orphans"]:
        assert phase in top
    # phase 2 beside the early part of phase 4 (overlap_phases)
    assert ASL["States"]["ScanAndApply"]["Type"] == "Parallel"
    assert {"ScanAndApply/ScanDeployments", "ScanAndApply/UpdateVaultEarly"} <= set(STATES)
    assert {"Discover/DiscoverCF", "Discover/DiscoverBosh"} <= set(STATES)
    assert ASL["States"]["Discover"]["Type"] == "Parallel"


def test_maps_take_concurrency_from_run_limits():
    for name in ("ScanAndApply/ScanDeployments", "UpdateVault", "ScanAndApply/UpdateVaultEarly"):
        state = STATES[name]
        assert state["Type"] == "Map"
        assert state["MaxConcurrencyPath"].startswith("$.run.limits.")
        assert state["ResultPath"] is None  # per-batch results live in DynamoDB, not in the state


def test_every_task_retries_and_catches():
    tasks = {n: s for n, s in STATES.items() if s["Type"] == "Task"}
    assert len(tasks) >= 10
    for name, state in tasks.items():
        errors = {e for r in state["Retry"] for e in r["ErrorEquals"]}
        sdk = state["Resource"].startswith("arn:aws:states:::")  # Handover: Step Functions' own API
        assert ("StepFunctions.SdkClientException" if sdk else "Lambda.ServiceException") in errors, name
        assert state.get("Catch"), name
        for retry in state["Retry"]:
            assert retry["IntervalSeconds"] == 2 and retry["MaxAttempts"] == 2  # from substitutions


def test_discovery_failures_degrade_not_fail():
    for name in ("Discover/DiscoverCF", "Discover/DiscoverBosh"):
        catch = STATES[name]["Catch"][0]
        marker = STATES[name.split("/")[0] + "/" + catch["Next"]]
        assert marker["Type"] == "Pass" and marker["Parameters"]["status"] == "failed"
    choice = ASL["States"]["SourcesAvailable?"]
    assert choice["Choices"][0]["Next"] == "NoSourceAvailable"
    assert choice["Choices"][1] == {"Not": {"Variable": "$.sources.bosh.status", "StringEquals": "ok"},
                                    "Next": "Match"}


def test_failed_batches_are_recorded_and_skipped():
    for task, where in (("ScanBatch", "ScanAndApply/ScanDeployments"), ("ApplyBatch", "UpdateVault"),
                        ("ApplyBatch", "ScanAndApply/UpdateVaultEarly")):
        catch = STATES[f"{where}/{task}"]["Catch"][0]
        assert catch["ErrorEquals"] == ["States.ALL"] and catch["Next"] == f"Record{task}Failure"


def test_run_lock_refusal_does_not_release_the_lock():
    catch = ASL["States"]["Begin"]["Catch"]
    assert catch[0] == {"ErrorEquals": ["RunLocked"], "ResultPath": "$.error", "Next": "LockHeld"}
    assert ASL["States"]["LockHeld"]["Type"] == "Pass" and ASL["States"]["LockHeld"]["Next"] == "AlreadyRunning"
    assert ASL["States"]["AlreadyRunning"]["Type"] == "Fail"


def test_failures_route_through_record_failure():
    for name, state in ASL["States"].items():
        if state["Type"] in ("Task", "Map", "Parallel") and name not in ("Begin", "RecordFailure"):
            assert state["Catch"][-1]["Next"] == "RecordFailure", name
    assert ASL["States"]["RecordFailure"]["Next"] == "RunFailed"
    assert ASL["TimeoutSeconds"] == 2


def test_statelint_catches_a_broken_definition():
    broken = json.loads(json.dumps(ASL))
    broken["States"]["Match"]["Next"] = "NoSuchState"
    assert Linter.validate(json.dumps(broken), Config())


def test_a_run_past_its_budgets_hands_over_to_a_follow_up_execution():
    """Continue-as-new: MoreToScan?/MoreToApply? after the Maps start the same state machine
    (Handover, named <run id>-<n>, the state as input) and end this execution without Finish."""
    top = ASL["States"]
    assert top["ScanAndApply"]["Next"] == "MoreToScan?" and top["UpdateVault"]["Next"] == "MoreToApply?"
    for choice, field, default in (("MoreToScan?", "$.sources.bosh.more", "Match"),
                                   ("MoreToApply?", "$.match.more", "SyncIndex")):
        rule = top[choice]["Choices"][0]
        assert rule["Next"] == "Handover" and top[choice]["Default"] == default
        assert {"Variable": field, "BooleanEquals": True} in rule["And"]
        assert {"Variable": field, "IsPresent": True} in rule["And"]  # a missing field: no Runtime error
    handover = top["Handover"]
    assert handover["Resource"] == "arn:aws:states:::states:startExecution"  # not .sync: no waiting
    assert handover["Parameters"]["StateMachineArn.$"] == "$$.StateMachine.Id"
    assert handover["Parameters"]["Name.$"] == "$.run.chain.next_name"
    assert handover["Parameters"]["Input"]["continue.$"] == "$"
    assert handover["Catch"][-1]["Next"] == "RecordFailure"
    assert top[handover["Next"]]["Type"] == "Pass" and top[handover["Next"]]["End"] is True
    assert top[handover["Next"]]["Parameters"]["continued"]["execution_arn.$"] == "$.handover.execution_arn"


def test_a_follow_up_execution_resumes_where_the_last_one_handed_over():
    top = ASL["States"]
    assert {"Variable": "$.run.chain.execution", "NumericGreaterThan": 1, "Next": "Resume"} in \
        top["Enabled?"]["Choices"]
    assert top["Enabled?"]["Choices"][0]["Next"] == "Disabled"  # a disabled run has no chain: checked first
    resume = top["Resume"]
    assert resume["Choices"] == [{"Variable": "$.run.chain.resume", "StringEquals": "apply", "Next": "UpdateVault"}]
    assert resume["Default"] == "ScanAndApply"
    early = STATES["ScanAndApply/EarlyApply?"]["Choices"][0]["And"]
    assert {"Variable": "$.run.chain.execution", "NumericEquals": 1} in early  # first execution only
