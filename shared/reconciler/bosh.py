"""BOSH Director adapter: what *does* exist.

Per director (``settings.bosh_directors``), read-only, TLS verified against the configured
CA (without one the system CAs are used, so a Director with a private CA fails closed):

* ``GET /info`` (no auth) says ``user_authentication.type``: ``uaa`` -> client-credentials
  token from ``options.url`` (or the configured ``uaa_url``), else HTTP basic.
* ``GET /deployments`` -> :class:`BoshDeployment` (releases, stemcells, teams, lock).
* ``GET /deployments/:name`` -> the manifest text; plus VMs -> :class:`DeploymentDetail`.
* VMs, chosen by ``reconciler.bosh.vm_details``:

  - ``instances`` (default): ``GET /deployments/:name/instances`` -- 1 call, no task: job,
    index, id, IPs, AZ, agent and VM CID, everything credential recovery and matching use.
  - ``task``: ``GET /deployments/:name/vms?format=full`` answers 302 to
    ``/tasks/:id`` (followed with our auth, same host only); poll ``GET /tasks/:id`` with
    bounded backoff until ``done``; then ``GET /tasks/:id/output?type=result`` (NDJSON).
    Cost: 3 + P calls per deployment (P = polls before the task is done, typically 1-3),
    and a Director task (a worker slot on the Director) per deployment. It adds process
    state, DNS names and vm_type, which nothing in the reconciler needs.

  A deployment detail therefore costs 2 calls (instances) or 4 + P calls (task); cached in
  the Store, fresh for ``reconciler.cache_ttl`` and kept a week longer for revalidation
  (hits and misses counted).
* ``GET /events?after_time=T[&before_id=N]``: the Director's event log, newest first, 200
  per page; DiscoverBosh reads it to tell which cached details are still true.

404 -> ``NotFound``; a deployment whose scan fails is recorded on its detail (``error``)
and skipped, never fatal for the run.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from reconciler.config.models import BoshDirector, Settings
from reconciler.errors import ConfigError, InvalidInput, ReconcilerError, Unavailable
from reconciler.http_client import BasicAuth, HttpClient, UaaToken
from reconciler.models import VM, BoshDeployment, DeploymentDetail, NameVersion, SourceStatus
from reconciler.resilience import ApiPolicy, Resilience, make_session, per_member
from reconciler.resilience.policy import typed_settings

log = logging.getLogger(__name__)

TASK_UNFINISHED = {"queued", "processing", "cancelling"}
MAX_POLLS = 60
EVENTS_PAGE = 200  # the Director's EventsController::EVENT_LIMIT: GET /events answers at most 200, newest first
KEEP_S = 7 * 86400  # a cached detail is kept this long past cache_ttl, for revalidation by the events feed


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _name_versions(items: Any) -> list[NameVersion]:
    out = []
    for item in items or []:
        if isinstance(item, dict) and item.get("name"):
            out.append(NameVersion(name=str(item["name"]), version=str(item.get("version", ""))))
    return out


def _texts(value: Any) -> list[str]:
    """A list of strings from a Director field: a lone string is one item (iterating it would
    give one "address" per character), anything that is not text is dropped."""
    if isinstance(value, str):
        return [value] if value else []
    return [v for v in value if isinstance(v, str) and v] if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _vm_from_full(line: dict[str, Any]) -> VM:
    return VM(instance_group=str(line.get("job_name") or line.get("job") or ""),
              index=line.get("index") if type(line.get("index")) is int else None,  # not True/False
              id=str(line.get("id") or ""), ips=_texts(line.get("ips")),
              dns=_texts(line.get("dns")), az=_text(line.get("az")),
              vm_cid=_text(line.get("vm_cid") or line.get("cid")), agent_id=_text(line.get("agent_id")),
              process_state=str(line.get("process_state") or line.get("job_state") or ""),
              active=line.get("active") if isinstance(line.get("active"), bool) else None)


@dataclass
class BoshInventory:
    director: str
    status: SourceStatus = SourceStatus.OK
    error: str | None = None
    deployments: list[BoshDeployment] = field(default_factory=list)


class BoshClient:
    """One Director of the Settings (``settings.bosh_directors``); no settings: the defaults."""

    def __init__(self, director: BoshDirector, settings: Settings | None = None, *, store: Any = None,
                 session: Any = None, vm_details: str | None = None, cache_ttl: float | None = None,
                 poll_initial: float = 0.2,
                 poll_max: float = 2.0, max_polls: int = MAX_POLLS, clock=time.time, sleep=time.sleep) -> None:
        self.name = director.name or "bosh"
        self.director = director
        url = director.url
        if not url:
            raise ConfigError(f"bosh director {self.name!r}: url is not set")
        settings = typed_settings(settings)
        rec = settings.reconciler
        self.vm_details = vm_details or rec.bosh.vm_details
        if self.vm_details not in ("task", "instances"):
            raise ConfigError(f"reconciler.bosh.vm_details {self.vm_details!r}: accepted 'task' or 'instances'")
        self.cache_ttl = float(cache_ttl if cache_ttl is not None else rec.cache_ttl or 0.0)
        self.store = store
        self.poll_initial, self.poll_max, self.max_polls = poll_initial, poll_max, max_polls
        self.sleep = sleep
        self.policy = ApiPolicy.from_settings(settings, "bosh", self.name)
        self.session = session or make_session(self.policy, verify=director.tls_verify())
        self.resilience = Resilience(self.policy, store, clock=clock, sleep=sleep)
        self.uaa_resilience = Resilience(ApiPolicy.from_settings(settings, "bosh", f"{self.name}:uaa"), store,
                                         clock=clock, sleep=sleep)
        self.http = HttpClient(f"bosh:{self.name}", url, self.session, self.resilience)
        self._info: dict[str, Any] | None = None
        self._info_lock = threading.Lock()  # threads of one Lambda share one /info and one login
        self.cache_hits = self.cache_misses = 0

    @classmethod
    def all_from_settings(cls, settings: Settings, store: Any = None, **kwargs: Any) -> list[BoshClient]:
        return [cls(d, settings, store=store, **kwargs) for d in settings.bosh_directors]

    # --- auth ------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        with self._info_lock:
            return self._info if self._info is not None else self._read_info()

    def _read_info(self) -> dict[str, Any]:
        if self._info is None:
            body = self.http.get_json("/info", authenticated=False, timeout=self.policy.health_timeout)
            if not isinstance(body, dict):
                raise InvalidInput(f"bosh:{self.name} GET /info: not a JSON object")
            self._info = body
            self._setup_auth(body)
        return self._info

    def _setup_auth(self, info: dict[str, Any]) -> None:
        ua = info.get("user_authentication") or {}
        kind = ua.get("type")
        d = self.director
        if kind == "uaa":
            base = d.uaa_url or (ua.get("options") or {}).get("url")
            if not base:
                raise InvalidInput(f"bosh:{self.name}: /info says uaa but gives no URL; set uaa_url")
            if not d.client_id or d.client_secret is None:
                raise ConfigError(f"bosh director {self.name!r} uses UAA: client_id and client_secret are needed")
            self.http.auth = UaaToken(base, d.client_id, d.client_secret, session=self.session,
                                      resilience=self.uaa_resilience, api=f"bosh:{self.name}")
        elif kind == "basic":
            if not d.username or d.password is None:
                raise ConfigError(f"bosh director {self.name!r} uses basic auth: username and password are needed")
            self.http.auth = BasicAuth(d.username, d.password)
        else:
            raise InvalidInput(f"bosh:{self.name}: unknown user_authentication type {kind!r} in /info")

    def _get(self, path: str, params: dict[str, Any] | None = None, **kwargs: Any):
        self.info()
        return self.http.request("GET", path, params=params, **kwargs)

    def _json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        resp = self._get(path, params)
        try:
            return resp.json()  # the Director labels most JSON text/html: parse regardless
        except ValueError:
            raise InvalidInput(f"bosh:{self.name} GET {path}: answer is not JSON") from None

    # --- deployments ---------------------------------------------------------------------

    def deployments(self) -> list[BoshDeployment]:
        body = self._json("/deployments", {"exclude_configs": "true"})
        if not isinstance(body, list):
            raise InvalidInput(f"bosh:{self.name} GET /deployments: expected a list")
        return [BoshDeployment(director=self.name, name=str(d["name"]), releases=_name_versions(d.get("releases")),
                               stemcells=_name_versions(d.get("stemcells")),
                               teams=[str(t) for t in d.get("teams") or []], locked=bool(d.get("locked", False)))
                for d in body if isinstance(d, dict) and d.get("name")]

    def inventory(self) -> BoshInventory:
        """The deployment list, or ``failed`` with the reason (the run degrades)."""
        inv = BoshInventory(director=self.name)
        try:
            inv.deployments = self.deployments()
        except ReconcilerError as exc:
            inv.status, inv.error = SourceStatus.FAILED, str(exc)
            log.warning("bosh:%s deployment list failed: %s", self.name, exc)
        return inv

    def events_since(self, after_ts: int, *, max_pages: int = 10) -> tuple[list[dict[str, Any]] | None, int]:
        """``(events, requests)``: every event with a timestamp after ``after_ts`` (whole seconds:
        the Director's ``after_time`` keeps ``timestamp >= after_time + 1``), newest first, paging
        with ``before_id`` (ids only go down); ``None`` for the events when there are more than
        ``max_pages`` pages (the caller does not trust a feed it did not read to the end)."""
        params: dict[str, Any] = {"after_time": str(int(after_ts))}
        out: list[dict[str, Any]] = []
        for page in range(1, max_pages + 1):
            body = self._json("/events", params)
            if not isinstance(body, list):
                raise InvalidInput(f"bosh:{self.name} GET /events: expected a list")
            events = [e for e in body if isinstance(e, dict)]
            out += events
            if len(body) < EVENTS_PAGE:
                return out, page
            ids = [int(e["id"]) for e in events if str(e.get("id", "")).isdigit()]
            if not ids:
                raise InvalidInput(f"bosh:{self.name} GET /events: a full page without event ids")
            params = {"after_time": str(int(after_ts)), "before_id": str(min(ids))}
        return None, max_pages

    def manifest(self, name: str) -> str | None:
        body = self._json(f"/deployments/{_safe(name)}")
        manifest = body.get("manifest") if isinstance(body, dict) else None
        if manifest is not None and not isinstance(manifest, str):
            raise InvalidInput(f"bosh:{self.name} GET /deployments/{name}: manifest is not text "
                               f"({type(manifest).__name__}); accepted: the manifest's YAML as a string")
        return manifest

    def vms(self, name: str) -> list[VM]:
        return self._vms_task(name) if self.vm_details == "task" else self._vms_instances(name)

    def _vms_instances(self, name: str) -> list[VM]:
        body = self._json(f"/deployments/{_safe(name)}/instances")
        if not isinstance(body, list):
            raise InvalidInput(f"bosh:{self.name} GET /deployments/{name}/instances: expected a list")
        return [_vm_from_full(i) for i in body if isinstance(i, dict)]

    def _vms_task(self, name: str) -> list[VM]:
        # requests would follow the 302 but drop nothing we need; we follow it ourselves so the
        # same-host check and our auth header apply to the task URL too.
        resp = self._get(f"/deployments/{_safe(name)}/vms", {"format": "full"}, allow_redirects=False, ok=(302,))
        location = resp.headers.get("Location") or ""
        task_path = urlsplit(self.http.url(location)).path if location else ""
        if not task_path.startswith("/tasks/"):
            raise InvalidInput(f"bosh:{self.name} GET /deployments/{name}/vms: no task location in the 302")
        delay = self.poll_initial
        for _ in range(self.max_polls):
            task = self._json(task_path)
            state = task.get("state") if isinstance(task, dict) else None
            if state == "done":
                break
            if state not in TASK_UNFINISHED:
                raise Unavailable(f"bosh:{self.name} task {task_path} for deployment {name} ended {state!r}: "
                                  f"{str((task or {}).get('result') or '')[:200]}", api="bosh")
            self.sleep(delay)
            delay = min(self.poll_max, delay * 2)
        else:
            raise Unavailable(f"bosh:{self.name} task {task_path} for deployment {name} unfinished after "
                              f"{self.max_polls} polls", api="bosh")
        output = self._get(f"{task_path}/output", {"type": "result"}).text
        vms = []
        for n, line in enumerate(output.splitlines(), 1):
            if not line.strip():
                continue
            try:
                vms.append(_vm_from_full(json.loads(line)))
            except (ValueError, AttributeError):
                raise InvalidInput(f"bosh:{self.name} {task_path}/output line {n}: not a JSON object") from None
        return sorted(vms, key=lambda v: (v.instance_group, v.index if v.index is not None else -1, v.id))

    def deployment_detail(self, deployment: BoshDeployment | str) -> DeploymentDetail:
        """Manifest and VMs of one deployment, fresh from the Director (no cache); raises the
        domain error when the scan fails (the caller records it and skips the deployment)."""
        dep = deployment if isinstance(deployment, BoshDeployment) else BoshDeployment(director=self.name,
                                                                                       name=str(deployment))
        return DeploymentDetail(director=self.name, name=dep.name, manifest_text=self.manifest(dep.name),
                                releases=dep.releases, stemcells=dep.stemcells, vms=self.vms(dep.name),
                                fetched_at=_now_iso())

    def detail(self, deployment: BoshDeployment | str, *, use_cache: bool = True) -> DeploymentDetail:
        """Manifest and VMs of one deployment; cached in the Store for ``cache_ttl``. A failure is
        recorded on the returned detail (``error``), never raised (the deployment is skipped)."""
        dep = deployment if isinstance(deployment, BoshDeployment) else BoshDeployment(director=self.name,
                                                                                       name=str(deployment))
        if use_cache and self.store is not None and self.cache_ttl > 0:
            cached = self.store.get_cached_deployment(self.name, dep.name, max_age=self.cache_ttl)
            if cached is not None:
                self.cache_hits += 1
                return DeploymentDetail.model_validate(cached)
            self.cache_misses += 1
        try:
            detail = self.deployment_detail(dep)
        except ReconcilerError as exc:
            log.warning("bosh:%s scan of %s failed: %s", self.name, dep.name, exc)
            return DeploymentDetail(director=self.name, name=dep.name, releases=dep.releases,
                                    stemcells=dep.stemcells, fetched_at=_now_iso(), error=str(exc))
        if self.store is not None and self.cache_ttl > 0:
            self.store.put_cached_deployment(self.name, dep.name, detail.model_dump(mode="json"), self.cache_ttl,
                                             keep_s=KEEP_S)
        return detail

    def take_counts(self) -> dict[str, int]:
        counts = self.resilience.take_counts()
        for k, v in self.uaa_resilience.take_counts().items():
            counts[k] = counts.get(k, 0) + v
        counts = per_member(counts, self.name)  # and under the foundation's / director's name
        counts["cache_hits_total"], counts["cache_misses_total"] = self.cache_hits, self.cache_misses
        self.cache_hits = self.cache_misses = 0
        return counts


def inventory_all(settings: Any, store: Any = None, **kwargs: Any) -> list[BoshInventory]:
    """One :class:`BoshInventory` per configured director, each labelled with its name."""
    return [c.inventory() for c in BoshClient.all_from_settings(settings, store, **kwargs)]


def _safe(name: str) -> str:
    """A deployment name as a path segment: BOSH names are ``[A-Za-z0-9_.-]``; refuse the rest."""

    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}", name):
        raise InvalidInput(f"deployment name {str(name)[:80]!r}: letters, digits, '.', '_' and '-' are accepted")
    return name


