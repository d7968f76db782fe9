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

from .. import progress
from ..errors import ReconcilerError
from ..models import BoshDeployment, DeploymentDetail
from . import contracts, runtime, sources
from .deps import Deps

log = logging.getLogger("reconciler.phases.scan_batch")


class BatchScan:
    """One ScanBatch invocation: its batch of deployments, the details scanned so far, its
    Director clients (logged in on the first cache miss) and its figures."""

    def __init__(self, event: dict[str, Any], context: Any, deps: Deps) -> None:
        self.event, self.deps = event, deps
        given = contracts.parse(contracts.BatchInput, event, "run_id", "batch", "offset")
        self.run_id, self.batch, self.offset = given.run_id, given.batch, given.offset
        s, store = self.settings, self.store = deps.settings, deps.store
        progress.phase_started(store, self.run_id, "ScanDeployments")
        listing = store.get_scratch(self.run_id, contracts.BOSH) or {}
        size = int(listing.get("batch_size") or 1)
        self.mine = [BoshDeployment.model_validate(d)
                     for d in listing.get("deployments", [])[self.batch * size:(self.batch + 1) * size]]
        self.key = contracts.scan_details(self.batch)
        self.details: list[dict[str, Any]] = store.get_scratch(self.run_id, self.key, []) if self.offset else []
        self.figures: dict[str, Any] = (
            (store.get_scratch(self.run_id, contracts.progress(self.key)) or {}) if self.offset else {})
        self.clients: dict[str, Any] = {}
        self.clients_lock = threading.Lock()
        self.budget = runtime.Budget.for_batch(context, s, event)
        self.ttl = float(s.reconciler.cache_ttl)
        self.workers = max(1, min(s.reconciler.concurrency.max_concurrent, s.reconciler.max_concurrency))
        # DiscoverBosh's verdicts: fresh or revalidated (by the events feed) details come from the
        # cache whatever their age; the others are read from the Director
        self.kept = listing.get("from_cache")

    def client_for(self, director: str) -> Any:
        with self.clients_lock:  # on the first cache miss only: a fully cached batch neither pauses nor logs in
            if not self.clients:
                s = self.settings
                runtime.pause_between_batches(
                    self.batch, self.offset, s.reconciler.concurrency.cooldown_period, s, self.budget,
                    sleep=self.deps.sleep, claim=lambda n, hold: self.store.claim_pause(self.run_id, "scan", n, hold))
                self.clients.update(self.deps.directors())
        return self.clients[director]

    def cached(self, dep: BoshDeployment) -> tuple[Any, str | None]:
        """(the cached detail to use or None, DiscoverBosh's verdict on it)."""
        kept, store = self.kept, self.store
        verdict = None if kept is None else kept.get(f"{dep.director}/{dep.name}")
        if kept is None:  # a listing without verdicts: the cache answers within cache_ttl
            cached = store.get_cached_deployment(dep.director, dep.name, max_age=self.ttl) if self.ttl > 0 else None
        else:
            cached = store.get_cached_deployment(dep.director, dep.name) if verdict else None
        return cached, verdict

    def scan(self, dep: BoshDeployment) -> tuple[DeploymentDetail, str]:
        """One deployment's detail and its outcome (the figure it counts in)."""
        cached, verdict = self.cached(dep)
        if cached is not None:
            log.debug("bosh:%s/%s: cache hit (%s)", dep.director, dep.name, verdict or "fresh")
            return DeploymentDetail.model_validate(cached), "revalidated" if verdict == "revalidated" else "cache_hits"
        try:
            detail = sources.scan_deployment(self.client_for(dep.director), dep)  # the adapter caches a good one
        except ReconcilerError as exc:
            detail = DeploymentDetail(director=dep.director, name=dep.name, releases=dep.releases,
                                      stemcells=dep.stemcells, error=f"{type(exc).__name__}: {exc}"[:500])
        if detail.error:  # recorded and skipped: matched by name only, without infrastructure details
            log.error("bosh:%s/%s: scan failed (deployment skipped): %s", dep.director, dep.name, detail.error)
            self.store.record_error(self.run_id, "ScanBatch", f"bosh:{dep.director}/{dep.name}", detail.error[:500])
            return detail, "scan_failed"
        log.debug("bosh:%s/%s: cache miss; scanned (%d VMs, manifest %s)", dep.director, dep.name,
                  len(detail.vms or []), "present" if detail.manifest_text else "absent")
        return detail, "cache_misses"

    def scan_all(self, failed: list[str]) -> int:
        """Scan from the offset on, ``workers`` at a time, until done or out of time (at least one
        chunk: always progress); adds the failed ones to ``failed``; returns the position reached."""
        position, figures = self.offset, self.figures
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            while position < len(self.mine):
                if position > self.offset and self.budget.exhausted():
                    break
                chunk = self.mine[position:position + self.workers]
                for detail, outcome in pool.map(self.scan, chunk):
                    self.details.append(detail.model_dump(mode="json"))
                    figures[outcome] = figures.get(outcome, 0) + 1
                    if outcome == "revalidated":  # a cache hit the events feed vouched for
                        figures["cache_hits"] = figures.get("cache_hits", 0) + 1
                    if outcome == "scan_failed":  # scanned first by the next run
                        failed.append(f"{detail.director}/{detail.name}")
                position += len(chunk)
        return position

    def save(self, position: int, began: float, failed: list[str]) -> dict[str, Any]:
        """The details, figures and progress saved; the state machine's next event."""
        figures, details, store, ttl = self.figures, self.details, self.store, runtime.scratch_ttl(self.settings)
        done = position >= len(self.mine)
        if failed:
            figures["failed_ids"] = failed
        # time per deployment, for the next run's adaptive batch size (batch.adaptive_scaling)
        figures["busy_ms"] = figures.get("busy_ms", 0) + int((time.monotonic() - began) * 1000)
        figures["items"] = figures.get("items", 0) + position - self.offset
        store.put_scratch(self.run_id, self.key, details, ttl)
        if done:
            store.put_scratch(self.run_id, contracts.batch_figures("scan", self.batch),
                              {"scanned": len(details), **figures}, ttl)
            log.info("bosh: scan batch %d done: %d deployments, %d cache hits, %d misses, %d failed", self.batch,
                     len(details), figures.get("cache_hits", 0), figures.get("cache_misses", 0),
                     figures.get("scan_failed", 0), extra={"batch": self.batch, "scanned": len(details),
                                                           **{k: v for k, v in figures.items() if k != "failed_ids"}})
        else:
            store.put_scratch(self.run_id, contracts.progress(self.key), figures, ttl)
            log.info("scan batch %d stopped at %d/%d for time; continuing", self.batch, position, len(self.mine))
        progress.batch_progress(store, self.run_id, "scan", position - self.offset, done)
        return {**self.event, "offset": position, "done": done}


def run(event: dict[str, Any], context: Any, deps: Deps) -> dict[str, Any]:
    job = BatchScan(event, context, deps)
    failed: list[str] = list(job.figures.pop("failed_ids", None) or [])
    began = time.monotonic()
    return job.save(job.scan_all(failed), began, failed)
