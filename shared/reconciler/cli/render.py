"""Human output of the CLI: tables, a plan as a diff, a progress bar, ages. Pure functions."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ..domain.findings import FindingKind

SIGN = {"create": "+", "update": "~", "write": "~", "backup": "+", "restamp_backup": "~", "migrate": ">",
        "delete_backup": "-", "delete": "-", "update_index": "~"}


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain text table, columns as wide as their widest cell."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def age(value: Any, now: datetime | None = None) -> str:
    """``3d 4h``, ``12m``, ``40s`` since an ISO time; ``-`` when unknown."""
    then = parse_time(value)
    if then is None:
        return "-"
    seconds = max(0, int(((now or datetime.now(UTC)) - then).total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m" if minutes else f"{secs}s"


def seconds(value: Any) -> str:
    if value is None:
        return "-"
    try:
        return f"{float(value):.1f}s"
    except (TypeError, ValueError):
        return str(value)


def bar(done: int, total: int, width: int = 24) -> str:
    total = max(0, int(total))
    filled = width if total == 0 else int(width * min(done, total) / total)
    return "[" + "#" * filled + "." * (width - filled) + "]"


def progress_line(progress: Mapping[str, Any] | None) -> str:
    """One line: the phase, the current Map's bar, batches and items, elapsed and ETA."""
    if not progress:
        return "starting..."
    phase = progress.get("phase") or "?"
    parts = [f"{phase:<15}"]
    current = next((m for m in (progress.get("maps") or {}).values() if m.get("state") == phase), None)
    if current:
        parts.append(bar(current["batches_done"], current["batches_total"]))
        parts.append(f"batches {current['batches_done']}/{current['batches_total']}")
        parts.append(f"{current['what']} {current['items_done']}/{current['items_total']}")
    parts.append(f"elapsed {seconds(progress.get('elapsed_s'))}")
    if progress.get("eta_s") is not None:
        parts.append(f"ETA {seconds(progress['eta_s'])}")
    return "  ".join(parts)


def status_text(status: Mapping[str, Any]) -> str:
    lines = []
    current = status.get("current_execution")
    if current:
        kind = "dry run" if current.get("dry_run") else "run"
        lines.append(f"running: {kind} {current.get('run_id')} since {current.get('started_at')}")
        lines.append("  " + progress_line(current.get("progress")))
    else:
        lines.append("idle" + ("" if status.get("enabled", True) else " (reconciler.enabled is false)"))
    lines.append(f"last run: {status.get('last_run_status') or 'none'} at {status.get('last_run_time') or '-'} "
                 f"in {status.get('last_run_duration')}; instances found {status.get('instances_found')}, "
                 f"synced {status.get('instances_synced')}")
    lines.append(f"next run: {status.get('next_run_time') or '-'}")
    orphans = status.get("orphans") or {}
    lines.append("findings: " + ", ".join(f"{kind_label(k)} {v}" for k, v in orphans.items()))
    apis = status.get("apis") or {}
    if apis:
        lines.append("circuits: " + ", ".join(f"{name} {state.get('circuit')}" for name, state in apis.items()))
    totals = status.get("totals") or {}
    lines.append(f"runs: {totals.get('runs', 0)} ({totals.get('successful', 0)} ok, {totals.get('failed', 0)} failed)")
    errors = status.get("errors") or []
    if errors:
        lines.append(f"recent errors ({len(errors)}):")
        lines += [f"  {e.get('time')}  {e.get('phase')}  {e.get('target')}: {e.get('message')}" for e in errors[:5]]
    return "\n".join(lines)


def kind_label(kind: str) -> str:
    try:
        return FindingKind(kind).label
    except ValueError:
        return kind


def runs_table(runs: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for r in runs:
        figures = r.get("figures") or {}
        rows.append([r.get("run_id"), r.get("status"), "dry" if r.get("dry_run") else "", r.get("started_at"),
                     seconds(r.get("duration_s")), figures.get("instances_found", "-"),
                     figures.get("instances_synced", "-"), figures.get("errors", "-")])
    return table(["RUN", "STATUS", "DRY", "STARTED", "DURATION", "FOUND", "SYNCED", "ERRORS"], rows)


def run_text(run: Mapping[str, Any]) -> str:
    figures = run.get("figures") or {}
    lines = [f"run {run.get('run_id')}: {run.get('status')}{' (dry run)' if run.get('dry_run') else ''}",
             f"  started {run.get('started_at')}, finished {run.get('finished_at') or '-'}, "
             f"duration {seconds(run.get('duration_s'))}, source {run.get('source')}, forced {run.get('forced')}"]
    if run.get("error"):
        lines.append(f"  error: {run['error'].get('error')}: {run['error'].get('message')}")
    flat = {k: v for k, v in figures.items() if not isinstance(v, dict)}
    if flat:
        lines.append("  figures: " + ", ".join(f"{k} {v}" for k, v in sorted(flat.items())))
    if run.get("phase_durations"):
        lines.append("  phases: " + ", ".join(f"{p['phase']} {seconds(p.get('duration_s'))}"
                                              for p in run["phase_durations"]))
    if run.get("plan"):
        lines.append("  plan: " + plan_counts(run["plan"]))
    return "\n".join(lines)


def plan_counts(summary: Mapping[str, Any]) -> str:
    actions = summary.get("actions") or {}
    text = f"{summary.get('instances', 0)} instance(s)"
    if actions:
        text += ": " + ", ".join(f"{k} {v}" for k, v in actions.items())
    return text


def findings_text(orphans: Mapping[str, Mapping[str, Any]], now: datetime | None = None) -> str:
    out = []
    for kind in FindingKind:
        entries = orphans.get(kind.value) or {}
        out.append(f"{kind.label}: {len(entries)} ({kind.description})")
        if entries:
            rows = [[e.get(kind.spec.key_field) or key, e.get("foundation") or "-", e.get("director") or "-",
                     e.get("first_seen"), age(e.get("first_seen"), now), e.get("checks"), e.get("reason") or ""]
                    for key, e in sorted(entries.items())]
            head = ["ID", "FOUNDATION", "DIRECTOR", "FIRST SEEN", "AGE", "CHECKS", "REASON"]
            out.append("\n".join("  " + line for line in table(head, rows).splitlines()))
    return "\n".join(out)


def value(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str) if not isinstance(v, str) else json.dumps(v)


def plan_text(plan: Mapping[str, Any]) -> str:
    """A plan as a diff: ``+`` created, ``~`` updated, ``-`` removed, ``>`` migrated."""
    kind = "plan (dry run)" if plan.get("dry_run") else "changes"
    lines = [f"{kind} of run {plan.get('run_id')}: " + plan_counts(plan.get("summary") or {})]
    for row in plan.get("instances") or []:
        lines.append(f"instance {row['instance_id']}")
        for action in row["actions"]:
            extra = " (secret: values hidden)" if action.get("secret") else ""
            lines.append(f"  {SIGN.get(action['action'], '?')} {action['action']:<14} {action['path']}{extra}")
            for f in action.get("fields") or []:
                lines.append("      " + field_line(f))
    index = plan.get("index")
    if index:
        lines.append(f"index {index['path']}")
        for entry in index.get("entries") or []:
            sign = {"added": "+", "removed": "-"}.get(entry["change"], "~")
            lines.append(f"  {sign} {entry['key']} {entry['change']}")
            for f in entry.get("fields") or []:
                lines.append("      " + field_line(f))
    for note in plan.get("notes") or []:
        lines.append(f"note: {note}")
    if plan.get("truncated"):
        lines.append(f"note: {plan['truncated']['instances_left_out']} more instance(s) not listed")
    return "\n".join(lines)


def field_line(f: Mapping[str, Any]) -> str:
    change = f["change"]
    sign = {"added": "+", "removed": "-", "changed": "~", "unchanged": "="}.get(change, "?")
    if "before" in f or "after" in f:
        before = value(f["before"]) if "before" in f else "(none)"
        after = value(f["after"]) if "after" in f else "(none)"
        return f"{sign} {f['field']}: {before} -> {after}"
    return f"{sign} {f['field']} {change}"


def iso(ts: Any) -> str | None:
    """Unix seconds as ISO-8601 UTC."""
    if not isinstance(ts, int | float):
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def backup_text(info: Mapping[str, Any]) -> str:
    lines = [f"backup {info['sha256']} of instance {info['instance_id']} ({info['format']}, {iso(info['timestamp'])})"]
    for p in info["paths"]:
        if p["secret"]:
            lines.append(f"  {p['path']} (secret: values hidden): {', '.join(p['keys'])}")
        else:
            lines.append(f"  {p['path']}: " + ", ".join(f"{k}={value(v)}" for k, v in (p.get("values") or {}).items()))
    if info.get("index_entry") is not None:
        lines.append("  index entry: " + value(info["index_entry"]))
    return "\n".join(lines)


def restore_diff_text(diff: Mapping[str, Any]) -> str:
    if not diff["would_restore"]:
        return f"nothing to restore: Vault already equals backup {diff['sha256'][:12]} for every path"
    lines = [plan_text(diff["plan"]).split("\n", 1)[-1]]
    lines.insert(0, f"restoring {diff['instance_id']} from {diff['sha256'][:12]} would write "
                    f"{len(diff['would_restore'])} path(s); {len(diff['unchanged'])} already equal")
    if diff["extra_paths"]:
        lines.append(f"left as they are (not in the backup): {', '.join(diff['extra_paths'])}")
    return "\n".join(lines)


def restore_text(result: Mapping[str, Any]) -> str:
    lines = [f"restored {len(result['restored'])} path(s) of {result['instance_id']} from {result['sha256'][:12]}; "
             f"{len(result['unchanged'])} already equal; current state backed up first as "
             f"{(result['pre_restore_backup'] or 'none')[:12]}"]
    if result["verified"]:
        lines.append(f"verified: Vault equals the backup for all {result['verified_paths']} path(s)")
    else:
        lines.append(f"NOT verified: {len(result['differ'])} path(s) differ from the backup after the restore: "
                     + ", ".join(result["differ"]))
    return "\n".join(lines)


def doctor_text(report: Mapping[str, Any]) -> str:
    lines = []
    for c in report["checks"]:
        mark = "ok  " if c["ok"] else "FAIL"
        line = f"{mark} {c['name']}: {c['detail']}"
        if not c["ok"] and c.get("fix"):
            line += f" -> fix: {c['fix']}"
        lines.append(line)
    failed = sum(not c["ok"] for c in report["checks"])
    lines.append("all checks passed" if not failed else f"{failed} check(s) failed")
    return "\n".join(lines)
