"""Routes of the Function URL API (Powertools ``LambdaFunctionUrlResolver``).

The resolver is module-level, as Powertools expects; its AWS dependencies (:class:`Services`)
are the handler's, built on its first request (no I/O at import: :class:`ContainerServices`)
and handed to each request through :func:`serving`; tests replace them with :func:`use_services`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
from aws_lambda_powertools.event_handler import LambdaFunctionUrlResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError

from reconciler import env, progress
from reconciler.api import dashboard, metrics_text, status
from reconciler.api.requests import ACCEPTED, parse_reconcile_body, parse_restore_body
from reconciler.bosh import BoshClient
from reconciler.cf import CFClient
from reconciler.config import settings_from_environment
from reconciler.errors import ConfigError, InvalidInput, NotFound, ReconcilerError
from reconciler.health import run_checks
from reconciler.observability import logger
from reconciler.phases import contracts as scratch_keys
from reconciler.restore import restore_diff, restore_with_proof
from reconciler.store import Store
from reconciler.vault import VaultClient

app = LambdaFunctionUrlResolver()

ROUTES = {
    "/b": {"GET"}, "/b/": {"GET"}, "/b/status": {"GET"}, "/b/metrics": {"GET"}, "/b/reconcile": {"POST"},
    "/b/runs": {"GET"}, "/b/orphans": {"GET"}, "/b/health": {"GET"}, "/b/restore": {"POST"},
}
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
START_CLAIM_S = 60  # a POST's claim to start a run, given back once started; expires if the Lambda dies


@dataclass
class Services:
    """What the API reads and starts: the state store and the state machine."""

    store: Any  # reconciler.store.Store
    sfn: Any  # boto3 stepfunctions client
    state_machine_arn: str
    interval_s: float | None = None
    enabled: bool = True
    export_prometheus: bool = True  # reconciler.metrics.export_prometheus: GET /b/metrics, else 404
    refresh_s: float = 30.0  # reconciler.metrics.collection_interval: the dashboard's auto-refresh
    settings: Any = None  # the configuration, for what talks to CF, BOSH and Vault (health, restore)
    foundations: tuple[str, ...] = ()  # the configured names: the labels of findings per share
    directors: tuple[str, ...] = ()

    def config(self) -> Any:
        if self.settings is None:
            self.settings = settings_from_environment()
        return self.settings

    def vault(self) -> Any:
        """Vault as the phases reach it (breaker state not shared: the API role only reads the tables)."""
        return VaultClient.from_settings(self.config())

    def running_executions(self) -> list[dict[str, Any]]:
        page = self.sfn.list_executions(stateMachineArn=self.state_machine_arn, statusFilter="RUNNING", maxResults=10)
        return page.get("executions", [])


    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Services:
        """The API function's services: its tables, its state machine, its configuration."""
        settings = settings_from_environment(environ)
        return cls(
            store=Store.from_env(environ),
            sfn=boto3.client("stepfunctions"),
            state_machine_arn=_required(environ, "STATE_MACHINE_ARN"),
            interval_s=settings.reconciler.interval,
            enabled=settings.reconciler.enabled,
            export_prometheus=settings.reconciler.metrics.export_prometheus,
            refresh_s=settings.reconciler.metrics.collection_interval,
            settings=settings,
            foundations=tuple(f.name for f in settings.cf_foundations),
            directors=tuple(d.name for d in settings.bosh_directors),
        )


def _required(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name)
    if not value:
        raise ConfigError(f"environment variable {name} is not set (the template sets it on the API function)")
    return value


class ContainerServices:
    """The API handler's :class:`Services`, built on its first request (from the environment the
    function runs in) and kept for the container's life."""

    def __init__(self, build: Callable[[], Services] | None = None) -> None:
        self._build = build or (lambda: Services.from_environment(env.environ()))
        self._services: Services | None = None
        self._lock = threading.Lock()

    def __call__(self) -> Services:
        with self._lock:
            if self._services is None:
                self._services = self._build()
            return self._services


_override: Services | None = None
# the services of the request being answered (the resolver is module-level, shared by every
# function of the embedded engine; a ContextVar is per thread)
_serving: ContextVar[Callable[[], Services] | None] = ContextVar("reconciler_api_services", default=None)


def use_services(services: Services | None) -> None:
    """Replace the handler's services (tests)."""
    global _override
    _override = services


@contextmanager
def serving(services: Callable[[], Services]) -> Iterator[None]:
    """Answer the requests of this block with ``services`` (the handler's ``ContainerServices``)."""
    token = _serving.set(services)
    try:
        yield
    finally:
        _serving.reset(token)


def services() -> Services:
    if _override is not None:
        return _override
    current = _serving.get()
    if current is None:
        raise ConfigError("no API services for this request: the handler answers within routes.serving(...)")
    return current()


def _json(status_code: int, payload: Any) -> Response:
    return Response(status_code=status_code, content_type=content_types.APPLICATION_JSON,
                    body=json.dumps(payload, default=str))


def current_status() -> dict[str, Any]:
    svc = services()
    store = svc.store
    lock = store.current_lock()
    live = progress.view(progress.read(store, lock["run_id"]), time.time()) if lock and lock.get("run_id") else None
    return status.build_status(
        progress=live,
        figures=store.get_metrics(),
        lock=lock,
        runs=store.list_runs(limit=20),
        orphans=store.get_orphans(),
        errors=store.recent_errors(limit=20),
        breakers=store.get_breaker_states(),
        interval_s=svc.interval_s,
        enabled=svc.enabled,
        foundations=svc.foundations,
        directors=svc.directors,
    )


@app.get("/b/status")
def get_status() -> Response:
    return _json(200, current_status())


@app.get("/b/metrics")
def get_metrics() -> Response:
    svc = services()
    if not svc.export_prometheus:
        return _json(404, {"error": "metrics export is off (reconciler.metrics.export_prometheus: false)"})
    store = svc.store
    orphans = store.get_orphans()
    text = metrics_text.render(store.get_metrics(), status.orphan_counts(orphans),
                               running=store.current_lock() is not None,
                               shares=status.orphan_shares(orphans, svc.foundations, svc.directors))
    return Response(status_code=200, content_type=PROMETHEUS_TEXT, body=text)


@app.post("/b/reconcile")
def post_reconcile() -> Response:
    request = parse_reconcile_body(_raw_body())
    svc = services()
    now = datetime.now(UTC)
    kind = "dryrun" if request.dry_run else "forced" if request.force else "run"
    name = f"{kind}-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    # claim, then check, then start, then give the claim back: a concurrent POST either finds the
    # claim or, after it, the started execution (a check before the claim let both start a run)
    claim = svc.store.claim_start(name, START_CLAIM_S)
    if claim is not None:
        return _json(409, {"error": "a reconciliation is already being started", "run": claim["name"]})
    try:
        lock = svc.store.current_lock()
        running = svc.running_executions()
        if lock or running:
            holder = (lock or {}).get("execution_arn") or running[0]["executionArn"]
            return _json(409, {"error": "a reconciliation is already running", "execution_arn": holder})
        started = svc.sfn.start_execution(
            stateMachineArn=svc.state_machine_arn,
            name=name,
            input=json.dumps({"source": "api", "force": request.force, "dry_run": request.dry_run,
                              "requested_at": now.isoformat(),
                              "selection": {"instances": request.instances, "services": request.services}}),
        )
    finally:
        svc.store.release_start(name)
    logger.info("run started on request", extra={"execution_arn": started["executionArn"], "run_id": name,
                                                 "selective": request.selective, "dry_run": request.dry_run})
    return _json(202, {"execution_arn": started["executionArn"], "run": name, "forced": request.force,
                       "dry_run": request.dry_run,
                       "selection": {"instances": request.instances, "services": request.services}})


def _raw_body() -> bytes:
    """The request body as bytes. Powertools' ``decoded_body`` would raise on bytes that are not
    UTF-8 or not base64 (a 500); JSON parsing then says what is wrong with them (a 400)."""
    event = app.current_event
    body = event.body or ""
    if not event.is_base64_encoded:
        return body.encode("utf-8", "surrogateescape")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"request body is not valid base64; {ACCEPTED}") from None


@app.get("/b/runs")
def get_runs() -> Response:
    raw = app.current_event.get_query_string_value("limit", "20") or "20"
    if not re.fullmatch(r"[0-9]{1,3}", raw) or not 1 <= int(raw) <= 100:  # ASCII digits: "²".isdigit() is true
        raise InvalidInput(f"limit={raw[:20]!r} is not accepted; accepted: a whole number from 1 to 100")
    return _json(200, {"runs": services().store.list_runs(limit=int(raw))})


@app.get("/b/runs/<run_id>")
def get_run(run_id: str) -> Response:
    run = services().store.get_run(run_id)
    if run is None:
        return _json(404, {"error": f"no run {run_id[:100]!r}"})
    return _json(200, run)


@app.get("/b/runs/<run_id>/plan")
def get_run_plan(run_id: str) -> Response:
    """A dry run's plan, or a real run's changes (``reconciler.plans``)."""
    store = services().store
    if store.get_run(run_id) is None:
        return _json(404, {"error": f"no run {run_id[:100]!r}"})
    plan = store.get_scratch(run_id, scratch_keys.PLAN)
    if plan is None:
        return _json(404, {"error": f"run {run_id[:100]!r} has no plan yet (still running, failed before its "
                                    "plan, or older than this feature)"})
    return _json(200, plan)


@app.get("/b/health")
def get_health() -> Response:
    """Every dependency reached, authenticated and authorised (``reconciler.health``): 200 when
    all checks pass, 503 with the failing ones (each with its fix) otherwise."""
    svc = services()
    s = svc.config()
    vault = svc.vault() if s.vault.address else None
    report = run_checks(s, store=svc.store, sfn=svc.sfn, state_machine_arn=svc.state_machine_arn,
                        cf_clients=CFClient.all_from_settings(s), bosh_clients=BoshClient.all_from_settings(s),
                        vault=vault)
    return _json(200 if report["ok"] else 503, report)


@app.post("/b/restore")
def post_restore() -> Response:
    """Restore an instance (or one path) from a backup, verified by reading back; ``dry_run``:
    the diff only. 404 for an unknown instance or backup; 409 when the read-back differs."""
    request = parse_restore_body(_raw_body())
    vault = services().vault()
    try:
        if request.dry_run:
            result = restore_diff(vault, request.instance_id, request.sha256, request.path)
        else:
            result = restore_with_proof(vault, request.instance_id, request.sha256, request.path)
    except NotFound as exc:
        return _json(404, {"error": str(exc)})
    logger.info("restore requested", extra={"instance_id": request.instance_id, "sha256": request.sha256,
                                            "dry_run": request.dry_run, "verified": result.get("verified")})
    return _json(200 if result.get("verified", True) else 409, result)  # 409: Vault differs from the backup after it


@app.get("/b/orphans")
def get_orphans() -> Response:
    svc = services()  # every entry with its foundation and director
    return _json(200, status.labelled_orphans(svc.store.get_orphans(), svc.foundations, svc.directors))


@app.get("/b")
@app.get("/b/")
def get_dashboard() -> Response:
    svc = services()
    event = app.current_event
    run_id = (event.get_query_string_value("run", "") or "")[:200] or None
    query = (event.get_query_string_value("q", "") or "")[:200]
    selected = svc.store.get_run(run_id) if run_id else None
    plan = svc.store.get_scratch(run_id, scratch_keys.PLAN) if selected else None
    page = dashboard.render_dashboard(current_status(), svc.store.list_runs(limit=dashboard.CHART_RUNS),
                                      status.labelled_orphans(svc.store.get_orphans(), svc.foundations,
                                                              svc.directors),
                                      refresh_s=svc.refresh_s, selected_run=selected,
                                      selected_plan=plan, selected_run_id=run_id, query=query)
    return Response(status_code=200, content_type="text/html; charset=utf-8", body=page)


@app.not_found
def not_found(_: NotFoundError) -> Response:
    event = app.current_event
    path = event.path.rstrip("/") or "/"
    allowed = ROUTES.get(path) or ({"GET"} if path.startswith("/b/runs/") else None)
    if allowed and event.http_method not in allowed:
        return Response(status_code=405, content_type=content_types.APPLICATION_JSON,
                        body=json.dumps({"error": f"method {event.http_method} not allowed on {path}",
                                         "allowed": sorted(allowed)}),
                        headers={"Allow": ", ".join(sorted(allowed))})
    return _json(404, {"error": f"no such endpoint {event.http_method} {path[:200]}",
                       "endpoints": ["GET /b/", "GET /b/status", "GET /b/metrics", "POST /b/reconcile",
                                     "GET /b/runs", "GET /b/runs/{id}", "GET /b/runs/{id}/plan",
                                     "GET /b/orphans", "GET /b/health", "POST /b/restore"]})


@app.exception_handler(InvalidInput)
def bad_request(exc: InvalidInput) -> Response:
    return _json(400, {"error": str(exc)})


@app.exception_handler(ReconcilerError)
def reconciler_error(exc: ReconcilerError) -> Response:
    logger.error("request failed", extra={"error_type": type(exc).__name__, "error": str(exc)})
    return _json(503, {"error": str(exc), "type": type(exc).__name__})


@app.exception_handler(Exception)
def unexpected(exc: Exception) -> Response:
    # never a stack trace to the caller; the log has the details
    logger.exception("unexpected error in API")
    return _json(500, {"error": "internal error", "type": type(exc).__name__})
