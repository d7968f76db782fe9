"""The ``/b/status`` document, built from stored figures (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from ..domain.findings import FindingKind

ORPHAN_KINDS = tuple(kind.value for kind in FindingKind)


def format_duration(seconds: float | None) -> str:
    """The spec's duration style: ``45.123s``."""
    return f"{float(seconds or 0):.3f}s"


def orphan_counts(orphans: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    return {kind: len(orphans.get(kind) or {}) for kind in ORPHAN_KINDS}


def the_one(names: Sequence[str]) -> str:
    """The label value of a finding that does not name its foundation or director: the one
    configured name (a single foundation or director), else empty (unknown among several)."""
    return names[0] if len(names) == 1 else ""


def labelled_orphans(orphans: Mapping[str, Mapping[str, Any]], foundations: Sequence[str] = (),
                     directors: Sequence[str] = ()) -> dict[str, dict[str, dict[str, Any]]]:
    """The finding state with ``foundation`` and ``director`` on every entry (an instance is
    (foundation, guid), a deployment (director, name)); an entry that names neither gets the one
    configured name, or empty among several."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for kind, entries in orphans.items():
        out[kind] = {key: {**entry, "foundation": entry.get("foundation") or the_one(foundations),
                           "director": entry.get("director") or the_one(directors)}
                     for key, entry in (entries or {}).items() if isinstance(entry, Mapping)}
    return out


def orphan_shares(orphans: Mapping[str, Mapping[str, Any]], foundations: Sequence[str] = (),
                  directors: Sequence[str] = ()) -> list[dict[str, Any]]:
    """``[{kind, foundation, director, count}]``: the findings counted per kind and share, every
    kind present (a kind with none: one row of 0 labelled with the one name, or empty)."""
    counts: dict[tuple[str, str, str], int] = {}
    for kind, entries in labelled_orphans(orphans, foundations, directors).items():
        for entry in entries.values():
            share = (kind, str(entry["foundation"]), str(entry["director"]))
            counts[share] = counts.get(share, 0) + 1
    for kind in ORPHAN_KINDS:
        if not any(k == kind for k, _, _ in counts):
            counts[(kind, the_one(foundations), the_one(directors))] = 0
    return [{"kind": k, "foundation": f, "director": d, "count": n}
            for (k, f, d), n in sorted(counts.items(), key=lambda i: (ORPHAN_KINDS.index(i[0][0])
                                                                      if i[0][0] in ORPHAN_KINDS else 99, i[0]))]


def api_labels(api: str) -> dict[str, str]:
    """The foundation or director a per-API name belongs to: ``cf:us`` and ``cf:us:uaa`` are
    foundation ``us``'s, ``bosh:east`` director ``east``'s, ``vault`` neither."""
    system, _, rest = api.partition(":")
    member = rest.split(":", 1)[0]
    return {"foundation": member if system == "cf" else "", "director": member if system == "bosh" else ""}


def next_run_time(last_start: str | None, interval_s: float | None, enabled: bool, now: datetime) -> str | None:
    """When the schedule fires next, estimated from the last start and the interval."""
    if not enabled or not interval_s:
        return None
    if not last_start:
        return None
    try:
        start = datetime.fromisoformat(last_start.replace("Z", "+00:00"))
    except ValueError:
        return None
    step = timedelta(seconds=interval_s)
    upcoming = start + step
    while upcoming < now:
        upcoming += step
    return upcoming.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_counts(run: Mapping[str, Any] | None) -> tuple[int, int]:
    """(instances found, instances synced) of a run record: flat figures, or the per-phase
    figures the Finish phase stores (found = CF instances discovered, synced = written + unchanged)."""
    figures = (run or {}).get("figures") or {}
    if "instances_found" in figures:
        return int(figures.get("instances_found") or 0), int(figures.get("instances_synced") or 0)
    found = int((figures.get("discover_cf") or {}).get("instances") or 0)
    apply = figures.get("apply") or {}
    return found, int(apply.get("instances_written") or 0) + int(apply.get("instances_unchanged") or 0)


def not_reconciled(run: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """How many instances the run did not reconcile and why (``succeeded_with_errors``), from
    its record; None for a run recorded before these figures existed."""
    figures = (run or {}).get("figures") or {}
    if "instances_not_reconciled" not in figures:
        return None
    return {"count": int(figures.get("instances_not_reconciled") or 0),
            "reasons": dict(figures.get("not_reconciled_reasons") or {})}


def build_status(*, figures: Mapping[str, Any], lock: Mapping[str, Any] | None, runs: list[Mapping[str, Any]],
                 orphans: Mapping[str, Mapping[str, Any]], errors: list[Mapping[str, Any]],
                 breakers: Mapping[str, Mapping[str, Any]], interval_s: float | None, enabled: bool,
                 now: datetime | None = None, progress: Mapping[str, Any] | None = None,
                 foundations: Sequence[str] = (), directors: Sequence[str] = ()) -> dict[str, Any]:
    """``progress``: the running execution's live progress (``reconciler.progress.view``);
    ``foundations``/``directors``: the configured names (the labels of the findings per share)."""
    now = now or datetime.now(UTC)
    last_finished = next((r for r in runs if r.get("finished_at")), None)
    current = next((r for r in runs if not r.get("finished_at")), None) if lock else None
    last_started = runs[0].get("started_at") if runs else None
    found, synced = run_counts(last_finished)
    return {
        "running": bool(lock),
        "last_run_time": (last_finished or {}).get("finished_at"),
        "last_run_duration": format_duration((last_finished or {}).get("duration_s")),
        "last_run_status": (last_finished or {}).get("status"),
        "last_run_not_reconciled": not_reconciled(last_finished),
        "instances_found": found,
        "instances_synced": synced,
        "errors": [
            {k: e.get(k) for k in ("time", "run_id", "phase", "target", "message")} for e in errors
        ],
        "current_execution": None if not lock else {
            "execution_arn": lock.get("execution_arn"),
            "run_id": lock.get("run_id"),
            "phase": (progress or {}).get("phase") or (current or {}).get("phase"),
            "started_at": (current or {}).get("started_at") or lock.get("acquired_at"),
            "dry_run": bool((current or {}).get("dry_run")),
            # continue-as-new: the run's executions so far (the lock names its first one)
            "executions": int((current or {}).get("executions") or 1),
            "progress": dict(progress) if progress else None,
        },
        "orphans": orphan_counts(orphans),
        "foundations": list(foundations),
        "directors": list(directors),
        "orphans_by_share": orphan_shares(orphans, foundations, directors),
        "apis": {api: {"circuit": state.get("state", "closed"), **api_labels(api),
                       **{k: v for k, v in state.items() if k != "state"}}
                 for api, state in sorted(breakers.items())},
        "enabled": enabled,
        "next_run_time": next_run_time(last_started, interval_s, enabled, now),
        "totals": {
            "runs": int(figures.get("runs_total") or 0),
            "successful": int(figures.get("runs_successful") or 0),
            "failed": int(figures.get("runs_failed") or 0),
        },
    }
