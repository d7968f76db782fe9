"""Restore with proof: what a restore would change (dry run), and a restore that proves itself.

``restore_with_proof`` runs :func:`reconciler.apply.restore` (the current state backed up
first, cas writes on the versions just read, the index entry put back on a whole-tree restore)
and then reads the instance's tree back: every restored path must equal the archive, byte for
byte in canonical JSON, or the result says which do not (``verified: false``). The CLI's
``restore`` and ``POST /b/restore`` both use it. Answers never carry a secret value: the diff is
a :mod:`reconciler.plans` document.
"""

from __future__ import annotations

from typing import Any

from . import backup as bk
from . import plans
from .apply import BackupSettings, list_backups, restore
from .errors import InvalidInput, NotFound


def load_backup(vault: Any, instance_id: str, sha: str) -> bk.DecodedBackup:
    """The decoded backup ``sha`` of ``instance_id``; NotFound (404) naming the available ones."""
    bk.check_instance_id(instance_id)
    if not bk.SHA_RE.match(sha or ""):
        raise InvalidInput(f"backup id {str(sha)[:80]!r}: accepted is a sha256 (64 hex digits) from "
                           f"`backups list {instance_id}`")
    got = vault.read(bk.backup_path(instance_id, sha, vault.mount))
    if got is None:
        available = [b["sha256"] for b in list_backups(vault, instance_id)]
        if not available:
            raise NotFound(f"instance {instance_id} has no backups", api="vault", status=404)
        raise NotFound(f"no backup {sha} for instance {instance_id}; available: {', '.join(available[:10])}",
                       api="vault", status=404)
    return bk.decode_backup(got[0], instance_id=instance_id, key=sha, mount=vault.mount)


def current_tree(vault: Any, instance_id: str) -> dict[str, tuple[dict[str, Any], int | None]]:
    return vault.read_tree(bk.instance_root(instance_id, vault.mount),
                           exclude=[bk.legacy_folder(instance_id, vault.mount) + "/"])


def restore_diff(vault: Any, instance_id: str, sha: str, path: str | None = None) -> dict[str, Any]:
    """What restoring would write, as a plan (values of secret paths hidden); writes nothing."""
    decoded = load_backup(vault, instance_id, sha)
    tree = current_tree(vault, instance_id)
    planned = bk.plan_restore(decoded, tree, path)
    changes = [{"op": "write", "path": w.path, "existed": w.path in tree,
                "before": tree[w.path][0] if w.path in tree else None, "after": w.data} for w in planned.writes]
    plan = plans.assemble([plans.describe(changes, vault.mount)], run_id=f"restore {instance_id} {sha[:12]}",
                          dry_run=True)
    return {"instance_id": instance_id, "sha256": sha, "path": path, "dry_run": True, "plan": plan,
            "would_restore": [w.path for w in planned.writes], "unchanged": planned.unchanged,
            "extra_paths": planned.extra_paths, "backup_timestamp": decoded.timestamp, "format": decoded.format}


def restore_with_proof(vault: Any, instance_id: str, sha: str, path: str | None = None, *,
                       settings: BackupSettings | None = None) -> dict[str, Any]:
    """Restore, then read back and compare; ``verified`` and the paths that differ, if any."""
    decoded = load_backup(vault, instance_id, sha)
    result = restore(vault, instance_id, sha, path, settings=settings or BackupSettings())
    after = current_tree(vault, instance_id)
    targets = [path] if path is not None else sorted(decoded.tree)
    differ = [p for p in targets
              if p not in after or bk.canonical_json(after[p][0]) != bk.canonical_json(decoded.tree[p])]
    return {"instance_id": instance_id, "sha256": sha, "path": path, "dry_run": False,
            "restored": result.restored, "unchanged": result.unchanged, "extra_paths": result.extra_paths,
            "pre_restore_backup": result.pre_restore_backup, "index_restored": result.index_restored,
            "verified": not differ, "verified_paths": len(targets) - len(differ), "differ": differ}


def describe_backup(vault: Any, instance_id: str, sha: str) -> dict[str, Any]:
    """A backup's paths and keys (values of secret paths hidden), for ``backups show``."""
    decoded = load_backup(vault, instance_id, sha)
    paths = []
    for p in sorted(decoded.tree):
        secret = plans.is_secret_path(p, instance_id, vault.mount)
        shown = {k: plans.shown(v) for k, v in decoded.tree[p].items()
                 if not secret and k not in plans.SECRET_FIELDS and not plans.SENSITIVE_KEY.search(k)}
        paths.append({"path": p, "secret": secret, "keys": sorted(decoded.tree[p]),
                      **({"values": shown} if not secret else {})})
    return {"instance_id": instance_id, "sha256": sha, "timestamp": decoded.timestamp, "format": decoded.format,
            "paths": paths, "index_entry": decoded.index_entry, "notes": decoded.notes}
