"""A BOSH Director emulator, served over TLS with a CA generated at start.

Wire formats follow ``shared/api-reference/bosh-director.md``. Details clients depend on:

* ``/info`` needs no auth and advertises ``basic`` or ``uaa`` (with the UAA URL);
* unauthenticated calls are 401 with a **plain text** body ``Not authorized: '<path>'``;
  scope failures are 401 with JSON code 600000;
* JSON is compact (Ruby ``JSON.generate``); only ``/info`` and ``/tasks*`` say
  ``application/json``, every other JSON answer goes out as Sinatra's default
  ``text/html;charset=utf-8`` (clients must parse regardless);
* ``/deployments/:name/vms?format=full`` answers ``302`` to the absolute ``/tasks/:id`` on the
  scheme/host/port the client called; the task goes queued -> processing -> done over
  successive polls (``task_steps``) or time (``task_seconds``); its result output is NDJSON,
  one VM per line, in no particular order;
* unknown deployment: 404 ``{"code":70000,...}``; unknown task: 404 code 10000.
"""

from __future__ import annotations

import base64
import binascii
import gc
import json
import random
import re
import secrets
import threading
import time
import uuid
from typing import Any
from urllib.parse import unquote

from mockstack.base import Emulator, EmulatorServer, Request, Response
from mockstack.tls import TLSMaterial, make_tls

SINATRA_TYPE = "text/html;charset=utf-8"  # what the Director sends when a controller sets no type
JSON_TYPE = "application/json"
DIRECTOR_VERSION = "282.0.0 (00000000)"
VERBOSE_1_TYPES = frozenset({
    "attach_disk", "create_snapshot", "delete_deployment", "delete_release", "delete_snapshot", "delete_stemcell",
    "run_errand", "snapshot_deployment", "update_instance", "update_deployment", "update_release", "update_stemcell",
    "export_release"})
TASK_STATES = ("queued", "processing", "cancelling", "cancelled", "done", "error", "timeout")
UNFINISHED = frozenset({"queued", "processing", "cancelling"})
# keys of a vms?format=full line, in the order the current Director emits them (jobs/vm_state.rb)
VM_KEYS = ("vm_cid", "active", "vm_created_at", "cloud_properties", "disk_cid", "disk_cids", "ips", "agent_id",
           "job_name", "index", "job_state", "state", "vm_type", "vitals", "processes", "az", "id", "bootstrap",
           "ignore", "stemcell")
NOT_ON_THE_WIRE = frozenset({"process_state"})  # a CLI column name; the wire key is job_state
EVENT_LIMIT = 200  # EventsController::EVENT_LIMIT


def _event_time(raw: str) -> int | None:
    """``timestamp_filter_value``: an integer is epoch seconds, else a date ``Time.parse`` reads
    (ISO 8601 here, or the events table's ``%a %b %d %H:%M:%S %Z %Y``); None when unreadable."""
    from datetime import datetime

    text = raw.strip()
    if re.fullmatch(r"[-+]?\d+", text):
        return int(text)
    for parse in (lambda t: datetime.fromisoformat(t.replace("Z", "+00:00")),
                  lambda t: datetime.strptime(t, "%a %b %d %H:%M:%S %Z %Y")):
        try:
            value = parse(text)
        except ValueError:
            continue
        if value.tzinfo is None:
            from datetime import UTC
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp())
    return None


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _json(status: int, payload: Any, content_type: str = SINATRA_TYPE, headers: dict | None = None) -> Response:
    return Response(status, _dumps(payload), {"Content-Type": content_type, **(headers or {})})


def _error(status: int, code: int, description: str) -> Response:
    return _json(status, {"code": code, "description": description})


class _Task:
    __slots__ = ("id", "type", "description", "deployment", "user", "context_id", "created", "started_at",
                 "finished_at", "polls", "fixed_state", "final_state", "result_text", "result_output",
                 "event_output")

    def __init__(self, task_id: int, task_type: str, description: str, deployment: str | None, user: str,
                 context_id: str, created: float) -> None:
        self.id = task_id
        self.type = task_type
        self.description = description
        self.deployment = deployment
        self.user = user
        self.context_id = context_id
        self.created = created
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.polls = 0
        self.fixed_state: str | None = None  # seeded/finished tasks
        self.final_state = "done"
        self.result_text = ""
        self.result_output = b""
        self.event_output = b""


class _Caller:
    __slots__ = ("user", "admin", "read", "teams")

    def __init__(self, user: str, admin: bool, read: bool, teams: frozenset[str]) -> None:
        self.user = user
        self.admin = admin
        self.read = read
        self.teams = teams

    def can_read(self, teams: list[str]) -> bool:
        return self.admin or self.read or any(t in self.teams for t in teams)


class BoshDirectorEmulator(Emulator):
    """Emulates one BOSH Director.

    ``world_bosh``: ``{"name": ..., "deployments": [{"name", "manifest", "releases", "stemcells",
    "teams", "locked", "cloud_config", "vms": [vms?format=full records]}]}``.
    ``auth="basic"`` checks ``basic=(user, password)``; ``auth="uaa"`` validates bearer tokens
    with ``authority.validate(token) -> claims | None`` and advertises ``uaa_url``.
    A vms task needs ``task_steps`` polls of ``GET /tasks/:id`` showing it unfinished
    (first ``queued``, then ``processing``) before it is ``done``; with ``task_seconds`` set,
    time decides instead. Deployments in ``failing_deployments`` end their tasks in ``error``
    and answer their VM and instance listings with a 500.
    Serve it with :meth:`server` (TLS; clients verify against :attr:`ca_path`).
    """

    api = "bosh"

    def __init__(self, world_bosh: dict | None = None, *, auth: str = "uaa", uaa_url: str | None = None,
                 authority: Any = None, basic: tuple[str, str] = ("admin", "admin"), task_steps: int = 2,
                 task_seconds: float | None = None, tls_dir: str | None = None, tls: TLSMaterial | None = None,
                 director_uuid: str | None = None, shuffle_output: bool = True) -> None:
        if auth not in ("uaa", "basic"):
            raise ValueError(f"BoshDirectorEmulator: auth must be 'uaa' or 'basic', got {auth!r}")
        if auth == "uaa" and authority is None:
            raise ValueError("BoshDirectorEmulator: auth='uaa' needs an authority (e.g. UAAEmulator(...).authority)")
        if auth == "basic" and (not isinstance(basic, tuple | list) or len(basic) != 2 or not all(basic)):
            raise ValueError("BoshDirectorEmulator: basic must be (username, password), both non-empty")
        if not isinstance(task_steps, int) or task_steps < 0:
            raise ValueError(f"BoshDirectorEmulator: task_steps must be an integer >= 0, got {task_steps!r}")
        world_bosh = world_bosh or {}
        if not isinstance(world_bosh, dict):
            raise ValueError("bosh: expected an object with 'deployments'")
        self.auth = auth
        self.uaa_url = uaa_url
        self.authority = authority
        self.basic = tuple(basic)
        self.task_steps = task_steps
        self.task_seconds = task_seconds
        self.shuffle_output = shuffle_output
        self.failing_deployments: set[str] = set()
        self.name = str(world_bosh.get("name") or "bosh")
        self.uuid = director_uuid or str(uuid.uuid5(uuid.NAMESPACE_URL, f"mockstack-bosh:{self.name}"))
        self._tls_dir = tls_dir
        self._tls = tls
        self._lock = threading.Lock()
        self._deployments: dict[str, dict] = {}
        self._tasks: dict[int, _Task] = {}
        self._next_task = 1
        self._events: list[dict] = []
        self._events_by_deployment: dict[str, list[dict]] = {}
        self._sorted_names: list[str] | None = None
        self.load(world_bosh.get("deployments") or [])

    # ------------------------------------------------------------------ setup / python API

    @property
    def tls(self) -> TLSMaterial:
        """The CA and server certificate (made on first use)."""
        if self._tls is None:
            self._tls = make_tls(self._tls_dir, name="bosh")
        return self._tls

    @property
    def ca_path(self) -> str:
        return self.tls.ca_path

    def server(self, **kwargs: Any) -> EmulatorServer:
        """An (unstarted) TLS :class:`EmulatorServer` for this Director."""
        return EmulatorServer(self, ssl_context=self.tls.server_context(), **kwargs)

    def load(self, deployments: list) -> None:
        """Add deployments (world records); seeds one finished ``create deployment`` task and its events each."""
        if not isinstance(deployments, list):
            raise ValueError("bosh.deployments: expected a list of deployments")
        now = time.time()
        gc_was_enabled = gc.isenabled()
        gc.disable()  # many small objects; see VaultEmulator.load
        try:
            with self._lock:
                self._load(deployments, now)
        finally:
            if gc_was_enabled:
                gc.enable()

    def _load(self, deployments: list, now: float) -> None:
        seen: set[str] = set()
        for i, dep in enumerate(deployments):
            where = f"bosh.deployments[{i}]"
            if not isinstance(dep, dict):
                raise ValueError(f"{where}: expected an object")
            name = dep.get("name")
            if not isinstance(name, str) or not name or "/" in name:
                raise ValueError(f"{where}.name: expected a non-empty deployment name without '/'")
            if name in self._deployments or name in seen:
                raise ValueError(f"{where}.name: duplicate deployment {name!r}")
            seen.add(name)
            manifest = dep.get("manifest")
            if manifest is not None and not isinstance(manifest, str):
                raise ValueError(f"{where}.manifest: expected the raw YAML text or null")
            vms = dep.get("vms") or []
            if not isinstance(vms, list) or not all(isinstance(v, dict) for v in vms):
                raise ValueError(f"{where}.vms: expected a list of VM records")
            for j, vm in enumerate(vms):
                if not isinstance(vm.get("job_name"), str) or not isinstance(vm.get("id"), str):
                    raise ValueError(f"{where}.vms[{j}]: job_name and id (instance UUID) must be strings")
            for key in ("releases", "stemcells"):
                items = dep.get(key) or []
                if not isinstance(items, list) or not all(isinstance(r, dict) and "name" in r for r in items):
                    raise ValueError(f"{where}.{key}: expected a list of {{name, version}}")
        # all valid: now add them (a bad entry leaves nothing half-loaded)
        for i, dep in enumerate(deployments):
            name = dep["name"]
            self._deployments[name] = dep
            created = now - 86400 + (i % 3600)
            task = self._new_task("update_deployment", "create deployment", name, "admin", "", created)
            task.started_at = created
            task.finished_at = created + 60
            task.fixed_state = "done"
            task.result_text = f"/deployments/{name}"
            self._add_event(name, "create", "deployment", name, task.id, created, parent=None)
            self._add_event(name, "create", "deployment", name, task.id, created + 60,
                            parent=self._events[-1]["id"])
        self._sorted_names = None

    def _new_task(self, task_type: str, description: str, deployment: str | None, user: str, context_id: str,
                  created: float) -> _Task:
        task = _Task(self._next_task, task_type, description, deployment, user, context_id, created)
        self._tasks[task.id] = task
        self._next_task += 1
        return task

    def _add_event(self, deployment: str, action: str, object_type: str, object_name: str, task_id: int,
                   timestamp: float, parent: str | None) -> None:
        # EventManager#event_to_hash: id and parent_id as strings, timestamp in whole seconds,
        # nil and empty fields left out (a finished event has no error, most have no instance)
        event: dict[str, Any] = {"id": str(len(self._events) + 1)}
        if parent:
            event["parent_id"] = parent
        event.update(timestamp=int(timestamp), user="admin", action=action, object_type=object_type,
                     object_name=object_name, task=str(task_id), deployment=deployment, context={})
        self._events.append(event)
        self._events_by_deployment.setdefault(deployment, []).append(event)

    def deployment_names(self) -> list[str]:
        """Every deployment's name (what ``GET /deployments`` lists to an admin)."""
        with self._lock:
            return sorted(self._deployments)

    def tasks_created(self, task_type: str = "vms") -> int:
        """How many tasks of ``task_type`` clients caused (a cost figure for reports)."""
        with self._lock:
            return sum(1 for t in self._tasks.values() if t.type == task_type)

    # ------------------------------------------------------------------ HTTP

    def fault_response(self, status: int, headers: dict[str, str]) -> Response:
        # whatever sits in front of the Director (nginx) answers faults with a small HTML page
        return Response(status, f"<html><body><h1>{status}</h1>injected fault</body></html>\n".encode(),
                        {"Content-Type": SINATRA_TYPE, **headers})

    def handle(self, request: Request) -> Response:
        path = unquote(request.path)
        if request.method not in ("GET", "HEAD"):
            return self._not_found(path)
        if path.rstrip("/") == "/info":
            return self._info(request)
        caller = self._authenticate(request)
        if caller is None:
            return Response(401, f"Not authorized: '{request.path}'\n".encode(),
                            {"Content-Type": SINATRA_TYPE, "WWW-Authenticate": 'Basic realm="BOSH Director"'})
        parts = [p for p in path.split("/") if p]
        if parts == ["deployments"]:
            return self._list_deployments(caller, request)
        if len(parts) >= 2 and parts[0] == "deployments":
            dep = self._deployments.get(parts[1])
            if dep is None:
                return _error(404, 70000, f"Deployment '{parts[1]}' doesn't exist")
            if not caller.can_read(dep.get("teams") or []):
                return self._scope_error(dep)
            if len(parts) == 2:
                return _json(200, {"manifest": dep.get("manifest")})
            if len(parts) == 3 and parts[2] in ("vms", "instances"):
                return self._vms(dep, parts[2], caller, request)
        if parts == ["tasks"]:
            return self._list_tasks(caller, request)
        if len(parts) in (2, 3) and parts[0] == "tasks" and (len(parts) == 2 or parts[2] == "output"):
            return self._task(parts[1], caller, request, output=len(parts) == 3)
        if parts == ["events"]:
            return self._list_events(caller, request)
        return self._not_found(path)

    @staticmethod
    def _not_found(path: str) -> Response:
        return Response(404, f"Endpoint '{path}' not found.".encode(), {"Content-Type": SINATRA_TYPE})

    def _scope_error(self, dep: dict | None) -> Response:
        scopes = ["bosh.admin", f"bosh.{self.uuid}.admin"]
        scopes += [f"bosh.teams.{t}.admin" for t in (dep or {}).get("teams") or []]
        scopes += ["bosh.read", f"bosh.{self.uuid}.read"]
        scopes += [f"bosh.teams.{t}.read" for t in (dep or {}).get("teams") or []]
        return _error(401, 600000, "Require one of the scopes: " + ", ".join(scopes))

    # ------------------------------------------------------------------ auth

    def _authenticate(self, request: Request) -> _Caller | None:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if self.auth == "basic":
            if scheme != "basic" or not value:
                return None
            try:
                user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            ok = secrets.compare_digest(user.encode(), str(self.basic[0]).encode()) and \
                secrets.compare_digest(password.encode(), str(self.basic[1]).encode())
            return _Caller(user, True, True, frozenset()) if ok else None
        if scheme != "bearer" or not value:
            return None
        claims = self.authority.validate(value)
        if not claims:
            return None
        scopes = claims.get("scope") or []
        if isinstance(scopes, str):
            scopes = scopes.split()
        scopes = set(scopes)
        admin = bool({"bosh.admin", f"bosh.{self.uuid}.admin"} & scopes)
        read = bool({"bosh.read", f"bosh.{self.uuid}.read"} & scopes)
        teams = frozenset(s.split(".")[2] for s in scopes
                          if s.startswith("bosh.teams.") and s.count(".") == 3 and s.endswith((".admin", ".read")))
        user = claims.get("user_name") or claims.get("client_id") or claims.get("sub") or "unknown"
        return _Caller(str(user), admin, read, teams)

    # ------------------------------------------------------------------ endpoints

    def _info(self, request: Request) -> Response:
        caller = self._authenticate(request) if request.headers.get("authorization") else None
        if self.auth == "uaa":
            url = self.uaa_url or ""
            user_auth = {"type": "uaa", "options": {"url": url, "urls": [url] if url else []}}
        else:
            user_auth = {"type": "basic", "options": {}}
        body = {"name": self.name, "uuid": self.uuid, "version": DIRECTOR_VERSION,
                "user": caller.user if caller else None, "cpi": "mockstack_cpi", "stemcell_os": "ubuntu-jammy",
                "stemcell_version": "1.423", "user_authentication": user_auth,
                "features": {"local_dns": {"status": True, "extras": {"domain_name": "bosh"}},
                             "snapshots": {"status": False},
                             "config_server": {"status": True, "extras": {"urls": []}}}}
        return _json(200, body, JSON_TYPE)

    def _list_deployments(self, caller: _Caller, request: Request) -> Response:
        def flag(name: str) -> bool:
            return request.arg(name, "false") == "true"

        with self._lock:
            if self._sorted_names is None:
                self._sorted_names = sorted(self._deployments)
            names = self._sorted_names
        out = []
        for name in names:
            dep = self._deployments[name]
            teams = dep.get("teams") or []
            if not caller.can_read(teams):
                continue
            item: dict[str, Any] = {"name": name, "teams": list(teams)}
            if not flag("exclude_configs"):
                item["cloud_config"] = dep.get("cloud_config") or "latest"
            if not flag("exclude_stemcells"):
                item["stemcells"] = [{"name": s["name"], "version": str(s.get("version", ""))}
                                     for s in dep.get("stemcells") or []]
            if not flag("exclude_releases"):
                releases = [{"name": r["name"], "version": str(r.get("version", ""))}
                            for r in dep.get("releases") or []]
                item["releases"] = sorted(releases, key=lambda r: (r["name"], r["version"]))
            if not flag("exclude_lock"):
                item["locked"] = bool(dep.get("locked"))
            out.append(item)
        return _json(200, out)

    @staticmethod
    def _full_line(vm: dict) -> dict:
        line: dict[str, Any] = {}
        has_vm = vm.get("vm_cid") is not None
        defaults = {"vm_cid": None, "active": has_vm, "vm_created_at": None, "cloud_properties": {},
                    "disk_cid": None, "disk_cids": [vm["disk_cid"]] if vm.get("disk_cid") else [], "ips": [],
                    "agent_id": None, "job_name": None, "index": 0, "job_state": "running" if has_vm else None,
                    "state": "started", "vm_type": None, "vitals": None, "processes": [], "az": None, "id": None,
                    "bootstrap": False, "ignore": False,
                    "stemcell": {"name": None, "version": None, "api_version": None}}
        for key in VM_KEYS:
            line[key] = vm.get(key, defaults[key])
        for key, value in vm.items():  # older fields a world may carry (dns, resource_pool ...)
            if key not in line and key not in NOT_ON_THE_WIRE:
                line[key] = value
        return line

    def _instances(self, dep: dict) -> list[dict]:
        """One record per instance id: its active VM if any, else the first record seen."""
        chosen: dict[str, dict] = {}
        for vm in dep.get("vms") or []:
            current = chosen.get(vm["id"])
            if current is None or (not self._is_active(current) and self._is_active(vm)):
                chosen[vm["id"]] = vm
        return list(chosen.values())

    @staticmethod
    def _is_active(vm: dict) -> bool:
        return vm.get("vm_cid") is not None and vm.get("active", True) is not False

    def _vms(self, dep: dict, kind: str, caller: _Caller, request: Request) -> Response:
        vms = dep.get("vms") or []
        if request.arg("format") == "full":
            if kind == "vms":
                active_ids = {vm["id"] for vm in vms if self._is_active(vm)}
                records = [vm for vm in vms if vm["id"] in active_ids and vm.get("vm_cid") is not None]
            else:
                records = self._instances(dep)
            lines = [self._full_line(vm) for vm in records]
            with self._lock:
                task = self._new_task("vms", "retrieve vm-stats", dep["name"], caller.user,
                                      request.headers.get("x-bosh-context-id", "")[:64], time.time())
                if self.shuffle_output:
                    random.Random(task.id).shuffle(lines)
                task.result_output = b"".join(_dumps(line) + b"\n" for line in lines)
                if dep["name"] in self.failing_deployments:
                    task.final_state = "error"
                    task.result_text = f"Timed out sending 'get_state' to instance of deployment '{dep['name']}'"
                    task.result_output = b""
            return Response(302, b"", {"Location": f"{request.base_url}/tasks/{task.id}",
                                       "Content-Type": SINATRA_TYPE})
        if dep["name"] in self.failing_deployments:  # e.g. the Director's database timing out
            return _error(500, 100, f"Could not read the instances of deployment '{dep['name']}'")
        if kind == "vms":
            out = [{"agent_id": vm.get("agent_id"), "cid": vm.get("vm_cid"), "job": vm.get("job_name"),
                    "index": vm.get("index", 0), "id": vm.get("id"), "az": vm.get("az"), "ips": vm.get("ips") or [],
                    "vm_created_at": vm.get("vm_created_at"), "active": self._is_active(vm),
                    "permanent_nats_credentials": bool(vm.get("permanent_nats_credentials", False))}
                   for vm in vms if vm.get("vm_cid") is not None]
        else:
            out = [{"agent_id": vm.get("agent_id"), "cid": vm.get("vm_cid"), "job": vm.get("job_name"),
                    "index": vm.get("index", 0), "id": vm.get("id"),
                    "expects_vm": bool(vm.get("expects_vm", vm.get("vm_cid") is not None)), "az": vm.get("az"),
                    "ips": vm.get("ips") or [], "vm_created_at": vm.get("vm_created_at")}
                   for vm in self._instances(dep)]
        return _json(200, out)

    # ------------------------------------------------------------------ tasks

    def _state(self, task: _Task, advance: bool) -> str:
        """Current state; a ``GET /tasks/:id`` poll (``advance``) moves a poll-driven task on."""
        if task.fixed_state is not None:
            return task.fixed_state
        now = time.time()
        if self.task_seconds is not None:
            elapsed = now - task.created
            if elapsed < self.task_seconds / 3:
                state = "queued"
            elif elapsed < self.task_seconds:
                state = "processing"
            else:
                state = task.final_state
        else:
            if advance:
                task.polls += 1
            polls = task.polls
            if polls > self.task_steps or (polls == 0 and self.task_steps == 0):
                state = task.final_state
            elif polls <= 1 and self.task_steps >= 2:
                state = "queued"
            else:
                state = "processing"
        if state != "queued" and task.started_at is None:
            task.started_at = now
        if state not in UNFINISHED:
            task.finished_at = now
            task.fixed_state = state
            started = {"time": int(task.started_at or now), "stage": "Retrieving VM states", "tags": [],
                       "total": 1, "task": "Getting VM state", "index": 1, "state": "started", "progress": 0}
            ended = {**started, "time": int(now), "state": "finished" if state == "done" else "failed",
                     "progress": 100}
            if state != "done":
                ended["data"] = {"error": task.result_text}
            task.event_output = _dumps(started) + b"\n" + _dumps(ended) + b"\n"
        return state

    def _task_hash(self, task: _Task, state: str) -> dict:
        finished = state not in UNFINISHED
        return {"id": task.id, "state": state, "description": task.description,
                "timestamp": int(task.finished_at if finished and task.finished_at else task.created),
                "started_at": int(task.started_at) if task.started_at else None,
                "result": task.result_text if finished else None, "user": task.user, "deployment": task.deployment,
                "context_id": task.context_id}

    def _can_read_task(self, caller: _Caller, task: _Task) -> bool:
        if caller.admin or caller.read:
            return True
        dep = self._deployments.get(task.deployment or "")
        return dep is not None and caller.can_read(dep.get("teams") or [])

    def _task(self, raw_id: str, caller: _Caller, request: Request, *, output: bool) -> Response:
        task_id = int(raw_id) if raw_id.isdigit() else 0
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                return _error(404, 10000, f"Task {raw_id} not found")
            if not self._can_read_task(caller, task):
                return _error(401, 600000, "One of the following scopes is required to access this task: "
                                           f"bosh.admin, bosh.{self.uuid}.admin, bosh.read, bosh.{self.uuid}.read")
            if not output:
                state = self._state(task, advance=True)
                return _json(200, self._task_hash(task, state), JSON_TYPE)
            state = self._state(task, advance=False)
            kind = request.arg("type", "debug")
            if kind not in ("event", "result", "debug", "cpi", "none"):
                return _error(401, 600000, f"Unknown type {kind}")
            if kind in ("debug", "cpi") and not caller.admin:
                return _error(401, 600000, "One of the following scopes is required to access this task: "
                                           f"bosh.admin, bosh.{self.uuid}.admin")
            finished = state not in UNFINISHED
            if kind == "result":
                body = task.result_output if finished else b""
            elif kind == "event":
                body = task.event_output
            elif kind == "debug":
                body = f"I, [{int(task.created)}] INFO -- TaskHelper: Director Version: {DIRECTOR_VERSION}\n".encode()
            else:
                body = b""
        return self._ranged(body, request.headers.get("range"))

    @staticmethod
    def _ranged(body: bytes, range_header: str | None) -> Response:
        if not body:
            return Response(204, b"", {"Content-Type": "text/plain"})
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", (range_header or "").strip())
        if range_header and match:
            start = int(match.group(1))
            end = int(match.group(2)) if match.group(2) else len(body) - 1
            if start >= len(body) or end < start:
                return Response(416, b"", {"Content-Type": "text/plain", "Content-Range": f"bytes */{len(body)}"})
            end = min(end, len(body) - 1)
            return Response(206, body[start:end + 1], {"Content-Type": "text/plain",
                                                       "Content-Range": f"bytes {start}-{end}/{len(body)}"})
        return Response(200, body, {"Content-Type": "text/plain"})

    def _list_tasks(self, caller: _Caller, request: Request) -> Response:
        deployment = request.arg("deployment")
        states = set(filter(None, (request.arg("state") or "").split(",")))
        context_id = request.arg("context_id")
        verbose = request.arg("verbose", "1")
        limit_raw = request.arg("limit")
        try:
            limit = max(1, int(limit_raw)) if limit_raw is not None else None
        except ValueError:
            limit = 1  # Ruby's to_i of a non-number is 0, and values < 1 become 1
        out = []
        with self._lock:
            for task_id in sorted(self._tasks, reverse=True):
                task = self._tasks[task_id]
                if verbose != "2" and task.type not in VERBOSE_1_TYPES:
                    continue
                if deployment is not None and task.deployment != deployment:
                    continue
                if context_id is not None and task.context_id != context_id:
                    continue
                if not self._can_read_task(caller, task):
                    continue
                state = self._state(task, advance=False)
                if states and state not in states:
                    continue
                out.append(self._task_hash(task, state))
                if limit is not None and len(out) >= limit:
                    break
        return _json(200, out, JSON_TYPE)

    def _list_events(self, caller: _Caller, request: Request) -> Response:
        """``GET /events`` as the Director's EventsController answers it: newest first (id
        descending), at most ``EVENT_LIMIT`` (200); ``before_id`` keeps ``id < N``,
        ``before_time`` ``timestamp < T``, ``after_time`` ``timestamp >= T + 1`` (T is epoch
        seconds or a date ``Time.parse`` reads; anything else is a 400 with a plain-text body);
        ``task``, ``deployment``, ``instance``, ``user``, ``action``, ``object_type`` and
        ``object_name`` are exact matches, all filters ANDed."""
        deployment = request.arg("deployment")
        times: dict[str, int] = {}
        for key, word in (("before_time", "before"), ("after_time", "after")):
            raw = request.arg(key)
            if raw is not None:
                parsed = _event_time(raw)
                if parsed is None:
                    return Response(400, f"Invalid {word} parameter: '{raw}' ".encode(),
                                    {"Content-Type": SINATRA_TYPE})
                times[key] = parsed
        filters = {key: request.arg(key) for key in ("task", "instance", "user", "action", "object_type",
                                                     "object_name") if request.arg(key) is not None}
        before_id = request.arg("before_id")
        limit_id = int(before_id) if before_id is not None and before_id.lstrip("-").isdigit() else None
        with self._lock:
            source = list(self._events_by_deployment.get(deployment, []) if deployment is not None else self._events)
        out = []
        for event in reversed(source):
            if limit_id is not None and int(event["id"]) >= limit_id:
                continue
            if "before_time" in times and event["timestamp"] >= times["before_time"]:
                continue
            if "after_time" in times and event["timestamp"] < times["after_time"] + 1:
                continue
            if any(str(event.get(k)) != v for k, v in filters.items()):
                continue
            dep = self._deployments.get(event.get("deployment") or "")
            if not (caller.admin or caller.read or (dep is not None and caller.can_read(dep.get("teams") or []))):
                continue
            out.append(event)
            if len(out) >= EVENT_LIMIT:
                break
        return _json(200, out)

    def change_deployment(self, name: str, *, manifest: str | None = None, vms: list | None = None,
                          action: str = "update", when: float | None = None) -> None:
        """Change a deployment as ``bosh deploy`` would (a new manifest and/or VMs) and record
        the task's events (``update deployment`` start and end), so a client reading the
        events feed learns of it."""
        with self._lock:
            dep = self._deployments[name]
            if manifest is not None:
                dep["manifest"] = manifest
            if vms is not None:
                dep["vms"] = vms
            now = time.time() if when is None else when
            task = self._new_task("update_deployment", f"{action} deployment", name, "admin", "", now)
            task.started_at, task.finished_at, task.fixed_state = now, now, "done"
            task.result_text = f"/deployments/{name}"
            self._add_event(name, action, "deployment", name, task.id, now, parent=None)
            self._add_event(name, action, "deployment", name, task.id, now, parent=self._events[-1]["id"])

