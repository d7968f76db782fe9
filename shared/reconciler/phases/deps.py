"""What a phase gets from its handler: ``run(event, context, deps)``.

A :class:`Deps` is built once per container (``functions/<phase>/app.py`` keeps a
:class:`ContainerDeps`, filled on its first call from the function's environment) and handed
to every invocation. The embedded engine loads each function's ``app.py`` as its own module,
so each function there has its own; tests build theirs with :meth:`Deps.build`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .. import env
from ..config import Settings, settings_from_environment
from ..ports import Clock, CloudController, Director, KvStore
from ..resilience import take_all_counts
from ..store import Store
from . import sources

_log = logging.getLogger("reconciler.phases.deps")
T = TypeVar("T")
KvFactory = Callable[[int | None], KvStore]  # kv_version (as Match detected it) -> the KV store
CloudControllersFactory = Callable[[dict[str, dict[str, str]] | None], dict[str, CloudController]]
DirectorsFactory = Callable[[], dict[str, Director]]


@dataclass(frozen=True)
class Deps:
    """Settings, the store, the clock and factories for the ports, for one container."""

    store: Store
    loaded_settings: Settings | None
    settings_error: Exception | None = None  # the configuration did not load: raised by ``settings``
    environ: Mapping[str, str] = field(default_factory=dict)  # deploy-time values (drift, run timeout)
    clock: Clock = time.time
    sleep: Callable[[float], None] = time.sleep  # pauses between batches
    kv_factory: KvFactory | None = None
    cloud_controllers_factory: CloudControllersFactory | None = None
    directors_factory: DirectorsFactory | None = None

    @property
    def settings(self) -> Settings:
        """The configuration; its load error when it failed (the phase reports it as before)."""
        if self.loaded_settings is None:
            raise self.settings_error or RuntimeError("Deps without settings")
        return self.loaded_settings

    def kv(self, kv_version: int | None = None) -> KvStore:
        """The KV store (Vault); ``kv_version`` spares it its own ``sys/mounts`` read."""
        if self.kv_factory is not None:
            return self.kv_factory(kv_version)
        return sources.vault(self.settings, self.store, kv_version)

    def cloud_controllers(self, endpoints: dict[str, dict[str, str]] | None = None) -> dict[str, CloudController]:
        """``{foundation name: client}`` (``endpoints``: the UAA links DiscoverCF read this run)."""
        if self.cloud_controllers_factory is not None:
            return self.cloud_controllers_factory(endpoints)
        return sources.cf_clients(self.settings, self.store, endpoints)

    def directors(self) -> dict[str, Director]:
        """``{director name: client}``, kept for the container's life (one ``/info`` and UAA token)."""
        if self.directors_factory is not None:
            return self.directors_factory()
        return self._kept("directors", lambda: sources.bosh_clients(self.settings, self.store))

    def metrics_enabled(self) -> bool:
        """``metrics.enabled``; True when the configuration cannot be read (the failure being
        recorded may be the configuration itself)."""
        return True if self.loaded_settings is None else bool(self.loaded_settings.reconciler.metrics.enabled)

    _kept_values: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    _kept_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def _kept(self, name: str, build: Callable[[], Any]) -> Any:
        with self._kept_lock:
            if name not in self._kept_values:
                self._kept_values[name] = build()
            return self._kept_values[name]

    @classmethod
    def build(cls, settings: Settings | None, store: Any, **kwargs: Any) -> Deps:
        """A Deps of given parts (tests, the engine): ``kv_factory`` / ``cloud_controllers_factory``
        / ``directors_factory`` replace the adapters, ``environ`` and ``clock`` their defaults."""
        return cls(store=store, loaded_settings=settings, **kwargs)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Deps:
        """The Lambda's Deps: settings from SSM or the file named in ``environ`` plus its
        overrides, the DynamoDB store of ``CACHE_TABLE`` / ``STATE_TABLE`` (run records and
        recorded errors live for ``metrics.retention_period``). A configuration that does not
        load is kept as ``settings_error`` (RecordFailure still records the run's failure)."""
        environ = dict(environ)
        settings: Settings | None = None
        error: Exception | None = None
        try:
            settings = settings_from_environment(environ)
        except Exception as exc:  # noqa: BLE001 - raised where a phase reads its settings
            error = exc
        extra: dict[str, float] = {}
        with contextlib.suppress(Exception):  # a broken configuration must not stop RecordFailure recording it
            if settings is not None:
                keep = float(settings.reconciler.metrics.retention_period)
                extra = {"run_ttl_s": keep, "error_ttl_s": keep}
        return cls(store=Store.from_env(environ, **extra), loaded_settings=settings, settings_error=error,
                   environ=environ)


class ContainerDeps:
    """A handler's :class:`Deps`, built on its first call (from the environment the function
    runs in) and kept for the container's life; while the configuration fails to load it is
    built again on the next call (an SSM read may fail once)."""

    def __init__(self, build: Callable[[], Deps] | None = None) -> None:
        self._build = build or (lambda: Deps.from_environment(env.environ()))
        self._deps: Deps | None = None
        self._lock = threading.Lock()

    def __call__(self) -> Deps:
        with self._lock:
            if self._deps is not None:
                return self._deps
            built = self._build()
            if built.settings_error is None:
                self._deps = built
            return built

    def settings(self) -> Settings:
        """For ``inject_run_context`` (``reconciler.debug``)."""
        return self().settings

    def run(self, phase: Callable[[Any, Any, Deps], T], event: Any, context: Any) -> T:
        """``phase(event, context, deps)``, then this invocation's API request and error counts
        added to the store's counters in one write (``/b/metrics``: ``api_requests_total``)."""
        deps = self()
        try:
            return phase(event, context, deps)
        finally:
            counts = take_all_counts()
            if counts:
                try:
                    deps.store.add_metrics(**counts)
                except Exception as exc:  # noqa: BLE001 - counters must not fail the phase that made the requests
                    _log.warning("API request counters not stored: %s", type(exc).__name__)
