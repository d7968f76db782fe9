"""Applying plans to the Vault emulator: backup first, cas writes, write economy, ordering,
failures per instance, the index cas-retry path."""

import copy
import logging

import pytest

from reconciler import backup as bk
from reconciler.apply import BackupSettings, apply_instance, apply_plan, write_index
from reconciler.errors import CasConflict, InvalidInput
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


def plan_for(iid, *, history_note="reconciled", manifest_extra=""):
    """What the domain planner would produce after a scan: root, manifest and metadata refreshed."""
    w = instance_world(iid)
    root = f"secret/{iid}"
    meta = copy.deepcopy(w[f"{root}/metadata"])
    meta["history"].append({"timestamp": 1704400000, "action": "reconcile", "description": history_note})
    return [
        VaultWrite(path=root, data={**w[root], "reconciled": True, "updated_at": "2024-01-04T20:26:40Z"}),
        VaultWrite(path=f"{root}/manifest", data={**w[f"{root}/manifest"],
                                                 "manifest": w[f"{root}/manifest"]["manifest"] + manifest_extra}),
        VaultWrite(path=f"{root}/metadata", data=meta),
    ]


def world2():
    return {**instance_world(IID), **instance_world(IID2), **index_world(IID, IID2)}


def test_first_apply_backs_up_then_writes_second_apply_writes_nothing():
    with vault_env(world2()) as env:
        before = env.tree(IID)
        index = env.client.read_data("secret/db")
        plans = {IID: plan_for(IID), IID2: plan_for(IID2)}
        report = apply_plan(env.client, plans, settings=BackupSettings(), index=index, now=NOW)
        assert report.figures["written"] == 2 and report.figures["backups_written"] == 2
        assert report.figures["writes"] == 4 and report.figures["failed"] == 0
        # the backup holds the tree as it was before the writes (root included) and the index entry
        (sha,) = env.backup_keys(IID)
        rec = env.emulator.read(f"secret/backups/{IID}/{sha}")
        decoded = bk.decode_backup(rec, instance_id=IID, key=sha)
        assert decoded.tree == before and f"secret/{IID}" in decoded.tree
        assert decoded.index_entry == index[IID]
        assert rec["timestamp"] == int(NOW) and rec["format_version"] == 1 and rec["compression"] == "zstd"
        assert env.emulator.read(f"secret/{IID}")["reconciled"] is True
        # second run, same world: zero write calls, zero backups
        env.server.log.clear()
        index = env.client.read_data("secret/db")
        again = apply_plan(env.client, {IID: plan_for(IID), IID2: plan_for(IID2)}, settings=BackupSettings(),
                           index=index, now=NOW + 3600)
        assert env.writes() == 0
        assert again.figures["backups_written"] == 0 and again.figures["unchanged"] == 2
        assert again.instances[0].writes_skipped == 3  # root, manifest, metadata all equal now
        assert len(env.backup_keys(IID)) == 1


def test_empty_plan_costs_no_request():
    with vault_env(world2()) as env:
        env.client.kv_version  # noqa: B018
        env.server.log.clear()
        report = apply_plan(env.client, {IID: [], IID2: []}, settings=BackupSettings(), now=NOW)
        assert report.figures["unchanged"] == 2 and env.server.log.count("vault") == 0


def test_write_order_credentials_first_root_last_and_cas():
    with vault_env(world2()) as env:
        root = f"secret/{IID}"
        writes = plan_for(IID, manifest_extra="# changed\n") + [
            VaultWrite(path=f"{root}/bindings/b-2/credentials", data={"password": "x"}),
            VaultWrite(path=f"{root}/bindings/b-2/metadata", data={"app_guid": "a2"})]
        env.server.log.clear()
        apply_instance(env.client, IID, list(reversed(writes)), settings=BackupSettings(enabled=False), now=NOW)
        posted = [e.path for e in env.server.log.entries("vault", "POST")]
        base = f"/v1/secret/data/{IID}"
        assert posted == [f"{base}/bindings/b-2/credentials", f"{base}/bindings/b-2/metadata", f"{base}/manifest",
                          f"{base}/metadata", base]
        assert env.emulator.current_version(root) == 2  # written with cas on version 1
        assert env.backup_keys(IID) == []  # backups disabled


def test_hold_judges_the_tree_read_before_the_backup_and_nothing_is_written():
    world = {**world2(), f"secret/{IID}/task": {"action": "update", "state": "in_progress", "updated_at": 1}}
    with vault_env(world) as env:
        seen = {}

        def hold(iid, tree):
            seen[iid] = dict(tree)
            return "broker task update in_progress" if f"secret/{iid}/task" in tree else ""

        env.server.log.clear()
        report = apply_plan(env.client, {IID: plan_for(IID, manifest_extra="# changed\n"),
                                         IID2: plan_for(IID2, manifest_extra="# changed\n")},
                            settings=BackupSettings(), now=NOW, hold=hold)
        held, written = report.instances
        assert (held.status, held.held, held.writes, held.backup_sha256) == (
            "held", "broker task update in_progress", 0, None)
        assert written.status == "written" and report.figures["held"] == 1
        assert seen[IID][f"secret/{IID}/task"][0]["state"] == "in_progress"  # the tree as read, task included
        assert env.backup_keys(IID) == [] and "# changed" not in env.emulator.read(f"secret/{IID}/manifest")["manifest"]
        assert not [e for e in env.server.log.entries("vault", "POST") if IID in e.path]


def test_a_path_the_plan_read_as_absent_is_not_read_again_for_the_backup():
    world = world2()
    del world[f"secret/{IID}"]  # the root record is lost
    with vault_env(world) as env:
        plan_read = {f"secret/{IID}": None,
                     f"secret/{IID}/manifest": env.client.read(f"secret/{IID}/manifest")}
        env.server.log.clear()
        apply_instance(env.client, IID, [VaultWrite(path=f"secret/{IID}", data={"x": 1})],
                       settings=BackupSettings(), now=NOW, known=plan_read)
        gets = [e.path for e in env.server.log.entries("vault", "GET")]
        assert f"/v1/secret/data/{IID}" not in gets and f"/v1/secret/data/{IID}/manifest" not in gets
        assert f"/v1/secret/data/{IID}/credentials" in gets  # the rest of the tree: read for the backup
        assert env.emulator.read(f"secret/{IID}") == {"x": 1}


def test_second_attempt_over_its_own_half_written_tree_takes_no_backup():
    """A lost tree (no index entry) gets no backup: nothing to protect. When the first attempt
    wrote only its credentials and failed, the second attempt finds nothing but its own writes
    and takes none either; a path holding other data is backed up as always."""
    lost = {k: v for k, v in world2().items() if not k.startswith(f"secret/{IID}")}
    plan = plan_for(IID) + [VaultWrite(path=f"secret/{IID}/credentials", data={"password": "recovered"})]
    with vault_env(lost) as env:
        env.client.write(f"secret/{IID}/credentials", {"password": "recovered"}, cas=0)  # the failed first try
        result = apply_instance(env.client, IID, plan, settings=BackupSettings(), now=NOW)
        assert (result.status, result.writes, result.writes_skipped) == ("written", 3, 1)
        assert result.backup_sha256 is None and env.backup_keys(IID) == []
    with vault_env(lost) as env:
        env.client.write(f"secret/{IID}/credentials", {"password": "recovered"}, cas=0)
        env.client.write(f"secret/{IID}/manifest", {"manifest": "someone else's"}, cas=0)
        result = apply_instance(env.client, IID, plan, settings=BackupSettings(), now=NOW)
        assert result.status == "written" and result.backup_created and len(env.backup_keys(IID)) == 1


def test_backup_on_update_false_writes_without_backup():
    with vault_env(world2()) as env:
        apply_instance(env.client, IID, plan_for(IID), settings=BackupSettings(backup_on_update=False), now=NOW)
        assert env.backup_keys(IID) == [] and env.emulator.read(f"secret/{IID}")["reconciled"] is True


def test_failed_instance_recorded_batch_goes_on():
    with vault_env(world2()) as env:
        stale = [VaultWrite(path=f"secret/{IID}", data={"x": 1}, cas=7)]  # planned against a version long gone
        creds = [VaultWrite(path=f"secret/{IID2}/credentials", data={"password": "new-one"})]
        outside = [VaultWrite(path=f"secret/{IID2}/credentials", data={})]
        report = apply_plan(env.client, {IID: stale, IID2: creds, "bad/id": outside, "abc": plan_for(IID2)},
                            settings=BackupSettings(), now=NOW)
        by = {r.instance_id: r for r in report.instances}
        assert by[IID].status == "failed" and "CasConflict" in by[IID].error
        # credentials are never overwritten
        assert by[IID2].status == "failed" and "credential key(s) ['host', 'password', 'port']" in by[IID2].error
        assert "new-one" not in by[IID2].error
        assert by["bad/id"].status == "failed" and "invalid instance id" in by["bad/id"].error
        assert by["abc"].status == "failed" and "outside its tree" in by["abc"].error
        assert env.emulator.read(f"secret/{IID2}/credentials")["password"] != "new-one"
        # a backup was taken for IID before its (failed) write, none for the refused one
        assert len(env.backup_keys(IID)) == 1 and env.backup_keys(IID2) == []


def test_new_credential_keys_and_missing_credentials_are_written():
    world = world2()
    del world[f"secret/{IID}/credentials"]
    with vault_env(world) as env:
        rec = [VaultWrite(path=f"secret/{IID}/credentials", data={"password": "recovered"}, cas=0),
               VaultWrite(path=f"secret/{IID2}/credentials", data={**instance_world(IID2)[f"secret/{IID2}/credentials"],
                                                                  "uri": "redis://..."})]
        report = apply_plan(env.client, {IID: rec[:1], IID2: rec[1:]}, settings=BackupSettings(), now=NOW)
        assert report.figures["written"] == 2, report.to_dict()
        assert env.emulator.read(f"secret/{IID}/credentials") == {"password": "recovered"}


def test_sealed_aborts_batch_without_storm():
    with vault_env(world2()) as env:
        env.client.kv_version  # noqa: B018
        env.emulator.sealed = True
        env.server.log.clear()
        report = apply_plan(env.client, {IID: plan_for(IID), IID2: plan_for(IID2)}, settings=BackupSettings(),
                            now=NOW)
        assert report.aborted and "VaultSealed" in report.aborted
        assert [r.status for r in report.instances] == ["failed", "skipped"]
        assert env.server.log.count("vault") == 1


def test_no_write_when_backup_fails():
    class FailingBackups:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def write(self, path, data, *, cas=None):
            if path.startswith("secret/backups/"):
                raise CasConflict("simulated", api="vault")
            return self.inner.write(path, data, cas=cas)

        def read(self, path):
            if path.startswith("secret/backups/"):
                return None
            return self.inner.read(path)

    with vault_env(world2()) as env:
        before = env.tree(IID)
        from reconciler.apply import _store_verified  # noqa: F401 - module import check
        vault = FailingBackups(env.client)
        # scan finds nothing, the cas=0 write "conflicts": treated as identical content stored by someone else,
        # so to simulate a hard failure make the write raise InvalidInput instead
        vault.write = lambda path, data, cas=None: (_ for _ in ()).throw(InvalidInput("backup store failed")) \
            if path.startswith("secret/backups/") else env.client.write(path, data, cas=cas)
        report = apply_plan(vault, {IID: plan_for(IID)}, settings=BackupSettings(), now=NOW)
        assert report.instances[0].status == "failed" and "backup store failed" in report.instances[0].error
        assert env.tree(IID) == before  # nothing written after a failed backup


def test_dedup_volatile_only_changes_and_refresh_of_older_identical_backup():
    with vault_env(world2()) as env:
        s = BackupSettings(retention_count=0)
        apply_instance(env.client, IID, plan_for(IID, history_note="A"), settings=s, now=NOW)
        assert len(env.backup_keys(IID)) == 1
        # only a volatile field changed since: the next backup has the same sha -> not stored again
        w = VaultWrite(path=f"secret/{IID}", data={**env.emulator.read(f"secret/{IID}"), "updated_at": "later"})
        r1 = apply_instance(env.client, IID, [w], settings=s, now=NOW + 10)
        assert r1.backup_created  # the state after run 1 (new history entry) was not backed up yet
        w2 = VaultWrite(path=f"secret/{IID}", data={**env.emulator.read(f"secret/{IID}"), "updated_at": "later2"})
        r = apply_instance(env.client, IID, [w2], settings=s, now=NOW + 20)
        assert r.status == "written" and not r.backup_created
        assert len(env.backup_keys(IID)) == 2  # the original state + the state after run 1 (A)


def test_retention_count_and_days_and_cleanup_flag():
    with vault_env(world2()) as env:
        day = 86400
        s = BackupSettings(retention_count=3, retention_days=0)
        for i in range(5):
            apply_instance(env.client, IID, plan_for(IID, history_note=f"run {i}"), settings=s, now=NOW + i * day)
        keys = env.backup_keys(IID)
        assert len(keys) == 3
        stamps = sorted(env.emulator.read(f"secret/backups/{IID}/{k}")["timestamp"] for k in keys)
        assert stamps == [int(NOW) + 2 * day, int(NOW) + 3 * day, int(NOW) + 4 * day]
        # days: only backups younger than 2.5 days survive (the newest is always kept)
        s_days = BackupSettings(retention_count=0, retention_days=2.5)
        apply_instance(env.client, IID, plan_for(IID, history_note="run 5"), settings=s_days, now=NOW + 6 * day)
        stamps = sorted(env.emulator.read(f"secret/backups/{IID}/{k}")["timestamp"] for k in env.backup_keys(IID))
        assert stamps == [int(NOW) + 4 * day, int(NOW) + 6 * day]
        # cleanup disabled: nothing removed however old
        off = BackupSettings(retention_count=1, retention_days=1, cleanup_enabled=False)
        apply_instance(env.client, IID, plan_for(IID, history_note="run 6"), settings=off, now=NOW + 30 * day)
        assert len(env.backup_keys(IID)) == 3
        # everything expired by days: the newest still stays
        apply_instance(env.client, IID, plan_for(IID, history_note="run 7"),
                       settings=BackupSettings(retention_count=0, retention_days=1), now=NOW + 400 * day)
        stamps = [env.emulator.read(f"secret/backups/{IID}/{k}")["timestamp"] for k in env.backup_keys(IID)]
        assert stamps == [int(NOW) + 400 * day]


def test_index_cas_conflict_broker_fields_survive():
    with vault_env(world2()) as env:
        calls = []

        def merge(current):
            calls.append(copy.deepcopy(current))
            if len(calls) == 1:
                # the broker writes between our read and our write
                broker = copy.deepcopy(current)
                broker[IID]["status"] = "updating"
                broker["new-instance"] = {"service_id": "redis", "requested_at": "now"}
                env.emulator.load({"secret/db": broker})
            current[IID]["reconciled"] = True
            current[IID2]["reconciled"] = True
            return current

        result = write_index(env.client, merge)
        assert result.written and result.attempts == 2 and result.version == 3
        db = env.emulator.read("secret/db")
        assert db[IID]["status"] == "updating" and db["new-instance"]["requested_at"] == "now"
        assert db[IID]["reconciled"] is True and db[IID2]["reconciled"] is True
        # nothing to change: no write
        env.server.log.clear()
        again = write_index(env.client, lambda cur: cur)
        assert not again.written and env.writes() == 0


def test_index_gives_up_after_bounded_attempts():
    with vault_env(world2()) as env:
        n = [0]

        def always_raced(current):
            n[0] += 1
            env.emulator.load({"secret/db": {**current, f"race-{n[0]}": {}}})
            return {**current, "ours": {}}

        with pytest.raises(CasConflict, match="after 3 attempts"):
            write_index(env.client, always_raced, max_attempts=3)
        assert n[0] == 3 and "ours" not in env.emulator.read("secret/db")


def test_index_created_when_absent_and_kv1():
    with vault_env(instance_world(), kv_version=1) as env:
        r = write_index(env.client, lambda cur: {**cur, IID: {"service_id": "redis"}})
        assert r.written and r.version is None
        assert env.emulator.read("secret/db") == {IID: {"service_id": "redis"}}
        report = apply_plan(env.client, {IID: plan_for(IID)}, settings=BackupSettings(), now=NOW)
        assert report.figures["written"] == 1 and report.figures["backups_written"] == 1


def test_secrets_never_logged(caplog):
    caplog.set_level(logging.DEBUG)
    with vault_env(world2()) as env:
        apply_plan(env.client, {IID: plan_for(IID), IID2: [VaultWrite(path=f"secret/{IID2}/credentials",
                                                                      data={"password": "other"})]},
                   settings=BackupSettings(), index=env.client.read_data("secret/db"), now=NOW)
        write_index(env.client, lambda cur: {**cur, "x": {}})
    assert "backed up" in caplog.text
    for secret in (*SECRETS, "other", PASSWORD):
        assert secret not in caplog.text
