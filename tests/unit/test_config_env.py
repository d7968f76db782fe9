"""Environment variables: names, precedence, booleans switched off from the file."""

import json
from pathlib import Path

import pytest

from reconciler.config import Settings, all_env_keys, load_settings, reconciler_env_keys
from reconciler.config.models import MatchRule, Webhook
from reconciler.errors import ConfigError

EXPECTED_DEFAULTS = json.loads((Path(__file__).parent / "fixtures" / "config_defaults.json").read_text())


def get(obj, dotted):
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


SPEC_TABLE = {
    "BLACKSMITH_RECONCILER_ENABLED": "enabled",
    "BLACKSMITH_RECONCILER_INTERVAL": "interval",
    "BLACKSMITH_RECONCILER_MAX_CONCURRENCY": "max_concurrency",
    "BLACKSMITH_RECONCILER_BATCH_SIZE": "batch_size",
    "BLACKSMITH_RECONCILER_RETRY_ATTEMPTS": "retry_attempts",
    "BLACKSMITH_RECONCILER_RETRY_DELAY": "retry_delay",
    "BLACKSMITH_RECONCILER_CACHE_TTL": "cache_ttl",
    "BLACKSMITH_RECONCILER_DEBUG": "debug",
    "BLACKSMITH_RECONCILER_BACKUP_ENABLED": "backup.enabled",
    "BLACKSMITH_RECONCILER_BACKUP_RETENTION": "backup.retention_count",
    "BLACKSMITH_RECONCILER_BACKUP_RETENTION_DAYS": "backup.retention_days",
    "BLACKSMITH_RECONCILER_BACKUP_COMPRESSION": "backup.compression_level",
    "BLACKSMITH_RECONCILER_BACKUP_CLEANUP": "backup.cleanup_enabled",
    "BLACKSMITH_RECONCILER_BACKUP_ON_UPDATE": "backup.backup_on_update",
    "BLACKSMITH_RECONCILER_BACKUP_ON_DELETE": "backup.backup_on_delete",
}

BOOLEANS = [k for k, v in EXPECTED_DEFAULTS.items() if isinstance(v, bool)]


def _sample(default, key=""):
    """A valid non-default value of the same type, as an env string and its parsed value."""
    if isinstance(default, bool):
        return ("false", False) if default else ("true", True)
    if isinstance(default, int):
        value = default + 1 if default != 9 else 8  # compression_level stays within 1-9
        return str(value), value
    if isinstance(default, float):
        if key.endswith(("requests_per_second", "multiplier")):
            return "3.5", 3.5
        if key.endswith(("jitter", "time_share")):
            return "0.25", 0.25
        if key.endswith("batch.delay"):
            return "250ms", 0.25
        return ("2m", 120.0) if default != 120.0 else ("3m", 180.0)
    if key == "matching.rules":
        raw = '[{"name": "r", "manifest_path": "meta.id"}]'
        return raw, [MatchRule(name="r", manifest_path="meta.id")]
    if key == "notifications.webhooks":
        raw = '[{"url": "https://hooks.example.com/x", "events": ["run_failed"]}]'
        return raw, [Webhook(url="https://hooks.example.com/x", events=["run_failed"])]
    if isinstance(default, list):
        return "a, b ,c", ["a", "b", "c"]
    if isinstance(default, dict):
        return "redis-x=redis, pg=postgresql", {"redis-x": "redis", "pg": "postgresql"}
    if default in ("task", "instances"):
        other = "task" if default == "instances" else "instances"
        return other, other
    if key == "remediation.vault_orphan.action":
        return "archive", "archive"
    if key.startswith("remediation.") and default == "report":
        return "report", "report"  # the only action of a report-only kind
    raise AssertionError(default)


def _env_name(key):
    return next(k.names[-1] for k in reconciler_env_keys() if k.key == "reconciler." + key)


def test_spec_table_names_map_to_their_keys():
    for name, key in SPEC_TABLE.items():
        raw, value = _sample(EXPECTED_DEFAULTS[key], key)
        s = load_settings(env={name: raw})
        assert get(s.reconciler, key) == value, name


@pytest.mark.parametrize("key", list(EXPECTED_DEFAULTS))
def test_every_key_has_a_derived_env_name_that_works(key):
    raw, value = _sample(EXPECTED_DEFAULTS[key], key)
    if key == "batch.size":
        raw, value = "20", 20  # within min_size..max_size
    if key == "batch.min_size":
        raw, value = "2", 2
    if key == "retry.initial_delay":
        raw, value = "2s", 2.0
    name = _env_name(key)
    assert name.startswith("BLACKSMITH_RECONCILER_")
    s = load_settings(env={name: raw})
    assert get(s.reconciler, key) == value


def test_derived_names_follow_the_rule():
    names = {k.key: k.names for k in reconciler_env_keys()}
    assert names["reconciler.apis.bosh.rate_limit.requests_per_second"] == (
        "BLACKSMITH_RECONCILER_APIS_BOSH_RATE_LIMIT_REQUESTS_PER_SECOND",
    )
    assert names["reconciler.retry.retryable_errors"] == ("BLACKSMITH_RECONCILER_RETRY_RETRYABLE_ERRORS",)
    assert names["reconciler.batch_size"] == ("BLACKSMITH_RECONCILER_BATCH_SIZE",)
    assert names["reconciler.batch.size"] == ("BLACKSMITH_RECONCILER_BATCH__SIZE",)
    assert names["reconciler.backup.retention_count"] == (
        "BLACKSMITH_RECONCILER_BACKUP_RETENTION",
        "BLACKSMITH_RECONCILER_BACKUP_RETENTION_COUNT",
    )


def test_env_names_are_unique():
    seen = {}
    for key in all_env_keys():
        for name in key.names:
            assert name not in seen, f"{name} names both {seen.get(name)} and {key.key}"
            seen[name] = key.key


def test_batch_size_and_batch_dot_size_are_distinct():
    s = load_settings(env={"BLACKSMITH_RECONCILER_BATCH_SIZE": "7", "BLACKSMITH_RECONCILER_BATCH__SIZE": "12"})
    assert s.reconciler.batch_size == 7 and s.reconciler.batch.size == 12


def test_retryable_errors_comma_list():
    s = load_settings(env={"BLACKSMITH_RECONCILER_RETRY_RETRYABLE_ERRORS": "timeout, 503 ,reset by peer"})
    assert s.reconciler.retry.retryable_errors == ["timeout", "503", "reset by peer"]


@pytest.mark.parametrize("key", BOOLEANS)
@pytest.mark.parametrize("word", ["false", "no", "0", "False", '"false"', "'no'"])
def test_every_boolean_can_be_switched_off_from_the_file(key, word):
    text = "reconciler:\n"
    parts = key.split(".")
    for depth, part in enumerate(parts[:-1]):
        text += "  " * (depth + 1) + part + ":\n"
    text += "  " * len(parts) + f"{parts[-1]}: {word}\n"
    s = load_settings(env={}, file_text=text)
    assert get(s.reconciler, key) is False, text


@pytest.mark.parametrize("key", BOOLEANS)
def test_every_boolean_can_be_switched_off_and_on_from_env(key):
    name = _env_name(key)
    assert get(load_settings(env={name: "no"}).reconciler, key) is False
    assert get(load_settings(env={name: "1"}).reconciler, key) is True


def test_env_beats_file():
    text = "reconciler:\n  interval: 30m\n  backup:\n    enabled: true\n    retention_count: 3\n"
    env = {
        "BLACKSMITH_RECONCILER_INTERVAL": "2h",
        "BLACKSMITH_RECONCILER_BACKUP_ENABLED": "false",
        "BLACKSMITH_RECONCILER_BACKUP_RETENTION": "9",
    }
    s = load_settings(env=env, file_text=text)
    assert s.reconciler.interval == 7200.0
    assert s.reconciler.backup.enabled is False
    assert s.reconciler.backup.retention_count == 9


def test_file_beats_default_when_env_is_silent():
    text = "reconciler:\n  interval: 30m\n  backup:\n    enabled: false\n"
    s = load_settings(env={"UNRELATED": "x", "BLACKSMITH_RECONCILER_BATCH_SIZE": ""}, file_text=text)
    assert s.reconciler.interval == 1800.0 and s.reconciler.backup.enabled is False
    assert s.reconciler.batch_size == 10  # empty env var = unset


def test_env_false_beats_file_true_and_env_true_beats_file_false():
    on = "reconciler:\n  enabled: true\n"
    off = "reconciler:\n  enabled: false\n"
    assert load_settings(env={"BLACKSMITH_RECONCILER_ENABLED": "false"}, file_text=on).reconciler.enabled is False
    assert load_settings(env={"BLACKSMITH_RECONCILER_ENABLED": "true"}, file_text=off).reconciler.enabled is True


def test_env_overrides_one_key_of_a_nested_section_keeping_the_rest_of_the_file():
    text = "reconciler:\n  apis:\n    bosh:\n      rate_limit:\n        burst: 8\n        wait_timeout: 9s\n"
    s = load_settings(env={"BLACKSMITH_RECONCILER_APIS_BOSH_RATE_LIMIT_BURST": "2"}, file_text=text)
    assert s.reconciler.apis.bosh.rate_limit.burst == 2
    assert s.reconciler.apis.bosh.rate_limit.wait_timeout == 9.0


@pytest.mark.parametrize(
    ("env", "file_debug", "expected"),
    [
        ({}, "false", False),
        ({"BLACKSMITH_DEBUG": "true"}, "false", True),
        ({"BLACKSMITH_DEBUG": "false"}, "true", True),
        ({"BLACKSMITH_RECONCILER_DEBUG": "yes"}, "false", True),
        ({}, "true", True),
    ],
)
def test_debug_and_global_debug(env, file_debug, expected):
    s = load_settings(env=env, file_text=f"reconciler:\n  debug: {file_debug}\n")
    assert s.debug is expected


def test_both_spelling_of_one_key_with_different_values_is_an_error():
    with pytest.raises(ConfigError) as err:
        load_settings(
            env={"BLACKSMITH_RECONCILER_BACKUP_RETENTION": "3", "BLACKSMITH_RECONCILER_BACKUP_RETENTION_COUNT": "4"}
        )
    msg = str(err.value)
    assert "BLACKSMITH_RECONCILER_BACKUP_RETENTION" in msg and "BLACKSMITH_RECONCILER_BACKUP_RETENTION_COUNT" in msg
    # the same value twice is fine
    s = load_settings(
        env={"BLACKSMITH_RECONCILER_BACKUP_RETENTION": "3", "BLACKSMITH_RECONCILER_BACKUP_RETENTION_COUNT": "3"}
    )
    assert s.reconciler.backup.retention_count == 3


def test_unknown_env_var_under_our_prefix_is_an_error_with_a_suggestion():
    with pytest.raises(ConfigError) as err:
        load_settings(env={"BLACKSMITH_RECONCILER_INTERVALL": "5m"})
    assert "BLACKSMITH_RECONCILER_INTERVALL" in str(err.value)
    assert "did you mean BLACKSMITH_RECONCILER_INTERVAL" in str(err.value)


def test_reserved_and_unrelated_env_vars_are_ignored():
    s = load_settings(
        env={"BLACKSMITH_RECONCILER_CONFIG_FILE": "/x", "BLACKSMITH_OTHER": "1", "PATH": "/bin", "CACHE_TABLE": "t"}
    )
    assert isinstance(s, Settings)


def test_matching_env_lists_and_maps():
    s = load_settings(
        env={
            "BLACKSMITH_RECONCILER_MATCHING_EXCLUDED_DEPLOYMENTS": "cf,bosh,logsearch",
            "BLACKSMITH_RECONCILER_MATCHING_RELEASE_SERVICES": "redis=redis,pg-release=postgresql",
            "BLACKSMITH_RECONCILER_BOSH_VM_DETAILS": "task",
        }
    )
    m = s.reconciler.matching
    assert m.excluded_deployments == ["cf", "bosh", "logsearch"]
    assert m.release_services == {"redis": "redis", "pg-release": "postgresql"}
    assert s.reconciler.bosh.vm_details == "task"
