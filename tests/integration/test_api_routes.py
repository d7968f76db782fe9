"""The Function URL API end to end over HTTP: loopback front door -> Function URL event ->
the API handler loaded by path as Lambda loads it -> the real Store on (moto) DynamoDB and a
(moto) Step Functions state machine."""

import json

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from reconciler.domain import FindingKind
from tests.api_support import api  # noqa: F401  (fixture)

GUID = "12345678-1234-1234-1234-123456789abc"
SPEC_NAMES = [
    "blacksmith_reconciler_runs_total", "blacksmith_reconciler_runs_successful", "blacksmith_reconciler_runs_failed",
    "blacksmith_reconciler_last_run_duration_seconds", "blacksmith_reconciler_deployments_total",
    "blacksmith_reconciler_instances_found_total", "blacksmith_reconciler_instances_synced_total",
    "blacksmith_reconciler_errors_total",
]


def test_status_reports_the_spec_fields(api):  # noqa: F811
    url, store, _, _ = api
    store.put_run({"run_id": "r1", "execution_arn": "arn:1", "status": "SUCCEEDED",
                   "started_at": "2026-11-26T09:00:00Z", "finished_at": "2026-11-26T09:00:45Z", "duration_s": 45.1,
                   "figures": {"instances_found": 7, "instances_synced": 5}})
    store.record_error("r1", "Scan", "redis-x", "deployment scan failed")
    body = requests.get(f"{url}/b/status", timeout=10).json()
    for key in ("running", "last_run_time", "last_run_duration", "instances_found", "instances_synced", "errors"):
        assert key in body
    assert body["running"] is False and body["instances_found"] == 7 and body["last_run_duration"] == "45.100s"
    assert body["errors"][0]["phase"] == "Scan" and body["orphans"] == {kind.value: 0 for kind in FindingKind}


def test_metrics_parse_with_prometheus_parser(api):  # noqa: F811
    url, store, _, _ = api
    store.add_metrics(runs_total=3, runs_successful=2, runs_failed=1, instances_found_total=9)
    store.set_metrics(last_run_duration_s=12.5)
    store.observe_run_duration(12.5)
    response = requests.get(f"{url}/b/metrics", timeout=10)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {s.name: s.value for f in text_string_to_metric_families(response.text) for s in f.samples}
    for name in SPEC_NAMES:
        assert name in samples
    assert samples["blacksmith_reconciler_runs_total"] == 3 and samples["blacksmith_reconciler_runs_failed"] == 1
    assert samples["blacksmith_reconciler_last_run_duration_seconds"] == 12.5
    assert samples["blacksmith_reconciler_run_duration_seconds_count"] == 1


def test_forced_run_starts_once_then_409_with_the_running_arn(api):  # noqa: F811
    url, _, sfn, machine = api
    first = requests.post(f"{url}/b/reconcile", json={"instances": [GUID.upper()]}, timeout=10)
    assert first.status_code == 202
    arn = first.json()["execution_arn"]
    started = json.loads(sfn.describe_execution(executionArn=arn)["input"])
    assert started["force"] is True and started["selection"] == {"instances": [GUID], "services": []}
    second = requests.post(f"{url}/b/reconcile", timeout=10)
    assert second.status_code == 409 and second.json()["execution_arn"] == arn
    assert len(sfn.list_executions(stateMachineArn=machine)["executions"]) == 1
    # the first POST gave its start claim back: once that run ends, the next POST starts one
    sfn.stop_execution(executionArn=arn)
    third = requests.post(f"{url}/b/reconcile", timeout=10)
    assert third.status_code == 202, third.text


def test_forced_run_refused_while_the_lock_is_held(api):  # noqa: F811
    url, store, _, _ = api
    store.acquire_lock("r9", "arn:aws:states:us-east-1:123456789012:execution:reconcile:r9", 600)
    response = requests.post(f"{url}/b/reconcile", timeout=10)
    assert response.status_code == 409 and response.json()["execution_arn"].endswith(":r9")


def test_forced_run_refused_while_another_request_is_starting_one(api):  # noqa: F811
    """Between a POST's "is one running?" check and its StartExecution, a second POST finds the
    first one's start claim (the check alone let both start a run)."""
    url, store, sfn, machine = api
    assert store.claim_start("forced-20261202T070000-abcdef12", 60) is None
    response = requests.post(f"{url}/b/reconcile", timeout=10)
    assert response.status_code == 409 and response.json()["run"] == "forced-20261202T070000-abcdef12"
    assert sfn.list_executions(stateMachineArn=machine)["executions"] == []


@pytest.mark.parametrize("body", ['{"instances": ["nope"]}', '{"extra": 1}', "not json", "[]"])
def test_bad_reconcile_body_is_400_saying_what_is_accepted(api, body):  # noqa: F811
    url, _, sfn, machine = api
    response = requests.post(f"{url}/b/reconcile", data=body, headers={"content-type": "application/json"},
                             timeout=10)
    assert response.status_code == 400 and "accepted:" in response.json()["error"]
    assert sfn.list_executions(stateMachineArn=machine)["executions"] == []


def test_runs_and_orphans(api):  # noqa: F811
    url, store, _, _ = api
    store.put_run({"run_id": "r1", "status": "SUCCEEDED", "started_at": "2026-11-26T09:00:00Z"})
    store.put_run({"run_id": "r2", "status": "RUNNING", "started_at": "2026-11-26T10:00:00Z"})
    store.put_orphans({"cf": {GUID: {"first_seen": "2026-11-26T09:00:00Z", "checks": 2}}, "bosh": {}, "vault": {}})
    runs = requests.get(f"{url}/b/runs?limit=5", timeout=10).json()["runs"]
    assert [r["run_id"] for r in runs] == ["r2", "r1"]
    assert requests.get(f"{url}/b/runs/r1", timeout=10).json()["status"] == "SUCCEEDED"
    assert requests.get(f"{url}/b/runs/nope", timeout=10).status_code == 404
    assert requests.get(f"{url}/b/runs?limit=1000", timeout=10).status_code == 400
    assert requests.get(f"{url}/b/orphans", timeout=10).json()["cf"][GUID]["checks"] == 2


def test_unknown_path_404_wrong_method_405_as_json(api):  # noqa: F811
    url, *_ = api
    missing = requests.get(f"{url}/b/nope", timeout=10)
    assert missing.status_code == 404 and "endpoints" in missing.json()
    wrong = requests.delete(f"{url}/b/status", timeout=10)
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET"
    assert requests.get(f"{url}/b/reconcile", timeout=10).status_code == 405


def test_failures_are_json_without_stack_traces(api, monkeypatch):  # noqa: F811
    url, store, _, _ = api

    def broken(*_, **__):
        raise RuntimeError("dynamodb exploded at /secret/path")

    monkeypatch.setattr(store, "get_metrics", broken)
    response = requests.get(f"{url}/b/status", timeout=10)
    assert response.status_code == 500
    assert response.json() == {"error": "internal error", "type": "RuntimeError"}
    assert "Traceback" not in response.text


def test_dashboard_page_is_self_contained_html(api):  # noqa: F811
    url, store, _, _ = api
    store.put_orphans({"bosh": {"redis-standalone-x": {"checks": 1}}})
    page = requests.get(f"{url}/b/", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Blacksmith Deployment Reconciler" in page.text and "redis-standalone-x" in page.text
    assert "src=\"http" not in page.text and "href=\"http" not in page.text
