"""Builders for the domain tests: forge-style manifests, CF records, a Vault tree that applies plans.

Not collected by pytest (no ``test_`` prefix); import as ``tests.unit.domain_support``.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import yaml

from reconciler.models import VM, CatalogPlan, CFInstance, DeploymentDetail, NameVersion, VaultWrite

CATALOG = [
    CatalogPlan(
        foundation="cf",
        plan_guid=f"pg-{pid}",
        plan_id=pid,
        plan_name=pid.split("-", 1)[1],
        service_guid=f"sg-{sid}",
        service_id=sid,
        service_name=sid,
    )
    for sid, pid in [
        ("redis", "redis-standalone"),
        ("redis", "redis-cache-small"),
        ("redis", "redis-cache"),
        ("postgresql", "postgresql-small"),
        ("postgresql", "postgresql-ha-large-v2"),
        ("rabbitmq", "rabbitmq-single"),
        ("vault", "vault-standard"),
    ]
]
SERVICE_OF = {p.plan_id: p.service_id for p in CATALOG}
NOW = "2026-01-02T03:04:05Z"
LATER = "2026-01-02T04:04:05Z"


def cf_instance(guid: str, plan_id: str = "redis-standalone", **kw: Any) -> CFInstance:
    fields: dict[str, Any] = dict(
        foundation="cf",
        guid=guid,
        name=f"svc-{guid[:8]}",
        service_id=SERVICE_OF.get(plan_id, "redis"),
        plan_id=plan_id,
        service_name=SERVICE_OF.get(plan_id, "redis"),
        plan_name=plan_id,
        space_guid="11111111-2222-3333-4444-555555555555",
        space_name="dev",
        organization_guid="66666666-7777-8888-9999-000000000000",
        organization_name="org",
        created_at="2025-01-01T00:00:00Z",
    )
    fields.update(kw)
    return CFInstance(**fields)


def redis_manifest(name: str, instance_id: str | None, password: Any = "s3cret-redis", **extra: Any) -> str:
    doc: dict[str, Any] = {
        "name": name,
        "meta": {"params": {"instance_id": instance_id} if instance_id else {}, "password": password},
        "releases": [{"name": "redis-forge", "version": "1.2.3"}, {"name": "bpm", "version": "1.4.20"}],
        "instance_groups": [
            {
                "name": "standalone",
                "instances": 1,
                "networks": [{"name": "redis-service"}],
                "jobs": [
                    {"name": "bpm", "release": "bpm"},
                    {
                        "name": "standalone",
                        "release": "redis-forge",
                        "properties": {"auth": {"password": password}, "persistent": True},
                    },
                ],
            }
        ],
    }
    doc.update(extra)
    return yaml.safe_dump(doc, sort_keys=False)


def postgres_manifest(name: str, instance_id: str | None, username: Any = "pgadmin", password: Any = "pg-pass") -> str:
    doc = {
        "name": name,
        "meta": {
            "params": {"instance_id": instance_id} if instance_id else {},
            "service": {"username": username, "password": password},
        },
        "releases": [{"name": "postgres", "version": "43"}],
        "instance_groups": [
            {
                "name": "postgresql",
                "instances": 1,
                "jobs": [{"name": "postgres", "release": "postgres", "properties": {}}],
            }
        ],
    }
    return yaml.safe_dump(doc, sort_keys=False)


def rabbitmq_manifest(name: str, instance_id: str | None, password: Any = "rmq-pass") -> str:
    doc = {
        "name": name,
        "meta": {"params": {"instance_id": instance_id} if instance_id else {}},
        "releases": [{"name": "rabbitmq-forge", "version": "2.0"}],
        "instance_groups": [
            {
                "name": "rabbitmq",
                "instances": 1,
                "jobs": [
                    {
                        "name": "rabbitmq",
                        "release": "rabbitmq-forge",
                        "properties": {
                            "rabbitmq": {
                                "default": {"user": "app", "password": password},
                                "admin": {"user": "admin", "pass": "adm-pass"},
                            }
                        },
                    }
                ],
            }
        ],
    }
    return yaml.safe_dump(doc, sort_keys=False)


def vms_for(group: str, ip: str = "10.0.0.5") -> list[VM]:
    return [VM(instance_group=group, index=0, id=f"{group}-0", ips=[ip], dns=[], az="z1", vm_cid="vm-1")]


def detail(
    name: str,
    manifest: str | None,
    vms: list[VM] | None = None,
    release: str = "redis-forge",
    director: str = "bosh",
    error: str | None = None,
) -> DeploymentDetail:
    return DeploymentDetail(
        director=director,
        name=name,
        manifest_text=manifest,
        releases=[NameVersion(name=release, version="1")],
        stemcells=[NameVersion(name="ubuntu-jammy", version="1.1")],
        vms=vms or [],
        error=error,
    )


class FakeVault:
    """A logical KV v2 tree that applies planned writes, honouring ``cas`` like Vault does."""

    def __init__(self, data: dict[str, dict[str, Any]] | None = None):
        self.data: dict[str, dict[str, Any]] = {}
        self.version: dict[str, int] = {}
        for path, value in (data or {}).items():
            self.data[path] = copy.deepcopy(value)
            self.version[path] = 1

    def tree(self, instance_id: str, mount: str = "secret") -> dict[str, tuple[dict[str, Any], int]]:
        prefix = f"{mount}/{instance_id}"
        return {
            p: (copy.deepcopy(d), self.version[p])
            for p, d in self.data.items()
            if p == prefix or p.startswith(prefix + "/")
        }

    def apply(self, writes: list[VaultWrite]) -> None:
        for w in writes:
            current = self.version.get(w.path, 0)
            if w.cas is not None and w.cas != current:
                raise AssertionError(f"cas mismatch on {w.path}: planned {w.cas}, current {current}")
            # JSON round trip: what Vault stores and returns.
            self.data[w.path] = json.loads(json.dumps(w.data))
            self.version[w.path] = current + 1


# --- generated worlds -> domain inputs (what the real adapters hand over) ----------------


class WorldInputs:
    """A generator world converted into the records the adapters produce."""

    def __init__(self, world: dict[str, Any], broker_name: str = "blacksmith"):
        from reconciler.models import CFBinding

        cf = world["cf"]
        broker = next(b for b in cf["service_brokers"] if b["name"] == broker_name)
        offerings = {
            o["guid"]: o
            for o in cf["service_offerings"]
            if o["relationships"]["service_broker"]["data"]["guid"] == broker["guid"]
        }
        plans = {
            p["guid"]: p
            for p in cf["service_plans"]
            if p["relationships"]["service_offering"]["data"]["guid"] in offerings
        }
        self.catalog = []
        for p in plans.values():
            o = offerings[p["relationships"]["service_offering"]["data"]["guid"]]
            self.catalog.append(
                CatalogPlan(
                    foundation="cf",
                    plan_guid=p["guid"],
                    plan_id=p["broker_catalog"]["id"],
                    plan_name=p["name"],
                    service_guid=o["guid"],
                    service_id=o["broker_catalog"]["id"],
                    service_name=o["name"],
                )
            )
        by_plan_guid = {c.plan_guid: c for c in self.catalog}
        orgs = {o["guid"]: o for o in cf["organizations"]}
        spaces = {s["guid"]: s for s in cf["spaces"]}
        self.instances: list[CFInstance] = []
        for si in cf["service_instances"]:
            if si.get("type") != "managed":
                continue
            plan = by_plan_guid.get(si["relationships"]["service_plan"]["data"]["guid"])
            if plan is None:
                continue  # another broker's instance: the adapter filters by broker
            space = spaces[si["relationships"]["space"]["data"]["guid"]]
            org = orgs[space["relationships"]["organization"]["data"]["guid"]]
            self.instances.append(
                CFInstance(
                    foundation="cf",
                    guid=si["guid"],
                    name=si["name"],
                    service_id=plan.service_id,
                    plan_id=plan.plan_id,
                    service_name=plan.service_name,
                    plan_name=plan.plan_name,
                    space_guid=space["guid"],
                    space_name=space["name"],
                    organization_guid=org["guid"],
                    organization_name=org["name"],
                    created_at=si["created_at"],
                    updated_at=si["updated_at"],
                    last_operation=si.get("last_operation") or {},
                )
            )
        ours = {i.guid for i in self.instances}
        self.bindings = [
            CFBinding(
                foundation="cf",
                guid=b["guid"],
                instance_guid=b["relationships"]["service_instance"]["data"]["guid"],
                name=b.get("name") or "",
                type=b["type"],
                app_guid=((b["relationships"].get("app") or {}).get("data") or {}).get("guid", ""),
                created_at=b["created_at"],
                credentials=cf["binding_details"].get(b["guid"], {}).get("credentials"),
            )
            for b in cf["service_credential_bindings"]
            if b["relationships"]["service_instance"]["data"]["guid"] in ours
        ]
        self.parameters = {k: v for k, v in cf.get("instance_parameters", {}).items() if k in ours}
        director = world["bosh"].get("name", "bosh")
        self.deployments = [
            DeploymentDetail(
                director=director,
                name=d["name"],
                manifest_text=d.get("manifest"),
                releases=[NameVersion(**r) for r in d.get("releases", [])],
                stemcells=[NameVersion(**s) for s in d.get("stemcells", [])],
                vms=[
                    VM(
                        instance_group=v["job_name"],
                        index=v.get("index"),
                        id=v.get("id", ""),
                        ips=v.get("ips", []),
                        dns=v.get("dns", []),
                        az=v.get("az"),
                        vm_cid=v.get("vm_cid"),
                        agent_id=v.get("agent_id"),
                        process_state=v.get("job_state", ""),
                        active=v.get("active"),
                    )
                    for v in d.get("vms", [])
                ],
            )
            for d in world["bosh"]["deployments"]
        ]
        self.index = copy.deepcopy(world["vault"].get("secret/db", {}))
        self.vault = FakeVault({p: d for p, d in world["vault"].items() if p != "secret/db"})

    def vault_ids(self) -> list[str]:
        """Instance ids with a tree in Vault: first segment under the mount (what listing gives)."""
        from reconciler.domain import normalize_uuid

        ids = {normalize_uuid(p.split("/")[1]) for p in self.vault.data}
        return sorted(i for i in ids if i)
