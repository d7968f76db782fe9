"""Each function invoked with its sample event (events/*.json) through the Lambda API of the
engine, as `sam local invoke -e` would, against a seeded mock stack: handlers load by path,
decorators work, and every sample does real work (one sample run id flows through them all)."""

import json
from pathlib import Path

from tests.e2e.support import scenario, small_world, store_of

ROOT = Path(__file__).resolve().parents[2]
EVENTS = {
    "BeginFunction": "begin.json", "DiscoverCFFunction": "discover_cf.json",
    "DiscoverBoshFunction": "discover_bosh.json", "ScanBatchFunction": "scan_batch.json",
    "MatchFunction": "match.json", "ApplyBatchFunction": "apply_batch.json", "SyncIndexFunction": "sync_index.json",
    "OrphansFunction": "orphans.json", "FinishFunction": "finish.json", "RecordFailureFunction": "record_failure.json",
    "ApiFunction": "api-get-status.json",
}


def test_every_function_has_a_sample_event(engine):
    assert set(EVENTS) == set(engine.functions)
    for name in EVENTS.values():
        assert (ROOT / "events" / name).is_file()


def _event(name: str) -> dict:
    return json.loads((ROOT / "events" / name).read_text())


def test_sample_events_drive_every_handler_against_the_mock_stack():
    """Every sample event, invoked through the Lambda API in pipeline order (one run id runs
    through the samples) against a seeded mock stack, succeeds: no wiring error, no domain
    error, and each answer says the handler did its work."""
    world, _ = small_world(12, seed=3)  # 13 deployments to scan: the samples' two scan batches
    with scenario(world) as sc:
        invoke = sc.engine.invoke
        store = store_of(sc)
        begin = invoke("BeginFunction", _event("begin.json"))
        run_id = begin["run"]["run_id"]
        assert run_id == _event("begin.json")["execution_arn"].rsplit(":", 1)[-1]
        assert store.current_lock()["run_id"] == run_id

        conflict = invoke("ApiFunction", _event("api-post-reconcile.json"))
        assert conflict["statusCode"] == 409, conflict  # a run holds the lock: nothing started
        status = invoke("ApiFunction", _event("api-get-status.json"))
        assert status["statusCode"] == 200 and json.loads(status["body"])["running"] is True

        cf = invoke("DiscoverCFFunction", _event("discover_cf.json"))
        assert cf["status"] == "ok" and cf["instances"] > 0
        bosh = invoke("DiscoverBoshFunction", _event("discover_bosh.json"))
        assert bosh["status"] == "ok" and bosh["batches"] == _event("match.json")["sources"]["bosh"]["batches"]
        for batch in bosh["batches"]:  # scan_batch.json, and the same event for the next batch
            scanned = invoke("ScanBatchFunction", {**_event("scan_batch.json"), "batch": batch})
            assert scanned["done"] is True and scanned["offset"] > 0
        match = invoke("MatchFunction", _event("match.json"))
        assert match["matched"] > 0 and match["batches"]
        for batch in match["batches"]:
            applied = invoke("ApplyBatchFunction", {**_event("apply_batch.json"), "batch": batch})
            assert applied["done"] is True and applied["offset"] > 0
        index = invoke("SyncIndexFunction", _event("sync_index.json"))
        assert index["entries"] > 0 and index["written"] is True
        orphans = invoke("OrphansFunction", _event("orphans.json"))
        assert orphans["published"] is True
        invoke("RecordFailureFunction", _event("record_failure-batch.json"))
        assert [(e["phase"], e["target"]) for e in store.recent_errors()] == [("scan", "batch 1")]
        finish = invoke("FinishFunction", _event("finish.json"))
        assert finish["status"] in ("succeeded", "succeeded_with_errors") and finish["run_id"] == run_id
        assert store.current_lock() is None
        assert store.get_run(run_id)["status"] == finish["status"]
        cached = store.get_cached_deployment("bosh", next(d["name"] for d in world["bosh"]["deployments"]
                                                          if d["name"].startswith(("redis", "postgresql"))))
        assert cached is not None  # the scans filled the deployment cache

        forced = invoke("BeginFunction", _event("begin-forced.json"))  # same run id, lock free again
        assert forced["run"]["forced"] is True and forced["run"]["selection"]["instances"]
        assert forced["run"]["cache_cleared"] >= bosh["to_scan"]  # a forced run clears the cache
        failed = invoke("RecordFailureFunction", _event("record_failure.json"))
        assert failed["recorded"] is True and failed["Error"] == "Unavailable"
        assert store.current_lock() is None  # the failure record releases the run's lock
        assert store.get_run(run_id)["status"] == "failed"
        assert sc.engine.client("stepfunctions").list_executions(
            stateMachineArn=sc.engine.state_machine_arn())["executions"] == []  # the API started nothing
