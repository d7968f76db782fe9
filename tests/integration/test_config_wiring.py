"""Configuration keys that act on adapters, the API and the store (real loopback HTTP, moto)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
import requests
from moto import mock_aws

from reconciler.api import routes
from reconciler.bosh import BoshClient
from reconciler.cf import CFClient
from reconciler.config import load_settings
from reconciler.errors import Unavailable
from reconciler.phases import finish
from reconciler.phases.deps import Deps
from reconciler.store import Store, create_tables
from reconciler.vault import VaultClient
from tests.api_support import api  # noqa: F401  (fixture)

SLOW_S = 1.0  # every probe answer takes this long


class SlowProbes(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        threading.Event().wait(SLOW_S)
        body = {"/": {"links": {"uaa": {"href": "http://127.0.0.1:1/uaa"}}},
                "/info": {"name": "bosh", "user_authentication": {"type": "basic", "options": {}}}}.get(
            self.path.split("?")[0], {"initialized": True, "sealed": False, "standby": False})
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def slow_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowProbes)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _settings(url: str, health_check: str):
    return load_settings(env={}, file_text=f"""
reconciler:
  retry: {{max_attempts: 1}}
  timeouts: {{health_check: {health_check}}}
cf: {{api_url: "{url}", client_id: c, client_secret: s}}
bosh: {{url: "{url}", auth: basic, username: u, password: p}}
vault: {{address: "{url}", token: t}}
""")


def _probes(s):
    cf = CFClient(s.cf_foundations[0], s)
    bosh = BoshClient(s.bosh_directors[0], s)
    vault = VaultClient.from_settings(s)
    return {"cf GET /": cf.root, "bosh GET /info": bosh.info, "vault sys/health": vault.health}


def test_health_check_bounds_every_probe(slow_url):
    for probe in _probes(_settings(slow_url, "200ms")).values():
        with pytest.raises(Unavailable, match="(?i)time"):  # timed out at health_check, not at 10-30 s
            probe()


def test_probes_succeed_when_health_check_allows_the_answer(slow_url):
    got = {what: probe() for what, probe in _probes(_settings(slow_url, "20s")).items()}
    assert got["cf GET /"]["uaa"]["href"].endswith("/uaa")
    assert got["bosh GET /info"]["name"] == "bosh"
    assert got["vault sys/health"]["sealed"] is False


def test_health_check_never_exceeds_the_apis_own_timeout():
    s = load_settings(env={}, file_text="reconciler:\n  apis: {cf: {timeout: 2s}}\n  timeouts: {health_check: 1m}\n")
    from reconciler.resilience import ApiPolicy

    assert ApiPolicy.from_settings(s, "cf").health_timeout == 2.0
    assert ApiPolicy.from_settings(s, "bosh").health_timeout == 30.0


# --- metrics.export_prometheus / collection_interval (the API) ---------------------------


def test_metrics_endpoint_is_404_when_export_is_off_and_dashboard_refreshes_at_collection_interval(api):  # noqa: F811
    url, store, sfn, machine = api
    assert requests.get(f"{url}/b/metrics", timeout=10).status_code == 200
    page = requests.get(f"{url}/b/", timeout=10).text
    assert '<meta http-equiv="refresh" content="30">' in page
    routes.use_services(routes.Services(store=store, sfn=sfn, state_machine_arn=machine, interval_s=3600,
                                        export_prometheus=False, refresh_s=90))
    response = requests.get(f"{url}/b/metrics", timeout=10)
    assert response.status_code == 404 and "export_prometheus" in response.json()["error"]
    assert '<meta http-equiv="refresh" content="90">' in requests.get(f"{url}/b/", timeout=10).text


# --- metrics.enabled (EMF) and metrics.retention_period (run records, errors) -----------


@pytest.fixture
def tables(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("dynamodb")
        create_tables(client, "cache", "state")
        yield client


def _finish_event():
    return {"run": {"run_id": "r1", "started_at": "2024-01-01T00:00:00Z"},
            "sources": {"cf": {"status": "ok", "instances": 2}, "bosh": {"status": "ok", "deployments": 2}},
            "match": {}, "index": {}, "orphans": {}}


@pytest.mark.parametrize("enabled", [True, False])
def test_metrics_enabled_switches_the_runs_emf(tables, monkeypatch, enabled):
    store = Store("cache", "state", tables)
    store.put_run({"run_id": "r1", "status": "running", "started_at": "2024-01-01T00:00:00Z"})
    s = load_settings(env={}, file_text=f"reconciler:\n  metrics: {{enabled: {str(enabled).lower()}}}\n")
    emitted = []
    monkeypatch.setattr(finish.observability, "emit_run_metrics", lambda figures, status=None: emitted.append(figures))
    summary = finish.run(_finish_event(), None, Deps.build(s, store))
    assert summary["status"] == "succeeded"
    assert len(emitted) == (1 if enabled else 0)
    assert store.get_metrics()["runs_total"] == 1  # the reconciler's own counters stay either way
    assert store.get_run("r1")["status"] == "succeeded"


def test_retention_period_is_the_lifetime_of_run_records_and_errors(tables, monkeypatch):
    now = [1_000_000.0]
    store = Store("cache", "state", tables, clock=lambda: now[0], run_ttl_s=3600, error_ttl_s=3600)
    store.put_run({"run_id": "r1", "status": "running", "started_at": "2024-01-01T00:00:00Z"})
    store.record_error("r1", "ScanBatch", "bosh:x", "boom")
    now[0] += 3599
    assert store.get_run("r1") is not None and len(store.recent_errors()) == 1
    now[0] += 2
    assert store.get_run("r1") is None and store.recent_errors() == []


def test_phase_store_takes_the_retention_period_from_the_configuration(tables, tmp_path):
    config = tmp_path / "blacksmith.conf"
    config.write_text("reconciler:\n  metrics: {retention_period: 2h}\n")
    store = Deps.from_environment({"CACHE_TABLE": "cache", "STATE_TABLE": "state",
                                   "BLACKSMITH_RECONCILER_CONFIG_FILE": str(config)}).store
    assert (store.run_ttl_s, store.error_ttl_s) == (7200.0, 7200.0)
