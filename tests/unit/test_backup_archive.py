"""Pure backup logic: archive content, hashing, compression, legacy formats, retention, restore plans."""

import base64
import gzip
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler import backup as b
from reconciler.errors import InvalidInput

IID = "7d1f2c3a-1111-4222-8333-944455556666"
ROOT = f"secret/{IID}"
SECRET = "s3cr3t-Pa55word-XYZ"


def tree(**over):
    t = {
        ROOT: {"instance_id": IID, "service_id": "redis", "plan_id": "redis-small", "parameters": {"maxmem": "1g"},
               "updated_at": "2024-01-01T00:00:00Z"},
        f"{ROOT}/credentials": {"host": "10.0.0.5", "port": 6379, "password": SECRET},
        f"{ROOT}/manifest": {"manifest": "name: x\n" * 50, "updated_at": 1704397200},
        f"{ROOT}/metadata": {"history": [{"timestamp": 1, "action": "provision"}], "reconciled_at": 5},
        f"{ROOT}/bindings/b1/credentials": {"password": SECRET + "-b1"},
    }
    t.update(over)
    return t


INDEX = {"service_id": "redis", "plan_id": "redis-small", "organization_guid": "org-1", "reconciled_at": 9}


def test_archive_includes_root_and_index_and_roundtrips():
    built = b.build_backup(IID, tree(), INDEX, compression_level=9, now=1704397200.7)
    assert built.path == f"secret/backups/{IID}/{built.sha256}"
    assert built.record["timestamp"] == 1704397200
    assert built.record["format_version"] == 1 and built.record["compression"] == "zstd"
    decoded = b.decode_backup(built.record, instance_id=IID, key=built.sha256)
    assert decoded.tree == tree() and ROOT in decoded.tree
    assert decoded.index_entry == INDEX
    assert decoded.sha256 == built.sha256 and decoded.format == "v1"
    # the archive really is zstd of canonical JSON
    raw = b.decompress(base64.b64decode(built.record["archive"]))
    assert raw == b.canonical_json(json.loads(raw))


def test_hash_ignores_volatile_fields_but_not_real_changes():
    base = b.build_backup(IID, tree(), INDEX, now=1).sha256
    t2 = tree()
    t2[ROOT] = {**t2[ROOT], "updated_at": "2025-05-05T00:00:00Z"}
    t2[f"{ROOT}/metadata"] = {**t2[f"{ROOT}/metadata"], "reconciled_at": 999}
    assert b.build_backup(IID, t2, {**INDEX, "reconciled_at": 10}, now=2).sha256 == base
    # a new history entry, a changed parameter, a changed index field: new hash
    t3 = tree()
    t3[f"{ROOT}/metadata"] = {"history": [{"timestamp": 1, "action": "provision"}, {"timestamp": 2, "action": "x"}]}
    assert b.build_backup(IID, t3, INDEX, now=1).sha256 != base
    assert b.build_backup(IID, tree(**{f"{ROOT}/credentials": {"password": "other"}}), INDEX, now=1).sha256 != base
    assert b.build_backup(IID, tree(), {**INDEX, "plan_id": "big"}, now=1).sha256 != base
    # and the timestamp of the backup itself never enters the hash
    assert b.build_backup(IID, tree(), INDEX, now=123456).sha256 == base


def test_hash_independent_of_key_order():
    t = tree()
    reordered = {p: dict(reversed(list(v.items()))) for p, v in reversed(list(t.items()))}
    assert b.build_backup(IID, reordered, INDEX, now=1).sha256 == b.build_backup(IID, t, INDEX, now=1).sha256


def test_compression_levels_map_and_validate():
    assert b.zstd_level(1) == 1 and b.zstd_level(9) == 19
    assert sorted(b.ZSTD_LEVELS) == list(range(1, 10))
    for bad in (0, 10, "9", 2.5, True):
        with pytest.raises(InvalidInput, match="accepted 1-9"):
            b.zstd_level(bad)
    big = tree(**{f"{ROOT}/manifest": {"manifest": "instance_groups:\n- name: redis\n  vm_type: small\n" * 200}})
    s1 = b.build_backup(IID, big, INDEX, compression_level=1, now=1)
    s9 = b.build_backup(IID, big, INDEX, compression_level=9, now=1)
    assert s9.compressed_size <= s1.compressed_size < s1.raw_size
    assert s1.sha256 == s9.sha256  # the level never changes the identity


def test_paths_outside_tree_refused_and_legacy_backups_excluded():
    with pytest.raises(InvalidInput, match="outside the tree"):
        b.build_backup(IID, {"secret/db": {}}, None, now=1)
    with pytest.raises(InvalidInput, match="outside the tree"):
        b.build_backup(IID, {f"{ROOT}/backups/abc": {}}, None, now=1)
    assert b.in_instance_tree(ROOT, IID) and b.in_instance_tree(f"{ROOT}/x/y", IID)
    assert not b.in_instance_tree(f"{ROOT}x", IID) and not b.in_instance_tree(f"{ROOT}/backups/a", IID)


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "backups", "db", "x" * 200, None])
def test_instance_id_validated(bad):
    with pytest.raises(InvalidInput, match="invalid instance id"):
        b.instance_root(bad)


def test_tampered_archive_detected_and_secrets_not_in_message():
    built = b.build_backup(IID, tree(), INDEX, now=1)
    content = json.loads(b.decompress(base64.b64decode(built.record["archive"])))
    content["tree"][f"{ROOT}/credentials"]["password"] = "changed"
    rec = {**built.record, "archive": base64.b64encode(b.compress(b.canonical_json(content), 3)).decode()}
    with pytest.raises(InvalidInput) as err:
        b.decode_backup(rec, instance_id=IID, key=built.sha256)
    assert "does not match" in str(err.value) and SECRET not in str(err.value) and "changed" not in str(err.value)
    with pytest.raises(InvalidInput, match="not valid base64"):
        b.decode_backup({**built.record, "archive": "!!!"}, instance_id=IID)
    with pytest.raises(InvalidInput, match="unknown backup format"):
        b.decode_backup({"foo": 1}, instance_id=IID)
    with pytest.raises(InvalidInput, match="belongs to instance"):
        b.decode_backup(built.record, instance_id="other-id")


def legacy_blacksmith_record():
    return {"data": {"index": INDEX, "metadata": {"history": []}, "manifest": {"manifest": "name: x"},
                     "credentials": {"password": SECRET}}, "timestamp": 1700000000,
            "created_at": "2023-11-14T22:13:20Z", "sha256": "ab" * 32}


def legacy_gzip_record(doc):
    return {"timestamp": 1700000100, "archive": base64.b64encode(gzip.compress(json.dumps(doc).encode())).decode()}


def test_legacy_blacksmith_format():
    rec = legacy_blacksmith_record()
    assert b.record_format(rec) == "legacy-blacksmith"
    d = b.decode_backup(rec, instance_id=IID, key="ab" * 32)
    assert d.format == "legacy-blacksmith" and d.timestamp == 1700000000
    assert d.tree == {f"{ROOT}/metadata": {"history": []}, f"{ROOT}/manifest": {"manifest": "name: x"},
                      f"{ROOT}/credentials": {"password": SECRET}}
    assert d.index_entry == INDEX
    rebuilt = b.rebuild_as_current(d, compression_level=9)
    assert rebuilt.record["timestamp"] == 1700000000 and rebuilt.record["migrated_from"] == "legacy-blacksmith"
    assert b.same_backup(b.decode_backup(rebuilt.record, instance_id=IID, key=rebuilt.sha256), d)


def test_legacy_gzip_v1_export_and_safe_v2_export():
    doc = {f"{ROOT}/credentials": {"password": SECRET}, f"{ROOT}/manifest": {"manifest": "m"}}
    rec = legacy_gzip_record(doc)
    assert b.record_format(rec) == "legacy-gzip"
    d = b.decode_backup(rec, instance_id=IID, key="cd" * 32)
    assert d.tree == doc and d.timestamp == 1700000100
    assert any("no instance root" in n for n in d.notes)
    v2 = [{"export_version": 2, "requires_versioning": {"secret": True}, "data": {
        f"{ROOT}/credentials": {"versions": [{"value": {"password": "old"}}, {"value": {"password": SECRET}},
                                             {"deleted": True, "value": {"password": "gone"}}]},
        f"{ROOT}/x": {"versions": [{"destroyed": True}]},
        "secret/other-instance/credentials": {"versions": [{"value": {"a": "b"}}]}}}]
    d2 = b.decode_backup(legacy_gzip_record(v2), instance_id=IID)
    assert d2.tree == {f"{ROOT}/credentials": {"password": SECRET}}
    assert any("outside the instance tree" in n for n in d2.notes)
    with pytest.raises(InvalidInput, match="not valid gzip"):
        b.decode_backup({"archive": base64.b64encode(b"\x1f\x8bnotgzip").decode()}, instance_id=IID)


def test_retention_count_days_and_newest_kept():
    day = 86400
    now = 100 * day
    infos = [b.BackupInfo(f"{i:064x}", now - i * day) for i in range(10)]  # i days old
    # count only
    assert sorted(b.select_expired(infos, retention_count=3, retention_days=0, now=now)) == \
        sorted(f"{i:064x}" for i in range(3, 10))
    # days only: older than 4.5 days
    assert sorted(b.select_expired(infos, retention_count=0, retention_days=4.5, now=now)) == \
        sorted(f"{i:064x}" for i in range(5, 10))
    # both: the stricter wins per backup
    assert len(b.select_expired(infos, retention_count=8, retention_days=2, now=now)) == 7
    # unlimited
    assert b.select_expired(infos, retention_count=0, retention_days=0, now=now) == []
    # the newest survives even when everything is too old
    old = [b.BackupInfo(f"{i:064x}", i) for i in range(3)]
    kept = {x.sha256 for x in old} - set(b.select_expired(old, retention_count=0, retention_days=1, now=now))
    assert kept == {f"{2:064x}"}
    assert b.select_expired(old[:1], retention_count=1, retention_days=1, now=now) == []


@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=30, unique=True), st.integers(0, 10),
       st.floats(0, 20, allow_nan=False))
def test_retention_properties(stamps, count, days):
    infos = [b.BackupInfo(f"{i:064x}", t) for i, t in enumerate(stamps)]
    expired = set(b.select_expired(infos, retention_count=count, retention_days=days, now=10**6))
    newest = max(infos, key=lambda x: x.timestamp)
    assert newest.sha256 not in expired
    kept = len(infos) - len(expired)
    if count:
        assert kept <= max(count, 1)
    if not count and not days:
        assert not expired


def test_write_order_credentials_first_root_last():
    ws = [b.VaultWrite(path=p, data={}) for p in
          [ROOT, f"{ROOT}/metadata", f"{ROOT}/manifest", f"{ROOT}/credentials", f"{ROOT}/bindings/b1/metadata",
           f"{ROOT}/bindings/b1/credentials", f"{ROOT}/redis/admin"]]
    order = [w.path for w in b.order_writes(ws, IID)]
    assert order[:2] == [f"{ROOT}/bindings/b1/credentials", f"{ROOT}/credentials"]
    assert order[-3:] == [f"{ROOT}/manifest", f"{ROOT}/metadata", ROOT]
    assert b.is_credential_path(f"{ROOT}/redis/admin", IID) and not b.is_credential_path(f"{ROOT}/metadata", IID)
    assert b.overwritten_keys({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == ["b"]


def test_plan_restore():
    built = b.build_backup(IID, tree(), INDEX, now=1)
    d = b.decode_backup(built.record, instance_id=IID)
    current = {p: (v, 3) for p, v in tree().items()}
    current[f"{ROOT}/credentials"] = ({"password": "mutated"}, 4)
    del current[f"{ROOT}/manifest"]
    current[f"{ROOT}/new"] = ({"x": 1}, 1)
    plan = b.plan_restore(d, current)
    assert [(w.path, w.cas) for w in plan.writes] == [(f"{ROOT}/credentials", 4), (f"{ROOT}/manifest", 0)]
    assert plan.extra_paths == [f"{ROOT}/new"]
    one = b.plan_restore(d, current, path=f"{ROOT}/manifest")
    assert [w.path for w in one.writes] == [f"{ROOT}/manifest"]
    with pytest.raises(InvalidInput, match="has no path"):
        b.plan_restore(d, current, path=f"{ROOT}/nope")
