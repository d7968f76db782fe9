"""Cloud Controller v3 emulator (read-only), wire shapes and behaviour per cf-v3.md.

Serves ``GET /``, ``/v3``, ``/v3/info`` and the service-related collections of a world's
``cf`` part with the exact pagination envelope, filters, ``fields``/``include``, the CF error
envelope and bearer-token checks against a shared :class:`~mockstack.uaa.TokenAuthority`.

Built for 50,000-instance worlds: every filter is answered from an index built at load
(value -> guids), and each resource is serialised once (with a placeholder for the base
URL) and cached, so a 5,000-resource page is a join of cached bytes.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus

from mockstack.base import Emulator, Request, Response, json_response, text_response
from mockstack.uaa import TokenAuthority

DEFAULT_TIMESTAMP = "2020-01-01T00:00:00Z"
_BASE = "\u0001cfbase\u0001"  # stands for the base URL inside cached JSON
_BASE_JSON = json.dumps(_BASE)[1:-1].encode()
GLOBAL_READ_SCOPES = ("cloud_controller.admin", "cloud_controller.admin_read_only", "cloud_controller.global_auditor")
SECRET_READ_SCOPES = ("cloud_controller.admin", "cloud_controller.admin_read_only")
_ANY = object()  # index key: matches every filter value (public plans match every space)
_PAGING = ("page", "per_page", "order_by", "created_ats", "updated_ats")
_TS_OPS = ("lt", "lte", "gt", "gte")
_FIELDS_RE = re.compile(r"^fields\[([^\]]*)\]$")
_TS_RE = re.compile(r"^(created_ats|updated_ats)\[([^\]]*)\]$")


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class CFError(Exception):
    def __init__(self, status: int, code: int, title: str, detail: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.title, self.detail = status, code, title, detail
        self.headers = headers or {}

    def response(self, content_type: str = "application/json") -> Response:
        # key order on the wire is detail, title, code (v3_error_hasher.rb)
        return json_response(self.status, {"errors": [{"detail": self.detail, "title": self.title,
                                                       "code": self.code}]}, content_type, self.headers)


def bad_query(*messages: str) -> CFError:
    return CFError(400, 10005, "CF-BadQueryParameter", "The query parameter is invalid: " + ", ".join(messages))


def not_found(resource: str) -> CFError:
    return CFError(404, 10010, "CF-ResourceNotFound", f"{resource} not found")


UNKNOWN_REQUEST = CFError(404, 10000, "CF-NotFound", "Unknown request")


# -- label selectors (§9) -------------------------------------------------------------
_REQ_RE = re.compile(r"^\s*(!)?\s*([A-Za-z0-9./_-]+)\s*"
                     r"(?:(==|=|!=)\s*([A-Za-z0-9._-]*)|(in|notin)\s*\(([^)]*)\))?\s*$")


def parse_label_selector(text: str) -> Callable[[dict[str, Any]], bool]:
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    if not text.strip() or len(parts) > 50:
        raise bad_query("Label selector must be a non-empty list of at most 50 requirements")
    tests: list[Callable[[dict[str, str]], bool]] = []
    for part in parts:
        m = _REQ_RE.match(part)
        if not m or (m.group(1) and (m.group(3) or m.group(5))):
            raise bad_query(f"Invalid label_selector value: '{part.strip()}'")
        neg, key, op, value, setop, values = m.groups()
        if neg:
            tests.append(lambda labels, k=key: k not in labels)
        elif op in ("=", "=="):
            tests.append(lambda labels, k=key, v=value: labels.get(k) == v)
        elif op == "!=":
            tests.append(lambda labels, k=key, v=value: labels.get(k) != v)
        elif setop:
            choices = {v.strip() for v in values.split(",")}
            if setop == "in":
                tests.append(lambda labels, k=key, c=choices: labels.get(k) in c)
            else:
                tests.append(lambda labels, k=key, c=choices: labels.get(k) not in c)
        else:
            tests.append(lambda labels, k=key: k in labels)

    def matches(resource: dict[str, Any]) -> bool:
        labels = (resource.get("metadata") or {}).get("labels") or {}
        return all(t(labels) for t in tests)

    return matches


# -- the resource kinds ---------------------------------------------------------------
@dataclass
class Kind:
    """One v3 collection: its resources, its filter indexes and how it renders."""

    path: str  # "service_instances"
    label: str  # "Service instance" (404 detail)
    filters: dict[str, tuple[Callable[[dict[str, Any]], Any], bool]]  # param -> (key fn, case-insensitive)
    includes: tuple[str, ...] = ()
    fields: dict[str, tuple[str, ...]] = field(default_factory=dict)  # list-endpoint fields[...] allowed keys
    show_fields: dict[str, tuple[str, ...]] = field(default_factory=dict)
    resources: list[dict[str, Any]] = field(default_factory=list)
    by_guid: dict[str, dict[str, Any]] = field(default_factory=dict)
    pos: dict[str, int] = field(default_factory=dict)
    index: dict[str, dict[Any, list[str]]] = field(default_factory=dict)

    def load(self, resources: list[dict[str, Any]]) -> None:
        self.resources = list(resources)
        self.by_guid = {r["guid"]: r for r in self.resources}
        self.pos = {r["guid"]: i for i, r in enumerate(self.resources)}
        self.index = {}

    def index_for(self, param: str) -> dict[Any, list[str]]:
        """value -> guids for one filter, built on first use (a 50k-instance world indexes
        in a fraction of a second per filter; unused filters cost nothing)."""
        idx = self.index.get(param)
        if idx is not None:
            return idx
        key_fn, folded = self.filters[param]
        idx = {}
        for r in self.resources:
            keys = key_fn(r)
            if keys is None:
                continue
            if not isinstance(keys, list | tuple | set):
                keys = (keys,)
            for k in keys:
                if folded and isinstance(k, str):
                    k = k.lower()
                idx.setdefault(k, []).append(r["guid"])
        self.index[param] = idx  # concurrent first uses build the same dict; last one wins
        return idx

    def valid_params(self) -> list[str]:
        names = ["page", "per_page", "order_by", "created_ats", "updated_ats", "guids", "label_selector",
                 *self.filters]
        if self.includes:
            names.append("include")
        names.extend(f"fields[{r}]" for r in self.fields)
        return list(dict.fromkeys(names))


def _rel(resource: dict[str, Any], name: str) -> str | None:
    data = ((resource.get("relationships") or {}).get(name) or {}).get("data") or {}
    return data.get("guid")


def _meta(resource: dict[str, Any]) -> dict[str, Any]:
    meta = resource.get("metadata") or {}
    return {"labels": meta.get("labels") or {}, "annotations": meta.get("annotations") or {}}


def _stamps(resource: dict[str, Any]) -> tuple[str, str]:
    created = resource.get("created_at") or DEFAULT_TIMESTAMP
    return created, resource.get("updated_at") or created


def _link(path: str) -> dict[str, str]:
    return {"href": f"{_BASE}{path}"}


class CloudControllerEmulator(Emulator):
    """``CloudControllerEmulator(world_cf, uaa_url=..., authority=...)``.

    ``login_url`` defaults to ``uaa_url`` (both serve ``/oauth/token``). ``rate_limits``
    (e.g. ``{"general_limit": 2000, "reset_interval_in_minutes": 30}``) turns on the
    ``X-RateLimit-*`` headers on authenticated answers and the ``rate_limits`` block of
    ``/v3/info``; 429s themselves come from the fault knobs (``rate_limit_rps``).
    """

    api = "cf"

    def __init__(self, world_cf: dict[str, Any], *, uaa_url: str, authority: TokenAuthority,
                 login_url: str | None = None, rate_limits: dict[str, int] | None = None,
                 api_version: str = "3.180.0") -> None:
        self.uaa_url = uaa_url.rstrip("/")
        self.login_url = (login_url or uaa_url).rstrip("/")
        self.authority = authority
        self.rate_limits = rate_limits
        self.api_version = api_version
        self._usage_lock = threading.Lock()
        self._usage: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()
        self.load(world_cf)

    # -- world ------------------------------------------------------------------------
    def load(self, world_cf: dict[str, Any]) -> None:
        """(Re)index a world's ``cf`` part; in-flight requests finish on the old state."""
        state = _State(world_cf)
        with self._lock:
            self._state = state

    @property
    def world_cf(self) -> dict[str, Any]:
        return self._state.cf

    # -- HTTP -------------------------------------------------------------------------
    def fault_response(self, status: int, headers: dict[str, str]) -> Response | None:
        if status == 429:
            # the CC's limiter: v3 envelope, but text/plain content type, plus the X-RateLimit-* trio
            retry = int(headers.get("Retry-After", "1"))
            limit = (self.rate_limits or {}).get("general_limit", 2000)
            out = {**headers, "Content-Type": "text/plain; charset=utf-8", "X-RateLimit-Limit": str(limit),
                   "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(time.time()) + retry)}
            return CFError(429, 10013, "CF-RateLimitExceeded", "Rate Limit Exceeded", out).response(
                "text/plain; charset=utf-8")
        if status == 500:
            return CFError(500, 10001, "UnknownError", "An unknown error occurred.", headers).response()
        if status == 503:
            return CFError(503, 10015, "CF-ServiceUnavailable", "Database connection failure", headers).response()
        # a 502 comes from the gorouter, not the CC: plain text
        return text_response(status, f"{status} Bad Gateway: Registered endpoint failed to handle the request.\n",
                             headers=headers)

    def handle(self, request: Request) -> Response:
        state = self._state
        base = request.base_url
        try:
            path = request.path.rstrip("/") or "/"
            if request.method not in ("GET", "HEAD"):
                raise UNKNOWN_REQUEST
            if path == "/":
                return self._finish(self._root(base), base)
            if path == "/v3":
                return self._finish(self._v3_links(), base)
            if path == "/v3/info":
                return self._finish(self._info(), base)
            if not path.startswith("/v3/"):
                raise UNKNOWN_REQUEST
            claims = self._authenticate(request)
            headers = self._rate_headers(claims)
            body = _Router(state, request, claims).route(path[4:])
            return Response(200, body.replace(_BASE_JSON, json.dumps(base)[1:-1].encode()),
                            {"Content-Type": "application/json", **headers})
        except CFError as err:
            return err.response()

    def _finish(self, payload: Any, base: str) -> Response:
        return Response(200, _dumps(payload).replace(_BASE_JSON, json.dumps(base)[1:-1].encode()),
                        {"Content-Type": "application/json"})

    def _authenticate(self, request: Request) -> dict[str, Any]:
        header = request.headers.get("authorization")
        if not header:
            raise CFError(401, 10002, "CF-NotAuthenticated", "Authentication error")
        scheme, _, token = header.partition(" ")
        claims = self.authority.validate(token.strip(), audience="cloud_controller") \
            if scheme.lower() == "bearer" else None
        if claims is None:
            raise CFError(401, 1000, "CF-InvalidAuthToken", "Invalid Auth Token")
        if not any(s in GLOBAL_READ_SCOPES for s in claims.get("scope") or []):
            # the emulator has no role assignments: only global readers see anything
            raise CFError(403, 10003, "CF-NotAuthorized", "You are not authorized to perform the requested action")
        return claims

    def _rate_headers(self, claims: dict[str, Any]) -> dict[str, str]:
        if not self.rate_limits:
            return {}
        limit = int(self.rate_limits.get("general_limit", 2000))
        window = 60 * int(self.rate_limits.get("reset_interval_in_minutes", 30))
        user = str(claims.get("user_id") or claims.get("client_id"))
        now = time.time()
        with self._usage_lock:
            start, used = self._usage.get(user, (now, 0))
            if now - start >= window:
                start, used = now, 0
            used += 1
            self._usage[user] = (start, used)
        return {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(max(limit - used, 0)),
                "X-RateLimit-Reset": str(int(start + window))}

    def _root(self, base: str) -> dict[str, Any]:
        return {"links": {
            "self": {"href": _BASE},
            "cloud_controller_v3": {"href": f"{_BASE}/v3", "meta": {"version": self.api_version}},
            "network_policy_v0": {"href": f"{_BASE}/networking/v0/external"},
            "network_policy_v1": {"href": f"{_BASE}/networking/v1/external"},
            "login": {"href": self.login_url},
            "uaa": {"href": self.uaa_url},
            "credhub": None, "routing": None, "logging": None, "log_cache": None, "log_stream": None,
            "app_ssh": None,
        }}

    def _v3_links(self) -> dict[str, Any]:
        names = ["apps", "info", "organizations", "service_brokers", "service_credential_bindings",
                 "service_instances", "service_offerings", "service_plans", "spaces"]
        return {"links": {"self": {"href": f"{_BASE}/v3"}, **{n: {"href": f"{_BASE}/v3/{n}"} for n in names}}}

    def _info(self) -> dict[str, Any]:
        rl = self.rate_limits
        return {"build": "mockstack", "cli_version": {"minimum": "", "recommended": ""}, "custom": {},
                "description": "mockstack Cloud Controller emulator", "name": self._state.cf.get("name", "cf"),
                "version": 0, "osbapi_version": "2.15",
                "rate_limits": {"enabled": bool(rl), "general_limit": int((rl or {}).get("general_limit", 0)),
                                "reset_interval_in_minutes": int((rl or {}).get("reset_interval_in_minutes", 0))},
                "links": {"self": {"href": f"{_BASE}/v3/info"}, "support": {"href": ""}}}


class _State:
    """Indexes and render caches for one loaded world (immutable once built)."""

    def __init__(self, cf: dict[str, Any]) -> None:
        self.cf = cf
        self.cache: dict[str, dict[str, bytes]] = {}
        self.params: dict[str, Any] = cf.get("instance_parameters") or {}
        self.details: dict[str, Any] = cf.get("binding_details") or {}
        self.credentials: dict[str, Any] = cf.get("instance_credentials") or {}
        k: dict[str, Kind] = {}
        self.kinds = k
        # parents first: later key functions look them up
        k["organizations"] = Kind("organizations", "Organization", {"names": (lambda r: r.get("name"), False)})
        k["organizations"].load(cf.get("organizations") or [])
        k["spaces"] = Kind("spaces", "Space", {"names": (lambda r: r.get("name"), False),
                                               "organization_guids": (lambda r: _rel(r, "organization"), False)},
                           includes=("organization",))
        k["spaces"].load(cf.get("spaces") or [])
        space_org = {g: _rel(s, "organization") for g, s in k["spaces"].by_guid.items()}
        self.space_org = space_org
        k["apps"] = Kind("apps", "App", {"names": (lambda r: r.get("name"), False),
                                         "space_guids": (lambda r: _rel(r, "space"), False),
                                         "organization_guids": (lambda r: space_org.get(_rel(r, "space")), False)},
                         includes=("space", "space.organization"))
        k["apps"].load(cf.get("apps") or [])
        k["service_brokers"] = Kind("service_brokers", "Service broker", {
            "names": (lambda r: r.get("name"), False), "space_guids": (lambda r: _rel(r, "space"), False)})
        k["service_brokers"].load(cf.get("service_brokers") or [])
        brokers = k["service_brokers"].by_guid

        def broker_spaces(broker_guid: str | None) -> Any:
            space = _rel(brokers.get(broker_guid) or {}, "space")
            return space if space else _ANY

        def broker_orgs(broker_guid: str | None) -> Any:
            space = _rel(brokers.get(broker_guid) or {}, "space")
            return space_org.get(space) if space else _ANY

        k["service_offerings"] = Kind("service_offerings", "Service offering", {
            "names": (lambda r: r.get("name"), False),
            "available": (lambda r: "true" if r.get("available", True) else "false", False),
            "broker_catalog_ids": (lambda r: (r.get("broker_catalog") or {}).get("id"), False),
            "service_broker_guids": (lambda r: _rel(r, "service_broker"), False),
            "service_broker_names": (lambda r: (brokers.get(_rel(r, "service_broker")) or {}).get("name"), False),
            "space_guids": (lambda r: broker_spaces(_rel(r, "service_broker")), False),
            "organization_guids": (lambda r: broker_orgs(_rel(r, "service_broker")), False),
        }, fields={"service_broker": ("guid", "name")})
        k["service_offerings"].load(cf.get("service_offerings") or [])
        offerings = k["service_offerings"].by_guid
        plan_instances: dict[str, list[str]] = {}
        for inst in cf.get("service_instances") or []:
            plan = _rel(inst, "service_plan")
            if plan:
                plan_instances.setdefault(plan, []).append(inst["guid"])

        def plan_broker(plan: dict[str, Any]) -> str | None:
            return _rel(offerings.get(_rel(plan, "service_offering")) or {}, "service_broker")

        def plan_spaces(plan: dict[str, Any]) -> Any:
            space = _rel(plan, "space")
            if space:
                return space
            return _ANY if plan.get("visibility_type", "public") == "public" else None

        def plan_orgs(plan: dict[str, Any]) -> Any:
            space = _rel(plan, "space")
            if space:
                return space_org.get(space)
            return _ANY if plan.get("visibility_type", "public") == "public" else None

        k["service_plans"] = Kind("service_plans", "Service plan", {
            "names": (lambda r: r.get("name"), True),
            "available": (lambda r: "true" if r.get("available", True) else "false", False),
            "broker_catalog_ids": (lambda r: (r.get("broker_catalog") or {}).get("id"), False),
            "space_guids": (plan_spaces, False),
            "organization_guids": (plan_orgs, False),
            "service_broker_guids": (plan_broker, False),
            "service_broker_names": (lambda r: (brokers.get(plan_broker(r)) or {}).get("name"), False),
            "service_offering_guids": (lambda r: _rel(r, "service_offering"), False),
            "service_offering_names": (lambda r: (offerings.get(_rel(r, "service_offering")) or {}).get("name"),
                                       False),
            "service_instance_guids": (lambda r: plan_instances.get(r["guid"]), False),
        }, includes=("space.organization", "service_offering"),
            fields={"service_offering.service_broker": ("guid", "name")})
        k["service_plans"].load(cf.get("service_plans") or [])
        plans = k["service_plans"].by_guid
        k["service_instances"] = Kind("service_instances", "Service instance", {
            "names": (lambda r: r.get("name"), False),
            "type": (lambda r: r.get("type"), False),
            "space_guids": (lambda r: _rel(r, "space"), False),
            "organization_guids": (lambda r: space_org.get(_rel(r, "space")), False),
            "service_plan_guids": (lambda r: _rel(r, "service_plan"), False),
            "service_plan_names": (lambda r: (plans.get(_rel(r, "service_plan")) or {}).get("name"), True),
        }, fields=INSTANCE_FIELDS, show_fields=INSTANCE_SHOW_FIELDS)
        k["service_instances"].load(cf.get("service_instances") or [])
        instances = k["service_instances"].by_guid
        apps = k["apps"].by_guid

        def inst_plan(binding: dict[str, Any]) -> dict[str, Any]:
            return plans.get(_rel(instances.get(_rel(binding, "service_instance")) or {}, "service_plan")) or {}

        k["service_credential_bindings"] = Kind("service_credential_bindings", "Service credential binding", {
            "names": (lambda r: r.get("name"), False),
            "type": (lambda r: r.get("type"), False),
            "service_instance_guids": (lambda r: _rel(r, "service_instance"), False),
            "service_instance_names": (lambda r: (instances.get(_rel(r, "service_instance")) or {}).get("name"),
                                       False),
            "app_guids": (lambda r: _rel(r, "app"), False),
            "app_names": (lambda r: (apps.get(_rel(r, "app")) or {}).get("name"), False),
            "service_plan_guids": (lambda r: inst_plan(r).get("guid"), False),
            "service_plan_names": (lambda r: inst_plan(r).get("name"), False),
            "service_offering_guids": (lambda r: _rel(inst_plan(r), "service_offering"), False),
            "service_offering_names": (lambda r: (offerings.get(_rel(inst_plan(r), "service_offering")) or {})
                                       .get("name"), False),
        }, includes=("app", "service_instance"))
        k["service_credential_bindings"].load(cf.get("service_credential_bindings") or [])
        self.renderers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "organizations": self.render_org, "spaces": self.render_space, "apps": self.render_app,
            "service_brokers": self.render_broker, "service_offerings": self.render_offering,
            "service_plans": self.render_plan, "service_instances": self.render_instance,
            "service_credential_bindings": self.render_binding,
        }

    # -- rendering (presenter rules from cf-v3.md) -------------------------------------
    def json_of(self, kind: str, guid: str) -> bytes:
        cache = self.cache.setdefault(kind, {})
        body = cache.get(guid)
        if body is None:
            body = _dumps(self.renderers[kind](self.kinds[kind].by_guid[guid]))
            cache[guid] = body
        return body

    def render(self, kind: str, guid: str) -> dict[str, Any]:
        return json.loads(self.json_of(kind, guid))

    def render_org(self, r: dict[str, Any]) -> dict[str, Any]:
        created, updated = _stamps(r)
        g = r["guid"]
        return {"guid": g, "created_at": created, "updated_at": updated, "name": r["name"],
                "suspended": bool(r.get("suspended", False)),
                "relationships": {"quota": {"data": {"guid": _rel(r, "quota")} if _rel(r, "quota") else None}},
                "metadata": _meta(r),
                "links": {"self": _link(f"/v3/organizations/{g}"), "domains": _link(f"/v3/organizations/{g}/domains"),
                          "default_domain": _link(f"/v3/organizations/{g}/domains/default"),
                          "quota": _link("/v3/organization_quotas")}}

    def render_space(self, r: dict[str, Any]) -> dict[str, Any]:
        created, updated = _stamps(r)
        g, org = r["guid"], _rel(r, "organization")
        return {"guid": g, "created_at": created, "updated_at": updated, "name": r["name"],
                "relationships": {"organization": {"data": {"guid": org}}, "quota": {"data": None}},
                "metadata": _meta(r),
                "links": {"self": _link(f"/v3/spaces/{g}"), "organization": _link(f"/v3/organizations/{org}"),
                          "features": _link(f"/v3/spaces/{g}/features"), "apps": _link(f"/v3/apps?space_guids={g}")}}

    def render_app(self, r: dict[str, Any]) -> dict[str, Any]:
        created, updated = _stamps(r)
        g, space = r["guid"], _rel(r, "space")
        return {"guid": g, "name": r["name"], "state": r.get("state", "STARTED"), "created_at": created,
                "updated_at": updated,
                "lifecycle": r.get("lifecycle") or {"type": "buildpack", "data": {"buildpacks": [],
                                                                                   "stack": "cflinuxfs4"}},
                "relationships": {"space": {"data": {"guid": space}},
                                  "current_droplet": {"data": {"guid": _rel(r, "current_droplet")}}},
                "links": {"self": _link(f"/v3/apps/{g}"), "space": _link(f"/v3/spaces/{space}"),
                          "processes": _link(f"/v3/apps/{g}/processes"),
                          "environment_variables": _link(f"/v3/apps/{g}/environment_variables")},
                "metadata": _meta(r)}

    def render_broker(self, r: dict[str, Any]) -> dict[str, Any]:
        created, updated = _stamps(r)
        g, space = r["guid"], _rel(r, "space")
        links = {"self": _link(f"/v3/service_brokers/{g}"),
                 "service_offerings": _link(f"/v3/service_offerings?service_broker_guids={g}")}
        if space:
            links["space"] = _link(f"/v3/spaces/{space}")
        return {"guid": g, "name": r["name"], "url": r.get("url", ""), "created_at": created, "updated_at": updated,
                "relationships": {"space": {"data": {"guid": space}}} if space else {},
                "metadata": _meta(r), "links": links}

    def render_offering(self, r: dict[str, Any]) -> dict[str, Any]:
        created, updated = _stamps(r)
        g, broker = r["guid"], _rel(r, "service_broker")
        catalog = r.get("broker_catalog") or {}
        features = {"plan_updateable": False, "bindable": True, "instances_retrievable": False,
                    "bindings_retrievable": False, "allow_context_updates": False, **(catalog.get("features") or {})}
        return {"guid": g, "name": r["name"], "description": r.get("description", ""),
                "available": r.get("available", True), "tags": r.get("tags") or [], "requires": r.get("requires") or [],
                "created_at": created, "updated_at": updated, "shareable": r.get("shareable", True),
                "documentation_url": r.get("documentation_url"),
                "broker_catalog": {"id": catalog["id"], "metadata": catalog.get("metadata") or {},
                                   "features": features},
                "relationships": {"service_broker": {"data": {"guid": broker}}}, "metadata": _meta(r),
                "links": {"self": _link(f"/v3/service_offerings/{g}"),
                          "service_plans": _link(f"/v3/service_plans?service_offering_guids={g}"),
                          "service_broker": _link(f"/v3/service_brokers/{broker}")}}

    def render_plan(self, r: dict[str, Any]) -> dict[str, Any]:
        created, updated = _stamps(r)
        g, offering = r["guid"], _rel(r, "service_offering")
        catalog = r.get("broker_catalog") or {}
        schemas = r.get("schemas") or {}
        si, sb = schemas.get("service_instance") or {}, schemas.get("service_binding") or {}

        def params(section: dict[str, Any], op: str) -> dict[str, Any]:
            return {"parameters": ((section.get(op) or {}).get("parameters")) or {}}

        relationships: dict[str, Any] = {"service_offering": {"data": {"guid": offering}}}
        if _rel(r, "space"):
            relationships["space"] = {"data": {"guid": _rel(r, "space")}}
        return {"guid": g, "name": r["name"], "description": r.get("description", ""),
                "visibility_type": r.get("visibility_type", "public"), "available": r.get("available", True),
                "free": r.get("free", True), "costs": r.get("costs") or [], "created_at": created,
                "updated_at": updated, "maintenance_info": r.get("maintenance_info") or {},
                "broker_catalog": {"id": catalog["id"], "metadata": catalog.get("metadata") or {},
                                   "maximum_polling_duration": catalog.get("maximum_polling_duration"),
                                   "features": {"plan_updateable": False, "bindable": True,
                                                **(catalog.get("features") or {})}},
                "schemas": {"service_instance": {"create": params(si, "create"), "update": params(si, "update")},
                            "service_binding": {"create": params(sb, "create")}},
                "relationships": relationships, "metadata": _meta(r),
                "links": {"self": _link(f"/v3/service_plans/{g}"),
                          "service_offering": _link(f"/v3/service_offerings/{offering}"),
                          "visibility": _link(f"/v3/service_plans/{g}/visibility")}}

    def render_instance(self, r: dict[str, Any]) -> dict[str, Any]:
        created, updated = _stamps(r)
        g, space, managed = r["guid"], _rel(r, "space"), r["type"] == "managed"
        out: dict[str, Any] = {"guid": g, "created_at": created, "updated_at": updated, "name": r["name"],
                               "tags": r.get("tags") or [], "type": r["type"]}
        relationships: dict[str, Any] = {}
        if managed:
            plan_guid = _rel(r, "service_plan")
            mi = r.get("maintenance_info") or {}
            if "upgrade_available" in r:
                upgrade = bool(r["upgrade_available"])
            else:
                plan_mi = (self.kinds["service_plans"].by_guid.get(plan_guid) or {}).get("maintenance_info") or {}
                upgrade = bool(mi.get("version") and plan_mi.get("version") and mi["version"] != plan_mi["version"])
            out.update(maintenance_info=mi, upgrade_available=upgrade, dashboard_url=r.get("dashboard_url"))
            if r.get("broker_provided_metadata"):
                out["broker_provided_metadata"] = r["broker_provided_metadata"]
            relationships["service_plan"] = {"data": {"guid": plan_guid}}
        else:
            out.update(syslog_drain_url=r.get("syslog_drain_url"), route_service_url=r.get("route_service_url"))
        relationships["space"] = {"data": {"guid": space}}
        out.update(last_operation=r.get("last_operation") or {}, relationships=relationships, metadata=_meta(r))
        links = {"self": _link(f"/v3/service_instances/{g}"), "space": _link(f"/v3/spaces/{space}"),
                 "service_credential_bindings": _link(f"/v3/service_credential_bindings?service_instance_guids={g}"),
                 "service_route_bindings": _link(f"/v3/service_route_bindings?service_instance_guids={g}")}
        if managed:
            links.update(service_plan=_link(f"/v3/service_plans/{_rel(r, 'service_plan')}"),
                         parameters=_link(f"/v3/service_instances/{g}/parameters"),
                         shared_spaces=_link(f"/v3/service_instances/{g}/relationships/shared_spaces"))
        else:
            links["credentials"] = _link(f"/v3/service_instances/{g}/credentials")
        out["links"] = links
        return out

    def render_binding(self, r: dict[str, Any]) -> dict[str, Any]:
        created, updated = _stamps(r)
        g, inst, app = r["guid"], _rel(r, "service_instance"), _rel(r, "app")
        last = r.get("last_operation") or {"type": "create", "state": "succeeded", "description": "",
                                           "created_at": created, "updated_at": updated}
        relationships: dict[str, Any] = {}
        if r["type"] == "app":
            relationships["app"] = {"data": {"guid": app}}
        relationships["service_instance"] = {"data": {"guid": inst}}
        links = {"self": _link(f"/v3/service_credential_bindings/{g}"),
                 "details": _link(f"/v3/service_credential_bindings/{g}/details")}
        if (self.kinds["service_instances"].by_guid.get(inst) or {}).get("type") == "managed":
            links["parameters"] = _link(f"/v3/service_credential_bindings/{g}/parameters")
        links["service_instance"] = _link(f"/v3/service_instances/{inst}")
        if r["type"] == "app":
            links["app"] = _link(f"/v3/apps/{app}")
        return {"guid": g, "created_at": created, "updated_at": updated, "name": r.get("name"), "type": r["type"],
                "last_operation": last, "metadata": _meta(r), "relationships": relationships, "links": links}


# fields[...] allowed on GET /v3/service_instances (list) and on GET /v3/service_instances/:guid
INSTANCE_FIELDS = {
    "space": ("guid", "name", "relationships.organization"),
    "space.organization": ("guid", "name"),
    "service_plan": ("guid", "name", "relationships.service_offering"),
    "service_plan.service_offering": ("guid", "name", "description", "documentation_url", "tags",
                                      "relationships.service_broker"),
    "service_plan.service_offering.service_broker": ("guid", "name"),
}
INSTANCE_SHOW_FIELDS = {
    "space": ("guid", "name"),
    "space.organization": ("guid", "name"),
    "service_plan": ("guid", "name"),
    "service_plan.service_offering": ("guid", "name", "description", "documentation_url", "tags"),
    "service_plan.service_offering.service_broker": ("guid", "name"),
}


def _pick(resource: dict[str, Any], order: Iterable[str], wanted: set[str], rels: dict[str, str | None]) -> dict:
    out: dict[str, Any] = {}
    for key in order:
        if key not in wanted:
            continue
        if key.startswith("relationships."):
            name = key.split(".", 1)[1]
            out.setdefault("relationships", {})[name] = {"data": {"guid": rels.get(name)}}
        else:
            out[key] = resource.get(key, [] if key == "tags" else None)
    return out


class _Router:
    """One request: validates the query, selects, paginates, serialises."""

    def __init__(self, state: _State, request: Request, claims: dict[str, Any]) -> None:
        self.s = state
        self.request = request
        self.claims = claims
        self.query = {k: v[-1] for k, v in request.query.items()}

    def route(self, path: str) -> bytes:
        parts = path.split("/")
        kind = self.s.kinds.get(parts[0])
        if kind is None:
            raise UNKNOWN_REQUEST
        if len(parts) == 1:
            return self.list(kind)
        guid = parts[1]
        if len(parts) == 2:
            return self.show(kind, guid)
        sub = "/".join(parts[2:])
        if kind.path == "service_instances" and sub in ("parameters", "credentials",
                                                        "relationships/shared_spaces"):
            return self.instance_sub(guid, sub)
        if kind.path == "service_credential_bindings" and sub in ("details", "parameters"):
            return self.binding_sub(guid, sub)
        raise UNKNOWN_REQUEST

    # -- query validation ------------------------------------------------------------
    def _check_params(self, valid: list[str], fields_allowed: dict[str, tuple[str, ...]],
                      includes: tuple[str, ...], *, listing: bool) -> dict[str, set[str]]:
        unknown, problems = [], []
        fields: dict[str, set[str]] = {}
        for key, value in self.query.items():
            fm = _FIELDS_RE.match(key)
            tm = _TS_RE.match(key)
            if fm and fields_allowed:
                resource = fm.group(1)
                if resource not in fields_allowed:
                    allowed = ", ".join(f"'{r}'" for r in fields_allowed)
                    problems.append(f"Fields [{resource}] valid resources are: {allowed}")
                    continue
                keys = {k.strip() for k in value.split(",") if k.strip()}
                bad = sorted(keys - set(fields_allowed[resource]))
                if bad or not keys:
                    allowed = ", ".join(f"'{k}'" for k in fields_allowed[resource])
                    problems.append(f"Fields valid keys for '{resource}' are: {allowed}")
                    continue
                fields[resource] = keys
            elif tm and listing:
                if tm.group(2) not in _TS_OPS:
                    problems.append(f"Invalid relational operator - '{tm.group(2)}'. "
                                    f"Valid operators are: {', '.join(_TS_OPS)}")
            elif key not in valid:
                unknown.append(key)
        if unknown:
            problems.insert(0, f"Unknown query parameter(s): {', '.join(repr(u) for u in unknown)}. "
                               f"Valid parameters are: {', '.join(repr(v) for v in valid)}")
        if "include" in self.query:
            for inc in self.query["include"].split(","):
                if inc not in includes:
                    allowed = ", ".join(f"'{i}'" for i in includes)
                    problems.append(f"Invalid included resource: '{inc}'. Valid included resources are: {allowed}")
        if problems:
            raise bad_query(*problems)
        return fields

    def list(self, kind: Kind) -> bytes:
        valid = kind.valid_params()
        fields = self._check_params(valid, kind.fields, kind.includes, listing=True)
        q = self.query
        problems = []
        page, per_page = q.get("page", "1"), q.get("per_page", "50")
        if not page.isdigit() or int(page) < 1:
            problems.append("Page must be a positive integer")
        if not per_page.isdigit() or not 1 <= int(per_page) <= 5000:
            problems.append("Per page must be between 1 and 5000")
        order = q.get("order_by")
        if order is not None and order.lstrip("+-") not in ("created_at", "updated_at", "name"):
            problems.append("Order by can only be: 'created_at', 'updated_at', 'name'")
        if "type" in q and "type" in kind.filters:
            allowed = ("managed", "user-provided") if kind.path == "service_instances" else ("app", "key")
            if q["type"] not in allowed:
                problems.append(f"Type must be one of {', '.join(repr(a) for a in allowed)}")
        if "available" in q and q["available"] not in ("true", "false"):
            problems.append("Available only accepts values 'true' or 'false'")
        if problems:
            raise bad_query(*problems)
        guids = self.select(kind)
        page_n, per = int(page), int(per_page)
        total = len(guids)
        pages = max(1, math.ceil(total / per))
        chunk = guids[(page_n - 1) * per: page_n * per]
        pagination = {"total_results": total, "total_pages": pages,
                      "first": {"href": self._href(kind, 1, per)}, "last": {"href": self._href(kind, pages, per)},
                      "next": {"href": self._href(kind, page_n + 1, per)} if page_n < pages else None,
                      "previous": {"href": self._href(kind, page_n - 1, per)} if page_n > 1 else None}
        included = self.included(kind, chunk, fields)
        out = [b'{"pagination":', _dumps(pagination), b',"resources":[',
               b",".join(self.s.json_of(kind.path, g) for g in chunk), b"]"]
        if included is not None:
            out += [b',"included":', _dumps_included(included)]
        out.append(b"}")
        return b"".join(out)

    def _href(self, kind: Kind, page: int, per_page: int) -> str:
        params = dict(self.query)
        params["page"], params["per_page"] = str(page), str(per_page)
        # Rails Hash#to_query: "key=value" pairs escaped, then sorted
        pairs = sorted(f"{quote_plus(k)}={quote_plus(v)}" for k, v in params.items())
        return f"{_BASE}/v3/{kind.path}?{'&'.join(pairs)}"

    def select(self, kind: Kind) -> list[str]:
        q = self.query
        sets: list[set[str]] = []
        for param in ["guids", *kind.filters]:
            if param not in q:
                continue
            values = [q[param]] if param == "type" else q[param].split(",")
            if param == "guids":
                sets.append({v for v in values if v in kind.by_guid})
                continue
            idx = kind.index_for(param)
            folded = kind.filters[param][1]
            found: set[str] = set(idx.get(_ANY, ()))
            for v in values:
                found.update(idx.get(v.lower() if folded else v, ()))
            sets.append(found)
        if sets:
            sets.sort(key=len)
            chosen = set(sets[0])
            for other in sets[1:]:
                chosen &= other
            guids = sorted(chosen, key=kind.pos.__getitem__)
        else:
            guids = [r["guid"] for r in kind.resources]
        preds: list[Callable[[dict[str, Any]], bool]] = []
        if "label_selector" in q:
            preds.append(parse_label_selector(q["label_selector"]))
        for name in ("created_ats", "updated_ats"):
            attr = name[:-1]
            if name in q:
                allowed = set(q[name].split(","))
                preds.append(lambda r, a=attr, s=allowed: _stamps(r)[a == "updated_at"] in s)
            for op in _TS_OPS:
                key = f"{name}[{op}]"
                if key in q:
                    bound = q[key]
                    cmp = {"lt": str.__lt__, "lte": str.__le__, "gt": str.__gt__, "gte": str.__ge__}[op]
                    preds.append(lambda r, a=attr, b=bound, c=cmp: c(_stamps(r)[a == "updated_at"], b))
        if preds:
            res = kind.by_guid
            guids = [g for g in guids if all(p(res[g]) for p in preds)]
        order = q.get("order_by")
        if order:
            desc = order.startswith("-")
            attr = order.lstrip("+-")
            res, pos = kind.by_guid, kind.pos

            def sort_key(g: str) -> Any:
                r = res[g]
                if attr == "name":
                    return (r.get("name") or "", pos[g])
                return (_stamps(r)[attr == "updated_at"], pos[g])

            guids.sort(key=sort_key, reverse=desc)
        return guids

    # -- included / fields -----------------------------------------------------------
    def included(self, kind: Kind, chunk: list[str], fields: dict[str, set[str]]) -> dict[str, Any] | None:
        if kind.path == "service_instances":
            return self._instance_fields(chunk, fields)
        includes = [i for i in self.query.get("include", "").split(",") if i]
        if not includes and not fields:
            return None
        k = self.s.kinds
        out: dict[str, Any] = {}
        res = [kind.by_guid[g] for g in chunk]
        if kind.path == "service_credential_bindings":
            if "app" in includes:
                out["apps"] = self._full("apps", {_rel(r, "app") for r in res} - {None})
            if "service_instance" in includes:
                out["service_instances"] = self._full("service_instances", {_rel(r, "service_instance") for r in res})
        elif kind.path == "service_plans":
            offering_guids = {_rel(r, "service_offering") for r in res}
            if "service_offering" in includes:
                out["service_offerings"] = self._full("service_offerings", offering_guids)
            if "space.organization" in includes:
                spaces = {_rel(r, "space") for r in res} - {None}
                out["spaces"] = self._full("spaces", spaces)
                out["organizations"] = self._full("organizations", {self.s.space_org.get(s) for s in spaces})
            if "service_offering.service_broker" in fields:
                brokers = {_rel(k["service_offerings"].by_guid[o], "service_broker") for o in offering_guids}
                out["service_brokers"] = self._picked("service_brokers", brokers, ("name", "guid"),
                                                      fields["service_offering.service_broker"])
        elif kind.path == "service_offerings":
            if "service_broker" in fields:
                out["service_brokers"] = self._picked("service_brokers", {_rel(r, "service_broker") for r in res},
                                                      ("name", "guid"), fields["service_broker"])
        elif kind.path == "spaces":
            if "organization" in includes:
                out["organizations"] = self._full("organizations", {_rel(r, "organization") for r in res})
        elif kind.path == "apps":
            spaces = {_rel(r, "space") for r in res}
            if "space" in includes or "space.organization" in includes:
                out["spaces"] = self._full("spaces", spaces)
            if "space.organization" in includes:
                out["organizations"] = self._full("organizations", {self.s.space_org.get(s) for s in spaces})
        return out

    def _sorted(self, kind: str, guids: set[Any]) -> list[dict[str, Any]]:
        by = self.s.kinds[kind].by_guid
        items = [by[g] for g in guids if g in by]
        items.sort(key=lambda r: (_stamps(r)[0], r["guid"]))
        return items

    def _full(self, kind: str, guids: set[Any]) -> list[Any]:
        return [_RawJSON(self.s.json_of(kind, r["guid"])) for r in self._sorted(kind, guids)]

    def _picked(self, kind: str, guids: set[Any], order: tuple[str, ...], wanted: set[str],
                rels: Callable[[dict[str, Any]], dict[str, str | None]] | None = None) -> list[dict[str, Any]]:
        return [_pick(r, order, wanted, rels(r) if rels else {}) for r in self._sorted(kind, guids)]

    def _instance_fields(self, chunk: list[str], fields: dict[str, set[str]]) -> dict[str, Any] | None:
        if not fields or not chunk:
            return None
        k = self.s.kinds
        insts = [k["service_instances"].by_guid[g] for g in chunk]
        out: dict[str, Any] = {}
        spaces = {_rel(i, "space") for i in insts}
        if "space" in fields:
            out["spaces"] = self._picked("spaces", spaces, ("guid", "name", "relationships.organization"),
                                         fields["space"], lambda r: {"organization": _rel(r, "organization")})
        if "space.organization" in fields:
            out["organizations"] = self._picked("organizations", {self.s.space_org.get(s) for s in spaces},
                                                ("name", "guid"), fields["space.organization"])
        plans = {_rel(i, "service_plan") for i in insts if i.get("type") == "managed"}
        if plans:
            offerings = {_rel(k["service_plans"].by_guid[p], "service_offering") for p in plans}
            brokers = {_rel(k["service_offerings"].by_guid[o], "service_broker") for o in offerings}
            if "service_plan" in fields:
                out["service_plans"] = self._picked(
                    "service_plans", plans, ("guid", "name", "relationships.service_offering"), fields["service_plan"],
                    lambda r: {"service_offering": _rel(r, "service_offering")})
            if "service_plan.service_offering" in fields:
                out["service_offerings"] = self._picked(
                    "service_offerings", offerings,
                    ("name", "guid", "description", "documentation_url", "tags", "relationships.service_broker"),
                    fields["service_plan.service_offering"], lambda r: {"service_broker": _rel(r, "service_broker")})
            if "service_plan.service_offering.service_broker" in fields:
                out["service_brokers"] = self._picked("service_brokers", brokers, ("name", "guid"),
                                                      fields["service_plan.service_offering.service_broker"])
        return out or None

    # -- single resources ------------------------------------------------------------
    def show(self, kind: Kind, guid: str) -> bytes:
        allowed_fields = kind.show_fields
        valid = ["include"] if kind.includes else []
        fields = self._check_params(valid, allowed_fields, kind.includes, listing=False)
        if guid not in kind.by_guid:
            raise not_found(kind.label)
        body = self.s.json_of(kind.path, guid)
        included = self.included(kind, [guid], fields)
        if not included:
            return body
        return body[:-1] + b',"included":' + _dumps_included(included) + b"}"

    def instance_sub(self, guid: str, sub: str) -> bytes:
        self._check_params([], {}, (), listing=False)
        inst = self.s.kinds["service_instances"].by_guid.get(guid)
        if inst is None:
            raise not_found("Service instance")
        if sub == "relationships/shared_spaces":
            return _dumps({"data": [], "links": {"self": _link(f"/v3/service_instances/{guid}/relationships/"
                                                               f"shared_spaces")}})
        if sub == "credentials":
            if inst["type"] != "user-provided":
                raise not_found("Service instance")
            self._require_secret_reader(lambda: not_found("Service instance"))
            return _dumps(self.s.credentials.get(guid) or {})
        # parameters
        last = inst.get("last_operation") or {}
        unsupported = CFError(400, 120004, "CF-ServiceFetchInstanceParametersNotSupported",
                              "This service does not support fetching service instance parameters.")
        if inst["type"] != "managed":
            raise unsupported
        if last.get("type") == "create" and last.get("state") == "failed":
            raise not_found("Service instance")
        plan = self.s.kinds["service_plans"].by_guid[_rel(inst, "service_plan")]
        offering = self.s.kinds["service_offerings"].by_guid[_rel(plan, "service_offering")]
        if not ((offering.get("broker_catalog") or {}).get("features") or {}).get("instances_retrievable"):
            raise unsupported
        return _dumps(self.s.params.get(guid) or {})

    def _require_secret_reader(self, error: Callable[[], CFError]) -> None:
        if not any(s in SECRET_READ_SCOPES for s in self.claims.get("scope") or []):
            raise error()  # the CC answers 404, not 403, to callers who cannot read secrets

    def binding_sub(self, guid: str, sub: str) -> bytes:
        self._check_params([], {}, (), listing=False)
        binding = self.s.kinds["service_credential_bindings"].by_guid.get(guid)
        if binding is None:
            raise not_found("Service credential binding")
        inst = self.s.kinds["service_instances"].by_guid[_rel(binding, "service_instance")]
        if sub == "parameters":
            unsupported = CFError(400, 90007, "CF-ServiceFetchBindingParametersNotSupported",
                                  "This service does not support fetching service binding parameters.")
            if inst["type"] != "managed":
                raise unsupported
            plan = self.s.kinds["service_plans"].by_guid[_rel(inst, "service_plan")]
            offering = self.s.kinds["service_offerings"].by_guid[_rel(plan, "service_offering")]
            if not ((offering.get("broker_catalog") or {}).get("features") or {}).get("bindings_retrievable"):
                raise unsupported
            return _dumps((self.s.details.get(guid) or {}).get("parameters") or {})
        self._require_secret_reader(lambda: not_found("Service credential binding"))
        last = binding.get("last_operation") or {"type": "create", "state": "succeeded"}
        if not (last.get("type") == "create" and last.get("state") == "succeeded"):
            action = "Creation" if last.get("type") == "create" else "Deletion"
            noun = "binding" if binding["type"] == "app" else "key"
            raise CFError(404, 10010, "CF-ResourceNotFound", f"{action} of service {noun} {last.get('state')}")
        details = self.s.details.get(guid) or {"credentials": {}}
        out = {"credentials": details.get("credentials") or {}}
        for key in ("syslog_drain_url", "volume_mounts"):
            if details.get(key) is not None:
                out[key] = details[key]
        return _dumps(out)


class _RawJSON:
    """Pre-serialised JSON spliced into an ``included`` list without re-parsing."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw


def _dumps_included(included: dict[str, list[Any]]) -> bytes:
    parts = []
    for key, items in included.items():
        raw = [x.raw if isinstance(x, _RawJSON) else _dumps(x) for x in items]
        parts.append(_dumps(key) + b":[" + b",".join(raw) + b"]")
    return b"{" + b",".join(parts) + b"}"
