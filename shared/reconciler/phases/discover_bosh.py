"""DiscoverBosh (phase 2, first half): every director's deployment list, cut into scan batches.

Non-service deployments (``matching.excluded_deployments``: cf, bosh, concourse, ...) are
counted but never scanned. The list goes to scratch ``bosh``; the state gets the batch
numbers the ScanDeployments Map iterates over.
"""

from __future__ import annotations

import logging
from typing import Any

from .. import progress
from ..domain import DomainConfig, is_excluded_name
from . import contracts, retry_first, runtime, sources

log = logging.getLogger("reconciler.phases.discover_bosh")


def run(event: dict[str, Any], context: Any) -> dict[str, Any]:
    (run,) = contracts.read(contracts.RunInput, event, "run")
    s, store = runtime.settings(), runtime.store()
    progress.phase_started(store, run["run_id"], "Discover")
    if not s.bosh_directors:
        log.info("bosh: no director configured; BOSH scanning skipped")
        return {"source": "bosh", "status": "skipped", "error": "no BOSH director configured", "deployments": 0,
                "batches": []}
    cfg = DomainConfig.from_settings(s)
    deployments, excluded = [], []
    for name, client in sources.bosh_clients(s, store).items():
        before = len(deployments) + len(excluded)
        for dep in sources.list_deployments(client):
            if is_excluded_name(dep.name, cfg.excluded_deployments):
                excluded.append(dep)
                log.debug("bosh:%s deployment %s excluded (not a service deployment)", name, dep.name)
            else:
                deployments.append(dep)
        log.info("bosh:%s: %d deployments listed", name, len(deployments) + len(excluded) - before)
    deployments, deferred = carry_over(s, store, deployments)

    deployments = retry_first.first(deployments, retry_first.get(store)["deployments"],
                                    lambda d: f"{d.director}/{d.name}")  # last run's failed scans first
    wanted = runtime.batch_size(s, "scan", (store.get_metrics() or {}).get("scan_ms_per_item"))
    size, count = runtime.split(len(deployments), wanted, runtime.max_map_items(s))
    log.info("bosh: %d deployments to scan in %d batch(es), %d excluded, %d deferred to the next run",
             len(deployments), count, len(excluded), len(deferred),
             extra={"deployments": len(deployments) + len(excluded) + len(deferred), "to_scan": len(deployments),
                    "excluded": len(excluded), "deferred": len(deferred), "batches": count})
    store.put_scratch(run["run_id"], contracts.BOSH, {
        "deployments": [d.model_dump(mode="json") for d in deployments],
        "deferred": [d.model_dump(mode="json") for d in deferred],
        "excluded": [d.model_dump(mode="json") for d in excluded], "batch_size": size},
        runtime.scratch_ttl(s))
    progress.map_total(store, run["run_id"], "scan", count, len(deployments))
    return {"source": "bosh", "status": "ok", "deployments": len(deployments) + len(excluded) + len(deferred),
            "to_scan": len(deployments), "excluded": len(excluded), "deferred": len(deferred), "batch_size": size,
            "batches": list(range(count))}




def carry_over(s: Any, store: Any, deployments: list[Any]) -> tuple[list[Any], list[Any]]:
    """``concurrency.max_deployments_per_run``: the deployments to scan this run (round robin,
    continuing where the last run stopped) and the ones deferred to a later run."""
    cap = int(s.reconciler.concurrency.max_deployments_per_run)
    if not cap or len(deployments) <= cap:
        return deployments, []
    cursor = store.get_scratch(contracts.CARRYOVER, contracts.BOSH_CURSOR)
    chosen, deferred, cursor = runtime.take_round_robin(deployments, lambda d: f"{d.director}/{d.name}", cap,
                                                        cursor if isinstance(cursor, str) else None)
    store.put_scratch(contracts.CARRYOVER, contracts.BOSH_CURSOR, cursor, contracts.CARRYOVER_TTL_S)
    log.info("bosh: scanning %d of %d deployments this run (reconciler.concurrency.max_deployments_per_run); "
             "the next run continues after %s", len(chosen), len(deployments), cursor)
    return chosen, deferred
