"""``python -m mockstack serve`` brings up the AWS side too: the template in the embedded engine
behind a LocalStack-style endpoint, the schedule trigger and the API's Function URL front. A
client starts a real execution with localstack-client and reads the API over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from mockstack.generator import generate
from mockstack.world import save_world

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _drain(stream, sink: list[str]) -> None:
    for line in stream:  # keeps the child from blocking on a full pipe (its functions log to stdout)
        sink.append(line)


def test_serve_starts_the_aws_side_and_runs_an_execution(tmp_path):
    from localstack_client.session import Session

    world, _ = generate(6, seed=5)
    path = save_world(world, tmp_path / "world.json")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'shared'}"}
    proc = subprocess.Popen([sys.executable, "-m", "mockstack", "serve", "--world", str(path), "--workdir",
                             str(tmp_path / "work"), "--aws-port", "0", "--bosh-task-steps", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    watchdog = threading.Timer(240, proc.kill)  # readline has no timeout of its own
    watchdog.start()
    out: list[str] = []
    err: list[str] = []
    try:
        line = proc.stdout.readline()
        assert line, "".join(proc.stderr.readlines()[-20:])
        ep = json.loads(line)
        for stream, sink in ((proc.stdout, out), (proc.stderr, err)):
            threading.Thread(target=_drain, args=(stream, sink), daemon=True).start()

        aws = ep["aws"]
        assert aws["endpoint"].startswith("http://127.0.0.1:") and aws["region"] == "us-east-1"
        assert aws["state_machine_arn"].endswith(":stateMachine:blacksmith-reconcile")
        assert set(aws["tables"]) == {"CacheTable", "StateTable"}
        assert ep["cf"]["api_url"] and ep["vault"]["address"]  # the emulators as before

        status = requests.get(f"{ep['api_url']}/b/status", timeout=30)
        assert status.status_code == 200 and status.json()["running"] is False

        session = Session(localstack_host=aws["endpoint"].removeprefix("http://"), region_name=aws["region"])
        sfn = session.client("stepfunctions")
        assert [m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]] == [aws["state_machine_arn"]]
        arn = sfn.start_execution(stateMachineArn=aws["state_machine_arn"],
                                  input=json.dumps({"source": "test", "forced": True}))["executionArn"]
        deadline = time.monotonic() + 180
        while (desc := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            assert time.monotonic() < deadline, "execution still running after 180 s"
            time.sleep(0.2)
        assert desc["status"] == "SUCCEEDED", desc.get("cause")
        output = json.loads(desc["output"])
        assert output["status"] in ("succeeded", "succeeded_with_errors")
        assert output["phases"]["discover_cf"]["instances"] > 0 and output["phases"]["scan"]["scanned"] > 0

        after = requests.get(f"{ep['api_url']}/b/status", timeout=30).json()
        assert after["running"] is False
        assert after["totals"]["runs"] == 1 and after["last_run_status"] == output["status"]

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert not any("Traceback" in line for line in err), "".join(err[-30:])
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{ep['api_url']}/b/status", timeout=2)


def test_serve_refuses_a_busy_aws_port_with_a_clear_message(tmp_path):
    import socket

    world, _ = generate(2, seed=1)
    path = save_world(world, tmp_path / "world.json")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'shared'}"}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "mockstack", "serve", "--world", str(path), "--aws-port",
                                 str(port)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert result.returncode == 2
    assert f"127.0.0.1:{port} is in use" in result.stderr and "--aws-port 0" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
