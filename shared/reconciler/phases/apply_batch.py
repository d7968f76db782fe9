"""ApplyBatch (phase 4): plan one batch of instances against their current Vault data, then
back up and write (``reconciler.apply``: backup first, cas writes, never drops a credential).

Reads are what the plan needs (``domain.paths_read``: a few GETs per instance, no LISTs),
up to ``concurrency.worker_pool_size`` at once; an instance with writes has its whole tree
read by ``apply_instance`` for the backup. Stops early when the Lambda's time runs short
(``done: false`` + next offset).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .. import env
from ..apply import BackupSettings, apply_plan, enforce_retention, migrate_legacy_backups
from ..domain import DomainConfig, PlanItem, paths_read, plan_batch
from ..errors import ReconcilerError, Unavailable
from . import runtime, sources

log = logging.getLogger("reconciler.phases.apply_batch")
STEP = 5  # instances planned and applied between time checks (at least the read concurrency)


def sweep_backups(vault: Any, instance_ids: list[str], settings: BackupSettings, figures: dict[str, int],
                  record_error: Any) -> None:
    """Legacy migration and retention for instances this run leaves unchanged."""
    now = time.time()
    for iid in instance_ids:
        try:
            migrated = len(migrate_legacy_backups(vault, iid, settings=settings, now=now).migrated)
            removed = len(enforce_retention(vault, iid, settings, now=now))
        except Unavailable:
            raise  # Vault sealed or unreachable: the state machine decides
        except ReconcilerError as exc:
            record_error(iid, f"backup sweep: {type(exc).__name__}: {exc}")
            continue
        figures["legacy_migrated"] = figures.get("legacy_migrated", 0) + migrated
        figures["backups_removed"] = figures.get("backups_removed", 0) + removed
        if migrated or removed:
            log.info("vault: instance %s: %d legacy backup(s) migrated, %d expired backup(s) removed", iid,
                     migrated, removed)


def run(event: dict[str, Any], context: Any) -> dict[str, Any]:
    run_id, batch, offset = runtime.require(event, "run_id", "batch", "offset")
    s, store = runtime.settings(), runtime.store()
    cfg = DomainConfig.from_settings(s)
    items = [PlanItem.model_validate(i) for i in store.get_scratch(run_id, f"apply#{batch}#items") or []]
    key = f"apply#{batch}#figures"
    figures: dict[str, int] = (store.get_scratch(run_id, key + "#progress") or {}) if offset else {}
    vault = sources.vault(s, store)
    backup_settings = BackupSettings.from_settings(s)
    flags = store.get_scratch(run_id, "flags") or {}
    bosh_available = bool(flags.get("bosh_available", True))
    budget = runtime.Budget.for_batch(context, s, event)
    runtime.pause_between_batches(batch, offset, s.reconciler.batch.delay, s, budget)
    # a forced run also sweeps the instances it does not write: legacy backups migrated, old
    # backups aged out (a written instance gets both from apply_instance, every run)
    sweep = backup_settings.enabled and bool(flags.get("forced"))
    workers = max(1, s.reconciler.concurrency.worker_pool_size)  # Vault reads in flight
    step = max(STEP, workers)

    def read(path: str) -> tuple[str, Any]:
        return path, vault.read(path)

    position = offset
    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        while position < len(items) and (position == offset or not budget.exhausted()):  # always progress
            chunk = items[position:position + step]
            wanted = {i.instance_id: paths_read(i, cfg) for i in chunk}
            if position == offset and any(wanted.values()):
                vault.kv_version  # noqa: B018 - detect it once, before the reads fan out
            got = dict(pool.map(env.bind(read), [p for paths in wanted.values() for p in paths]))
            views = {i: {p: got[p] for p in paths if got[p] is not None} for i, paths in wanted.items() if paths}
            plan = plan_batch(chunk, views, now=runtime.now_iso(), cfg=cfg, bosh_available=bosh_available)
            flagged = {i.instance_id for i in chunk if i.in_flight}
            writes = {p.instance_id: p.writes for p in plan.plans if not p.skipped}
            index = {i.instance_id: i.index_entry for i in chunk if i.index_entry}
            # no trees: an instance with writes gets its whole tree read (the backup's content)
            report = apply_plan(vault, writes, settings=backup_settings, index=index, now=time.time())
            for p in plan.plans:
                if p.credentials_recovered:
                    figures["credentials_recovered"] = figures.get("credentials_recovered", 0) + 1
                    log.info("vault: instance %s: credentials recovered from its manifest and VMs", p.instance_id)
                elif p.credential_recovery_deferred:  # not attempted: no scan this run; the next run tries
                    figures["credentials_pending"] = figures.get("credentials_pending", 0) + 1
                    log.warning("vault: instance %s: credential recovery pending: %s", p.instance_id,
                                p.credential_recovery_reason)
                elif p.needs_credential_recovery:
                    figures["credentials_unrecoverable"] = figures.get("credentials_unrecoverable", 0) + 1
                    log.error("vault: instance %s: credential recovery failed: %s", p.instance_id,
                              p.credential_recovery_reason or "no reason given")
                if p.skipped:
                    log.debug("vault: instance %s skipped: %s", p.instance_id, p.skipped)
                    figures["instances_skipped"] = figures.get("instances_skipped", 0) + 1
                if p.in_flight:
                    figures["instances_in_flight"] = figures.get("instances_in_flight", 0) + 1
                    if p.instance_id not in flagged:  # found in its task record: SyncIndex and Orphans skip it too
                        figures.setdefault("in_flight_tasks", {})[p.instance_id] = p.in_flight
                if p.history_converted:
                    figures["history_converted"] = figures.get("history_converted", 0) + p.history_converted
            for r in report.instances:
                taken = f"{'new' if r.backup_created else 'kept'} {r.backup_sha256[:12]}" if r.backup_sha256 else "none"
                log.debug("vault: instance %s %s: %d write(s), %d equal to Vault; backup %s", r.instance_id, r.status,
                          r.writes, r.writes_skipped, taken)
                if r.status == "failed":
                    store.record_error(run_id, "ApplyBatch", f"instance {r.instance_id}", r.error or "failed")
            for name, value in report.figures.items():
                figures_key = {"written": "instances_written", "unchanged": "instances_unchanged",
                               "failed": "instances_failed"}.get(name, name)
                figures[figures_key] = figures.get(figures_key, 0) + value
            if report.aborted:  # Vault sealed/unreachable: let the state machine's retry/catch decide
                raise Unavailable(f"batch {batch}: {report.aborted}", api="vault")
            if sweep:
                written = {r.instance_id for r in report.instances if r.status == "written"}
                sweep_backups(vault, [i.instance_id for i in chunk if i.instance_id not in written],
                              backup_settings, figures, lambda iid, msg: store.record_error(
                                  run_id, "ApplyBatch", f"instance {iid}", msg))
            position += len(chunk)
    done = position >= len(items)
    figures["busy_ms"] = figures.get("busy_ms", 0) + int((time.monotonic() - began) * 1000)  # adaptive sizing
    figures["items"] = figures.get("items", 0) + position - offset
    if done:
        log.info("vault: update batch %d done: %d written, %d unchanged, %d failed, %d backups written", batch,
                 figures.get("instances_written", 0), figures.get("instances_unchanged", 0),
                 figures.get("instances_failed", 0), figures.get("backups_written", 0),
                 extra={"batch": batch, **figures})
    ttl = runtime.scratch_ttl(s)
    store.put_scratch(run_id, key if done else key + "#progress", figures, ttl)
    return {**event, "offset": position, "done": done}
