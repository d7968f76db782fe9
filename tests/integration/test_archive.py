"""Archiving an orphan's Vault data (auto-remediation) against the Vault emulator: verified
backup first, only the instance's own paths removed, restore brings it back byte-identical."""

import pytest

from reconciler import backup as bk
from reconciler.apply import BackupSettings, archive_instance, restore
from reconciler.errors import InvalidInput
from reconciler.plans import Action, assemble, describe
from reconciler.recording import RecordingVault
from tests.integration.vault_fixtures import IID, IID2, index_world, instance_world, vault_env

NOW = 1_704_400_000.0


def world():
    return {**instance_world(IID), **instance_world(IID2), **index_world(IID, IID2), "secret/handshake": {"x": 1}}


def test_archive_then_restore_is_byte_identical_and_touches_nothing_else():
    with vault_env(world()) as env:
        before = env.emulator.snapshot()
        res = archive_instance(env.client, IID, settings=BackupSettings(), now=NOW)
        assert not res.skipped and res.index_removed
        after = env.emulator.snapshot()
        assert env.tree(IID) == {} and IID not in after["secret/db"]
        assert sorted(res.removed) == sorted(p for p in before if p.startswith(f"secret/{IID}"))
        # everything else as it was; the backup is the only new path
        assert {p: v for p, v in after.items() if not p.startswith(f"secret/backups/{IID}/") and p != "secret/db"} \
            == {p: v for p, v in before.items() if not p.startswith(f"secret/{IID}") and p != "secret/db"}
        assert after["secret/db"][IID2] == before["secret/db"][IID2]
        record = env.emulator.read(f"secret/backups/{IID}/{res.backup_sha256}")
        assert record["paths"] == len(res.removed)

        out = restore(env.client, IID, res.backup_sha256, now=NOW + 60)
        assert out.index_restored
        restored = env.emulator.snapshot()
        for path, value in before.items():
            assert bk.canonical_json(restored[path]) == bk.canonical_json(value), path
        assert set(restored) - set(before) == {f"secret/backups/{IID}/{res.backup_sha256}"}


def test_a_dry_run_archive_is_planned_and_changes_nothing():
    with vault_env(world()) as env:
        before = env.emulator.snapshot()
        vault = RecordingVault(env.client, dry_run=True)
        res = archive_instance(vault, IID, settings=BackupSettings(), now=NOW)
        assert not res.skipped and env.emulator.snapshot() == before
        plan = assemble([describe([c.to_dict() for c in vault.changes], "secret")], run_id="r", dry_run=True)
        (row,) = plan["instances"]
        actions = [a["action"] for a in row["actions"]]
        assert actions[0] == Action.BACKUP and actions.count(Action.ARCHIVE) == len(res.removed)
        assert [e["change"] for e in plan["index"]["entries"]] == ["removed"]
        assert "redis-Pa55w0rd" not in str(plan)  # a plan never shows a secret


def test_an_interrupted_archive_resumes_from_its_backup():
    with vault_env(world()) as env:
        before = env.emulator.snapshot()
        seen = []

        class Interrupted(Exception):
            pass

        calls = {"n": 0}
        original = env.client.delete_archived

        def flaky(path, *, backup_path):
            calls["n"] += 1
            if calls["n"] == 3:
                raise Interrupted
            return original(path, backup_path=backup_path)

        env.client.delete_archived = flaky
        with pytest.raises(Interrupted):
            archive_instance(env.client, IID, settings=BackupSettings(), now=NOW, on_backup=seen.append)
        env.client.delete_archived = original
        res = archive_instance(env.client, IID, settings=BackupSettings(), now=NOW, resume_from=seen[0])
        assert res.backup_sha256 == seen[0] and not res.skipped and env.tree(IID) == {}
        restore(env.client, IID, seen[0], now=NOW + 60)
        assert env.tree(IID) == {p: v for p, v in before.items() if p.startswith(f"secret/{IID}")}


def test_nothing_is_removed_without_backups_and_the_adapter_refuses_other_paths():
    with vault_env(world()) as env:
        before = env.emulator.snapshot()
        res = archive_instance(env.client, IID, settings=BackupSettings(backup_on_delete=False), now=NOW)
        assert res.skipped and env.emulator.snapshot() == before
        with pytest.raises(InvalidInput, match="does not exist"):
            env.client.delete_archived(f"secret/{IID}/credentials", backup_path=f"secret/backups/{IID}/{'a' * 64}")
        with pytest.raises(InvalidInput, match="only an instance's own paths"):
            env.client.delete_archived("secret/db", backup_path=f"secret/backups/{IID}/{'a' * 64}")
        with pytest.raises(InvalidInput, match="not a backup of instance"):
            env.client.delete_archived(f"secret/{IID}", backup_path=f"secret/backups/{IID2}/{'a' * 64}")
        assert env.emulator.snapshot() == before
