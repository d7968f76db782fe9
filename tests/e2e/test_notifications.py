"""Notifications end to end: a webhook receiver on loopback gets one signed, schema-valid
notification per event kind from runs that produce each (new findings of every kind,
credentials recovered, findings resolved, a run with errors and an open circuit, a failed
run), and none carries a secret."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import hvac

from mockstack.generator import generate
from mockstack.runner import LOCAL_CONFIG
from reconciler.domain.findings import FindingKind
from reconciler.notify import DELIVERY_HEADER, EVENT_HEADER, SCHEMA_VERSION, SIGNATURE_HEADER, Event
from tests.e2e.support import scenario

SECRET = "hook-secret-4f1c9a"
KEYS = {"schema_version", "event", "id", "run_id", "time", "summary", "details"}


class Receiver:
    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()


def config(url: str) -> str:
    return LOCAL_CONFIG.replace("bosh: {rate_limit: {wait_timeout: 60s}}",
                                "bosh: {rate_limit: {wait_timeout: 60s}, circuit_breaker: {failure_threshold: 1}}") + \
        f"  notifications:\n    webhooks:\n      - url: {url}\n        secret: {SECRET}\n"


def forget_vault_orphans(sc, ids: list[str]) -> None:
    """The operator cleans the Vault orphans up: trees and index entries gone."""
    ep = sc.stack.endpoints()["vault"]
    client = hvac.Client(url=ep["address"], token=ep["token"])
    for iid in ids:
        for path in [p for p in sc.vault_contents() if p.startswith(f"secret/{iid}")]:
            client.secrets.kv.v2.delete_metadata_and_all_versions(path=path.removeprefix("secret/"),
                                                                  mount_point="secret")
    db = client.secrets.kv.v2.read_secret_version(path="db", mount_point="secret", raise_on_deleted_version=True)
    index = {k: v for k, v in db["data"]["data"].items() if k not in ids}
    client.secrets.kv.v2.create_or_update_secret(path="db", secret=index, mount_point="secret",
                                                 cas=db["data"]["metadata"]["version"])


def test_one_signed_notification_per_event_kind():
    world, expected = generate(10, seed=5)
    receiver = Receiver()
    try:
        with scenario(world, config_text=config(receiver.url)) as sc:
            runs = [sc.run_once(force=True)]  # new findings of every kind, credentials recovered
            forget_vault_orphans(sc, expected["orphans"]["vault"])
            runs.append(sc.run_once(force=True))  # the Vault findings resolved
            sc.set_faults({"bosh": {"error_rate": 1.0}})  # (down would spare kept-alive connections)
            runs.append(sc.run_once(force=True))  # BOSH down: a run with errors, its circuit open
            sc.set_faults({"cf": {"error_rate": 1.0}})
            runs.append(sc.run_once(force=True))  # nothing answers: a failed run
            secrets = [str(v) for c in expected["recovered_credentials"].values() for v in c.values()
                       if isinstance(v, str) and len(v) >= 8]
    finally:
        receiver.stop()

    assert [r["status"] for r in runs] == ["SUCCEEDED", "SUCCEEDED", "SUCCEEDED", "FAILED"], [
        (r["output"] or {}).get("phases", {}).get(k) for r in runs[2:] for k in ("discover_cf", "discover_bosh")]
    seen: dict[tuple[str, str], int] = {}
    for headers, body in receiver.got:
        signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers[SIGNATURE_HEADER.lower()] == "sha256=" + signature
        doc = json.loads(body)
        assert set(doc) == KEYS and doc["schema_version"] == SCHEMA_VERSION
        assert headers[EVENT_HEADER.lower()] == doc["event"] and headers[DELIVERY_HEADER.lower()] == doc["id"]
        assert doc["event"] in {e.value for e in Event}
        assert not [s for s in secrets if s in body.decode()]
        key = (doc["run_id"], doc["event"] + ":" + str(doc["details"].get("kind", "")))
        seen[key] = seen.get(key, 0) + 1
    assert all(n == 1 for n in seen.values()), seen  # deduplicated per run
    run_ids = [r["execution_arn"].rsplit(":", 1)[-1] for r in runs]
    events = {(rid, e) for rid, e in seen}
    for kind in FindingKind:
        if expected["orphans"].get(kind.value):
            assert (run_ids[0], f"new_findings:{kind.value}") in events, kind
    assert (run_ids[0], "credentials_recovered:") in events
    assert (run_ids[1], "findings_resolved:") in events
    assert (run_ids[2], "run_with_errors:") in events and (run_ids[2], "circuit_opened:") in events
    assert (run_ids[3], "run_failed:") in events
    # remediation is sent only where reconciler.remediation archives (not configured here):
    # tests/unit/test_remediation_rules.py::test_an_archive_is_notified_with_its_undo covers it
    assert {e.split(":")[0] for _, e in events} == {e.value for e in Event} - {Event.REMEDIATION.value}
    resolved = next(json.loads(b) for _, b in receiver.got if json.loads(b)["event"] == "findings_resolved")
    assert sorted(resolved["details"]["kinds"]["vault"]["ids"]) == sorted(expected["orphans"]["vault"])
