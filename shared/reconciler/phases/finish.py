"""Finish: the run's figures, metrics (DynamoDB + EMF), the run record; release the lock.

The execution's output is this phase's summary: what each phase found and did.
"""

from __future__ import annotations

import logging
from typing import Any

from .. import observability
from . import runtime
from .record_failure import _duration

log = logging.getLogger("reconciler.phases.finish")

SUMMED = ("scanned", "scan_failed", "cache_hits", "cache_misses", "instances", "instances_written",
          "instances_unchanged", "instances_failed", "writes", "backups_written", "credentials_recovered",
          "credentials_unrecoverable", "credentials_pending", "busy_ms", "items", "legacy_migrated",
          "backups_removed", "instances_in_flight", "history_converted")


def gather(store: Any, run_id: str, prefix: str, batches: int) -> dict[str, int]:
    """Sum the per-batch figures the Map iterations left in scratch (a missing batch failed)."""
    totals: dict[str, int] = {"batches": batches, "batches_missing": 0}
    for i in range(batches):
        figures = store.get_scratch(run_id, f"{prefix}#{i}#figures")
        if figures is None:
            totals["batches_missing"] += 1
            continue
        for key, value in figures.items():
            if key in SUMMED and isinstance(value, int | float):
                totals[key] = totals.get(key, 0) + int(value)
    return totals


def item_times(**phases: dict[str, int]) -> dict[str, float]:
    """``<phase>_ms_per_item`` of this run, what the next run sizes its batches by
    (``batch.adaptive_scaling``); a phase that did nothing keeps its previous figure."""
    return {f"{name}_ms_per_item": round(f["busy_ms"] / f["items"], 1)
            for name, f in phases.items() if f.get("items") and f.get("busy_ms") is not None}


def run(event: dict[str, Any], context: Any) -> dict[str, Any]:
    (run,) = runtime.require(event, "run")
    store = runtime.store()
    run_id = run["run_id"]
    sources = event.get("sources") or {}
    match = event.get("match") or {}
    cf, bosh = sources.get("cf") or {}, sources.get("bosh") or {}
    scan = gather(store, run_id, "scan", len(bosh.get("batches") or []))
    apply = gather(store, run_id, "apply", len(match.get("batches") or []))
    duration = _duration(run.get("started_at")) or 0.0
    errors = scan.get("scan_failed", 0) + scan["batches_missing"] + apply.get("instances_failed", 0) \
        + apply["batches_missing"] + sum(1 for src in (cf, bosh) if src.get("status") == "failed")
    summary = {
        "run_id": run_id,
        "status": "succeeded" if not errors else "succeeded_with_errors",
        "forced": run.get("forced", False),
        "selection": run.get("selection"),
        "duration_s": duration,
        "phases": {
            "discover_cf": cf,
            "discover_bosh": {k: v for k, v in bosh.items() if k != "batches"} | {
                "batches": len(bosh.get("batches") or [])},
            "scan": scan,
            "match": {k: v for k, v in match.items() if k != "batches"} | {"batches": len(match.get("batches") or [])},
            "apply": apply,
            "sync_index": event.get("index") or {},
            "orphans": event.get("orphans") or {},
        },
        "errors": errors,
    }
    for name, src in (("CF", cf), ("BOSH", bosh)):
        if src.get("status") == "failed" and not src.get("recorded"):  # a discovery that raised (Pass state)
            store.record_error(run_id, f"Discover{'CF' if name == 'CF' else 'Bosh'}", name.lower(),
                               f"{src.get('error') or 'failed'}: {name} did not answer; this run went on without it")
    synced = apply.get("instances_written", 0) + apply.get("instances_unchanged", 0)
    orphan_counts = (event.get("orphans") or {}).get("orphans") or {}
    # the run's figures (the spec's Metrics, per run): the store's totals, the run record, EMF
    figures = {
        "deployments": int(bosh.get("deployments") or 0), "instances_found": int(cf.get("instances") or 0),
        "instances_synced": int(synced), "errors": errors, "backups_written": int(apply.get("backups_written", 0)),
        "cache_hits": int(scan.get("cache_hits", 0)), "cache_misses": int(scan.get("cache_misses", 0)),
        "credentials_recovered": int(apply.get("credentials_recovered", 0)),
        **{f"orphans_{kind}": int(orphan_counts[kind]) for kind in ("cf", "bosh", "vault") if kind in orphan_counts},
    }
    store.add_metrics(runs_total=1, runs_successful=1, duration_total_s=duration,
                      deployments_total=figures["deployments"], instances_found_total=figures["instances_found"],
                      instances_synced_total=figures["instances_synced"], errors_total=errors,
                      backups_written_total=figures["backups_written"], cache_hits_total=figures["cache_hits"],
                      cache_misses_total=figures["cache_misses"])
    store.set_metrics(last_run_duration_s=duration, last_run_time=runtime.now_iso(), last_run_id=run_id,
                      last_run_status=summary["status"])
    store.observe_run_duration(duration)
    store.set_metrics(**item_times(scan=scan, apply=apply))
    if runtime.metrics_enabled():
        observability.emit_run_metrics({"run_id": run_id, "runs": 1, "runs_successful": 1, "runs_failed": 0,
                                        "duration_s": duration, **figures}, status=summary["status"])
    store.update_run(run_id, status=summary["status"], phase="Finish", finished_at=runtime.now_iso(),
                     duration_s=duration, figures={**summary["phases"], **figures})
    store.release_lock(run_id)
    log.info("run %s finished: %s in %.1fs", run_id, summary["status"], duration)
    return summary
