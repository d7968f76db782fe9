"""Orphans (phase 6): publish the orphan state the index sync evaluated (CF instances without
deployment, deployments without CF instance, Vault entries without either), with how long
each has been orphaned. A kind is only re-evaluated when its sources answered this run.
"""

from __future__ import annotations

import logging
from typing import Any

from .. import progress
from ..domain import FindingKind, OrphanUpdate
from . import contracts
from .deps import Deps
from .remediate import remediate

log = logging.getLogger("reconciler.phases.orphans")


def run(event: dict[str, Any], context: Any, deps: Deps) -> dict[str, Any]:
    run = contracts.parse(contracts.RunInput, event, "run").run
    store = deps.store
    progress.phase_started(store, run.run_id, "Orphans")
    raw = store.get_scratch(run.run_id, contracts.ORPHANS)
    if raw is None:
        return {"published": False, "reason": "no orphan evaluation in this run"}
    update = OrphanUpdate.model_validate(raw)
    dry_run = run.dry_run
    # auto-remediation (opt-in; default everything "report"): archives due Vault orphans and
    # marks them in the state published below
    remediation = remediate(run, update, deps)
    if not dry_run:  # a dry run reports what would change; the published state stays as it is
        store.put_orphans(update.state)
    counts = {kind.value: len(update.state.get(kind.value) or {}) for kind in FindingKind}
    found = ", ".join(f"{counts[kind.value]} {kind.spec.summary}" for kind in FindingKind)
    log.info("orphans: %s; %d newly orphaned, %d resolved", found, sum(len(v) for v in update.newly_orphaned.values()),
             sum(len(v) for v in update.resolved.values()), extra={"orphans": counts})
    for kind, why in update.skipped.items():
        log.info("orphans: %s orphans not evaluated this run: %s", kind, why)
    if log.isEnabledFor(logging.DEBUG):
        for kind, keys in update.newly_orphaned.items():
            for key in keys:
                log.debug("orphans: %s %s newly orphaned", kind, key)
        for kind, keys in update.resolved.items():
            for key in keys:
                log.debug("orphans: %s %s no longer orphaned", kind, key)
    return {"published": not dry_run,
            "orphans": counts,
            "newly_orphaned": {k: len(v) for k, v in update.newly_orphaned.items()},
            "resolved": {k: len(v) for k, v in update.resolved.items()},
            "not_evaluated": update.skipped,
            "remediation": {k: v for k, v in remediation.items() if k != "plan_part"},
            "plan_part": remediation.get("plan_part")}
