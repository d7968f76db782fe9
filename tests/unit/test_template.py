"""template.yaml: cfn-lint clean, and the shape the product relies on."""

import json
import re
from pathlib import Path

import pytest
from cfnlint.api import ManualArgs, lint
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_TEXT = (ROOT / "template.yaml").read_text()
TEMPLATE = yaml_parse(TEMPLATE_TEXT)
RESOURCES = TEMPLATE["Resources"]
PHASES = ["BeginFunction", "DiscoverCFFunction", "DiscoverBoshFunction", "ScanBatchFunction", "MatchFunction",
          "ApplyBatchFunction", "SyncIndexFunction", "OrphansFunction", "FinishFunction", "RecordFailureFunction"]


def test_cfn_lint_clean():
    matches = lint(TEMPLATE_TEXT, config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
    assert [str(m) for m in matches] == []


def test_no_yaml_aliases():
    # CloudFormation rejects YAML anchors/aliases in templates
    assert not re.search(r"(^|\s)[&*][A-Za-z]", TEMPLATE_TEXT.split("Resources:", 1)[1].replace("'*'", ""))


def test_function_per_phase_and_api():
    functions = {k for k, v in RESOURCES.items() if v["Type"] == "AWS::Serverless::Function"}
    assert functions == set(PHASES) | {"ApiFunction"}
    for name in functions:
        code_uri = RESOURCES[name]["Properties"]["CodeUri"]
        assert code_uri.startswith("functions/") and code_uri.endswith("/")


def test_function_url_is_iam_authenticated():
    assert RESOURCES["ApiFunction"]["Properties"]["FunctionUrlConfig"] == {"AuthType": "AWS_IAM"}


def test_layers_build_from_the_package_and_the_lock():
    layers = {k: v for k, v in RESOURCES.items() if v["Type"] == "AWS::Serverless::LayerVersion"}
    assert layers["ReconcilerLayer"]["Properties"]["ContentUri"] == "shared/"
    assert layers["ReconcilerLayer"]["Metadata"]["BuildMethod"] == "python3.12"
    assert layers["DependenciesLayer"]["Properties"]["ContentUri"] == "layers/dependencies/"
    # exactly the lock file: the python builder would re-resolve it (tests/unit/test_lock.py)
    assert layers["DependenciesLayer"]["Metadata"]["BuildMethod"] == "makefile"
    assert "build-DependenciesLayer:" in (ROOT / "layers/dependencies/Makefile").read_text()
    assert (ROOT / "layers/dependencies/requirements.txt").is_file()
    # the layer package lands at python/reconciler: shared/ must hold the package directly
    assert (ROOT / "shared/reconciler/__init__.py").is_file()


@pytest.mark.parametrize("table", ["CacheTable", "StateTable"])
def test_tables_keys_and_ttl(table):
    props = RESOURCES[table]["Properties"]
    assert [k["AttributeName"] for k in props["KeySchema"]] == ["pk", "sk"]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert props["BillingMode"] == "PAY_PER_REQUEST"


def test_state_machine_substitutions_match_the_definition():
    props = RESOURCES["ReconcileStateMachine"]["Properties"]
    used = set(re.findall(r"\$\{(\w+)\}", (ROOT / props["DefinitionUri"]).read_text()))
    assert used == set(props["DefinitionSubstitutions"])
    arns = {v["Fn::GetAtt"][0] for v in props["DefinitionSubstitutions"].values() if "Fn::GetAtt" in v}
    assert arns == set(PHASES)
    invokable = {p["LambdaInvokePolicy"]["FunctionName"]["Ref"] for p in props["Policies"] if "LambdaInvokePolicy" in p}
    assert invokable == set(PHASES)
    # continue-as-new: Handover starts the same state machine (its fixed name: no cycle)
    statements = [st for p in props["Policies"] for st in p.get("Statement", [])]
    assert [st["Action"] for st in statements] == ["states:StartExecution"]
    assert statements[0]["Resource"]["Fn::Sub"].endswith(":stateMachine:${AWS::StackName}-reconcile")
    assert props["Name"]["Fn::Sub"] == "${AWS::StackName}-reconcile"


def test_schedule_follows_parameters():
    event = RESOURCES["ReconcileStateMachine"]["Properties"]["Events"]["Schedule"]
    assert event["Type"] == "ScheduleV2"
    assert event["Properties"]["ScheduleExpression"] == {"Ref": "ScheduleExpression"}
    assert event["Properties"]["State"] == {"Fn::If": ["ScheduleOn", "ENABLED", "DISABLED"]}
    assert json.loads(event["Properties"]["Input"]) == {"source": "schedule", "forced": False}
    assert TEMPLATE["Parameters"]["ScheduleExpression"]["Default"] == "rate(1 hour)"


def test_least_privilege_api():
    statements = [s for p in RESOURCES["ApiFunction"]["Properties"]["Policies"] if "Statement" in p
                  for s in p["Statement"]]
    actions = {a for s in statements for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
    assert {"states:StartExecution", "states:ListExecutions"} <= actions
    assert not any(a.endswith(":*") or a == "*" for a in actions)
    role = RESOURCES["PhaseFunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    for statement in role:
        assert statement["Resource"] != "*"
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert not any(a.endswith(":*") for a in actions)


def test_optional_vpc_is_conditional():
    assert "UseVpc" in TEMPLATE["Conditions"]
    assert TEMPLATE["Globals"]["Function"]["VpcConfig"]["Fn::If"][0] == "UseVpc"


def test_translates_offline():
    from mockstack.aws import translate

    cfn = translate(TEMPLATE, {})
    kinds = {v["Type"] for v in cfn["Resources"].values()}
    assert {"AWS::Lambda::Url", "AWS::Scheduler::Schedule", "AWS::StepFunctions::StateMachine"} <= kinds
