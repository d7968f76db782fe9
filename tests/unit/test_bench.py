"""The benchmark's own arithmetic: the Map bound, the call counter, the table."""

from __future__ import annotations

import boto3
from moto import mock_aws

from mockstack import physics
from mockstack.bench import AwsCallCounter, map_bound, render
from reconciler.config import load_settings


def test_map_bound_at_50000_instances_with_default_batch_sizes():
    bound = map_bound(50_000, 48_425, load_settings(env={}, file_text=""))
    assert bound["apply_batch_size"] == 50 and bound["apply_batches"] == 1000
    assert bound["scan_batch_size"] == 49 and bound["scan_batches"] == 989
    assert bound["within_bound"]


def test_map_bound_keeps_the_configured_size_when_it_fits():
    s = load_settings(env={}, file_text="reconciler:\n  batch_size: 50\n  batch:\n    size: 40\n")
    bound = map_bound(2_000, 1_900, s)
    assert (bound["apply_batch_size"], bound["apply_batches"]) == (40, 50)
    assert (bound["scan_batch_size"], bound["scan_batches"]) == (50, 38)


def test_call_counter_counts_boto3_calls_by_service_and_operation(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "eu-west-1"}.items():
        monkeypatch.setenv(name, value)
    from botocore.client import BaseClient

    original = BaseClient._make_api_call
    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-west-1")
        with AwsCallCounter() as counter:
            client.list_tables()
            client.list_tables()
        client.list_tables()  # after the counter: not counted
    assert dict(counter.snapshot()) == {("dynamodb", "ListTables"): 2}
    assert BaseClient._make_api_call is original


def test_render_shows_every_figure():
    run = {"status": "SUCCEEDED", "duration_s": 12.34, "cpu_s": 10.0, "state_transitions": 47,
           "history_events": 183, "max_state_payload_bytes": 1333, "requests": {"vault": {"GET": 1880}},
           "aws_calls": {"dynamodb": {"UpdateItem": 2929}}, "vault_writes": 0, "peak_rss_mib": 340.7,
           "output": {"phases": {"apply": {"instances_written": 0, "instances_failed": 0}}}}
    run["physics"] = physics.physics(run, {"bosh": 2, "cf": 5, "vault": 1880}, {"bosh": 10, "cf": 20, "vault": 50})
    run["cost"] = physics.cost(run, lambda_s=40.0)
    text = render({"instances": 300, "deployments": 305, "seed": 7, "generate_s": 0.1, "wall_s": 30.0,
                   "runs": [run, run], "rates": {"bosh": 10, "cf": 20, "vault": 50}, "prices": physics.PRICES,
                   "checks": {"payload_under_256KiB": True, "max_state_payload_bytes": 1333,
                              "history_far_below_25000": True, "max_history_events": 183},
                   "map_bound_50000": {"deployments": 50_833, "apply_batches": 1000, "apply_batch_size": 50,
                                       "scan_batches": 997, "scan_batch_size": 51, "max_map_items": 1000,
                                       "within_bound": True}})
    for expected in ("vault GET", "1880", "aws dynamodb UpdateItem", "2929", "12.3", "history events", "183",
                     "apply 1000 batches of 50", "vault: requests / minimum", "1880 / 1880", "wall / bound",
                     "37.6", "Lambda GB-s", "20.0", "cost total (USD)"):
        assert expected in text
    assert run["physics"]["bound_s"] == 37.6 and run["physics"]["wall_over_bound"] == round(12.34 / 37.6, 3)


def test_minimums_come_from_the_world():
    from mockstack.generator import generate
    from reconciler.config import load_settings

    world, expected = generate(300, 7)
    s = load_settings({}, "cf: {name: cf, api_url: 'https://api.example.com', client_id: c, client_secret: s}\n"
                      "vault: {address: 'http://127.0.0.1:8200', token: t}\n")
    low = physics.minimums(world, expected, s)
    service = len(world["bosh"]["deployments"]) - len(expected["excluded_deployments"])
    assert low["cold"]["bosh"] == 2 + 2 * service  # /info, /deployments, manifest + instances each
    assert low["warm"]["bosh"] == 2 and low["warm_after_ttl"]["bosh"] == 3  # ... and one /events page
    assert low["warm"]["cf"] < low["cold"]["cf"] and low["warm"]["vault"] > 4 * len(expected["matched"])
    lost = sum(len(v) for v in expected["lost_binding_credentials"].values())
    assert low["cold"]["cf"] - low["warm"]["cf"] == lost + len(expected["fetched_parameters"])  # per binding
    assert low["cold"]["vault"] > low["warm"]["vault"]  # the trees read before the writes, orphan histories


def test_vault_minimum_skips_instances_in_flight_and_reads_the_task_only_where_cf_cannot_tell():
    import copy

    from mockstack.generator import generate

    world, expected = generate(60, 3)
    s = load_settings({}, "vault: {address: 'http://127.0.0.1:8200', token: t}\n")
    base = physics.minimums(world, expected, s)["warm"]["vault"]
    ours = physics._our_instances(world, expected["broker"])
    settled = next(i for i in ours if i["guid"] in expected["matched"] and i["guid"] not in expected["in_flight"])
    bindings = sum(1 for b in world["cf"]["service_credential_bindings"]
                   if b["relationships"]["service_instance"]["data"]["guid"] == settled["guid"])
    for change, delta in (({"state": "succeeded", "updated_at": None}, 1),  # CF cannot say when: read the task
                          ({"state": "in progress"}, -(5 + 2 * bindings))):  # in flight: Match skips it
        changed = copy.deepcopy(world)
        inst = next(i for i in changed["cf"]["service_instances"] if i["guid"] == settled["guid"])
        inst["last_operation"] = {**inst["last_operation"], **change}
        assert physics.minimums(changed, expected, s)["warm"]["vault"] == base + delta, change
    assert physics.rates(s) == {"bosh": 10.0, "cf": 20.0, "vault": 50.0}  # the spec's defaults


def test_map_bound_follows_queue_size():
    s = load_settings(env={}, file_text="reconciler:\n  concurrency:\n    queue_size: 500\n")
    bound = map_bound(50_000, 48_425, s)
    assert (bound["apply_batch_size"], bound["apply_batches"], bound["max_map_items"]) == (100, 500, 500)


def test_state_spans_give_each_phase_first_entry_and_last_exit():
    from datetime import datetime, timedelta

    from mockstack.physics import state_spans

    t0 = datetime(2026, 1, 1)

    def ev(s: float, kind: str, name: str) -> dict:
        key = "stateEnteredEventDetails" if kind == "Entered" else "stateExitedEventDetails"
        return {"type": f"Task State{kind}" if name != "ScanDeployments" else f"Map State{kind}",
                "timestamp": t0 + timedelta(seconds=s), key: {"name": name}}

    events = [{"type": "ExecutionStarted", "timestamp": t0}, ev(1, "Entered", "ScanDeployments"),
              ev(2, "Entered", "ScanBatch"), ev(30, "Exited", "ScanBatch"), ev(31, "Exited", "ScanDeployments"),
              ev(31, "Entered", "Match"), ev(33.25, "Exited", "Match")]
    assert state_spans(events) == {"ScanDeployments": [1.0, 31.0], "Match": [31.0, 33.2]}
    assert state_spans([]) == {}
