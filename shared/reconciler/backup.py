"""Instance backups: archive building, hashing, compression, legacy parsing, retention and
restore planning. Pure: no I/O (``apply.py`` does the Vault calls).

A backup holds one instance's whole Vault tree (the root ``secret/<id>`` included, every
subpath except the instance's legacy ``backups/`` folder) plus its entry in the index
``secret/db``. It is stored at ``secret/backups/<id>/<sha256>`` as::

    {"timestamp": 1704397200, "archive": "<base64 zstd>", "format_version": 1,
     "compression": "zstd", "compression_level": 9, "sha256": "<hex>", "instance_id": "<id>",
     "paths": 4, "size": 2311}

``archive`` is the zstd-compressed canonical JSON (sorted keys, compact, UTF-8) of
``{"format_version", "instance_id", "mount", "tree": {path: data}, "index": entry|null}``.
``sha256`` is taken over the canonical JSON of the same content with the volatile keys
(:data:`VOLATILE_KEYS`) removed at any depth, so a tree whose only difference is a
timestamp hashes the same and is stored once. See docs/backups.md.
"""

from __future__ import annotations

import base64
import binascii
import copy
import gzip
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import zstandard

from reconciler.errors import InvalidInput
from reconciler.models import VaultWrite

FORMAT_VERSION = 1
COMPRESSION = "zstd"

# reconciler.backup.compression_level (1-9, like gzip) onto zstd levels (1-22). Spread over
# zstd's normal range; 20-22 ("ultra") are left out: they need far more memory for no gain
# on archives of a few KB.
ZSTD_LEVELS: dict[int, int] = {1: 1, 2: 3, 3: 5, 4: 7, 5: 9, 6: 12, 7: 15, 8: 17, 9: 19}

# Keys whose values change on every reconciliation without the instance changing. They are
# kept in the archive (a restore gives them back) but left out of the hash.
# History entries (metadata.history[*].timestamp) are NOT volatile: a new history entry is
# a real change of the audit trail and deserves its own backup.
VOLATILE_KEYS: frozenset[str] = frozenset({
    "updated_at",
    "reconciled_at",
    "last_reconciled",
    "last_reconciled_at",
    "last_synced_at",
    "last_seen_at",
    "last_checked_at",
    "checked_at",
    "fetched_at",
    "last_binding_health_check",
})

SHA_RE = re.compile(r"^[0-9a-f]{64}\Z")  # \Z: "$" would accept a trailing newline
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")

Tree = dict[str, dict[str, Any]]
VersionedTree = Mapping[str, tuple[dict[str, Any], int | None]]


# --- paths ---------------------------------------------------------------------------


def check_instance_id(instance_id: str) -> str:
    """An instance id becomes a Vault path segment: refuse anything that could escape it."""
    if not isinstance(instance_id, str) or not _ID_RE.match(instance_id) or instance_id in ("backups", "db"):
        raise InvalidInput(
            f"invalid instance id {instance_id!r}: expected 1-128 characters of letters, digits, '.', '_' or '-' "
            "(not 'backups' or 'db')"
        )
    return instance_id


def instance_root(instance_id: str, mount: str = "secret") -> str:
    return f"{mount}/{check_instance_id(instance_id)}"


def backups_folder(instance_id: str, mount: str = "secret") -> str:
    """Where this instance's backups live: ``secret/backups/<id>``."""
    return f"{mount}/backups/{check_instance_id(instance_id)}"


def backup_path(instance_id: str, sha: str, mount: str = "secret") -> str:
    return f"{backups_folder(instance_id, mount)}/{check_sha(sha)}"


def legacy_folder(instance_id: str, mount: str = "secret") -> str:
    """Blacksmith's old per-instance backup folder ``secret/<id>/backups``."""
    return f"{instance_root(instance_id, mount)}/backups"


def check_sha(sha: str) -> str:
    if not isinstance(sha, str) or not SHA_RE.match(sha):
        raise InvalidInput(f"invalid backup id {sha!r}: expected 64 lower-case hex characters (a sha256)")
    return sha


def in_instance_tree(path: str, instance_id: str, mount: str = "secret") -> bool:
    """True for the root and every subpath of the instance, except its legacy backups."""
    root = instance_root(instance_id, mount)
    if path == root:
        return True
    if not path.startswith(root + "/"):
        return False
    return not path.startswith(legacy_folder(instance_id, mount) + "/")


# --- canonical JSON, hashing, compression ----------------------------------------------


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8; NaN/Infinity refused (not JSON, not stable)."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"backup content is not plain JSON: {type(exc).__name__}") from None


def strip_volatile(value: Any, keys: Iterable[str] = VOLATILE_KEYS) -> Any:
    keys = frozenset(keys)
    if isinstance(value, Mapping):
        return {k: strip_volatile(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list | tuple):
        return [strip_volatile(v, keys) for v in value]
    return value


def archive_content(instance_id: str, tree: Mapping[str, Mapping[str, Any]], index_entry: Mapping[str, Any] | None,
                    mount: str = "secret") -> dict[str, Any]:
    """The archived document. Paths outside the instance tree are refused (a caller bug)."""
    check_instance_id(instance_id)
    bad = sorted(p for p in tree if not in_instance_tree(p, instance_id, mount))
    if bad:
        raise InvalidInput(f"paths outside the tree of instance {instance_id}: {bad[:5]}")
    for p, data in tree.items():
        if not isinstance(data, Mapping):
            raise InvalidInput(f"secret at {p} is not a JSON object")
    return {
        "format_version": FORMAT_VERSION,
        "instance_id": instance_id,
        "mount": mount,
        "tree": {p: dict(tree[p]) for p in sorted(tree)},
        "index": dict(index_entry) if index_entry is not None else None,
    }


def content_sha256(content: Mapping[str, Any], volatile_keys: Iterable[str] = VOLATILE_KEYS) -> str:
    """sha256 over the canonical uncompressed content without volatile keys."""
    return hashlib.sha256(canonical_json(strip_volatile(content, volatile_keys))).hexdigest()


def zstd_level(compression_level: int) -> int:
    if isinstance(compression_level, bool) or not isinstance(compression_level, int) \
            or compression_level not in ZSTD_LEVELS:
        raise InvalidInput(f"backup compression_level {compression_level!r} is invalid: accepted 1-9 (9 = best)")
    return ZSTD_LEVELS[compression_level]


def compress(raw: bytes, compression_level: int) -> bytes:
    return zstandard.ZstdCompressor(level=zstd_level(compression_level), write_content_size=True).compress(raw)


def decompress(blob: bytes, max_size: int = 64 * 1024 * 1024) -> bytes:
    return zstandard.ZstdDecompressor().decompress(blob, max_output_size=max_size)


# --- building and reading backup records -----------------------------------------------


@dataclass(frozen=True)
class BuiltBackup:
    """A backup ready to be written: ``record`` goes to ``path``."""

    instance_id: str
    sha256: str
    path: str
    record: dict[str, Any]
    raw_size: int  # canonical JSON bytes
    compressed_size: int  # zstd bytes (before base64)


def build_backup(instance_id: str, tree: Mapping[str, Mapping[str, Any]], index_entry: Mapping[str, Any] | None, *,
                 compression_level: int = 9, now: float, mount: str = "secret") -> BuiltBackup:
    content = archive_content(instance_id, tree, index_entry, mount)
    raw = canonical_json(content)
    blob = compress(raw, compression_level)
    sha = content_sha256(content)
    record = {
        "timestamp": int(now),
        "archive": base64.b64encode(blob).decode("ascii"),
        "format_version": FORMAT_VERSION,
        "compression": COMPRESSION,
        "compression_level": compression_level,
        "sha256": sha,
        "instance_id": instance_id,
        "paths": len(content["tree"]),
        "size": len(raw),
    }
    return BuiltBackup(instance_id, sha, backup_path(instance_id, sha, mount), record, len(raw), len(blob))


@dataclass
class DecodedBackup:
    """A backup of any supported format, read back into tree + index entry."""

    instance_id: str
    tree: Tree
    index_entry: dict[str, Any] | None
    timestamp: int | None
    format: str  # "v1" (current), "legacy-gzip" (Go reconciler), "legacy-blacksmith"
    sha256: str  # the content hash in the current scheme (recomputed)
    stored_sha256: str | None = None  # what the record or its key claimed
    notes: list[str] = field(default_factory=list)


def _timestamp(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and math.isfinite(value):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def record_format(record: Mapping[str, Any]) -> str:
    """Classify a stored record without decompressing it fully."""
    if not isinstance(record, Mapping):
        return "unknown"
    if record.get("format_version") is not None and record.get("compression") == COMPRESSION:
        return "v1"
    if isinstance(record.get("data"), Mapping) and ("index" in record["data"] or "credentials" in record["data"]
                                                     or "metadata" in record["data"] or "manifest" in record["data"]):
        return "legacy-blacksmith"
    if isinstance(record.get("archive"), str):
        try:
            head = base64.b64decode(record["archive"][:16] + "=" * (-len(record["archive"][:16]) % 4))
        except (binascii.Error, ValueError):
            return "unknown"
        if head[:2] == b"\x1f\x8b":
            return "legacy-gzip"
        if head[:4] == b"\x28\xb5\x2f\xfd":
            return "v1-incomplete"  # zstd but without our envelope fields
    return "unknown"


def decode_backup(record: Mapping[str, Any], *, instance_id: str, key: str | None = None,
                  mount: str = "secret", verify: bool = True) -> DecodedBackup:
    """Decode a backup record of any known format. ``key`` is the last path segment the record
    was stored under (its claimed sha). Raises InvalidInput naming what is wrong."""
    check_instance_id(instance_id)
    fmt = record_format(record)
    where = f"backup {key or '?'} of instance {instance_id}"
    if fmt == "v1":
        return _decode_v1(record, instance_id, key, mount, verify, where)
    if fmt == "legacy-gzip":
        return _decode_legacy_gzip(record, instance_id, key, mount, where)
    if fmt == "legacy-blacksmith":
        return _decode_legacy_blacksmith(record, instance_id, key, mount, where)
    fields = sorted(record)[:10] if isinstance(record, Mapping) else type(record).__name__
    raise InvalidInput(f"{where}: unknown backup format (fields: {fields})")


def _b64(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidInput(f"{where}: 'archive' is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{where}: 'archive' is not valid base64") from None


def _decode_v1(record: Mapping[str, Any], instance_id: str, key: str | None, mount: str, verify: bool,
               where: str) -> DecodedBackup:
    if record.get("format_version") != FORMAT_VERSION:
        raise InvalidInput(f"{where}: format_version {record.get('format_version')!r} is not supported "
                           f"(accepted: {FORMAT_VERSION})")
    blob = _b64(record.get("archive"), where)
    try:
        raw = decompress(blob)
    except zstandard.ZstdError:
        raise InvalidInput(f"{where}: archive is not valid zstd data") from None
    try:
        content = json.loads(raw)
    except ValueError:
        raise InvalidInput(f"{where}: archive does not hold JSON") from None
    if not isinstance(content, dict) or not isinstance(content.get("tree"), dict):
        raise InvalidInput(f"{where}: archive lacks a 'tree' object")
    if content.get("instance_id") != instance_id:
        raise InvalidInput(f"{where}: archive belongs to instance {content.get('instance_id')!r}")
    sha = content_sha256(content)
    stored = record.get("sha256")
    if verify and ((stored is not None and stored != sha) or (key is not None and key != sha)):
        raise InvalidInput(f"{where}: content hash {sha} does not match the stored sha256 (corrupt or altered)")
    tree = content["tree"]
    bad = [p for p in tree if not in_instance_tree(p, instance_id, content.get("mount") or mount)]
    if bad:
        raise InvalidInput(f"{where}: archive holds paths outside the instance tree: {bad[:3]}")
    return DecodedBackup(instance_id, tree, content.get("index"), _timestamp(record.get("timestamp")), "v1",
                         sha, stored or key)


def _paths_from_export(doc: Any, where: str) -> Tree:
    """A safe-style export: V1 ``{path: {k: v}}`` or V2 ``[{"export_version": 2, "data":
    {path: {"versions": [...]}}}]`` (the latest version that is neither deleted nor destroyed)."""
    if isinstance(doc, list) and len(doc) == 1 and isinstance(doc[0], dict) and doc[0].get("export_version") == 2:
        out: Tree = {}
        for path, secret in (doc[0].get("data") or {}).items():
            versions = secret.get("versions") if isinstance(secret, dict) else None
            if not isinstance(versions, list):
                raise InvalidInput(f"{where}: export entry {path} has no versions list")
            live = [v for v in versions if isinstance(v, dict) and not v.get("deleted") and not v.get("destroyed")
                    and isinstance(v.get("value"), dict)]
            if live:
                out[path] = live[-1]["value"]
        return out
    if isinstance(doc, dict) and all(isinstance(v, dict) for v in doc.values()):
        return {str(p): v for p, v in doc.items()}
    raise InvalidInput(f"{where}: archive is neither a path->secret map nor a safe V2 export")


def _normalise_path(path: str, instance_id: str, mount: str) -> str:
    # The Go reconciler wrote "secret/<id>/..."; tolerate a missing mount prefix.
    path = path.strip("/")
    if not path.startswith(mount + "/"):
        path = f"{mount}/{path}"
    return path


def _decode_legacy_gzip(record: Mapping[str, Any], instance_id: str, key: str | None, mount: str,
                        where: str) -> DecodedBackup:
    blob = _b64(record.get("archive"), where)
    try:
        raw = gzip.decompress(blob)
    except (OSError, EOFError):
        raise InvalidInput(f"{where}: archive is not valid gzip data") from None
    try:
        doc = json.loads(raw)
    except ValueError:
        raise InvalidInput(f"{where}: gzip archive does not hold JSON") from None
    exported = _paths_from_export(doc, where)
    tree: Tree = {}
    index_entry = None
    notes = []
    for path, data in exported.items():
        p = _normalise_path(path, instance_id, mount)
        if p == f"{mount}/db":
            index_entry = data.get(instance_id) if isinstance(data.get(instance_id), dict) else None
            continue
        if not in_instance_tree(p, instance_id, mount):
            notes.append(f"skipped {p}: outside the instance tree")
            continue
        tree[p] = data
    if instance_root(instance_id, mount) not in tree:
        notes.append("legacy archive has no instance root (written by the Go reconciler, which left it out)")
    content = archive_content(instance_id, tree, index_entry, mount)
    return DecodedBackup(instance_id, content["tree"], index_entry, _timestamp(record.get("timestamp")),
                         "legacy-gzip", content_sha256(content), key, notes)


# Blacksmith's record: {"data": {"index", "metadata", "manifest", "credentials", "bindings"},
# "timestamp", "created_at", "sha256"}; each part was read from secret/<id>/<part>.
_LEGACY_PARTS = ("metadata", "manifest", "credentials", "bindings")


def _decode_legacy_blacksmith(record: Mapping[str, Any], instance_id: str, key: str | None, mount: str,
                              where: str) -> DecodedBackup:
    data = record["data"]
    tree: Tree = {}
    root = instance_root(instance_id, mount)
    for part in _LEGACY_PARTS:
        value = data.get(part)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise InvalidInput(f"{where}: data.{part} is not an object")
        tree[f"{root}/{part}"] = value
    index_entry = data.get("index")
    if index_entry is not None and not isinstance(index_entry, dict):
        raise InvalidInput(f"{where}: data.index is not an object")
    unknown = sorted(set(data) - set(_LEGACY_PARTS) - {"index"})
    notes = ["legacy Blacksmith backup: no instance root, only index/metadata/manifest/credentials/bindings"]
    if unknown:
        notes.append(f"ignored unknown parts {unknown}")
    content = archive_content(instance_id, tree, index_entry, mount)
    return DecodedBackup(instance_id, content["tree"], index_entry, _timestamp(record.get("timestamp")),
                         "legacy-blacksmith", content_sha256(content), record.get("sha256") or key, notes)


def same_backup(a: DecodedBackup, b: DecodedBackup) -> bool:
    """Exact equality of what a restore would write (volatile fields included)."""
    return canonical_json({"t": a.tree, "i": a.index_entry}) == canonical_json({"t": b.tree, "i": b.index_entry})


def rebuild_as_current(decoded: DecodedBackup, *, compression_level: int, mount: str = "secret",
                       now: float | None = None) -> BuiltBackup:
    """Re-encode a (legacy) backup in the current format, keeping its original timestamp."""
    ts = decoded.timestamp if decoded.timestamp is not None else now
    if ts is None:
        raise InvalidInput(f"backup of instance {decoded.instance_id} has no timestamp and no 'now' was given")
    built = build_backup(decoded.instance_id, decoded.tree, decoded.index_entry, compression_level=compression_level,
                         now=ts, mount=mount)
    built.record["migrated_from"] = decoded.format
    return built


# --- retention -------------------------------------------------------------------------


@dataclass(frozen=True)
class BackupInfo:
    sha256: str
    timestamp: int


def select_expired(backups: Iterable[BackupInfo], *, retention_count: int, retention_days: float,
                   now: float) -> list[str]:
    """The shas to delete: beyond the newest ``retention_count`` (0 = unlimited) or older than
    ``retention_days`` days (0 = unlimited). The newest backup is always kept."""
    if retention_count < 0 or retention_days < 0:
        raise InvalidInput("backup retention_count and retention_days must be >= 0 (0 = unlimited)")
    ordered = sorted(backups, key=lambda b: (b.timestamp, b.sha256), reverse=True)
    expired = []
    cutoff = now - retention_days * 86400 if retention_days else None
    for rank, b in enumerate(ordered):
        if rank == 0:
            continue  # never the newest
        if (retention_count and rank >= retention_count) or (cutoff is not None and b.timestamp < cutoff):
            expired.append(b.sha256)
    return expired


# --- restore planning --------------------------------------------------------------------


@dataclass
class RestorePlan:
    writes: list[VaultWrite]
    unchanged: list[str]
    extra_paths: list[str]  # present now, absent from the backup: left alone (never deleted)


def plan_restore(decoded: DecodedBackup, current: VersionedTree, path: str | None = None) -> RestorePlan:
    """Writes that make the current tree equal to the backup (for ``path`` only, if given).
    Each write carries ``cas`` = the current version (0 when absent) so a concurrent change
    makes the restore fail rather than silently overwrite."""
    targets = sorted(decoded.tree)
    if path is not None:
        if path not in decoded.tree:
            raise InvalidInput(f"backup {decoded.sha256[:12]} of instance {decoded.instance_id} has no path {path}; "
                               f"it holds: {targets}")
        targets = [path]
    writes, unchanged = [], []
    for p in targets:
        want = decoded.tree[p]
        have = current.get(p)
        if have is not None and canonical_json(have[0]) == canonical_json(want):
            unchanged.append(p)
            continue
        cas = (have[1] if have[1] is not None else None) if have is not None else 0
        writes.append(VaultWrite(path=p, data=copy.deepcopy(want), cas=cas, reason=f"restore from {decoded.sha256}"))
    extra = sorted(p for p in current if p not in decoded.tree) if path is None else []
    return RestorePlan(order_writes(writes, decoded.instance_id), unchanged, extra)


# --- write ordering ---------------------------------------------------------------------


def write_rank(path: str, instance_id: str, mount: str = "secret") -> int:
    """Credentials first, then other secrets, manifest, metadata, the root last: whatever
    references credentials is written after them, so a failure half-way leaves no record
    pointing at credentials that are not there."""
    root = instance_root(instance_id, mount)
    if path == root:
        return 5
    rel = path[len(root) + 1:] if path.startswith(root + "/") else path
    last = rel.rsplit("/", 1)[-1]
    if last == "credentials":
        return 0
    if rel == "manifest":
        return 3
    if rel == "metadata":
        return 4
    if last == "metadata":
        return 2
    return 1


def order_writes(writes: Iterable[VaultWrite], instance_id: str, mount: str = "secret") -> list[VaultWrite]:
    return sorted(writes, key=lambda w: (write_rank(w.path, instance_id, mount), w.path))


def is_credential_path(path: str, instance_id: str, mount: str = "secret") -> bool:
    """Paths whose existing values the reconciler must never change (it may add keys)."""
    return write_rank(path, instance_id, mount) in (0, 1)


def overwritten_keys(current: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Keys of ``current`` that ``new`` drops or changes (names only: never values)."""
    return sorted(k for k, v in current.items() if k not in new or canonical_json(new[k]) != canonical_json(v))
