"""Adversarial inputs to the configuration: files an operator might hand to
``python -m reconciler.config check|show`` (and the Lambdas read from SSM). Each must give
exit code 2 and one clear line naming what was wrong and what is accepted; never a
traceback, never code execution."""

from __future__ import annotations

import pytest

from reconciler.config import load_settings
from reconciler.config.__main__ import main
from reconciler.errors import ConfigError

BILLION_LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(8)
)


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err
    return code, err


def one_clear_line(err: str) -> str:
    assert "Traceback" not in err and "File \"" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("command", ["check", "show"])
def test_missing_file_and_directory(tmp_path, capsys, command):
    code, err = run_cli(capsys, command, str(tmp_path / "nope.conf"))
    assert code == 2 and "No such file" in one_clear_line(err)
    code, err = run_cli(capsys, command, str(tmp_path))
    assert code == 2 and "directory" in one_clear_line(err).lower()


@pytest.mark.parametrize("command", ["check", "show"])
def test_binary_file_is_refused_not_a_traceback(tmp_path, capsys, command):
    conf = tmp_path / "blacksmith.conf"
    conf.write_bytes(b"\x00\x01\xff\xfereconciler:\n")
    code, err = run_cli(capsys, command, str(conf))
    line = one_clear_line(err)
    assert code == 2 and "not UTF-8" in line and "accepted" in line


def test_tabs_are_named(tmp_path, capsys):
    conf = tmp_path / "blacksmith.conf"
    conf.write_text("reconciler:\n\tinterval: 5m\n")
    code, err = run_cli(capsys, "check", str(conf))
    assert code == 2 and "tabs" in one_clear_line(err)


@pytest.mark.parametrize("text", [
    'reconciler: !!python/object/apply:os.system ["echo pwned"]\n',
    "reconciler: !!python/object:collections.OrderedDict {interval: 5m}\n",
    "reconciler:\n  interval: !!python/name:os.system\n",
    "reconciler: !!set {a: null}\n",
])
def test_python_tags_are_refused_by_safe_loading(tmp_path, capsys, text):
    conf = tmp_path / "blacksmith.conf"
    conf.write_text(text)
    code, err = run_cli(capsys, "check", str(conf))
    assert code == 2 and "Traceback" not in err
    assert "tag" in err and ("line 1" in err or "line 2" in err)
    with pytest.raises(ConfigError):
        load_settings(env={}, file_text=text)


def test_billion_laughs_is_refused_quickly():
    with pytest.raises(ConfigError, match="aliases"):
        load_settings(env={}, file_text=BILLION_LAUGHS)


@pytest.mark.parametrize("text, key", [
    ("reconciler: {batch_size: " + "9" * 5000 + "}\n", "batch_size"),  # beyond Python's int() digit limit
    ('reconciler: {batch_size: "' + "9" * 5000 + '"}\n', "batch_size"),
    ("reconciler: {batch_size: 99999999999999999999999999999999}\n", "batch_size"),
    ("reconciler: {retry: {max_attempts: '9999999999999999999999'}}\n", "max_attempts"),
    ("reconciler: {interval: 1e300}\n", "interval"),
    ("reconciler: {timeouts: {reconciliation_run: 1e300}}\n", "reconciliation_run"),
])
def test_huge_numbers_are_refused_with_the_key(tmp_path, capsys, text, key):
    conf = tmp_path / "blacksmith.conf"
    conf.write_text(text)
    code, err = run_cli(capsys, "check", str(conf))
    assert code == 2 and "Traceback" not in err and key in err
    assert "set_int_max_str_digits" not in err  # Python's advice is no use to an operator
    assert "too large" in err or "too long" in err or "cannot be read" in err


def test_sane_large_values_still_accepted():
    s = load_settings(env={}, file_text="reconciler:\n  batch_size: 5000\n  interval: 24h\n")
    assert s.reconciler.batch_size == 5000 and s.reconciler.interval == 86400.0


def test_reference_write_to_a_missing_file(tmp_path, capsys):
    code, err = run_cli(capsys, "reference", "--write", str(tmp_path / "missing" / "doc.md"))
    assert code == 2 and "cannot update" in one_clear_line(err)


@pytest.mark.parametrize("text, env", [
    ("vault:\n  address: https://user:hunter4@vault.example:8200\n  token: t\n", {}),
    ("vault:\n  address: 'ftp://user:hunter4@vault.example'\n  token: t\n", {}),
    ("cf:\n- name: a\n  api_url: https://admin:hunter4@api.example\n  client_id: c\n  client_secret: s\n"
     "  broker_name: b\n", {}),
    ("", {"BLACKSMITH_VAULT_ADDRESS": "https://u:hunter4@vault.example", "BLACKSMITH_VAULT_TOKEN": "t"}),
])
def test_credentials_in_urls_are_refused_and_never_echoed(text, env):
    with pytest.raises(ConfigError) as info:
        load_settings(env=env, file_text=text)
    message = str(info.value)
    assert "hunter4" not in message and "***@" in message


@pytest.mark.parametrize("field", ["client_secret: 123456789", "client_secret: [hunter2]", "client_secret: {a: b}"])
def test_wrongly_typed_secrets_are_masked(field):
    text = f"cf:\n- name: a\n  api_url: https://api.example\n  client_id: c\n  {field}\n  broker_name: b\n"
    with pytest.raises(ConfigError) as info:
        load_settings(env={}, file_text=text)
    assert "123456789" not in str(info.value) and "hunter2" not in str(info.value) and "***" in str(info.value)
