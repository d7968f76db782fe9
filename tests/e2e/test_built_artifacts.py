"""What `sam build` produces runs in the engine: every function in a python3.12 worker whose
sys.path is Lambda's (function folder, /opt/python from the built layers, the runtime's SDK),
so a missing dependency, a wrong handler path or a 3.12-only failure shows up here."""

from __future__ import annotations

import json
import socket
import subprocess
import textwrap
import uuid
from pathlib import Path

import pytest

from mockstack.aws import AwsEngine, EngineError, FunctionError
from mockstack.generator import generate
from mockstack.lambda_runtime import find_python
from mockstack.runner import run_scenario
from tests.e2e.support import assert_expected_outcome

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / ".aws-sam" / "build"
PYTHON312 = find_python("3.12")
NO_PYTHON312 = "no python3.12 (on PATH or from pyenv): the built artifacts run on the Lambda runtime's Python"

pytestmark = [pytest.mark.built, pytest.mark.skipif(PYTHON312 is None, reason=NO_PYTHON312)]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def built() -> Path:
    """`make build` (sam build, cached: a second build only copies what changed)."""
    if not (ROOT / ".venv-sam" / "bin" / "sam").is_file():
        pytest.skip("aws-sam-cli is not installed in .venv-sam (make sam): nothing to build the artifacts with")
    result = subprocess.run(["make", "--no-print-directory", "build"], cwd=ROOT, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return BUILD


def test_built_world_reconciles_twice_and_the_second_run_writes_nothing(built):
    world, expected = generate(12, seed=3, drift={"cf_orphans": 0.2})  # as test_expected_outcome
    options = {"artifacts": built, "python": PYTHON312, "stack_name": f"built{uuid.uuid4().hex[:8]}"}
    report = run_scenario(world, runs=2, mode="server", engine_options=options)
    assert_expected_outcome(report, world, expected)


# ---- a tiny built tree of our own: what the worker gives a function -------------------------

TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  Layer:
    Type: AWS::Serverless::LayerVersion
    Properties: {{ContentUri: Layer}}
  Probe:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: Probe
      Handler: {handler}
      Runtime: python3.12
      Layers: [!Ref Layer]
"""


def _tree(tmp_path: Path, code: str, handler: str = "app.handler") -> Path:
    (tmp_path / "Probe").mkdir()
    (tmp_path / "Probe" / "app.py").write_text(textwrap.dedent(code))
    (tmp_path / "Layer" / "python" / "helper").mkdir(parents=True)
    (tmp_path / "Layer" / "python" / "helper" / "__init__.py").write_text("NAME = 'from the layer'\n")
    (tmp_path / "template.yaml").write_text(TEMPLATE.format(handler=handler))
    return tmp_path


def _engine(tree: Path) -> AwsEngine:
    # moto's server-mode state is per process: a stack name of its own per engine
    return AwsEngine(artifacts=tree, mode="server", port=_free_port(), python=PYTHON312,
                     stack_name=f"probe{uuid.uuid4().hex[:8]}")


def test_sys_path_is_exactly_lambdas(tmp_path):
    tree = _tree(tmp_path, """\
        import sys, helper, boto3
        def handler(event, context):
            return {"path": sys.path, "version": sys.version_info[:2], "helper": helper.NAME,
                    "boto3": boto3.__version__, "remaining": context.get_remaining_time_in_millis() > 0}
        """)
    with _engine(tree) as engine:
        out = engine.invoke("Probe", {})
        code, opt, sdk, *stdlib = out["path"]
        assert Path(opt).name == "python" and (Path(opt) / "helper" / "__init__.py").is_file()  # the merged /opt
    assert code == str(tree / "Probe")
    assert Path(sdk).name.startswith("lambda-runtime-")
    assert stdlib and all("site-packages" not in p for p in stdlib)  # nothing but the standard library
    assert out["version"] == [3, 12] and out["helper"] == "from the layer" and out["remaining"]
    runtime_pins = (ROOT / "layers" / "lambda-runtime.txt").read_text()
    assert f"boto3=={out['boto3']}" in runtime_pins  # the runtime's SDK stand-in, not the test venv's


@pytest.mark.parametrize(("code", "handler", "error_type", "message"), [
    ("import yaml\ndef handler(e, c): return 1\n", "app.handler", "Runtime.ImportModuleError", "'yaml'"),
    ("def handler(e, c): return 1\n", "app.lambda_handler", "Runtime.HandlerNotFound", "lambda_handler"),
    ("def handler(e, c): return 1\n", "nope.handler", "Runtime.ImportModuleError", "No module named 'nope'"),
    # distutils left the standard library in 3.12: fine on the test venv's 3.11, not on Lambda
    ("import distutils\ndef handler(e, c): return 1\n", "app.handler", "Runtime.ImportModuleError", "distutils"),
    ("def handler(e, c): raise KeyError('x')\n", "app.handler", "KeyError", "'x'"),
])
def test_what_lambda_would_refuse_is_refused(tmp_path, code, handler, error_type, message):
    with _engine(_tree(tmp_path, code, handler)) as engine, pytest.raises(FunctionError) as err:
        engine.invoke("Probe", {})
    assert err.value.error_type == error_type
    assert message in json.dumps(err.value.payload)


def test_artifact_mode_needs_the_server_mode_and_a_build(tmp_path):
    with pytest.raises(EngineError, match="needs mode='server'"):
        AwsEngine(artifacts=tmp_path)
    with pytest.raises(EngineError, match="no built template.yaml there"):
        AwsEngine(artifacts=tmp_path, mode="server")


def test_invoke_runs_the_built_function(built, capsys):
    from mockstack.cli import main

    event = str(ROOT / "events" / "api-get-status.json")
    assert main(["invoke", "ApiFunction", "-e", event, "--built", str(built)]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["statusCode"] == 200 and "running" in json.loads(answer["body"])
