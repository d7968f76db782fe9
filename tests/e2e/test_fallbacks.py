"""The degraded paths of the real state machine, driven by the mock stack's fault knobs:
CF (or its UAA) down -> BOSH-only run; BOSH down -> CF-only run; both down -> NoSourceAvailable;
Vault sealed in the middle of the update -> a failed run that dropped nothing."""

from __future__ import annotations

import pytest

from reconciler.backup import decode_backup
from reconciler.domain import FindingKind
from tests.e2e.support import (
    changed_paths,
    instance_of,
    intercept,
    scenario,
    small_world,
    store_of,
    vault_stack_options,
)
from tests.integration.vault_fixtures import BACKENDS

NO_FINDINGS = {kind.value: [] for kind in FindingKind}  # the report of a run that marked none

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def generated():
    return small_world(12, seed=3)


def _assert_nothing_lost(before: dict, after: dict, migrated: dict | None = None) -> None:
    """Every path survives and keeps every field it had (values may be refreshed); a legacy
    backup (``migrated``: the generator's ``legacy_backup_paths``) may move to secret/backups/<id>/."""
    gone = set(before) - set(after)
    assert gone - set(migrated or {}) == set()
    for path in gone:  # moved, not lost: its instance has a backup in the current format now
        iid = instance_of(path)
        assert any(p.startswith(f"secret/backups/{iid}/") and p not in before for p in after), path
    before = {p: d for p, d in before.items() if p not in gone}
    for path, data in before.items():
        assert set(data) <= set(after[path]), path


@pytest.mark.parametrize("down", ["cf", "uaa"])
def test_cf_down_runs_bosh_only_and_refreshes_only_what_vault_knows(generated, down):
    world, expected = generated
    known = set(world["vault"]["secret/db"])  # the index: what Vault already knows
    drift = expected["drift"]
    with scenario(world) as sc:
        before = sc.vault_contents()
        sc.set_faults({down: {"down": True}})
        run = sc.run_once()
        after = sc.vault_contents()
        orphans = sc.orphans()
        cf_reads = [e.path for e in sc.stack.servers["cf"].log.entries() if e.path.startswith("/v3")]
        store = store_of(sc)
        lock, errors, runs = store.current_lock(), store.recent_errors(), store.list_runs()

    assert run["status"] == "SUCCEEDED", run["cause"]
    out = run["output"]
    assert out["status"] == "succeeded_with_errors" and out["errors"] >= 1
    phases = out["phases"]
    assert phases["discover_cf"]["status"] == "failed"
    assert phases["discover_bosh"]["status"] == "ok" and phases["scan"]["scanned"] > 0
    assert phases["match"]["cf_available"] is False
    assert cf_reads == []  # no CF data was read

    changed = changed_paths(before, after)
    assert changed, "a BOSH-only run still refreshes what it can"
    assert {instance_of(p) for p in changed} - {None} <= known, "only instances the index knows are touched"
    assert set(after["secret/db"]) == set(before["secret/db"])  # no entry added (old orphan marks removed)
    for iid in drift.get("stale_manifest", []):
        if iid in known:
            assert after[f"secret/{iid}/manifest"] != before[f"secret/{iid}/manifest"], iid
    for iid in expected["recoverable_credentials"]:
        if iid in known:
            assert after.get(f"secret/{iid}/credentials") == expected["recovered_credentials"][iid], iid
    unknown = set(drift.get("lost_both", [])) | set(drift.get("bosh_orphans", []))
    assert unknown and not unknown & known
    for iid in unknown:  # BOSH alone never creates an instance Vault did not know
        assert not [p for p in after if instance_of(p) == iid and p not in before], iid
    assert set(after["secret/db"]) == set(before["secret/db"])  # no instance added to the index
    _assert_nothing_lost(before, after, expected["legacy_backup_paths"])

    assert orphans == NO_FINDINGS  # no CF-based orphan marking
    assert "cf" in phases["orphans"]["not_evaluated"]
    assert lock is None
    assert runs[0]["status"] == "succeeded_with_errors"
    assert len([e for e in errors if e["phase"] == "DiscoverCF"]) == 1  # recorded once


def test_bosh_down_runs_cf_only_without_infrastructure_or_recovery(generated, capfd):
    world, expected = generated
    with scenario(world) as sc:
        before = sc.vault_contents()
        sc.set_faults({"bosh": {"down": True}})
        capfd.readouterr()
        run = sc.run_once()
        logs = capfd.readouterr().out
        after = sc.vault_contents()
        orphans = sc.orphans()
        store = store_of(sc)
        lock, errors = store.current_lock(), store.recent_errors()

    assert run["status"] == "SUCCEEDED", run["cause"]
    out = run["output"]
    phases = out["phases"]
    assert out["status"] == "succeeded_with_errors"
    assert phases["discover_bosh"]["status"] == "failed" and phases["discover_cf"]["status"] == "ok"
    assert phases["scan"]["batches"] == 0 and "bosh" not in run["requests"]  # no infrastructure details
    assert phases["match"]["matched"] == 0 and phases["match"]["to_update"] == phases["discover_cf"]["instances"]

    changed = changed_paths(before, after)
    # no manifest, credential or forge-secret write: those come from BOSH
    infra = {p for p in changed if p.rsplit("/", 1)[-1] in ("manifest", "credentials", "postgresql", "system")
             and "/bindings/" not in p}
    assert infra == set(), sorted(infra)
    # no recovery attempted: every instance missing credentials is counted and logged as pending
    assert phases["apply"].get("credentials_unrecoverable", 0) == 0
    missing = [i for i in [*expected["recoverable_credentials"], *expected["unrecoverable_credentials"]]
               if i in expected["matched"]]
    assert phases["apply"].get("credentials_recovered", 0) == 0
    assert phases["apply"].get("credentials_pending", 0) == len(missing) > 0
    for iid in missing:
        assert f"secret/{iid}/credentials" not in after
        assert f"instance {iid}: credential recovery pending: credentials missing; BOSH was not available" in logs
    # without BOSH, whether an instance has a deployment is unknown: no entry is added (the broker's
    # sweep would drop a wrong guess within the hour); nothing is lost
    assert set(after["secret/db"]) == set(before["secret/db"])
    _assert_nothing_lost(before, after, expected["legacy_backup_paths"])

    # no BOSH-based orphan marking; operations in flight are CF's to tell
    assert orphans == {**NO_FINDINGS, "in_flight": sorted(expected["in_flight"])}
    assert "bosh" in phases["orphans"]["not_evaluated"]
    assert lock is None
    assert [e["target"] for e in errors if e["phase"] == "DiscoverBosh"] == ["bosh"], errors


def test_both_down_fails_with_no_source_and_changes_nothing(generated):
    world, _ = generated
    with scenario(world) as sc:
        before = sc.vault_contents()
        sc.set_faults({"cf": {"down": True}, "bosh": {"down": True}})
        run = sc.run_once()
        after = sc.vault_contents()
        store = store_of(sc)
        lock, runs, metrics = store.current_lock(), store.list_runs(), store.get_metrics()
        history = [e["type"] for e in sc.engine.history(run["execution_arn"])]

    assert (run["status"], run["error"]) == ("FAILED", "NoSourceAvailable")
    assert after == before  # Vault byte for byte as it was
    assert lock is None
    assert runs[0]["status"] == "failed" and runs[0]["error"]["error"] == "NoSourceAvailable"
    assert metrics["runs_failed"] == 1 and metrics.get("runs_successful", 0) == 0
    assert "MapStateEntered" not in history  # neither scan nor update started


@pytest.mark.parametrize("backend", BACKENDS)
def test_vault_sealed_mid_update_fails_clearly_and_drops_nothing(generated, backend):
    world, _ = generated
    writes: list[str] = []

    def seal_after_second_write(request, response):
        if request.method in ("POST", "PUT") and "/data/" in request.path and response.status < 300:
            writes.append(request.path)
            # an instance's backup and its first write went through (an instance whose tree was
            # lost entirely has nothing to back up: its writes may come first)
            if len(writes) >= 2 and writes[-2].startswith("/v1/secret/data/backups/"):
                sc.stack.vault.sealed = True

    with scenario(world, stack_options=vault_stack_options(backend)) as sc:
        before = sc.vault_contents()
        with intercept(sc.stack.vault, after=seal_after_second_write):
            run = sc.run_once()
        sc.stack.vault.sealed = False
        after = sc.vault_contents()
        store = store_of(sc)
        lock, runs, errors = store.current_lock(), store.list_runs(), store.recent_errors()

    assert run["status"] == "FAILED"
    assert run["error"] in ("VaultSealed", "Unavailable"), run["error"]
    assert "sealed" in (run["cause"] or "")
    assert lock is None
    assert runs[0]["status"] == "failed" and runs[0]["error"]["error"] == run["error"]
    assert any("sealed" in e["message"] for e in errors)
    assert len(writes) >= 2

    _assert_nothing_lost(before, after)
    changed = changed_paths(before, after)
    backups = {p for p in changed if p.startswith("secret/backups/")}
    touched = changed - backups
    assert touched, "the seal came after a real write"
    assert writes[-2].startswith("/v1/secret/data/backups/")  # backup first, then the write
    for path in touched & set(before):  # what the write replaced is in a backup made before it
        iid = instance_of(path)
        (backup,) = [p for p in backups if instance_of(p) == iid]
        decoded = decode_backup(after[backup], instance_id=iid, key=backup.rsplit("/", 1)[-1])
        assert decoded.tree[path] == before[path], path
