"""Live progress of a run: the phase it is in, batches and items done per Map, elapsed, ETA.

One DynamoDB item per run (state table, ``pk=progress``, ``sk=<run id>``, kept as long as run
records), written by each phase as it starts and by each batch as it ends: ``SET`` for the
phase, ``ADD`` for the counters, so parallel batches never lose an update. Recording progress
never fails a run: an error is logged and the run goes on.

:func:`view` (pure) turns the item into what ``/b/status``, the dashboard and the CLI show.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .store import item_to_dict

log = logging.getLogger(__name__)

#: The phases in the order a run passes them (the state machine's states, Discover = both branches).
PHASES = ("Begin", "Discover", "ScanDeployments", "Match", "UpdateVault", "SyncIndex", "Orphans", "Finish")
#: Map states: what their batches hold.
MAPS = {"scan": ("ScanDeployments", "deployments"), "apply": ("UpdateVault", "instances")}
PK = "progress"


def _now_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def _parse(ts: Any) -> float | None:
    if not isinstance(ts, str):
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _clock(store: Any) -> float:
    return float(getattr(store, "clock", time.time)())


def _update(store: Any, run_id: str, expression: str, names: dict[str, str], values: dict[str, Any]) -> None:
    try:
        now = _clock(store)
        values = {**values, ":exp": {"N": str(int(math.ceil(now + store.run_ttl_s)))}}
        store.client.update_item(TableName=store.state_table, Key={"pk": {"S": PK}, "sk": {"S": run_id}},
                                 UpdateExpression=expression + ", expires_at = :exp"
                                 if expression.startswith("SET") else expression + " SET expires_at = :exp",
                                 ExpressionAttributeNames=names, ExpressionAttributeValues=values)
    except Exception as exc:  # noqa: BLE001 - progress is for people watching; the run must go on
        log.warning("progress of run %s not recorded: %s", run_id, type(exc).__name__)


def _clean(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if v is not None}


def phase_started(store: Any, run_id: str, phase: str) -> None:
    """``phase`` is where the run is now; its first start time is kept (batches call this too)."""
    now = _now_iso(_clock(store))
    _update(store, run_id, "SET #phase = :p, #since = if_not_exists(#since, :now), #started = if_not_exists("
            "#started, :now)", {"#phase": "phase", "#since": f"started_{phase}", "#started": "started_at"},
            {":p": {"S": phase}, ":now": {"S": now}})


def map_total(store: Any, run_id: str, name: str, batches: int, items: int) -> None:
    """How many batches (and items) the ``name`` Map (``scan``/``apply``) will run."""
    _update(store, run_id, "SET #b = :b, #i = :i", {"#b": f"{name}_batches_total", "#i": f"{name}_items_total"},
            {":b": {"N": str(int(batches))}, ":i": {"N": str(int(items))}})


def map_grow(store: Any, run_id: str, name: str, *, items: int) -> None:
    """``items`` more items for the ``name`` Map (an early apply batch's cut, beside the scan)."""
    _update(store, run_id, "ADD #i :i", {"#i": f"{name}_items_total"}, {":i": {"N": str(int(items))}})


def batch_progress(store: Any, run_id: str, name: str, items: int, done: bool) -> None:
    """An invocation of a ``name`` batch handled ``items`` items; ``done``: its batch is complete."""
    names = {"#i": f"{name}_items_done"}
    values = {":i": {"N": str(int(items))}}
    expression = "ADD #i :i"
    if done:
        names["#b"] = f"{name}_batches_done"
        values[":one"] = {"N": "1"}
        expression += ", #b :one"
    _update(store, run_id, expression, names, values)


def finished(store: Any, run_id: str, status: str) -> None:
    now = _now_iso(_clock(store))
    _update(store, run_id, "SET #f = :now, #s = :s", {"#f": "finished_at", "#s": "status"},
            {":now": {"S": now}, ":s": {"S": status}})


def read(store: Any, run_id: str) -> dict[str, Any] | None:
    try:
        out = store.client.get_item(TableName=store.state_table, Key={"pk": {"S": PK}, "sk": {"S": run_id}},
                                    ConsistentRead=True)
    except Exception as exc:  # noqa: BLE001 - a status page without progress is still a status page
        log.warning("progress of run %s not read: %s", run_id, type(exc).__name__)
        return None
    item = item_to_dict(out.get("Item"))
    return None if item is None else {k: v for k, v in item.items() if k not in ("pk", "sk", "expires_at")}


def phase_durations(item: Mapping[str, Any], end: float | None = None) -> list[dict[str, Any]]:
    """``[{phase, started_at, duration_s}]`` in run order; a phase lasts until the next one began
    (the last one until ``finished_at``, or ``end``: still going)."""
    parsed = [(p, _parse(item.get(f"started_{p}"))) for p in PHASES]
    starts = [(p, t) for p, t in parsed if t is not None]
    starts.sort(key=lambda pt: pt[1])
    stop = _parse(item.get("finished_at")) or end
    out = []
    for i, (phase, t) in enumerate(starts):
        nxt = starts[i + 1][1] if i + 1 < len(starts) else stop
        out.append({"phase": phase, "started_at": item.get(f"started_{phase}"),
                    "duration_s": None if nxt is None else round(max(0.0, nxt - t), 3)})
    return out


def view(item: Mapping[str, Any] | None, now: float) -> dict[str, Any] | None:
    """What a watcher sees: phase, elapsed, per Map batches/items done and total, ETA of the current Map."""
    if not item:
        return None
    started = _parse(item.get("started_at"))
    end = _parse(item.get("finished_at")) or now
    phase = item.get("phase")
    maps: dict[str, Any] = {}
    eta = None
    for name, (state, what) in MAPS.items():
        if f"{name}_batches_total" not in item:
            continue
        total_items = int(item.get(f"{name}_items_total") or 0)
        done_items = int(item.get(f"{name}_items_done") or 0)
        entry = {"state": state, "what": what, "batches_total": int(item.get(f"{name}_batches_total") or 0),
                 "batches_done": int(item.get(f"{name}_batches_done") or 0), "items_total": total_items,
                 "items_done": done_items}
        since = _parse(item.get(f"started_{state}"))
        if phase == state and since is not None and done_items and total_items > done_items:
            rate = done_items / max(1e-3, now - since)
            entry["eta_s"] = eta = round((total_items - done_items) / rate, 1)
        maps[name] = entry
    return {"phase": phase, "started_at": item.get("started_at"),
            "elapsed_s": None if started is None else round(max(0.0, end - started), 3),
            "maps": maps, "eta_s": eta, "phases": phase_durations(item, None if item.get("finished_at") else now),
            "finished_at": item.get("finished_at"), "status": item.get("status")}
