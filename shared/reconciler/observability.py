"""Logging and run metrics: one structured log stream per function, one correlation id per run.

- ``logger``: the Powertools Logger of the service ``blacksmith-reconciler`` (JSON lines on
  stdout). The reconciler's own modules keep logging through the standard library
  (``logging.getLogger("reconciler....")``); :func:`setup` routes that hierarchy through the
  same handler and formatter, so every line is structured and carries the run's correlation id.
- ``@inject_run_context``: the decorator of every Lambda handler. It sets the correlation id
  (the run id, i.e. the Step Functions execution name, for every phase event shape; the
  request id for Function URL requests), the Lambda context fields, and the level (info;
  debug when ``BLACKSMITH_RECONCILER_DEBUG`` / ``BLACKSMITH_DEBUG`` / ``reconciler.debug``
  is true). Keys are kept per thread (a ContextVar), so the embedded engine's Map threads
  never mix two runs' ids. A handler that raises logs one error line (type and message) first.
- :func:`emit_run_metrics`: the run's figures once per run as CloudWatch EMF (Powertools
  Metrics), namespace ``POWERTOOLS_METRICS_NAMESPACE`` (default ``BlacksmithReconciler``),
  dimension ``service``.
- Redaction: the formatter masks values under secret-looking keys (password, secret, token,
  credentials, private_key, ...) and bearer/Vault tokens, basic-auth URLs and PEM private
  keys in any text. It is the second line of defence: the first is never logging a secret.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.logging.lambda_context import build_lambda_context_model

from . import env
from .domain.findings import FindingKind
from .redaction import MASK as MASK  # re-exported: the log formatter's rules live in redaction.py
from .redaction import SENSITIVE_KEY as SENSITIVE_KEY
from .redaction import redact
from .redaction import redact_text as redact_text

SERVICE = "blacksmith-reconciler"
DEFAULT_NAMESPACE = "BlacksmithReconciler"
DEBUG_VARIABLES = ("BLACKSMITH_RECONCILER_DEBUG", "BLACKSMITH_DEBUG")
TRUE = {"1", "true", "yes", "on", "y", "t"}

F = TypeVar("F", bound=Callable[..., Any])

class RedactingFormatter(LambdaPowertoolsFormatter):
    """The Powertools JSON formatter, with every record redacted (message, extras, exception
    text) before it is serialised."""

    def serialize(self, log: Any) -> str:
        return super().serialize(redact(log))


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is now (Lambda: the log stream; tests: the capture)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


# --------------------------------------------------------------------------------------------
# The logger
# --------------------------------------------------------------------------------------------

class _LoggerName(logging.Filter):
    """Adds ``logger`` (e.g. ``reconciler.phases.finish``): which module wrote the line."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.logger = record.name
        return True


_handler = _StdoutHandler()
_handler.addFilter(_LoggerName())


def _build_logger() -> Logger:
    std = logging.getLogger(SERVICE)
    # another Logger(service=SERVICE) configured first: take its place, keep one handler
    previous = getattr(std, "powertools_handler", None)
    if previous is not None and previous is not _handler:
        std.removeHandler(previous)
        std.init = False  # type: ignore[attr-defined]
        std.powertools_handler = None  # type: ignore[attr-defined]
    built = Logger(service=SERVICE, logger_handler=_handler, logger_formatter=RedactingFormatter(),
                   level=logging.INFO)
    return built


logger = _build_logger()


def setup() -> Logger:
    """Route the standard library's ``reconciler.*`` loggers through the structured handler
    (idempotent). Called at import; call again if something replaced the handlers."""
    std = logging.getLogger("reconciler")
    if _handler not in std.handlers:
        std.addHandler(_handler)
    std.propagate = False  # the Lambda runtime's root handler would print each line again, unstructured
    if std.level == logging.NOTSET:
        std.setLevel(logging.INFO)
    return logger


setup()


def debug_enabled(settings: Any = None) -> bool:
    """Debug logging: ``BLACKSMITH_RECONCILER_DEBUG`` or ``BLACKSMITH_DEBUG`` true (this
    function's environment), or the configuration's ``reconciler.debug``."""
    if any((env.get(name) or "").strip().lower() in TRUE for name in DEBUG_VARIABLES):
        return True
    return settings is not None and bool(settings.debug)


def level_name(settings: Any = None) -> str:
    """DEBUG when debug is on, else ``POWERTOOLS_LOG_LEVEL`` (when it names a level), else INFO."""
    if debug_enabled(settings):
        return "DEBUG"
    wanted = (env.get("POWERTOOLS_LOG_LEVEL") or "").strip().upper()
    return wanted if wanted in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL") else "INFO"


def set_level(settings: Any = None) -> str:
    name = level_name(settings)
    logger.setLevel(name)
    logging.getLogger("reconciler").setLevel(name)
    return name


# --------------------------------------------------------------------------------------------
# Correlation
# --------------------------------------------------------------------------------------------


def _dig(event: Mapping[str, Any], *path: str) -> Any:
    value: Any = event
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def run_id_from_arn(arn: str) -> str:
    """``arn:aws:states:<region>:<account>:execution:<machine>:<name>`` -> ``<name>`` (the run id)."""
    return arn.rsplit(":", 1)[-1]


def correlation_id(event: Any) -> str | None:
    """The run id for every event shape the state machine passes (Begin: ``execution_arn``;
    Discover/Match/SyncIndex/Orphans/Finish: ``run.run_id``; Map batches and a failed batch:
    ``run_id``; RecordFailure: ``state.run.run_id`` or ``execution_arn``), the request id for
    a Function URL request; None for anything else."""
    if not isinstance(event, Mapping):
        return None
    for path in (("run", "run_id"), ("run_id",), ("state", "run", "run_id")):
        value = _dig(event, *path)
        if isinstance(value, str) and value:
            return value
    arn = event.get("execution_arn")
    if isinstance(arn, str) and arn:
        return run_id_from_arn(arn)
    request = _dig(event, "requestContext", "requestId")
    return request if isinstance(request, str) and request else None


# --------------------------------------------------------------------------------------------
# The handler decorator
# --------------------------------------------------------------------------------------------


def _settings_quietly(settings: Callable[[], Any] | None) -> Any:
    """The phase settings for ``reconciler.debug``; a broken configuration is the handler's to report."""
    if settings is None:
        return None
    try:
        return settings()
    except Exception:
        return None


def inject_run_context(handler: F | None = None, *, settings: Callable[[], Any] | None = None,
                       use_settings: bool = True) -> Any:
    """Decorate a Lambda handler: correlation id, Lambda context fields, log level, one error
    line when it raises. ``settings`` (the handler's ``ContainerDeps.settings``) gives ``reconciler.debug``;
    without it, or with ``use_settings=False`` (the API), the debug switch comes from the
    environment only."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(event: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
            set_level(_settings_quietly(settings) if use_settings else None)
            keys: dict[str, Any] = {"correlation_id": correlation_id(event)}
            with contextlib.suppress(Exception):  # a context without Lambda's attributes (scripts, tests)
                keys.update(build_lambda_context_model(context).__dict__)
            logger.thread_safe_clear_keys()
            logger.thread_safe_append_keys(**keys)
            try:
                return fn(event, context, *args, **kwargs)
            except Exception as exc:
                # our exceptions' messages never carry secrets; the formatter masks what slips through
                logger.error("%s failed: %s: %s", getattr(context, "function_name", fn.__name__),
                             type(exc).__name__, str(exc)[:500],
                             extra={"error_type": type(exc).__name__})
                raise
            finally:
                logger.thread_safe_clear_keys()

        return wrapper  # type: ignore[return-value]

    return decorate(handler) if handler is not None else decorate


# --------------------------------------------------------------------------------------------
# EMF: the run's figures, once per run
# --------------------------------------------------------------------------------------------

# metric name -> (unit, key in the figures handed to emit_run_metrics)
RUN_METRICS: dict[str, tuple[str, str]] = {
    "Runs": ("Count", "runs"),
    "RunsSuccessful": ("Count", "runs_successful"),
    "RunsFailed": ("Count", "runs_failed"),
    "RunDuration": ("Seconds", "duration_s"),
    "Deployments": ("Count", "deployments"),
    "InstancesFound": ("Count", "instances_found"),
    "InstancesSynced": ("Count", "instances_synced"),
    "Errors": ("Count", "errors"),
    "BackupsWritten": ("Count", "backups_written"),
    "CacheHits": ("Count", "cache_hits"),
    "CacheMisses": ("Count", "cache_misses"),
    "CredentialsRecovered": ("Count", "credentials_recovered"),
    "CircuitsOpen": ("Count", "circuits_open"),  # breakers open at the end of the run (CircuitOpenAlarm)
    "InstancesNotReconciled": ("Count", "instances_not_reconciled"),
    **{kind.spec.metric: ("Count", kind.figure) for kind in FindingKind},
}


def metrics_namespace() -> str:
    return (env.get("POWERTOOLS_METRICS_NAMESPACE") or "").strip() or DEFAULT_NAMESPACE


def emit_run_metrics(figures: Mapping[str, Any], *, status: str | None = None) -> dict[str, float]:
    """Print the run's figures as one CloudWatch EMF document (Powertools Metrics). Figures
    missing from ``figures`` are left out (e.g. orphans not evaluated this run). Returns what
    was emitted. Never raises: metrics must not fail a run that did its work."""
    from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit  # cold start: only Finish emits

    emitted: dict[str, float] = {}
    try:
        metrics = EphemeralMetrics(namespace=metrics_namespace(), service=SERVICE)
        for name, (unit, key) in RUN_METRICS.items():
            value = figures.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            metrics.add_metric(name=name, unit=getattr(MetricUnit, unit), value=float(value))
            emitted[name] = float(value)
        if status:
            metrics.add_metadata(key="run_status", value=status)
        run = figures.get("run_id")
        if isinstance(run, str):
            metrics.add_metadata(key="run_id", value=run)
        if emitted:
            metrics.flush_metrics()
    except Exception as exc:  # a bad figure must not fail the run
        logger.warning("run metrics not emitted: %s", type(exc).__name__)
        return {}
    return emitted
