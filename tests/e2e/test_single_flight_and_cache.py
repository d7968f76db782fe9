"""Single flight on the real state machine: while a run holds the lock, a forced run (the API's
``POST /b/reconcile`` or a second execution) is refused and never reconciles concurrently; the
refused run leaves the holder's lock alone. A failing deployment is recorded and skipped; the
deployment cache serves the next run, and a forced run clears it."""

from __future__ import annotations

import json

import pytest

from tests.e2e.support import (
    Gate,
    changed_paths,
    executions,
    instance_of,
    intercept,
    scenario,
    small_world,
    store_of,
    wait_for,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def generated():
    return small_world(12, seed=3)


def test_forced_run_while_one_runs_is_refused_and_never_runs_twice(generated):
    world, _ = generated
    with scenario(world) as sc:
        store = store_of(sc)
        gate = Gate(lambda request: request.path == "/deployments", timeout_s=90)  # hold run 1 in DiscoverBosh
        with intercept(sc.stack.bosh, before=gate):
            first = sc.engine.start_execution({"source": "schedule", "forced": False})
            wait_for(gate.held.is_set, timeout_s=90, what="the first run listing BOSH deployments")
            held = store.current_lock()

            status, _, body = sc.api("POST", "/b/reconcile", b'{"instances": []}')
            after_api = executions(sc)

            second = sc.engine.run({"source": "api", "forced": True}, timeout_s=120)
            lock_after_refusal = store.current_lock()
            running = [e["executionArn"] for e in executions(sc) if e["status"] == "RUNNING"]
            runs_while_held = store.list_runs()
            gate.open()
        result = sc.engine.wait(first, timeout_s=300)
        all_runs = store.list_runs()
        final_lock = store.current_lock()
        refused_history = sc.engine.execution_figures(second.arn)["events_by_type"]
        listings = [e for e in sc.stack.servers["bosh"].log.entries() if e.path == "/deployments"]

    assert held["execution_arn"] == first
    assert status == 409, body
    assert json.loads(body)["execution_arn"] == first
    assert [e["executionArn"] for e in after_api] == [first]  # the API started nothing

    assert (second.status, second.error) == ("FAILED", "RunLocked")
    assert first in (second.cause or "")  # the cause names the holder
    assert refused_history.get("LambdaFunctionScheduled") == 1  # Begin only: no phase of its own ran
    assert lock_after_refusal["execution_arn"] == first  # the refused run did not release it
    assert running == [first]
    assert [r["run_id"] for r in runs_while_held] == [first.rsplit(":", 1)[-1]]

    assert result.status == "SUCCEEDED", result.cause
    assert [r["run_id"] for r in all_runs] == [first.rsplit(":", 1)[-1]]  # one reconciliation in all
    assert len(listings) == 1  # BOSH was listed once: the refused run never reached discovery
    assert final_lock is None


def test_failing_deployment_is_recorded_and_skipped_cache_then_forced_run(generated):
    world, expected = generated
    known = set(world["vault"]["secret/db"])
    iid = next(i for i in expected["drift"]["stale_manifest"] if i in known)
    name = expected["matched"][iid]
    with scenario(world) as sc:
        before = sc.vault_contents()
        sc.stack.bosh.failing_deployments.add(name)
        first = sc.run_once()
        mid = sc.vault_contents()
        orphans = sc.orphans()
        errors = store_of(sc).recent_errors()
        sc.stack.bosh.failing_deployments.clear()
        second = sc.run_once()
        after_second = sc.vault_contents()
        third = sc.run_once(force=True)

    # run 1: the deployment's scan fails; it is recorded and skipped, the run succeeds with errors
    assert first["status"] == "SUCCEEDED", first["cause"]
    out = first["output"]
    assert out["status"] == "succeeded_with_errors" and out["errors"] >= 1
    assert out["phases"]["scan"]["scan_failed"] == 1
    scan_errors = [e for e in errors if e["phase"] == "ScanBatch"]
    assert [e["target"] for e in scan_errors] == [f"bosh:bosh/{name}"]
    assert any(word in scan_errors[0]["message"] for word in ("get_state", "error", "HTTP 500"))
    assert not [p for p in changed_paths(before, mid) if instance_of(p) == iid]  # its tree untouched
    for other in expected["recoverable_credentials"]:  # every other instance was reconciled
        assert mid.get(f"secret/{other}/credentials") == expected["recovered_credentials"][other], other
    assert sorted(mid["secret/db"]) == sorted(expected["index_ids"])
    # matched by name, so never mistaken for a CF instance without deployment
    assert orphans == {k: sorted(v) for k, v in expected["orphans"].items()}

    # run 2: the cache answers for everything scanned in run 1; the failed one is fetched now
    scan2 = second["output"]["phases"]["scan"]
    assert second["status"] == "SUCCEEDED" and second["output"]["status"] == "succeeded"
    assert scan2["cache_misses"] == 1 and scan2["cache_hits"] == scan2["scanned"] - 1 > 0
    assert after_second[f"secret/{iid}/manifest"] != before[f"secret/{iid}/manifest"]  # refreshed now

    # run 3 (forced): the cache was cleared, every deployment is fetched again
    scan3 = third["output"]["phases"]["scan"]
    assert third["status"] == "SUCCEEDED" and third["output"]["forced"] is True
    assert scan3.get("cache_hits", 0) == 0 and scan3["cache_misses"] == scan3["scanned"] == scan2["scanned"]
    assert third["requests"]["bosh"]["GET"] > second["requests"]["bosh"]["GET"]
