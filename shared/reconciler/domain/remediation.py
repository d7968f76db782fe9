"""Auto-remediation: which findings this run acts on (pure; the Orphans phase does the Vault calls).

Opt-in per finding kind (``reconciler.remediation``); every kind defaults to ``report``. The
only action that changes anything is ``archive``, only for Vault orphans (Vault data the
reconciler can back up itself), and only when all of these hold:

- the kind was evaluated in this run (every source it needs answered, every deployment was
  scanned): an incomplete run never acts;
- this run saw the finding (``last_seen`` is now) and so did each of the last ``after_runs``
  complete runs (``checks``: a finding that was not seen in a complete run is resolved, so its
  count starts again);
- it is older than ``archive_after`` (since ``first_seen``).

A finding still waiting is reported with what it waits for, so the dry-run plan shows when
an archive will happen. Never a BOSH or CF delete: no kind of those sources accepts an action.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pydantic import Field

from ..models import Record
from .findings import FindingKind
from .uuids import normalize_uuid

REPORT = "report"
ARCHIVE = "archive"


class RemediationPolicy(Record):
    action: str = REPORT
    archive_after_s: float = Field(default=30 * 86400.0, ge=0)
    after_runs: int = Field(default=3, ge=1)


class RemediationAction(Record):
    """One action this run takes (or, waiting, will take) on one finding."""

    kind: str  # FindingKind value
    key: str
    instance_id: str
    action: str  # "archive"
    first_seen: str
    checks: int
    age_s: float
    reason: str  # why now (or what it still waits for); ids, counts and ages only


def _seconds_between(earlier: str, later: str) -> float | None:
    try:
        a = datetime.fromisoformat(earlier.replace("Z", "+00:00"))
        b = datetime.fromisoformat(later.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None
    if a.tzinfo is None or b.tzinfo is None:
        return None
    return (b - a).total_seconds()


def _days(seconds: float) -> str:
    return f"{seconds / 86400:.1f}d"


def select_remediation(
    state: Mapping[str, Mapping[str, Mapping[str, Any]]],
    policies: Mapping[str, RemediationPolicy],
    *,
    now: str,
    evaluated: Iterable[str],
) -> tuple[list[RemediationAction], list[RemediationAction]]:
    """(actions due this run, actions still waiting) for the findings in ``state``.

    ``evaluated`` names the kinds this run evaluated (complete evidence); no other kind is acted on.
    """
    due: list[RemediationAction] = []
    waiting: list[RemediationAction] = []
    done = set(evaluated)
    for kind in FindingKind:
        policy = policies.get(kind.value)
        if policy is None or policy.action == REPORT or policy.action not in kind.spec.actions:
            continue
        for key, entry in sorted((state.get(kind.value) or {}).items()):
            uid = normalize_uuid(entry.get("instance_id") or key)
            if uid is None or entry.get("archived"):
                continue
            first_seen = str(entry.get("first_seen") or "")
            age = _seconds_between(first_seen, now)
            checks = int(entry.get("checks") or 0)
            base: dict[str, Any] = dict(kind=kind.value, key=key, instance_id=uid, action=policy.action,
                                        first_seen=first_seen, checks=checks, age_s=max(0.0, age or 0.0))
            missing: list[str] = []
            if kind.value not in done:
                missing.append("a complete run (this one did not evaluate the kind)")
            elif entry.get("last_seen") != now:
                missing.append("to be seen in this run")
            if checks < policy.after_runs:
                missing.append(f"{policy.after_runs - checks} more complete run(s) that see it "
                               f"({checks} of {policy.after_runs} so far)")
            if age is None:
                missing.append("a readable first_seen time")
            elif age < policy.archive_after_s:
                missing.append(f"age {_days(policy.archive_after_s)} (it is {_days(max(0.0, age))})")
            if missing:
                waiting.append(RemediationAction(**base, reason="waits for " + "; ".join(missing)))
            else:
                due.append(RemediationAction(**base, reason=(
                    f"{kind.description}: seen in {checks} consecutive complete runs, orphaned for "
                    f"{_days(age or 0.0)} (policy: {policy.after_runs} runs, {_days(policy.archive_after_s)})")))
    return due, waiting
