"""Auto-remediation, run by the Orphans phase after the findings are known (``reconciler.remediation``).

``domain.select_remediation`` decides (pure); this does it: each due Vault orphan is archived
(``apply.archive_instance``: verified backup, then its paths and index entry removed) through a
:class:`RecordingVault`, so a dry run plans the archive without doing it and a real run
records what it removed. Each archive is logged, recorded in the instance's history and in the
run record, and Finish sends it as the ``remediation`` notification; ``restore`` (the backup
sha is in each) undoes it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ..apply import BackupSettings, archive_instance
from ..domain import DomainConfig, FindingKind, OrphanUpdate
from ..domain.remediation import RemediationAction, select_remediation
from ..errors import ReconcilerError, Unavailable
from ..plans import describe
from ..recording import RecordingVault
from . import contracts, runtime
from .deps import Deps

log = logging.getLogger("reconciler.phases.remediate")
MAX_LISTED = 50  # waiting findings named in the run record (the count is always there)


def remediate(run: contracts.Run, update: OrphanUpdate, deps: Deps) -> dict[str, Any]:
    """Archive the due findings; return the run record's ``remediation`` part (and mark the
    archived findings in ``update.state``)."""
    settings, store = deps.settings, deps.store
    cfg = DomainConfig.from_settings(settings)
    evaluated = [k.value for k in FindingKind if k.value not in update.skipped]
    due, waiting = select_remediation(update.state, cfg.remediation, now=update.evaluated_at, evaluated=evaluated)
    out: dict[str, Any] = {"policies": {k: p.action for k, p in cfg.remediation.items() if p.action != "report"},
                           "archived": [], "failed": [], "waiting": len(waiting),
                           "waiting_for": [{"instance_id": w.instance_id, "reason": w.reason}
                                           for w in waiting[:MAX_LISTED]]}
    if not due:
        return out
    run_id, dry_run = run.run_id, run.dry_run
    vault = RecordingVault(deps.kv(), dry_run=dry_run)
    backups = BackupSettings.from_settings(settings)
    ttl = runtime.scratch_ttl(settings)
    for action in due:
        intent_key = contracts.archive_intent(action.instance_id)
        resume = None if dry_run else (store.get_scratch(run_id, intent_key) or {}).get("backup")

        def keep_intent(sha: str, key: str = intent_key) -> None:
            if not dry_run:  # a retried Orphans step finishes this archive instead of backing up what is left
                store.put_scratch(run_id, key, {"backup": sha}, ttl)

        try:
            result = archive_instance(vault, action.instance_id, settings=backups, now=time.time(),
                                      resume_from=resume, on_backup=keep_intent)
        except Unavailable:
            raise  # Vault down: the state machine's retry resumes from the intent
        except ReconcilerError as exc:
            out["failed"].append({"instance_id": action.instance_id, "reason": f"{type(exc).__name__}: {exc}"[:300]})
            store.record_error(run_id, "Orphans", f"instance {action.instance_id}", f"archive failed: {exc}"[:500])
            continue
        if result.skipped:
            out["failed"].append({"instance_id": action.instance_id, "reason": result.skipped})
            log.warning("remediation: instance %s not archived: %s", action.instance_id, result.skipped)
            continue
        record = _record(action, result, run_id, dry_run)
        out["archived"].append(record)
        if not dry_run:
            entry = update.state[action.kind][action.key]
            entry["archived"] = {"run_id": run_id, "at": update.evaluated_at, "backup_sha256": result.backup_sha256}
            store.record_instance_event(action.instance_id, record)
        _notify(record)
    if vault.changes:
        out["plan_part"] = contracts.PLAN_REMEDIATION
        store.put_scratch(run_id, out["plan_part"], describe([c.to_dict() for c in vault.changes], vault.mount), ttl)
    return out


def _record(action: RemediationAction, result: Any, run_id: str, dry_run: bool) -> dict[str, Any]:
    return {"event": "would_archive" if dry_run else "archived", "run_id": run_id, "kind": action.kind,
            "instance_id": action.instance_id, "backup_sha256": result.backup_sha256,
            "paths_removed": len(result.removed), "index_entry_removed": result.index_removed,
            "reason": action.reason,
            "undo": f"restore {action.instance_id} {result.backup_sha256}"}


def _notify(record: dict[str, Any]) -> None:
    """The operator's notice of an archive: one structured WARNING (ids, counts, the sha; no data)."""
    log.warning("remediation: %s instance %s (%s): backup %s, %d path(s) removed, index entry %s; undo: %s",
                record["event"].replace("_", " "), record["instance_id"], record["reason"],
                str(record["backup_sha256"])[:12], record["paths_removed"],
                "removed" if record["index_entry_removed"] else "kept", record["undo"],
                extra={"notification": "remediation", **record})
