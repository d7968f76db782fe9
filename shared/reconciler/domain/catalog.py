"""The broker catalog as matching needs it: which plan ids are ours, and their services.

Built from CF's ``broker_catalog`` ids (``CatalogPlan``) when CF answered, and from the
``secret/db`` index entries when it did not (or to add plans CF no longer lists: a plan
removed from the catalog still names existing deployments).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..models import CatalogPlan


@dataclass(frozen=True)
class PlanInfo:
    plan_id: str  # broker plan id, e.g. "redis-cache-small" (Blacksmith: <service-id>-<plan>)
    service_id: str
    plan_name: str = ""
    service_name: str = ""
    source: str = "cf"  # "cf" | "index"


@dataclass
class Catalog:
    plans: dict[str, PlanInfo] = field(default_factory=dict)
    # deployment-name prefix -> plan; normally prefix == plan id. A legacy index entry whose
    # plan id lacks the service prefix also registers "<service-id>-<plan-id>".
    prefixes: dict[str, PlanInfo] = field(default_factory=dict)
    legacy_prefixes: set[str] = field(default_factory=set)

    @property
    def plan_ids(self) -> set[str]:
        return set(self.plans)

    @property
    def service_ids(self) -> set[str]:
        return {p.service_id for p in self.plans.values() if p.service_id}

    def service_of(self, plan_id: str) -> str | None:
        info = self.plans.get(plan_id)
        return info.service_id if info else None

    def add(self, info: PlanInfo, *, prefix: str | None = None) -> None:
        if not info.plan_id:
            return
        current = self.plans.get(info.plan_id)
        # CF's view wins over what the index implies.
        if current is None or (current.source != "cf" and info.source == "cf"):
            self.plans[info.plan_id] = info
        key = prefix or info.plan_id
        held = self.prefixes.get(key)
        if held is None or (held.source != "cf" and info.source == "cf"):
            self.prefixes[key] = self.plans[info.plan_id]
            if prefix and prefix != info.plan_id:
                self.legacy_prefixes.add(prefix)
            else:
                self.legacy_prefixes.discard(key)


def build_catalog(plans: Iterable[CatalogPlan] = (), index: Mapping[str, Any] | None = None) -> Catalog:
    """Catalog from CF plans plus, as a fallback, the plan ids the index has recorded.

    An index entry ``{service_id: "redis", plan_id: "standalone"}`` from an older broker whose
    plan ids were not service-prefixed also registers the deployment prefix ``redis-standalone``.
    """
    cat = Catalog()
    for p in plans:
        cat.add(PlanInfo(p.plan_id, p.service_id, p.plan_name, p.service_name, "cf"))
    for entry in (index or {}).values():
        if not isinstance(entry, Mapping):
            continue
        plan_id, service_id = entry.get("plan_id"), entry.get("service_id")
        if not isinstance(plan_id, str) or not plan_id or not isinstance(service_id, str):
            continue
        info = PlanInfo(plan_id, service_id, source="index")
        cat.add(info)
        if service_id and not plan_id.startswith(service_id + "-"):
            cat.add(info, prefix=f"{service_id}-{plan_id}")
    return cat
