"""The CLI's AWS side without a stack: region resolution and one-line refusals."""

import pytest

from reconciler.cli.main import main
from reconciler.cli.remote import CliError, aws_session


def test_region_from_aws_region(monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert aws_session(None, None).region_name == "eu-west-1"
    assert aws_session(None, "us-east-2").region_name == "us-east-2"


def test_no_region_is_a_usage_error(monkeypatch, tmp_path):
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(CliError, match="no AWS region"):
        aws_session(None, None)


def test_usage_errors_are_one_line_exit_2(capsys):
    assert main(["run", "--bogus"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "unrecognized arguments: --bogus" in err
    assert main(["--help"]) == 0
