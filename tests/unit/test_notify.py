"""Notification delivery: signature, retry with backoff, a refusing receiver, never raising, dedup."""

from __future__ import annotations

import hashlib
import hmac

import requests

from reconciler.config.models import Webhook
from reconciler.notify import SIGNATURE_HEADER, Event, Notification, Sender, run_events


class Answer:
    def __init__(self, status):
        self.status_code = status


def hook(**kw):
    return Webhook(url="https://hooks.example.com/x", secret="k3y-value", **kw)


def test_retries_with_backoff_then_gives_up_without_raising():
    calls, sleeps = [], []

    def post(url, data, headers, timeout):
        calls.append(headers)
        raise requests.ConnectionError("refused")

    sender = Sender([hook()], attempts=3, post=post, sleep=sleeps.append)
    figures = sender.send_all([Notification(Event.RUN_FAILED, "r1", "run r1 failed")])
    assert figures == {"sent": 0, "failed": 1, "skipped_duplicate": 0}
    assert len(calls) == 3 and sleeps == [0.5, 1.0]


def test_a_4xx_is_not_retried_and_the_body_is_signed():
    bodies = []

    def post(url, data, headers, timeout):
        bodies.append((data, headers))
        return Answer(400)

    Sender([hook()], attempts=3, post=post, sleep=lambda s: None).send_all(
        [Notification(Event.RUN_FAILED, "r1", "failed")])
    (data, headers), = bodies
    assert headers[SIGNATURE_HEADER] == "sha256=" + hmac.new(b"k3y-value", data, hashlib.sha256).hexdigest()


def test_each_notification_once_per_run_and_only_subscribed_events():
    sent, posted = set(), []
    sender = Sender([hook(events=["new_findings"])], post=lambda *a, **k: posted.append(k) or Answer(204),
                    sent=lambda i: i in sent, mark=sent.add)
    notes = run_events("r1", status="succeeded_with_errors", figures={"errors": 2, "credentials_recovered": 1},
                       update={"newly_orphaned": {"cf": ["a"], "bosh": ["d1", "d2"]}}, breakers={})
    assert {n.event for n in notes} == {Event.RUN_WITH_ERRORS, Event.NEW_FINDINGS, Event.CREDENTIALS_RECOVERED}
    assert sender.send_all(notes)["sent"] == 4
    assert len(posted) == 2  # one per finding kind; the other events are not subscribed
    assert sender.send_all(notes) == {"sent": 0, "failed": 0, "skipped_duplicate": 4}
