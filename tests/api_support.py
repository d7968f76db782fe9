"""The API under test: the handler loaded by path as Lambda loads it, behind the Function
URL front door, on the real Store over moto's DynamoDB and a moto Step Functions machine."""

import importlib.util
import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from mockstack.aws import LambdaContext
from mockstack.frontdoor import FunctionUrlFront
from reconciler.api import routes
from reconciler.store import Store, create_tables

ROOT = Path(__file__).resolve().parents[1]


def load_api_handler():
    path = ROOT / "functions/api/app.py"
    spec = importlib.util.spec_from_file_location("_api_app_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lambda_handler


@pytest.fixture
def api(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    # execute mode off explicitly: a server-mode engine earlier in the process turns it on in moto's
    # process-wide config, and an executing machine would finish before the 409 check
    with mock_aws(config={"stepfunctions": {"execute_state_machine": False}}):
        ddb = boto3.client("dynamodb")
        create_tables(ddb, "cache", "state")
        store = Store("cache", "state", ddb)
        sfn = boto3.client("stepfunctions")
        iam = boto3.client("iam")
        role = iam.create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        # without moto's execute mode an execution stays RUNNING: a run in progress
        machine = sfn.create_state_machine(name="reconcile", roleArn=role, definition=json.dumps(
            {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}))["stateMachineArn"]
        routes.use_services(routes.Services(store=store, sfn=sfn, state_machine_arn=machine, interval_s=3600))
        handler = load_api_handler()
        context = LambdaContext("api", "arn:aws:lambda:us-east-1:123456789012:function:api", 256, 30)
        with FunctionUrlFront(lambda event: handler(event, context)) as front:
            yield front.url, store, sfn, machine
        routes.use_services(None)
