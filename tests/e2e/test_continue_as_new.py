"""Continue-as-new (issue 17, item 5): a run larger than one execution's budgets goes on in
follow-up executions of the same run id (``Handover`` -> ``<run id>-<n>``).

Through the real state machine with tiny budgets: one run id, one run record, one report,
the lock held across the chain and released at its end, the same final Vault as a run in a
single execution; a hand-over by time; a failure in a follow-up execution ends the run
honestly (failed, lock released)."""

from __future__ import annotations

import json

import pytest

from reconciler.phases import begin, sync_index
from tests.e2e.support import assert_expected_outcome, executions, scenario, small_world, store_of

pytestmark = pytest.mark.slow

BASE = """\
reconciler:
  batch_size: 1
  batch: {size: 2, min_size: 1, adaptive_scaling: false, delay: 0s}
  concurrency: {cooldown_period: 0s, max_deployments_per_run: 0, overlap_phases: %(overlap)s}
  execution: {max_history_events: %(events)d, time_share: %(share)s}
"""


def config(events: int = 25000, share: float = 0.6, overlap: str = "true") -> str:
    return BASE % {"events": events, "share": share, "overlap": overlap}


def vault_state(vault: dict) -> dict:
    """What a run leaves in Vault, without the times it wrote (backups are named by time)."""
    def plain(value):
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items() if k not in ("timestamp", "updated_at", "created_at",
                                                                       "created", "last_seen", "backed_up_at",
                                                                       "reconciled_at")}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value
    return {path: plain(data) for path, data in vault.items() if not path.startswith("secret/backups/")}


def run_twice(world: dict, text: str) -> tuple[dict, list[dict], dict]:
    with scenario(world, config_text=text) as sc:
        sc.run_once()
        first_id = sc.runs[0]["output"]["run_id"]
        store = store_of(sc)
        record, lock = store.get_run(first_id), store.current_lock()
        runs = store.list_runs()
        sc.run_once()
        report = sc.report()
    return report, runs, {"record": record, "lock": lock}


@pytest.mark.parametrize("overlap", ["true", "false"])
def test_a_200_event_budget_runs_one_run_in_several_executions_to_the_same_vault(overlap):
    world, expected = small_world(12, seed=3, cf_orphans=0.2)
    chained, runs, seen = run_twice(world, config(events=200, overlap=overlap))
    single = run_twice(world, config(overlap=overlap))[0]
    first = chained["runs"][0]
    assert first["status"] == "SUCCEEDED", first["cause"]
    assert first["executions"] >= 3, first["history_events_per_execution"]
    run_id = first["output"]["run_id"]
    assert [a.rsplit(":", 1)[-1] for a in first["execution_arns"]] == \
        [run_id] + [f"{run_id}-{n}" for n in range(2, first["executions"] + 1)]
    assert first["output"]["executions"] == first["executions"]  # the report says it
    assert [r["run_id"] for r in runs] == [run_id]  # one run record for the chain
    assert seen["record"]["status"] in ("succeeded", "succeeded_with_errors")
    assert seen["record"]["executions"] == first["executions"]
    assert seen["lock"] is None  # released at the chain's end
    assert_expected_outcome(chained, world, expected)  # and the next run writes nothing
    assert single["runs"][0]["executions"] == 1
    assert vault_state(chained["vault"]) == vault_state(single["vault"])
    one, many = single["runs"][0]["output"]["phases"], first["output"]["phases"]
    assert many["scan"]["batches"] == one["scan"]["batches"]  # every window counted in the one report
    assert many["apply"]["instances"] == one["apply"]["instances"]
    if overlap == "false":  # with it, the early batches are the first execution's scan window only
        assert many["apply"]["batches"] == one["apply"]["batches"]


def test_a_tiny_time_budget_hands_over_every_batch():
    world, _ = small_world(6, seed=4)
    with scenario(world, config_text=config(share=0.0001, overlap="false")) as sc:
        run = sc.run_once()
        status_code, _, body = sc.api("GET", "/b/status")
    assert run["status"] == "SUCCEEDED", run["cause"]
    out = run["output"]
    batches = out["phases"]["scan"]["batches"] + out["phases"]["apply"]["batches"]
    # one batch an execution (the time budget is gone at once), but the execution that scans the
    # last window also applies the first batch (Match cuts at least one)
    assert run["executions"] == batches - 1
    assert status_code == 200
    status = json.loads(body)
    assert not status["running"] and status["last_run_status"] == out["status"]
    assert status["instances_synced"] == out["phases"]["apply"]["instances_written"] + \
        out["phases"]["apply"].get("instances_unchanged", 0)


def test_a_failure_in_a_follow_up_execution_ends_the_run_failed_and_releases_the_lock(monkeypatch):
    world, _ = small_world(8, seed=6)
    with scenario(world, config_text=config(events=200, overlap="false")) as sc:
        def broken(event, context, deps):
            raise RuntimeError("injected: SyncIndex broke in the last execution")
        monkeypatch.setattr(sync_index, "run", broken)
        run = sc.run_once()
        monkeypatch.undo()
        store = store_of(sc)
        run_id = run["execution_arns"][0].rsplit(":", 1)[-1]
        record, lock = store.get_run(run_id), store.current_lock()
        runs = store.list_runs()
    assert run["executions"] >= 2
    assert run["status"] == "FAILED" and run["error"] == "RuntimeError", run
    assert record["status"] == "failed" and record["error"]["error"] == "RuntimeError"
    assert [r["run_id"] for r in runs] == [run_id]
    assert lock is None


def test_a_follow_up_that_lost_the_lock_stops_and_fails_its_run(monkeypatch):
    world, _ = small_world(8, seed=6)
    original = begin.continue_run

    def lock_taken(raw, execution_arn, started_at, deps):
        deps.store.release_lock(raw["continue"]["run"]["run_id"])  # its lease ran out; another run took it
        deps.store.acquire_lock("someone-else", "arn:someone-else", 600)
        return original(raw, execution_arn, started_at, deps)

    with scenario(world, config_text=config(events=200, overlap="false")) as sc:
        monkeypatch.setattr(begin, "continue_run", lock_taken)
        run = sc.run_once()
        monkeypatch.undo()
        store = store_of(sc)
        run_id = run["execution_arns"][0].rsplit(":", 1)[-1]
        record, lock = store.get_run(run_id), store.current_lock()
        names = sorted(e["name"] for e in executions(sc))
    assert run["executions"] == 2 and run["status"] == "FAILED" and run["error"] == "ChainBroken", run
    assert record["status"] == "failed" and "does not hold the reconcile lock" in record["error"]["message"]
    assert lock["run_id"] == "someone-else"  # not released: it is not the run's
    assert names == sorted([run_id, f"{run_id}-2"])

