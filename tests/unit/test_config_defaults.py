"""Every key of the spec, its default and its type; the spec's own example file."""

import json
from pathlib import Path

import pytest

from reconciler.config import load_settings, parse_bool, parse_duration

FIXTURES = Path(__file__).parent / "fixtures"
SPEC_EXAMPLE = (FIXTURES / "spec_blacksmith.conf").read_text()

# Written out independently of the models (fixtures/config_defaults.json): the spec's table
# defaults, and for keys without a table the values of the spec's blacksmith.conf example.
# Durations in seconds.
EXPECTED_DEFAULTS = json.loads((FIXTURES / "config_defaults.json").read_text())


def get(obj, dotted):
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def flatten(data, prefix=""):
    out = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and key != "release_services":
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


def test_every_key_has_the_spec_default_and_type():
    r = load_settings(env={}).reconciler
    for key, expected in EXPECTED_DEFAULTS.items():
        value = get(r, key)
        assert value == expected, key
        assert type(value) is type(expected), key


def test_the_model_has_no_key_the_test_does_not_know():
    dumped = flatten(load_settings(env={}).reconciler.model_dump())
    assert set(dumped) == set(EXPECTED_DEFAULTS)


def test_defaults_have_no_endpoints_and_debug_off():
    s = load_settings(env={})
    assert s.cf_foundations == [] and s.bosh_directors == []
    assert s.vault.address is None and s.vault.mount == "secret"
    assert s.debug is False
    assert s.load_warnings == ()


def test_spec_example_loads_as_its_author_meant():
    s = load_settings(env={}, file_text=SPEC_EXAMPLE)
    r = s.reconciler
    # first block
    assert r.interval == 1800.0 and r.max_concurrency == 10 and r.batch_size == 20
    assert r.retry_attempts == 5 and r.retry_delay == 15.0 and r.cache_ttl == 600.0
    assert r.concurrency.max_concurrent == 4 and r.concurrency.cooldown_period == 2.0
    assert r.apis.bosh.rate_limit.requests_per_second == 10 and r.apis.vault.circuit_breaker.timeout == 45.0
    assert r.batch.delay == 0.5 and r.timeouts.reconciliation_run == 900.0
    assert r.metrics.retention_period == 86400.0 and r.metrics.prometheus_port == 9090
    # second block merged over the first
    assert r.backup.retention_count == 10 and r.backup.retention_days == 30


def test_spec_example_duplicate_key_warning_names_both_lines():
    lines = SPEC_EXAMPLE.splitlines()
    where = [i + 1 for i, line in enumerate(lines) if line.startswith("reconciler:")]
    assert len(where) == 2
    s = load_settings(env={}, file_text=SPEC_EXAMPLE)
    assert len(s.load_warnings) == 1
    warning = s.load_warnings[0]
    assert f"line {where[1]}" in warning and f"first at line {where[0]}" in warning and "reconciler" in warning


def test_duplicate_block_merges_deeply_and_keeps_untouched_keys():
    text = (
        "reconciler:\n  interval: 30m\n  backup:\n    retention_days: 7\n    enabled: false\n"
        "reconciler:\n  backup:\n    retention_days: 30\n"
    )
    s = load_settings(env={}, file_text=text)
    assert s.reconciler.interval == 1800.0
    assert s.reconciler.backup.retention_days == 30
    assert s.reconciler.backup.enabled is False


def test_duplicate_scalar_key_later_wins_with_warning():
    s = load_settings(env={}, file_text="reconciler:\n  batch_size: 3\n  batch_size: 4\n")
    assert s.reconciler.batch_size == 4
    assert "line 3" in s.load_warnings[0] and "later value wins" in s.load_warnings[0]


def test_yaml_anchors_and_merge_keys_work():
    text = """
reconciler:
  apis:
    bosh: &api
      timeout: 12s
      max_connections: 3
    cf:
      <<: *api
      max_connections: 4
"""
    s = load_settings(env={}, file_text=text)
    assert s.reconciler.apis.cf.timeout == 12.0 and s.reconciler.apis.cf.max_connections == 4
    assert s.load_warnings == ()


def test_partial_api_override_keeps_that_apis_own_defaults():
    s = load_settings(env={}, file_text="reconciler:\n  apis:\n    cf:\n      rate_limit:\n        burst: 7\n")
    cf = s.reconciler.apis.cf
    assert cf.rate_limit.burst == 7
    assert cf.rate_limit.requests_per_second == 20.0 and cf.circuit_breaker.failure_threshold == 3
    assert s.reconciler.apis.get("vault").timeout == 10.0


def test_empty_and_comment_only_files_give_defaults():
    assert load_settings(env={}, file_text="").reconciler.interval == 3600.0
    assert load_settings(env={}, file_text="# nothing\n").reconciler.interval == 3600.0
    assert load_settings(env={}, file_text="reconciler:\n").reconciler.batch_size == 10


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("15s", 15.0),
        ("30m", 1800.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1h30m10s", 5410.0),
        ("1.5s", 1.5),
        ("2m500ms", 120.5),
        ("90", 90.0),
        ("0.25", 0.25),
        (45, 45.0),
        (2.5, 2.5),
        ("0", 0.0),
        (" 10s ", 10.0),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["5d", "1x", "s", "h1", "1h 30m", "-5s", -1, True, "", "ten", "1e400"])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("raw", "value"),
    [("true", True), ("TRUE", True), ("yes", True), ("1", True), (1, True), (True, True)]
    + [("false", False), ("False", False), ("no", False), ("0", False), (0, False), (False, False)],
)
def test_booleans(raw, value):
    assert parse_bool(raw) is value


@pytest.mark.parametrize("bad", ["maybe", "2", 2, "", "y", None, 1.0])
def test_bad_booleans(bad):
    with pytest.raises(ValueError):
        parse_bool(bad)


def test_settings_are_immutable():
    s = load_settings(env={})
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error
        s.reconciler.interval = 5


@pytest.mark.parametrize(
    ("interval", "expression"),
    [("1h", "rate(1 hour)"), ("30m", "rate(30 minutes)"), ("1m", "rate(1 minute)"), ("10s", "rate(1 minute)"),
     ("90s", "rate(2 minutes)"), ("1h30m", "rate(90 minutes)"), ("2h", "rate(2 hours)"), ("48h", "rate(2 days)")],
)
def test_schedule_expression_from_interval(interval, expression):
    s = load_settings(env={"BLACKSMITH_RECONCILER_INTERVAL": interval})
    assert s.reconciler.schedule_expression() == expression
