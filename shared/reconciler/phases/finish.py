"""Finish: the run's figures, metrics (DynamoDB + EMF), the run record; release the lock.

The execution's output is this phase's summary: what each phase found and did.
"""

from __future__ import annotations

import logging
from typing import Any

from .. import observability, plans, progress
from ..domain import FindingKind
from ..notify import notify_run
from . import chain, contracts, retry_first, runtime
from .deps import Deps
from .record_failure import duration_since

log = logging.getLogger("reconciler.phases.finish")

SUMMED = ("scanned", "scan_failed", "cache_hits", "revalidated", "cache_misses", "instances", "instances_written",
          "instances_unchanged", "instances_failed", "writes", "backups_written", "credentials_recovered",
          "credentials_unrecoverable", "credentials_pending", "busy_ms", "items", "legacy_migrated",
          "backups_removed", "binding_credentials_restored", "binding_credentials_failed",
          "bindings_need_credential_recovery", "parameters_fetched", "parameters_not_fetched",
          "instances_in_flight", "history_converted", "instances_skipped")


def gather(store: Any, run_id: str, prefix: str, batches: int, failed: list[str] | None = None,
           start: int = 0) -> dict[str, Any]:
    """Sum the per-batch figures the Map iterations left in scratch (a missing batch failed),
    of batches ``start`` to ``batches - 1``; ``plan_parts`` lists the scratch keys of the
    batches' parts of the run's plan; the ids a batch could not reconcile are added to ``failed``."""
    totals: dict[str, Any] = {"batches": batches - start, "batches_missing": 0}
    for i in range(start, batches):
        figures = store.get_scratch(run_id, contracts.batch_figures(prefix, i))
        if figures is None:
            totals["batches_missing"] += 1
            if failed is not None and prefix == "apply":  # its instances: not reconciled, retried first
                items = store.get_scratch(run_id, contracts.apply_items(i)) or []
                failed += [str(item.get("instance_id")) for item in items
                           if isinstance(item, dict) and item.get("instance_id")]
            continue
        if figures.get("plan_parts"):
            totals.setdefault("plan_parts", []).extend(figures["plan_parts"])
        for key, value in figures.items():
            if key in SUMMED and isinstance(value, int | float):
                totals[key] = totals.get(key, 0) + int(value)
        if failed is not None:
            failed += [str(x) for x in figures.get("failed_ids") or []]
    return totals


EARLY_ACCOUNTING = ("instances", "instances_failed", "instances_skipped")


def with_early(late: dict[str, Any], early: dict[str, Any], applied_early: int) -> dict[str, Any]:
    """The apply figures of a run with early batches (overlap_phases). What an early batch did
    not apply (a failed instance, a whole failed or lost batch) Match planned again in the late
    batches, so the instance is accounted for there: from the early batches only the
    ``applied_early`` instances (those Match dropped) count as reconciled, and their failures
    are not the run's (they show as ``early_instances_failed`` / ``early_batches_missing``).
    Everything they did (writes, backups, recoveries) adds up as usual."""
    out = dict(late)
    for key, value in early.items():
        if key in SUMMED and key not in EARLY_ACCOUNTING:
            out[key] = out.get(key, 0) + value
    if early.get("plan_parts"):
        out["plan_parts"] = [*early["plan_parts"], *out.get("plan_parts", [])]
    out["instances"] = int(late.get("instances", 0)) + applied_early
    out["batches"] = int(late.get("batches", 0)) + int(early.get("batches", 0))
    out["early_batches"] = int(early.get("batches", 0))
    out["early_batches_missing"] = int(early.get("batches_missing", 0))
    out["early_instances_failed"] = int(early.get("instances_failed", 0))
    return out


def gather_apply(store: Any, run_id: str, match: dict[str, Any], failed: list[str]) -> dict[str, Any]:
    """The apply batches' figures: the early ones (overlap_phases, numbered first) through
    :func:`with_early`, so what they did not apply counts where Match planned it again."""
    batches = int(match.get("apply_batches", chain.batch_count(match)))
    early = min(batches, int(match.get("early_batches") or 0))
    late = gather(store, run_id, "apply", batches, failed, start=early)
    if not early:
        return late
    return with_early(late, gather(store, run_id, "apply", early), int(match.get("applied_early") or 0))


def executions_of(run: contracts.Run) -> int:
    """The run's executions (continue-as-new): this one is the last, ``run.chain.execution``."""
    return int((run.chain or {}).get("execution") or 1)


def not_reconciled(match: dict[str, Any], apply: dict[str, int], sources: dict[str, Any]) -> dict[str, Any]:
    """How many instances this run meant to reconcile and did not, and why (counts per cause).
    Counted from what the batches report, so a batch that vanished in any way (failed, caught,
    never started, its figures lost) shows up: planned minus accounted for."""
    planned = int(match.get("to_update") or 0)
    accounted = int(apply.get("instances", 0)) + int(apply.get("instances_skipped", 0))
    reasons: dict[str, int] = {}
    if apply.get("instances_failed"):
        reasons["instance_failed"] = int(apply["instances_failed"])
    missing = max(0, planned - accounted)
    if missing:
        reasons["batch_not_processed"] = missing
    for name, src in (("cf", sources.get("cf") or {}), ("bosh", sources.get("bosh") or {})):
        if src.get("status") == "failed":
            reasons[f"{name}_discovery_failed"] = 1
    return {"count": int(apply.get("instances_failed", 0)) + missing, "planned": planned, "reasons": reasons}


def item_times(**phases: dict[str, int]) -> dict[str, float]:
    """``<phase>_ms_per_item`` of this run, what the next run sizes its batches by
    (``batch.adaptive_scaling``); a phase that did nothing keeps its previous figure."""
    return {f"{name}_ms_per_item": round(f["busy_ms"] / f["items"], 1)
            for name, f in phases.items() if f.get("items") and f.get("busy_ms") is not None}


def run(event: dict[str, Any], context: Any, deps: Deps) -> dict[str, Any]:
    run = contracts.parse(contracts.FinishInput, event, "run").run
    store = deps.store
    run_id = run.run_id
    progress.phase_started(store, run_id, "Finish")
    sources = event.get("sources") or {}
    match = event.get("match") or {}
    cf, bosh = sources.get("cf") or {}, sources.get("bosh") or {}
    failed_deployments: list[str] = []
    scan = gather(store, run_id, "scan", chain.batch_count(bosh), failed_deployments)  # every window of the chain
    failed_ids: list[str] = []
    apply = gather_apply(store, run_id, match, failed_ids)  # every window of the chain, early batches first
    missed = not_reconciled(match, apply, sources)
    dry_run = run.dry_run
    plan = record_plan(store, run_id, dry_run, [*apply.pop("plan_parts", []),
                                                *filter(None, [(event.get("index") or {}).get("plan_part"),
                                                               (event.get("orphans") or {}).get("plan_part")])])
    duration = duration_since(run.started_at) or 0.0  # the first execution's start: the whole chain
    errors = scan.get("scan_failed", 0) + scan["batches_missing"] + missed["count"] \
        + sum(1 for src in (cf, bosh) if src.get("status") == "failed") \
        + len(bosh.get("failed_directors") or [])  # a director down: the others' share went on
    if not dry_run:  # the next run tries these first
        retry_first.put(store, instances=failed_ids, deployments=failed_deployments)
    summary = {
        "run_id": run_id,
        "status": "succeeded" if not errors else "succeeded_with_errors",
        "not_reconciled": missed["count"],
        "not_reconciled_reasons": missed["reasons"],
        "forced": run.forced,
        "selection": run.selection,
        "duration_s": duration,
        "phases": phase_summaries(event, cf, bosh, scan, match, apply),
        "errors": errors,
        "dry_run": dry_run,
        "plan": plans.summary_of(plan),
        "executions": executions_of(run),  # continue-as-new: the run's executions, this one the last
    }
    record_discovery_failures(store, run_id, cf, bosh)
    orphan_counts = (event.get("orphans") or {}).get("orphans") or {}
    figures = {**run_figures(cf, bosh, scan, apply, errors, missed, orphan_counts), "executions": executions_of(run)}
    if dry_run:
        return finish_dry_run(store, run_id, summary, figures, duration)
    breakers = store.get_breaker_states()
    figures["circuits_open"] = sum(1 for b in breakers.values() if b.get("state") == "open")
    store_run_metrics(store, run_id, summary["status"], figures, duration, missed["count"])
    store.set_metrics(**item_times(scan=scan, apply=apply))
    if deps.metrics_enabled():
        observability.emit_run_metrics({"run_id": run_id, "runs": 1, "runs_successful": 1, "runs_failed": 0,
                                        "duration_s": duration, **figures}, status=summary["status"])
    store.update_run(run_id, status=summary["status"], phase="Finish", finished_at=runtime.now_iso(),
                     duration_s=duration, figures={**summary["phases"], **figures}, plan=summary["plan"],
                     phase_durations=close_progress(store, run_id, summary["status"]))
    store.release_lock(run_id)
    log.info("run %s finished: %s in %.1fs", run_id, summary["status"], duration)
    summary["notifications"] = notify_run(deps.settings, store, run_id, status=summary["status"],
                                          update=store.get_scratch(run_id, contracts.ORPHANS), figures=figures,
                                          breakers=breakers,
                                          remediation=(event.get("orphans") or {}).get("remediation"))
    return summary


WINDOW = ("batches", "batch_count", "batch_next", "batch_window", "more")  # the chain's cursor, not a figure


def phase_summaries(event: dict[str, Any], cf: dict[str, Any], bosh: dict[str, Any], scan: dict[str, Any],
                    match: dict[str, Any], apply: dict[str, Any]) -> dict[str, Any]:
    """What each phase found and did (the execution output's ``phases``): counts, no batch lists."""
    return {
        "discover_cf": cf,
        "discover_bosh": {k: v for k, v in bosh.items() if k not in WINDOW} | {"batches": chain.batch_count(bosh)},
        "scan": scan,
        "match": {k: v for k, v in match.items() if k not in WINDOW} | {
            "batches": int(match.get("late_batches", len(match.get("batches") or [])))},
        "apply": apply,
        "sync_index": event.get("index") or {},
        "orphans": event.get("orphans") or {},
    }


def record_discovery_failures(store: Any, run_id: str, cf: dict[str, Any], bosh: dict[str, Any]) -> None:
    for name, src in (("CF", cf), ("BOSH", bosh)):
        if src.get("status") == "failed" and not src.get("recorded"):  # a discovery that raised (Pass state)
            store.record_error(run_id, f"Discover{'CF' if name == 'CF' else 'Bosh'}", name.lower(),
                               f"{src.get('error') or 'failed'}: {name} did not answer; this run went on without it")


def run_figures(cf: dict[str, Any], bosh: dict[str, Any], scan: dict[str, Any], apply: dict[str, Any], errors: int,
                missed: dict[str, Any], orphan_counts: dict[str, Any]) -> dict[str, Any]:
    """The run's figures (the spec's Metrics, per run): the store's totals, the run record, EMF."""
    synced = apply.get("instances_written", 0) + apply.get("instances_unchanged", 0)
    return {
        "deployments": int(bosh.get("deployments") or 0), "instances_found": int(cf.get("instances") or 0),
        "instances_synced": int(synced), "errors": errors, "backups_written": int(apply.get("backups_written", 0)),
        "cache_hits": int(scan.get("cache_hits", 0)), "cache_misses": int(scan.get("cache_misses", 0)),
        "credentials_recovered": int(apply.get("credentials_recovered", 0)),
        "instances_not_reconciled": missed["count"], "not_reconciled_reasons": missed["reasons"],
        **{kind.figure: int(orphan_counts[kind.value]) for kind in FindingKind if kind.value in orphan_counts},
    }


def store_run_metrics(store: Any, run_id: str, status: str, figures: dict[str, Any], duration: float,
                      not_reconciled: int) -> None:
    """The totals across runs (counters), the last run's gauges and the duration histogram."""
    errors = figures["errors"]
    store.add_metrics(runs_total=1, runs_successful=1, duration_total_s=duration,
                      deployments_total=figures["deployments"], instances_found_total=figures["instances_found"],
                      instances_synced_total=figures["instances_synced"], errors_total=errors,
                      backups_written_total=figures["backups_written"], cache_hits_total=figures["cache_hits"],
                      cache_misses_total=figures["cache_misses"],
                      runs_with_errors_total=1 if errors else 0, instances_not_reconciled_total=not_reconciled)
    store.set_metrics(last_run_duration_s=duration, last_run_time=runtime.now_iso(), last_run_id=run_id,
                      last_run_status=status, last_run_instances_not_reconciled=not_reconciled)
    store.observe_run_duration(duration)


def record_plan(store: Any, run_id: str, dry_run: bool, parts: list[str]) -> dict[str, Any]:
    """The run's plan (dry run) or its changes (real run), kept as long as the run record."""
    described = [got for key in parts if (got := store.get_scratch(run_id, key)) is not None]
    notes = [] if len(described) == len(parts) else [f"{len(parts) - len(described)} part(s) of the plan expired"]
    plan = plans.assemble(described, run_id=run_id, dry_run=dry_run, notes=notes)
    decisions = plans.rule_decisions(store.get_scratch(run_id, contracts.MATCH) or {})
    if decisions:  # what the custom matching rules decided, so a dry run shows them before they act
        plan["match_decisions"] = decisions
    store.put_scratch(run_id, contracts.PLAN, plan, store.run_ttl_s)
    return plan


def finish_dry_run(store: Any, run_id: str, summary: dict[str, Any], figures: dict[str, Any],
                   duration: float) -> dict[str, Any]:
    """A dry run changes nothing, counts as no run (no last-run figures, no run metrics): its
    record holds the plan's counts and the full plan is at ``GET /b/runs/<id>/plan``."""
    store.add_metrics(dry_runs_total=1)
    store.update_run(run_id, status=summary["status"], phase="Finish", finished_at=runtime.now_iso(),
                     duration_s=duration, figures={**summary["phases"], **figures}, plan=summary["plan"],
                     phase_durations=close_progress(store, run_id, summary["status"]))
    store.release_lock(run_id)
    log.info("dry run %s finished: %s in %.1fs; plan: %s", run_id, summary["status"], duration, summary["plan"])
    return summary


def close_progress(store: Any, run_id: str, status: str) -> list[dict[str, Any]]:
    """Mark the run's progress finished; its per-phase durations, for the run record."""
    progress.finished(store, run_id, status)
    return progress.phase_durations(progress.read(store, run_id) or {})
