"""Backups against the Vault emulator: legacy migration (both formats), restore round-trips."""

import base64
import gzip
import json
import logging

import pytest

from reconciler import backup as bk
from reconciler.apply import (
    BackupSettings,
    apply_instance,
    backup_instance,
    list_backups,
    migrate_all_legacy,
    migrate_legacy_backups,
    restore,
)
from reconciler.errors import InvalidInput, NotFound
from reconciler.models import VaultWrite
from tests.integration.vault_fixtures import (
    IID,
    IID2,
    PASSWORD,
    SECRETS,
    index_world,
    instance_world,
    vault_backend,  # noqa: F401 - fixture
    vault_env,
)

# every test against the emulator and a real OpenBao
pytestmark = pytest.mark.usefixtures("vault_backend")

NOW = 1_704_400_000.0
LEGACY_SHA = "1" * 64
GO_SHA = "2" * 64


def blacksmith_legacy(iid=IID):
    w = instance_world(iid)
    return {"data": {"index": index_world(iid)["secret/db"][iid], "metadata": w[f"secret/{iid}/metadata"],
                     "manifest": w[f"secret/{iid}/manifest"], "credentials": w[f"secret/{iid}/credentials"]},
            "timestamp": 1690000000, "created_at": "2023-07-22T04:26:40Z", "sha256": LEGACY_SHA}


def go_legacy(iid=IID):
    w = instance_world(iid)
    export = {p: v for p, v in w.items() if p != f"secret/{iid}"}  # the Go reconciler left the root out
    blob = gzip.compress(json.dumps(export).encode())
    return {"timestamp": 1695000000, "archive": base64.b64encode(blob).decode()}


def legacy_world():
    return {**instance_world(IID), **instance_world(IID2), **index_world(IID, IID2),
            f"secret/{IID}/backups/{LEGACY_SHA}": blacksmith_legacy(),
            f"secret/{IID}/backups/index": {"backups": [{"sha256": LEGACY_SHA, "timestamp": 1690000000}]},
            f"secret/backups/{IID}/{GO_SHA}": go_legacy(),
            f"secret/backups/{IID2}/{GO_SHA}": go_legacy(IID2)}


def test_migrates_both_legacy_formats_and_only_then_removes_them():
    with vault_env(legacy_world()) as env:
        result = migrate_legacy_backups(env.client, IID, settings=BackupSettings(), now=NOW)
        assert not result.failed and result.removed_legacy_index
        assert sorted(m["format"] for m in result.migrated) == ["legacy-blacksmith", "legacy-gzip"]
        snap = env.emulator.snapshot()
        assert not [p for p in snap if p.startswith(f"secret/{IID}/backups/")]  # legacy folder emptied
        assert f"secret/backups/{IID}/{GO_SHA}" not in snap
        keys = env.backup_keys(IID)
        assert len(keys) == 2 and {m["to"] for m in result.migrated} == set(keys)
        by_ts = {}
        for k in keys:
            rec = snap[f"secret/backups/{IID}/{k}"]
            d = bk.decode_backup(rec, instance_id=IID, key=k)
            by_ts[rec["timestamp"]] = d
            assert rec["format_version"] == 1 and rec["migrated_from"] in ("legacy-blacksmith", "legacy-gzip")
        w = instance_world(IID)
        # original timestamps kept; content identical to what the legacy records held
        assert by_ts[1690000000].tree == {p: w[p] for p in (f"secret/{IID}/metadata", f"secret/{IID}/manifest",
                                                             f"secret/{IID}/credentials")}
        assert by_ts[1690000000].index_entry == index_world(IID)["secret/db"][IID]
        assert by_ts[1695000000].tree == {p: v for p, v in w.items() if p != f"secret/{IID}"}
        # instance data untouched; the other instance's legacy backup untouched by this call
        assert env.tree(IID) == w
        assert f"secret/backups/{IID2}/{GO_SHA}" in snap
        # idempotent: a second migration finds nothing and writes nothing
        env.server.log.clear()
        again = migrate_legacy_backups(env.client, IID, settings=BackupSettings(), now=NOW)
        assert not again.migrated and env.writes() == 0


def test_unreadable_legacy_backup_is_kept():
    world = legacy_world()
    world[f"secret/{IID}/backups/{'3' * 64}"] = {"data": {"credentials": "not-an-object"}, "timestamp": 1}
    world[f"secret/backups/{IID}/{'4' * 64}"] = {"timestamp": 2, "archive": base64.b64encode(b"\x1f\x8bxx").decode()}
    with vault_env(world) as env:
        result = migrate_legacy_backups(env.client, IID, settings=BackupSettings(), now=NOW)
        assert len(result.migrated) == 2 and len(result.failed) == 2
        snap = env.emulator.snapshot()
        assert f"secret/{IID}/backups/{'3' * 64}" in snap and f"secret/backups/{IID}/{'4' * 64}" in snap
        assert f"secret/{IID}/backups/index" in snap  # kept while something is left to migrate
        assert not result.removed_legacy_index


def test_sweep_and_apply_migrate():
    with vault_env(legacy_world()) as env:
        results = migrate_all_legacy(env.client, settings=BackupSettings(), now=NOW)
        assert {r.instance_id: len(r.migrated) for r in results} == {IID: 2, IID2: 1}
        assert all(rec.get("format_version") == 1 for p, rec in env.emulator.snapshot().items()
                   if p.startswith("secret/backups/"))
    with vault_env(legacy_world()) as env:  # apply migrates the instances it touches
        w = VaultWrite(path=f"secret/{IID}", data={**instance_world()[f"secret/{IID}"], "reconciled": True})
        r = apply_instance(env.client, IID, [w], settings=BackupSettings(retention_count=0), now=NOW)
        assert r.legacy_migrated == 2 and r.backup_created
        assert len(env.backup_keys(IID)) == 3


def test_restore_roundtrip_whole_tree_and_index():
    with vault_env({**instance_world(), **index_world(IID)}) as env:
        c = env.client
        original_tree, original_db = env.tree(), env.emulator.read("secret/db")
        tree = c.read_tree(f"secret/{IID}")
        out = backup_instance(c, IID, tree=tree, index_entry=original_db[IID], settings=BackupSettings(), now=NOW)
        sha = out.sha256
        # mutate: change credentials, drop a binding secret's value, change the root and the index entry
        env.emulator.load({f"secret/{IID}/credentials": {"password": "mutated"},
                           f"secret/{IID}": {"instance_id": IID},
                           f"secret/{IID}/bindings/b-1/credentials": {},
                           "secret/db": {**original_db, IID: {"service_id": "wrong"}, "other": {"x": 1}}})
        res = restore(c, IID, sha, now=NOW + 60)
        assert env.tree() == original_tree  # identical
        db = env.emulator.read("secret/db")
        assert db[IID] == original_db[IID] and db["other"] == {"x": 1}  # others' entries kept
        assert res.index_restored and sorted(res.restored) == sorted(
            [f"secret/{IID}", f"secret/{IID}/credentials", f"secret/{IID}/bindings/b-1/credentials"])
        # the mutated state was backed up first
        assert res.pre_restore_backup and res.pre_restore_backup != sha
        pre = bk.decode_backup(env.emulator.read(f"secret/backups/{IID}/{res.pre_restore_backup}"), instance_id=IID)
        assert pre.tree[f"secret/{IID}/credentials"] == {"password": "mutated"}
        # restoring again changes nothing
        env.server.log.clear()
        again = restore(c, IID, sha, now=NOW + 120)
        assert again.restored == [] and not again.index_restored
        # the pre-restore backup deduplicates to `sha` (same content); the only write re-stamps it as the
        # newest backup, so retention keeps the state Vault holds now
        assert [e.path for e in env.server.log.entries("vault", "POST")] == [f"/v1/secret/data/backups/{IID}/{sha}"]
        assert env.writes() == 1
        listed = list_backups(c, IID)
        assert [b["sha256"] for b in listed] == [sha, res.pre_restore_backup]
        assert listed[0]["timestamp"] == int(NOW) + 120


def test_restore_one_path_and_errors(caplog):
    caplog.set_level(logging.DEBUG)
    with vault_env({**instance_world(), **index_world(IID)}) as env:
        c = env.client
        sha = backup_instance(c, IID, tree=c.read_tree(f"secret/{IID}"), index_entry=None,
                              settings=BackupSettings(), now=NOW).sha256
        env.emulator.load({f"secret/{IID}/credentials": {"password": "mutated"},
                           f"secret/{IID}/manifest": {"manifest": "changed"}})
        res = restore(c, IID, sha, path=f"secret/{IID}/credentials", now=NOW + 1)
        assert res.restored == [f"secret/{IID}/credentials"]
        assert env.emulator.read(f"secret/{IID}/credentials")["password"] == PASSWORD
        assert env.emulator.read(f"secret/{IID}/manifest") == {"manifest": "changed"}  # only that path
        with pytest.raises(NotFound, match="available"):
            restore(c, IID, "f" * 64)
        with pytest.raises(InvalidInput, match="has no path"):
            restore(c, IID, sha, path=f"secret/{IID}/nope")
        with pytest.raises(InvalidInput, match="invalid backup id"):
            restore(c, IID, "../../db")
        # a tampered backup is refused, nothing written
        rec = env.emulator.read(f"secret/backups/{IID}/{sha}")
        env.emulator.load({f"secret/backups/{IID}/{sha}": {**rec, "sha256": "0" * 64}})
        env.server.log.clear()
        with pytest.raises(InvalidInput, match="does not match"):
            restore(c, IID, sha)
        assert env.writes() == 0
    for s in (*SECRETS, "mutated"):
        assert s not in caplog.text


def test_restore_from_migrated_legacy_backup():
    with vault_env(legacy_world()) as env:
        result = migrate_legacy_backups(env.client, IID, settings=BackupSettings(), now=NOW)
        go = next(m["to"] for m in result.migrated if m["format"] == "legacy-gzip")
        env.emulator.load({f"secret/{IID}/credentials": {"password": "lost"}})
        restore(env.client, IID, go, now=NOW)
        assert env.emulator.read(f"secret/{IID}/credentials")["password"] == PASSWORD


def test_figures_compression_levels(record_property):
    """Archive sizes of a typical instance (real manifest text) at levels 1 and 9."""
    with vault_env({**instance_world(), **index_world(IID)}) as env:
        tree = {p: d for p, (d, _v) in env.client.read_tree(f"secret/{IID}").items()}
    with open("/work/shared/api-reference/manifests/redis-boshrelease--manifests-redis.yml") as fh:
        tree[f"secret/{IID}/manifest"] = {"manifest": fh.read() * 3}
    sizes = {}
    for level in (1, 5, 9):
        built = bk.build_backup(IID, tree, index_world(IID)["secret/db"][IID], compression_level=level, now=NOW)
        sizes[level] = (built.raw_size, built.compressed_size, len(built.record["archive"]))
        record_property(f"level{level}", sizes[level])
    raw = sizes[1][0]
    assert sizes[9][1] <= sizes[1][1] < raw
    print(f"raw={raw} " + " ".join(f"L{k}: zstd={v[1]} b64={v[2]} ratio={raw / v[1]:.2f}" for k, v in sizes.items()))
