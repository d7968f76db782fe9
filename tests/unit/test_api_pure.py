"""Pure builders of the API: request validation, Prometheus text, status, dashboard."""

from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from reconciler.api import dashboard, metrics_text, status
from reconciler.api.requests import MAX_BODY_BYTES, parse_reconcile_body
from reconciler.domain import FindingKind
from reconciler.errors import InvalidInput

KINDS = [kind.value for kind in FindingKind]

SPEC_NAMES = [
    "blacksmith_reconciler_runs_total", "blacksmith_reconciler_runs_successful", "blacksmith_reconciler_runs_failed",
    "blacksmith_reconciler_last_run_duration_seconds", "blacksmith_reconciler_deployments_total",
    "blacksmith_reconciler_instances_found_total", "blacksmith_reconciler_instances_synced_total",
    "blacksmith_reconciler_errors_total",
]
GUID = "12345678-1234-1234-1234-123456789abc"


class TestReconcileBody:
    def test_empty_body_is_a_full_forced_run(self):
        assert not parse_reconcile_body(None).selective
        assert not parse_reconcile_body(b"  ").selective

    def test_selection_is_normalised(self):
        req = parse_reconcile_body(f'{{"instances": ["{GUID.upper()}", "{GUID}"], "services": ["redis"]}}')
        assert req.instances == [GUID] and req.services == ["redis"] and req.selective

    @pytest.mark.parametrize("body, needle", [
        ('{"instances": ["not-a-uuid"]}', "instances: 'not-a-uuid' is not a UUID"),
        ('{"instances": ["../../etc"]}', "is not a UUID"),
        ('{"services": ["bad id!"]}', "is not a service id"),
        ('{"colour": "red"}', "colour"),
        ("[1,2]", "must be a JSON object"),
        ("{nope", "not valid JSON"),
    ])
    def test_bad_bodies_say_what_is_accepted(self, body, needle):
        with pytest.raises(InvalidInput) as err:
            parse_reconcile_body(body)
        assert needle in str(err.value) and "accepted:" in str(err.value)

    def test_too_large(self):
        with pytest.raises(InvalidInput, match="bytes"):
            parse_reconcile_body(b" " * (MAX_BODY_BYTES + 1))


FIGURES = {
    "runs_total": 42, "runs_successful": 40, "runs_failed": 2, "last_run_duration_s": 45.123,
    "duration_total_s": 420.0, "deployments_total": 150, "instances_found_total": 75,
    "instances_synced_total": 73, "errors_total": 3, "backups_written_total": 9,
    "cache_hits_total": 5, "cache_misses_total": 7, "api_requests_total__cf": 11, "api_errors_total__bosh": 1,
    "run_duration_seconds": {"buckets": {"10": 30, "60": 40, "+Inf": 42}, "sum": 420.0, "count": 42},
}


def _samples(text):
    return {s.name: s for f in text_string_to_metric_families(text) for s in f.samples}


class TestMetricsText:
    def test_spec_names_and_values_parse(self):
        samples = _samples(metrics_text.render(FIGURES, {"cf": 1, "bosh": 2, "vault": 0}, running=False))
        for name in SPEC_NAMES:
            assert name in samples, name
        assert samples["blacksmith_reconciler_runs_total"].value == 42
        assert samples["blacksmith_reconciler_runs_successful"].value == 40
        assert samples["blacksmith_reconciler_last_run_duration_seconds"].value == pytest.approx(45.123)
        assert samples["blacksmith_reconciler_instances_synced_total"].value == 73

    def test_histogram_orphans_and_per_api(self):
        families = {f.name: f for f in text_string_to_metric_families(
            metrics_text.render(FIGURES, {"cf": 1, "bosh": 2, "vault": 0}, running=True))}
        hist = families["blacksmith_reconciler_run_duration_seconds"]
        buckets = {s.labels["le"]: s.value for s in hist.samples if s.name.endswith("_bucket")}
        assert buckets["10"] == 30 and buckets["60"] == 40 and buckets["+Inf"] == 42
        assert [s.value for s in hist.samples if s.name.endswith("_sum")] == [420.0]
        orphans = {s.labels["type"]: s.value for s in families["blacksmith_reconciler_orphans"].samples}
        assert orphans == {**dict.fromkeys(KINDS, 0.0), "cf": 1, "bosh": 2}
        requests = {s.labels["api"]: s.value for s in families["blacksmith_reconciler_api_requests"].samples}
        assert requests == {"cf": 11}
        assert families["blacksmith_reconciler_running"].samples[0].value == 1

    def test_empty_store_renders_zeros(self):
        samples = _samples(metrics_text.render({}, {}, running=False))
        assert samples["blacksmith_reconciler_runs_total"].value == 0


RUNS = [
    {"run_id": "r3", "status": "RUNNING", "started_at": "2026-11-26T10:00:00Z", "phase": "Scan"},
    {"run_id": "r2", "status": "SUCCEEDED", "started_at": "2026-11-26T09:00:00Z",
     "finished_at": "2026-11-26T09:00:45Z", "duration_s": 45.123,
     "figures": {"instances_found": 75, "instances_synced": 73}},
]


class TestStatus:
    def test_spec_fields_and_extras(self):
        doc = status.build_status(
            figures=FIGURES, lock={"run_id": "r3", "execution_arn": "arn:x"}, runs=RUNS,
            orphans={"cf": {GUID: {}}, "bosh": {}, "vault": {}}, errors=[{"phase": "Scan", "target": "d1",
                                                                           "message": "boom", "secret": "x"}],
            breakers={"cf": {"state": "open", "failures": 3}}, interval_s=3600, enabled=True,
            now=datetime(2026, 11, 26, 10, 30, tzinfo=UTC))
        assert doc["running"] is True
        assert doc["last_run_time"] == "2026-11-26T09:00:45Z" and doc["last_run_duration"] == "45.123s"
        assert doc["instances_found"] == 75 and doc["instances_synced"] == 73
        assert doc["errors"] == [{"time": None, "run_id": None, "phase": "Scan", "target": "d1", "message": "boom"}]
        assert doc["current_execution"]["phase"] == "Scan"
        assert doc["orphans"] == {**dict.fromkeys(KINDS, 0), "cf": 1}
        assert doc["apis"]["cf"]["circuit"] == "open"
        assert doc["next_run_time"] == "2026-11-26T11:00:00Z"

    def test_counts_from_the_finish_phase_figures(self):
        run = {"run_id": "r", "finished_at": "2026-11-26T09:00:45Z", "duration_s": 1.0,
               "figures": {"discover_cf": {"instances": 288}, "apply": {"instances_written": 9,
                                                                        "instances_unchanged": 270}}}
        doc = status.build_status(figures={}, lock=None, runs=[run], orphans={}, errors=[], breakers={},
                                  interval_s=None, enabled=True)
        assert (doc["instances_found"], doc["instances_synced"]) == (288, 279)

    def test_idle_and_disabled(self):
        doc = status.build_status(figures={}, lock=None, runs=[], orphans={}, errors=[], breakers={},
                                  interval_s=3600, enabled=False)
        assert doc["running"] is False and doc["current_execution"] is None and doc["next_run_time"] is None
        assert doc["last_run_duration"] == "0.000s"


def test_dashboard_escapes_names_from_cf_and_bosh():
    evil = '<script>alert("x")</script>'
    doc = status.build_status(figures=FIGURES, lock=None, runs=RUNS[1:], orphans={"bosh": {evil: {"checks": 1}}},
                              errors=[], breakers={}, interval_s=None, enabled=True)
    page = dashboard.render_dashboard(doc, RUNS[1:], {"bosh": {evil: {"checks": 1}}})
    assert evil not in page and "&lt;script&gt;" in page
    assert "<svg" in page and "http://" not in page and "https://" not in page  # self-contained
