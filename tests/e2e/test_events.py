"""Each function invoked with its sample event (events/*.json) through the Lambda API of the
engine, as `sam local invoke -e` would: handlers load by path, decorators work, and the
answer is a result or a domain error, never a wiring error."""

import json
from pathlib import Path

import pytest

from mockstack.aws import FunctionError

ROOT = Path(__file__).resolve().parents[2]
EVENTS = {
    "BeginFunction": "begin.json", "DiscoverCFFunction": "discover_cf.json",
    "DiscoverBoshFunction": "discover_bosh.json", "ScanBatchFunction": "scan_batch.json",
    "MatchFunction": "match.json", "ApplyBatchFunction": "apply_batch.json", "SyncIndexFunction": "sync_index.json",
    "OrphansFunction": "orphans.json", "FinishFunction": "finish.json", "RecordFailureFunction": "record_failure.json",
    "ApiFunction": "api-get-status.json",
}
DOMAIN_ERRORS = {"ConfigError", "InvalidInput", "NotFound", "Unavailable", "RunLocked", "VaultSealed", "CircuitOpen"}


def test_every_function_has_a_sample_event(engine):
    assert set(EVENTS) == set(engine.functions)
    for name in EVENTS.values():
        assert (ROOT / "events" / name).is_file()


@pytest.mark.parametrize("function", sorted(EVENTS))
def test_handler_runs_its_sample_event(engine, put_config, function):
    put_config("reconciler:\n  enabled: true\n")
    event = json.loads((ROOT / "events" / EVENTS[function]).read_text())
    try:
        result = engine.invoke(function, event)
    except FunctionError as exc:
        assert exc.error_type in DOMAIN_ERRORS, exc.payload
        return
    assert isinstance(result, dict)
    if function == "ApiFunction":
        assert result["statusCode"] == 200, result
        assert "running" in json.loads(result["body"])
    if function == "BeginFunction":
        assert result["run"]["run_id"] == event["execution_arn"].rsplit(":", 1)[-1]
