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
