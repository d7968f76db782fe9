"""The benchmark's own arithmetic: the Map bound, the call counter, the table."""

from __future__ import annotations

import boto3
from moto import mock_aws

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
    text = render({"instances": 300, "deployments": 305, "seed": 7, "generate_s": 0.1, "wall_s": 30.0,
                   "runs": [run, run],
                   "checks": {"payload_under_256KiB": True, "max_state_payload_bytes": 1333,
                              "history_far_below_25000": True, "max_history_events": 183},
                   "map_bound_50000": {"deployments": 50_833, "apply_batches": 1000, "apply_batch_size": 50,
                                       "scan_batches": 997, "scan_batch_size": 51, "max_map_items": 1000,
                                       "within_bound": True}})
    for expected in ("vault GET", "1880", "aws dynamodb UpdateItem", "2929", "12.3", "history events", "183",
                     "apply 1000 batches of 50"):
        assert expected in text


def test_map_bound_follows_queue_size():
    s = load_settings(env={}, file_text="reconciler:\n  concurrency:\n    queue_size: 500\n")
    bound = map_bound(50_000, 48_425, s)
    assert (bound["apply_batch_size"], bound["apply_batches"], bound["max_map_items"]) == (100, 500, 500)
