"""Run plans: what a run would change (dry run) or did change (real run), per instance.

Built from the changes :class:`reconciler.recording.RecordingVault` recorded, so a dry run's
plan is what the real code path would have written, not a second guess. Secrets never leave
here in clear: a path that may hold one (credentials, manifests, forge secrets, anything not
known to be plain metadata) lists its keys as ``added``/``changed``/``removed``/``unchanged``
without values, and secret-looking keys of the other paths are masked the same way.

The plan document (``PLAN_SCHEMA``)::

    {"schema": 1, "run_id": ..., "dry_run": true,
     "summary": {"instances": 3, "actions": {"create": 2, "update": 4, "backup": 3, ...},
                 "index": {"added": 1, "removed": 0, "changed": 2}},
     "instances": [{"instance_id": ..., "actions": [
          {"action": "update", "path": "secret/<id>/metadata", "secret": false,
           "fields": [{"field": "vms", "change": "changed", "before": ..., "after": ...}],
           "unchanged_fields": 5},
          {"action": "create", "path": "secret/<id>/credentials", "secret": true,
           "fields": [{"field": "password", "change": "added"}]},
          {"action": "backup", "path": "secret/backups/<id>/<sha>", "sha256": ...}]}],
     "index": {"action": "update_index", "path": "secret/db", "entries": [...]}}

Each action is one :class:`Action`; new kinds of action (auto-remediation) add a member and,
if they need one, a describer, and every consumer (CLI ``plan``, the dashboard) shows them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any

from . import backup as bk
from .domain.types import USER_FIELDS
from .domain.uuids import is_uuid
from .redaction import SENSITIVE_KEY

PLAN_SCHEMA = 1
MAX_VALUE_CHARS = 240  # longer values are summarised, not shown
MAX_INSTANCES_IN_RECORD = 2000  # a plan of more instances keeps the first ones and says how many were left out


class Action(StrEnum):
    """What a plan does to one path. Order: how a plan lists an instance's actions."""

    BACKUP = "backup"  # a new backup record, before anything of the instance is written
    RESTAMP_BACKUP = "restamp_backup"  # an identical older backup re-stamped as the newest
    CREATE = "create"  # a path of the instance's tree that does not exist yet
    UPDATE = "update"  # an existing path rewritten
    WRITE = "write"  # a real run's write whose previous state was not read (KV v1, no cas)
    MIGRATE = "migrate"  # a legacy backup rewritten in the current format, the old record removed
    DELETE_BACKUP = "delete_backup"  # an expired backup removed (retention)
    DELETE = "delete"  # a path of the instance's tree removed (remediation, e.g. archiving a Vault orphan)
    ARCHIVE = "archive"  # auto-remediation: an orphan's path removed after its verified backup (undo: restore)
    UPDATE_INDEX = "update_index"  # secret/db, entry by entry


SECRET_FIELDS = frozenset({"manifest", *(f for f in USER_FIELDS if f != "context")})
PLAIN_PARTS = {"", "metadata", "deployment", "task"}  # instance paths known to hold no secret


def is_secret_path(path: str, instance_id: str, mount: str) -> bool:
    """True unless ``path`` is one the broker keeps plain metadata in (root, metadata, a binding's metadata)."""
    rel = path[len(f"{mount}/{instance_id}"):].lstrip("/")
    if rel in PLAIN_PARTS:
        return False
    parts = rel.split("/")
    return not (len(parts) == 3 and parts[0] == "bindings" and parts[2] == "metadata")


def shown(value: Any) -> Any:
    """A value as a plan shows it: as it is when short, else what it is and how big."""
    text = json.dumps(value, sort_keys=True, default=str)
    if len(text) <= MAX_VALUE_CHARS:
        return value
    if isinstance(value, list):
        return {"summary": f"list of {len(value)} item(s)"}
    if isinstance(value, Mapping):
        return {"summary": f"object with {len(value)} key(s)"}
    return {"summary": f"{type(value).__name__} of {len(text)} characters"}


def field_changes(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None,
                  *, secret: bool) -> tuple[list[dict[str, Any]], int]:
    """(changed fields, number unchanged). A secret path lists every key, values hidden."""
    before, after = dict(before or {}), dict(after or {})
    out: list[dict[str, Any]] = []
    unchanged = 0
    missing = object()
    for key in sorted(set(before) | set(after)):
        b, a = before.get(key, missing), after.get(key, missing)
        hidden = secret or key in SECRET_FIELDS or bool(SENSITIVE_KEY.search(key))
        if b is not missing and a is not missing and bk.canonical_json(b) == bk.canonical_json(a):
            unchanged += 1
            if secret:
                out.append({"field": key, "change": "unchanged"})
            continue
        change = "added" if b is missing else "removed" if a is missing else "changed"
        entry: dict[str, Any] = {"field": key, "change": change}
        if not hidden:
            if b is not missing:
                entry["before"] = shown(b)
            if a is not missing:
                entry["after"] = shown(a)
        out.append(entry)
    return out, unchanged


def _instance_of(path: str, mount: str) -> str | None:
    parts = path[len(mount) + 1:].split("/") if path.startswith(mount + "/") else []
    if len(parts) >= 2 and parts[0] == "backups" and is_uuid(parts[1]):
        return parts[1].lower()
    if parts and is_uuid(parts[0]):
        return parts[0].lower()
    return None


def describe_change(change: Mapping[str, Any], instance_id: str, mount: str) -> dict[str, Any]:
    """One recorded change as a plan action (masked)."""
    path, op, existed = change["path"], change["op"], change.get("existed")
    in_backups = path.startswith(f"{mount}/backups/")
    legacy = path.startswith(f"{mount}/{instance_id}/backups/")
    if in_backups or legacy:
        sha = path.rsplit("/", 1)[-1]
        if op == "delete":
            old_format = bk.record_format(change.get("before") or {}) if change.get("before") else None
            is_migration = legacy or (old_format is not None and old_format != "v1")
            return {"action": Action.MIGRATE if is_migration else Action.DELETE_BACKUP, "path": path,
                    **({"format": old_format} if old_format else {})}
        record = change.get("after") or {}
        out = {"action": Action.RESTAMP_BACKUP if existed else Action.BACKUP, "path": path, "sha256": sha}
        if isinstance(record.get("paths"), int):
            out["paths"] = record["paths"]
        return out
    if op == "delete":  # outside backups only the archive of an orphan removes anything
        return {"action": Action.ARCHIVE, "path": path, "secret": is_secret_path(path, instance_id, mount)}
    secret = is_secret_path(path, instance_id, mount)
    if op == "delete":
        return {"action": Action.DELETE, "path": path, "secret": secret}
    action = Action.WRITE if existed is None else Action.UPDATE if existed else Action.CREATE
    out = {"action": action, "path": path, "secret": secret}
    if change.get("after") is not None:
        fields, unchanged = field_changes(change.get("before"), change.get("after"), secret=secret)
        out["fields"] = fields
        if not secret:
            out["unchanged_fields"] = unchanged
    return out


def index_entries(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """``secret/db`` entry by entry: added, removed, changed (with its fields)."""
    before, after = dict(before or {}), dict(after or {})
    out = []
    for key in sorted(set(before) | set(after)):
        b, a = before.get(key), after.get(key)
        if key in before and key in after and bk.canonical_json(b) == bk.canonical_json(a):
            continue
        change = "added" if key not in before else "removed" if key not in after else "changed"
        entry: dict[str, Any] = {"key": key, "change": change}
        if isinstance(b, Mapping) or isinstance(a, Mapping):
            entry["fields"] = field_changes(b if isinstance(b, Mapping) else {}, a if isinstance(a, Mapping) else {},
                                            secret=False)[0]
        out.append(entry)
    return out


def describe(changes: Iterable[Mapping[str, Any]], mount: str) -> dict[str, Any]:
    """``{"instances": {id: [actions]}, "index": {...} | None, "other": [paths]}`` for one phase's changes."""
    instances: dict[str, list[dict[str, Any]]] = {}
    index: dict[str, Any] | None = None
    other: list[str] = []
    for change in changes:
        path = change["path"]
        if path == f"{mount}/db":
            first_before = index["_before"] if index else change.get("before")
            index = {"action": Action.UPDATE_INDEX, "path": path, "_before": first_before}
            if change.get("after") is not None:
                index["entries"] = index_entries(first_before, change.get("after"))
            continue
        iid = _instance_of(path, mount)
        if iid is None:
            other.append(path)
            continue
        instances.setdefault(iid, []).append(describe_change(change, iid, mount))
    if index is not None:
        index.pop("_before", None)
    return {"instances": instances, "index": index, "other": other}


_ORDER = {a: i for i, a in enumerate(Action)}


def _merge_index(first: Mapping[str, Any] | None, later: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Two phases' index changes (the sync, then the archive of orphans) as one: entry by key,
    the later phase's word on a key last."""
    if not first or not later:
        chosen = later or first
        return dict(chosen) if chosen else None
    entries = {e["key"]: e for e in first.get("entries") or []}
    for e in later.get("entries") or []:
        entries[e["key"]] = e
    return {**first, "entries": [entries[k] for k in sorted(entries)]}


def assemble(parts: Sequence[Mapping[str, Any]], *, run_id: str, dry_run: bool,
             notes: Sequence[str] = ()) -> dict[str, Any]:
    """The run's plan from every phase's :func:`describe` output."""
    instances: dict[str, list[dict[str, Any]]] = {}
    index = None
    other: list[str] = []
    for part in parts:
        for iid, actions in (part.get("instances") or {}).items():
            instances.setdefault(iid, []).extend(actions)
        index = _merge_index(index, part.get("index"))
        other += part.get("other") or []
    counts: dict[str, int] = {}
    rows = []
    for iid in sorted(instances):
        actions = sorted(instances[iid], key=lambda a: (_ORDER.get(a["action"], len(_ORDER)), a["path"]))
        for a in actions:
            counts[a["action"]] = counts.get(a["action"], 0) + 1
        rows.append({"instance_id": iid, "actions": actions})
    index_counts = {"added": 0, "removed": 0, "changed": 0}
    for entry in (index or {}).get("entries") or []:
        index_counts[entry["change"]] += 1
    if index:
        counts[Action.UPDATE_INDEX] = 1
    plan = {"schema": PLAN_SCHEMA, "run_id": run_id, "dry_run": dry_run,
            "summary": {"instances": len(rows), "actions": {str(k): v for k, v in counts.items()},
                        "index": index_counts if index else None},
            "instances": rows[:MAX_INSTANCES_IN_RECORD], "index": index, "notes": list(notes)}
    if other:
        plan["other_paths"] = sorted(set(other))
    if len(rows) > MAX_INSTANCES_IN_RECORD:
        plan["truncated"] = {"instances_left_out": len(rows) - MAX_INSTANCES_IN_RECORD}
    return plan


def rule_decisions(match_result: Mapping[str, Any], limit: int = MAX_INSTANCES_IN_RECORD) -> list[dict[str, Any]]:
    """The match decisions custom matching rules (``reconciler.matching.rules``) took part in:
    deployment, instance, strategy, confidence, the rule and its reason (ids and names only)."""
    out = []
    for m in match_result.get("matches") or []:
        rules = [e for e in m.get("evidence") or [] if e.get("rule")]
        if rules:
            out.append({"deployment": m.get("deployment_name"), "director": m.get("director"),
                        "instance_id": m.get("instance_id"), "strategy": m.get("strategy"),
                        "confidence": m.get("confidence"), "rule": rules[0]["rule"], "reason": m.get("reason"),
                        "notes": list(m.get("notes") or [])})
    return out[:limit]


def summary_of(plan: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What the run record keeps of a plan: its counts."""
    if not plan:
        return None
    return {"instances": plan["summary"]["instances"], "actions": plan["summary"]["actions"],
            "index": plan["summary"]["index"]}


def has_changes(plan: Mapping[str, Any] | None) -> bool:
    return bool(plan and (plan["summary"]["instances"] or plan["summary"]["index"]))


def written_paths(plan: Mapping[str, Any]) -> set[str]:
    """Every path a plan writes or removes (tests compare it with Vault before and after)."""
    out = {a["path"] for row in plan.get("instances") or [] for a in row["actions"]}
    if plan.get("index"):
        out.add(plan["index"]["path"])
    return out
