"""SyncIndex (phase 5): merge this run's observations and orphan marks into ``secret/db`` and
write it once, with check-and-set (a broker write in between is re-read and merged again).

The orphan evaluation (pure) happens here so the index carries the marks in its single
write; the Orphans state publishes it.
"""

from __future__ import annotations

import logging
from typing import Any

from .. import progress
from ..apply import write_index
from ..domain import DomainConfig, MatchResult, is_uuid, merge_index, observations_from, update_orphans
from ..plans import describe
from ..recording import RecordingVault
from . import runtime, sources

log = logging.getLogger("reconciler.phases.sync_index")


def source_status(run: dict[str, Any], srcs: dict[str, Any]) -> dict[str, str]:
    """Evidence for orphan marking: a selective run evaluates nothing."""
    if run.get("selection"):
        return {"cf": "skipped", "bosh": "skipped", "vault": "skipped"}
    return {"cf": (srcs.get("cf") or {}).get("status", "failed"),
            "bosh": (srcs.get("bosh") or {}).get("status", "failed"), "vault": "ok"}


def run(event: dict[str, Any], context: Any) -> dict[str, Any]:
    run, srcs = runtime.require(event, "run", "sources")
    run_id = run["run_id"]
    s, store = runtime.settings(), runtime.store()
    progress.phase_started(store, run_id, "SyncIndex")
    cfg = DomainConfig.from_settings(s)
    dry_run = bool(run.get("dry_run"))
    kv_version = (store.get_scratch(run_id, "flags") or {}).get("kv_version")  # Match detected it
    vault = RecordingVault(sources.vault(s, store, kv_version), dry_run=dry_run)
    result = MatchResult.model_validate(store.get_scratch(run_id, "match") or {})
    cf_data = store.get_scratch(run_id, "cf")
    instances, _, _ = sources.load_cf(cf_data)
    status = source_status(run, srcs)
    vault_ids = [k.rstrip("/") for k in vault.list(f"{cfg.mount}/") if k.endswith("/") and is_uuid(k.rstrip("/"))]
    now = runtime.now_iso()
    current_index = store.get_scratch(run_id, "index") or {}
    orphans = update_orphans(store.get_orphans(), result, source_status=status, now=now, index=current_index,
                             vault_ids=vault_ids)
    store.put_scratch(run_id, "orphans", orphans.model_dump(mode="json"), runtime.scratch_ttl(s))
    observations = observations_from(result, instances if cf_data is not None else None,
                                     cf_available=cf_data is not None)
    reports: list[Any] = []

    def merge(current: dict[str, Any]) -> dict[str, Any]:
        new, report = merge_index(current, observations, now=now, orphans=orphans.state)
        reports.append(report)
        return new

    written = write_index(vault, merge, path=f"{cfg.mount}/db")
    report = reports[-1]
    for issue in report.issues[:50]:
        log.info("index: %s %s %s", issue.kind, issue.key, issue.detail)
    verb = ("would write" if dry_run else "wrote") if written.written else "unchanged"
    log.info("index: %s %s: %d entries, %d added, %d updated, %d marked orphaned, %d issues",
             verb, f"{cfg.mount}/db", report.entries, len(report.added),
             len(report.updated), len(report.orphan_marked), len(report.issues),
             extra={"written": written.written, "attempts": written.attempts})
    if log.isEnabledFor(logging.DEBUG):
        for key in report.added:
            log.debug("index: added %s", key)
        for key in report.updated:
            log.debug("index: updated %s", key)
        for key in report.orphan_cleared:
            log.debug("index: orphan mark cleared on %s", key)
    part = None
    if vault.changes:
        part = "plan#index"
        store.put_scratch(run_id, part, describe([c.to_dict() for c in vault.changes], vault.mount),
                          runtime.scratch_ttl(s))
    return {"written": written.written and not dry_run, "would_write": written.written if dry_run else None,
            "plan_part": part, "attempts": written.attempts, "entries": report.entries,
            "added": len(report.added), "updated": len(report.updated), "issues": len(report.issues),
            "orphan_marked": len(report.orphan_marked)}
