"""Every reconciler.* key acts somewhere (or says it cannot): deploy-time parameters, warnings,
time budgets, pauses between batches, probe timeouts, metrics switches, retention."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from reconciler.config import all_env_keys, config_warnings, load_settings
from reconciler.config.__main__ import main as config_cli
from reconciler.config.effects import KEY_EFFECTS, deployment_drift, effect_of, inert_warnings
from reconciler.config.reference import EFFECTS_BEGIN, EFFECTS_END
from reconciler.phases import runtime
from reconciler.phases.contracts import SourceResult
from reconciler.phases.deps import Deps

ROOT = Path(__file__).resolve().parents[2]


def settings(text: str = "", **env: str):
    return load_settings(env=env, file_text=text)


# --- the table ---------------------------------------------------------------------------


def test_every_reconciler_key_has_a_stated_effect():
    keys = [k.key for k in all_env_keys() if k.path[0] == "reconciler"]
    assert len(keys) > 60
    missing = [k for k in keys if effect_of(k.removeprefix("reconciler.")) is None]
    assert not missing, f"no entry in reconciler.config.effects for {missing}"


def test_the_doc_carries_the_effects_table():
    text = (ROOT / "docs" / "configuration.md").read_text()
    assert EFFECTS_BEGIN in text and EFFECTS_END in text
    for key in KEY_EFFECTS:
        assert f"| `{key}` |" in text, key


# --- deploy-time parameters (interval, enabled, retry_attempts, retry_delay, reconciliation_run)


def test_template_parameters_follow_the_configuration():
    assert settings().reconciler.template_parameters() == {
        "ScheduleExpression": "rate(1 hour)", "ScheduleEnabled": "true", "RunTimeoutSeconds": "900",
        "StateRetryMaxAttempts": "3", "StateRetryIntervalSeconds": "10"}
    rc = settings("reconciler:\n  interval: 30m\n  enabled: false\n  retry_attempts: 5\n  retry_delay: 15s\n"
                  "  timeouts: {reconciliation_run: 20m}\n").reconciler
    assert rc.template_parameters() == {
        "ScheduleExpression": "rate(30 minutes)", "ScheduleEnabled": "false", "RunTimeoutSeconds": "1200",
        "StateRetryMaxAttempts": "5", "StateRetryIntervalSeconds": "15"}


def test_template_parameters_respect_the_templates_bounds():
    rc = settings("reconciler:\n  retry_attempts: 0\n  retry_delay: 0s\n"
                  "  timeouts: {reconciliation_run: 30s, deployment_scan: 10s}\n").reconciler
    got = rc.template_parameters()
    assert got["StateRetryMaxAttempts"] == "0"  # no step retries at all
    assert got["StateRetryIntervalSeconds"] == "1"  # ASL's smallest interval
    assert got["RunTimeoutSeconds"] == "60"  # the template's MinValue


def test_cli_prints_the_parameter_overrides(tmp_path, capsys):
    conf = tmp_path / "blacksmith.conf"
    conf.write_text("reconciler:\n  interval: 2h\n  retry_attempts: 1\n")
    assert config_cli(["parameters", str(conf)]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith('ScheduleExpression="rate(2 hours)" ScheduleEnabled="true"')
    assert 'StateRetryMaxAttempts="1"' in out
    assert config_cli(["parameters", str(conf), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ScheduleExpression"] == "rate(2 hours)"


def test_drift_between_deployed_parameters_and_configuration_is_a_warning():
    s = settings("reconciler:\n  interval: 30m\n  retry_attempts: 4\n")
    deployed = {"SCHEDULE_EXPRESSION": "rate(1 hour)", "SCHEDULE_ENABLED": "true", "RUN_TIMEOUT_SECONDS": "900",
                "STATE_RETRY_MAX_ATTEMPTS": "3", "STATE_RETRY_INTERVAL_SECONDS": "10"}
    found = deployment_drift(s, deployed)
    assert len(found) == 2
    assert any("reconciler.interval" in w and "rate(30 minutes)" in w and "rate(1 hour)" in w for w in found)
    assert any("reconciler.retry_attempts" in w for w in found)
    assert deployment_drift(s, {**deployed, "SCHEDULE_EXPRESSION": "rate(30 minutes)",
                                "STATE_RETRY_MAX_ATTEMPTS": "4"}) == []
    assert deployment_drift(s, {}) == []  # not deployed by the template (local runs)


# --- keys that cannot act here -----------------------------------------------------------


@pytest.mark.parametrize(("text", "needle"), [
    ("reconciler:\n  metrics: {prometheus_port: 9100}\n", "prometheus_port = 9100 has no effect"),
    ("reconciler:\n  backup: {backup_on_delete: false}\n", "backup_on_delete = false has no effect"),
    ("reconciler:\n  concurrency: {queue_size: 5000}\n", "queue_size = 5000 is capped at 1000"),
])
def test_a_key_without_effect_here_warns_when_set(text, needle):
    warnings = config_warnings(settings(text))
    assert any(needle in w for w in warnings), warnings
    assert inert_warnings(settings()) == []
    assert not any(needle.split(" =")[0] in w for w in config_warnings(settings()))


# --- shutdown_grace_period: the batch time budget ----------------------------------------


class Ctx:
    def __init__(self, remaining_s: float):
        self.remaining_s = remaining_s

    def get_remaining_time_in_millis(self) -> int:
        return int(self.remaining_s * 1000)


def test_budget_keeps_the_grace_period_before_the_first_deadline():
    s = settings("reconciler:\n  timeouts: {shutdown_grace_period: 30s}\n")
    assert runtime.Budget.for_batch(Ctx(100), s, {}).left_s() == pytest.approx(70)
    now = [1000.0]
    budget = runtime.Budget.for_batch(Ctx(100), s, {"timeout_s": 50})
    budget.started, budget.clock = 1000.0, lambda: now[0]
    assert budget.left_s() == pytest.approx(20)  # the step's timeout comes first
    now[0] = 1021.0
    assert budget.exhausted()
    s0 = settings("reconciler:\n  timeouts: {shutdown_grace_period: 0s}\n")
    assert not runtime.Budget.for_batch(Ctx(5), s0, {}).exhausted()
    assert runtime.Budget.for_batch(Ctx(5), s, {}).exhausted()


# --- cooldown_period / batch.delay: pauses between batch waves --------------------------


def test_pause_only_before_batches_after_the_first_wave():
    slept = []
    s = settings("reconciler:\n  batch: {max_parallel_batch: 2}\n")
    pause = runtime.pause_between_batches
    assert [pause(b, 0, 0.25, s, sleep=slept.append) for b in range(4)] == [0, 0, 0.25, 0.25]
    assert pause(3, 7, 0.25, s, sleep=slept.append) == 0  # a continuation does not pause again
    assert pause(3, 0, 0.0, s, sleep=slept.append) == 0
    assert slept == [0.25, 0.25]
    wide = settings("reconciler:\n  max_concurrency: 5\n  batch: {max_parallel_batch: 4}\n")
    assert pause(3, 0, 0.25, wide, sleep=slept.append) == 0  # still in the first wave of 4


def test_batches_in_flight_never_all_pause_at_once():
    """Batches that finish together start the next wave together: with a pause slot each they
    would all pause at once and leave the API idle. All but one of the batches in flight may
    pause (one when one batch is in flight); the others start at once."""
    from tests.fakes import FakeClock, MemoryStore

    clock = FakeClock()
    store, slept = MemoryStore(clock), []
    pause = runtime.pause_between_batches

    def claim(n, hold):
        return store.claim_pause("r", "scan", n, hold)

    two = settings("reconciler:\n  batch: {max_parallel_batch: 2}\n")
    assert runtime.pause_slots(two) == 1
    assert [pause(b, 0, 2.0, two, sleep=slept.append, claim=claim) for b in (2, 3)] == [2.0, 0.0]
    clock.advance(2.0)  # the first pause is over: the next batch may pause again
    assert pause(4, 0, 2.0, two, sleep=slept.append, claim=claim) == 2.0
    wide = settings("reconciler:\n  max_concurrency: 5\n  batch: {max_parallel_batch: 4}\n")
    assert runtime.pause_slots(wide) == 3
    assert [pause(b, 0, 1.0, wide, sleep=slept.append, claim=lambda n, h: store.claim_pause("r", "w", n, h))
            for b in range(4, 8)] == [1.0, 1.0, 1.0, 0.0]
    one = settings("reconciler:\n  batch: {max_parallel_batch: 1}\n")
    assert runtime.pause_slots(one) == 1  # one batch in flight: its pause is the only one
    assert pause(1, 0, 2.0, one, sleep=slept.append, claim=lambda n, h: store.claim_pause("r", "one", n, h)) == 2.0
    assert slept == [2.0, 2.0, 1.0, 1.0, 1.0, 2.0]


class FakeStore:
    def get_scratch(self, run_id, key, default=None):
        return default

    def put_scratch(self, *args, **kwargs):
        pass

    def claim_pause(self, run_id, key, slots, hold_s):
        return True


class TwoDeploymentStore(FakeStore):
    """One deployment per scan batch: ``cached`` ones are in the cache, ``fresh`` is not."""

    def get_scratch(self, run_id, key, default=None):
        if key == "bosh":
            return {"batch_size": 1, "deployments": [{"director": "d", "name": "cached-0"},
                                                      {"director": "d", "name": "fresh"},
                                                      {"director": "d", "name": "cached-2"}]}
        return default

    def get_cached_deployment(self, director, name, max_age=None):
        return {"director": director, "name": name} if name.startswith("cached") else None

    def record_error(self, *args):
        pass


def test_scan_and_apply_batches_pause_by_their_own_keys():
    from reconciler.models import DeploymentDetail
    from reconciler.phases import apply_batch, scan_batch

    slept = []
    # one batch in flight at a time: every batch but the first is of a second wave (it may pause)
    s = settings("reconciler:\n  concurrency: {cooldown_period: 3s}\n  batch: {delay: 250ms, max_parallel_batch: 1}\n")
    director = SimpleNamespace(detail=lambda dep, use_cache=False: DeploymentDetail(director="d", name=dep.name))
    deps = Deps.build(s, TwoDeploymentStore(), sleep=slept.append, kv_factory=lambda kv_version: None,
                      directors_factory=lambda: {"d": director})
    assert scan_batch.run({"run_id": "r", "batch": 0, "offset": 0}, Ctx(100), deps)["done"] is True  # first wave
    assert scan_batch.run({"run_id": "r", "batch": 1, "offset": 0}, Ctx(100), deps)["done"] is True  # BOSH requests
    assert scan_batch.run({"run_id": "r", "batch": 2, "offset": 0}, Ctx(100), deps)["done"] is True  # cache only
    assert apply_batch.run({"run_id": "r", "batch": 4, "offset": 0}, Ctx(100), deps)["done"] is True  # no items
    # scan: cooldown_period, only when it reads BOSH; apply: batch.delay, only before its first
    # request (this batch has nothing to read: it sends none and does not wait)
    assert slept == [3.0]


# --- queue_size, adaptive batch sizes, max_deployments_per_run ---------------------------


def test_queue_size_bounds_the_batches_of_one_map_state():
    s = settings("reconciler:\n  concurrency: {queue_size: 4}\n")
    assert runtime.max_map_items(s) == 4
    assert runtime.split(40, 5, runtime.max_map_items(s)) == (10, 4)  # 8 batches would exceed 4: they grow
    assert runtime.split(40, 5, runtime.max_map_items(settings())) == (5, 8)
    assert runtime.max_map_items(settings("reconciler:\n  concurrency: {queue_size: 99999}\n")) == 1000


def test_adaptive_batch_size_follows_the_previous_runs_time_per_item():
    s = settings("reconciler:\n  batch_size: 10\n  timeouts: {deployment_scan: 200s, vault_operations: 40s}\n"
                 "  batch: {size: 10, min_size: 5, max_size: 50}\n")
    assert runtime.batch_size(s, "scan", None) == 10  # no previous run: the configured size
    assert runtime.batch_size(s, "scan", 2000.0) == 25  # 50 s (a quarter of 200 s) / 2 s
    assert runtime.batch_size(s, "scan", 100.0) == 50  # capped at max_size
    assert runtime.batch_size(s, "scan", 60000.0) == 5  # at least min_size
    assert runtime.batch_size(s, "apply", 1000.0) == 10  # 10 s / 1 s
    off = settings("reconciler:\n  batch_size: 10\n  batch: {adaptive_scaling: false}\n")
    assert runtime.batch_size(off, "scan", 2000.0) == 10 and runtime.batch_size(off, "apply", 1.0) == 10


def test_finish_records_time_per_item_for_the_next_run():
    from reconciler.phases.finish import item_times

    assert item_times(scan={"busy_ms": 3000, "items": 6}, apply={"busy_ms": 0, "items": 0}) == {
        "scan_ms_per_item": 500.0}


class ListingStore(FakeStore):
    def __init__(self):
        self.data = {}

    def get_scratch(self, run_id, key, default=None):
        return self.data.get((run_id, key), default)

    def put_scratch(self, run_id, key, value, ttl_s):
        self.data[(run_id, key)] = value

    def get_metrics(self):
        return {}

    def cached_deployments(self, director):
        return {}


def test_discover_bosh_defers_deployments_beyond_the_cap_and_match_sees_them_unscanned():
    from reconciler.models import BoshDeployment
    from reconciler.phases import discover_bosh, match

    names = [f"redis-{i}" for i in range(5)] + ["cf"]
    client = SimpleNamespace(deployments=lambda: [BoshDeployment(director="bosh", name=n) for n in names])
    s = settings("reconciler:\n  batch_size: 1\n  concurrency: {max_deployments_per_run: 2}\n"
                 "bosh: {url: 'https://10.0.0.6:25555', auth: basic, username: u, password: p}\n")
    store = ListingStore()
    deps = Deps.build(s, store, directors_factory=lambda: {"bosh": client})
    scanned = []
    for run in ("r1", "r2", "r3"):
        out = discover_bosh.run({"run": {"run_id": run}}, None, deps)
        assert (out["to_scan"], out["deferred"], out["excluded"], out["deployments"]) == (2, 3, 1, 6)
        listing = store.data[(run, "bosh")]
        scanned += [d["name"] for d in listing["deployments"]]
        details, _ = match.gather_details(store, run, SourceResult(status="ok"))
        assert sorted(d.name for d in details) == sorted(d["name"] for d in listing["deferred"])
        assert all(d.error and "max_deployments_per_run" in d.error for d in details)
    assert set(scanned) == {f"redis-{i}" for i in range(5)}  # three runs cover all five


@pytest.mark.parametrize("pool", [1, 3, 8])
def test_worker_pool_size_is_the_number_of_vault_reads_in_flight(monkeypatch, pool):
    import threading
    import uuid

    from reconciler.phases import apply_batch

    items = [{"instance_id": str(uuid.UUID(int=i + 1))} for i in range(8)]
    store = ListingStore()
    store.data[("r", "apply#0#items")] = items
    lock, state = threading.Lock(), {"now": 0, "max": 0}
    released = threading.Event()

    def read(path):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
            if state["now"] >= pool:
                released.set()
        released.wait(2)  # hold every reader until the pool is full (or give up: a smaller pool)
        with lock:
            state["now"] -= 1
        return None

    s = settings(f"reconciler:\n  concurrency: {{worker_pool_size: {pool}}}\n")
    deps = Deps.build(s, store, kv_factory=lambda kv_version: SimpleNamespace(mount="secret", read=read, kv_version=2))
    monkeypatch.setattr(apply_batch, "plan_batch", lambda chunk, trees, **kw: SimpleNamespace(plans=[]))
    monkeypatch.setattr(apply_batch, "apply_plan",
                        lambda *a, **kw: SimpleNamespace(instances=[], figures={}, aborted=None, cause=None))
    assert apply_batch.run({"run_id": "r", "batch": 0, "offset": 0}, Ctx(100), deps)["done"] is True
    assert state["max"] == pool


class BeginStore:
    def __init__(self):
        self.runs, self.locks = [], []

    def acquire_lock(self, run_id, arn, lease):
        self.locks.append(lease)

    def clear_cache(self):
        return 0

    def put_run(self, run):
        self.runs.append(run)

    def release_lock(self, run_id):
        pass


def test_begin_hands_the_map_limits_and_step_timeouts_to_the_state_machine():
    from reconciler.phases import begin

    s = settings("reconciler:\n  max_concurrency: 3\n  batch: {max_parallel_batch: 4}\n"
                 "  timeouts: {instance_discovery: 90s, deployment_scan: 4m, vault_operations: 1500ms,"
                 " reconciliation_run: 20m}\n  metrics: {prometheus_port: 9100}\n")
    store = BeginStore()
    deps = Deps.build(s, store, environ={"SCHEDULE_EXPRESSION": "rate(2 hours)"})
    event = {"input": {"source": "schedule"}, "execution_arn": "arn:aws:states:x:1:execution:m:run-1",
             "started_at": "2024-01-01T00:00:00Z"}
    run = begin.run(event, None, deps)["run"]
    # min(max_parallel_batch, max_concurrency); overlap_phases on by default
    assert run["limits"] == {"scan_concurrency": 3, "apply_concurrency": 3, "overlap": True}
    assert run["timeouts"] == {"instance_discovery": 90, "deployment_scan": 240, "vault_operations": 2}
    assert store.locks == [1200.0]  # the lease is the run timeout
    warnings = store.runs[0]["warnings"]
    assert any("prometheus_port" in w for w in warnings)  # keys without effect, at every run
    assert any("reconciler.interval" in w and "rate(2 hours)" in w for w in warnings)  # deployed != configured
