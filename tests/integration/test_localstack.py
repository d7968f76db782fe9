"""The same engine scenarios against a real LocalStack (skipped unless LOCALSTACK_ENDPOINT is set).

``AwsEngine(mode="remote", endpoint=...)`` deploys the translated template there with real
packages (function zips, the reconciler layer, the dependency layer built by pip for
python3.12/manylinux) and LocalStack runs the functions in its own Lambda containers.

- LOCALSTACK_ENDPOINT, e.g. ``http://localhost:4566`` (LocalStack 4.x needs
  LOCALSTACK_AUTH_TOKEN; ``localstack/localstack:4.14.0`` was the last image without one);
- LOCALSTACK_MOCKSTACK_HOST (optional): the name under which LocalStack's Lambda containers
  reach this machine (``host.docker.internal``, or the Docker bridge address such as
  ``172.17.0.1``). With it the mock stack binds 0.0.0.0 and a whole reconciliation runs;
  without it only the paths that need no CF/BOSH/Vault run.

Not run on the machine this was written on (no Docker there): see docs/deploy-and-operate.md.
"""

from __future__ import annotations

import os
import uuid

import pytest

from mockstack.aws import AwsEngine
from reconciler.store import Store

ENDPOINT = os.environ.get("LOCALSTACK_ENDPOINT", "").strip()
PUBLIC_HOST = os.environ.get("LOCALSTACK_MOCKSTACK_HOST", "").strip()
FAST = {"StateRetryIntervalSeconds": "1", "StateRetryMaxAttempts": "1", "PhaseTimeoutSeconds": "120"}

pytestmark = [
    pytest.mark.localstack,
    pytest.mark.skipif(not ENDPOINT, reason="LOCALSTACK_ENDPOINT is not set (e.g. http://localhost:4566 with a "
                                            "running LocalStack; see docs/deploy-and-operate.md)"),
]


def _name() -> str:
    return "bsr" + uuid.uuid4().hex[:8]  # a shared LocalStack: every module deploys its own stack


@pytest.fixture(scope="module")
def engine():
    name = _name()
    params = {**FAST, "ConfigParameterName": f"/{name}/config"}
    with AwsEngine(mode="remote", endpoint=ENDPOINT, stack_name=name, parameters=params) as eng:
        yield eng


def _store(engine: AwsEngine) -> Store:
    return Store(engine.tables["CacheTable"], engine.tables["StateTable"], client=engine.client("dynamodb"))


def test_template_deploys_with_real_packages(engine):
    ddb, lam = engine.client("dynamodb"), engine.client("lambda")
    for table in engine.tables.values():
        ttl = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        assert ttl.get("AttributeName") == "expires_at" and ttl["TimeToLiveStatus"] in ("ENABLED", "ENABLING")
    for spec in engine.functions.values():
        config = lam.get_function(FunctionName=spec.name)["Configuration"]
        assert config["State"] == "Active" and len(config.get("Layers", [])) == 2, spec.name
    assert engine.client("stepfunctions").describe_state_machine(stateMachineArn=engine.state_machine_arn())


def test_missing_configuration_fails_the_run_cleanly(engine):
    result = engine.run({"source": "schedule", "forced": False}, timeout_s=300)
    assert (result.status, result.error) == ("FAILED", "ConfigError")
    store = _store(engine)
    assert store.current_lock() is None
    assert store.recent_errors()[0]["phase"] == "Begin"


def test_held_lock_refuses_a_second_run(engine):
    engine.client("ssm").put_parameter(Name=f"/{engine.stack_name}/config", Value="reconciler:\n  enabled: true\n",
                                       Type="SecureString", Overwrite=True)
    store = _store(engine)
    holder = f"arn:aws:states:us-east-1:000000000000:execution:{engine.stack_name}-reconcile:other"
    store.acquire_lock("other", holder, 600)
    try:
        result = engine.run({"source": "api", "forced": True}, timeout_s=300)
        assert (result.status, result.error) == ("FAILED", "RunLocked")
        assert store.current_lock()["execution_arn"] == holder
    finally:
        store.release_lock("other")


@pytest.mark.skipif(not PUBLIC_HOST, reason="LOCALSTACK_MOCKSTACK_HOST is not set: LocalStack's Lambda containers "
                                            "cannot reach the mock stack")
def test_generated_world_reconciles_on_localstack(tmp_path):
    from mockstack.generator import generate
    from mockstack.runner import Scenario

    world, expected = generate(8, seed=3)
    with Scenario(world, workdir=str(tmp_path), mode="remote",
                  engine_options={"endpoint": ENDPOINT, "stack_name": _name()},
                  stack_options={"host": "0.0.0.0", "public_host": PUBLIC_HOST,  # noqa: S104 - containers call in
                                 "bosh_task_steps": 0}) as sc:
        first = sc.run_once(timeout_s=900)
        second = sc.run_once(timeout_s=900)
        vault, orphans = sc.vault_contents(), sc.orphans()
    assert first["status"] == "SUCCEEDED", first["cause"]
    assert second["status"] == "SUCCEEDED", second["cause"]
    assert orphans == {k: sorted(v) for k, v in expected["orphans"].items()}
    assert sorted(vault["secret/db"]) == sorted(expected["index_ids"])
    assert second["output"]["phases"]["apply"]["writes"] == 0
