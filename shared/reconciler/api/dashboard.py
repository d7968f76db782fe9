"""The dashboard page: one self-contained HTML document (no external assets, works
offline), rendered server-side from the same documents the JSON endpoints serve.
Every value is escaped: instance and deployment names arrive from CF and BOSH."""

from __future__ import annotations

import math
from collections.abc import Mapping
from html import escape
from typing import Any

from ..domain.findings import FindingKind

CHART_RUNS = 20

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f5f6f8;color:#1d232a}
header{background:#1d3557;color:#fff;padding:14px 24px}h1{font-size:20px;margin:0}
main{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:16px;padding:16px 24px}
section{background:#fff;border-radius:8px;padding:14px 18px;box-shadow:0 1px 3px rgba(0,0,0,.12)}
h2{font-size:15px;margin:0 0 10px}table{border-collapse:collapse;width:100%;font-size:13px}
td,th{text-align:left;padding:4px 6px;border-bottom:1px solid #eceef1;vertical-align:top}
.ok{color:#1a7f37}.bad{color:#c62828}.warn{color:#b26a00}.mono{font-family:ui-monospace,monospace;font-size:12px}
.pill{display:inline-block;border-radius:10px;padding:1px 8px;font-size:12px;background:#eceef1}
svg text{font-size:10px;fill:#555}
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _seconds(value: Any) -> str:
    return "" if value is None else f"{float(value):.1f}s"


def _state_class(state: str | None) -> str:
    return {"closed": "ok", "SUCCEEDED": "ok", "succeeded": "ok", "open": "bad", "FAILED": "bad",
            "failed": "bad", "half_open": "warn", "half-open": "warn"}.get(state or "", "")


def _chart(runs: list[Mapping[str, Any]]) -> str:
    done = [r for r in runs if r.get("duration_s") is not None][:CHART_RUNS][::-1]
    if not done:
        return '<p id="no-runs">No finished runs yet.</p>'
    width, height, pad = 300, 120, 18
    top = max(float(r["duration_s"]) for r in done) or 1.0
    bar = (width - pad) / len(done)
    parts = [f'<svg id="duration-chart" role="img" aria-label="Run durations" viewBox="0 0 {width} {height + pad}" '
             f'width="100%" height="{height + pad}">']
    for i, run in enumerate(done):
        h = max(1.0, float(run["duration_s"]) / top * height)
        color = "#1a7f37" if str(run.get("status", "")).lower() == "succeeded" else "#c62828"
        parts.append(f'<rect x="{pad + i * bar + 1:.1f}" y="{height - h:.1f}" width="{max(bar - 2, 1):.1f}" '
                     f'height="{h:.1f}" fill="{color}"><title>{_e(run.get("run_id"))}: '
                     f'{float(run["duration_s"]):.1f}s</title></rect>')
    parts.append(f'<text x="0" y="10">{top:.0f}s</text><text x="0" y="{height}">0</text></svg>')
    return "".join(parts)


def render_dashboard(status: Mapping[str, Any], runs: list[Mapping[str, Any]],
                     orphans: Mapping[str, Mapping[str, Any]], refresh_s: float = 30) -> str:
    """The page; it reloads itself every ``refresh_s`` seconds (``metrics.collection_interval``)."""
    running = status.get("running")
    current = status.get("current_execution") or {}
    rows_runs = "".join(
        f'<tr><td class="mono">{_e(r.get("run_id"))}</td><td class="{_state_class(r.get("status"))}">'
        f'{_e(r.get("status"))}</td><td>{_e(r.get("started_at"))}</td><td>{_seconds(r.get("duration_s"))}</td></tr>'
        for r in runs[:CHART_RUNS]
    ) or '<tr><td colspan="4">No runs yet.</td></tr>'
    rows_orphans = "".join(
        f'<tr><td><span class="pill">{_e(kind)}</span></td><td class="mono">{_e(oid)}</td>'
        f'<td>{_e(info.get("first_seen"))}</td><td>{_e(info.get("checks"))}</td>'
        f'<td class="detail">{_e(info.get("reason") or "")}</td></tr>'
        for kind in FindingKind for oid, info in sorted((orphans.get(kind.value) or {}).items())
    ) or '<tr><td colspan="5">No findings.</td></tr>'
    rows_apis = "".join(
        f'<tr><td>{_e(api)}</td><td class="{_state_class(info.get("circuit"))}">{_e(info.get("circuit"))}</td></tr>'
        for api, info in (status.get("apis") or {}).items()
    ) or '<tr><td colspan="2">No API calls recorded yet.</td></tr>'
    errors = "".join(
        f'<tr><td>{_e(e.get("phase"))}</td><td class="mono">{_e(e.get("target"))}</td>'
        f'<td>{_e(e.get("message"))}</td></tr>'
        for e in (status.get("errors") or [])[:10]
    ) or '<tr><td colspan="3">No recent errors.</td></tr>'
    counts = status.get("orphans") or {}
    heading = ", ".join(f"{kind.label} {_e(counts.get(kind.value, 0))}" for kind in FindingKind)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="refresh" content="{max(1, math.ceil(refresh_s))}">
<title>Blacksmith Reconciler</title><style>{_STYLE}</style></head>
<body><header><h1>Blacksmith Deployment Reconciler</h1></header><main>
<section id="status"><h2>Status</h2><table>
<tr><th>State</th><td id="state" class="{'warn' if running else 'ok'}">{'Running' if running else 'Idle'}</td></tr>
<tr><th>Current phase</th><td id="phase">{_e(current.get('phase') or '-')}</td></tr>
<tr><th>Last run</th><td id="last-run">{_e(status.get('last_run_time') or 'never')}
 ({_e(status.get('last_run_status') or '-')}, {_e(status.get('last_run_duration'))})</td></tr>
<tr><th>Instances found</th><td id="instances-found">{_e(status.get('instances_found'))}</td></tr>
<tr><th>Instances synced</th><td id="instances-synced">{_e(status.get('instances_synced'))}</td></tr>
<tr><th>Next run</th><td id="next-run">{_e(status.get('next_run_time') or '-')}</td></tr>
</table></section>
<section id="runs"><h2>Last runs</h2>{_chart(runs)}<table><tr><th>Run</th><th>Status</th><th>Started</th>
<th>Duration</th></tr>{rows_runs}</table></section>
<section id="orphans"><h2>Orphans and findings: {heading}</h2>
<table><tr><th>Type</th><th>Id</th><th>First seen</th><th>Checks</th><th>Detail</th></tr>
{rows_orphans}</table></section>
<section id="apis"><h2>API health</h2><table><tr><th>API</th><th>Circuit</th></tr>{rows_apis}</table></section>
<section id="errors"><h2>Recent errors</h2><table><tr><th>Phase</th><th>Target</th><th>Message</th></tr>
{errors}</table></section>
</main></body></html>"""
