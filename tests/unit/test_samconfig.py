"""samconfig.toml parses as SAM parses it, and every override is one the template accepts.

SAM (samcli.cli.types.CfnParameterOverridesType) reads each ``parameter_overrides`` entry with
a regex that splits on spaces unless the value is quoted: ``ScheduleExpression=rate(1 hour)``
becomes ``rate(1``. The regexes below are SAM 1.170's; when aws-sam-cli is installed
(``make sam``) the real parser is run on the same file and must agree.
"""

import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from samtranslator.yaml_helper import yaml_parse

from mockstack.aws import EngineError, _parameter_values

ROOT = Path(__file__).resolve().parents[2]
SAMCONFIG = tomllib.loads((ROOT / "samconfig.toml").read_text())
TEMPLATE = yaml_parse((ROOT / "template.yaml").read_text())
PARAMETERS = TEMPLATE["Parameters"]
SAM_PYTHON = ROOT / ".venv-sam" / "bin" / "python"

# samcli/cli/types.py (aws-sam-cli 1.170.0)
_KEY = r"""([A-Za-z0-9\"']+)"""
_VALUE = r"""(\"(?:\\.|[^\"\\]+)*\"|'(?:\\.|[^'\\]+)*'|(?:\\.|[^ \"\\]+)+)"""
_PATTERNS = [rf"(?:ParameterKey={_KEY},ParameterValue={_VALUE})", rf"(?:(?: ){_KEY}={_VALUE})"]


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return value.replace("\\ ", " ").replace('\\"', '"').replace("\\'", "'")


def parse_like_sam(entries: list[str] | str) -> dict[str, str]:
    out: dict[str, str] = {}
    for entry in [entries] if isinstance(entries, str) else entries:
        for pattern in _PATTERNS:
            groups = re.findall(pattern, " " + entry.strip())
            if groups:
                out.update(groups)
                break
        else:
            raise ValueError(f"{entry!r}: SAM rejects it")
    return {_unquote(k): _unquote(v) for k, v in out.items()}


ENVIRONMENTS = sorted(env for env, commands in SAMCONFIG.items()
                      if isinstance(commands, dict) and "parameter_overrides" in commands.get("deploy", {}).get(
                          "parameters", {}))


def test_the_unquoted_form_is_what_broke():
    assert parse_like_sam("ScheduleExpression=rate(1 hour)") == {"ScheduleExpression": "rate(1"}
    with pytest.raises(EngineError, match="ScheduleExpression='rate\\(1'"):
        _parameter_values(TEMPLATE, {"ScheduleExpression": "rate(1"})


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_override_is_whole_and_accepted_by_the_template(env):
    entries = SAMCONFIG[env]["deploy"]["parameters"]["parameter_overrides"]
    overrides = parse_like_sam(entries)
    assert len(overrides) == len(entries), f"{env}: an entry parsed into several overrides or none: {overrides}"
    for entry, (key, value) in zip(entries, overrides.items(), strict=True):
        assert entry == f'{key}="{value}"', f"{env}: write {key}=\"{value}\" (quoted whole)"
        assert key in PARAMETERS, f"{env}: {key} is not a template parameter"
    _parameter_values(TEMPLATE, overrides)  # AllowedValues, AllowedPattern, MinValue/MaxValue, as CloudFormation
    assert overrides["ScheduleExpression"].startswith("rate(") and overrides["ScheduleExpression"].endswith(")")


def test_every_free_form_parameter_is_constrained():
    constraints = {"AllowedValues", "AllowedPattern"}
    loose = [name for name, spec in PARAMETERS.items()
             if spec["Type"] in ("String", "CommaDelimitedList") and not constraints & set(spec)]
    assert loose == []


@pytest.mark.parametrize(("name", "value"), [
    ("ScheduleExpression", "rate(1 hours)"), ("ScheduleExpression", "rate(0 minutes)"), ("ScheduleExpression", "1h"),
    ("CFApiUrl", "api.example.com"), ("VaultAddress", "https://vault example"), ("CFClientId", "a b"),
    ("VaultTokenSecretName", "name with space"), ("SubnetIds", "subnet-12ab,vpc-1"), ("PhaseTimeoutSeconds", "901"),
])
def test_bad_values_are_refused_with_what_is_accepted(name, value):
    with pytest.raises(EngineError, match=f"template parameter {name}=.*accepted"):
        _parameter_values(TEMPLATE, {name: value})


@pytest.mark.parametrize("value", ["rate(1 hour)", "rate(30 minutes)", "rate(2 days)", "cron(0 * * * ? *)",
                                   "at(2027-01-01T00:00:00)"])
def test_schedule_expressions_the_scheduler_takes_are_accepted(value):
    assert _parameter_values(TEMPLATE, {"ScheduleExpression": value})["ScheduleExpression"] == value


def test_real_sam_parses_the_file_the_same_way():
    if not SAM_PYTHON.is_file():
        pytest.skip("aws-sam-cli is not installed (make sam): checked with its regexes only")
    script = (
        "import json, sys, tomllib\n"
        "from samcli.cli.types import CfnParameterOverridesType\n"
        "config = tomllib.load(open(sys.argv[1], 'rb'))\n"
        "print(json.dumps({env: CfnParameterOverridesType().convert("
        "config[env]['deploy']['parameters']['parameter_overrides'], None, None) for env in sys.argv[2:]}))\n")
    result = subprocess.run([str(SAM_PYTHON), "-c", script, str(ROOT / "samconfig.toml"), *ENVIRONMENTS],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    real = json.loads(result.stdout)
    for env in ENVIRONMENTS:
        assert real[env] == parse_like_sam(SAMCONFIG[env]["deploy"]["parameters"]["parameter_overrides"])
