"""Every reconciler.* key acts somewhere (or says it cannot): deploy-time parameters, warnings,
time budgets, pauses between batches, probe timeouts, metrics switches, retention."""

import json
from pathlib import Path

import pytest

from reconciler.config import all_env_keys, config_warnings, load_settings
from reconciler.config.__main__ import main as config_cli
from reconciler.config.effects import KEY_EFFECTS, deployment_drift, effect_of, inert_warnings
from reconciler.config.reference import EFFECTS_BEGIN, EFFECTS_END
from reconciler.phases import runtime

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


def test_pause_only_before_batches_after_the_first_wave(monkeypatch):
    slept = []
    monkeypatch.setattr(runtime, "sleep", slept.append)
    s = settings("reconciler:\n  batch: {max_parallel_batch: 2}\n")
    assert [runtime.pause_between_batches(b, 0, 0.25, s) for b in range(4)] == [0, 0, 0.25, 0.25]
    assert runtime.pause_between_batches(3, 7, 0.25, s) == 0  # a continuation does not pause again
    assert runtime.pause_between_batches(3, 0, 0.0, s) == 0
    assert slept == [0.25, 0.25]
    wide = settings("reconciler:\n  max_concurrency: 5\n  batch: {max_parallel_batch: 4}\n")
    assert runtime.pause_between_batches(3, 0, 0.25, wide) == 0  # still in the first wave of 4


class FakeStore:
    def get_scratch(self, run_id, key, default=None):
        return default

    def put_scratch(self, *args, **kwargs):
        pass


def test_scan_and_apply_batches_pause_by_their_own_keys(monkeypatch):
    from reconciler.phases import apply_batch, scan_batch, sources

    calls = []
    monkeypatch.setattr(runtime, "pause_between_batches",
                        lambda batch, offset, delay, s, budget=None: calls.append((batch, delay)) or 0.0)
    s = settings("reconciler:\n  concurrency: {cooldown_period: 3s}\n  batch: {delay: 250ms}\n")
    monkeypatch.setattr(runtime, "settings", lambda: s)
    monkeypatch.setattr(runtime, "store", FakeStore)
    monkeypatch.setattr(sources, "vault", lambda s, store: None)
    assert scan_batch.run({"run_id": "r", "batch": 3, "offset": 0}, Ctx(100))["done"] is True
    assert apply_batch.run({"run_id": "r", "batch": 4, "offset": 0}, Ctx(100))["done"] is True
    assert calls == [(3, 3.0), (4, 0.25)]
