"""Plans from recorded changes (``reconciler.plans``) and the recording Vault's dry-run overlay."""

from __future__ import annotations

import pytest

from reconciler.errors import CasConflict
from reconciler.plans import Action, assemble, describe, field_changes, written_paths
from reconciler.recording import RecordingVault

IID = "0b7c3c1e-4a8f-4d1e-9f3a-2f6c1d0e9a11"


class DictVault:
    """Enough of VaultClient for the recorder: KV v2 semantics over a dict."""

    mount = "secret"
    kv_version = 2

    def __init__(self, data):
        self.data = {p: (dict(d), 1) for p, d in data.items()}
        self.writes = []

    def read(self, path):
        got = self.data.get(path)
        return None if got is None else (dict(got[0]), got[1])

    def write(self, path, data, *, cas=None):
        self.writes.append(path)
        version = (self.data[path][1] + 1) if path in self.data else 1
        self.data[path] = (dict(data), version)
        return version

    def delete(self, path):
        self.writes.append(path)
        self.data.pop(path, None)

    def list(self, folder):
        base = folder.rstrip("/") + "/"
        keys = set()
        for p in self.data:
            if p.startswith(base):
                rest = p[len(base):]
                keys.add(rest.split("/", 1)[0] + ("/" if "/" in rest else ""))
        return sorted(keys)


def test_dry_run_overlay_sees_its_own_writes_and_sends_none():
    inner = DictVault({f"secret/{IID}": {"a": 1}})
    vault = RecordingVault(inner, dry_run=True)
    assert vault.write(f"secret/{IID}/credentials", {"password": "hunter2-secret"}, cas=0) == 1
    assert vault.read(f"secret/{IID}/credentials") == ({"password": "hunter2-secret"}, 1)
    assert vault.list(f"secret/{IID}/") == ["credentials"]
    assert set(vault.read_tree(f"secret/{IID}")) == {f"secret/{IID}", f"secret/{IID}/credentials"}
    with pytest.raises(CasConflict):
        vault.write(f"secret/{IID}", {"a": 2}, cas=0)  # exists: cas 0 refused, as Vault would
    vault.delete(f"secret/backups/{IID}/old")
    assert inner.writes == []
    assert [c.op for c in vault.changes] == ["write", "delete"]


def test_real_run_recorder_passes_writes_through_without_reading():
    inner = DictVault({})
    vault = RecordingVault(inner, dry_run=False)
    vault.write(f"secret/{IID}", {"a": 1}, cas=0)
    assert inner.writes == [f"secret/{IID}"]
    (change,) = vault.changes
    assert change.existed is False and change.before is None and change.after is None


def test_secret_paths_show_keys_not_values():
    fields, _ = field_changes({"username": "u", "password": "old-pass"}, {"username": "u", "password": "new-pass",
                                                                            "port": 5432}, secret=True)
    assert fields == [{"field": "password", "change": "changed"}, {"field": "port", "change": "added"},
                      {"field": "username", "change": "unchanged"}]


def test_plain_paths_show_before_and_after_but_mask_secret_looking_keys():
    fields, unchanged = field_changes({"plan_id": "a", "api_token": "t1", "x": 1},
                                      {"plan_id": "b", "api_token": "t2", "x": 1}, secret=False)
    assert unchanged == 1
    assert {"field": "plan_id", "change": "changed", "before": "a", "after": "b"} in fields
    assert {"field": "api_token", "change": "changed"} in fields


def test_describe_and_assemble_group_by_instance_in_a_stable_order():
    changes = [
        {"op": "write", "path": f"secret/{IID}/metadata", "existed": True, "before": {"v": 1}, "after": {"v": 2}},
        {"op": "write", "path": f"secret/backups/{IID}/{'a' * 64}", "existed": False, "before": None,
         "after": {"paths": 3, "archive": "c2VjcmV0"}},
        {"op": "write", "path": f"secret/{IID}/credentials", "existed": False, "before": None,
         "after": {"password": "pw-value-1234"}},
        {"op": "delete", "path": f"secret/{IID}/backups/legacy1", "existed": True, "before": {"data": {}}},
        {"op": "write", "path": "secret/db", "existed": True, "before": {IID: {"plan_id": "p"}},
         "after": {IID: {"plan_id": "q"}}},
    ]
    plan = assemble([describe(changes, "secret")], run_id="r1", dry_run=True)
    (row,) = plan["instances"]
    assert [a["action"] for a in row["actions"]] == [Action.BACKUP, Action.CREATE, Action.UPDATE, Action.MIGRATE]
    assert "archive" not in str(plan) and "pw-value-1234" not in str(plan)
    assert plan["summary"]["index"] == {"added": 0, "removed": 0, "changed": 1}
    assert plan["index"]["entries"][0]["fields"] == [{"field": "plan_id", "change": "changed", "before": "p",
                                                      "after": "q"}]
    assert written_paths(plan) == {c["path"] for c in changes}
