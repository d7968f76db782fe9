"""Cloud Foundry adapter (CF API v3 + UAA): what *should* exist.

Per foundation (``settings.cf_foundations``), read-only:

* UAA client-credentials token; the token endpoint comes from the API root's
  ``links.login`` (or ``links.uaa``) unless ``uaa_url`` is configured. Cached, refreshed
  before expiry and once after a 401.
* Our broker (``broker_guid``, or ``broker_name`` -> ``GET /v3/service_brokers?names=``), its
  offerings and plans with the broker's own ids from ``broker_catalog.id``
  (-> :class:`CatalogPlan`; a CF guid is never a broker id).
* Managed service instances, every page at ``per_page=5000``, with ``fields[...]`` walking
  instance -> plan -> offering -> broker and instance -> space -> organization, so one
  request per 5000 instances gives everything; instances of other brokers and
  user-provided instances are left out (``type=managed`` + the broker walk).
* Credential bindings in bulk: ``service_instance_guids`` with as many guids per request as
  fit the request-line limit (``URL_LIMIT``: nginx's default 8 KB buffer in front of the
  Cloud Controller answers 414 beyond it; about 200 guids), ``include=app``, never one call
  per instance; credentials are *not* fetched.
* Binding details (credentials) and instance parameters only on request.

API-call cost of :meth:`CFClient.discover` for N instances with B bindings:
``1 (root) + 1 (token) + 1 (broker) + ceil(offerings/5000) + ceil(plans/5000) +
ceil(N/5000) + ceil(N/binding_chunk) * pages`` -- e.g. 8 calls for 500 instances.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from reconciler.config.models import CFFoundation, Settings
from reconciler.errors import ConfigError, InvalidInput, NotFound, ReconcilerError
from reconciler.http_client import HttpClient, UaaToken
from reconciler.models import CatalogPlan, CFBinding, CFInstance, SourceStatus
from reconciler.resilience import ApiPolicy, Resilience, chunked, make_session, per_member

log = logging.getLogger(__name__)

PER_PAGE = 5000
URL_LIMIT = 8192  # request line (method, target, version): CC's nginx, large_client_header_buffers 4 8k
URL_MARGIN = 256  # pagination's page=N and whatever a proxy adds
BINDINGS_PATH = "/v3/service_credential_bindings"


def guids_per_request(api_url: str, per_page: int = PER_PAGE, limit: int = URL_LIMIT) -> int:
    """How many instance guids one ``service_instance_guids`` filter holds within ``limit``
    bytes of request line (each guid 36 characters and a ``%2C`` separator)."""

    fixed = (len("GET ") + len(urlsplit(api_url).path.rstrip("/")) + len(BINDINGS_PATH)
             + len(f"?service_instance_guids=&include=app&per_page={per_page}") + len(" HTTP/1.1"))
    return max(1, (limit - URL_MARGIN - fixed + 3) // (36 + 3))
MAX_PAGES = 10_000
# \Z: "$" would accept a trailing newline
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")

INSTANCE_FIELDS = {
    "fields[space]": "guid,name,relationships.organization",
    "fields[space.organization]": "guid,name",
    "fields[service_plan]": "guid,name,relationships.service_offering",
    "fields[service_plan.service_offering]": "guid,name,relationships.service_broker",
    "fields[service_plan.service_offering.service_broker]": "guid,name",
}


def _rel(resource: dict[str, Any], name: str) -> str:
    data = ((resource.get("relationships") or {}).get(name) or {}).get("data") or {}
    return data.get("guid") or "" if isinstance(data, dict) else ""


@dataclass
class CFDiscovery:
    """What one foundation said in one discovery; ``status`` is ``ok`` only when complete."""

    foundation: str
    status: SourceStatus = SourceStatus.OK
    error: str | None = None
    broker: dict[str, str] = field(default_factory=dict)  # {"guid", "name"}
    catalog: list[CatalogPlan] = field(default_factory=list)
    instances: list[CFInstance] = field(default_factory=list)
    bindings: list[CFBinding] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # malformed records left out, with the reason
    ignored: int = 0  # other brokers' managed instances seen and left out
    api_calls: int = 0
    endpoints: dict[str, str] = field(default_factory=dict)  # the API root's UAA links (CFClient.endpoints)
    cause: ReconcilerError | None = field(default=None, repr=False, compare=False)  # why it failed (not serialised)

    def to_dict(self) -> dict[str, Any]:
        return {"foundation": self.foundation, "status": str(self.status), "error": self.error,
                "broker": self.broker, "catalog": [p.model_dump(mode="json") for p in self.catalog],
                "instances": [i.model_dump(mode="json") for i in self.instances],
                "bindings": [b.model_dump(mode="json") for b in self.bindings],
                "skipped": self.skipped, "ignored": self.ignored, "api_calls": self.api_calls,
                "endpoints": self.endpoints}


class CFClient:
    """One CF foundation of the Settings (``settings.cf_foundations``); no settings: the defaults."""

    def __init__(self, foundation: CFFoundation, settings: Settings | None = None, *, store: Any = None,
                 session: Any = None, per_page: int = PER_PAGE, binding_chunk: int | None = None, clock=time.time,
                 sleep=time.sleep) -> None:
        self.name = foundation.name or "cf"
        self.foundation = foundation
        api_url = foundation.api_url
        if not api_url:
            raise ConfigError(f"cf foundation {self.name!r}: api_url is not set")
        if not (foundation.broker_guid or foundation.broker_name):
            raise ConfigError(f"cf foundation {self.name!r}: set broker_name or broker_guid")
        if not 1 <= per_page <= 5000:
            raise ConfigError(f"per_page {per_page}: 1..5000 is accepted")
        self.per_page = per_page
        self.binding_chunk = max(1, binding_chunk or guids_per_request(str(api_url), per_page))
        self.policy = ApiPolicy.from_settings(settings, "cf", self.name)
        uaa_policy = ApiPolicy.from_settings(settings, "cf", f"{self.name}:uaa")
        self.session = session or make_session(self.policy, verify=foundation.tls_verify())
        self.resilience = Resilience(self.policy, store, clock=clock, sleep=sleep)
        self.uaa_resilience = Resilience(uaa_policy, store, clock=clock, sleep=sleep)
        self._root: dict[str, Any] | None = None
        self.token = UaaToken(self._token_base, foundation.client_id or "", foundation.client_secret,
                              session=self.session, resilience=self.uaa_resilience, api=f"cf:{self.name}", clock=clock)
        self.http = HttpClient(f"cf:{self.name}", api_url, self.session, self.resilience, self.token)
        self._broker: dict[str, str] | None = None

    @classmethod
    def all_from_settings(cls, settings: Settings, store: Any = None, **kwargs: Any) -> list[CFClient]:
        return [cls(f, settings, store=store, **kwargs) for f in settings.cf_foundations]

    # --- discovery of endpoints ----------------------------------------------------------

    def root(self) -> dict[str, Any]:
        if self._root is None:
            body = self.http.get_json("/", authenticated=False, timeout=self.policy.health_timeout)
            self._root = body.get("links") or {} if isinstance(body, dict) else {}
        return self._root

    def endpoints(self) -> dict[str, str]:
        """The API root's links to UAA (``login``, ``uaa``: URLs, no secret) once read, so a
        client of the same run in another Lambda can :meth:`use_endpoints` instead of asking again."""
        links = self._root or {}
        return {k: str(v["href"]) for k in ("login", "uaa")
                if isinstance(v := links.get(k), dict) and isinstance(v.get("href"), str) and v["href"]}

    def use_endpoints(self, endpoints: dict[str, str] | None) -> None:
        """Take the UAA links another client of this run read from the API root (nothing to
        take: the root is read when the token is first needed, as before)."""
        if self._root is None and endpoints:
            self._root = {k: {"href": v} for k, v in endpoints.items() if k in ("login", "uaa") and isinstance(v, str)}

    def _token_base(self) -> str:
        configured = self.foundation.uaa_url
        if configured:
            return configured
        links = self.root()
        for key in ("login", "uaa"):
            href = (links.get(key) or {}).get("href") if isinstance(links.get(key), dict) else None
            if href:
                return href
        raise InvalidInput(f"cf:{self.name}: the API root has no links.login or links.uaa; set uaa_url")

    # --- paging --------------------------------------------------------------------------

    def pages(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every page of a v3 list, following ``pagination.next.href`` verbatim."""
        body = self.http.get_json(path, {**params, "per_page": self.per_page})
        for count in range(MAX_PAGES):
            if not isinstance(body, dict) or not isinstance(body.get("resources"), list):
                raise InvalidInput(f"cf:{self.name} GET {path}: not a v3 list (no resources)")
            yield body
            nxt = ((body.get("pagination") or {}).get("next") or {}).get("href")
            if not nxt:
                return
            if count + 1 >= MAX_PAGES:
                break
            body = self.http.get_json(nxt)
        raise InvalidInput(f"cf:{self.name} GET {path}: more than {MAX_PAGES} pages")

    def list_all(self, path: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return [r for page in self.pages(path, params or {}) for r in page["resources"]]

    # --- broker and catalog --------------------------------------------------------------

    def broker(self) -> dict[str, str]:
        if self._broker is None:
            guid = self.foundation.broker_guid
            name = self.foundation.broker_name
            if guid:
                try:
                    body = self.http.get_json(f"/v3/service_brokers/{guid}")
                except NotFound:
                    raise ConfigError(f"cf:{self.name}: no service broker with guid {guid!r} "
                                      f"(broker_guid); check the configuration") from None
                self._broker = {"guid": body["guid"], "name": body.get("name", "")}
            else:
                found = self.list_all("/v3/service_brokers", {"names": name})
                if not found:
                    raise ConfigError(f"cf:{self.name}: no service broker named {name!r} (broker_name) is "
                                      f"registered or visible to client {self.foundation.client_id!r}")
                self._broker = {"guid": found[0]["guid"], "name": found[0].get("name", name or "")}
        return self._broker

    def catalog(self) -> list[CatalogPlan]:
        """Our broker's plans with the broker's own service_id/plan_id."""
        broker = self.broker()
        offerings = {o["guid"]: o for o in self.list_all("/v3/service_offerings",
                                                         {"service_broker_guids": broker["guid"]})}
        plans: list[CatalogPlan] = []
        for p in self.list_all("/v3/service_plans", {"service_broker_guids": broker["guid"]}):
            offering = offerings.get(_rel(p, "service_offering"))
            plan_id = (p.get("broker_catalog") or {}).get("id")
            service_id = ((offering or {}).get("broker_catalog") or {}).get("id")
            if offering is None or not plan_id or not service_id:
                log.warning("cf:%s: plan %s has no broker_catalog id or offering; left out", self.name, p.get("guid"))
                continue
            plans.append(CatalogPlan(foundation=self.name, plan_guid=p["guid"], plan_id=str(plan_id),
                                     plan_name=p.get("name", ""), service_guid=offering["guid"],
                                     service_id=str(service_id), service_name=offering.get("name", ""),
                                     instances_retrievable=_retrievable(offering)))
        return plans

    # --- instances -----------------------------------------------------------------------

    def instances(self, catalog: list[CatalogPlan] | None = None,
                  result: CFDiscovery | None = None) -> list[CFInstance]:
        """Every managed instance of our broker, across all pages, with org/space names."""
        broker = self.broker()
        by_plan = {p.plan_guid: p for p in (catalog if catalog is not None else self.catalog())}
        out: list[CFInstance] = []
        skipped = result.skipped if result else []
        ignored = 0
        for page in self.pages("/v3/service_instances", {"type": "managed", **INSTANCE_FIELDS}):
            inc = page.get("included") or {}
            plan_off = {p.get("guid"): _rel(p, "service_offering") for p in inc.get("service_plans") or []}
            off_broker = {o.get("guid"): _rel(o, "service_broker") for o in inc.get("service_offerings") or []}
            spaces = {s.get("guid"): s for s in inc.get("spaces") or []}
            orgs = {o.get("guid"): o for o in inc.get("organizations") or []}
            for r in page["resources"]:
                if r.get("type") != "managed":
                    continue
                plan_guid = _rel(r, "service_plan")
                if off_broker.get(plan_off.get(plan_guid)) != broker["guid"]:
                    ignored += 1
                    continue
                guid = str(r.get("guid") or "")
                if not _GUID.match(guid):
                    skipped.append(f"service instance {guid[:60]!r}: guid is not a lower-case UUID")
                    continue
                plan = by_plan.get(plan_guid)
                if plan is None:
                    skipped.append(f"service instance {guid}: plan {plan_guid} is not in our broker's catalog")
                    continue
                space = spaces.get(_rel(r, "space")) or {}
                org = orgs.get(_rel(space, "organization")) or {}
                out.append(CFInstance(
                    foundation=self.name, guid=guid, name=str(r.get("name") or ""),
                    service_id=plan.service_id, plan_id=plan.plan_id, service_name=plan.service_name,
                    plan_name=plan.plan_name, space_guid=_rel(r, "space"), space_name=str(space.get("name") or ""),
                    organization_guid=str(org.get("guid") or _rel(space, "organization")),
                    organization_name=str(org.get("name") or ""),
                    created_at=str(r.get("created_at") or ""), updated_at=str(r.get("updated_at") or ""),
                    last_operation=r.get("last_operation") or {}, maintenance_info=r.get("maintenance_info") or {},
                    labels={str(k): str(v) for k, v in ((r.get("metadata") or {}).get("labels") or {}).items()}))
        if result is not None:
            result.ignored += ignored
        return out

    # --- bindings ------------------------------------------------------------------------

    def bindings(self, instance_guids: list[str]) -> list[CFBinding]:
        """Bindings of the given instances, ``binding_chunk`` instances per request (as many as fit
        the URL limit by default; no credentials)."""
        out: list[CFBinding] = []
        for chunk in chunked(sorted(set(instance_guids)), self.binding_chunk):
            for page in self.pages(BINDINGS_PATH,
                                   {"service_instance_guids": ",".join(chunk), "include": "app"}):
                apps = {a.get("guid"): a for a in (page.get("included") or {}).get("apps") or []}
                for b in page["resources"]:
                    app_guid = _rel(b, "app")
                    out.append(CFBinding(foundation=self.name, guid=str(b.get("guid") or ""),
                                         instance_guid=_rel(b, "service_instance"), name=str(b.get("name") or ""),
                                         type=str(b.get("type") or "app"), app_guid=app_guid,
                                         app_name=str((apps.get(app_guid) or {}).get("name") or ""),
                                         created_at=str(b.get("created_at") or "")))
        return out

    def binding_details(self, binding: CFBinding | str) -> CFBinding:
        """One binding with its credentials (secret: only for credential recovery)."""
        guid = binding if isinstance(binding, str) else binding.guid
        if not _GUID.match(guid):
            raise InvalidInput(f"binding guid {guid[:60]!r}: a lower-case UUID is accepted")
        body = self.http.get_json(f"/v3/service_credential_bindings/{guid}/details")
        creds = body.get("credentials") if isinstance(body, dict) else None
        if not isinstance(creds, dict):
            raise InvalidInput(f"cf:{self.name} GET /v3/service_credential_bindings/{guid}/details: no credentials")
        if isinstance(binding, str):
            binding = CFBinding(foundation=self.name, guid=guid, instance_guid="")
        return binding.model_copy(update={"credentials": creds})

    def instance_parameters(self, instance_guid: str) -> dict[str, Any]:
        """``GET /v3/service_instances/:guid/parameters`` (the user's provision parameters)."""
        if not _GUID.match(instance_guid):
            raise InvalidInput(f"instance guid {instance_guid[:60]!r}: a lower-case UUID is accepted")
        body = self.http.get_json(f"/v3/service_instances/{instance_guid}/parameters")
        return body if isinstance(body, dict) else {}

    # --- everything ----------------------------------------------------------------------

    def discover(self, *, with_bindings: bool = True) -> CFDiscovery:
        """Broker, catalog, instances (and bindings) of this foundation. Never raises for an
        API failure: the result says ``failed`` with the reason (the run degrades)."""
        result = CFDiscovery(foundation=self.name)
        try:
            result.broker = dict(self.broker())
            result.catalog = self.catalog()
            result.instances = self.instances(result.catalog, result)
            if with_bindings:
                result.bindings = self.bindings([i.guid for i in result.instances])
                per_instance: dict[str, list[str]] = {}
                for b in result.bindings:
                    per_instance.setdefault(b.instance_guid, []).append(b.guid)
                for inst in result.instances:
                    inst.binding_guids = sorted(per_instance.get(inst.guid, []))
        except ReconcilerError as exc:  # API errors, malformed answers, a missing broker
            result.status, result.error, result.cause = SourceStatus.FAILED, str(exc), exc
            log.warning("cf:%s discovery failed: %s", self.name, exc)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            # an answer of the wrong shape (a field missing, a list where an object belongs):
            # the same clean failure as any malformed answer, never a crash of the discovery
            what = f"field {exc} missing" if isinstance(exc, KeyError) else type(exc).__name__
            result.status = SourceStatus.FAILED
            result.error = f"cf:{self.name}: malformed answer from the Cloud Controller ({what})"
            log.warning("%s", result.error)
        result.api_calls = self.resilience.requests + self.uaa_resilience.requests
        result.endpoints = self.endpoints()
        return result

    def take_counts(self) -> dict[str, int]:
        counts = self.resilience.take_counts()
        for k, v in self.uaa_resilience.take_counts().items():
            counts[k] = counts.get(k, 0) + v
        counts = per_member(counts, self.name)  # and under the foundation's / director's name
        return counts


def discover_all(settings: Any, store: Any = None, *, with_bindings: bool = True, **kwargs: Any) -> list[CFDiscovery]:
    """One :class:`CFDiscovery` per configured foundation, each labelled with its name."""
    return [c.discover(with_bindings=with_bindings) for c in CFClient.all_from_settings(settings, store, **kwargs)]


def _retrievable(offering: dict[str, Any]) -> bool:
    features = (offering.get("broker_catalog") or {}).get("features") or {}
    return features.get("instances_retrievable") is True if isinstance(features, dict) else False


