"""RecordFailure: a failed batch (recorded, skipped) or a failed run (recorded, lock released).

Error causes come from our own exceptions, whose messages never carry a secret; they are
trimmed and stored in the bounded error list.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from typing import Any

from .. import observability, progress
from ..notify import notify_run
from . import contracts, runtime
from .deps import Deps

log = logging.getLogger("reconciler.phases.record_failure")


def describe(error: Any) -> tuple[str, str]:
    """(error name, message) from a Catch's ``{"Error", "Cause"}``; Lambda causes are JSON."""
    if not isinstance(error, dict):
        return "Unknown", ""
    name = str(error.get("Error") or "Unknown")
    cause = error.get("Cause") or ""
    try:
        parsed = json.loads(cause)
        if isinstance(parsed, dict) and "errorMessage" in parsed:
            cause = parsed["errorMessage"]
    except (TypeError, ValueError):
        pass
    return name, str(cause)[:1000]


def run(event: dict[str, Any], context: Any, deps: Deps) -> dict[str, Any]:
    store = deps.store
    if event.get("scope") == "batch":
        name, message = describe(event.get("error"))
        target = f"batch {event.get('batch')}"
        store.record_error(event.get("run_id", "?"), event.get("phase", "?"), target, f"{name}: {message}")
        if event.get("phase") == "scan" and isinstance(event.get("batch"), int):  # an early apply waiting stops
            store.put_scratch(event.get("run_id", "?"), contracts.scan_failed(event["batch"]), {"failed": True},
                              runtime.SCRATCH_TTL_MIN_S * 24)
        log.warning("%s %s failed and was skipped: %s", event.get("phase"), target, name)
        return {"recorded": True, "batch": event.get("batch")}

    state = event.get("state") or {}
    run = state.get("run") or continued_run(state)
    run_id = run.get("run_id") or str(event.get("execution_arn", "?")).rsplit(":", 1)[-1]
    name, message = describe(state.get("error"))
    phase = "Discover" if name == "NoSourceAvailable" else _failed_phase(state)
    store.record_error(run_id, phase, "run", f"{name}: {message}")
    store.add_metrics(runs_total=1, runs_failed=1, errors_total=1)
    duration = None
    if run:
        duration = duration_since(run.get("started_at"))
        progress.finished(store, run_id, "failed")
        try:
            store.update_run(run_id, status="failed", phase=phase, finished_at=runtime.now_iso(),
                             duration_s=duration, error={"error": name, "message": message[:500]},
                             phase_durations=progress.phase_durations(progress.read(store, run_id) or {}))
        except Exception as exc:  # the run record may be missing; the error list has it
            log.warning("could not update run %s: %s", run_id, type(exc).__name__)
        store.release_lock(run_id)
    log.error("run %s failed in %s: %s", run_id, phase, name)
    try:
        settings = deps.settings
    except Exception:  # noqa: BLE001 - the failure may be the configuration itself: no webhooks to read
        settings = None
    if settings is not None:
        notify_run(settings, store, run_id, status="failed", update=None, figures={},
                   breakers=store.get_breaker_states(), error={"error": name, "message": message, "phase": phase})
    if deps.metrics_enabled():
        observability.emit_run_metrics({"run_id": run_id, "runs": 1, "runs_successful": 0, "runs_failed": 1,
                                        "errors": 1, **({"duration_s": duration} if duration is not None else {})},
                                       status="failed")
    # The state machine puts this in $.error, which RunFailed reports: the error name and our
    # message, not the Lambda cause's JSON with its stack trace.
    return {"Error": name, "Cause": message, "recorded": True, "run_id": run_id, "phase": phase,
            "duration_s": duration}


def continued_run(state: dict[str, Any]) -> dict[str, Any]:
    """A follow-up execution whose Begin failed (continue-as-new): the run of the state it was
    handed (``input.continue.run``), so the chain's run is the one that ends failed."""
    given = state.get("input")
    carried = given.get("continue") if isinstance(given, dict) else None
    run = carried.get("run") if isinstance(carried, dict) else None
    return run if isinstance(run, dict) and isinstance(run.get("run_id"), str) else {}


def _failed_phase(state: dict[str, Any]) -> str:
    """Where the run stopped: the phase after the last result the state holds."""
    if "run" not in state:
        return "Begin"
    for key, phase in (("orphans", "Finish"), ("index", "Orphans"), ("match", "UpdateVault/SyncIndex"),
                       ("sources", "ScanDeployments/Match")):
        if key in state:
            return phase
    return "Discover"


def duration_since(started_at: Any) -> float | None:
    if not isinstance(started_at, str):
        return None
    try:
        start = datetime.fromisoformat(started_at.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
    return round(max(0.0, time.time() - start), 3)
