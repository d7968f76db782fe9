"""Structured logging, correlation ids, the debug switch, redaction and the run's EMF document."""

import json
import logging
import re
from pathlib import Path

import pytest

from reconciler import env, observability
from reconciler.observability import correlation_id, emit_run_metrics, inject_run_context, redact, redact_text

ROOT = Path(__file__).resolve().parents[2]
ARN = "arn:aws:states:us-east-1:123456789012:execution:blacksmith-reconcile:run-42"
RUN = {"run_id": "run-42", "execution_arn": ARN, "started_at": "2026-01-01T00:00:00Z",
       "timeouts": {"deployment_scan": 60, "vault_operations": 60}}


class Context:
    function_name = "blacksmith-MatchFunction"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:blacksmith-MatchFunction"
    memory_limit_in_mb = 512
    aws_request_id = "req-1"


def lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def asl_events() -> dict[str, dict]:
    """The event each Task of the real ASL passes, built from its Parameters/ItemSelector."""
    text = re.sub(r"\$\{\w+\}", "1", (ROOT / "statemachine/reconcile.asl.json").read_text())
    definition = json.loads(text)
    state = {"input": {}, "run": RUN, "sources": {"cf": {}, "bosh": {}}, "match": {}, "index": {}, "orphans": {},
             "error": {"Error": "X", "Cause": "y"}}
    context = {"$$.Execution.Id": ARN, "$$.Execution.StartTime": RUN["started_at"], "$$.Map.Item.Value": 0}

    def value(path: str, scope: dict) -> object:
        if path in context:
            return context[path]
        if path == "$":
            return scope
        out: object = scope
        for key in path[2:].split("."):
            out = out[key]  # type: ignore[index]
        return out

    def build(params: dict, scope: dict) -> dict:
        return {k[:-2] if k.endswith(".$") else k: value(v, scope) if k.endswith(".$") else v
                for k, v in params.items()}

    events: dict[str, dict] = {}

    def walk(states: dict, scope: dict) -> None:
        for name, s in states.items():
            if s["Type"] == "Task" and not s["Resource"].startswith("arn:aws:states:::"):  # a Lambda (not Handover)
                events[name] = build(s["Parameters"], scope) if "Parameters" in s else scope
            for branch in s.get("Branches", []):
                walk(branch["States"], scope)
            if "ItemProcessor" in s:
                item = build(s["ItemSelector"], scope) | {"error": scope["error"]}
                walk(s["ItemProcessor"]["States"], item)

    walk(definition["States"], state)
    return events


def test_every_task_of_the_state_machine_gets_the_run_id_as_correlation_id():
    events = asl_events()
    assert {"Begin", "DiscoverCF", "DiscoverBosh", "ScanBatch", "RecordScanBatchFailure", "Match", "ApplyBatch",
            "RecordApplyBatchFailure", "SyncIndex", "Orphans", "Finish", "RecordFailure"} <= set(events)
    for name, event in events.items():
        assert correlation_id(event) == "run-42", name


def test_a_run_that_failed_before_begin_recorded_it_still_correlates_by_execution_name():
    assert correlation_id({"scope": "run", "state": {"input": {}}, "execution_arn": ARN}) == "run-42"


def test_function_url_requests_correlate_by_request_id():
    from mockstack.frontdoor import function_url_event

    event = function_url_event("GET", "/b/status", "", {"host": "x"}, b"")
    assert correlation_id(event) == event["requestContext"]["requestId"]
    assert correlation_id("not an event") is None and correlation_id({}) is None


def test_stdlib_loggers_write_structured_lines_with_the_run_context(capsys):
    @inject_run_context(use_settings=False)
    def handler(event, context):
        logging.getLogger("reconciler.phases.match").info("match: %d matched", 3, extra={"matched": 3})
        logging.getLogger("reconciler.phases.match").debug("not at info")
        return "ok"

    assert handler({"run": RUN}, Context()) == "ok"
    (line,) = lines(capsys.readouterr().out)
    assert line["message"] == "match: 3 matched" and line["matched"] == 3
    assert line["level"] == "INFO" and line["service"] == "blacksmith-reconciler"
    assert line["correlation_id"] == "run-42" and line["logger"] == "reconciler.phases.match"
    assert line["function_name"] == "blacksmith-MatchFunction" and line["function_request_id"] == "req-1"


def test_keys_do_not_outlive_the_invocation(capsys):
    inject_run_context(use_settings=False)(lambda e, c: None)({"run": RUN}, Context())
    logging.getLogger("reconciler.x").warning("after")
    (line,) = lines(capsys.readouterr().out)
    assert "correlation_id" not in line


@pytest.mark.parametrize("variable", ["BLACKSMITH_RECONCILER_DEBUG", "BLACKSMITH_DEBUG"])
def test_debug_switch_from_the_functions_environment(variable, capsys):
    @inject_run_context(use_settings=False)
    def handler(event, context):
        logging.getLogger("reconciler.phases.scan_batch").debug("bosh:d/x: cache hit")

    with env.overlay({variable: "true"}):
        handler({"run_id": "run-42"}, Context())
    (line,) = lines(capsys.readouterr().out)
    assert line["level"] == "DEBUG" and line["message"] == "bosh:d/x: cache hit"
    with env.overlay({variable: "false"}):
        handler({"run_id": "run-42"}, Context())
    assert capsys.readouterr().out == ""


def test_debug_from_the_configuration_and_log_level_variable():
    class Settings:
        debug = True

    assert observability.level_name(Settings()) == "DEBUG"
    assert observability.level_name(None) == "INFO"
    with env.overlay({"POWERTOOLS_LOG_LEVEL": "warning"}):
        assert observability.level_name(None) == "WARNING"
    with env.overlay({"POWERTOOLS_LOG_LEVEL": "chatty"}):
        assert observability.level_name(None) == "INFO"


def test_a_failing_handler_logs_one_error_line_and_reraises(capsys):
    from reconciler.errors import Unavailable

    @inject_run_context(use_settings=False)
    def handler(event, context):
        raise Unavailable("vault: connection refused", api="vault")

    with pytest.raises(Unavailable):
        handler({"run": RUN}, Context())
    (line,) = lines(capsys.readouterr().out)
    assert line["level"] == "ERROR" and line["error_type"] == "Unavailable"
    assert "vault: connection refused" in line["message"] and line["correlation_id"] == "run-42"


def test_redaction_masks_secret_keys_but_keeps_figures():
    record = {"password": "p4ss", "client_secret": "cs", "vault_token": "t", "credentials": {"uri": "x"},
              "private_key": "k", "nested": [{"Authorization": "Bearer abc"}], "credentials_recovered": 2,
              "instances": 5, "name": "redis"}
    out = redact(record)
    assert out["password"] == out["client_secret"] == out["vault_token"] == out["credentials"] == "***"
    assert out["private_key"] == "***" and out["nested"][0]["Authorization"] == "***"
    assert out["credentials_recovered"] == 2 and out["instances"] == 5 and out["name"] == "redis"


@pytest.mark.parametrize(("text", "secret"), [
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig", "eyJhbGciOiJIUzI1NiJ9"),
    ("headers {'X-Vault-Token': 'hvs.CAESIJ0123456789abcdef'}", "CAESIJ0123456789"),
    ("POST /oauth/token client_id=r&client_secret=sup3rs3cret&grant_type=x", "sup3rs3cret"),
    ('{"password": "hunter2"}', "hunter2"),
    ("https://admin:hunter2@10.0.0.1:25555/info", "hunter2"),
    ("token hvs.AAAABBBBCCCCDDDDEEEE1234 expired", "AAAABBBBCCCCDDDD"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", "MIIEow"),
])
def test_redaction_masks_tokens_in_text(text, secret):
    assert secret not in redact_text(text)
    assert "***" in redact_text(text)


def test_redaction_leaves_ordinary_messages_alone():
    text = "vault: instance 6f1c written: 3 write(s); circuit vault opened after 5 failures"
    assert redact_text(text) == text


def test_the_formatter_redacts_messages_extras_and_exceptions(capsys):
    log = logging.getLogger("reconciler.test")
    log.warning("login with password=%s", "hunter2", extra={"client_secret": "s3cr3t"})
    try:
        raise RuntimeError("Bearer abcdef123456 rejected")
    except RuntimeError:
        log.exception("failed")
    out = capsys.readouterr().out
    assert "hunter2" not in out and "s3cr3t" not in out and "abcdef123456" not in out
    first, second = lines(out)
    assert first["client_secret"] == "***" and second["exception_name"] == "RuntimeError"


def test_another_powertools_logger_for_the_service_does_not_add_a_second_handler(capsys):
    from aws_lambda_powertools import Logger

    Logger(service=observability.SERVICE)
    observability.logger.info("once")
    assert len(lines(capsys.readouterr().out)) == 1


def emf(text: str) -> list[dict]:
    return [d for d in lines(text) if "_aws" in d]


def test_run_metrics_are_one_emf_document(capsys):
    emitted = emit_run_metrics({"run_id": "run-42", "runs": 1, "runs_successful": 1, "runs_failed": 0,
                                "duration_s": 12.5, "deployments": 7, "instances_found": 5, "instances_synced": 4,
                                "errors": 1, "backups_written": 2, "orphans_cf": 1, "orphans_bosh": 0,
                                "orphans_vault": 3, "ignored": "x"}, status="succeeded_with_errors")
    (doc,) = emf(capsys.readouterr().out)
    (directive,) = doc["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "BlacksmithReconciler" and directive["Dimensions"] == [["service"]]
    names = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert names["RunDuration"] == "Seconds" and names["Runs"] == "Count"
    assert set(names) == set(emitted)
    assert doc["service"] == "blacksmith-reconciler" and doc["run_status"] == "succeeded_with_errors"
    assert doc["InstancesFound"] == [5.0] and doc["OrphansVault"] == [3.0] and doc["RunDuration"] == [12.5]
    assert doc["run_id"] == "run-42"


def test_run_metrics_namespace_from_the_environment(capsys):
    with env.overlay({"POWERTOOLS_METRICS_NAMESPACE": "Custom"}):
        emit_run_metrics({"runs": 1})
    (doc,) = emf(capsys.readouterr().out)
    assert doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Custom"
