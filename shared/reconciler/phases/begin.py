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
from ..errors import InvalidInput, RunLocked
from . import chain, contracts, runtime
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


CONTINUE_KEYS = {"continue", "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID"}  # Handover's input (and AWS's lineage key)


def run(event: dict[str, Any], context: Any, deps: Deps) -> dict[str, Any]:
    begin = contracts.parse(contracts.BeginInput, event, "input", "execution_arn", "started_at")
    raw_input, execution_arn, started_at = begin.input, begin.execution_arn, begin.started_at
    if isinstance(raw_input, dict) and "continue" in raw_input:
        return continue_run(raw_input, execution_arn, started_at, deps)
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
        "chain": chain.execution_info(run_id, 1, started_at),
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


def continue_run(raw: dict[str, Any], execution_arn: str, started_at: str, deps: Deps) -> dict[str, Any]:
    """A follow-up execution of a run (continue-as-new: ``Handover``'s input
    ``{"continue": <the state>}``): no new lock, no new run record. The run's lock must still be
    its own (renewed for this execution's lease); the phase that was cut short goes on with its
    next window. Returns the whole state (``run.chain.resume`` says where the state machine goes on)."""
    unknown = set(raw) - CONTINUE_KEYS
    if unknown:
        raise InvalidInput(f"continue: unknown key(s) {sorted(unknown)} beside it")
    state = raw["continue"]
    if not isinstance(state, dict):
        raise InvalidInput("continue: the state of the execution that handed over (a JSON object) is accepted")
    contracts.parse(contracts.Run, state.get("run"), "run_id", "chain")
    run = dict(state["run"])
    run_id = str(run["run_id"])
    n = int((run.get("chain") or {}).get("execution") or 0) + 1
    if n < 2:
        raise InvalidInput("continue: run.chain.execution must be the number of the execution that handed over")
    s, store = deps.settings, deps.store
    lock = store.current_lock() or {}
    if lock.get("run_id") != run_id:
        raise ChainBroken(f"run {run_id} does not hold the reconcile lock any more (holder: "
                          f"{lock.get('run_id') or 'none'}); its execution {n} stops here")
    lease = float(deps.environ.get("RUN_TIMEOUT_SECONDS") or s.reconciler.timeouts.reconciliation_run)
    try:
        store.renew_lock(run_id, lease)  # this execution's own run timeout
    except RunLocked as exc:
        raise ChainBroken(f"run {run_id}: {exc}") from None
    out = chain.resume(s, {**state, "run": {**run, "chain": chain.execution_info(run_id, n, started_at)}},
                       store.get_metrics() or {})
    store.update_run(run_id, executions=n, last_execution_arn=execution_arn)
    phase = out["run"]["chain"]["resume"]
    part = out["match"] if phase == "apply" else out["sources"]["bosh"]
    log.info("run %s: execution %d goes on with %s batches %s (of %d)", run_id, n, phase,
             _span(part["batches"]), chain.batch_count(part))
    return out


def _span(batches: list[int]) -> str:
    return f"{batches[0]}..{batches[-1]}" if batches else "none"


class ChainBroken(InvalidInput):
    """A follow-up execution whose run no longer holds the lock (or whose state is not a run's):
    RecordFailure ends the run honestly."""
