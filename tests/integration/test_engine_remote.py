"""The engine's remote mode (what the LocalStack tests use) deploying to a stand-in endpoint: a
moto server. It proves the deployment half here (real function zips, published layers, the
state machine, cleanup); running the functions needs a real Lambda service (LocalStack)."""

from __future__ import annotations

import hashlib
import io
import socket
import zipfile
from pathlib import Path

import pytest

from mockstack.aws import AwsEngine, EngineError

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_remote_mode_needs_an_endpoint():
    with pytest.raises(EngineError, match="needs endpoint="):
        AwsEngine(mode="remote")


def test_remote_deployment_uploads_real_packages_and_cleans_up(tmp_path):
    from moto.server import ThreadedMotoServer

    requirements = ROOT / "layers" / "dependencies" / "requirements.txt"
    key = hashlib.sha256(requirements.read_bytes() + b"3.12|manylinux2014_x86_64").hexdigest()[:16]
    fake = io.BytesIO()
    with zipfile.ZipFile(fake, "w") as archive:  # stands in for the pip-built layer (no download in tests)
        archive.writestr("python/placeholder.txt", "dependencies")
    (tmp_path / f"dependencies-{key}.zip").write_bytes(fake.getvalue())

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        engine = AwsEngine(mode="remote", endpoint=f"http://127.0.0.1:{port}", stack_name="remote1",
                           layer_cache=tmp_path)
        with engine:
            lam = engine.client("lambda")
            layers = {layer["LayerName"] for layer in lam.list_layers()["Layers"]}
            ours = {name for name in layers if name.startswith("remote1-")}
            assert ours == {"remote1-ReconcilerLayer", "remote1-DependenciesLayer"}
            begin = lam.get_function(FunctionName=engine.function_name("BeginFunction"))
            assert len(begin["Configuration"]["Layers"]) == 2
            assert begin["Configuration"]["Environment"]["Variables"]["STATE_TABLE"] == engine.tables["StateTable"]
            assert "MOCKSTACK_ENGINE_ID" not in begin["Configuration"]["Environment"]["Variables"]
            assert set(engine.tables) == {"CacheTable", "StateTable"}
            assert engine.client("stepfunctions").describe_state_machine(stateMachineArn=engine.state_machine_arn())
            created = list(engine.created)
        assert {kind for kind, _ in created} >= {"table", "role", "layer", "function", "state_machine"}
        # stop() removed what the deployment created
        import boto3

        from mockstack.aws import DEFAULT_REGION

        client = boto3.client("lambda", endpoint_url=f"http://127.0.0.1:{port}", region_name=DEFAULT_REGION,
                              aws_access_key_id="test", aws_secret_access_key="test")
        # (moto's backend is per process: other tests' resources may be there; none of ours is)
        assert [f for f in client.list_functions()["Functions"] if f["FunctionName"].startswith("remote1-")] == []
        ddb = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{port}", region_name=DEFAULT_REGION,
                           aws_access_key_id="test", aws_secret_access_key="test")
        assert [t for t in ddb.list_tables()["TableNames"] if t.startswith("remote1-")] == []
    finally:
        server.stop()
