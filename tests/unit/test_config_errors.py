"""Bad values: one ConfigError naming key, value, source and what is accepted."""

import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.config import load_settings
from reconciler.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def error_of(env=None, text=None, name="blacksmith.conf"):
    with pytest.raises(ConfigError) as err:
        load_settings(env=env or {}, file_text=text, file_name=name)
    return str(err.value)


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("reconciler:\n  batch_size: -3\n", ["reconciler.batch_size", "-3", "line 2", "a whole number >= 1"]),
        ("reconciler:\n  interval: 5d\n", ["reconciler.interval", "'5d'", "unknown unit 'd'", "1h30m"]),
        ("reconciler:\n  interval: -1m\n", ["reconciler.interval", "negative"]),
        ("reconciler:\n  backup:\n    compression_level: 10\n", ["compression_level", "10", "from 1 to 9", "line 3"]),
        ("reconciler:\n  backup:\n    compression_level: 0\n", ["compression_level", "0", "from 1 to 9"]),
        ("reconciler:\n  retry:\n    jitter: 1.5\n", ["reconciler.retry.jitter", "1.5", "from 0 to 1"]),
        ("reconciler:\n  retry:\n    jitter: -0.1\n", ["reconciler.retry.jitter", "from 0 to 1"]),
        ("reconciler:\n  intervall: 1h\n", ["reconciler.intervall", "unknown key", "did you mean 'interval'"]),
        ("recon:\n  interval: 1h\n", ["recon", "unknown key", "accepted keys here: reconciler, cf, bosh, vault"]),
        ("reconciler:\n  max_concurrency: many\n", ["max_concurrency", "'many'", "a whole number"]),
        ("reconciler:\n  max_concurrency: 2.5\n", ["max_concurrency", "2.5", "a whole number"]),
        ("reconciler:\n  max_concurrency: true\n", ["max_concurrency", "True", "a whole number"]),
        ("reconciler:\n  enabled: maybe\n", ["reconciler.enabled", "'maybe'", "true/false/yes/no/1/0"]),
        ("reconciler:\n  enabled: 2\n", ["reconciler.enabled", "2", "true/false/yes/no/1/0"]),
        ("reconciler:\n  apis:\n    bosh:\n      rate_limit:\n        requests_per_second: 0\n", ["> 0", "line 5"]),
        ("reconciler:\n  apis:\n    nats: {}\n", ["reconciler.apis.nats", "unknown key", "bosh, cf, vault"]),
        ("reconciler:\n  metrics:\n    prometheus_port: 70000\n", ["prometheus_port", "from 1 to 65535"]),
        ("reconciler:\n  retry:\n    multiplier: 0.5\n", ["multiplier", ">= 1"]),
        ("reconciler:\n  retry:\n    retryable_errors: timeout\n", None),  # a single string is a 1-item list
        ("reconciler:\n  retry:\n    retryable_errors: [1, 2]\n", ["retryable_errors", "item 0"]),
        ("reconciler:\n  matching:\n    release_services: [redis]\n", ["release_services", "a mapping of strings"]),
        ("reconciler:\n  bosh:\n    vm_details: full\n", ["reconciler.bosh.vm_details", "'full'", "task or instances"]),
        ("reconciler:\n  batch:\n    min_size: 20\n", ["reconciler.batch", "min_size <= size <= max_size"]),
        ("reconciler:\n  retry:\n    initial_delay: 1m\n", ["initial_delay (60s) is greater than max_delay (30s)"]),
        ("reconciler: 5\n", ["reconciler = 5", "expected a mapping"]),
        ("reconciler:\n  backup: [1]\n", ["reconciler.backup", "expected a mapping"]),
    ],
)
def test_bad_file_values(text, parts):
    if parts is None:
        assert load_settings(env={}, file_text=text).reconciler.retry.retryable_errors == ["timeout"]
        return
    msg = error_of(text=text)
    assert msg.startswith("invalid configuration")
    for part in parts:
        assert part in msg, (part, msg)


@pytest.mark.parametrize(
    ("env", "parts"),
    [
        ({"BLACKSMITH_RECONCILER_INTERVAL": "soon"}, ["reconciler.interval", "'soon'", "_RECONCILER_INTERVAL"]),
        ({"BLACKSMITH_RECONCILER_BACKUP_COMPRESSION": "12"}, ["_RECONCILER_BACKUP_COMPRESSION", "from 1 to 9"]),
        ({"BLACKSMITH_RECONCILER_RETRY_JITTER": "2"}, ["BLACKSMITH_RECONCILER_RETRY_JITTER", "'2'", "from 0 to 1"]),
        ({"BLACKSMITH_RECONCILER_ENABLED": "enabled"}, ["BLACKSMITH_RECONCILER_ENABLED", "true/false/yes/no/1/0"]),
        ({"BLACKSMITH_DEBUG": "loud"}, ["BLACKSMITH_DEBUG", "'loud'", "true/false"]),
        ({"BLACKSMITH_RECONCILER_MATCHING_RELEASE_SERVICES": "redis"}, ["'redis' is not key=value"]),
        ({"BLACKSMITH_VAULT_TOKEN": "ssm:"}, ["vault.token", "BLACKSMITH_VAULT_TOKEN", "names no parameter"]),
        ({"BLACKSMITH_CF_APIURL": "x"}, ["BLACKSMITH_CF_APIURL", "did you mean BLACKSMITH_CF_API_URL"]),
    ],
)
def test_bad_env_values_name_the_variable(env, parts):
    msg = error_of(env=env)
    for part in parts:
        assert part in msg, (part, msg)


def test_all_problems_in_one_message_from_file_and_env():
    text = "reconciler:\n  batch_size: 0\n  backup:\n    compression_level: 11\n  nonsense: 1\n"
    msg = error_of(env={"BLACKSMITH_RECONCILER_RETRY_JITTER": "3"}, text=text)
    assert "(4 problems)" in msg
    for part in ["batch_size", "compression_level", "nonsense", "BLACKSMITH_RECONCILER_RETRY_JITTER"]:
        assert part in msg


def test_env_value_fixes_a_bad_file_value():
    s = load_settings(env={"BLACKSMITH_RECONCILER_BATCH_SIZE": "4"}, file_text="reconciler:\n  batch_size: -1\n")
    assert s.reconciler.batch_size == 4


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("reconciler:\n  interval: [1h\n", ["malformed YAML", "line 3"]),
        ("reconciler:\n  interval: 1h\n bad_indent: 2\n", ["malformed YAML", "line 3"]),
        ("reconciler:\n\tinterval: 1h\n", ["malformed YAML", "line 2"]),
        ("- just\n- a list\n", ["top level is a list"]),
        ("just text\n", ["top level is a str"]),
        ("reconciler: &a\n  x: *a\n", None),  # recursive alias: an error, never a crash
    ],
)
def test_malformed_yaml(text, parts):
    msg = error_of(text=text, name="/etc/blacksmith.conf")
    assert "/etc/blacksmith.conf" in msg or parts is None
    for part in parts or []:
        assert part in msg, (part, msg)


def test_file_name_and_line_are_in_the_message():
    msg = error_of(text="\n\nreconciler:\n  cache_ttl: forever\n", name="conf/prod.yml")
    assert "conf/prod.yml line 4" in msg


def test_message_is_not_a_traceback_from_the_cli(tmp_path):
    conf = tmp_path / "blacksmith.conf"
    conf.write_text("reconciler:\n  backup:\n    compression_level: 12\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "shared")}
    proc = subprocess.run(
        [sys.executable, "-m", "reconciler.config", "check", str(conf)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"{conf} line 3" in proc.stderr and "from 1 to 9" in proc.stderr
    conf.write_text("reconciler:\n  interval: 30m\nreconciler:\n  debug: true\n")
    proc = subprocess.run(
        [sys.executable, "-m", "reconciler.config", "show", str(conf)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "warning:" in proc.stderr and "line 3" in proc.stderr
    assert '"interval": 1800.0' in proc.stdout and '"debug": true' in proc.stdout
