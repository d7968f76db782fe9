"""A Vault wrapper that records every change a phase makes, and for a dry run makes none.

A dry run runs the real code path (``apply_plan``, ``write_index``, the backup sweep) against
:class:`RecordingVault` with ``dry_run=True``: reads go to Vault, writes and deletes land in an
in-memory overlay that later reads of the same invocation see, so the backup taken before a
write, the legacy migration and retention behave exactly as they would. What the overlay
received is the plan. A real run wraps Vault with ``dry_run=False``: writes pass through and
are recorded by path only (no extra read), which is the run's list of changes.

A recorded change carries data only in a dry run, and only for the plan builder
(``domain.changes``), which masks secrets before anything is stored.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import CasConflict
from .vault import secrets_below

Tree = dict[str, tuple[dict[str, Any], int | None]]


@dataclass
class Change:
    """One write or delete: ``before``/``after`` are data in a dry run, None otherwise."""

    op: str  # "write" | "delete"
    path: str
    existed: bool | None  # None: not known (a real run's write without cas)
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "path": self.path, "existed": self.existed, "before": self.before,
                "after": self.after}


_DELETED = object()


class RecordingVault:
    """``read/read_data/write/list/list_recursive/read_tree/delete`` of the wrapped Vault."""

    def __init__(self, inner: Any, *, dry_run: bool) -> None:
        self.inner = inner
        self.dry_run = dry_run
        self.changes: list[Change] = []
        self._overlay: dict[str, Any] = {}  # dry run: path -> (data, version) or _DELETED
        self._reads: dict[str, Any] = {}  # dry run: what Vault answered, read once
        self._lock = threading.Lock()

    @property
    def mount(self) -> str:
        return self.inner.mount

    @property
    def kv_version(self) -> int:
        return self.inner.kv_version

    def __repr__(self) -> str:
        return f"RecordingVault({self.inner!r}, dry_run={self.dry_run})"

    # --- reads -------------------------------------------------------------------------

    def read(self, path: str) -> tuple[dict[str, Any], int | None] | None:
        if not self.dry_run:
            return self.inner.read(path)
        with self._lock:
            if path in self._overlay:
                got = self._overlay[path]
                return None if got is _DELETED else (dict(got[0]), got[1])
            if path in self._reads:
                got = self._reads[path]
                return None if got is None else (dict(got[0]), got[1])
        got = self.inner.read(path)
        with self._lock:
            self._reads.setdefault(path, got)
        return None if got is None else (dict(got[0]), got[1])

    def read_data(self, path: str) -> dict[str, Any] | None:
        got = self.read(path)
        return None if got is None else got[0]

    def list(self, folder: str) -> list[str]:
        keys = set(self.inner.list(folder))
        if not self.dry_run:
            return sorted(keys)
        base = folder.rstrip("/") + "/"
        with self._lock:
            overlay = dict(self._overlay)
        for path, got in overlay.items():
            if not path.startswith(base):
                continue
            rest = path[len(base):]
            key = rest.split("/", 1)[0] + ("/" if "/" in rest else "")
            if got is _DELETED:
                if "/" not in rest:
                    keys.discard(rest)
            else:
                keys.add(key)
        return sorted(keys)

    def list_recursive(self, folder: str, *, exclude: Iterable[str] = ()) -> builtins.list[str]:
        if not self.dry_run:
            return self.inner.list_recursive(folder, exclude=exclude)
        return secrets_below(self.list, folder, exclude)

    def read_tree(self, prefix: str, *, exclude: Iterable[str] = (), known: Mapping[str, Any] | None = None) -> Tree:
        if not self.dry_run:
            return self.inner.read_tree(prefix, exclude=exclude, known=known)
        # a dry run reads the tree through its overlay: ``known`` may predate a recorded change
        out: Tree = {}
        for path in [prefix, *self.list_recursive(prefix, exclude=exclude)]:
            got = self.read(path)
            if got is not None:
                out[path] = got
        return out

    # --- changes -----------------------------------------------------------------------

    def write(self, path: str, data: Mapping[str, Any], *, cas: int | None = None) -> int | None:
        if not self.dry_run:
            version = self.inner.write(path, data, cas=cas)
            self._record(Change("write", path, existed=None if cas is None else cas != 0))
            return version
        current = self.read(path)
        version = None if current is None else current[1]
        if cas is not None and ((cas == 0 and current is not None) or (cas != 0 and version != cas)):
            raise CasConflict(f"dry run: {path} changed since it was read (cas {cas})", api="vault")
        new_version = None if self.kv_version != 2 else (version or 0) + 1
        with self._lock:
            self._overlay[path] = (dict(data), new_version)
        self._record(Change("write", path, existed=current is not None,
                            before=None if current is None else current[0], after=dict(data)))
        return new_version

    def delete(self, path: str) -> None:
        if not self.dry_run:
            self.inner.delete(path)
            self._record(Change("delete", path, existed=True))
            return
        current = self.read(path)
        with self._lock:
            self._overlay[path] = _DELETED
        self._record(Change("delete", path, existed=current is not None,
                            before=None if current is None else current[0]))

    def delete_archived(self, path: str, *, backup_path: str) -> None:
        """An archived instance path removed (the adapter checks the backup exists)."""
        if not self.dry_run:
            self.inner.delete_archived(path, backup_path=backup_path)
            self._record(Change("delete", path, existed=True))
            return
        if self.read(backup_path) is None:  # the dry run's backup is in the overlay
            raise CasConflict(f"dry run: {path} would be archived without its backup {backup_path}", api="vault")
        current = self.read(path)
        with self._lock:
            self._overlay[path] = _DELETED
        self._record(Change("delete", path, existed=current is not None,
                            before=None if current is None else current[0]))

    def _record(self, change: Change) -> None:
        with self._lock:
            self.changes.append(change)
