"""A 50,000-instance Vault world (five paths each) loads and lists through indexes, not scans."""

import uuid

import hvac

from mockstack.base import EmulatorServer
from mockstack.vault import VaultEmulator

INSTANCES = 50_000


def big_world():
    index = {}
    world = {"secret/db": index}
    for i in range(INSTANCES):
        guid = str(uuid.UUID(int=i + 1))
        index[guid] = {"service_id": "redis", "plan_id": "redis-small"}
        world[f"secret/{guid}"] = {"instance_id": guid}
        world[f"secret/{guid}/manifest"] = {"manifest": "name: x\n"}
        world[f"secret/{guid}/metadata"] = {"history": []}
        world[f"secret/{guid}/credentials"] = {"password": "x"}
    world["secret/backups/" + str(uuid.UUID(int=1)) + "/abc"] = {"archive": ""}
    return world


def test_large_world_loads_and_lists():
    emulator = VaultEmulator(big_world(), token="t")
    with EmulatorServer(emulator) as server:
        client = hvac.Client(server.url, token="t", timeout=30)
        keys = client.secrets.kv.v2.list_secrets("")["data"]["keys"]
        # each instance is a key and a folder, plus db and backups/
        assert len(keys) == 2 * INSTANCES + 2 and keys[-1] == "db"
        guid = str(uuid.UUID(int=777))
        assert client.secrets.kv.v2.list_secrets(guid)["data"]["keys"] == ["credentials", "manifest", "metadata"]
        client.secrets.kv.v2.delete_metadata_and_all_versions(f"{guid}/credentials")
        client.secrets.kv.v2.delete_metadata_and_all_versions(f"{guid}/manifest")
        client.secrets.kv.v2.delete_metadata_and_all_versions(f"{guid}/metadata")
        assert len(client.secrets.kv.v2.list_secrets("")["data"]["keys"]) == 2 * INSTANCES + 1  # folder gone
        assert len(client.secrets.kv.v2.read_secret_version("db", raise_on_deleted_version=True)["data"]["data"]) \
            == INSTANCES
