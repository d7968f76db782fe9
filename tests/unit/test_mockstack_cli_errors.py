"""Operator mistakes on ``python -m mockstack ...``: exit 2 and one line naming what was wrong
and what is accepted; never a traceback, never a run whose results are then lost."""

from __future__ import annotations

import json

import pytest

from mockstack import cli, runner
from mockstack.base import Faults


def one_line(err: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def world_file(tmp_path):
    path = tmp_path / "world.json"
    path.write_text(json.dumps({"cf": {}, "bosh": {"deployments": []}, "vault": {}}))
    return path


@pytest.mark.parametrize("content, words", [
    (None, "does not exist"),
    (b'{"cf": ', "not valid JSON"),
    (b"\xff\xfe\x00", "not UTF-8"),
    (b"[]", "expected an object"),
    (b'{"cf": {"service_instances": 5}, "bosh": {"deployments": []}, "vault": {}}', "cf.service_instances"),
    (b'{"cf": {}, "bosh": {"deployments": [{"name": 7}]}, "vault": {}}', "bosh.deployments[0].name"),
    (b'{"cf": {}, "bosh": {"deployments": []}, "vault": {"secret/db": [1]}}', "secret/db"),
    (b'{"cf": {}, "bosh": {"deployments": []}, "vault": {"secret/x": {"n": ' + b"9" * 5000 + b"}}}", "digits"),
    (b'{"cf": {}, "bosh": {"deployments": []}, "vault": {"secret/x": {"n": NaN}}}', "NaN is not a JSON number"),
    (b"[" * 100_000 + b"]" * 100_000, "too deeply"),
])
@pytest.mark.parametrize("command", ["validate", "serve", "run"])
def test_bad_world_files(tmp_path, capsys, command, content, words):
    path = tmp_path / "world.json"
    if content is not None:
        path.write_bytes(content)
    extra = ["--report", str(tmp_path / "r.json")] if command == "run" else []
    assert cli.main([command, "--world", str(path), *extra]) == 2
    assert words in one_line(capsys.readouterr().err)


def test_world_that_is_a_directory(tmp_path, capsys):
    assert cli.main(["validate", "--world", str(tmp_path)]) == 2
    assert "directory" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize("argv, words", [
    (["serve", "--expires-in", "-5"], "--expires-in"),
    (["serve", "--bosh-task-steps", "-1"], "--bosh-task-steps"),
    (["run", "--runs", "0", "--report", "REPORT"], "--runs"),
    (["run", "--runs", "-3", "--report", "REPORT"], "--runs"),
])
def test_negative_numbers(world_file, tmp_path, capsys, argv, words):
    argv = [a.replace("REPORT", str(tmp_path / "r.json")) for a in argv]
    assert cli.main([*argv, "--world", str(world_file)]) == 2
    assert words in one_line(capsys.readouterr().err)


@pytest.mark.parametrize("report", ["missing-folder/report.json", "."])
def test_report_path_is_checked_before_anything_runs(world_file, tmp_path, capsys, monkeypatch, report):
    def never(*a, **k):
        raise AssertionError("the scenario must not start")

    monkeypatch.setattr(runner, "run_scenario", never)
    assert cli.main(["run", "--world", str(world_file), "--report", str(tmp_path / report)]) == 2
    assert "--report" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize("faults, words", [
    ('{"nosuch": {"down": true}}', None),  # checked by the stack: unknown api (needs the stack running)
    ("[1, 2]", "expected"),
    ('{"bosh": true}', "expected"),
    ("{truncated", "cannot read"),
])
def test_faults_file_shape(world_file, tmp_path, capsys, monkeypatch, faults, words):
    if words is None:
        return
    path = tmp_path / "faults.json"
    path.write_text(faults)
    monkeypatch.setattr(runner, "run_scenario", lambda *a, **k: pytest.fail("must not start"))
    assert cli.main(["run", "--world", str(world_file), "--faults", str(path), "--report",
                     str(tmp_path / "r.json")]) == 2
    assert words in one_line(capsys.readouterr().err)


@pytest.mark.parametrize("knobs, words", [
    ({"error_rate": "lots"}, "from 0 to 1"),
    ({"error_rate": 2}, "from 0 to 1"),
    ({"reset_rate": -0.1}, "from 0 to 1"),
    ({"latency_s": -5}, ">= 0"),
    ({"latency_s": float("nan")}, ">= 0"),
    ({"rate_limit_rps": True}, ">= 0"),
    ({"down": "yes"}, "true or false"),
    ({"error_codes": [200]}, "400-599"),
    ({"error_codes": "500"}, "400-599"),
    ({"error_codes": []}, "400-599"),
    ({"retry_after_s": 1.5}, "whole number"),
    ({"seed": None}, "whole number"),
    ({"dwn": True}, "accepted"),
])
def test_fault_knobs_of_the_wrong_type_are_refused_whole(knobs, words):
    faults = Faults()
    with pytest.raises(ValueError, match=words):
        faults.update(**{"jitter_s": 0.5, **knobs})
    assert faults.jitter_s == 0.0  # nothing applied: no partial update


def test_fault_knobs_accept_what_the_docs_show():
    faults = Faults()
    faults.update(error_rate=0.5, error_codes=[429, 503], latency_s=1, jitter_s=0.2, rate_limit_rps=10,
                  retry_after_s=2, reset_rate=0.0, down=False, seed=7)
    assert faults.error_codes == [429, 503] and faults.rate_limit_rps == 10


@pytest.mark.parametrize("config, words", [
    ("reconciler:\n\tinterval: 5m\n", "tabs"),
    ("reconciler: {batch_size: -4}\n", "reconciler.batch_size"),
    ("reconciler: !!python/object/apply:os.system [echo]\n", "tag"),
    ("- a list\n", "mapping"),
])
def test_config_for_the_runner_is_checked_before_the_engine_starts(config, words):
    endpoints = {"cf": {"name": "cf", "api_url": "http://127.0.0.1:1", "client_id": "c", "client_secret": "S1"},
                 "bosh": {"name": "bosh", "url": "https://127.0.0.1:2", "auth": "basic", "username": "u",
                          "password": "S3"},
                 "vault": {"address": "http://127.0.0.1:3", "token": "S4", "mount": "secret"}}
    with pytest.raises(runner.ScenarioError) as info:
        runner.build_config(endpoints, config)
    message = str(info.value)
    assert words in message and "Traceback" not in message
    for secret in ("S1", "S3", "S4"):
        assert secret not in message


def test_binary_config_file(world_file, tmp_path, capsys):
    conf = tmp_path / "blacksmith.conf"
    conf.write_bytes(b"\xff\xfe\x00\x01")
    assert cli.main(["run", "--world", str(world_file), "--config", str(conf), "--report",
                     str(tmp_path / "r.json")]) == 2
    assert "UTF-8" in one_line(capsys.readouterr().err)


def test_ctrl_c_is_one_line_not_a_traceback(world_file, capsys, monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt

    commands = [(*row[:3], interrupted) if row[0] == "validate" else row for row in cli.COMMANDS]
    monkeypatch.setattr(cli, "COMMANDS", commands)
    assert cli.main(["validate", "--world", str(world_file)]) == 130
    assert "interrupted" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize("case", ["missing config", "binary config", "out is a file"])
def test_demo_refuses_bad_paths_before_running(tmp_path, capsys, monkeypatch, case):
    from mockstack import demo

    monkeypatch.setattr(runner, "run_scenario", lambda *a, **k: pytest.fail("must not start"))
    conf, out = tmp_path / "demo.conf", tmp_path / "out"
    conf.write_text("reconciler:\n  batch_size: 5\n")
    if case == "missing config":
        conf = tmp_path / "nope.conf"
    elif case == "binary config":
        conf.write_bytes(b"\xff\xfe\x00")
    else:
        out.write_text("a file")
    assert demo.main(["--instances", "2", "--config", str(conf), "--out", str(out)]) == 2
    line = one_line(capsys.readouterr().err)
    assert "accepted" in line and ("--config" in line or "--out" in line)


def test_runner_config_may_name_only_the_broker():
    """build_config keeps cf: {broker_name} from --config; the template parameters read from the
    same file must not demand a complete CF endpoint for it."""
    params = runner.derived_parameters("reconciler:\n  interval: 2h\ncf:\n  broker_name: other\n")
    assert params["ScheduleExpression"] == "rate(2 hours)"
    with pytest.raises(runner.ScenarioError, match="batch_size"):
        runner.derived_parameters("reconciler:\n  batch_size: -4\ncf:\n  broker_name: other\n")
