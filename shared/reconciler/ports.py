"""What the phases need of the outside world, as typing Protocols.

The adapters implement them (``vault.VaultClient`` and ``recording.RecordingVault``: KvStore;
``cf.CFClient``: CloudController; ``bosh.BoshClient``: Director; ``store.Store``: ScratchStore
and RunStore) and so do the in-memory fakes of the unit tests (``tests/fakes.py``). A second
KV target, say, implements :class:`KvStore` and nothing in the phases changes.

Structural typing: nothing inherits from these; ``tests/unit/test_ports.py`` checks that the
adapters and the fakes have every member.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

from .domain.planning import Tree
from .models import BoshDeployment, CFBinding, DeploymentDetail

__all__ = ["CloudController", "Clock", "Director", "KvStore", "RunStore", "ScratchStore", "Tree"]


@runtime_checkable
class Clock(Protocol):
    """Epoch seconds now (``time.time``); tests pass a fake that moves when told."""

    def __call__(self) -> float: ...


@runtime_checkable
class KvStore(Protocol):
    """A versioned key/value tree (Vault KV v1 or v2) under ``mount``.

    Versions: ``read`` returns ``(data, version)``; ``write(..., cas=version)`` succeeds only
    while the path is still at that version (``cas=0``: only if absent) and raises
    ``reconciler.errors.CasConflict`` otherwise. KV v1 has no versions (``None``) and no cas.
    """

    @property
    def mount(self) -> str: ...

    @property
    def kv_version(self) -> int: ...  # 1 or 2 (detected once)

    def read(self, path: str) -> tuple[dict[str, Any], int | None] | None: ...

    def read_data(self, path: str) -> dict[str, Any] | None: ...

    def write(self, path: str, data: Mapping[str, Any], *, cas: int | None = None) -> int | None: ...

    def list(self, folder: str) -> list[str]: ...

    def list_recursive(self, folder: str, *, exclude: Iterable[str] = ()) -> builtins.list[str]: ...

    def read_tree(self, prefix: str, *, exclude: Iterable[str] = (),
                  known: Mapping[str, Any] | None = None) -> Tree: ...

    def delete(self, path: str) -> None: ...


@runtime_checkable
class CloudController(Protocol):
    """One CF foundation: our broker's instances, catalog and bindings."""

    name: str

    def discover(self, *, with_bindings: bool = True) -> Any: ...  # a cf.CFDiscovery

    def binding_details(self, binding: CFBinding | str) -> CFBinding: ...

    def take_counts(self) -> dict[str, int]: ...


@runtime_checkable
class Director(Protocol):
    """One BOSH Director: its deployments and each one's manifest and VMs."""

    name: str

    def deployments(self) -> list[BoshDeployment]: ...

    def detail(self, deployment: BoshDeployment | str, *, use_cache: bool = True) -> DeploymentDetail: ...

    def events_since(self, after_ts: int, *, max_pages: int = 10) -> tuple[list[dict[str, Any]] | None, int]: ...

    def take_counts(self) -> dict[str, int]: ...


@runtime_checkable
class ScratchStore(Protocol):
    """Values one state leaves for a later one of the same run (or the next run), with a TTL."""

    def put_scratch(self, run_id: str, key: str, value: Any, ttl_s: float) -> None: ...

    def get_scratch(self, run_id: str, key: str, default: Any = None) -> Any: ...

    def claim_pause(self, run_id: str, key: str, slots: int, hold_s: float) -> bool: ...


@runtime_checkable
class RunStore(Protocol):
    """Run records, figures, recorded errors, the run lock and the published findings."""

    def put_run(self, run: dict[str, Any]) -> None: ...

    def update_run(self, run_id: str, **fields: Any) -> None: ...

    def get_run(self, run_id: str) -> dict[str, Any] | None: ...

    def list_runs(self, limit: int = 20) -> list[dict[str, Any]]: ...

    def add_metrics(self, **deltas: float) -> None: ...

    def set_metrics(self, **values: Any) -> None: ...

    def get_metrics(self) -> dict[str, Any]: ...

    def observe_run_duration(self, seconds: float) -> None: ...

    def record_error(self, run_id: str, phase: str, target: str, message: str) -> None: ...

    def acquire_lock(self, run_id: str, execution_arn: str, lease_s: float) -> dict[str, Any]: ...

    def release_lock(self, run_id: str) -> bool: ...

    def current_lock(self) -> dict[str, Any] | None: ...

    def put_orphans(self, state: dict[str, Any]) -> None: ...

    def get_orphans(self) -> dict[str, Any]: ...
