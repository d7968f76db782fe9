"""DiscoverBosh (phase 2, first half): every director's deployment list, cut into scan batches.

Non-service deployments (``matching.excluded_deployments``: cf, bosh, concourse, ...) are
counted but never scanned. The list goes to scratch ``bosh``; the state gets the batch
numbers the ScanDeployments Map iterates over.
"""

from __future__ import annotations

import logging
from typing import Any

from ..domain import DomainConfig, is_excluded_name
from . import runtime, sources

log = logging.getLogger("reconciler.phases.discover_bosh")


def run(event: dict[str, Any], context: Any) -> dict[str, Any]:
    (run,) = runtime.require(event, "run")
    s, store = runtime.settings(), runtime.store()
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
    size, count = runtime.split(len(deployments), s.reconciler.batch_size)
    log.info("bosh: %d deployments to scan in %d batch(es), %d excluded", len(deployments), count, len(excluded),
             extra={"deployments": len(deployments) + len(excluded), "to_scan": len(deployments),
                    "excluded": len(excluded), "batches": count})
    store.put_scratch(run["run_id"], "bosh", {
        "deployments": [d.model_dump(mode="json") for d in deployments],
        "excluded": [d.model_dump(mode="json") for d in excluded], "batch_size": size},
        runtime.scratch_ttl(s))
    return {"source": "bosh", "status": "ok", "deployments": len(deployments) + len(excluded),
            "to_scan": len(deployments), "excluded": len(excluded), "batch_size": size,
            "batches": list(range(count))}
