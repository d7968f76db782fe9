"""SyncIndex (phase 5): merge this run's observations into ``secret/db`` and write it once,
with check-and-set (a broker write in between is re-read and merged again). The broker's
format and its hourly sweep decide what goes in (``domain/index.py``): no orphan marks, no
entry without a deployment, nothing for an instance with an operation in flight.

The orphan evaluation (pure) happens here, on the same evidence; the Orphans state publishes it.
Orphan state lives in the store and, for an instance whose state changed, in its metadata
history (``orphaned`` / ``orphan_resolved`` entries in the broker's format).
"""

from __future__ import annotations

import logging
from typing import Any

from .. import progress
from ..apply import write_index
from ..domain import DomainConfig, MatchResult, is_uuid, merge_index, observations_from, update_orphans
from ..domain.broker import bound_history, history_in_broker_format, orphan_history, unix_seconds
from ..errors import CasConflict, CircuitOpen, ReconcilerError, VaultSealed
from ..plans import describe
from ..recording import RecordingVault
from . import contracts, runtime, sources
from .deps import Deps

log = logging.getLogger("reconciler.phases.sync_index")


def source_status(run: contracts.Run, srcs: contracts.Sources) -> dict[str, str]:
    """Evidence for orphan marking: a selective run evaluates nothing."""
    if run.selection:
        return {"cf": "skipped", "bosh": "skipped", "vault": "skipped"}
    cf, bosh = srcs.cf, srcs.bosh
    status = {"cf": cf.status if cf else "failed", "bosh": bosh.status if bosh else "failed", "vault": "ok"}
    shares = (("cf", cf.ok_foundations if cf else [], cf.failed_foundations if cf else []),
              ("bosh", bosh.ok_directors if bosh else [], bosh.failed_directors if bosh else []))
    for name, ok, failed in shares:
        if failed and ok:  # some down: judge the others' share
            status.pop(name)
            status.update({f"{name}:{m}": "ok" for m in ok})
            status.update({f"{name}:{m}": "failed" for m in failed})
    return status


def in_flight_tasks(store: Any, run_id: str) -> dict[str, str]:
    """Instances the update batches found busy in their ``secret/<id>/task`` record."""
    flags = store.get_scratch(run_id, contracts.FLAGS) or {}
    out: dict[str, str] = {}
    for b in range(int(flags.get("apply_batches") or 0)):
        figures = store.get_scratch(run_id, contracts.batch_figures("apply", b)) or {}
        tasks = figures.get("in_flight_tasks")
        if isinstance(tasks, dict):
            out.update({str(k): str(v) for k, v in tasks.items()})
    return out


def log_broker_findings(report: Any) -> None:
    """What an operator must know about the index beside the broker (ids and names only)."""
    for m in report.name_mismatch:
        log.warning("index: name mismatch: instance %s runs as deployment %s, the broker derives %s%s: %s",
                    m.instance_id, m.deployment_name, m.derived_name,
                    " (entry restored: the broker's sweep had removed it)"
                    if m.instance_id in report.name_mismatch_restored else "", m.advice)
    if report.left_for_broker:
        log.info("index: %d CF instance(s) without a deployment not (re)added: the broker's sweep removes "
                 "such entries", len(report.left_for_broker))
    if report.in_flight:
        log.info("index: %d instance(s) with an operation in flight left alone", len(report.in_flight))
    if report.orphan_cleared:
        log.info("index: %d orphan mark(s) of an older reconciler removed from entries", len(report.orphan_cleared))


def record_orphan_history(vault: Any, entries: dict[str, list[dict[str, Any]]], cfg: DomainConfig) -> int:
    """Append each instance's orphan transitions to its ``secret/<id>/metadata`` history, where
    that record exists (an orphan never gets a tree from us); cas on the version read, one
    re-read on a conflict with the broker. Returns the records written; a failure is logged."""
    written = 0
    for uid, new in sorted(entries.items()):
        path = f"{cfg.mount}/{uid}/metadata"
        for attempt in (1, 2):
            try:
                got = vault.read(path)
                if got is None or not isinstance(got[0], dict):
                    break
                meta, version = dict(got[0]), got[1]
                old = meta.get("history")
                history, _ = history_in_broker_format(old if isinstance(old, list) else [])
                meta["history"] = bound_history([*history, *new], cfg.history_limit)
                vault.write(path, meta, cas=version)
                written += 1
                break
            except CasConflict:
                if attempt == 2:
                    log.warning("orphans: history of %s not recorded: the broker kept writing it", uid)
            except (VaultSealed, CircuitOpen):
                raise  # Vault sealed or known down: the state machine decides
            except ReconcilerError as exc:  # this record alone (a request that failed its retries included)
                log.warning("orphans: history of %s not recorded: %s", uid, type(exc).__name__)
                break
    return written


def run(event: dict[str, Any], context: Any, deps: Deps) -> dict[str, Any]:
    # an open Vault breaker about to let a trial through must not fail the run: wait for it once
    return runtime.through_open_breaker(lambda: sync(event, context, deps), runtime.Budget.for_phase(context, event),
                                        what="index")


def sync(event: dict[str, Any], context: Any, deps: Deps) -> dict[str, Any]:
    given = contracts.parse(contracts.SourcesInput, event, "run", "sources")
    run, srcs, run_id = given.run, given.sources, given.run.run_id
    s, store = deps.settings, deps.store
    progress.phase_started(store, run_id, "SyncIndex")
    cfg = DomainConfig.from_settings(s)
    dry_run = run.dry_run
    kv_version = (store.get_scratch(run_id, contracts.FLAGS) or {}).get("kv_version")  # Match detected it
    vault = RecordingVault(deps.kv(kv_version), dry_run=dry_run)
    result = MatchResult.model_validate(store.get_scratch(run_id, contracts.MATCH) or {})
    cf_data = store.get_scratch(run_id, contracts.CF)
    instances, _, _ = sources.load_cf(cf_data)
    status = source_status(run, srcs)
    vault_ids = [k.rstrip("/") for k in vault.list(f"{cfg.mount}/") if k.endswith("/") and is_uuid(k.rstrip("/"))]
    now = runtime.now_iso()
    current_index = store.get_scratch(run_id, contracts.INDEX) or {}
    result.in_flight.update(in_flight_tasks(store, run_id))
    previous = store.get_orphans()
    orphans = update_orphans(previous, result, source_status=status, now=now, index=current_index,
                             serves=cfg.director_foundations, vault_ids=vault_ids)
    store.put_scratch(run_id, contracts.ORPHANS, orphans.model_dump(mode="json"), runtime.scratch_ttl(s))
    observations = observations_from(result, instances if cf_data is not None else None,
                                     cf_available=cf_data is not None,
                                     bosh_available=srcs.bosh is not None and srcs.bosh.status == "ok")
    reports: list[Any] = []

    def merge(current: dict[str, Any]) -> dict[str, Any]:
        new, report = merge_index(current, observations, now=now, remove_old_marks=not run.selection)
        reports.append(report)
        return new

    written = write_index(vault, merge, path=f"{cfg.mount}/db")
    report = reports[-1]
    history = record_orphan_history(vault, orphan_history(orphans, previous, now=unix_seconds(now) or 0), cfg)
    log_broker_findings(report)
    for issue in report.issues[:50]:
        log.info("index: %s %s %s", issue.kind, issue.key, issue.detail)
    verb = ("would write" if dry_run else "wrote") if written.written else "unchanged"
    log.info("index: %s %s: %d entries, %d added, %d updated, %d name-mismatch entries restored, %d issues",
             verb, f"{cfg.mount}/db", report.entries, len(report.added),
             len(report.updated), len(report.name_mismatch_restored), len(report.issues),
             extra={"written": written.written, "attempts": written.attempts})
    if log.isEnabledFor(logging.DEBUG):
        for key in report.added:
            log.debug("index: added %s", key)
        for key in report.updated:
            log.debug("index: updated %s", key)
        for key in report.orphan_cleared:
            log.debug("index: old orphan mark removed from %s", key)
    part = None
    if vault.changes:
        part = contracts.PLAN_INDEX
        store.put_scratch(run_id, part, describe([c.to_dict() for c in vault.changes], vault.mount),
                          runtime.scratch_ttl(s))
    return {"written": written.written and not dry_run, "would_write": written.written if dry_run else None,
            "plan_part": part, "attempts": written.attempts, "entries": report.entries,
            "added": len(report.added), "updated": len(report.updated), "issues": len(report.issues),
            "orphan_marks_removed": len(report.orphan_cleared), "in_flight": len(report.in_flight),
            "left_for_broker": len(report.left_for_broker), "name_mismatch": len(report.name_mismatch),
            "name_mismatch_restored": len(report.name_mismatch_restored), "orphan_history_written": history}
