"""Match (phase 3): cross-reference CF instances, scanned deployments and the ``secret/db``
index; cut the instances to update into apply batches.

CF failed -> BOSH-only matching (the catalog comes from the index); BOSH failed -> CF-only
(no infrastructure details). The match result, the index read and each apply batch's plan
items go to scratch; the state gets counts and the batch numbers.
"""

from __future__ import annotations

import logging
from typing import Any

from .. import progress
from ..domain import DomainConfig, build_plan_items, match
from ..domain.shares import hold_back
from ..models import BoshDeployment, DeploymentDetail
from . import chain, contracts, early_apply, retry_first, runtime, sources
from .deps import Deps
from .record_failure import duration_since

log = logging.getLogger("reconciler.phases.match")


SCAN_BATCH_FAILED = "its scan batch failed this run; scanned again next run"
DEFERRED = "not scanned this run (reconciler.concurrency.max_deployments_per_run); scanned in a later run"


def gather_details(store: Any, run_id: str,
                   bosh: contracts.SourceResult | None) -> tuple[list[DeploymentDetail], list[Any]]:
    """Scanned details, plus deployments whose scan batch failed or was deferred (matched by name
    only, marked with an ``error`` so no orphan is marked on their evidence); the second list
    names the failed-batch deployments."""
    if bosh is None or bosh.status != "ok":
        return [], []
    listing = store.get_scratch(run_id, contracts.BOSH) or {}
    size = int(listing.get("batch_size") or 1)
    entries = listing.get("deployments", [])
    details: list[DeploymentDetail] = []
    unscanned: list[Any] = []
    for batch in range(scan_batches(bosh)):  # every window of the chain
        got = store.get_scratch(run_id, contracts.scan_details(batch))
        if got is None or store.get_scratch(run_id, contracts.batch_figures("scan", batch)) is None:
            unscanned += [BoshDeployment.model_validate(d) for d in entries[batch * size:(batch + 1) * size]]
            got = got or []
        details += [DeploymentDetail.model_validate(d) for d in got]
    seen = {d.name for d in details}
    unscanned = [d for d in unscanned if d.name not in seen]
    # a failed scan batch is failed evidence: its deployments are matched by name only and,
    # as scan failures, keep CF/Vault orphan marking off this run
    details += [DeploymentDetail(director=d.director, name=d.name, releases=d.releases, stemcells=d.stemcells,
                                 error=SCAN_BATCH_FAILED) for d in unscanned]
    # concurrency.max_deployments_per_run: deferred deployments are matched by name only; as
    # scan failures they keep CF/Vault orphan marking off unscanned evidence
    details += [DeploymentDetail(director=d["director"], name=d["name"], releases=d.get("releases") or [],
                                 stemcells=d.get("stemcells") or [], error=DEFERRED)
                for d in listing.get("deferred") or []]
    return details, unscanned


def scan_batches(bosh: contracts.SourceResult) -> int:
    """Every scan batch of the run (continue-as-new: ``batches`` is only the last window)."""
    return bosh.batch_count if bosh.batch_count is not None else len(bosh.batches)


def log_decisions(result: Any) -> None:
    """Debug: every cross-referencing decision, with the strategy and the reason (ids and names only)."""
    for m in result.matches:
        log.debug("match: instance %s -> deployment %s (%s, confidence %.2f): %s", m.instance_id, m.deployment_name,
                  m.strategy, m.confidence, m.reason)
        for note in m.notes:
            log.debug("match: instance %s: %s", m.instance_id, note)
    for instance_id in result.unmatched_instances:
        log.debug("match: CF instance %s has no deployment", instance_id)
    for u in result.unidentified_deployments:
        log.debug("match: deployment %s not identified (%s)", u.name, u.reason or "no evidence")
    for c in result.conflicts:
        log.debug("match: conflict %s: deployments %s, instances %s", c.kind, c.deployments, c.instance_ids)
    for name in result.excluded_deployments:
        log.debug("match: deployment %s excluded", name)
    for name, why in result.malformed_manifests.items():
        log.debug("match: deployment %s has a malformed manifest: %s", name, why)


def run(event: dict[str, Any], context: Any, deps: Deps) -> dict[str, Any]:
    # its one Vault read (the index) waits once for an open breaker about to let a trial through
    phase = prepare_early if event.get("early") else match_phase
    return runtime.through_open_breaker(lambda: phase(event, context, deps),
                                        runtime.Budget.for_phase(context, event), what="match")


def run_flags(run: contracts.Run, srcs: contracts.Sources, cf_data: Any, kv_version: Any,
              apply_batches: int, early: bool = False) -> dict[str, Any]:
    """Scratch ``flags``: what every ApplyBatch and SyncIndex reads of the run."""
    return {"cf_available": cf_data is not None, "forced": run.forced, "dry_run": run.dry_run,
            "bosh_available": srcs.bosh is not None and srcs.bosh.status == "ok",
            "kv_version": kv_version,  # detected once per run
            # UAA's links from the CF API root: ApplyBatch's clients skip it
            "cf_endpoints": (cf_data or {}).get("endpoints") or {},
            "apply_batches": apply_batches, **({"early": True} if early else {})}


def prepare_early(event: dict[str, Any], context: Any, deps: Deps) -> dict[str, Any]:
    """PrepareEarly (``early: true``, beside ScanDeployments): the index and the run's flags for
    the early apply batches, which are the scan batches (none with a director down: its
    share is held back, which only complete evidence decides)."""
    given = contracts.parse(contracts.SourcesInput, event, "run", "sources")
    run, srcs = given.run, given.sources
    s, store, run_id = deps.settings, deps.store, run.run_id
    batches = list(srcs.bosh.batches) if srcs.bosh else []  # this execution's scan window
    cf_data = store.get_scratch(run_id, contracts.CF)
    if cf_data is None or (srcs.bosh is not None and srcs.bosh.failed_directors):
        return {"batches": []}
    unnamed = int((store.get_scratch(run_id, contracts.BOSH) or {}).get("unnamed_batches") or 0)
    if batches and unnamed > batches[-1] + 1:  # an early batch waits for them: none beyond this execution
        log.info("match: no early apply: the deployments a name cannot identify fill more than this execution's "
                 "%d scan batch(es)", len(batches))
        return {"batches": []}
    vault = deps.kv()
    index = vault.read_data(f"{DomainConfig.from_settings(s).mount}/db") or {}
    ttl = runtime.scratch_ttl(s)
    store.put_scratch(run_id, contracts.INDEX, index, ttl)
    store.put_scratch(run_id, contracts.FLAGS, {**run_flags(run, srcs, cf_data, vault.kv_version, 0, early=True),
                                                "early_batches": len(batches)}, ttl)
    progress.map_total(store, run_id, "apply", len(batches), 0)  # the early batches; each cut adds its items
    log.info("match: early apply prepared for %d scan batch(es)", len(batches))
    return {"batches": batches}


def without_early(store: Any, run_id: str, items: list[Any], result: Any, batches: int) -> tuple[list[Any], int]:
    """The items the early batches did not already apply (an item equal to what one applied is
    dropped), and how many were dropped. An instance written early that the complete evidence
    puts in conflict (a deployment scanned later claims it) is recorded: the residual of writing
    before every manifest was read."""
    done = early_apply.applied(store, run_id, batches)
    conflicted = set(result.conflicted_instances)
    keep, dropped = [], 0
    for item in items:
        was = done.get(item.instance_id)
        if was is not None and was == early_apply.digest(item):
            dropped += 1
            continue
        if was is not None and item.instance_id in conflicted:
            claims = sorted({d for c in result.conflicts if item.instance_id in c.instance_ids for d in c.deployments})
            log.error("match: instance %s was written by an early apply batch; the complete evidence puts it in "
                      "conflict (deployments %s): see the match report", item.instance_id, ", ".join(claims))
            store.record_error(run_id, "Match", f"instance {item.instance_id}",
                               f"written early, before deployments {', '.join(claims)} were all read; they now "
                               "conflict over it: check its Vault data (its backup was taken first)"[:500])
        keep.append(item)
    return keep, dropped


def match_phase(event: dict[str, Any], context: Any, deps: Deps) -> dict[str, Any]:
    given = contracts.parse(contracts.SourcesInput, event, "run", "sources")
    run, cf_source, bosh = given.run, given.sources.cf, given.sources.bosh
    run_id = run.run_id
    s, store = deps.settings, deps.store
    progress.phase_started(store, run_id, "Match")
    cfg = DomainConfig.from_settings(s)
    cf_data = store.get_scratch(run_id, contracts.CF) if (cf_source is None or cf_source.status != "skipped") else None
    cf_available = cf_data is not None
    instances, catalog, bindings = sources.load_cf(cf_data)
    details, unscanned = gather_details(store, run_id, bosh)
    before = store.get_scratch(run_id, contracts.FLAGS) or {}
    early = bool(before.get("early"))  # PrepareEarly read the index and detected the KV version
    vault = deps.kv(before.get("kv_version") if early else None)
    index = store.get_scratch(run_id, contracts.INDEX) if early else None
    if index is None:
        index = vault.read_data(f"{cfg.mount}/db") or {}
    result = match(instances if cf_available else None, details, index, catalog, cfg)
    items = build_plan_items(result, instances=instances if cf_available else None,
                             details={d.name: d for d in details}, index=index, bindings=bindings,
                             cf_available=cf_available, catalog=catalog)
    items = hold_back(items, bosh.failed_directors if bosh else [], cfg, result)  # a director down
    selected = set((run.selection or {}).get("instances") or [])
    if selected and not cf_available:
        items = [i for i in items if i.instance_id in selected]
    items = retry_first.first(items, retry_first.get(store)["instances"], lambda i: i.instance_id)  # last run's misses
    # overlap_phases: the early batches are the first scan window's numbers; the late ones follow them
    first = int(before.get("early_batches", len(bosh.batches) if bosh else 0)) if early else 0
    items, dropped = without_early(store, run_id, items, result, first) if early else (items, 0)
    wanted = runtime.batch_size(s, "apply", (store.get_metrics() or {}).get("apply_ms_per_item"))
    size, count = runtime.split(len(items), wanted, runtime.max_map_items(s))
    ttl = runtime.scratch_ttl(s)
    for b in range(count):
        batch = [i.model_dump(mode="json") for i in items[b * size:(b + 1) * size]]
        store.put_scratch(run_id, contracts.apply_items(first + b), batch, ttl)
    progress.map_total(store, run_id, "apply", first + count, len(items) + dropped)
    width = apply_window(s, store, run, bosh, first, count, size)
    store.put_scratch(run_id, contracts.MATCH, result.model_dump(mode="json"), ttl)
    store.put_scratch(run_id, contracts.INDEX, index, ttl)
    flags = run_flags(run, given.sources, cf_data, vault.kv_version, first + count)
    store.put_scratch(run_id, contracts.FLAGS, flags, ttl)
    log.info("match: %d matched, %d CF without deployment, %d unidentified deployments, %d conflicts, "
             "%d with an operation in flight, %d failed provisions", len(result.matches),
             len(result.unmatched_instances), len(result.unidentified_deployments), len(result.conflicts),
             len(result.in_flight), len(result.failed_provisions),
             extra={"matched": len(result.matches), "to_update": len(items), "cf_available": cf_available})
    if log.isEnabledFor(logging.DEBUG):
        log_decisions(result)
    return {"matched": len(result.matches), "unmatched_instances": len(result.unmatched_instances),
            "unidentified_deployments": len(result.unidentified_deployments),
            "excluded_deployments": len(result.excluded_deployments), "conflicts": len(result.conflicts),
            "unscanned_deployments": len(unscanned), "cf_available": cf_available,
            "in_flight": len(result.in_flight), "failed_provisions": len(result.failed_provisions),
            "to_update": len(items) + dropped, "applied_early": dropped, "batch_size": size,
            **chain.cut(count, width, start=first), "apply_batches": first + count, "late_batches": count,
            "early_batches": first}


def apply_window(s: Any, store: Any, run: contracts.Run, bosh: contracts.SourceResult | None, first: int,
                 count: int, size: int) -> int:
    """Continue-as-new: the apply batches this execution runs, within what its scan left of the
    budgets (the rest in follow-up executions)."""
    width = chain.window(s, "apply", count, size, (store.get_metrics() or {}).get("apply_ms_per_item"),
                         iterations_used=scan_iterations(run, bosh, first),
                         seconds_used=duration_since((run.chain or {}).get("started_at") or run.started_at) or 0.0)
    if width < count:
        log.info("match: this execution applies %d of %d batches; the rest in follow-up executions of run %s",
                 width, count, run.run_id)
    return width


def scan_iterations(run: contracts.Run, bosh: contracts.SourceResult | None, early_batches: int) -> int:
    """Map iterations this execution already ran: its scan window, and the early apply batches
    when it is the run's first execution."""
    scanned = len(bosh.batches) if bosh is not None and bosh.status == "ok" else 0
    first_execution = int((run.chain or {}).get("execution") or 1) == 1
    return scanned + (early_batches if first_execution else 0)
