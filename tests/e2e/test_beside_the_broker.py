"""The real state machine beside a model of the live broker (mockstack/broker.py) acting on
the same emulated Vault over HTTP: the hourly sweep between runs, an index write of the
broker racing ours, provisions and deletes in flight. After any of them a whole broker cycle
(two sweeps, two runs) changes the index only by the counted name-mismatch restorations, no
history entry of ours is filtered away by the broker's next append, no credential is lost."""

from __future__ import annotations

import time

from mockstack.broker import HISTORY_RETENTION_DAYS, entries_changed, for_scenario
from tests.e2e.support import scenario, small_world


def _credentials(vault: dict) -> dict:
    return {p: v for p, v in vault.items() if p.endswith("/credentials")}


def _run(sc) -> dict:
    run = sc.run_once()
    assert run["status"] == "SUCCEEDED", run["cause"]
    return run["output"]["phases"]["sync_index"]


def _cycle(sc, broker) -> tuple[int, int]:
    """Two sweeps and two runs: (index entries changed, name-mismatch restorations counted)."""
    changed = restored = 0
    for _ in range(2):
        before = broker.begin_index()
        broker.sweep()
        after_sweep = broker.begin_index()
        sync = _run(sc)
        after_run = broker.begin_index()
        changed += len(entries_changed(before, after_sweep)) + len(entries_changed(after_sweep, after_run))
        restored += sync["name_mismatch_restored"]
    return changed, restored


def test_sweeps_races_and_operations_in_flight_leave_a_stable_index():
    world, expected = small_world(24, seed=5, upper_case_names=0.05, cf_orphans=0.1)
    mismatched = set(expected["name_mismatch"])
    creating = {i for i, op in expected["in_flight"].items() if op.startswith("CF create")}
    assert mismatched and creating and expected["failed_provisions"]
    with scenario(world) as sc:
        broker = for_scenario(sc)
        first = _run(sc)
        assert first["name_mismatch"] == len(mismatched) and first["in_flight"] >= len(creating)
        creds = _credentials(sc.vault_contents())

        # the hourly sweep between runs: what it removes rightly stays removed
        removed = set(broker.sweep())
        assert mismatched <= removed and creating <= removed  # the broker drops its own in-flight entry too
        assert set(expected["failed_provisions"]) <= removed
        sync = _run(sc)
        index = broker.begin_index()
        assert sync["name_mismatch_restored"] == len(mismatched) and mismatched <= set(index)
        assert not (removed - mismatched) & set(index)  # CF orphans, failed and in-flight provisions: not re-added

        # a whole broker cycle: only the counted restorations move
        changed, restored = _cycle(sc, broker)
        assert restored == 2 * len(mismatched) and changed == 2 * restored

        # a broker index write racing ours (read before our run, written after it, no cas)
        stale = broker.begin_index()
        broker.sweep()
        _run(sc)
        newcomer = "7d1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b"
        broker.update_entry(newcomer, {"service_id": "redis", "plan_id": "redis-standalone", "created": 1,
                                       "status": "request_received"}, read=stale)
        index = broker.begin_index()
        assert newcomer in index
        sync = _run(sc)  # puts back what the broker's stale write undid, leaves the broker's request alone
        index = broker.begin_index()
        assert mismatched <= set(index) and index[newcomer]["status"] == "request_received"
        assert "in_flight" in sc.orphans() and newcomer in sc.orphans()["in_flight"]
        broker.sweep()  # the broker's own sweep drops its deployment-less request
        _run(sc)
        changed, restored = _cycle(sc, broker)
        assert restored == 2 * len(mismatched) and changed == 2 * restored

        # the broker's next history append keeps every entry of ours (its 30-day retention apart:
        # the generated world's own entries are dated months before the clock of this test)
        vault = sc.vault_contents()
        recent = time.time() - HISTORY_RETENTION_DAYS * 86400

        def mine(history: list) -> list:
            return [e for e in history if e.get("action") == "reconcile" and isinstance(e.get("timestamp"), int)
                    and e["timestamp"] >= recent]

        ours = {p: mine(v["history"]) for p, v in vault.items()
                if p.endswith("/metadata") and isinstance(v.get("history"), list)}
        assert any(ours.values())
        for path, entries in ours.items():
            if entries:
                broker.append_history(path.split("/")[1], "update", "broker update")
        vault = sc.vault_contents()
        for path, entries in ours.items():
            assert mine(vault[path]["history"]) == entries, path

        # and no credential was lost or changed along the way
        final = _credentials(vault)
        assert {p: final.get(p) for p in creds} == creds
