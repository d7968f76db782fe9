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
from . import contracts, retry_first, runtime, sources
from .deps import Deps

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
    for batch in bosh.batches:
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
    return runtime.through_open_breaker(lambda: match_phase(event, context, deps),
                                        runtime.Budget.for_phase(context, event), what="match")


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
    vault = deps.kv()
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
    wanted = runtime.batch_size(s, "apply", (store.get_metrics() or {}).get("apply_ms_per_item"))
    size, count = runtime.split(len(items), wanted, runtime.max_map_items(s))
    ttl = runtime.scratch_ttl(s)
    for b in range(count):
        batch = [i.model_dump(mode="json") for i in items[b * size:(b + 1) * size]]
        store.put_scratch(run_id, contracts.apply_items(b), batch, ttl)
    progress.map_total(store, run_id, "apply", count, len(items))
    store.put_scratch(run_id, contracts.MATCH, result.model_dump(mode="json"), ttl)
    store.put_scratch(run_id, contracts.INDEX, index, ttl)
    store.put_scratch(run_id, contracts.FLAGS, {"cf_available": cf_available, "forced": run.forced,
                                        "dry_run": run.dry_run,
                                        "bosh_available": bosh is not None and bosh.status == "ok",
                                        "kv_version": vault.kv_version,  # detected once per run
                                        # UAA's links from the CF API root: ApplyBatch's clients skip it
                                        "cf_endpoints": (cf_data or {}).get("endpoints") or {},
                                        "apply_batches": count}, ttl)
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
            "to_update": len(items), "batch_size": size, "batches": list(range(count))}
