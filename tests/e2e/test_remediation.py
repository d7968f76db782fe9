"""Auto-remediation through the real state machine: with ``vault_orphan: archive`` (30 days, 2
runs) exactly the Vault orphans old enough and seen in enough complete runs are archived, a dry
run plans it first, the next run writes nothing, and a restore brings one back byte-identical."""

from __future__ import annotations

from reconciler import backup as bk
from reconciler.apply import restore
from reconciler.vault import VaultClient
from tests.e2e.support import scenario, small_world, store_of

CONFIG = """\
reconciler:
  retry: {initial_delay: 100ms, max_delay: 1s}
  remediation:
    vault_orphan: {action: archive, archive_after: 30d, after_runs: 2}
    cf_orphan: report
"""
WRITES = {"PUT", "POST", "PATCH", "DELETE"}


def _age(store, ids, days_ago="2020-01-01T00:00:00Z"):
    """The findings ``ids`` were first seen long ago (time passes between runs in real life)."""
    state = store.get_orphans()
    for iid in ids:
        state["vault"][iid]["first_seen"] = days_ago
    store.put_orphans(state)


def _instance_paths(contents, iid):
    return {p: v for p, v in contents.items() if p == f"secret/{iid}" or p.startswith(f"secret/{iid}/")}


def test_exactly_the_old_enough_vault_orphans_are_archived_and_restore_undoes_it():
    world, expected = small_world(20, seed=5, vault_orphans=0.2)
    orphans = sorted(expected["orphans"]["vault"])
    assert len(orphans) >= 3
    old, young = orphans[: len(orphans) // 2 + 1], orphans[len(orphans) // 2 + 1:]
    with scenario(world, config_text=CONFIG) as sc:
        store = store_of(sc)
        first = sc.run_once()
        assert first["status"] == "SUCCEEDED", first["cause"]
        assert first["output"]["phases"]["orphans"]["remediation"]["archived"] == []  # seen once: waits
        assert sorted(sc.orphans()["vault"]) == orphans
        _age(store, old)
        before = sc.vault_contents()

        dry = sc.run_once(dry_run=True)  # the plan shows the archives first; nothing changes
        assert dry["status"] == "SUCCEEDED", dry["cause"]
        assert sc.vault_contents() == before
        plan = store.get_scratch(dry["output"]["run_id"], "plan")
        archived_in_plan = {row["instance_id"] for row in plan["instances"]
                            if any(a["action"] == "archive" for a in row["actions"])}
        index_only = {i for i in old if not _instance_paths(before, i)}
        assert archived_in_plan == set(old) - index_only
        removed = {e["key"] for e in plan["index"]["entries"] if e["change"] == "removed"}
        assert removed == {i for i in old if i in before["secret/db"]}

        second = sc.run_once()
        assert second["status"] == "SUCCEEDED", second["cause"]
        rem = second["output"]["phases"]["orphans"]["remediation"]
        assert sorted(a["instance_id"] for a in rem["archived"]) == old
        assert rem["waiting"] == len(young) and rem["failed"] == []
        after = sc.vault_contents()
        for iid in old:
            assert not _instance_paths(after, iid) and iid not in after["secret/db"]
            assert store.instance_history(iid)[-1]["event"] == "archived"
        for iid in young:
            assert _instance_paths(after, iid) == _instance_paths(before, iid)
        untouched = {p for p in before if not any(p.startswith(f"secret/{i}") for i in old) and p != "secret/db"}
        assert {p: after.get(p) for p in untouched} == {p: before[p] for p in untouched}
        run_record = store.get_run(second["output"]["run_id"])
        assert len(run_record["figures"]["orphans"]["remediation"]["archived"]) == len(old)

        third = sc.run_once()  # nothing left to do
        assert third["status"] == "SUCCEEDED", third["cause"]
        assert not WRITES & set(third["requests"].get("vault", {}))
        assert sorted(sc.orphans()["vault"]) == young

        target = next(i for i in old if _instance_paths(before, i) and i in before["secret/db"])
        sha = next(a["backup_sha256"] for a in rem["archived"] if a["instance_id"] == target)
        v = sc.stack.endpoints()["vault"]
        client = VaultClient(v["address"], token=v["token"], mount="secret", kv_version=v["kv_version"])
        result = restore(client, target, sha)
        assert result.index_restored
        back = sc.vault_contents()
        for path, value in _instance_paths(before, target).items():
            assert bk.canonical_json(back[path]) == bk.canonical_json(value), path
        assert set(_instance_paths(back, target)) == set(_instance_paths(before, target))
        assert bk.canonical_json(back["secret/db"][target]) == bk.canonical_json(before["secret/db"][target])
