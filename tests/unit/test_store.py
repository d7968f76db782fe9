"""The DynamoDB store against moto: cache expiry, atomic metrics, runs, lock, chunked scratch."""

import os
import random
import threading

import boto3
import pytest
from moto import mock_aws

from reconciler.domain import empty_findings
from reconciler.errors import ConfigError, InvalidInput, NotFound, RunLocked
from reconciler.store import INLINE_MAX, Store, create_tables


class Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def aws_env(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "eu-west-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def client(aws_env):
    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-west-1")
        create_tables(client, "cache", "state")
        yield client


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(client, clock):
    return Store("cache", "state", client, clock=clock, max_errors=5)


def test_create_tables_is_idempotent_and_enables_ttl(client):
    create_tables(client, "cache", "state")
    ttl = client.describe_time_to_live(TableName="state")["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at" and ttl["TimeToLiveStatus"] == "ENABLED"


def test_from_env_names_missing_variables(client):
    with pytest.raises(ConfigError, match="STATE_TABLE"):
        Store.from_env({"CACHE_TABLE": "cache"}, client)
    assert Store.from_env({"CACHE_TABLE": "cache", "STATE_TABLE": "state"}, client).state_table == "state"


def test_cache_expires_on_read_and_clears(store, clock):
    detail = {"name": "redis-1", "manifest_text": "name: redis-1\n", "vms": [{"instance_group": "redis"}]}
    store.put_cached_deployment("bosh", "redis-1", detail, ttl_s=300)
    store.put_cached_deployment("bosh", "redis-2", detail, ttl_s=30)
    store.put_cached_deployment("other", "redis-1", {"name": "x"}, ttl_s=300)
    assert store.get_cached_deployment("bosh", "redis-1") == detail
    assert store.get_cached_deployment("other", "redis-1") == {"name": "x"}
    clock.now += 31  # redis-2 expired; moto (like DynamoDB) has not deleted it: the read filters it
    assert store.get_cached_deployment("bosh", "redis-2") is None
    assert store.get_cached_deployment("bosh", "redis-1") == detail
    store.put_cached_deployment("bosh", "ttl-zero", detail, ttl_s=0)  # cache_ttl 0 = no caching
    assert store.get_cached_deployment("bosh", "ttl-zero") is None
    assert store.clear_cache() == 3
    assert store.get_cached_deployment("bosh", "redis-1") is None
    assert store.clear_cache() == 0


def test_metrics_add_atomically_across_threads(store):
    def work():
        for _ in range(10):
            store.add_metrics(runs_total=1, api_requests_total__cf=2, duration_total_s=0.5)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.set_metrics(last_run_duration_s=12.5, last_run_time="2026-11-26T10:00:00Z")
    store.set_metrics(last_run_duration_s=13)
    m = store.get_metrics()
    assert m["runs_total"] == 40 and m["api_requests_total__cf"] == 80 and m["duration_total_s"] == 20
    assert m["last_run_duration_s"] == 13 and m["last_run_time"] == "2026-11-26T10:00:00Z"
    with pytest.raises(InvalidInput, match="Bad-Name"):
        store.add_metrics(**{"Bad-Name": 1})


def test_run_duration_histogram_is_cumulative(store):
    for seconds in (0.5, 3, 30, 45, 7200):
        store.observe_run_duration(seconds)
    m = store.get_metrics()
    h = m["run_duration_seconds"]
    assert h["count"] == 5 and h["sum"] == pytest.approx(7278.5)
    assert h["buckets"]["10"] == 2 and h["buckets"]["30"] == 3 and h["buckets"]["60"] == 4
    assert h["buckets"]["3600"] == 4 and h["buckets"]["+Inf"] == 5
    assert m["run_duration_buckets"]["le_10"] == 2 and m["run_duration_buckets"]["le_60"] == 1
    with pytest.raises(InvalidInput):
        store.observe_run_duration(float("nan"))


def test_recent_errors_are_bounded_and_newest_first(store):
    for i in range(12):
        store.record_error(f"run-{i}", "scan", f"bosh/redis-{i}", f"boom {i}")
    errors = store.recent_errors()
    assert [e["message"] for e in errors] == [f"boom {i}" for i in range(11, 6, -1)]  # max_errors=5
    assert store.recent_errors(limit=2)[0]["target"] == "bosh/redis-11"
    items = store.client.query(TableName="state", KeyConditionExpression="pk = :p",
                               ExpressionAttributeValues={":p": {"S": "errors"}})["Items"]
    assert len(items) == 6  # 5 slots + the sequence counter: storage stays bounded


def test_runs_newest_first_and_updates(store, clock):
    for i in range(5):
        clock.now += 60
        store.put_run({"run_id": f"r{i}", "execution_arn": f"arn:exec:{i}", "status": "RUNNING", "phase": "begin",
                       "forced": False, "selection": None, "figures": {}})
    store.update_run("r2", status="SUCCEEDED", duration_s=12.25, figures={"instances": 3, "ratio": 0.5})
    assert [r["run_id"] for r in store.list_runs(limit=3)] == ["r4", "r3", "r2"]
    r2 = store.get_run("r2")
    assert r2["status"] == "SUCCEEDED" and r2["duration_s"] == 12.25 and r2["figures"] == {"instances": 3, "ratio": 0.5}
    # another process (fresh Store) finds the run through the pointer item
    other = Store("cache", "state", store.client, clock=clock)
    other.update_run("r2", phase="finish")
    assert store.get_run("r2")["phase"] == "finish"
    assert store.get_run("nope") is None
    with pytest.raises(NotFound, match="nope"):
        store.update_run("nope", status="x")
    with pytest.raises(InvalidInput, match="started_at"):
        store.update_run("r1", started_at="x")


def test_lock_lease_blocks_others_until_it_expires(store, clock):
    store.acquire_lock("run-a", "arn:aws:states:eu-west-1:1:execution:reconcile:a", lease_s=600)
    store.acquire_lock("run-a", "arn:aws:states:eu-west-1:1:execution:reconcile:a", lease_s=600)  # re-entrant
    with pytest.raises(RunLocked) as info:
        store.acquire_lock("run-b", "arn:b", lease_s=600)
    assert info.value.holder.endswith(":a") and "run-a" in str(info.value)
    assert store.release_lock("run-b") is False and store.current_lock()["run_id"] == "run-a"
    clock.now += 601  # run-a crashed: its lease ran out
    assert store.current_lock() is None
    store.acquire_lock("run-b", "arn:b", lease_s=600)
    with pytest.raises(RunLocked):
        store.renew_lock("run-a", 600)
    store.renew_lock("run-b", 1200)
    clock.now += 900
    assert store.current_lock()["run_id"] == "run-b"
    assert store.release_lock("run-b") is True
    assert store.current_lock() is None
    store.acquire_lock("run-c", "arn:c", lease_s=60)


def test_lock_race_has_one_winner(store):
    winners, losers = [], []

    def take(i):
        try:
            store.acquire_lock(f"run-{i}", f"arn:{i}", lease_s=60)
            winners.append(i)
        except RunLocked:
            losers.append(i)

    threads = [threading.Thread(target=take, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1 and len(losers) == 5


def test_start_claim_has_one_holder_until_it_expires_or_is_released(store, clock):
    claims = []
    threads = [threading.Thread(target=lambda i=i: claims.append(store.claim_start(f"run-{i}", 60)))
               for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    holders = {c["name"] for c in claims if c is not None}
    assert claims.count(None) == 1 and len(holders) == 1 and store.current_lock() is None
    (holder,) = holders
    store.release_start("someone-else")  # not theirs: the claim stays
    assert store.claim_start("late", 60) == {"name": holder, "expires_at": int(clock.now) + 60}
    clock.now += 61
    assert store.claim_start("late", 60) is None
    store.release_start("late")
    assert store.claim_start("after", 60) is None


def test_pause_claims_hold_at_most_the_slots_until_the_pause_is_over(store, clock):
    claims = []
    threads = [threading.Thread(target=lambda: claims.append(store.claim_pause("run-1", "scan", 2, 2.0)))
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert claims.count(True) == 2  # two slots: two batches pause, the other four start at once
    assert store.claim_pause("run-1", "apply", 1, 0.5) and store.claim_pause("run-2", "scan", 1, 2.0)  # per run, key
    clock.now += 1.5
    assert not store.claim_pause("run-1", "scan", 2, 2.0)
    clock.now += 0.5  # the pauses are over: their slots are free again
    assert store.claim_pause("run-1", "scan", 2, 2.0) and store.claim_pause("run-1", "scan", 2, 2.0)
    with pytest.raises(InvalidInput):
        store.claim_pause("run-1", "scan", 0, 2.0)


def test_scratch_small_and_large_values_round_trip(store, clock):
    store.put_scratch("run-1", "instances", [{"guid": "a"}], ttl_s=3600)
    assert store.get_scratch("run-1", "instances") == [{"guid": "a"}]
    rng = random.Random(3)
    # ~3 MB of poorly compressible JSON: several chunks
    big = {"items": ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(200))
                     for _ in range(15000)]}
    store.put_scratch("run-1", "plan", big, ttl_s=3600)
    head = store.client.get_item(TableName="state", Key={"pk": {"S": "scratch#run-1"}, "sk": {"S": "plan"}})["Item"]
    assert int(head["n"]["N"]) >= 3 and int(head["size"]["N"]) > 2 * INLINE_MAX
    assert store.get_scratch("run-1", "plan") == big
    # overwrite with a small value: old chunks are removed
    store.put_scratch("run-1", "plan", {"small": True}, ttl_s=3600)
    assert store.get_scratch("run-1", "plan") == {"small": True}
    leftovers = store.client.scan(TableName="state", FilterExpression="begins_with(pk, :c)",
                                  ExpressionAttributeValues={":c": {"S": "chunk#"}})["Items"]
    assert leftovers == []
    assert store.get_scratch("run-2", "plan") is None
    clock.now += 3601
    assert store.get_scratch("run-1", "instances", default="gone") == "gone"
    with pytest.raises(InvalidInput, match="scratch#run-1/bad"):
        store.put_scratch("run-1", "bad", {"x": object()}, ttl_s=10)


def test_orphans_round_trip_with_defaults(store):
    assert store.get_orphans() == empty_findings()
    state = {**empty_findings(), "cf": {"a": {"first_seen": "2026-11-26T00:00:00Z", "runs": 2}}, "vault": {"b": {}}}
    store.put_orphans(state)
    assert store.get_orphans() == state


def test_missing_table_is_a_config_error(client, clock):
    store = Store("cache", "missing-table", client, clock=clock)
    with pytest.raises(ConfigError, match="missing-table"):
        store.get_metrics()


def test_default_client_honours_environment(client, monkeypatch):
    monkeypatch.setitem(os.environ, "CACHE_TABLE", "cache")
    monkeypatch.setitem(os.environ, "STATE_TABLE", "state")
    store = Store.from_env()
    store.add_metrics(runs_total=1)
    assert store.get_metrics()["runs_total"] == 1
