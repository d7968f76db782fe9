"""What one real reconciliation tells an operator: structured log lines with one correlation id
per run across every phase, info level by default, the run's figures as one CloudWatch EMF
document, and the same figures in the stored run record, ``/b/status`` and ``/b/metrics``."""

from __future__ import annotations

import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mockstack.generator import generate
from mockstack.runner import Scenario

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world():
    return generate(8, seed=11, drift={"cf_orphans": 0.15, "bosh_orphans": 0.15, "missing_credentials": 0.15})


def test_one_run_logs_metrics_and_status(world, tmp_path, capfd):
    world, expected = world
    config = "reconciler:\n  batch_size: 3\n  batch:\n    size: 3\n    min_size: 1\n"
    with Scenario(world, config_text=config, workdir=str(tmp_path / "stack")) as scenario:
        capfd.readouterr()
        run = scenario.run_once()
        out = capfd.readouterr().out
        report = scenario.report()
    assert run["status"] == "SUCCEEDED", run["cause"]
    run_id = run["execution_arn"].rsplit(":", 1)[-1]

    docs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert len(docs) == len(out.strip().splitlines()), "every stdout line is a JSON document"
    logs = [d for d in docs if "_aws" not in d]
    emf = [d for d in docs if "_aws" in d]

    # every phase spoke, each line structured, all under the run's id, nothing below info
    functions = {d["function_name"].removeprefix("blacksmith-") for d in logs}
    assert {"BeginFunction", "DiscoverCFFunction", "DiscoverBoshFunction", "ScanBatchFunction", "MatchFunction",
            "ApplyBatchFunction", "SyncIndexFunction", "OrphansFunction", "FinishFunction"} <= functions
    assert {d["correlation_id"] for d in logs} == {run_id}
    assert {d["service"] for d in logs} == {"blacksmith-reconciler"}
    assert {d["level"] for d in logs} <= {"INFO", "WARNING", "ERROR"}
    assert all(d["logger"].startswith("reconciler.") for d in logs)
    messages = [d["message"] for d in logs]
    assert any(m.startswith(f"run {run_id} started") for m in messages)
    assert any(m.startswith(f"run {run_id} finished: succeeded") for m in messages)
    assert any(m.startswith("cf: ") and "instances of our broker" in m for m in messages)
    assert any(m.startswith("bosh: ") and "to scan" in m for m in messages)
    assert any(m.startswith("match: ") for m in messages)
    assert any(m.startswith("vault: update batch") for m in messages)
    assert any(m.startswith("index: ") for m in messages)
    assert any(m.startswith("orphans: ") for m in messages)

    # one EMF document for the run, with the spec's figures
    (doc,) = emf
    (directive,) = doc["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "BlacksmithReconciler" and directive["Dimensions"] == [["service"]]
    assert doc["service"] == "blacksmith-reconciler" and doc["run_id"] == run_id
    phases = run["output"]["phases"]
    assert doc["Runs"] == [1.0] and doc["RunsSuccessful"] == [1.0] and doc["RunsFailed"] == [0.0]
    assert doc["InstancesFound"] == [float(phases["discover_cf"]["instances"])]
    assert doc["Deployments"] == [float(phases["discover_bosh"]["deployments"])]
    synced = phases["apply"].get("instances_written", 0) + phases["apply"].get("instances_unchanged", 0)
    assert doc["InstancesSynced"] == [float(synced)] and synced > 0
    assert doc["BackupsWritten"] == [float(phases["apply"].get("backups_written", 0))]
    assert doc["OrphansCF"] == [float(len(report["orphans"]["cf"]))]
    assert doc["OrphansBosh"] == [float(len(report["orphans"]["bosh"]))]
    assert doc["RunDuration"][0] > 0

    # the same figures where an operator reads them
    status = report["status"]
    assert status["instances_found"] == phases["discover_cf"]["instances"]
    assert status["instances_synced"] == synced
    assert status["running"] is False
    metrics = {s.name: s.value for family in text_string_to_metric_families(report["metrics"])
               for s in family.samples}
    assert metrics["blacksmith_reconciler_runs_total"] == 1
    assert metrics["blacksmith_reconciler_instances_found_total"] == phases["discover_cf"]["instances"]
    assert metrics["blacksmith_reconciler_instances_synced_total"] == synced
