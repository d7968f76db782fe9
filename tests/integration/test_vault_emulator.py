"""The Vault emulator driven by hvac (a client no one here wrote) through every call the reconciler uses."""

import base64
import json
import threading

import hvac
import pytest
import requests
from hvac import exceptions as hx

from mockstack.base import EmulatorServer
from mockstack.vault import VaultEmulator, format_duration, parse_duration

TOKEN = "root-token-for-tests"


def make_world():
    return {
        "secret/db": {"11111111-1111-1111-1111-111111111111": {"service_id": "redis", "plan_id": "redis-small"}},
        "secret/11111111-1111-1111-1111-111111111111": {"instance_id": "11111111-1111-1111-1111-111111111111"},
        "secret/11111111-1111-1111-1111-111111111111/credentials": {"password": "p1"},
        "secret/11111111-1111-1111-1111-111111111111/manifest": {"manifest": "name: x\n"},
        "secret/backups/11111111-1111-1111-1111-111111111111/abc": {"archive": "zz"},
    }


@pytest.fixture()
def vault():
    emulator = VaultEmulator(make_world(), token=TOKEN, aws_role="reconciler", extra_mounts={"kv1": 1})
    with EmulatorServer(emulator) as server:
        yield emulator, server, hvac.Client(server.url, token=TOKEN, timeout=5)


def test_read_seeded_secret_as_version_1(vault):
    _, _, client = vault
    got = client.secrets.kv.v2.read_secret_version("11111111-1111-1111-1111-111111111111/credentials",
                                                    raise_on_deleted_version=True)
    assert got["data"]["data"] == {"password": "p1"}
    assert got["data"]["metadata"]["version"] == 1
    assert got["data"]["metadata"]["deletion_time"] == "" and got["data"]["metadata"]["destroyed"] is False
    assert got["mount_type"] == "kv" and got["lease_id"] == ""


def test_content_type_is_exactly_application_json(vault):
    _, server, _ = vault
    ok = requests.get(f"{server.url}/v1/secret/data/db", headers={"X-Vault-Token": TOKEN}, timeout=5)
    missing = requests.get(f"{server.url}/v1/secret/data/nope", headers={"X-Vault-Token": TOKEN}, timeout=5)
    assert ok.headers["Content-Type"] == "application/json"
    assert missing.status_code == 404 and missing.headers["Content-Type"] == "application/json"
    assert missing.json() == {"errors": []}


def test_write_with_cas_and_conflict(vault):
    _, _, client = vault
    kv = client.secrets.kv.v2
    created = kv.create_or_update_secret("new/thing", {"a": 1}, cas=0)
    assert created["data"]["version"] == 1
    with pytest.raises(hx.InvalidRequest) as conflict:
        kv.create_or_update_secret("new/thing", {"a": 2}, cas=0)
    assert conflict.value.errors == ["check-and-set parameter did not match the current version"]
    assert kv.create_or_update_secret("new/thing", {"a": 2}, cas=1)["data"]["version"] == 2
    assert kv.create_or_update_secret("new/thing", {"a": 3})["data"]["version"] == 3  # no cas: allowed
    assert kv.read_secret_version("new/thing", version=2, raise_on_deleted_version=True)["data"]["data"] == {"a": 2}
    with pytest.raises(hx.InvalidPath):
        kv.read_secret_version("new/thing", version=9, raise_on_deleted_version=True)


def test_cas_required_on_key_and_on_engine(vault):
    _, _, client = vault
    kv = client.secrets.kv.v2
    kv.update_metadata("db", cas_required=True)
    with pytest.raises(hx.InvalidRequest) as required:
        kv.create_or_update_secret("db", {"x": 1})
    assert required.value.errors == ["check-and-set parameter required for this call"]
    assert kv.create_or_update_secret("db", {"x": 1}, cas=1)["data"]["version"] == 2
    kv.configure(cas_required=True)
    with pytest.raises(hx.InvalidRequest):
        kv.create_or_update_secret("other", {"x": 1})
    assert kv.read_configuration()["data"]["cas_required"] is True


def test_max_versions_prunes_oldest(vault):
    _, _, client = vault
    kv = client.secrets.kv.v2
    kv.update_metadata("h", max_versions=3)
    for i in range(5):
        kv.create_or_update_secret("h", {"i": i})
    meta = kv.read_secret_metadata("h")["data"]
    assert meta["current_version"] == 5 and sorted(meta["versions"]) == ["3", "4", "5"]
    assert meta["oldest_version"] == 3 and meta["max_versions"] == 3
    assert meta["delete_version_after"] == "0s"
    with pytest.raises(hx.InvalidPath):
        kv.read_secret_version("h", version=1, raise_on_deleted_version=True)


def test_soft_delete_undelete_destroy(vault):
    _, server, client = vault
    kv = client.secrets.kv.v2
    path = "11111111-1111-1111-1111-111111111111/credentials"
    kv.create_or_update_secret(path, {"password": "p2"}, cas=1)
    kv.delete_secret_versions(path, versions=[2])
    with pytest.raises(hx.InvalidPath) as gone:
        kv.read_secret_version(path, raise_on_deleted_version=True)
    body = gone.value.json  # hvac parsed it: the header is exactly application/json
    assert body["data"]["data"] is None and body["data"]["metadata"]["version"] == 2
    assert body["data"]["metadata"]["deletion_time"] != ""
    soft = kv.read_secret_version(path, raise_on_deleted_version=False)
    assert soft["data"]["data"] is None and soft["data"]["metadata"]["deletion_time"]
    assert kv.list_secrets("11111111-1111-1111-1111-111111111111")["data"]["keys"] == ["credentials", "manifest"]
    kv.undelete_secret_versions(path, versions=[2])
    assert kv.read_secret_version(path, raise_on_deleted_version=True)["data"]["data"] == {"password": "p2"}
    kv.destroy_secret_versions(path, versions=[1])
    with pytest.raises(hx.InvalidPath) as destroyed:
        kv.read_secret_version(path, version=1, raise_on_deleted_version=False)  # destroyed: deletion_time ""
    assert destroyed.value.json["data"]["metadata"] == {
        **destroyed.value.json["data"]["metadata"], "destroyed": True, "deletion_time": ""}
    no_versions = requests.post(f"{server.url}/v1/secret/delete/{path}", json={"versions": []},
                                headers={"X-Vault-Token": TOKEN}, timeout=5)  # hvac refuses to send this
    assert no_versions.status_code == 400 and no_versions.json() == {"errors": ["No version number provided"]}
    kv.delete_latest_version_of_secret(path)
    assert server.emulator.read("secret/" + path) is None


def test_list_folders_and_metadata_delete(vault):
    emulator, _, client = vault
    kv = client.secrets.kv.v2
    root = kv.list_secrets("")["data"]["keys"]
    assert root == ["11111111-1111-1111-1111-111111111111", "11111111-1111-1111-1111-111111111111/", "backups/",
                    "db"]
    with pytest.raises(hx.InvalidPath):
        kv.list_secrets("nothing-here")
    kv.delete_metadata_and_all_versions("backups/11111111-1111-1111-1111-111111111111/abc")
    assert "backups/" not in kv.list_secrets("")["data"]["keys"]  # the empty folder disappears
    with pytest.raises(hx.InvalidPath):
        kv.read_secret_metadata("backups/11111111-1111-1111-1111-111111111111/abc")
    assert "secret/backups/11111111-1111-1111-1111-111111111111/abc" not in emulator.snapshot()


def test_list_via_get_list_true(vault):
    _, server, _ = vault
    r = requests.get(f"{server.url}/v1/secret/metadata/?list=true", headers={"X-Vault-Token": TOKEN}, timeout=5)
    assert r.status_code == 200 and "db" in r.json()["data"]["keys"]
    r = requests.request("LIST", f"{server.url}/v1/secret/metadata/11111111-1111-1111-1111-111111111111/",
                         headers={"X-Vault-Token": TOKEN}, timeout=5)
    assert r.json()["data"]["keys"] == ["credentials", "manifest"]


def test_metadata_only_key_and_custom_metadata(vault):
    _, _, client = vault
    kv = client.secrets.kv.v2
    kv.update_metadata("pre/made", max_versions=2, custom_metadata={"owner": "reconciler"},
                       delete_version_after="1h30m")
    meta = kv.read_secret_metadata("pre/made")["data"]
    assert meta["current_version"] == 0 and meta["versions"] == {}
    assert meta["custom_metadata"] == {"owner": "reconciler"} and meta["delete_version_after"] == "1h30m0s"
    assert "made" in kv.list_secrets("pre")["data"]["keys"]
    with pytest.raises(hx.InvalidPath):
        kv.read_secret_version("pre/made", raise_on_deleted_version=True)
    written = kv.create_or_update_secret("pre/made", {"k": "v"}, cas=0)["data"]
    assert written["custom_metadata"] == {"owner": "reconciler"} and written["deletion_time"] != ""


def test_bad_input_answers_400_with_a_clear_error(vault):
    _, server, client = vault
    h = {"X-Vault-Token": TOKEN}
    r = requests.post(f"{server.url}/v1/secret/data/x", data="{nope", headers=h, timeout=5)
    assert r.status_code == 400 and "failed to parse JSON" in r.json()["errors"][0]
    r = requests.post(f"{server.url}/v1/secret/data/x", json={"options": {}}, headers=h, timeout=5)
    assert r.json() == {"errors": ["no data provided"]}
    r = requests.post(f"{server.url}/v1/secret/data/x", json={"data": {"a": 1}, "options": {"cas": "1"}},
                      headers=h, timeout=5)
    assert r.status_code == 400 and "options.cas" in r.json()["errors"][0]
    with pytest.raises(hx.InvalidRequest, match="max_versions"):
        client.secrets.kv.v2.update_metadata("x", max_versions=-1)
    r = requests.get(f"{server.url}/v1/secret/data/db?version=abc", headers=h, timeout=5)
    assert r.status_code == 400 and "version" in r.json()["errors"][0]


def test_v1_style_path_on_v2_mount_and_root(vault):
    _, server, _ = vault
    h = {"X-Vault-Token": TOKEN}
    r = requests.get(f"{server.url}/v1/secret/db", headers=h, timeout=5)
    assert r.status_code == 404 and r.json()["data"] is None and "versioned K/V" in r.json()["warnings"][0]
    r = requests.get(f"{server.url}/v1/secret/data", headers=h, timeout=5)
    assert r.status_code == 404 and "root of a K/V v2 mount" in r.json()["warnings"][0]
    r = requests.get(f"{server.url}/v1/nomount/x", headers=h, timeout=5)
    assert r.status_code == 404 and "no handler for route" in r.json()["errors"][0]


def test_kv_v1_mount_and_version_detection():
    emulator = VaultEmulator({"secret/db": {"a": "1"}, "secret/x/credentials": {"p": "q"}}, token=TOKEN, kv_version=1)
    with EmulatorServer(emulator) as server:
        client = hvac.Client(server.url, token=TOKEN, timeout=5)
        mounts = client.sys.list_mounted_secrets_engines()
        assert mounts["data"]["secret/"]["options"] == {"version": "1"} and mounts["data"]["secret/"]["type"] == "kv"
        assert mounts["secret/"] == mounts["data"]["secret/"]  # sys injector: also at the top level
        assert client.sys.retrieve_mount_option("secret", "version", "1") == "1"
        kv1 = client.secrets.kv.v1
        assert kv1.read_secret("db")["data"] == {"a": "1"}
        assert kv1.list_secrets("")["data"]["keys"] == ["db", "x/"]
        assert kv1.create_or_update_secret("x/more", {"b": "2"}).status_code == 204
        assert kv1.list_secrets("x")["data"]["keys"] == ["credentials", "more"]
        kv1.delete_secret("x/more")
        with pytest.raises(hx.InvalidPath):
            kv1.read_secret("x/more")
        ui = requests.get(f"{server.url}/v1/sys/internal/ui/mounts/secret/db", headers={"X-Vault-Token": TOKEN},
                          timeout=5).json()
        assert ui["data"]["options"]["version"] == "1" and ui["data"]["path"] == "secret/"
        assert emulator.snapshot() == {"secret/db": {"a": "1"}, "secret/x/credentials": {"p": "q"}}


def test_ui_mounts_detects_v2_and_hides_unknown(vault):
    _, server, _ = vault
    h = {"X-Vault-Token": TOKEN}
    ui = requests.get(f"{server.url}/v1/sys/internal/ui/mounts/secret/db", headers=h, timeout=5).json()
    assert ui["data"]["options"] == {"version": "2"} and ui["data"]["type"] == "kv"
    unknown = requests.get(f"{server.url}/v1/sys/internal/ui/mounts/nope/x", headers=h, timeout=5)
    assert unknown.status_code == 403 and unknown.json() == {"errors": ["permission denied"]}


def test_bad_token_is_403_permission_denied(vault):
    _, server, _ = vault
    bad = hvac.Client(server.url, token="wrong", timeout=5)
    with pytest.raises(hx.Forbidden) as denied:
        bad.secrets.kv.v2.read_secret_version("db", raise_on_deleted_version=True)
    assert denied.value.errors == ["permission denied"]
    assert bad.is_authenticated() is False
    anonymous = requests.get(f"{server.url}/v1/secret/data/db", timeout=5)
    assert anonymous.status_code == 403
    bearer = requests.get(f"{server.url}/v1/secret/data/db", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert bearer.status_code == 200


def test_lookup_self_root(vault):
    _, _, client = vault
    data = client.auth.token.lookup_self()["data"]
    assert data["policies"] == ["root"] and data["expire_time"] is None and data["ttl"] == 0
    assert client.is_authenticated() is True


def test_sealed_is_503_everywhere_but_health(vault):
    emulator, server, client = vault
    emulator.sealed = True
    with pytest.raises(hx.VaultDown) as down:
        client.secrets.kv.v2.read_secret_version("db", raise_on_deleted_version=True)
    assert down.value.errors == ["Vault is sealed"]
    with pytest.raises(hx.VaultDown):
        client.auth.token.lookup_self()
    health = client.sys.read_health_status(method="GET")
    assert health.status_code == 503 and health.json()["sealed"] is True and "cluster_id" not in health.json()
    assert client.sys.read_health_status(method="HEAD").status_code == 503
    assert client.sys.is_sealed() is True
    assert client.sys.read_health_status(method="GET", sealed_code=200)["sealed"] is True
    emulator.sealed = False
    assert client.secrets.kv.v2.read_secret_version("db", raise_on_deleted_version=True)["data"]["data"]


def test_health_codes_and_overrides(vault):
    emulator, server, client = vault
    assert client.sys.read_health_status(method="GET")["initialized"] is True
    emulator.standby = True
    assert client.sys.read_health_status(method="GET").status_code == 429
    assert client.sys.read_health_status(method="GET", standby_ok=True)["standby"] is True
    assert client.sys.read_health_status(method="GET", standby_code=299).status_code == 299
    emulator.standby, emulator.performance_standby = False, True
    assert client.sys.read_health_status(method="GET").status_code == 473
    assert requests.get(f"{server.url}/v1/sys/health?perfstandbyok=true", timeout=5).status_code == 200
    emulator.performance_standby, emulator.initialized = False, False
    assert client.sys.read_health_status(method="GET").status_code == 501
    bad = requests.get(f"{server.url}/v1/sys/health?activecode=abc", timeout=5)
    assert bad.status_code == 400 and "activecode" in bad.json()["errors"][0]


def test_aws_iam_login_issues_a_working_token(vault):
    _, server, _ = vault
    client = hvac.Client(server.url, timeout=5)
    login = client.auth.aws.iam_login("AKIAIOSFODNN7EXAMPLE", "not-a-real-secret", session_token="tok",
                                      role="reconciler")
    token = login["auth"]["client_token"]
    assert token and client.token == token and login["auth"]["metadata"]["auth_type"] == "iam"
    assert client.secrets.kv.v2.read_secret_version("db", raise_on_deleted_version=True)["data"]["data"]
    me = client.auth.token.lookup_self()["data"]
    assert me["path"] == "auth/aws/login" and "reconciler" in me["policies"] and me["ttl"] > 0
    with pytest.raises(hx.InvalidRequest, match="role"):
        hvac.Client(server.url, timeout=5).auth.aws.iam_login("AKIAIOSFODNN7EXAMPLE", "x", role="someone-else")


def test_aws_login_checks_the_request_shape(vault):
    _, server, _ = vault
    url = f"{server.url}/v1/auth/aws/login"

    def b64(text):
        return base64.b64encode(text.encode()).decode()

    good = {"iam_http_request_method": "POST", "iam_request_url": b64("https://sts.amazonaws.com/"),
            "iam_request_body": b64("Action=GetCallerIdentity&Version=2011-06-15"),
            "iam_request_headers": b64(json.dumps({"Authorization": ["AWS4-HMAC-SHA256 Credential=AKIA/x"],
                                                   "X-Amz-Date": ["20240101T000000Z"]})),
            "role": "reconciler"}
    assert requests.post(url, json=good, timeout=5).status_code == 200
    unsigned = {**good, "iam_request_headers": b64(json.dumps({"Authorization": ["Basic abc"],
                                                               "X-Amz-Date": ["x"]}))}
    r = requests.post(url, json=unsigned, timeout=5)
    assert r.status_code == 400 and "AWS4-HMAC-SHA256" in r.json()["errors"][0]
    r = requests.post(url, json={**good, "iam_request_url": "%%%"}, timeout=5)
    assert r.status_code == 400 and "iam_request_url" in r.json()["errors"][0]
    r = requests.post(url, json={k: v for k, v in good.items() if k != "iam_request_body"}, timeout=5)
    assert r.status_code == 400 and "iam_request_body" in r.json()["errors"][0]


def test_aws_login_disabled_without_role():
    with EmulatorServer(VaultEmulator({}, token=TOKEN)) as server:
        r = requests.post(f"{server.url}/v1/auth/aws/login", json={}, timeout=5)
        assert r.status_code == 404


def test_concurrent_writes_are_serialised(vault):
    emulator, server, _ = vault
    errors = []

    def worker(n):
        try:
            client = hvac.Client(server.url, token=TOKEN, timeout=10)
            for i in range(10):
                client.secrets.kv.v2.create_or_update_secret(f"conc/{n}", {"i": i})
                client.secrets.kv.v2.create_or_update_secret("conc-shared", {"n": n, "i": i})
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert emulator.current_version("secret/conc-shared") == 80
    assert len(hvac.Client(server.url, token=TOKEN).secrets.kv.v2.list_secrets("conc")["data"]["keys"]) == 8
    assert server.log.count("vault", "POST") == 160


def test_faults_answer_in_vault_shape(vault):
    _, server, client = vault
    server.set_faults(error_rate=1.0, error_codes=[503])
    with pytest.raises(hx.VaultDown):
        client.secrets.kv.v2.read_secret_version("db", raise_on_deleted_version=True)
    server.set_faults(error_rate=1.0, error_codes=[500])
    with pytest.raises(hx.InternalServerError) as err:
        client.secrets.kv.v2.read_secret_version("db", raise_on_deleted_version=True)
    assert err.value.errors == ["injected fault 500"]
    server.set_faults(error_rate=0.0, rate_limit_rps=1, retry_after_s=2)
    statuses = [requests.get(f"{server.url}/v1/sys/health", timeout=5) for _ in range(3)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited and limited[0].headers["Retry-After"] == "2" and limited[0].json()["errors"]
    server.reset_faults()
    server.set_faults(reset_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.url}/v1/sys/health", timeout=5)
    server.set_faults(reset_rate=0.0, down=True)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.url}/v1/sys/health", timeout=5)
    server.set_faults(down=False, latency_s=0.05, jitter_s=0.01)
    server.log.clear()
    assert client.sys.read_health_status(method="GET")["sealed"] is False
    entry = server.log.entries("vault")[0]
    assert entry.end - entry.start >= 0.05 and entry.status == 200


def test_world_errors_name_the_path():
    with pytest.raises(ValueError, match="not a key under a known KV mount"):
        VaultEmulator({"other/x": {}}, token=TOKEN)
    with pytest.raises(ValueError, match=r"secret/x.*expected an object"):
        VaultEmulator({"secret/x": "text"}, token=TOKEN)
    with pytest.raises(ValueError, match="token"):
        VaultEmulator({}, token="")


def test_durations():
    assert parse_duration("3h25m19s", "d") == 12319 and parse_duration("0s", "d") == 0
    assert parse_duration(90, "d") == 90 and format_duration(12319) == "3h25m19s" and format_duration(60) == "1m0s"
    with pytest.raises(Exception, match="invalid duration"):
        parse_duration("soon", "d")


def test_a_bad_world_entry_loads_nothing():
    emulator = VaultEmulator({"secret/keep": {"a": 1}}, token=TOKEN)
    with pytest.raises(ValueError, match="other/x"):
        emulator.load({"secret/new": {"b": 2}, "other/x": {}})
    assert emulator.snapshot() == {"secret/keep": {"a": 1}}
