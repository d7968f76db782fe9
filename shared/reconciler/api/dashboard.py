"""The dashboard page: one self-contained HTML document (no external assets, works
offline), rendered server-side from the same documents the JSON endpoints serve.
Every value is escaped: instance and deployment names arrive from CF and BOSH.

What it shows: the live phase and progress of a running run; run history with per-phase
durations (a chart that scales from 1 run to 200: bars keep a readable width and the chart
scrolls sideways); findings of every kind with their first-seen age, filterable by kind and
text; a run's details, plan or changes (``?run=<id>``); "Run now" and "Dry run" buttons that
POST ``/b/reconcile`` with the page's own credentials (the Function URL stays AWS_IAM: open the
page through a SigV4-signing proxy). Ids link to their details. Responsive from 390 px wide up:
cells wrap long ids instead of overflowing, and wide tables scroll inside their card.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import quote

from ..domain.findings import FindingKind

CHART_RUNS = 200
TABLE_RUNS = 20
PHASE_COLORS = {"Begin": "#6c757d", "Discover": "#1f77b4", "ScanDeployments": "#17becf", "Match": "#9467bd",
                "UpdateVault": "#ff7f0e", "SyncIndex": "#2ca02c", "Orphans": "#bcbd22", "Finish": "#8c564b"}
SIGN = {"create": "+", "update": "~", "write": "~", "backup": "+", "restamp_backup": "~", "migrate": ">",
        "delete_backup": "-", "delete": "-", "update_index": "~"}

_STYLE = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f5f6f8;color:#1d232a}
header{background:#1d3557;color:#fff;padding:12px 16px;display:flex;flex-wrap:wrap;gap:8px 16px;align-items:center}
h1{font-size:19px;margin:0;flex:1 1 auto}header a{color:#fff}
button{font:inherit;border:0;border-radius:6px;padding:6px 12px;cursor:pointer;background:#e9ecef;color:#1d232a}
button.primary{background:#2a9d8f;color:#fff}#action-result{font-size:13px;flex-basis:100%}
main{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,340px),1fr));gap:14px;padding:14px}
section{background:#fff;border-radius:8px;padding:12px 14px;box-shadow:0 1px 3px rgba(0,0,0,.12);min-width:0}
section.wide{grid-column:1/-1}
h2{font-size:15px;margin:0 0 10px}.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;width:100%;font-size:13px}
td,th{text-align:left;padding:4px 6px;border-bottom:1px solid #eceef1;vertical-align:top;overflow-wrap:anywhere}
th{white-space:nowrap}
.ok{color:#1a7f37}.bad{color:#c62828}.warn{color:#b26a00}.mono{font-family:ui-monospace,monospace;font-size:12px}
.pill{display:inline-block;border-radius:10px;padding:1px 8px;font-size:12px;background:#eceef1;white-space:nowrap}
.bar{height:14px;background:#eceef1;border-radius:7px;overflow:hidden}.bar>div{height:100%;background:#2a9d8f}
.legend{display:flex;flex-wrap:wrap;gap:4px 10px;font-size:12px;margin:6px 0}.legend i{display:inline-block;
width:10px;height:10px;margin-right:4px;border-radius:2px}
.filters{display:flex;flex-wrap:wrap;gap:6px;margin-bottom:8px}.filters input,.filters select{font:inherit;
padding:4px 6px;min-width:0;flex:1 1 140px}
svg text{font-size:10px;fill:#555}a{color:#1d4ed8}
@media (max-width:640px){.stack th{display:none}.stack tr{display:block;border-bottom:1px solid #eceef1;padding:4px 0}
.stack td{display:block;border:0;padding:2px 6px}.stack td[data-label]::before{content:attr(data-label) ": ";
font-weight:600}main{padding:8px;gap:10px}}
"""

_SCRIPT = """
function post(body){var out=document.getElementById('action-result');out.textContent='starting...';
fetch('/b/reconcile',{method:'POST',credentials:'same-origin',headers:{'content-type':'application/json'},
body:JSON.stringify(body)}).then(function(r){return r.json().then(function(j){
out.textContent=r.status===202?('started '+j.run):(r.status+': '+(j.error||''));});})
.catch(function(e){out.textContent='not started: '+e;});}
function filterFindings(){var k=document.getElementById('kind-filter').value,
q=document.getElementById('text-filter').value.toLowerCase(),n=0;
document.querySelectorAll('#findings-table tr[data-kind]').forEach(function(tr){
var show=(!k||tr.dataset.kind===k)&&(!q||tr.textContent.toLowerCase().indexOf(q)>=0);
tr.style.display=show?'':'none';if(show)n++;});document.getElementById('shown').textContent=n;}
document.addEventListener('DOMContentLoaded',function(){var f=document.getElementById('text-filter');
if(f){f.addEventListener('input',filterFindings);document.getElementById('kind-filter')
.addEventListener('change',filterFindings);filterFindings();}
var run=document.getElementById('run-now');if(run)run.addEventListener('click',function(){post({})});
var dry=document.getElementById('dry-run');if(dry)dry.addEventListener('click',function(){post({dry_run:true})});});
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _seconds(value: Any) -> str:
    return "" if value is None else f"{float(value):.1f}s"


def _state_class(state: str | None) -> str:
    return {"closed": "ok", "SUCCEEDED": "ok", "succeeded": "ok", "open": "bad", "FAILED": "bad",
            "failed": "bad", "half_open": "warn", "half-open": "warn", "succeeded_with_errors": "warn",
            "running": "warn"}.get(state or "", "")


def _age(value: Any, now: datetime) -> str:
    if not isinstance(value, str):
        return "-"
    try:
        then = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return "-"
    s = max(0, int((now - then).total_seconds()))
    d, h, m = s // 86400, s % 86400 // 3600, s % 3600 // 60
    return f"{d}d {h}h" if d else f"{h}h {m}m" if h else f"{m}m" if m else f"{s}s"


def _run_link(run_id: Any) -> str:
    return f'<a class="mono" href="?run={quote(str(run_id or ""))}">{_e(run_id)}</a>'


def _id_link(value: Any) -> str:
    return f'<a class="mono" href="?q={quote(str(value or ""))}#findings">{_e(value)}</a>'


def _segments(run: Mapping[str, Any]) -> list[tuple[str, float]]:
    phases = [(p["phase"], float(p["duration_s"])) for p in run.get("phase_durations") or []
              if p.get("duration_s") is not None]
    return phases or [("total", float(run["duration_s"]))]


def _chart(runs: Sequence[Mapping[str, Any]]) -> str:
    """Per-phase stacked bars, oldest left: at least 4 px a bar (the chart scrolls), at most 40."""
    done = [r for r in runs if r.get("duration_s") is not None][:CHART_RUNS][::-1]
    if not done:
        return '<p id="no-runs">No finished runs yet.</p>'
    height, pad = 120, 24
    bar = max(4.0, min(40.0, 600.0 / len(done)))
    width = pad + bar * len(done) + 4
    top = max(sum(d for _, d in _segments(r)) for r in done) or 1.0
    parts = [f'<div class="scroll"><svg id="duration-chart" role="img" aria-label="Run durations by phase" '
             f'viewBox="0 0 {width:.0f} {height + 14}" width="{max(width, 300):.0f}" height="{height + 14}">']
    for i, run in enumerate(done):
        y = float(height)
        for phase, seconds in _segments(run):
            h = max(0.5, seconds / top * height)
            y -= h
            color = PHASE_COLORS.get(phase) or ("#1a7f37" if str(run.get("status", "")).lower() == "succeeded"
                                                 else "#c62828")
            parts.append(f'<rect x="{pad + i * bar + 0.5:.1f}" y="{y:.1f}" width="{max(bar - 1, 1):.1f}" '
                         f'height="{h:.1f}" fill="{color}"><title>{_e(run.get("run_id"))} {_e(phase)}: '
                         f'{seconds:.1f}s</title></rect>')
    parts.append(f'<text x="0" y="10">{top:.0f}s</text><text x="0" y="{height}">0</text>'
                 f'<text x="{pad}" y="{height + 12}">{len(done)} run(s), oldest left</text></svg></div>')
    legend = "".join(f'<span><i style="background:{c}"></i>{p}</span>' for p, c in PHASE_COLORS.items())
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def _progress(current: Mapping[str, Any]) -> str:
    live = current.get("progress") or {}
    if not current:
        return ""
    rows = [f'<tr><th>Run</th><td>{_run_link(current.get("run_id"))}'
            f'{" (dry run)" if current.get("dry_run") else ""}</td></tr>',
            f'<tr><th>Elapsed</th><td id="elapsed">{_seconds(live.get("elapsed_s")) or "-"}'
            f'{", ETA " + _seconds(live["eta_s"]) if live.get("eta_s") is not None else ""}</td></tr>']
    for name, m in (live.get("maps") or {}).items():
        total = max(1, int(m.get("batches_total") or 0))
        share = 100 * int(m.get("batches_done") or 0) / total
        rows.append(f'<tr><th>{_e(m.get("state") or name)}</th><td><div class="bar" id="progress-{_e(name)}">'
                    f'<div style="width:{share:.0f}%"></div></div>batches {_e(m.get("batches_done"))}/'
                    f'{_e(m.get("batches_total"))}, {_e(m.get("what"))} {_e(m.get("items_done"))}/'
                    f'{_e(m.get("items_total"))}</td></tr>')
    return "".join(rows)


def _findings(orphans: Mapping[str, Mapping[str, Any]], now: datetime) -> str:
    rows = "".join(
        f'<tr data-kind="{_e(kind.value)}"><td data-label="Kind"><span class="pill">{_e(kind.label)}</span></td>'
        f'<td data-label="Id">{_id_link(info.get(kind.spec.key_field) or oid)}</td>'
        f'<td data-label="Foundation">{_e(info.get("foundation") or "")}</td>'
        f'<td data-label="Director">{_e(info.get("director") or "")}</td>'
        f'<td data-label="First seen">{_e(info.get("first_seen"))}</td>'
        f'<td data-label="Age">{_age(info.get("first_seen"), now)}</td>'
        f'<td data-label="Checks">{_e(info.get("checks"))}</td>'
        f'<td data-label="Detail" class="detail">{_e(info.get("reason") or "")}</td></tr>'
        for kind in FindingKind for oid, info in sorted((orphans.get(kind.value) or {}).items())
    ) or '<tr><td colspan="8">No findings.</td></tr>'
    options = "".join(f'<option value="{_e(k.value)}">{_e(k.label)}</option>' for k in FindingKind)
    return (f'<div class="filters"><select id="kind-filter" aria-label="kind"><option value="">every kind</option>'
            f'{options}</select><input id="text-filter" placeholder="filter by id or detail" aria-label="filter">'
            f'</div><p class="mono">shown: <span id="shown">-</span></p><div class="scroll">'
            f'<table id="findings-table" class="stack">'
            f'<tr><th>Kind</th><th>Id</th><th>Foundation</th><th>Director</th><th>First seen</th><th>Age</th>'
            f'<th>Checks</th><th>Detail</th></tr>'
            f'{rows}</table></div>')


def _plan_rows(plan: Mapping[str, Any]) -> str:
    rows = []
    for row in plan.get("instances") or []:
        rows.append(f'<tr><td colspan="3">instance {_id_link(row["instance_id"])}</td></tr>')
        for a in row["actions"]:
            fields = "; ".join(
                f'{_e(f["field"])} {_e(f["change"])}' + (f': {_e(f.get("before"))} &rarr; {_e(f.get("after"))}'
                                                         if "before" in f or "after" in f else "")
                for f in a.get("fields") or [])
            secret = " (secret: values hidden)" if a.get("secret") else ""
            rows.append(f'<tr><td data-label="Action" class="mono">{SIGN.get(a["action"], "?")} {_e(a["action"])}</td>'
                        f'<td data-label="Path" class="mono">{_e(a["path"])}{secret}</td>'
                        f'<td data-label="Fields">{fields}</td></tr>')
    index = plan.get("index")
    if index:
        for entry in index.get("entries") or []:
            rows.append(f'<tr><td class="mono">~ update_index</td><td class="mono">{_e(index["path"])} '
                        f'{_e(entry["key"])}</td><td>{_e(entry["change"])}</td></tr>')
    return "".join(rows) or '<tr><td colspan="3">No changes.</td></tr>'


def _run_details(run: Mapping[str, Any] | None, plan: Mapping[str, Any] | None, run_id: str | None) -> str:
    if not run_id:
        return ""
    if run is None:
        return f'<section id="run-details" class="wide"><h2>Run {_e(run_id)}</h2><p>No such run.</p></section>'
    phases = "".join(f'<tr><td>{_e(p["phase"])}</td><td>{_seconds(p.get("duration_s"))}</td></tr>'
                     for p in run.get("phase_durations") or [])
    figures = run.get("figures") or {}
    flat = ", ".join(f"{_e(k)} {_e(v)}" for k, v in sorted(figures.items()) if not isinstance(v, dict | list))
    kind = "Plan (dry run)" if run.get("dry_run") else "Changes"
    body = (f'<p>{_e(run.get("status"))}, started {_e(run.get("started_at"))}, '
            f'{_seconds(run.get("duration_s"))}</p><p class="mono">{flat}</p>'
            f'<div class="scroll"><table><tr><th>Phase</th><th>Duration</th></tr>{phases}</table></div>'
            f'<h2>{kind}</h2>')
    body += (f'<div class="scroll"><table id="plan" class="stack"><tr><th>Action</th><th>Path</th><th>Fields</th></tr>'
             f'{_plan_rows(plan)}</table></div>' if plan else '<p>No plan recorded for this run.</p>')
    return f'<section id="run-details" class="wide"><h2>Run {_e(run_id)}</h2>{body}</section>'


def render_dashboard(status: Mapping[str, Any], runs: list[Mapping[str, Any]],
                     orphans: Mapping[str, Mapping[str, Any]], refresh_s: float = 30, *,
                     selected_run: Mapping[str, Any] | None = None, selected_plan: Mapping[str, Any] | None = None,
                     selected_run_id: str | None = None, query: str = "", now: datetime | None = None) -> str:
    """The page; it reloads itself every ``refresh_s`` seconds (``metrics.collection_interval``),
    every 5 s while a run is going."""
    now = now or datetime.now(UTC)
    running = status.get("running")
    current = status.get("current_execution") or {}
    refresh = min(refresh_s, 5) if running else refresh_s
    rows_runs = "".join(
        f'<tr><td data-label="Run">{_run_link(r.get("run_id"))}</td><td data-label="Status" '
        f'class="{_state_class(r.get("status"))}">{_e(r.get("status"))}{" (dry)" if r.get("dry_run") else ""}</td>'
        f'<td data-label="Started">{_e(r.get("started_at"))}</td>'
        f'<td data-label="Duration">{_seconds(r.get("duration_s"))}</td></tr>'
        for r in runs[:TABLE_RUNS]
    ) or '<tr><td colspan="4">No runs yet.</td></tr>'
    rows_apis = "".join(
        f'<tr><td>{_e(api)}</td><td class="{_state_class(info.get("circuit"))}">{_e(info.get("circuit"))}</td></tr>'
        for api, info in (status.get("apis") or {}).items()
    ) or '<tr><td colspan="2">No API calls recorded yet.</td></tr>'
    errors = "".join(
        f'<tr><td data-label="Phase">{_e(e.get("phase"))}</td><td data-label="Target" class="mono">'
        f'{_e(e.get("target"))}</td><td data-label="Message">{_e(e.get("message"))}</td></tr>'
        for e in (status.get("errors") or [])[:10]
    ) or '<tr><td colspan="3">No recent errors.</td></tr>'
    counts = status.get("orphans") or {}
    heading = ", ".join(f"{kind.label} {_e(counts.get(kind.value, 0))}" for kind in FindingKind)
    findings = _findings(orphans, now).replace('id="text-filter" ', f'id="text-filter" value="{_e(query)}" ')
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="refresh" content="{max(1, math.ceil(refresh))}">
<title>Blacksmith Reconciler</title><style>{_STYLE}</style><script>{_SCRIPT}</script></head>
<body><header><h1><a href="?">Blacksmith Deployment Reconciler</a></h1>
<button id="run-now" class="primary">Run now</button><button id="dry-run">Dry run</button>
<span id="action-result" role="status"></span></header><main>
{_run_details(selected_run, selected_plan, selected_run_id)}
<section id="status"><h2>Status</h2><div class="scroll"><table>
<tr><th>State</th><td id="state" class="{'warn' if running else 'ok'}">{'Running' if running else 'Idle'}</td></tr>
<tr><th>Current phase</th><td id="phase">{_e(current.get('phase') or '-')}</td></tr>
{_progress(current)}
<tr><th>Last run</th><td id="last-run">{_e(status.get('last_run_time') or 'never')}
 ({_e(status.get('last_run_status') or '-')}, {_e(status.get('last_run_duration'))})</td></tr>
<tr><th>Instances found</th><td id="instances-found">{_e(status.get('instances_found'))}</td></tr>
<tr><th>Instances synced</th><td id="instances-synced">{_e(status.get('instances_synced'))}</td></tr>
<tr><th>Next run</th><td id="next-run">{_e(status.get('next_run_time') or '-')}</td></tr>
</table></div></section>
<section id="runs" class="wide"><h2>Runs: duration by phase</h2>{_chart(runs)}<div class="scroll"><table class="stack">
<tr><th>Run</th><th>Status</th><th>Started</th><th>Duration</th></tr>{rows_runs}</table></div></section>
<section id="orphans" class="wide"><h2 id="findings">Orphans and findings: {heading}</h2>{findings}</section>
<section id="apis"><h2>API health</h2><div class="scroll"><table><tr><th>API</th><th>Circuit</th></tr>{rows_apis}
</table></div></section>
<section id="errors"><h2>Recent errors</h2><div class="scroll"><table class="stack"><tr><th>Phase</th><th>Target</th>
<th>Message</th></tr>{errors}</table></div></section>
</main></body></html>"""
