"""Applying planned Vault writes: backup first, cas writes in a safe order, retention,
legacy backup migration, the index write with cas-retry, and restore.

Everything here talks to Vault through :class:`reconciler.vault.VaultClient` (or anything
with the same ``read/write/list/read_tree/delete`` methods); the archive logic is the pure
:mod:`reconciler.backup`. See docs/backups.md.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from reconciler import backup as bk
from reconciler.config.models import Settings
from reconciler.errors import (
    CasConflict,
    CircuitOpen,
    InvalidInput,
    NotFound,
    ReconcilerError,
    VaultSealed,
)
from reconciler.models import VaultWrite
from reconciler.ports import KvStore, Tree

log = logging.getLogger(__name__)

VersionedTree = dict[str, tuple[dict[str, Any], int | None]]


@dataclass
class BackupSettings:
    """``reconciler.backup.*`` of the Settings (config/models.py). ``retention_days`` is in days (0 = unlimited)."""

    enabled: bool = True
    retention_count: int = 5
    retention_days: float = 0
    compression_level: int = 9
    cleanup_enabled: bool = True
    backup_on_update: bool = True
    backup_on_delete: bool = True

    def __post_init__(self) -> None:
        bk.zstd_level(self.compression_level)  # InvalidInput naming the accepted range
        if self.retention_count < 0 or self.retention_days < 0:
            raise InvalidInput("backup retention_count / retention_days must be >= 0 (0 = unlimited)")

    @classmethod
    def from_settings(cls, settings: Settings) -> BackupSettings:
        b = settings.reconciler.backup
        return cls(enabled=b.enabled, retention_count=b.retention_count, retention_days=b.retention_days,
                   compression_level=b.compression_level, cleanup_enabled=b.cleanup_enabled,
                   backup_on_update=b.backup_on_update, backup_on_delete=b.backup_on_delete)


# --- stored backups --------------------------------------------------------------------


@dataclass
class StoredBackup:
    key: str  # last path segment (the sha for current-format records)
    path: str
    timestamp: int | None
    format: str  # bk.record_format()


def scan_backups(vault: KvStore, instance_id: str) -> list[StoredBackup]:
    """Every record under ``secret/backups/<id>/`` (one LIST + one GET per record)."""
    folder = bk.backups_folder(instance_id, vault.mount)
    out = []
    for key in vault.list(folder + "/"):
        if key.endswith("/"):
            continue
        got = vault.read(f"{folder}/{key}")
        if got is None:
            continue
        record = got[0]
        out.append(StoredBackup(key, f"{folder}/{key}", bk._timestamp(record.get("timestamp")),
                                bk.record_format(record)))
    return out


def list_backups(vault: KvStore, instance_id: str) -> list[dict[str, Any]]:
    """For the API/CLI: ``[{sha256, timestamp, format, path}]``, newest first."""
    items = scan_backups(vault, instance_id)
    items.sort(key=lambda s: (s.timestamp or 0, s.key), reverse=True)
    return [{"sha256": s.key, "timestamp": s.timestamp, "format": s.format, "path": s.path} for s in items]


@dataclass
class BackupOutcome:
    sha256: str | None
    created: bool = False  # a new record was written
    refreshed: bool = False  # an existing identical record was re-stamped as the newest
    raw_size: int = 0
    compressed_size: int = 0


def backup_instance(vault: KvStore, instance_id: str, *, tree: Mapping[str, tuple[dict, int | None]],
                    index_entry: Mapping[str, Any] | None, settings: BackupSettings, now: float,
                    stored: list[StoredBackup] | None = None,
                    planned: Mapping[str, Mapping[str, Any]] | None = None) -> BackupOutcome:
    """Store the current tree + index entry unless an identical backup exists (dedup by sha).
    When the identical backup is not the newest one (content went A -> B -> A), it is
    re-stamped so retention treats the state just before this change as the newest.
    Nothing to protect, no backup: no tree and no index entry, or (``planned``: the writes about
    to be made) a tree that is only part of those writes with the same data, i.e. what an
    earlier attempt of the same plan wrote into an empty tree before it failed half-way."""
    ours = planned is not None and all(p in planned and not _differs(d, planned[p]) for p, (d, _v) in tree.items())
    if (not tree or ours) and index_entry is None:
        return BackupOutcome(None)
    built = bk.build_backup(instance_id, {p: d for p, (d, _v) in tree.items()}, index_entry,
                            compression_level=settings.compression_level, now=now, mount=vault.mount)
    if stored is None:
        stored = scan_backups(vault, instance_id)
    current = [s for s in stored if s.format == "v1"]
    same = next((s for s in current if s.key == built.sha256), None)
    if same is not None:
        newest = max(current, key=lambda s: (s.timestamp or 0, s.key))
        if newest.key == built.sha256 or (same.timestamp or 0) >= (newest.timestamp or 0):
            return BackupOutcome(built.sha256, raw_size=built.raw_size, compressed_size=built.compressed_size)
        got = vault.read(built.path)
        vault.write(built.path, built.record, cas=got[1] if got else 0)
        same.timestamp = built.record["timestamp"]
        return BackupOutcome(built.sha256, refreshed=True, raw_size=built.raw_size,
                             compressed_size=built.compressed_size)
    try:
        vault.write(built.path, built.record, cas=0)
    except CasConflict:
        # another writer stored the same content meanwhile: identical by construction
        return BackupOutcome(built.sha256, raw_size=built.raw_size, compressed_size=built.compressed_size)
    stored.append(StoredBackup(built.sha256, built.path, built.record["timestamp"], "v1"))
    log.info("backup: instance %s backed up as %s (%d paths, %d -> %d bytes)", instance_id, built.sha256[:12],
             built.record["paths"], built.raw_size, built.compressed_size)
    return BackupOutcome(built.sha256, created=True, raw_size=built.raw_size, compressed_size=built.compressed_size)


def enforce_retention(vault: KvStore, instance_id: str, settings: BackupSettings, *, now: float,
                      stored: list[StoredBackup] | None = None) -> list[str]:
    """Delete current-format backups beyond ``retention_count`` or older than ``retention_days``;
    the newest is always kept, nothing happens when ``cleanup_enabled`` is false. Records of
    unknown or legacy format are never touched here."""
    if not settings.cleanup_enabled or (not settings.retention_count and not settings.retention_days):
        return []
    if stored is None:
        stored = scan_backups(vault, instance_id)
    infos = [bk.BackupInfo(s.key, s.timestamp) for s in stored if s.format == "v1" and s.timestamp is not None]
    expired = bk.select_expired(infos, retention_count=settings.retention_count,
                                retention_days=settings.retention_days, now=now)
    removed = []
    for sha in expired:
        vault.delete(bk.backup_path(instance_id, sha, vault.mount))
        removed.append(sha)
    if removed:
        log.info("backup: instance %s: removed %d expired backup(s)", instance_id, len(removed))
    return removed


# --- legacy migration ------------------------------------------------------------------


@dataclass
class MigrationResult:
    instance_id: str
    migrated: list[dict[str, str]] = field(default_factory=list)  # {from, to, format}
    failed: list[dict[str, str]] = field(default_factory=list)  # {path, reason}
    removed_legacy_index: bool = False


def _store_verified(vault: KvStore, decoded: bk.DecodedBackup, settings: BackupSettings, now: float) -> str:
    """Write ``decoded`` in the current format, read it back, compare; return the new sha.
    Raises InvalidInput when the copy does not read back identical."""
    built = bk.rebuild_as_current(decoded, compression_level=settings.compression_level, mount=vault.mount, now=now)
    existing = vault.read(built.path)
    if existing is None:
        # CasConflict: written meanwhile by another run; verified below like any existing copy
        with contextlib.suppress(CasConflict):
            vault.write(built.path, built.record, cas=0)
        existing = vault.read(built.path)
        if existing is None:
            raise InvalidInput(f"migrated copy {built.path} cannot be read back")
    copy_back = bk.decode_backup(existing[0], instance_id=decoded.instance_id, key=built.sha256, mount=vault.mount)
    # An existing record with this sha holds the same content up to volatile fields; a copy we
    # just wrote must be exactly identical.
    if copy_back.sha256 != decoded.sha256:
        raise InvalidInput(f"migrated copy {built.path} does not match the legacy backup")
    if copy_back.timestamp == built.record["timestamp"] and not bk.same_backup(copy_back, decoded):
        raise InvalidInput(f"migrated copy {built.path} differs from the legacy backup")
    return built.sha256


def migrate_legacy_backups(vault: KvStore, instance_id: str, *, settings: BackupSettings, now: float,
                           stored: list[StoredBackup] | None = None) -> MigrationResult:
    """Rewrite legacy backups of one instance in the current format; a legacy copy is removed
    only after its new copy has been read back and compared. Unreadable legacy records are
    kept and reported. Handles Blacksmith's ``secret/<id>/backups/<sha>`` records and the Go
    reconciler's gzip archives in ``secret/backups/<id>/<sha>``."""
    result = MigrationResult(instance_id)
    mount = vault.mount
    legacy = bk.legacy_folder(instance_id, mount)
    candidates: list[str] = []
    legacy_keys = vault.list(legacy + "/")
    candidates += [f"{legacy}/{k}" for k in legacy_keys if not k.endswith("/") and k != "index"]
    if stored is None:
        stored = scan_backups(vault, instance_id)
    candidates += [s.path for s in stored if s.format in ("legacy-gzip", "legacy-blacksmith")]
    for path in candidates:
        key = path.rsplit("/", 1)[-1]
        try:
            got = vault.read(path)
            if got is None:
                continue
            decoded = bk.decode_backup(got[0], instance_id=instance_id, key=key, mount=mount)
            if decoded.format == "v1":
                if path.startswith(legacy + "/"):
                    new_sha = _store_verified(vault, decoded, settings, now)
                    vault.delete(path)
                    result.migrated.append({"from": path, "to": new_sha, "format": "v1"})
                continue
            new_sha = _store_verified(vault, decoded, settings, now)
            if bk.backup_path(instance_id, new_sha, mount) != path:
                vault.delete(path)
            result.migrated.append({"from": path, "to": new_sha, "format": decoded.format})
            stored[:] = [s for s in stored if s.path != path]
            if not any(s.key == new_sha for s in stored):
                stored.append(StoredBackup(new_sha, bk.backup_path(instance_id, new_sha, mount), decoded.timestamp,
                                           "v1"))
        except (InvalidInput, NotFound, CasConflict) as exc:
            result.failed.append({"path": path, "reason": str(exc)})
            log.warning("backup: legacy backup %s not migrated: %s", path, exc)
    if "index" in legacy_keys and not result.failed and not [k for k in vault.list(legacy + "/") if k != "index"]:
        # Blacksmith's list of its backups: every record it lists now lives in the new place
        vault.delete(f"{legacy}/index")
        result.removed_legacy_index = True
    if result.migrated:
        log.info("backup: instance %s: migrated %d legacy backup(s)", instance_id, len(result.migrated))
    return result


def migrate_all_legacy(vault: KvStore, *, settings: BackupSettings, now: float | None = None,
                       instance_ids: Sequence[str] | None = None) -> list[MigrationResult]:
    """Sweep: migrate every instance's legacy backups. Without ``instance_ids`` the mount is
    listed (``secret/`` and ``secret/backups/``). Cost: 2 LISTs + per instance 2 LISTs and one
    GET per backup record."""
    now = time.time() if now is None else now
    if instance_ids is None:
        ids = {k.rstrip("/") for k in vault.list(vault.mount + "/") if k.endswith("/")}
        ids |= {k.rstrip("/") for k in vault.list(f"{vault.mount}/backups/") if k.endswith("/")}
        ids.discard("backups")
        instance_ids = sorted(i for i in ids if bk._ID_RE.match(i) and i != "db")
    return [migrate_legacy_backups(vault, i, settings=settings, now=now) for i in instance_ids]


# --- applying a plan -------------------------------------------------------------------


@dataclass
class InstanceResult:
    instance_id: str
    status: str = "unchanged"  # unchanged | written | failed | skipped | held
    writes: int = 0
    writes_skipped: int = 0  # planned writes equal to what Vault already holds
    backup_sha256: str | None = None
    backup_created: bool = False
    backups_removed: list[str] = field(default_factory=list)
    legacy_migrated: int = 0
    error: str | None = None
    held: str = ""  # why nothing was written although the plan had writes (``hold``: an operation in flight)


# ``hold(instance_id, tree)``: a reason not to write now, judged on the tree read just before
# the backup and the writes ("" to go on); e.g. the broker's task record shows its operation
Hold = Callable[[str, Mapping[str, tuple[dict[str, Any], int | None]]], str]


@dataclass
class ApplyReport:
    instances: list[InstanceResult] = field(default_factory=list)
    aborted: str | None = None  # Vault sealed/unavailable: the rest of the batch was not attempted
    cause: Exception | None = None  # the error that aborted it

    @property
    def figures(self) -> dict[str, int]:
        r = self.instances
        return {"instances": len(r), "written": sum(i.status == "written" for i in r),
                "unchanged": sum(i.status == "unchanged" for i in r), "failed": sum(i.status == "failed" for i in r),
                "skipped": sum(i.status == "skipped" for i in r), "held": sum(i.status == "held" for i in r),
                "writes": sum(i.writes for i in r),
                "backups_written": sum(i.backup_created for i in r),
                "backups_removed": sum(len(i.backups_removed) for i in r),
                "legacy_migrated": sum(i.legacy_migrated for i in r)}

    def to_dict(self) -> dict[str, Any]:
        return {"figures": self.figures, "aborted": self.aborted, "instances": [asdict(i) for i in self.instances]}


def _present(tree: Tree) -> VersionedTree:
    """The paths of a read tree that hold data, as dicts. ``read_tree`` lists only those (the
    port's ``Tree`` allows ``None``: a path read and found absent), so this only narrows the type."""
    return {p: (d if isinstance(d, dict) else dict(d), v) for p, (d, v) in tree.items() if d is not None}


def _differs(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return bk.canonical_json(a) != bk.canonical_json(b)


def apply_instance(vault: KvStore, instance_id: str, writes: Sequence[VaultWrite], *, settings: BackupSettings,
                   index_entry: Mapping[str, Any] | None = None, tree: VersionedTree | None = None,
                   now: float | None = None, migrate_legacy: bool = True,
                   known: Mapping[str, Any] | None = None, hold: Hold | None = None,
                   protected: set[str] | None = None) -> InstanceResult:
    """Apply one instance's planned writes. Writes equal to Vault's current data are dropped;
    when something remains: back up (if enabled and ``backup_on_update``), then write with
    cas in credential-first/root-last order, then retention and legacy migration. Raises
    domain errors (the batch wrapper records them); never writes after a failed backup.
    ``known``: paths of the tree the plan just read, with their versions (None: read and
    absent); only the rest of the tree is read (a change in between fails the cas write of a
    path we write). ``hold``: judged on that tree before anything is written; a reason
    leaves the instance ``held`` with nothing written. ``protected``: the instances whose state
    before this run's writes an earlier attempt of the run already backed up (or found nothing
    to protect in); they get no backup now (their tree may hold that attempt's writes: a backup
    of it would keep a half-written state the run never meant), and this instance is added once
    its backup is in place."""
    now = time.time() if now is None else now
    result = InstanceResult(instance_id)
    mount = vault.mount
    root = bk.instance_root(instance_id, mount)
    outside = [w.path for w in writes if not bk.in_instance_tree(w.path, instance_id, mount)]
    if outside:
        raise InvalidInput(f"plan for instance {instance_id} writes outside its tree: {outside[:3]}")
    if not writes:
        return result
    if tree is None:
        tree = _present(vault.read_tree(root, exclude=[bk.legacy_folder(instance_id, mount) + "/"], known=known))
    effective = [w for w in writes if w.path not in tree or _differs(tree[w.path][0], w.data)]
    result.writes_skipped = len(writes) - len(effective)
    if not effective:
        return result
    why = hold(instance_id, tree) if hold is not None else ""
    if why:
        result.status, result.held, result.writes_skipped = "held", why, len(writes)
        return result
    for w in effective:
        if w.path in tree and bk.is_credential_path(w.path, instance_id, mount):
            lost = bk.overwritten_keys(tree[w.path][0], w.data)
            if lost:
                raise InvalidInput(f"plan for instance {instance_id} would change or drop existing credential "
                                   f"key(s) {lost} at {w.path}; refused (credentials are never overwritten)")
    stored = _protect(vault, result, tree, writes, index_entry=index_entry, settings=settings, now=now,
                      protected=protected)
    for w in bk.order_writes(effective, instance_id, mount):
        cas = w.cas
        if cas is None and vault.kv_version == 2:
            cas = tree[w.path][1] if w.path in tree else 0
        vault.write(w.path, w.data, cas=cas)
        result.writes += 1
    result.status = "written"
    if stored is not None:
        if migrate_legacy:
            result.legacy_migrated = len(migrate_legacy_backups(vault, instance_id, settings=settings, now=now,
                                                                stored=stored).migrated)
        result.backups_removed = enforce_retention(vault, instance_id, settings, now=now, stored=stored)
    return result


def _protect(vault: KvStore, result: InstanceResult, tree: VersionedTree, writes: Sequence[VaultWrite], *,
             index_entry: Mapping[str, Any] | None, settings: BackupSettings, now: float,
             protected: set[str] | None) -> list[StoredBackup] | None:
    """``apply_instance``'s backup step (the stored backups, for retention; None: backups off).
    An instance in ``protected`` gets none (an earlier attempt of the run took it); it is added
    once its backup is in place (or there was nothing to protect, or backups are off)."""
    iid = result.instance_id
    stored: list[StoredBackup] | None = None
    if settings.enabled and settings.backup_on_update:
        stored = scan_backups(vault, iid)
        if protected is not None and iid in protected:
            log.debug("backup: instance %s: its state before this run's writes is already protected", iid)
        else:
            outcome = backup_instance(vault, iid, tree=tree, index_entry=index_entry, settings=settings,
                                      now=now, stored=stored, planned={w.path: w.data for w in writes})
            result.backup_sha256, result.backup_created = outcome.sha256, outcome.created
    if protected is not None:
        protected.add(iid)
    return stored


def apply_plan(vault: KvStore, plans: Mapping[str, Sequence[VaultWrite]], *, settings: BackupSettings,
               index: Mapping[str, Any] | None = None, trees: Mapping[str, VersionedTree] | None = None,
               now: float | None = None, migrate_legacy: bool = True,
               known: Mapping[str, Mapping[str, Any]] | None = None, hold: Hold | None = None,
               protected: set[str] | None = None) -> ApplyReport:
    """Apply every instance's writes. A failure is recorded for that instance and the batch
    goes on (a request that failed after its retries included: one bad answer is that
    instance's problem); a sealed Vault or an open circuit (the breaker saw Vault fail
    ``failure_threshold`` times in a row) aborts the batch (the remaining instances are
    marked skipped) instead of hammering it. ``known``: per instance, the paths already
    read, ``hold`` and ``protected`` (see :func:`apply_instance`)."""
    now = time.time() if now is None else now
    report = ApplyReport()
    index = index or {}
    trees = trees or {}
    known = known or {}
    for instance_id, writes in plans.items():
        if report.aborted:
            report.instances.append(InstanceResult(instance_id, status="skipped", error=report.aborted))
            continue
        entry = index.get(instance_id) if isinstance(index.get(instance_id), Mapping) else None
        try:
            result = apply_instance(vault, instance_id, writes, settings=settings, index_entry=entry,
                                    tree=trees.get(instance_id), now=now, migrate_legacy=migrate_legacy,
                                    known=known.get(instance_id), hold=hold, protected=protected)
        except (VaultSealed, CircuitOpen) as exc:  # Vault is down for everyone: stop asking
            report.aborted, report.cause = f"{type(exc).__name__}: {exc}", exc
            result = InstanceResult(instance_id, status="failed", error=report.aborted)
        except ReconcilerError as exc:
            result = InstanceResult(instance_id, status="failed", error=f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a bug must not stop the batch; no message (could hold data)
            log.exception("apply: unexpected error for instance %s", instance_id)
            result = InstanceResult(instance_id, status="failed", error=f"unexpected {type(exc).__name__}")
        if result.status == "failed":
            log.error("apply: instance %s failed: %s", instance_id, result.error)
        report.instances.append(result)
    return report


# --- the index -------------------------------------------------------------------------


@dataclass
class IndexWriteResult:
    written: bool
    attempts: int
    version: int | None


def write_index(vault: KvStore, merge: Callable[[dict[str, Any]], Mapping[str, Any]], *, path: str | None = None,
                max_attempts: int = 5) -> IndexWriteResult:
    """Read ``secret/db``, ``merge(current)`` -> new index, write it with cas on the version read.
    On a cas conflict (the broker wrote meanwhile) re-read and re-merge, up to ``max_attempts``
    times, so the broker's fields survive. Nothing is written when the merge changes nothing."""
    path = path or f"{vault.mount}/db"
    if max_attempts < 1:
        raise InvalidInput("write_index: max_attempts must be >= 1")
    for attempt in range(1, max_attempts + 1):
        got = vault.read(path)
        current, version = (got[0], got[1]) if got else ({}, 0)
        new = merge(copy.deepcopy(current))
        if not isinstance(new, Mapping):
            raise InvalidInput(f"index merge returned {type(new).__name__}, expected an object")
        if not _differs(current, new):
            return IndexWriteResult(False, attempt, version)
        cas = version if version is not None else (0 if got is None else None)
        try:
            new_version = vault.write(path, dict(new), cas=cas)
        except CasConflict:
            log.info("index: %s changed while merging (attempt %d/%d); re-reading", path, attempt, max_attempts)
            continue
        return IndexWriteResult(True, attempt, new_version)
    raise CasConflict(f"index {path}: still conflicting after {max_attempts} attempts; nothing written",
                      api="vault")


# --- archive (auto-remediation) -------------------------------------------------------


@dataclass
class ArchiveResult:
    instance_id: str
    backup_sha256: str | None = None
    removed: list[str] = field(default_factory=list)
    index_removed: bool = False
    skipped: str = ""  # why nothing was removed (then nothing was)


def _exactly(decoded: bk.DecodedBackup, tree: Mapping[str, Mapping[str, Any]],
             entry: Mapping[str, Any] | None) -> bool:
    return (bk.canonical_json(decoded.tree) == bk.canonical_json(dict(tree))
            and bk.canonical_json(decoded.index_entry) == bk.canonical_json(entry))


def archive_instance(vault: Any, instance_id: str, *, settings: BackupSettings, now: float,
                     index_path: str | None = None, resume_from: str | None = None,
                     on_backup: Callable[[str], None] | None = None) -> ArchiveResult:
    """Archive an orphaned instance's Vault data: back it up (tree + index entry), read the
    backup back and compare it byte for byte, then remove the instance's paths and its
    ``secret/db`` entry. ``restore(vault, id, sha)`` brings it back exactly.

    Nothing is removed unless the verified backup is in place: backups off, a legacy backup
    that cannot be migrated first, or a backup that does not read back identical end it with
    ``skipped``. The index entry is only removed while it is still the one backed up.

    ``on_backup(sha)`` is called once the verified backup is in place, before anything is
    removed; an archive interrupted after it is finished with ``resume_from=sha``: no new
    backup (it would hold only what is left), only paths whose data equals the backup's go."""
    iid = bk.check_instance_id(instance_id)
    mount = vault.mount
    if resume_from is not None:
        return _resume_archive(vault, iid, bk.check_sha(resume_from), index_path or f"{mount}/db")
    if not (settings.enabled and settings.backup_on_delete):
        return ArchiveResult(iid, skipped="backups are off (backup.enabled and backup.backup_on_delete)")
    legacy = bk.legacy_folder(iid, mount)
    migrated = migrate_legacy_backups(vault, iid, settings=settings, now=now)
    if migrated.failed or vault.list(legacy + "/"):
        return ArchiveResult(iid, skipped="legacy backups under the instance could not all be migrated")
    index_path = index_path or f"{mount}/db"
    tree = vault.read_tree(bk.instance_root(iid, mount), exclude=[legacy + "/"])
    data = {p: d for p, (d, _v) in tree.items()}
    index = vault.read_data(index_path) or {}
    entry = index.get(iid) if isinstance(index.get(iid), Mapping) else None
    if not data and entry is None:
        return ArchiveResult(iid, skipped="nothing of the instance is in Vault")
    outcome = backup_instance(vault, iid, tree=tree, index_entry=entry, settings=settings, now=now)
    record_path = bk.backup_path(iid, str(outcome.sha256), mount)
    got = vault.read(record_path)
    decoded = bk.decode_backup(got[0], instance_id=iid, key=outcome.sha256, mount=mount) if got else None
    if got is not None and decoded is not None and not _exactly(decoded, data, entry):
        # the deduplicated backup differs in volatile fields only: store this exact state under it
        built = bk.build_backup(iid, data, entry, compression_level=settings.compression_level, now=now, mount=mount)
        vault.write(record_path, built.record, cas=got[1] if vault.kv_version == 2 else None)
        got = vault.read(record_path)
        decoded = bk.decode_backup(got[0], instance_id=iid, key=outcome.sha256, mount=mount) if got else None
    if decoded is None or not _exactly(decoded, data, entry):
        return ArchiveResult(iid, outcome.sha256, skipped=f"backup {record_path} does not read back identical")
    if on_backup is not None:
        on_backup(str(outcome.sha256))
    result = ArchiveResult(iid, outcome.sha256)
    _remove_archived(vault, iid, data, entry, record_path, index_path, result)
    log.info("archive: instance %s archived as backup %s: %d path(s) removed, index entry %s", iid,
             str(outcome.sha256)[:12], len(result.removed), "removed" if result.index_removed else "kept")
    return result


def _remove_archived(vault: Any, iid: str, data: Mapping[str, Any], entry: Mapping[str, Any] | None,
                     record_path: str, index_path: str, result: ArchiveResult) -> None:
    for path in sorted(data, key=lambda p: (-p.count("/"), p)):  # leaves first, the root last
        vault.delete_archived(path, backup_path=record_path)
        result.removed.append(path)
    if entry is not None:
        def drop(current: dict[str, Any]) -> dict[str, Any]:
            if bk.canonical_json(current.get(iid)) == bk.canonical_json(entry):
                current.pop(iid, None)
            return current

        result.index_removed = write_index(vault, drop, path=index_path).written


def _resume_archive(vault: Any, iid: str, sha: str, index_path: str) -> ArchiveResult:
    mount = vault.mount
    record_path = bk.backup_path(iid, sha, mount)
    got = vault.read(record_path)
    if got is None:
        return ArchiveResult(iid, sha, skipped=f"backup {record_path} of the interrupted archive is gone")
    decoded = bk.decode_backup(got[0], instance_id=iid, key=sha, mount=mount)
    left = vault.read_tree(bk.instance_root(iid, mount), exclude=[bk.legacy_folder(iid, mount) + "/"])
    same = {p: d for p, (d, _v) in left.items()
            if p in decoded.tree and bk.canonical_json(d) == bk.canonical_json(decoded.tree[p])}
    result = ArchiveResult(iid, sha)
    if len(same) != len(left):
        result.skipped = "paths changed since the backup: kept (the instance is not archived further)"
        return result
    _remove_archived(vault, iid, same, decoded.index_entry, record_path, index_path, result)
    return result


# --- restore ---------------------------------------------------------------------------


@dataclass
class RestoreResult:
    instance_id: str
    sha256: str
    restored: list[str]
    unchanged: list[str]
    extra_paths: list[str]  # exist now but not in the backup: left as they are
    pre_restore_backup: str | None
    index_restored: bool


def restore(vault: KvStore, instance_id: str, sha: str, path: str | None = None, *,
            settings: BackupSettings | None = None, restore_index: bool = True, index_path: str | None = None,
            now: float | None = None) -> RestoreResult:
    """Restore an instance's tree (or only ``path``) from backup ``sha``.

    The current state is backed up first (deduplicated like any backup; retention is not run
    so the backup being restored cannot expire under us). Writes use cas on the versions just
    read. Paths created after the backup are reported in ``extra_paths`` and left alone. A
    whole-tree restore also puts the backup's index entry back into ``secret/db`` (cas-retry)."""
    settings = settings or BackupSettings()
    now = time.time() if now is None else now
    mount = vault.mount
    record_path = bk.backup_path(instance_id, sha, mount)
    got = vault.read(record_path)
    if got is None:
        available = [b["sha256"] for b in list_backups(vault, instance_id)]
        raise NotFound(f"no backup {sha} for instance {instance_id}; available: {available}", api="vault",
                       status=404)
    decoded = bk.decode_backup(got[0], instance_id=instance_id, key=sha, mount=mount)
    if path is not None and path not in decoded.tree:
        raise InvalidInput(f"backup {sha[:12]} of instance {instance_id} has no path {path}; "
                           f"it holds: {sorted(decoded.tree)}")
    index_path = index_path or f"{mount}/db"
    tree = _present(vault.read_tree(bk.instance_root(instance_id, mount),
                                    exclude=[bk.legacy_folder(instance_id, mount) + "/"]))
    index_now = vault.read_data(index_path) or {}
    entry_now = index_now.get(instance_id) if isinstance(index_now.get(instance_id), Mapping) else None
    pre = backup_instance(vault, instance_id, tree=tree, index_entry=entry_now, settings=settings, now=now)
    plan = bk.plan_restore(decoded, tree, path)
    restored = []
    for w in plan.writes:
        cas = w.cas if vault.kv_version == 2 else None
        vault.write(w.path, w.data, cas=cas)
        restored.append(w.path)
    index_restored = False
    if path is None and restore_index and decoded.index_entry is not None:
        entry = decoded.index_entry

        def put_back(current: dict[str, Any]) -> dict[str, Any]:
            current[instance_id] = copy.deepcopy(entry)
            return current

        index_restored = write_index(vault, put_back, path=index_path).written
    log.info("restore: instance %s from %s: %d path(s) written, %d unchanged", instance_id, sha[:12],
             len(restored), len(plan.unchanged))
    return RestoreResult(instance_id, sha, restored, plan.unchanged, plan.extra_paths, pre.sha256, index_restored)
