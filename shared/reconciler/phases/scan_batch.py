"""ScanBatch (phase 2, second half): manifest and VMs of one batch of deployments.

Details come from the cache (fresh, or revalidated by BOSH's events feed: DiscoverBosh's
``from_cache`` verdicts) or the Director. A failing deployment is
recorded and skipped (its detail carries the error). When the Lambda's time runs short the
batch stops, saves what it has and returns ``done: false`` with the next offset: the state
machine calls it again.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .. import env, progress
from ..errors import ReconcilerError
from ..models import BoshDeployment, DeploymentDetail
from . import contracts, runtime, sources

log = logging.getLogger("reconciler.phases.scan_batch")


def run(event: dict[str, Any], context: Any) -> dict[str, Any]:  # noqa: C901, PLR0915 - too long: to split (issue 14)
    run_id, batch, offset = contracts.read(contracts.BatchInput, event, "run_id", "batch", "offset")
    s, store = runtime.settings(), runtime.store()
    progress.phase_started(store, run_id, "ScanDeployments")
    listing = store.get_scratch(run_id, contracts.BOSH) or {}
    size = int(listing.get("batch_size") or 1)
    mine = [BoshDeployment.model_validate(d) for d in listing.get("deployments", [])[batch * size:(batch + 1) * size]]
    key = contracts.scan_details(batch)
    details: list[dict[str, Any]] = store.get_scratch(run_id, key, []) if offset else []
    figures: dict[str, Any] = (store.get_scratch(run_id, contracts.progress(key)) or {}) if offset else {}
    clients: dict[str, Any] = {}
    clients_lock = threading.Lock()

    budget = runtime.Budget.for_batch(context, s, event)

    def client_for(director: str) -> Any:
        with clients_lock:  # on the first cache miss only: a fully cached batch neither pauses nor logs in
            if not clients:
                runtime.pause_between_batches(batch, offset, s.reconciler.concurrency.cooldown_period, s, budget)
                clients.update(sources.bosh_clients(s, store))
        return clients[director]
    ttl = float(s.reconciler.cache_ttl)
    workers = max(1, min(s.reconciler.concurrency.max_concurrent, s.reconciler.max_concurrency))

    # DiscoverBosh's verdicts: fresh or revalidated (by the events feed) details come from the
    # cache whatever their age; the others are read from the Director
    kept = listing.get("from_cache")

    def scan(dep: BoshDeployment) -> tuple[DeploymentDetail, str]:
        verdict = None if kept is None else kept.get(f"{dep.director}/{dep.name}")
        if kept is None:  # a listing without verdicts: the cache answers within cache_ttl
            cached = store.get_cached_deployment(dep.director, dep.name, max_age=ttl) if ttl > 0 else None
        else:
            cached = store.get_cached_deployment(dep.director, dep.name) if verdict else None
        if cached is not None:
            log.debug("bosh:%s/%s: cache hit (%s)", dep.director, dep.name, verdict or "fresh")
            return DeploymentDetail.model_validate(cached), "revalidated" if verdict == "revalidated" else "cache_hits"
        try:
            detail = sources.scan_deployment(client_for(dep.director), dep)  # the adapter caches a good one
        except ReconcilerError as exc:
            detail = DeploymentDetail(director=dep.director, name=dep.name, releases=dep.releases,
                                      stemcells=dep.stemcells, error=f"{type(exc).__name__}: {exc}"[:500])
        if detail.error:  # recorded and skipped: matched by name only, without infrastructure details
            log.error("bosh:%s/%s: scan failed (deployment skipped): %s", dep.director, dep.name, detail.error)
            store.record_error(run_id, "ScanBatch", f"bosh:{dep.director}/{dep.name}", detail.error[:500])
            return detail, "scan_failed"
        log.debug("bosh:%s/%s: cache miss; scanned (%d VMs, manifest %s)", dep.director, dep.name,
                  len(detail.vms or []), "present" if detail.manifest_text else "absent")
        return detail, "cache_misses"

    failed: list[str] = list(figures.pop("failed_ids", None) or [])
    position = offset
    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        while position < len(mine):
            if position > offset and budget.exhausted():  # at least one chunk per call: always progress
                break
            chunk = mine[position:position + workers]
            for detail, outcome in pool.map(env.bind(scan), chunk):
                details.append(detail.model_dump(mode="json"))
                figures[outcome] = figures.get(outcome, 0) + 1
                if outcome == "revalidated":  # a cache hit the events feed vouched for
                    figures["cache_hits"] = figures.get("cache_hits", 0) + 1
                if outcome == "scan_failed":  # scanned first by the next run
                    failed.append(f"{detail.director}/{detail.name}")
            position += len(chunk)
    done = position >= len(mine)
    if failed:
        figures["failed_ids"] = failed
    # time per deployment, for the next run's adaptive batch size (batch.adaptive_scaling)
    figures["busy_ms"] = figures.get("busy_ms", 0) + int((time.monotonic() - began) * 1000)
    figures["items"] = figures.get("items", 0) + position - offset
    store.put_scratch(run_id, key, details, runtime.scratch_ttl(s))
    if done:
        store.put_scratch(run_id, contracts.batch_figures("scan", batch), {"scanned": len(details), **figures},
                          runtime.scratch_ttl(s))
        log.info("bosh: scan batch %d done: %d deployments, %d cache hits, %d misses, %d failed", batch,
                 len(details), figures.get("cache_hits", 0), figures.get("cache_misses", 0),
                 figures.get("scan_failed", 0), extra={"batch": batch, "scanned": len(details),
                                                       **{k: v for k, v in figures.items() if k != "failed_ids"}})
    else:
        store.put_scratch(run_id, contracts.progress(key), figures, runtime.scratch_ttl(s))
        log.info("scan batch %d stopped at %d/%d for time; continuing", batch, position, len(mine))
    progress.batch_progress(store, run_id, "scan", position - offset, done)
    return {**event, "offset": position, "done": done}
