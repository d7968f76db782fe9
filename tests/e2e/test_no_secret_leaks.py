"""No secret ever leaves the reconciler through its logs, errors, status or metrics.

A generated world is seeded with distinctive canary values wherever secrets live (Vault
credentials, CF binding credentials, BOSH manifests, the UAA/BOSH client secrets and
passwords, the Vault token) on top of the passwords the generator already puts there. Then
full reconciliations run through the real state machine in the embedded engine with debug
logging on: a clean run, a second run (cache hits), and a run under faults (BOSH and Vault
erroring, CF's UAA down) so the error paths speak too. Everything an operator can see is
collected and searched:

- every log line on stdout/stderr (Powertools JSON, after redaction) *and* every record the
  code handed to ``logging`` (caplog: the message before redaction, its extras and exception
  text), so a secret that the formatter would mask still fails the test;
- the executions' outputs and errors and every history event (state inputs and outputs,
  failure causes);
- the store's run records, figures, error list, orphan state, lock;
- ``/b/status``, ``/b/metrics``, ``/b/runs``, ``/b/runs/{id}``, ``/b/orphans`` and the
  dashboard, fetched over HTTP through the Function URL front door.

The test proves it could fail: the canaries are in Vault after the runs (they were really
read and written by the reconciler), and the same search finds them in a deliberately leaky
log line.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest
import requests
import yaml

from mockstack.frontdoor import FunctionUrlFront
from mockstack.generator import generate
from mockstack.runner import Scenario
from reconciler.store import Store

pytestmark = pytest.mark.slow

TAG = "c4n4ry"
CANARIES = {
    "vault_credentials": f"{TAG}-vault-cred-Q7pX2mK9",
    "binding_credentials": f"{TAG}-binding-cred-W3nR8tL5",
    "manifest_password": f"{TAG}-manifest-pw-Z6vB1yH4",
    "cf_client_secret": f"{TAG}-cf-client-secret-J2kD9sF1",
    "cf_user_password": f"{TAG}-cf-user-pw-M5qT3wE8",
    "bosh_client_secret": f"{TAG}-bosh-client-secret-P8xC4nV6",
    "bosh_basic_password": f"{TAG}-bosh-basic-pw-G1hY7uR2",
    "vault_token": f"hvs.{TAG}VaultToken0A1B2C3D4E5F",
}
# the values the reconciler must carry into Vault (the others are its own credentials)
STORED_IN_VAULT = ("vault_credentials", "binding_credentials", "manifest_password")
SECRET_KEY = re.compile(r"password|secret|token|private_key", re.IGNORECASE)
# every kind of Vault drift at least once in 14 instances (recovered and unrecoverable credentials too)
DRIFT = {"lost_index": 0.07, "lost_tree": 0.07, "stale_manifest": 0.07, "missing_credentials": 0.1,
         "unrecoverable_credentials": 0.1, "cf_orphans": 0.1, "bosh_orphans": 0.1, "vault_orphans": 0.1,
         "legacy_backups": 0.1, "legacy_archives": 0.1, "non_service_deployments": 2, "foreign_deployments": 1}


def secret_values(value: Any, key: str = "") -> set[str]:
    """Every string under a secret-looking key (long enough to be unambiguous)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            found |= secret_values(v, str(k))
    elif isinstance(value, list):
        for v in value:
            found |= secret_values(v, key)
    elif isinstance(value, str) and SECRET_KEY.search(key) and len(value) >= 12 and "((" not in value:
        found.add(value)
    return found


def seeded_world() -> tuple[dict[str, Any], set[str]]:
    """A generated world with canaries everywhere secrets live; returns it and every secret value."""
    world, _ = generate(14, seed=20240611, drift=DRIFT)
    secrets = set(CANARIES.values())
    for path, data in world["vault"].items():
        if path.endswith("/credentials") and isinstance(data, dict):
            data["canary_password"] = CANARIES["vault_credentials"]
        secrets |= secret_values(data)
    for details in world["cf"]["binding_details"].values():
        details.setdefault("credentials", {})["canary_password"] = CANARIES["binding_credentials"]
        secrets |= secret_values(details)
    for dep in world["bosh"]["deployments"]:
        if not dep.get("manifest"):
            continue
        manifest = yaml.safe_load(dep["manifest"])
        if isinstance(manifest, dict) and "meta" in manifest:  # a Blacksmith service deployment
            manifest.setdefault("properties", {})["canary"] = {"admin_password": CANARIES["manifest_password"]}
            dep["manifest"] = yaml.safe_dump(manifest, sort_keys=False)
        secrets |= secret_values(manifest)
    world["auth"] = {
        "cf_client": {"id": "reconciler", "secret": CANARIES["cf_client_secret"]},
        "cf_user": {"username": "admin", "password": CANARIES["cf_user_password"]},
        "bosh_client": {"id": "reconciler", "secret": CANARIES["bosh_client_secret"]},
        "bosh_basic": {"username": "admin", "password": CANARIES["bosh_basic_password"]},
        "bosh_auth": "uaa",
        "vault_token": CANARIES["vault_token"],
    }
    return world, secrets


def leaks(text: str, secrets: set[str]) -> list[str]:
    return sorted(s for s in secrets if s in text)


def record_text(record: logging.LogRecord) -> str:
    """Everything a log record carries: the message, its extras, the exception."""
    parts = [record.getMessage()]
    parts += [repr(v) for k, v in record.__dict__.items() if k not in ("msg", "args", "exc_info")]
    if record.exc_info and record.exc_info[1] is not None:
        parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def seeded():
    return seeded_world()


class Recorder(logging.Handler):
    """Keeps every record handed to a logger, before any formatter sees it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def recorder(caplog):
    """Records of the reconciler's loggers (they do not propagate: Lambda's root handler would
    print them twice) and, through caplog, of every library at the runtime's default level."""
    caplog.set_level(logging.WARNING)
    rec = Recorder()
    loggers = [logging.getLogger(name) for name in ("reconciler", "blacksmith-reconciler")]
    for lg in loggers:
        lg.addHandler(rec)
    yield rec, caplog
    for lg in loggers:
        lg.removeHandler(rec)


def test_no_secret_in_any_log_error_status_or_metrics(seeded, tmp_path, capfd, recorder):
    world, secrets = seeded
    rec, caplog = recorder
    config = "reconciler:\n  debug: true\n  batch_size: 4\n  batch:\n    size: 4\n    min_size: 1\n"
    scenario = Scenario(world, config_text=config, workdir=str(tmp_path / "stack"),
                        engine_parameters={"Debug": "true"})
    with scenario:
        first = scenario.run_once()
        second = scenario.run_once()
        scenario.set_faults({"bosh": {"error_rate": 0.5, "seed": 3}, "vault": {"error_rate": 0.2, "seed": 5},
                             "uaa": {"down": True}})
        third = scenario.run_once(force=True)
        scenario.stack.reset()
        runs = [first, second, third]
        engine = scenario.engine
        vault_after = scenario.vault_contents()

        # what an operator sees over HTTP, through the Function URL front door
        def api_function(event: dict[str, Any]) -> dict[str, Any]:
            return engine.invoke("ApiFunction", event)

        pages: dict[str, str] = {}
        with FunctionUrlFront(api_function) as front:
            for path in ("/b/status", "/b/metrics", "/b/runs", "/b/orphans", "/b/"):
                response = requests.get(front.url + path, timeout=30)
                assert response.status_code == 200, (path, response.text[:300])
                pages[path] = response.text
            for run in runs:
                path = "/b/runs/" + run["execution_arn"].rsplit(":", 1)[-1]
                response = requests.get(front.url + path, timeout=30)
                assert response.status_code == 200, (path, response.text[:300])
                pages[path] = response.text
            refused = requests.post(front.url + "/b/reconcile", data=b'{"instances": ["x"]}', timeout=30)
            pages["POST /b/reconcile (bad body)"] = refused.text

        histories = {run["execution_arn"]: list(engine.history(run["execution_arn"])) for run in runs}
        store = Store(engine.tables["CacheTable"], engine.tables["StateTable"], client=engine.client("dynamodb"))
        store_view = {"runs": store.list_runs(limit=20), "metrics": store.get_metrics(),
                      "errors": store.recent_errors(limit=50), "orphans": store.get_orphans(),
                      "lock": store.current_lock()}

    out, err = capfd.readouterr()

    # the runs really happened, with debug on, and exercised the interesting paths
    assert first["status"] == "SUCCEEDED", first["cause"]
    assert second["status"] == "SUCCEEDED", second["cause"]
    assert third["status"] in ("SUCCEEDED", "FAILED")
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert any(line.get("level") == "DEBUG" for line in lines), "debug logging was not on"
    messages = "\n".join(str(line.get("message")) for line in lines)
    assert "cache hit" in messages and "match: instance" in messages
    assert "credentials recovered" in messages and "credential recovery failed" in messages
    assert any(line.get("level") == "ERROR" for line in lines), "the fault run logged no error"
    assert len(store_view["errors"]) > 0

    # the canaries were in play: the reconciler carried them into Vault
    vault_text = json.dumps(vault_after)
    for name in STORED_IN_VAULT:
        assert CANARIES[name] in vault_text, f"canary {name} never reached Vault: the test would prove nothing"

    records = rec.records + [r for r in caplog.records if r not in rec.records]
    # ... and the search finds a leak when there is one, on stdout and in the records
    logging.getLogger("reconciler.phases.test").info("leaky %s", CANARIES["vault_credentials"])
    leaky = [r for r in rec.records if r.getMessage().startswith("leaky ")]
    assert [leaks(record_text(r), secrets) for r in leaky] == [[CANARIES["vault_credentials"]]]
    assert leaks(capfd.readouterr().out, secrets) == [CANARIES["vault_credentials"]]

    surfaces = {
        "stdout (structured log lines, EMF)": out,
        "stderr": err,
        "log records (before redaction)": "\n".join(record_text(r) for r in records),
        "execution outputs and errors": json.dumps(runs, default=str),
        "execution histories": json.dumps(histories, default=str),
        "store (runs, figures, errors, orphans, lock)": json.dumps(store_view, default=str),
        **{f"API {path}": text for path, text in pages.items()},
    }
    found = {name: leaks(text, secrets) for name, text in surfaces.items()}
    print(f"searched {len(secrets)} secret values in {sum(len(t) for t in surfaces.values())} characters over "
          f"{len(surfaces)} surfaces; {len(lines)} log lines ({sum(1 for x in lines if x.get('level') == 'DEBUG')} "
          f"debug), {len(records)} log records, {sum(len(h) for h in histories.values())} history events")
    assert not any(found.values()), {name: hits for name, hits in found.items() if hits}
    assert len(secrets) > len(CANARIES)  # the generator's own passwords were searched for too
    assert any(r.name.startswith("reconciler.phases.") for r in records)  # caplog saw the phases' records
