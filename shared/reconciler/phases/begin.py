"""Begin: take the single-flight run lock, record the run, clear the cache on a forced run.

Returns ``{"run": {...}}``: the small run context every later state reads (run id, limits
for the Map states, timeouts for ``TimeoutSecondsPath``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from .. import progress
from ..config import config_warnings
from ..config.effects import deployment_drift
from ..domain import is_uuid
from ..errors import InvalidInput
from . import contracts, runtime
from .deps import Deps

log = logging.getLogger("reconciler.phases.begin")
INPUT_KEYS = {"source", "forced", "force", "selection", "requested_at", "dry_run"}
MAX_SELECTED = 1000


def _selection(raw: Any) -> dict[str, list[str]] | None:
    if raw in (None, {}):
        return None
    if not isinstance(raw, dict) or set(raw) - {"instances", "services"}:
        raise InvalidInput('selection: accepted is {"instances": [instance UUIDs], "services": [service ids]}')
    out: dict[str, list[str]] = {}
    for key in ("instances", "services"):
        values = raw.get(key) or []
        if not isinstance(values, list) or len(values) > MAX_SELECTED or not all(isinstance(v, str) for v in values):
            raise InvalidInput(f"selection.{key}: a list of at most {MAX_SELECTED} strings is accepted")
        if key == "instances":
            bad = [v for v in values if not is_uuid(v)]
            if bad:
                raise InvalidInput(f"selection.instances: {bad[:3]} are not UUIDs")
            values = [v.lower() for v in values]
        out[key] = values
    return out if any(out.values()) else None


def parse_input(raw: Any) -> dict[str, Any]:
    """The execution input (scheduler, API or console): ``{source, forced|force, selection, dry_run}``.
    ``dry_run``: every phase runs up to the plan; nothing is written to Vault (see reconciler.plans)."""
    raw = raw or {}
    if not isinstance(raw, dict):
        raise InvalidInput("execution input: a JSON object is accepted, e.g. {\"forced\": true}")
    unknown = set(raw) - INPUT_KEYS
    if unknown:
        raise InvalidInput(f"execution input: unknown key(s) {sorted(unknown)}; accepted: {sorted(INPUT_KEYS)}")
    forced = raw.get("forced", raw.get("force", False))
    if not isinstance(forced, bool):
        raise InvalidInput("execution input: forced must be true or false")
    dry_run = raw.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise InvalidInput("execution input: dry_run must be true or false")
    return {"source": str(raw.get("source") or "console")[:40], "forced": forced,
            "selection": _selection(raw.get("selection")), "dry_run": dry_run}


def run_warnings(s: Any, environ: Mapping[str, str]) -> list[str]:
    """Logged at every run: the configuration's warnings (TLS off, keys without effect ...)
    and deploy-time parameters that no longer match the configuration."""
    found = [*config_warnings(s), *deployment_drift(s, environ)]
    for message in found:
        log.warning("configuration: %s", message)
    return found


def run(event: dict[str, Any], context: Any, deps: Deps) -> dict[str, Any]:
    begin = contracts.parse(contracts.BeginInput, event, "input", "execution_arn", "started_at")
    raw_input, execution_arn, started_at = begin.input, begin.execution_arn, begin.started_at
    request = parse_input(raw_input)
    s = deps.settings
    rc = s.reconciler
    run_id = execution_arn.rsplit(":", 1)[-1]
    if not rc.enabled and request["source"] == "schedule" and not request["forced"]:
        # reconciler.enabled is false: the schedule may still fire (deployed before the change)
        log.info("run %s not started: reconciler.enabled is false (scheduled run); forced runs still work", run_id)
        return {"run": {"run_id": run_id, "execution_arn": execution_arn, "started_at": started_at,
                        "disabled": True, "reason": "reconciler.enabled is false"}}
    warnings = run_warnings(s, deps.environ)
    store = deps.store
    lease = float(deps.environ.get("RUN_TIMEOUT_SECONDS") or rc.timeouts.reconciliation_run)
    store.acquire_lock(run_id, execution_arn, lease)  # RunLocked: the state machine refuses this run
    try:
        cleared = store.clear_cache() if request["forced"] else 0
        store.put_run({"run_id": run_id, "execution_arn": execution_arn, "status": "running", "phase": "Begin",
                       "started_at": started_at, "forced": request["forced"], "source": request["source"],
                       "selection": request["selection"], "dry_run": request["dry_run"], "figures": {},
                       "warnings": warnings[:20]})
    except Exception:
        store.release_lock(run_id)
        raise
    progress.phase_started(store, run_id, "Begin")
    log.info("run %s started (%s, forced=%s, dry_run=%s, cache entries cleared=%d)", run_id, request["source"],
             request["forced"], request["dry_run"], cleared)
    return {"run": {
        "run_id": run_id,
        "execution_arn": execution_arn,
        "started_at": started_at,
        "forced": request["forced"],
        "selection": request["selection"],
        "dry_run": request["dry_run"],
        "cache_cleared": cleared,
        "disabled": False,
        # Map MaxConcurrency: batches in flight; each batch works on up to concurrency.max_concurrent items
        "limits": {"scan_concurrency": runtime.map_concurrency(s), "apply_concurrency": runtime.map_concurrency(s),
                   # the early apply beside the scan: a selection's run keeps the phases in sequence
                   "overlap": bool(s.reconciler.concurrency.overlap_phases) and not request["selection"]},
        "timeouts": {"instance_discovery": runtime.whole_seconds(rc.timeouts.instance_discovery),
                     "deployment_scan": runtime.whole_seconds(rc.timeouts.deployment_scan),
                     "vault_operations": runtime.whole_seconds(rc.timeouts.vault_operations)},
    }}
