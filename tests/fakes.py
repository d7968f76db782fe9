"""In-memory implementations of the ports (reconciler/ports.py) for unit tests: no network,
no DynamoDB, the same contracts (versions and cas, TTL-less scratch, one lock)."""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.domain import empty_findings
from reconciler.errors import CasConflict, NotFound, RunLocked
from reconciler.ports import Tree


class FakeClock:
    """Epoch seconds that move only when told (``advance``) or slept (``sleep``)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    sleep = advance


class MemoryKv:
    """A KV v2 (or v1) tree: ``read`` gives ``(data, version)``, ``write`` honours ``cas`` as Vault does."""

    def __init__(self, data: Mapping[str, Mapping[str, Any]] | None = None, *, mount: str = "secret",
                 kv_version: int = 2) -> None:
        self._mount = mount
        self._kv_version = kv_version
        self.data: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, int] = {}
        self.writes: list[str] = []  # paths written, in order
        for path, value in (data or {}).items():
            self.data[path] = copy.deepcopy(dict(value))
            self.versions[path] = 1

    @property
    def mount(self) -> str:
        return self._mount

    @property
    def kv_version(self) -> int:
        return self._kv_version

    def read(self, path: str) -> tuple[dict[str, Any], int | None] | None:
        if path not in self.data:
            return None
        return copy.deepcopy(self.data[path]), self.versions[path] if self._kv_version == 2 else None

    def read_data(self, path: str) -> dict[str, Any] | None:
        got = self.read(path)
        return None if got is None else got[0]

    def write(self, path: str, data: Mapping[str, Any], *, cas: int | None = None) -> int | None:
        current = self.versions.get(path, 0)
        if self._kv_version == 2 and cas is not None and cas != current:
            raise CasConflict(f"{path}: check-and-set {cas} but the current version is {current}", api="vault")
        self.data[path] = copy.deepcopy(dict(data))
        self.versions[path] = current + 1
        self.writes.append(path)
        return self.versions[path] if self._kv_version == 2 else None

    def list(self, folder: str) -> list[str]:
        prefix = folder.rstrip("/") + "/"
        out = {p[len(prefix):].split("/", 1)[0] + ("/" if "/" in p[len(prefix):] else "")
               for p in self.data if p.startswith(prefix)}
        if not out:
            raise NotFound(f"{folder}: nothing listed", api="vault")
        return sorted(out)

    def list_recursive(self, folder: str, *, exclude: Iterable[str] = ()) -> list[str]:
        prefix = folder.rstrip("/") + "/"
        skip = list(exclude)
        return sorted(p for p in self.data if p.startswith(prefix)
                      and not any(fnmatch.fnmatch(p[len(prefix):], e) or p[len(prefix):].startswith(e) for e in skip))

    def read_tree(self, prefix: str, *, exclude: Iterable[str] = (), known: Mapping[str, Any] | None = None) -> Tree:
        paths = [p for p in self.data if p == prefix] + self.list_recursive(prefix, exclude=exclude)
        return {p: self.read(p) or (None, None) for p in paths}

    def delete(self, path: str) -> None:
        self.data.pop(path, None)
        self.versions.pop(path, None)


class MemoryStore:
    """Scratch, run records, figures, errors, the run lock and findings, in dicts."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.scratch: dict[tuple[str, str], Any] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.counters: dict[str, float] = {}
        self.gauges: dict[str, Any] = {}
        self.durations: list[float] = []
        self.errors: list[dict[str, Any]] = []
        self.lock: dict[str, Any] | None = None
        self.findings: dict[str, Any] = {}
        self.pauses: dict[tuple[str, str], float] = {}  # (run_id, key#slot) -> until

    def put_scratch(self, run_id: str, key: str, value: Any, ttl_s: float) -> None:
        self.scratch[(run_id, key)] = copy.deepcopy(value)

    def get_scratch(self, run_id: str, key: str, default: Any = None) -> Any:
        return copy.deepcopy(self.scratch.get((run_id, key), default))

    def claim_pause(self, run_id: str, key: str, slots: int, hold_s: float) -> bool:
        now = self.clock()
        for i in range(slots):
            if self.pauses.get((run_id, f"{key}#{i}"), 0.0) <= now:
                self.pauses[(run_id, f"{key}#{i}")] = now + hold_s
                return True
        return False

    def put_run(self, run: dict[str, Any]) -> None:
        self.runs[run["run_id"]] = dict(run)

    def update_run(self, run_id: str, **fields: Any) -> None:
        if run_id not in self.runs:
            raise NotFound(f"run {run_id} has no record (put_run first)", api="dynamodb")
        self.runs[run_id].update(fields)

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.runs.get(run_id))

    def list_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        return [copy.deepcopy(r) for r in list(self.runs.values())[::-1][:limit]]

    def add_metrics(self, **deltas: float) -> None:
        for k, v in deltas.items():
            self.counters[k] = self.counters.get(k, 0) + v

    def set_metrics(self, **values: Any) -> None:
        self.gauges.update(values)

    def get_metrics(self) -> dict[str, Any]:
        return {**self.counters, **self.gauges}

    def observe_run_duration(self, seconds: float) -> None:
        self.durations.append(seconds)

    def record_error(self, run_id: str, phase: str, target: str, message: str) -> None:
        self.errors.append({"run_id": run_id, "phase": phase, "target": target, "message": message})

    def acquire_lock(self, run_id: str, execution_arn: str, lease_s: float) -> dict[str, Any]:
        now = self.clock()
        if self.lock and self.lock["run_id"] != run_id and self.lock["expires_at"] > now:
            raise RunLocked(f"reconcile lock held by run {self.lock['run_id']}", holder=self.lock["execution_arn"])
        self.lock = {"run_id": run_id, "execution_arn": execution_arn, "expires_at": now + lease_s}
        return dict(self.lock)

    def renew_lock(self, run_id: str, lease_s: float) -> None:
        if not self.lock or self.lock["run_id"] != run_id:
            raise RunLocked(f"run {run_id} lost the reconcile lock", holder=(self.lock or {}).get("execution_arn", ""))
        self.lock["expires_at"] = self.clock() + lease_s

    def release_lock(self, run_id: str) -> bool:
        if not self.lock or self.lock["run_id"] != run_id:
            return False
        self.lock = None
        return True

    def current_lock(self) -> dict[str, Any] | None:
        return None if self.lock is None else dict(self.lock)

    def put_orphans(self, state: dict[str, Any]) -> None:
        self.findings = copy.deepcopy(state)

    def get_orphans(self) -> dict[str, Any]:
        return {**empty_findings(), **copy.deepcopy(self.findings)}
