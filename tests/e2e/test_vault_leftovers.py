"""Vault contents that older Blacksmith versions or humans left behind, through the real state
machine: the run completes and nothing is lost. Every original value is still at its path, or
(when the reconciler rewrote the path) inside a backup archive of that instance."""

from __future__ import annotations

import copy

import pytest

from mockstack.generator import generate
from mockstack.runner import run_scenario
from reconciler import backup as bk

VOLATILE = {"updated_at", "reconciled_at"}
UPPER = "ABCDEF01-2345-4678-9ABC-DEF012345678"


def leftovers_world() -> tuple[dict, dict, dict]:
    world, expected = generate(5, seed=0)
    world = copy.deepcopy(world)
    vault = world["vault"]
    matched = next(iter(expected["matched"]))
    orphan = expected["orphans"]["vault"][0]
    db = vault["secret/db"]
    db["legacy-string-entry"] = "redis-small-something"  # a human's note, not a record
    db["0000000a-0000-4000-8000-00000000000a"] = ["a", "list", "entry"]
    db[UPPER] = {"service_id": "redis", "plan_id": "redis-small", "deployment_name": f"redis-small-{UPPER}",
                 "note": {"nested": {"deep": True}}}
    db[orphan] = "orphan-stored-as-a-string"  # an instance entry that is not a map
    vault[f"secret/{matched}/credentials"] = {"password": {"nested": {"deep": "n3sted-s3cret"}},
                                              "hosts": ["10.0.0.1", {"odd": 1}], "port": "6379"}
    root = vault[f"secret/{matched}"]
    root.update(instance_id=[matched], plan_id={"old": "shape"}, tags=["x", 1, None], human_note="keep me")
    vault[f"secret/{orphan}"] = {"instance_id": 12345, "deployment_name": ["a", "b"]}
    corrupt = {
        f"secret/{matched}/backups/{'a' * 64}": {"data": "!!! not base64 !!!", "timestamp": "yesterday"},
        f"secret/{matched}/backups/{'b' * 64}": {"weird": [1, 2, 3]},
        f"secret/{matched}/backups/{'c' * 64}": {"archive": "H4sIAAAAAAAA/wMAAAAAAAAAAAA=", "sha256": "x"},
    }
    vault.update(corrupt)
    return world, expected, {"matched": matched, "orphan": orphan, "corrupt": corrupt}


def backed_up_trees(final: dict, instance_id: str) -> list[dict]:
    trees = []
    for path, record in final.items():
        if path.startswith(f"secret/backups/{instance_id}/"):
            trees.append(bk.decode_backup(record, instance_id=instance_id, key=path.rsplit("/", 1)[-1]).tree)
    return trees


def kept(original: dict, now: dict) -> bool:
    return all(k in now and (now[k] == v or k == "history" and history_kept(v, now[k]))
               for k, v in original.items() if k not in VOLATILE)


def history_kept(original, now) -> bool:
    """Every original history entry is still there; its timestamp may be restamped in the broker's Unix seconds."""
    if not (isinstance(original, list) and isinstance(now, list)):
        return False
    def fields(entry):
        return {k: v for k, v in entry.items() if k != "timestamp"} if isinstance(entry, dict) else entry
    remaining = [fields(e) for e in now]
    return all(fields(e) in remaining for e in original)


@pytest.mark.slow
def test_vault_leftovers_are_never_lost():
    world, _expected, ids = leftovers_world()
    original = copy.deepcopy(world["vault"])
    report = run_scenario(world, runs=2)
    for run in report["runs"]:
        assert run["status"] == "SUCCEEDED", run["cause"]
    final = report["vault"]

    # secret/db: entries that are not maps, or not UUID keys, stay exactly as they were
    db = final["secret/db"]
    for key in ("legacy-string-entry", "0000000a-0000-4000-8000-00000000000a", ids["orphan"]):
        assert db.get(key) == original["secret/db"][key], key
    assert kept(original["secret/db"][UPPER], db[UPPER])  # may gain an orphan mark, loses nothing
    for key, entry in original["secret/db"].items():
        assert key in db and (kept(entry, db[key]) if isinstance(entry, dict) else db[key] == entry), key

    # corrupt legacy backups cannot be verified, so they are never removed
    for path, data in ids["corrupt"].items():
        assert final.get(path) == data, path

    # every other original path: still holding its values, or rewritten after a backup that holds them
    lost, via_backup = [], []
    for path, data in original.items():
        if path == "secret/db" or path in ids["corrupt"]:
            continue
        if path in final and kept(data, final[path]):
            continue
        instance_id = path.split("/")[1]
        migrated = any(p.startswith(f"secret/backups/{instance_id}/") for p in final)
        if path.split("/")[2:3] == ["backups"] and migrated:  # a legacy backup, now in secret/backups/<id>/
            continue
        if any(kept(data, tree.get(path) or {}) for tree in backed_up_trees(final, instance_id)):
            via_backup.append(path)
            continue
        lost.append(path)
    assert not lost, lost
    # the wrongly typed instance record was corrected, and its old values are in the backup
    assert f"secret/{ids['matched']}" in via_backup
    assert final[f"secret/{ids['matched']}"]["instance_id"] == ids["matched"]

    # nested credentials are left exactly as they were
    assert final[f"secret/{ids['matched']}/credentials"] == original[f"secret/{ids['matched']}/credentials"]
    assert final[f"secret/{ids['matched']}"]["human_note"] == "keep me"
