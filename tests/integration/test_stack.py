"""MockStack and ``python -m mockstack serve``: every emulator up on loopback, reachable with
the published URLs, credentials and CA, through real clients."""

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import hvac
import pytest
import requests
from cloudfoundry_client.client import CloudFoundryClient

from mockstack.stack import MockStack
from mockstack.world import sample_world, save_world

ROOT = Path(__file__).resolve().parents[2]


def stack_world(bosh_auth=None):
    world = sample_world(12)
    world["bosh"]["deployments"].append({
        "name": "redis-service-id-small-abc", "manifest": "name: redis-service-id-small-abc\n",
        "releases": [{"name": "redis", "version": "1.0"}], "stemcells": [{"name": "ubuntu-jammy", "version": "1.4"}],
        "teams": [], "locked": False,
        "vms": [{"job_name": "redis", "index": 0, "id": "11111111-2222-3333-4444-555555555555",
                 "vm_cid": "vm-1", "agent_id": "agent-1", "ips": ["10.0.0.5"], "dns": [], "az": "z1",
                 "active": True, "job_state": "running", "process_state": "running"}]})
    world["vault"] = {"secret/db": {"abc": {"plan_id": "redis-service-id-small"}},
                      "secret/abc/credentials": {"password": "pw"}}
    if bosh_auth:
        world["auth"] = {"bosh_auth": bosh_auth}
    return world


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with MockStack(stack_world(), tmp_path_factory.mktemp("stack")) as s:
        yield s


def test_endpoints_shape(stack):
    ep = stack.endpoints()
    assert set(ep) >= {"cf", "bosh", "vault", "admin", "ca_cert"}
    assert ep["cf"]["api_url"].startswith("http://127.0.0.1:")
    assert ep["bosh"]["url"].startswith("https://127.0.0.1:") and ep["bosh"]["auth"] == "uaa"
    assert ep["bosh"]["uaa_url"].startswith("https://127.0.0.1:")
    assert Path(ep["bosh"]["ca_cert"]).is_file()
    assert set(ep["admin"]) == {"uaa", "cf", "bosh_uaa", "bosh", "vault"}
    written = Path(ep["workdir"]) / "endpoints.json"
    assert json.loads(written.read_text()) == ep
    assert oct(written.stat().st_mode & 0o777) == "0o600"


def test_cf_through_cloudfoundry_client(stack):
    ep = stack.endpoints()["cf"]
    client = CloudFoundryClient(ep["api_url"], client_id=ep["client_id"], client_secret=ep["client_secret"])
    client.init_with_client_credentials()
    assert len(list(client.v3.service_instances.list(per_page=5))) == 15
    cli = CloudFoundryClient(ep["api_url"])
    cli.init_with_user_credentials(ep["username"], ep["password"])
    assert [b["name"] for b in cli.v3.service_brokers.list()] == ["blacksmith", "other-broker"]


def test_bosh_over_tls_with_uaa_token(stack):
    ep = stack.endpoints()["bosh"]
    info = requests.get(f"{ep['url']}/info", verify=ep["ca_cert"], timeout=10).json()
    assert info["user_authentication"]["type"] == "uaa"
    assert info["user_authentication"]["options"]["url"] == ep["uaa_url"]
    token = requests.post(f"{ep['uaa_url']}/oauth/token", data={"grant_type": "client_credentials"},
                          auth=(ep["client_id"], ep["client_secret"]), verify=ep["ca_cert"], timeout=10)
    assert token.status_code == 200
    deployments = requests.get(f"{ep['url']}/deployments", verify=ep["ca_cert"], timeout=10,
                               headers={"Authorization": f"bearer {token.json()['access_token']}"})
    assert deployments.status_code == 200
    assert [d["name"] for d in deployments.json()] == ["redis-service-id-small-abc"]
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{ep['url']}/info", timeout=10)  # not trusted without the published CA
    # a CF token is no good at the Director: separate UAAs, separate keys
    cf = stack.endpoints()["cf"]
    cf_token = requests.post(f"{cf['uaa_url']}/oauth/token", data={"grant_type": "client_credentials"},
                             auth=(cf["client_id"], cf["client_secret"]), timeout=10).json()["access_token"]
    rejected = requests.get(f"{ep['url']}/deployments", verify=ep["ca_cert"], timeout=10,
                            headers={"Authorization": f"bearer {cf_token}"})
    assert rejected.status_code == 401


def test_vault_through_hvac(stack):
    ep = stack.endpoints()["vault"]
    client = hvac.Client(url=ep["address"], token=ep["token"])
    assert client.is_authenticated()
    data = client.secrets.kv.v2.read_secret_version(path="abc/credentials", mount_point=ep["mount"],
                                                    raise_on_deleted_version=True)
    assert data["data"]["data"] == {"password": "pw"}


def test_request_counts_and_faults(stack):
    stack.reset()
    ep = stack.endpoints()
    requests.get(f"{ep['cf']['api_url']}/v3/info", timeout=5)
    requests.get(f"{ep['vault']['address']}/v1/sys/health", timeout=5)
    counts = stack.request_counts()
    assert counts["cf"] == {"GET": 1} and counts["vault"] == {"GET": 1}
    stack.set_faults("cf", error_rate=1.0, error_codes=[503])
    assert requests.get(f"{ep['cf']['api_url']}/v3/info", timeout=5).status_code == 503
    admin = requests.get(f"{ep['admin']['cf']}/requests", timeout=5).json()
    assert admin["counts"] == {"cf": {"GET": 2}}
    stack.reset()
    assert requests.get(f"{ep['cf']['api_url']}/v3/info", timeout=5).status_code == 200
    with pytest.raises(KeyError):
        stack.set_faults("nope", down=True)


def test_basic_auth_director_and_world_credentials(tmp_path):
    world = stack_world(bosh_auth="basic")
    world["auth"].update(bosh_basic={"username": "director", "password": "pw1"}, vault_token="root-token",
                         cf_client={"id": "rc", "secret": "rs"})
    with MockStack(world, tmp_path) as s:
        ep = s.endpoints()
        assert "bosh_uaa" not in s.servers and ep["bosh"]["uaa_url"] is None
        assert ep["cf"]["client_id"] == "rc" and ep["vault"]["token"] == "root-token"
        info = requests.get(f"{ep['bosh']['url']}/info", verify=ep["bosh"]["ca_cert"], timeout=10).json()
        assert info["user_authentication"]["type"] == "basic"
        r = requests.get(f"{ep['bosh']['url']}/deployments", auth=("director", "pw1"),
                         verify=ep["bosh"]["ca_cert"], timeout=10)
        assert r.status_code == 200


def test_tls_everywhere(tmp_path):
    with MockStack(stack_world(), tmp_path, tls=True) as s:
        ep = s.endpoints()
        assert ep["cf"]["api_url"].startswith("https://") and ep["cf"]["ca_cert"] == ep["ca_cert"]
        root = requests.get(f"{ep['cf']['api_url']}/", verify=ep["ca_cert"], timeout=10).json()
        assert root["links"]["login"]["href"] == ep["cf"]["uaa_url"]
        assert hvac.Client(url=ep["vault"]["address"], token=ep["vault"]["token"],
                           verify=ep["vault"]["ca_cert"]).is_authenticated()


def _run(*args, **kwargs):
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'shared'}"}
    return subprocess.run([sys.executable, "-m", "mockstack", *args], capture_output=True, text=True, env=env,
                          timeout=60, cwd=ROOT, **kwargs)


def test_cli_rejects_a_malformed_world_cleanly(tmp_path):
    world = stack_world()
    world["cf"]["service_instances"][3]["relationships"]["service_plan"]["data"]["guid"] = \
        "00000000-0000-0000-0000-000000000000"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(world))
    for command in ("serve", "validate"):
        result = _run(command, "--world", str(bad))
        assert result.returncode == 2
        assert "cf.service_instances[3].relationships.service_plan.data.guid" in result.stderr
        assert "Traceback" not in result.stderr and result.stdout == ""
    missing = _run("validate", "--world", str(tmp_path / "none.json"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_cli_validate_prints_counts(tmp_path):
    path = save_world(stack_world(), tmp_path / "w.json")
    result = _run("validate", "--world", str(path))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["cf"]["service_instances"] == 15 and summary["bosh_deployments"] == 1


def test_cli_serve_prints_endpoints_and_stops_on_sigterm(tmp_path):
    path = save_world(stack_world(), tmp_path / "w.json")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'shared'}"}
    proc = subprocess.Popen([sys.executable, "-m", "mockstack", "serve", "--no-aws", "--world", str(path), "--workdir",
                             str(tmp_path / "work")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=ROOT)
    watchdog = threading.Timer(60, proc.kill)  # readline has no timeout of its own
    watchdog.start()
    try:
        line = proc.stdout.readline()
        ep = json.loads(line)
        assert requests.get(f"{ep['cf']['api_url']}/v3/info", timeout=5).status_code == 200
        assert requests.get(f"{ep['bosh']['url']}/info", verify=ep["bosh"]["ca_cert"], timeout=5).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert "Traceback" not in proc.stderr.read()
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{ep['cf']['api_url']}/v3/info", timeout=2)


def test_cli_serve_stops_on_sigint(tmp_path):
    path = save_world(stack_world(), tmp_path / "w.json")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'shared'}"}
    proc = subprocess.Popen([sys.executable, "-m", "mockstack", "serve", "--no-aws", "--world", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    watchdog = threading.Timer(60, proc.kill)
    watchdog.start()
    try:
        assert json.loads(proc.stdout.readline())["vault"]["address"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_generated_world_serves_through_the_stack(tmp_path):
    from mockstack.generator import generate

    world, expected = generate(30, 5)
    with MockStack(world, tmp_path) as s:
        ep = s.endpoints()
        client = CloudFoundryClient(ep["cf"]["api_url"], client_id=ep["cf"]["client_id"],
                                    client_secret=ep["cf"]["client_secret"])
        client.init_with_client_credentials()
        listed = {i["guid"] for i in client.v3.service_instances.list(per_page=7)}
        assert listed == {i["guid"] for i in world["cf"]["service_instances"]}
        broker = expected["broker"]
        plans = list(client.v3.service_plans.list(service_broker_guids=[broker["guid"]]))
        assert plans and all(p["broker_catalog"]["id"] for p in plans)
        bindings = list(client.v3.service_credential_bindings.list(include="app", per_page=10))
        assert len(bindings) == len(world["cf"]["service_credential_bindings"])
