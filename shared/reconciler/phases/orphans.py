"""Orphans (phase 6): publish the orphan state the index sync evaluated (CF instances without
deployment, deployments without CF instance, Vault entries without either), with how long
each has been orphaned. A kind is only re-evaluated when its sources answered this run.
"""

from __future__ import annotations

from typing import Any

from ..domain import OrphanUpdate
from . import runtime


def run(event: dict[str, Any], context: Any) -> dict[str, Any]:
    (run,) = runtime.require(event, "run")
    store = runtime.store()
    raw = store.get_scratch(run["run_id"], "orphans")
    if raw is None:
        return {"published": False, "reason": "no orphan evaluation in this run"}
    update = OrphanUpdate.model_validate(raw)
    store.put_orphans(update.state)
    return {"published": True,
            "orphans": {kind: len(update.state.get(kind) or {}) for kind in ("cf", "bosh", "vault")},
            "newly_orphaned": {k: len(v) for k, v in update.newly_orphaned.items()},
            "resolved": {k: len(v) for k, v in update.resolved.items()},
            "not_evaluated": update.skipped}
