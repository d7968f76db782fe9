"""Notifications: what a run's end tells the people who subscribed (webhooks, an SNS topic).

Events (:class:`Event`): a failed run, a run that finished with errors, new findings of a kind
(one notification per kind: CF/BOSH/Vault orphans and every other :class:`FindingKind`),
findings resolved, credentials recovered, a circuit breaker open. Each payload is JSON::

    {"schema_version": 1, "event": "new_findings", "id": "<sha256 of run and event>",
     "run_id": "...", "time": "2026-...Z", "summary": "2 new BOSH finding(s): ...",
     "details": {...ids and counts, never a value from Vault...}}

Webhooks get it as the POST body with ``X-Blacksmith-Event``, ``X-Blacksmith-Delivery`` (the
id) and ``X-Blacksmith-Signature: sha256=<hex HMAC-SHA256 of the body under the webhook's
secret>``; a failed delivery is retried with backoff (``notifications.attempts``), then logged.
The SNS topic (``NOTIFICATIONS_TOPIC_ARN``) gets the same body with an ``event`` message
attribute. Each event is sent once per run (the per-run scratch remembers what was sent, so a
retried Finish does not send again). Nothing here raises: a notification never blocks or
fails a run.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import boto3
import requests

from . import env
from .domain.findings import FindingKind

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SIGNATURE_HEADER = "X-Blacksmith-Signature"
EVENT_HEADER = "X-Blacksmith-Event"
DELIVERY_HEADER = "X-Blacksmith-Delivery"
MAX_IDS = 50  # ids listed per notification; the count is always whole


class Event(StrEnum):
    RUN_FAILED = "run_failed"
    RUN_WITH_ERRORS = "run_with_errors"
    NEW_FINDINGS = "new_findings"
    FINDINGS_RESOLVED = "findings_resolved"
    CREDENTIALS_RECOVERED = "credentials_recovered"
    CIRCUIT_OPENED = "circuit_opened"
    REMEDIATION = "remediation"  # auto-remediation archived findings (reconciler.remediation)


@dataclass
class Notification:
    event: Event
    run_id: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    key: str = ""  # what makes it unique in its run (the finding kind for per-kind events)

    @property
    def id(self) -> str:
        return hashlib.sha256(f"{self.run_id}|{self.event}|{self.key}".encode()).hexdigest()

    def body(self, now: float) -> bytes:
        doc = {"schema_version": SCHEMA_VERSION, "event": str(self.event), "id": self.id, "run_id": self.run_id,
               "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)), "summary": self.summary,
               "details": self.details}
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _ids(keys: list[str]) -> dict[str, Any]:
    return {"count": len(keys), "ids": sorted(keys)[:MAX_IDS]}


def run_events(run_id: str, *, status: str, update: Mapping[str, Any] | None, figures: Mapping[str, Any],
               breakers: Mapping[str, Mapping[str, Any]], error: Mapping[str, Any] | None = None,
               remediation: Mapping[str, Any] | None = None) -> list[Notification]:
    """The notifications a finished (or failed) run raises. ``update``: the run's orphan update
    (``newly_orphaned``/``resolved``: kind -> keys); ``figures``: the run's figures."""
    out: list[Notification] = []
    if status == "failed":
        err = error or {}
        out.append(Notification(Event.RUN_FAILED, run_id, f"run {run_id} failed: {err.get('error', 'error')}",
                                {"error": err.get("error"), "message": str(err.get("message") or "")[:500],
                                 "phase": err.get("phase")}))
    elif status == "succeeded_with_errors":
        out.append(Notification(Event.RUN_WITH_ERRORS, run_id,
                                f"run {run_id} finished with {figures.get('errors', 0)} error(s)",
                                {"errors": figures.get("errors", 0)}))
    for kind in FindingKind:
        new = list(((update or {}).get("newly_orphaned") or {}).get(kind.value) or [])
        if new:
            out.append(Notification(Event.NEW_FINDINGS, run_id, f"{len(new)} new {kind.label} finding(s): "
                                    f"{kind.description}", {"kind": kind.value, **_ids(new)}, key=kind.value))
    resolved = {k.value: list(((update or {}).get("resolved") or {}).get(k.value) or []) for k in FindingKind}
    resolved = {k: v for k, v in resolved.items() if v}
    if resolved:
        out.append(Notification(Event.FINDINGS_RESOLVED, run_id,
                                f"{sum(len(v) for v in resolved.values())} finding(s) resolved",
                                {"kinds": {k: _ids(v) for k, v in resolved.items()}}))
    recovered = int(figures.get("credentials_recovered") or 0)
    if recovered:
        out.append(Notification(Event.CREDENTIALS_RECOVERED, run_id,
                                f"credentials of {recovered} instance(s) recovered from their manifests",
                                {"count": recovered}))
    archived = list((remediation or {}).get("archived") or [])
    if archived:  # each with the backup sha that undoes it (restore <id> <sha>); ids and shas only
        out.append(Notification(Event.REMEDIATION, run_id,
                                f"{len(archived)} Vault orphan(s) archived (verified backup, then removed); "
                                "restore undoes each",
                                {"count": len(archived), "archived": [
                                    {k: a.get(k) for k in ("event", "instance_id", "backup_sha256", "paths_removed",
                                                           "index_entry_removed", "undo")}
                                    for a in archived[:MAX_IDS]]}))
    opened = sorted(name for name, state in breakers.items() if state.get("state") == "open")
    if opened:
        out.append(Notification(Event.CIRCUIT_OPENED, run_id, f"circuit open for {', '.join(opened)}",
                                {"circuits": {n: {"opened_at": breakers[n].get("opened_at"),
                                                  "failures": breakers[n].get("failures")} for n in opened}}))
    return out


@dataclass
class Sender:
    """Delivers notifications to webhooks and the SNS topic; remembers per run what was sent."""

    webhooks: list[Any]  # config Webhook (url, events, secret)
    topic_arn: str | None = None
    sns: Any = None
    timeout_s: float = 5.0
    attempts: int = 3
    sent: Callable[[str], bool] = lambda _id: False  # already sent this run?
    mark: Callable[[str], None] = lambda _id: None
    post: Any = requests.post
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time

    def send_all(self, notes: list[Notification]) -> dict[str, int]:
        figures = {"sent": 0, "failed": 0, "skipped_duplicate": 0}
        for note in notes:
            try:
                if self.sent(note.id):
                    figures["skipped_duplicate"] += 1
                    continue
                ok = self.deliver(note)
                self.mark(note.id)
                figures["sent" if ok else "failed"] += 1
            except Exception as exc:  # noqa: BLE001 - a notification never fails a run
                log.warning("notification %s not sent: %s", note.event, type(exc).__name__)
                figures["failed"] += 1
        return figures

    def deliver(self, note: Notification) -> bool:
        body = note.body(self.clock())
        ok = True
        for hook in self.webhooks:
            if str(note.event) in hook.events:
                ok = self._post(hook, note, body) and ok
        if self.topic_arn and self.sns is not None:
            try:
                self.sns.publish(TopicArn=self.topic_arn, Message=body.decode(), Subject=note.summary[:99],
                                 MessageAttributes={"event": {"DataType": "String", "StringValue": str(note.event)}})
            except Exception as exc:  # noqa: BLE001
                log.warning("notification %s: SNS publish failed: %s", note.event, type(exc).__name__)
                ok = False
        return ok

    def _post(self, hook: Any, note: Notification, body: bytes) -> bool:
        headers = {"Content-Type": "application/json", EVENT_HEADER: str(note.event), DELIVERY_HEADER: note.id,
                   "User-Agent": "blacksmith-reconciler"}
        if hook.secret is not None:
            headers[SIGNATURE_HEADER] = sign(body, hook.secret.get())
        delay = 0.5
        for attempt in range(1, max(1, self.attempts) + 1):
            try:
                response = self.post(hook.url, data=body, headers=headers, timeout=self.timeout_s)
                if response.status_code < 300:
                    return True
                why = f"HTTP {response.status_code}"
                if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                    break  # the receiver refuses it: trying again will not help
            except requests.RequestException as exc:
                why = type(exc).__name__
            if attempt < self.attempts:
                self.sleep(delay)
                delay *= 2
        log.warning("notification %s to %s not delivered: %s", note.event, _host(hook.url), why)
        return False


def _host(url: str) -> str:
    """A webhook named by scheme and host only (a URL may carry a token in its path or query)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}"


def sender_for(settings: Any, store: Any, run_id: str) -> Sender:
    """The run's sender: the configured webhooks, the stack's topic, dedup in the run's scratch."""
    n = settings.reconciler.notifications
    topic = env.get("NOTIFICATIONS_TOPIC_ARN") or None

    def key(note_id: str) -> str:
        return f"notified#{note_id[:16]}"

    return Sender(list(n.webhooks), topic, boto3.client("sns") if topic else None, float(n.timeout), int(n.attempts),
                  sent=lambda i: store.get_scratch(run_id, key(i)) is not None,
                  mark=lambda i: store.put_scratch(run_id, key(i), True, store.run_ttl_s))


def notify_run(settings: Any, store: Any, run_id: str, **facts: Any) -> dict[str, int]:
    """Send what the run raised (``run_events``); never raises."""
    try:
        notes = run_events(run_id, **facts)
        if not notes:
            return {"sent": 0, "failed": 0, "skipped_duplicate": 0}
        figures = sender_for(settings, store, run_id).send_all(notes)
        log.info("notifications of run %s: %d sent, %d failed, %d already sent", run_id, figures["sent"],
                 figures["failed"], figures["skipped_duplicate"], extra={"notifications": figures})
        return figures
    except Exception as exc:  # noqa: BLE001 - a notification never fails a run
        log.warning("notifications of run %s not sent: %s", run_id, type(exc).__name__)
        return {"sent": 0, "failed": 1, "skipped_duplicate": 0}
