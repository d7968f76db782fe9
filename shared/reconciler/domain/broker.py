"""What the live Blacksmith broker reads and writes, as rules the reconciler follows
(../shared/api-reference/blacksmith-broker-vault.md; docs/matching-and-planning.md).

The broker is the system of record: its hourly sweep removes every ``secret/db`` entry
whose ``<plan_id>-<instance_id>`` deployment BOSH does not have, its history append keeps
only entries stamped with a number of Unix seconds, and an operation it has in flight is
its own business, not drift.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from .findings import FindingKind

#: Index ``status`` values the broker writes while an operation is in flight.
IN_FLIGHT_STATUSES = ("request_received", "deprovision_requested")
#: CF ``last_operation.state`` values of an operation not finished yet.
CF_IN_FLIGHT_STATES = ("in progress", "initial")
#: ``secret/<id>/task`` states of an operation under way. The broker never sets a task back
#: when the operation ends, so a task counts only when newer than CF's last settled operation.
TASK_IN_FLIGHT_STATES = ("in_progress", "initializing")
#: Without CF to say an operation ended, a task record older than this is taken as finished.
TASK_MAX_AGE_S = 24 * 3600
#: The index status we give an entry we add: CF says its create or update succeeded.
SETTLED_STATUS = "provisioned"
#: What an operator can do about an instance whose deployment is not ``<plan_id>-<instance_id>``.
NAME_MISMATCH_ADVICE = (
    "the broker derives <plan_id>-<instance_id> for deprovision, bind and its hourly sweep, which removes "
    "this entry every hour; rename the deployment in BOSH to the derived name, or recreate the instance "
    "through CF; until then the reconciler restores the entry each run"
)


def derived_deployment_name(plan_id: Any, instance_id: str) -> str | None:
    """The only deployment name the broker ever uses for an instance (None without a plan id)."""
    return f"{plan_id}-{instance_id}" if isinstance(plan_id, str) and plan_id else None


def unix_seconds(value: Any) -> int | None:
    """Unix seconds from a number or an RFC 3339 / ISO-8601 string; None when neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


def is_unix_seconds(value: Any) -> bool:
    """What the broker's retention filter keeps: a JSON number (a bool is not one)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def history_in_broker_format(history: Sequence[Any]) -> tuple[list[Any], int]:
    """``history`` with every parseable string ``timestamp`` turned into Unix seconds (older
    reconcilers stamped RFC 3339), so the broker's next append does not drop it. Returns
    (history, how many entries were converted); other entries are kept as they are."""
    out: list[Any] = []
    converted = 0
    for entry in history:
        if isinstance(entry, Mapping) and not is_unix_seconds(entry.get("timestamp")):
            seconds = unix_seconds(entry.get("timestamp"))
            if seconds is not None:
                entry = {**entry, "timestamp": seconds}
                converted += 1
        out.append(entry)
    return out, converted


#: The history actions this reconciler writes; every other entry is the broker's (or a user's).
OUR_HISTORY_ACTIONS = ("reconcile", "orphaned", "orphan_resolved")


def bound_history(history: Sequence[Any], limit: int) -> list[Any]:
    """``history`` with at most ``limit`` entries of ours (the oldest of ours dropped first).
    The broker's entries are its audit trail: its own append bounds them (1000, 30 days)."""
    ours = [i for i, e in enumerate(history) if isinstance(e, Mapping) and e.get("action") in OUR_HISTORY_ACTIONS]
    drop = set(ours[: max(0, len(ours) - limit)])
    return [e for i, e in enumerate(history) if i not in drop]


def _describe(op: Mapping[str, Any]) -> str:
    return f"CF {op.get('type') or 'operation'} {op.get('state')}"


def cf_in_flight(last_operation: Mapping[str, Any] | None) -> str:
    """``"CF create in progress"`` when CF's last operation has not finished, else ""."""
    op = last_operation or {}
    return _describe(op) if str(op.get("state") or "").lower() in CF_IN_FLIGHT_STATES else ""


def index_in_flight(entry: Mapping[str, Any] | None) -> str:
    """``"broker status request_received"`` when the index entry says an operation is under way."""
    status = (entry or {}).get("status") if isinstance(entry, Mapping) else None
    return f"broker status {status}" if status in IN_FLIGHT_STATUSES else ""


def cf_settled_at(last_operation: Mapping[str, Any] | None) -> float | None:
    """When CF's last operation finished (Unix seconds), or None: not finished, or no time."""
    op = last_operation or {}
    return unix_seconds(op.get("updated_at")) if op.get("state") in ("succeeded", "failed") else None


def task_record_decides(last_operation: Mapping[str, Any] | None) -> bool:
    """Whether ``secret/<id>/task`` must be read to plan the instance: CF cannot say when its
    last operation finished (CF unavailable, no last operation, none finished or no time).
    Otherwise only a task newer than that finish counts (:func:`task_in_flight`), which means
    an operation CF started after this run read it: the tree read before any write (the
    backup's) sees it, so an instance that gets no write needs no task read."""
    return cf_settled_at(last_operation) is None


def task_in_flight(task: Mapping[str, Any] | None, last_operation: Mapping[str, Any] | None, *, now: float) -> str:
    """``"broker task provision in_progress"`` when ``secret/<id>/task`` is under way: its state
    is in progress and CF has not settled an operation since (``last_operation.updated_at``),
    or, with nothing from CF, it was updated within :data:`TASK_MAX_AGE_S`."""
    if not isinstance(task, Mapping) or task.get("state") not in TASK_IN_FLIGHT_STATES:
        return ""
    updated = unix_seconds(task.get("updated_at"))
    if updated is None:
        return ""
    settled = cf_settled_at(last_operation)
    if settled is not None:
        if updated <= settled:
            return ""
    elif now - updated > TASK_MAX_AGE_S:
        return ""
    return f"broker task {task.get('action') or 'operation'} {task.get('state')}"


def instance_in_flight(last_operation: Mapping[str, Any] | None, entry: Mapping[str, Any] | None) -> str:
    """The operation in flight for an instance as CF and the index tell it ("" when none)."""
    return cf_in_flight(last_operation) or index_in_flight(entry)


def failed_provision(last_operation: Mapping[str, Any] | None) -> bool:
    """CF's create failed (the caller checks there is no deployment)."""
    op = last_operation or {}
    return op.get("type") == "create" and op.get("state") == "failed"


def settled_status(last_operation: Mapping[str, Any] | None) -> str:
    """The index ``status`` consistent with CF for an instance we add (one with a deployment)."""
    op = last_operation or {}
    if op.get("type") == "create" and op.get("state") == "failed":
        return "failed"
    return SETTLED_STATUS


def orphan_history(update: Any, previous: Mapping[str, Any] | None, *, now: int) -> dict[str, list[dict[str, Any]]]:
    """History entries for the instances whose orphan state changed this run (kinds with
    ``in_history``; ``update`` an ``OrphanUpdate``, ``previous`` the state before it):
    ``{instance_id: [entry]}``, stamped in Unix seconds like the broker's own."""
    out: dict[str, list[dict[str, Any]]] = {}
    for kind in FindingKind:
        if not kind.spec.in_history:
            continue
        for keys, state, action, words in (
            (update.newly_orphaned.get(kind.value), update.state.get(kind.value), "orphaned", ""),
            (update.resolved.get(kind.value), (previous or {}).get(kind.value), "orphan_resolved", "no longer "),
        ):
            for key in keys or []:
                entry = (state or {}).get(key)
                uid = entry.get("instance_id") if isinstance(entry, Mapping) else None
                if uid:
                    out.setdefault(uid, []).append({"timestamp": now, "action": action,
                                                    "description": f"reconciler: {words}{kind.spec.description}"})
    return out
