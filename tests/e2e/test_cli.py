"""``blacksmith-reconciler`` end to end against the served stack: the AWS side in the embedded
engine behind an endpoint (as ``mockstack serve`` runs it), the API's Function URL front
refusing unsigned requests, a CloudFormation stack with the ``ApiUrl`` output, and the
emulators. Every command is run as an operator types it; exit codes are the contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from mockstack.cli import AwsSide, _aws_port
from mockstack.generator import generate
from mockstack.runner import Scenario
from reconciler import backup as bk
from reconciler.apply import list_backups
from reconciler.cli import main
from reconciler.vault import VaultClient
from tests.e2e.support import STACK

ROOT = Path(__file__).resolve().parents[2]
UUID_ZERO = "0" * 64


@pytest.fixture(scope="module")
def served():
    world, expected = generate(10, seed=5)
    side = AwsSide(Scenario(world, mode="server", port=_aws_port(0), stack_options=STACK), require_sigv4=True)
    side.start()
    try:
        yield side, expected
    finally:
        side.stop()


@pytest.fixture
def cli(served):
    """Run the command as an operator would: its own process (the functions' logs stay out of its output)."""
    side, _ = served
    vault = side.scenario.stack.endpoints()["vault"]
    endpoint = side.scenario.engine.endpoint_url
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'shared'}", "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1", "VAULT_ADDR": vault["address"],
           "VAULT_TOKEN": vault["token"]}
    env.pop("BLACKSMITH_RECONCILER_URL", None)
    env.pop("AWS_ENDPOINT_URL", None)  # the CLI is told the endpoint, as an operator would tell it

    def run(*argv: str, stack: bool = True) -> tuple[int, str, str]:
        extra = ["--stack", "blacksmith", "--endpoint-url", endpoint] if stack else []
        result = subprocess.run([sys.executable, "-m", "reconciler", *argv, *extra], capture_output=True, text=True,
                                env=env, cwd=ROOT, timeout=300)
        return result.returncode, result.stdout, result.stderr

    return run


def one_line(err: str) -> bool:
    return len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_unsigned_requests_are_refused_by_the_function_url(served):
    side, _ = served
    assert requests.get(side.front.url + "/b/status", timeout=30).status_code == 403


def test_status_on_an_idle_stack(cli):
    code, out, err = cli("status")
    assert code == 0, err
    assert out.startswith("idle") and "next run" in out and "findings: CF 0" in out
    code, out, _ = cli("status", "--json")
    assert code == 0 and json.loads(out)["running"] is False


def test_dry_run_waits_finds_drift_and_plan_prints_the_diff(cli, served):
    side, expected = served
    before = side.scenario.vault_contents()
    code, out, err = cli("run", "--dry-run", "--force", "--wait")
    assert code == 1, err  # drift found
    assert "(dry run)" in out and "the plan:" in out
    assert side.scenario.vault_contents() == before  # nothing written
    run_id = out.split("the plan: blacksmith-reconciler plan ", 1)[1].split()[0]

    code, out, err = cli("plan", run_id)
    assert code == 0, err
    assert out.startswith(f"plan (dry run) of run {run_id}")
    iid = expected["recoverable_credentials"][0]
    assert f"+ create         secret/{iid}/credentials (secret: values hidden)" in out
    code, latest, _ = cli("plan")  # default: the latest run with a plan
    assert code == 0 and latest == out
    code, out, _ = cli("plan", run_id, "--json")
    assert code == 0 and json.loads(out)["dry_run"] is True


def test_real_run_then_runs_orphans_and_backups(cli, served):
    side, expected = served
    code, out, err = cli("run", "--force", "--wait")
    record_id = out.split()[1].rstrip(":")
    code_runs, runs_out, _ = cli("runs", record_id, "--json")
    record = json.loads(runs_out)
    assert code == (0 if record["status"] == "succeeded" else 1), (out, err)
    assert code_runs == 0 and record["dry_run"] is False and record["phase_durations"]

    code, out, _ = cli("runs")
    assert code == 0 and out.splitlines()[0].split() == ["RUN", "STATUS", "DRY", "STARTED", "DURATION", "FOUND",
                                                         "SYNCED", "ERRORS"]
    assert record_id in out and len(out.splitlines()) == 3  # the dry run and this one

    code, out, _ = cli("orphans")
    assert code == 0
    for kind in ("CF", "BOSH", "Vault"):
        assert f"\n{kind}: " in "\n" + out
    for iid in expected["orphans"]["cf"]:
        assert iid in out

    iid = expected["drift"]["stale_manifest"][0]  # its tree was backed up before the run rewrote the manifest
    code, out, err = cli("backups", "list", iid, stack=False)
    assert code == 0, err
    assert out.splitlines()[0].split() == ["SHA256", "TIME", "AGE", "FORMAT"] and len(out.splitlines()) >= 2
    code, out, _ = cli("backups", "show", iid, out.splitlines()[1].split()[0], stack=False)
    assert code == 0 and f"secret/{iid}:" in out and f"secret/{iid}/manifest (secret: values hidden)" in out


def test_restore_round_trips_every_path_byte_identical(cli, served):
    side, expected = served
    iid = expected["drift"]["stale_manifest"][0]
    code, out, _ = cli("backups", "list", iid, "--json", stack=False)
    sha = json.loads(out)[0]["sha256"]  # taken by the real run before it wrote: the state before the run
    vault = side.scenario.stack.vault
    record = vault.snapshot()[f"secret/backups/{iid}/{sha}"]
    archived = bk.decode_backup(record, instance_id=iid, key=sha).tree

    code, out, err = cli("restore", iid, sha, "--dry-run", stack=False)
    assert code == 0, err
    assert "would write" in out
    assert side.scenario.vault_contents()[f"secret/backups/{iid}/{sha}"] == record  # nothing written by --dry-run

    code, out, err = cli("restore", iid, sha, "--json", stack=False)
    assert code == 0, err
    result = json.loads(out)
    assert result["verified"] is True and result["verified_paths"] == len(archived)
    assert result["pre_restore_backup"] and result["restored"]
    now = side.scenario.vault_contents()
    for path, data in archived.items():
        assert bk.canonical_json(now[path]) == bk.canonical_json(data), path
    # the state just replaced was backed up first and can be restored in turn
    code, out, _ = cli("restore", iid, result["pre_restore_backup"], stack=False)
    assert code == 0 and "verified: Vault equals the backup" in out


def test_mistakes_are_one_line_with_the_documented_exit_codes(cli, served):
    side, expected = served
    cases = [
        (("run", "--instance", "not-a-uuid"), 2, "is not a UUID"),
        (("runs", "no-such-run"), 2, "no run"),
        (("runs", "--limit", "0"), 2, "--limit 0"),
        (("bogus",), 2, "invalid choice"),
        (("restore", expected["recoverable_credentials"][0], UUID_ZERO), 2, "available:"),
        (("restore", "not/an/id", UUID_ZERO), 2, "instance id"),
        (("config", "check", "/nonexistent.conf"), 2, "cannot read"),
    ]
    for argv, want, text in cases:
        stack = argv[0] not in ("restore", "config")
        code, _, err = cli(*argv, stack=stack)
        assert code == want and text in err and one_line(err), (argv, code, err)
    code, _, err = cli("status", "--url", "http://127.0.0.1:9/", stack=False)
    assert code == 3 and "cannot reach the stack" in err and one_line(err)
    code, _, err = cli("status", "--stack", "nope", "--endpoint-url", side.scenario.engine.endpoint_url, stack=False)
    assert code == 3 and "no such CloudFormation stack" in err and one_line(err)
    code, _, err = cli("status", stack=False)
    assert code == 2 and "no stack given" in err


def test_the_cli_is_importable_as_the_console_script_names_it():
    assert callable(main) and main.__module__ == "reconciler.cli.main"


def test_the_function_url_is_enough(cli, served):
    side, _ = served
    code, out, err = cli("status", "--json", "--url", side.front.url + "/", stack=False)
    assert code == 0, err
    assert "running" in json.loads(out)


def test_doctor_passes_on_a_healthy_stack_and_names_the_fix_when_vault_refuses(cli, served):
    side, _ = served
    code, out, err = cli("doctor")
    assert code == 0, out + err
    lines = out.splitlines()
    assert lines[-1] == "all checks passed"
    for name in ("stack reached", "dynamodb table", "state machine", "cf:cf authenticated",
                 "cf:cf scope to read all instances", "bosh:bosh authenticated and may read deployments",
                 "vault token valid", "vault may read/create/update/delete backups"):
        assert any(line.startswith("ok   " + name) for line in lines), (name, out)
    side.scenario.stack.vault.deny("secret/backups", "delete")
    try:
        code, out, _ = cli("doctor")
        code_json, out_json, _ = cli("doctor", "--json")
    finally:
        side.scenario.stack.vault.deny("secret/backups")
    assert code == 1 and code_json == 1
    (failed,) = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert "backups" in failed and "missing ['delete']" in failed and "-> fix:" in failed
    assert json.loads(out_json)["ok"] is False


def test_post_restore_on_the_function_url(served):
    from reconciler.cli.remote import StackClient, aws_session

    side, expected = served
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    client = StackClient(side.front.url + "/", aws_session(None, "us-east-1"))
    iid = expected["drift"]["stale_manifest"][0]
    unknown = client.request("POST", "/b/restore", {"instance_id": iid, "sha256": UUID_ZERO})
    assert unknown.status == 404 and "no backup" in unknown.body["error"] and "available:" in unknown.body["error"]
    nobody = client.request("POST", "/b/restore", {"instance_id": "7f0c4b6e-7a0c-4d8e-9b1f-3c2d1e0f9a88",
                                                   "sha256": UUID_ZERO})
    assert nobody.status == 404 and "has no backups" in nobody.body["error"]
    bad = client.request("POST", "/b/restore", {"instance_id": "x", "sha256": "y"})
    assert bad.status == 400 and "is not a UUID" in bad.body["error"]
    endpoint = side.scenario.stack.endpoints()["vault"]
    sha = list_backups(VaultClient(endpoint["address"], token=endpoint["token"]), iid)[0]["sha256"]
    before = side.scenario.vault_contents()
    diff = client.request("POST", "/b/restore", {"instance_id": iid, "sha256": sha, "dry_run": True})
    assert diff.status == 200 and diff.body["dry_run"] is True and "plan" in diff.body
    assert side.scenario.vault_contents() == before
    done = client.request("POST", "/b/restore", {"instance_id": iid, "sha256": sha})
    assert done.status == 200 and done.body["verified"] is True
