"""ApplyBatch (phase 4): plan one batch of instances against their current Vault data, then
back up and write (``reconciler.apply``: backup first, cas writes, never drops a credential).

Reads are what the plan needs (``domain.paths_read``: a few GETs per instance, no LISTs),
up to ``concurrency.worker_pool_size`` at once; an instance with writes has its whole tree
read by ``apply_instance`` for the backup, except the paths the plan already read. Stops
early when the Lambda's time runs short (``done: false`` + next offset).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .. import progress
from ..apply import ApplyReport, BackupSettings, apply_plan, enforce_retention, migrate_legacy_backups
from ..domain import (
    DomainConfig,
    PlanItem,
    bindings_without_credentials,
    needs_parameters,
    paths_read,
    plan_batch,
    task_hold,
)
from ..errors import CircuitOpen, NotFound, PermissionDenied, ReconcilerError, Unavailable, VaultSealed
from ..plans import describe
from ..ports import KvStore
from ..recording import RecordingVault
from . import contracts, early_apply, runtime, sources
from .deps import Deps

log = logging.getLogger("reconciler.phases.apply_batch")
STEP = 5  # instances planned and applied between time checks (at least the read concurrency)


def sweep_backups(vault: KvStore, instance_ids: list[str], settings: BackupSettings, figures: dict[str, int],
                  record_error: Any) -> None:
    """Legacy migration and retention for instances this run leaves unchanged."""
    now = time.time()
    for iid in instance_ids:
        try:
            migrated = len(migrate_legacy_backups(vault, iid, settings=settings, now=now).migrated)
            removed = len(enforce_retention(vault, iid, settings, now=now))
        except (VaultSealed, CircuitOpen):
            raise  # Vault sealed or known down: the state machine decides
        except ReconcilerError as exc:
            record_error(iid, f"backup sweep: {type(exc).__name__}: {exc}")
            continue
        figures["legacy_migrated"] = figures.get("legacy_migrated", 0) + migrated
        figures["backups_removed"] = figures.get("backups_removed", 0) + removed
        if migrated or removed:
            log.info("vault: instance %s: %d legacy backup(s) migrated, %d expired backup(s) removed", iid,
                     migrated, removed)


class ParameterFetcher:
    """CF instance parameters for the records that lost them, one CF client per foundation,
    created on first use; a foundation that fails is not asked again in this invocation."""

    def __init__(self, client_of: Any, figures: dict[str, Any]) -> None:
        self.client_of, self.figures = client_of, figures
        self.down: dict[str, str] = {}

    def fill(self, items: list[PlanItem], views: dict[str, Any], cfg: DomainConfig) -> list[PlanItem]:
        out = []
        for item in items:
            if needs_parameters(item, views.get(item.instance_id, {}), cfg):
                params = self.fetch(item.cf.foundation, item.instance_id)  # type: ignore[union-attr]
                if params is not None:
                    item = item.model_copy(update={"parameters": params})
            out.append(item)
        return out

    def fetch(self, foundation: str, instance_id: str) -> dict[str, Any] | None:
        if foundation in self.down:
            self._count("parameters_not_fetched")
            return None
        try:
            client = self.client_of(foundation)
            if client is None:
                self._count("parameters_not_fetched")
                return None
            params = client.instance_parameters(instance_id)
        except Unavailable as exc:  # CF down or its breaker open: not asked again this invocation
            self.down[foundation] = str(exc)
            log.warning("cf:%s: instance parameters not fetched (CF unavailable): %s", foundation, exc)
            self._count("parameters_not_fetched")
            return None
        except ReconcilerError as exc:  # 400 not supported, 404 gone: the record stays without them
            log.warning("cf:%s: instance %s: parameters not fetched: %s", foundation, instance_id,
                        type(exc).__name__)
            self._count("parameters_not_fetched")
            return None
        self._count("parameters_fetched")
        log.info("cf:%s: instance %s: parameters fetched for a record that had none", foundation, instance_id)
        return params

    def _count(self, name: str) -> None:
        self.figures[name] = self.figures.get(name, 0) + 1


def count_plans(plans: list[Any], again: list[str], flagged: set[str], figures: dict[str, Any]) -> None:
    """The plans' figures (credential recovery, skips, operations in flight, history) and logs;
    instances to be tried again are counted on their second try."""
    for p in plans:
        if p.instance_id in again:
            continue  # counted on its second try
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


def transient(error: str) -> bool:
    return error.startswith(("Unavailable", "RateLimited"))  # a request failed its retries: worth one more go


FIGURE_NAMES = {"written": "instances_written", "unchanged": "instances_unchanged", "failed": "instances_failed"}


class BatchApply:
    """One ApplyBatch invocation: its batch's plan items, its Vault (every change through the
    recorder), its CF clients and the figures it adds up."""

    def __init__(self, event: dict[str, Any], context: Any, deps: Deps) -> None:
        self.event, self.deps = event, deps
        given = contracts.parse(contracts.BatchInput, event, "run_id", "batch", "offset")
        self.run_id, self.batch, self.offset = given.run_id, given.batch, given.offset
        s, store = self.settings, self.store = deps.settings, deps.store
        if not event.get("early"):  # an early batch runs beside the scan: the run is still in ScanDeployments
            progress.phase_started(store, self.run_id, "UpdateVault")
        self.cfg = DomainConfig.from_settings(s)
        self.items = [PlanItem.model_validate(i)
                      for i in store.get_scratch(self.run_id, contracts.apply_items(self.batch)) or []]
        self.key = contracts.batch_figures("apply", self.batch)
        self.figures: dict[str, Any] = (
            (store.get_scratch(self.run_id, contracts.progress(self.key)) or {}) if self.offset else {})
        flags = store.get_scratch(self.run_id, contracts.FLAGS) or {}
        # every change goes through the recorder: a dry run's writes stay in its overlay (the plan)
        self.vault = RecordingVault(deps.kv(flags.get("kv_version")),
                                    dry_run=bool(flags.get("dry_run")))
        self.backup_settings = BackupSettings.from_settings(s)
        self.bosh_available = bool(flags.get("bosh_available", True))
        self.cf_available = bool(flags.get("cf_available", True))
        self.cf_endpoints = flags.get("cf_endpoints") or {}  # UAA's links DiscoverCF read: no API root read here
        self.budget = runtime.Budget.for_batch(context, s, event)
        self.paused = False  # batch.delay: paused before the batch's first Vault request only
        # a forced run also sweeps the instances it does not write: legacy backups migrated, old
        # backups aged out (a written instance gets both from apply_instance, every run)
        self.sweep = self.backup_settings.enabled and bool(flags.get("forced"))
        self.workers = max(1, s.reconciler.concurrency.worker_pool_size)  # Vault reads in flight
        self.failed_ids: list[str] = list(self.figures.pop("failed_ids", None) or [])  # tried first next run
        self.clients: dict[str, Any] = {}
        self.parameters = ParameterFetcher(self.client_of, self.figures)
        # instances this run already backed up (or found nothing to protect in), kept across this
        # batch's tries and invocations: a retry over its own half-written tree takes no backup
        self.protected: set[str] = set(store.get_scratch(self.run_id, contracts.apply_protected(self.batch)) or [])
        self.protected_saved = set(self.protected)

    def pause(self) -> None:
        """``batch.delay`` before the first request of a second-wave batch, once: a batch that
        sends no request (nothing to read) does not wait."""
        if not self.paused:
            self.paused = True
            s = self.settings
            runtime.pause_between_batches(
                self.batch, self.offset, s.reconciler.batch.delay, s, self.budget, sleep=self.deps.sleep,
                claim=lambda n, hold: self.store.claim_pause(self.run_id, "apply", n, hold))

    def record_error(self, target: str, message: str) -> None:
        self.store.record_error(self.run_id, "ApplyBatch", target, message)

    def count(self, name: str, value: int = 1) -> None:
        self.figures[name] = self.figures.get(name, 0) + value

    def read(self, path: str) -> tuple[str, Any, str | None]:
        try:
            return path, self.vault.read(path), None
        except (VaultSealed, CircuitOpen):
            raise  # Vault is down for everyone: the state machine's retry/catch decides
        except ReconcilerError as exc:  # this path's reads failed (after retries): its instance alone fails
            return path, None, f"{type(exc).__name__}: {exc}"

    def read_all(self, pool: Any, paths: list[str]) -> list[tuple[str, Any, str | None]]:
        """Every path's read: the first alone (a sealed Vault stops the batch at one request,
        before parallel failures open the circuit and hide why), the rest in parallel. Vault
        down stops the batch with the most telling error: sealed over an open circuit."""
        if not paths:
            return []
        out = [self.read(paths[0])]
        futures = [pool.submit(self.read, p) for p in paths[1:]]
        down: list[Exception] = []
        for future in futures:
            try:
                out.append(future.result())
            except (VaultSealed, CircuitOpen) as exc:
                down.append(exc)
        if down:
            raise next((e for e in down if isinstance(e, VaultSealed)), down[0])
        return out

    def client_of(self, foundation: str) -> Any:
        """The CF client of a configured foundation (None: not configured), created on first use."""
        if not self.clients:
            self.clients.update(self.deps.cloud_controllers(self.cf_endpoints))
        return self.clients.get(foundation)

    def fetch_binding(self, binding: Any) -> tuple[Any, str | None, bool]:
        """(binding with credentials or as it was, why not, whether to retry next run)."""
        try:
            client = self.client_of(binding.foundation)
            if client is None:
                return binding, f"no CF foundation named {binding.foundation!r} is configured", False
            return sources.binding_credentials(client, binding), None, False
        except (PermissionDenied, NotFound) as exc:  # CC answers 404 to clients that may not read secrets
            return binding, (f"CF did not give its credentials ({type(exc).__name__}: the CF client needs "
                             "cloud_controller.admin or cloud_controller.admin_read_only, or the binding is gone)"), \
                False
        except ReconcilerError as exc:
            return binding, f"reading its details from CF failed: {type(exc).__name__}: {exc}"[:300], True

    def restore_bindings(self, chunk_items: list[PlanItem], views: dict[str, dict[str, Any]],
                         pool: Any) -> list[PlanItem]:
        """Bindings with no credentials in Vault get CF's (written only where nothing exists)."""
        wanted = {i.instance_id: bindings_without_credentials(i, views.get(i.instance_id, {}), self.cfg)
                  for i in chunk_items if self.cf_available}
        todo = [b for bs in wanted.values() for b in bs]
        if not todo:
            return chunk_items
        self.pause()
        got: dict[str, Any] = {}
        for binding, why, again in pool.map(self.fetch_binding, todo):
            if why is None:
                got[binding.guid] = binding
                self.count("binding_credentials_restored")
                continue
            self.count("binding_credentials_failed" if again else "bindings_need_credential_recovery")
            target = f"binding {binding.guid} of instance {binding.instance_guid}"
            log.error("cf: %s: needs_credential_recovery: %s", target, why)
            self.record_error(target, f"needs_credential_recovery: {why}"[:500])
            if again:
                self.failed_ids.append(binding.instance_guid)  # the next run tries it first
        if not got:
            return chunk_items
        return [i.model_copy(update={"bindings": [got.get(b.guid, b) for b in i.bindings]})
                if wanted.get(i.instance_id) else i for i in chunk_items]

    def read_chunk(self, pool: Any, wanted: dict[str, list[str]]) -> tuple[dict[str, Any], dict[str, str]]:
        """(every wanted path's value, the first read error of each instance that has one)."""
        if any(wanted.values()):
            self.pause()
            self.vault.kv_version  # noqa: B018 - detected once (cached), before the reads fan out
        got, read_errors = {}, {}
        for path, value, error in self.read_all(pool, [p for paths in wanted.values() for p in paths]):
            got[path] = value
            if error:
                read_errors[path] = error
        unread = {iid: next(read_errors[p] for p in paths if p in read_errors)
                  for iid, paths in wanted.items() if any(p in read_errors for p in paths)}
        return got, unread

    @staticmethod
    def known(wanted: dict[str, list[str]], got: dict[str, Any], unread: dict[str, str]) -> dict[str, dict[str, Any]]:
        """Per instance every path the plan read, None where it was absent: the tree read
        before a write reads neither again (a lost root was read twice; its cas write, 0 for
        an absent path, fails if it appeared meanwhile)."""
        return {iid: {p: got.get(p) for p in paths} for iid, paths in wanted.items() if paths and iid not in unread}

    def record_unread(self, unread: dict[str, str], again: list[str]) -> None:
        """Instances whose reads failed (not to be tried again now): recorded and skipped alone;
        the next run retries them first."""
        for iid, error in unread.items():
            if iid in again:
                continue
            log.error("vault: instance %s not reconciled: reading its current data failed: %s", iid, error)
            self.record_error(f"instance {iid}", f"read failed: {error}"[:500])
            self.count("instances")
            self.count("instances_failed")
            self.failed_ids.append(iid)

    def record_report(self, report: ApplyReport) -> None:
        """An apply report's logs, recorded failures and figures."""
        for r in report.instances:
            taken = f"{'new' if r.backup_created else 'kept'} {r.backup_sha256[:12]}" if r.backup_sha256 else "none"
            log.debug("vault: instance %s %s: %d write(s), %d equal to Vault; backup %s", r.instance_id, r.status,
                      r.writes, r.writes_skipped, taken)
            if r.status == "failed":
                self.record_error(f"instance {r.instance_id}", r.error or "failed")
                self.failed_ids.append(r.instance_id)
            elif r.status == "held":  # in flight, as a plan that read the task record skips it
                log.info("vault: instance %s not written: %s", r.instance_id, r.held)
                self.count("instances_in_flight")
                self.figures.setdefault("in_flight_tasks", {})[r.instance_id] = r.held
        for name, value in report.figures.items():
            self.count(FIGURE_NAMES.get(name, name), value)

    def sweep_unchanged(self, planned: list[PlanItem], report: ApplyReport, again: list[str]) -> None:
        """A forced run's backup sweep of the planned instances neither written nor to be tried again."""
        written = {r.instance_id for r in report.instances if r.status == "written"}
        self.pause()
        sweep_backups(self.vault, [i.instance_id for i in planned if i.instance_id not in written
                                   and i.instance_id not in again],
                      self.backup_settings, self.figures,
                      lambda iid, msg: self.record_error(f"instance {iid}", msg))

    def process(self, chunk: list[PlanItem], pool: Any, may_retry: bool) -> list[str]:
        """Read, plan and apply ``chunk``; returns the instances that failed transiently when
        ``may_retry`` (not counted yet: the caller gives them one more try from fresh reads)."""
        wanted = {i.instance_id: paths_read(i, self.cfg) for i in chunk}
        got, unread = self.read_chunk(pool, wanted)
        again = [iid for iid, error in unread.items() if may_retry and transient(error)]
        self.record_unread(unread, again)
        planned = [i for i in chunk if i.instance_id not in unread]
        views = {i: {p: got[p] for p in paths if got[p] is not None} for i, paths in wanted.items()
                 if paths and i not in unread}
        planned = self.restore_bindings(planned, views, pool)
        if self.cf_available:  # only records that lost their parameters, where CF can tell
            planned = self.parameters.fill(planned, views, self.cfg)
        plan = plan_batch(planned, views, now=runtime.now_iso(), cfg=self.cfg, bosh_available=self.bosh_available)
        flagged = {i.instance_id for i in chunk if i.in_flight}
        writes = {p.instance_id: p.writes for p in plan.plans if not p.skipped}
        index = {i.instance_id: i.index_entry for i in chunk if i.index_entry}
        # an instance with writes gets the rest of its tree read (the backup's content); the
        # paths the plan read are reused, their cas versions guarding the writes
        # the broker's task record, where the plan did not read it (CF settled), is judged on
        # the tree read before the writes: an operation started since CF was read holds them
        if any(writes.values()):
            self.pause()
        protected = set(self.protected)
        try:
            report = apply_plan(self.vault, writes, settings=self.backup_settings, index=index, now=time.time(),
                                known=self.known(wanted, got, unread),
                                hold=task_hold(chunk, now=time.time(), cfg=self.cfg), protected=protected)
        except BaseException:
            self.keep_protected(protected, save=True)
            raise
        self.keep_protected(protected, save=bool(report.aborted))
        again += [r.instance_id for r in report.instances
                  if r.status == "failed" and may_retry and transient(r.error or "")]
        report = ApplyReport([r for r in report.instances if r.instance_id not in again], report.aborted,
                             report.cause)
        self.record_report(report)
        count_plans(plan.plans, again, flagged, self.figures)
        if report.aborted:  # Vault sealed/unreachable: let the state machine's retry/catch decide
            if isinstance(report.cause, CircuitOpen):  # run() waits for its trial when there is time
                raise report.cause
            raise Unavailable(f"batch {self.batch}: {report.aborted}", api="vault")
        if self.sweep:
            self.sweep_unchanged(planned, report, again)
        return again

    def keep_protected(self, protected: set[str], *, save: bool) -> None:
        """The instances protected so far, for this invocation's next try; ``save`` (the batch
        stops here: Vault down, its breaker open) also for the batch's next invocation, one
        scratch write when some are new. A dry run keeps none: its changes of a chunk that
        stopped are planned again, backups included."""
        if self.vault.dry_run:
            return
        self.protected = protected
        if save and protected - self.protected_saved:
            self.protected_saved = set(protected)
            self.store.put_scratch(self.run_id, contracts.apply_protected(self.batch), sorted(protected),
                                   runtime.scratch_ttl(self.settings))

    def apply_items(self) -> int:
        """Plan and apply the items from the offset on, a step at a time, until done or out of
        time (at least one step: always progress); returns the position reached."""
        position, step = self.offset, max(STEP, self.workers)
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            while position < len(self.items) and (position == self.offset or not self.budget.exhausted()):
                chunk = self.items[position:position + step]
                kept = (dict(self.figures), list(self.failed_ids), len(self.vault.changes))
                try:
                    again = self.process(chunk, pool, may_retry=True)
                    if again:  # one more try, from fresh reads (a partly applied instance is re-planned)
                        log.info("vault: batch %d: %d instance(s) failed transiently; trying them once more",
                                 self.batch, len(again))
                        self.process([i for i in chunk if i.instance_id in again], pool, may_retry=False)
                except CircuitOpen as exc:
                    if position == self.offset:
                        raise  # nothing done yet: run() waits for the trial or hands the batch over
                    # the steps done are kept: the next invocation (fresh budget) starts at this
                    # chunk, its figures as before it (the chunk is planned again from fresh reads)
                    self.figures.clear()
                    self.figures.update(kept[0])
                    self.failed_ids = kept[1]
                    if self.vault.dry_run:  # a dry run's plan of this chunk is made again
                        del self.vault.changes[kept[2]:]
                    log.warning("vault: batch %d: %s; stopping at %d of %d, the next invocation goes on",
                                self.batch, exc, position, len(self.items))
                    break
                position += len(chunk)
        return position

    def save(self, position: int, began: float) -> dict[str, Any]:
        """The invocation's figures, plan part and progress saved; the state machine's next event."""
        figures, done = self.figures, position >= len(self.items)
        if self.failed_ids:
            figures["failed_ids"] = self.failed_ids
        self.count("busy_ms", int((time.monotonic() - began) * 1000))  # adaptive sizing
        self.count("items", position - self.offset)
        if done:
            log.info("vault: update batch %d done: %d written, %d unchanged, %d failed, %d backups written",
                     self.batch, figures.get("instances_written", 0), figures.get("instances_unchanged", 0),
                     figures.get("instances_failed", 0), figures.get("backups_written", 0),
                     extra={"batch": self.batch, **{k: v for k, v in figures.items() if k != "failed_ids"}})
        ttl = runtime.scratch_ttl(self.settings)
        vault = self.vault
        if vault.changes:  # this invocation's part of the run's plan (dry run) or changes (real run), masked
            part = contracts.plan_part(self.batch, self.offset)
            self.store.put_scratch(self.run_id, part, describe([c.to_dict() for c in vault.changes], vault.mount),
                                   ttl)
            figures["plan_parts"] = [*figures.get("plan_parts", []), part]
        self.store.put_scratch(self.run_id, self.key if done else contracts.progress(self.key), figures, ttl)
        progress.batch_progress(self.store, self.run_id, "apply", position - self.offset, done)
        return {**self.event, "offset": position, "done": done}


def run(event: dict[str, Any], context: Any, deps: Deps) -> dict[str, Any]:
    """One invocation; an open Vault breaker that stops it is waited for (its trial) and the
    batch run again from its input, when that fits the invocation's time (else the state
    machine's catch records the batch as not processed)."""
    def attempt(timed: dict[str, Any]) -> dict[str, Any]:
        if timed.get("early") and not timed.get("offset") and not timed.get("early_cut"):
            if early_apply.cut(timed, context, deps) is None:  # out of time waiting for its scans: again
                return {**timed, "offset": 0, "done": False, "early_waits": int(timed.get("early_waits") or 0) + 1}
            timed = {**timed, "early_cut": True}
        job = BatchApply(timed, context, deps)
        began = time.monotonic()
        return job.save(job.apply_items(), began)

    return runtime.batch_through_open_breaker(attempt, event, context, deps.settings, what="vault: update batch")
