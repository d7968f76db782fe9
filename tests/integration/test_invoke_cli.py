"""`python -m mockstack invoke FUNCTION -e events/<file>.json`: sam local invoke, without Docker."""

import json
from pathlib import Path

import pytest

from mockstack.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_invoke_a_phase_with_its_sample_event(capsys):
    assert main(["invoke", "begin", "-e", str(ROOT / "events" / "begin.json")]) == 0
    out, err = capsys.readouterr()
    answer = json.loads(out)  # the answer alone on stdout, the function's logs on stderr
    assert answer["run"]["run_id"] and answer["run"]["forced"] is False
    assert '"logger":"reconciler.phases.begin"' in err


def test_invoke_the_api_by_logical_id(capsys):
    assert main(["invoke", "ApiFunction", "-e", str(ROOT / "events" / "api-get-status.json")]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["statusCode"] == 200 and "running" in json.loads(answer["body"])


@pytest.mark.parametrize(("argv", "message"), [
    (["invoke", "nope"], "no function 'nope'; accepted: ApiFunction, ApplyBatchFunction"),
    (["invoke", "begin", "-e", "/nonexistent/event.json"], "--event /nonexistent/event.json: No such file"),
    (["invoke", "begin", "-e", str(ROOT / "README.md")], "not a JSON document"),
    (["invoke", "begin", "--built", "/nonexistent/build"], "no template.yaml there; run `make build` first"),
])
def test_user_mistakes_are_one_line_and_exit_2(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_run_with_built_artifacts_that_are_not_there_is_one_line(capsys, tmp_path):
    world = tmp_path / "world.json"
    assert main(["generate", "--instances", "3", "--seed", "1", "--out", str(world)]) == 0
    capsys.readouterr()
    argv = ["run", "--world", str(world), "--report", str(tmp_path / "r.json"), "--built", str(tmp_path / "no")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"run: --built {tmp_path / 'no'}: no template.yaml there; run `make build` first"
