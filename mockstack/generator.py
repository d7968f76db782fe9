"""World generator: a realistic Blacksmith estate (CF + BOSH + Vault) with a chosen mix of
drift, and beside it the outcome a correct reconciler must reach (the expected-outcome file).

``generate(instances, seed, drift)`` is deterministic per seed: every random choice (UUIDs
included) comes from one ``random.Random(seed)`` and nothing iterates over a set or reads
the clock. It is built for size: manifests are formatted from f-string templates (a test
parses samples with ``yaml.safe_load``), so 50,000 instances take seconds.

Vocabulary used below:

* ``instances`` counts *our* broker's instance ids: CF instances of the ``blacksmith``
  broker (matched or CF orphans) plus BOSH orphans and Vault orphans. User-provided
  instances, other brokers' instances and non-service deployments come on top.
* A drift kind is applied to ``ceil(fraction * instances)`` ids (0 when the fraction is 0),
  capped by what is available, so every kind appears in a world of a few hundred.
"""

from __future__ import annotations

import argparse
import base64
import gc
import gzip
import hashlib
import json
import math
import random
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

GENERATOR_VERSION = 2  # 2: situations beside the live broker (in flight, name mismatch, old stamps)
BROKER_NAME = "blacksmith"
OTHER_BROKER_NAME = "cloud-service-broker"
# Fixed "now" so a world does not depend on the clock: 2026-03-01T00:00:00Z.
NOW = 1772323200
DAY = 86400

NON_SERVICE_BASES = ("cf", "bosh", "concourse", "grafana", "prometheus", "shield", "vault")

PORTS = {"redis": 6379, "postgresql": 5432, "rabbitmq": 5672}
RELEASES = {
    "redis": [("bpm", "1.4.20"), ("redis-forge", "0.6.3")],
    "postgresql": [("bpm", "1.4.20"), ("postgres", "53.0.1")],
    "rabbitmq": [("bpm", "1.4.20"), ("loggregator-agent", "8.3.2"), ("rabbitmq-forge", "1.9.0")],
}
OLD_FORGE_VERSION = {"redis-forge": "0.5.9", "postgres": "52.1.0", "rabbitmq-forge": "1.7.4"}
STEMCELL_NAME = "bosh-aws-xen-hvm-ubuntu-jammy-go_agent"
STEMCELL_VERSION = "1.423"
OLD_STEMCELL_VERSION = "1.351"


@dataclass(frozen=True)
class PlanSpec:
    service: str  # broker service id == offering name
    plan: str  # broker plan name (the part after "<service>-")
    group: str  # primary instance group: the host comes from its index-0 VM
    nodes: int
    description: str

    @property
    def plan_id(self) -> str:
        return f"{self.service}-{self.plan}"

    @property
    def extra_dashes(self) -> bool:
        return "-" in self.plan


# Blacksmith's catalog: plan id = "<service-id>-<plan>". Several plans carry dashes of
# their own and prefix one another ("redis-cache-small" / "redis-cache-small-ha"), so a
# deployment name can only be split with the catalog, never by counting dashes.
CATALOG: tuple[PlanSpec, ...] = (
    PlanSpec("redis", "standalone", "standalone", 1, "Dedicated Redis, single node"),
    PlanSpec("redis", "cluster", "node", 3, "Dedicated Redis, three-node cluster"),
    PlanSpec("redis", "cache-small", "standalone", 1, "Small Redis cache"),
    PlanSpec("redis", "cache-small-ha", "node", 3, "Small Redis cache, highly available"),
    PlanSpec("postgresql", "small", "postgresql", 1, "PostgreSQL, small VM"),
    PlanSpec("postgresql", "medium", "postgresql", 1, "PostgreSQL, medium VM"),
    PlanSpec("postgresql", "large-ha", "postgresql", 2, "PostgreSQL, primary and replica"),
    PlanSpec("rabbitmq", "single-node", "rabbitmq", 1, "RabbitMQ, single node"),
    PlanSpec("rabbitmq", "cluster-3", "rabbitmq", 3, "RabbitMQ, three-node cluster"),
)
PLAIN_PLANS = tuple(p for p in CATALOG if not p.extra_dashes)
DASHED_PLANS = tuple(p for p in CATALOG if p.extra_dashes)
SERVICES = ("redis", "postgresql", "rabbitmq")
# Offerings whose broker lets CF fetch instance parameters (features.instances_retrievable);
# rabbitmq does not, so its lost records cannot get their parameters back from CF.
RETRIEVABLE = ("redis", "postgresql")

OTHER_OFFERINGS = (
    # name deliberately collides with ours: only the broker tells them apart.
    ("postgresql", ["db-small", "db-large"]),
    ("csb-aws-s3-bucket", ["private", "public-read"]),
)

USER_PARAMS = {
    "redis": [
        {},
        {"maxmemory-policy": "volatile-lru"},
        {"maxmemory-policy": "noeviction", "notify-keyspace-events": "Ex"},
        {"slowlog-log-slower-than": 5000, "slowlog-max-len": 256},
    ],
    "postgresql": [{}, {"max_connections": 200}, {"max_connections": 500, "extensions": ["citext", "pgcrypto"]}],
    "rabbitmq": [{}, {"plugins": ["rabbitmq_shovel"]}, {"cluster_partition_handling": "pause_minority"}],
}


@dataclass(frozen=True)
class Drift:
    """How much of each kind of drift a world holds.

    Fractions are of ``instances``; counts are absolute. Kinds marked *exclusive* never
    share an instance (an instance has at most one Vault-state drift)."""

    # Vault state of matched instances (exclusive)
    lost_index: float = 0.02  # secret/db entry gone, instance tree intact
    lost_tree: float = 0.015  # whole secret/<id>/... tree gone, index entry intact
    lost_both: float = 0.01  # index entry and tree gone
    stale_manifest: float = 0.03  # secret/<id>/manifest differs from BOSH's manifest
    missing_credentials: float = 0.03  # secret/<id>/credentials gone, rebuildable from manifest + VMs
    unrecoverable_credentials: float = 0.01  # credentials gone, manifest password is a ((placeholder))
    # Orphans (each a separate instance id)
    cf_orphans: float = 0.02  # CF instance of our broker, no deployment
    bosh_orphans: float = 0.02  # deployment of our naming, no CF instance
    vault_orphans: float = 0.02  # index entry and/or Vault tree, neither CF nor BOSH
    # Legacy backups on matched instances whose tree exists (exclusive between the two)
    legacy_backups: float = 0.02  # secret/<id>/backups/<sha> {data, timestamp, sha256}
    legacy_archives: float = 0.02  # secret/backups/<id>/<sha> {timestamp, archive: b64(gzip(json))}
    # Beside the live broker (shared/api-reference/blacksmith-broker-vault.md)
    delete_in_flight: float = 0.01  # matched; CF delete in progress, index deprovision_requested (exclusive)
    provisions_in_flight: float = 0.01  # CF create in progress, index request_received, no deployment yet
    string_stamped_history: float = 0.02  # metadata history entries of an older reconciler, RFC 3339 stamps
    # Naming
    upper_case_names: float = 0.01  # deployment name carries the GUID in upper case (a name mismatch)
    extra_dash_plans: float = 0.15  # share of CF instances on plans like redis-cache-small-ha
    # Things the reconciler must leave alone
    user_provided: float = 0.03  # user-provided CF instances
    other_broker: float = 0.04  # managed CF instances of another broker
    non_service_deployments: int = 14  # cf, bosh, concourse, ... and their "-x" variants
    foreign_deployments: int = 3  # other brokers' ODB deployments (service-instance_<guid>)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int":
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise ValueError(f"Drift.{f.name}: expected a whole number >= 0, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ValueError(f"Drift.{f.name}: expected a fraction between 0 and 1, got {value!r}")

    @classmethod
    def none(cls) -> Drift:
        """A world without any drift or noise: every instance healthy and matched."""
        return cls(**{f.name: 0 for f in fields(cls)})

    @classmethod
    def from_spec(cls, spec: str) -> Drift:
        """Parse ``"lost_index=0.05,cf_orphans=0.1,non_service_deployments=3"`` (or ``none``)
        on top of the defaults."""
        spec = spec.strip()
        if spec in ("", "default"):
            return cls()
        if spec == "none":
            return cls.none()
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for item in spec.split(","):
            key, sep, raw = item.partition("=")
            key = key.strip()
            if not sep or key not in known:
                raise ValueError(
                    f"drift setting {item.strip()!r}: expected NAME=VALUE with NAME one of {', '.join(known)}"
                )
            try:
                values[key] = int(raw) if known[key].type == "int" else float(raw)
            except ValueError:
                kind = "a whole number" if known[key].type == "int" else "a fraction"
                raise ValueError(f"drift setting {key}: expected {kind}, got {raw.strip()!r}") from None
        return cls(**values)


# --- small deterministic helpers --------------------------------------------------------

_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


class _Rand:
    """random.Random plus the few shapes we need, all derived from one seed."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)
        self._ip = 0x0A000000 + self.r.randrange(0x10000) * 256  # 10.x.y.0

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.r.getrandbits(128), version=4))

    def password(self, n: int = 32) -> str:
        return "".join(self.r.choices(_ALNUM, k=n))

    def hexid(self, n: int = 16) -> str:
        return f"{self.r.getrandbits(n * 4):0{n}x}"

    def ip(self) -> str:
        self._ip += 1
        if self._ip & 0xFF in (0, 255):
            self._ip += 2
        v = self._ip
        return f"{v >> 24}.{(v >> 16) & 255}.{(v >> 8) & 255}.{v & 255}"

    def when(self, lo_days: int, hi_days: int) -> int:
        """An epoch second between ``hi_days`` and ``lo_days`` days before NOW."""
        return NOW - self.r.randrange(lo_days * DAY, hi_days * DAY)


def iso(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _count(fraction: float, n: int) -> int:
    return math.ceil(fraction * n) if fraction > 0 else 0


def _q(value: Any) -> str:
    """A YAML scalar for any JSON value (JSON is valid YAML flow syntax)."""
    return json.dumps(value)


# --- forge manifests ----------------------------------------------------------------------


def _params_yaml(instance_id: str, params: dict[str, Any]) -> str:
    lines = [f"    instance_id: {_q(instance_id)}"]
    lines += [f"    {k}: {_q(v)}" for k, v in params.items()]
    return "\n".join(lines)


def _releases_yaml(service: str, old: bool) -> str:
    out = []
    for name, version in RELEASES[service]:
        if old:
            version = OLD_FORGE_VERSION.get(name, version)
        out.append(f"- name: {name}\n  version: {_q(version)}")
    return "\n".join(out)


def _header(name: str, director_uuid: str, instance_id: str, params: dict, service: str, old: bool,
            meta_extra: str = "") -> str:
    """Top of a merged forge manifest: name, director_uuid, meta (with the forge's own keys in
    ``meta_extra`` and ``meta.params`` = user parameters + instance_id), releases, stemcells."""
    stemcell = OLD_STEMCELL_VERSION if old else STEMCELL_VERSION
    return f"""---
name: {name}
director_uuid: {director_uuid}
meta:
  default:
    azs: [z1, z2, z3]
  size: default
{meta_extra}  params:
{_params_yaml(instance_id, params)}
releases:
{_releases_yaml(service, old)}
stemcells:
- alias: default
  os: ubuntu-jammy
  version: {_q(stemcell)}
update:
  canaries: 1
  max_in_flight: 10
  canary_watch_time: 1000-30000
  update_watch_time: 1000-30000
"""


def redis_manifest(name, director_uuid, instance_id, params, spec: PlanSpec, secret: dict, old=False) -> str:
    password = secret["password"]
    variables = ""
    if password.startswith("(("):
        variables = "variables:\n- name: redis_password\n  type: password\n"
    job = "standalone" if spec.group == "standalone" else "node"
    policy = params.get("maxmemory-policy", "allkeys-lru")
    return (
        _header(name, director_uuid, instance_id, params, "redis", old, f"  password: {_q(password)}\n")
        + f"""features:
  randomize_az_placement: true
instance_groups:
- name: {spec.group}
  instances: {spec.nodes}
  azs: [z1, z2, z3]
  networks:
  - name: redis-service
  stemcell: default
  vm_type: default
  persistent_disk_type: default
  jobs:
  - name: bpm
    release: bpm
  - name: {job}
    release: redis-forge
    properties:
      auth:
        password: {_q(password)}
      persistent: true
      redis:
        maxmemory-policy: {_q(policy)}
        notify-keyspace-events: {_q(params.get("notify-keyspace-events", ""))}
        slowlog-log-slower-than: {params.get("slowlog-log-slower-than", 10000)}
        slowlog-max-len: {params.get("slowlog-max-len", 128)}
        maxmemory: 0
      client:
        timeout: 0
        tcpkeepalive: 300
{variables}"""
    )


def postgresql_manifest(name, director_uuid, instance_id, params, spec: PlanSpec, secret: dict, old=False) -> str:
    user, password = secret["username"], secret["password"]
    variables = ""
    if password.startswith("(("):
        variables = "variables:\n- name: postgres_password\n  type: password\n"
    return (
        _header(name, director_uuid, instance_id, params, "postgresql", old,
                f"  service:\n    username: {_q(user)}\n    password: {_q(password)}\n")
        + f"""instance_groups:
- name: {spec.group}
  instances: {spec.nodes}
  azs: [z1, z2]
  networks:
  - name: postgresql-service
  stemcell: default
  vm_type: {"large" if spec.plan.startswith("large") else "default"}
  persistent_disk_type: default
  jobs:
  - name: bpm
    release: bpm
  - name: postgres
    release: postgres
    properties:
      postgres:
        config:
          max_connections: {params.get("max_connections", 100)}
        databases:
        - name: postgres
          extensions: {_q(params.get("extensions", []))}
          users: [{_q(user)}]
        hba:
        - host all all 0.0.0.0/0 md5
        users:
        - username: {_q(user)}
          password: {_q(password)}
          admin: true
{variables}"""
    )


def rabbitmq_manifest(name, director_uuid, instance_id, params, spec: PlanSpec, secret: dict, old=False) -> str:
    # TLS material is always a BOSH variable: a placeholder that is *not* a credential.
    variables = "variables:\n- name: rabbitmq_ca\n  type: certificate\n- name: rabbitmq_tls\n  type: certificate\n"
    if secret["password"].startswith("(("):
        variables += "- name: rabbitmq_password\n  type: password\n- name: rabbitmq_admin_password\n  type: password\n"
    plugins = ["rabbitmq_management", *params.get("plugins", [])]
    return (
        _header(name, director_uuid, instance_id, params, "rabbitmq", old)
        + f"""instance_groups:
- name: {spec.group}
  instances: {spec.nodes}
  azs: [z1, z2, z3]
  networks:
  - name: rabbitmq-service
  stemcell: default
  vm_type: default
  persistent_disk_type: default
  jobs:
  - name: bpm
    release: bpm
  - name: loggregator_agent
    release: loggregator-agent
  - name: rabbitmq
    release: rabbitmq-forge
    properties:
      rabbitmq:
        plugins: {_q(plugins)}
        cluster_partition_handling: {_q(params.get("cluster_partition_handling", "autoheal"))}
        vhost: {_q(instance_id)}
        default:
          user: {_q(secret["username"])}
          password: {_q(secret["password"])}
        admin:
          user: {_q(secret["admin_username"])}
          pass: {_q(secret["admin_password"])}
        tls:
          ca: ((rabbitmq_ca.certificate))
          cert: ((rabbitmq_tls.certificate))
          key: ((rabbitmq_tls.private_key))
{variables}"""
    )


MANIFESTS = {"redis": redis_manifest, "postgresql": postgresql_manifest, "rabbitmq": rabbitmq_manifest}


def forge_secret(rnd: _Rand, service: str) -> dict[str, str]:
    """What the forge's ``init`` script generated (the values spruce put in the manifest)."""
    if service == "redis":
        return {"password": rnd.password()}
    if service == "postgresql":
        return {"username": "u" + rnd.hexid(11), "password": rnd.password()}
    return {
        "username": "u" + rnd.hexid(11),
        "password": rnd.password(),
        "admin_username": "admin",
        "admin_password": rnd.password(),
    }


FORGE_SECRET_PATH = {"redis": "redis/system", "postgresql": "postgresql", "rabbitmq": "rabbitmq/system"}
PLACEHOLDERS = {
    "redis": {"password": "((redis_password))"},
    "postgresql": {"password": "((postgres_password))"},
    "rabbitmq": {"password": "((rabbitmq_password))", "admin_password": "((rabbitmq_admin_password))"},
}


def credentials_for(service: str, instance_id: str, host: str, secret: dict[str, str]) -> dict[str, Any]:
    """The forge's credentials.yml rendered with the VM address (what Blacksmith stored)."""
    port = PORTS[service]
    if service == "redis":
        return {"host": host, "port": port, "password": secret["password"], "url": f"redis://{host}:{port}"}
    if service == "postgresql":
        user, pw = secret["username"], secret["password"]
        return {
            "username": user,
            "password": pw,
            "host": host,
            "db_host": host,
            "port": port,
            "db_name": "postgres",
            "uri": f"postgres://{user}:{pw}@{host}:{port}/postgres",
            "jdbc_uri": f"jdbc:postgresql://{host}:{port}/postgres?user={user}&password={pw}",
        }
    user, pw = secret["username"], secret["password"]
    admin, admin_pw = secret["admin_username"], secret["admin_password"]
    amqp_uri = f"amqp://{user}:{pw}@{host}:{port}/{instance_id}"
    return {
        "admin_username": admin,
        "admin_password": admin_pw,
        "username": user,
        "password": pw,
        "vhost": instance_id,
        "host": host,
        "hostname": host,
        "port": port,
        "uri": amqp_uri,
        "protocols": {
            "amqp": {"host": host, "port": port, "username": user, "password": pw, "vhost": instance_id,
                     "uri": amqp_uri},
            "management": {"host": host, "port": 15672, "username": admin, "password": admin_pw,
                           "uri": f"http://{admin}:{admin_pw}@{host}:15672/api", "path": "/api"},
        },
        "dashboard_url": f"http://{host}:15672/#/login/{admin}/{admin_pw}",
        "api_url": f"http://{host}:15672/api",
    }


def _vm(rnd: _Rand, group: str, index: int, ip: str, created: int, vm_type: str = "default") -> dict[str, Any]:
    """One line of ``/deployments/:name/vms?format=full`` as the current Director emits it."""
    disk = f"vol-{rnd.hexid(17)}"
    return {
        "vm_cid": f"i-{rnd.hexid(17)}",
        "active": True,
        "vm_created_at": iso(created),
        "cloud_properties": {"instance_type": "m5.large"},
        "disk_cid": disk,
        "disk_cids": [disk],
        "ips": [ip],
        "agent_id": rnd.uuid(),
        "job_name": group,
        "index": index,
        "job_state": "running",
        "state": "started",
        "vm_type": vm_type,
        "vitals": {
            "cpu": {"sys": "0.4", "user": "1.2", "wait": "0.0"},
            "disk": {"system": {"percent": "41", "inode_percent": "30"},
                     "ephemeral": {"percent": "3", "inode_percent": "1"},
                     "persistent": {"percent": str(rnd.r.randrange(1, 90)), "inode_percent": "1"}},
            "load": ["0.02", "0.05", "0.01"],
            "mem": {"kb": "612344", "percent": "8"},
            "swap": {"kb": "0", "percent": "0"},
            "uptime": {"secs": str(NOW - created)},  # vitals numbers are strings on the wire
        },
        "processes": [{"name": group, "state": "running", "uptime": {"secs": NOW - created},
                       "mem": {"kb": 48812, "percent": 0.6}, "cpu": {"total": 0.3}}],
        "az": ("z1", "z2", "z3")[index % 3],
        "id": rnd.uuid(),
        "bootstrap": index == 0,
        "ignore": False,
        "stemcell": {"name": STEMCELL_NAME, "version": STEMCELL_VERSION, "api_version": 3},
    }


def _deployment(name: str, manifest: str | None, releases, vms) -> dict[str, Any]:
    return {
        "name": name,
        "manifest": manifest,
        "releases": [{"name": n, "version": v} for n, v in sorted(releases)],
        "stemcells": [{"name": STEMCELL_NAME, "version": STEMCELL_VERSION}],
        "teams": [],
        "locked": False,
        "vms": vms,
    }


# --- the generator --------------------------------------------------------------------------


class _World:
    def __init__(self, instances: int, seed: int, drift: Drift) -> None:
        self.n = instances
        self.seed = seed
        self.drift = drift
        self.rnd = _Rand(seed)
        self.director_uuid = self.rnd.uuid()
        self.cf: dict[str, Any] = {
            "name": "cf",
            "service_brokers": [],
            "service_offerings": [],
            "service_plans": [],
            "service_instances": [],
            "service_credential_bindings": [],
            "organizations": [],
            "spaces": [],
            "apps": [],
            "instance_parameters": {},
            "binding_details": {},
            "instance_credentials": {},
        }
        self.deployments: list[dict[str, Any]] = []
        self.vault: dict[str, dict[str, Any]] = {}
        self.index: dict[str, dict[str, Any]] = {}
        self.exp: dict[str, Any] = {
            "broker": {},
            "matched": {},
            # every finding kind (reconciler.domain.findings), by key
            "orphans": {"cf": [], "bosh": [], "vault": [], "failed_provision": [], "name_mismatch": [],
                        "in_flight": []},
            "recoverable_credentials": [],
            "unrecoverable_credentials": {},
            "recovered_credentials": {},
            "excluded_deployments": [],
            "foreign_deployments": [],
            "ignored_cf_instances": [],
            "untouched_paths": [],
            "preserved_fields": {},
            "index_ids": [],
            "index_preserved_fields": ["organization_guid", "space_guid", "status", "requested_at",
                                       "organization_name", "space_name", "instance_name"],
            "legacy_backups": [],
            "legacy_backup_paths": {},
            "lost_binding_credentials": {},
            # beside the broker: operations in flight (left alone), failed provisions, running
            # deployments not named <plan_id>-<instance_id>, old history stamps, old orphan marks
            "in_flight": {},
            "failed_provisions": [],
            "name_mismatch": {},
            "history_converted": [],
            "orphan_marks_removed": [],
            # lost records of CF instances: the parameters CF gives back, or none (not retrievable)
            "fetched_parameters": {},
            "unfetchable_parameters": [],
            "drift": {},
        }
        self.drift_ids: dict[str, list[str]] = {}

    # -- CF scaffolding --------------------------------------------------------------------

    def _meta(self, labels=None, annotations=None) -> dict[str, Any]:
        return {"labels": labels or {}, "annotations": annotations or {}}

    def build_catalog(self) -> None:
        rnd = self.rnd
        t = NOW - 900 * DAY
        broker_guid = rnd.uuid()
        self.broker_guid = broker_guid
        self.cf["service_brokers"].append({
            "guid": broker_guid, "name": BROKER_NAME, "url": "https://blacksmith.system.example.com",
            "created_at": iso(t), "updated_at": iso(t + 30 * DAY), "relationships": {}, "metadata": self._meta(),
        })
        self.exp["broker"] = {"name": BROKER_NAME, "guid": broker_guid}
        self.plan_guids: dict[str, str] = {}
        offering_guids: dict[str, str] = {}
        for service in SERVICES:
            og = rnd.uuid()
            offering_guids[service] = og
            self.cf["service_offerings"].append(
                self._offering(og, service, service, broker_guid, t, service in RETRIEVABLE))
        for spec in CATALOG:
            pg = rnd.uuid()
            self.plan_guids[spec.plan_id] = pg
            self.cf["service_plans"].append(
                self._plan(pg, spec.plan, spec.plan_id, spec.description, offering_guids[spec.service], t, "1.4.2")
            )
        # Another broker, whose offerings and instances we must ignore.
        other_guid = rnd.uuid()
        self.cf["service_brokers"].append({
            "guid": other_guid, "name": OTHER_BROKER_NAME, "url": "https://csb.system.example.com",
            "created_at": iso(t + 5 * DAY), "updated_at": iso(t + 5 * DAY), "relationships": {},
            "metadata": self._meta(),
        })
        self.other_plan_guids: list[str] = []
        for name, plans in OTHER_OFFERINGS:
            og = rnd.uuid()
            self.cf["service_offerings"].append(self._offering(og, name, rnd.uuid(), other_guid, t + 5 * DAY, False))
            for plan in plans:
                pg = rnd.uuid()
                self.other_plan_guids.append(pg)
                self.cf["service_plans"].append(self._plan(pg, plan, rnd.uuid(), plan, og, t + 5 * DAY, None))

    def _offering(self, guid, name, broker_id, broker_guid, t, retrievable) -> dict[str, Any]:
        return {
            "guid": guid, "name": name, "description": f"{name} service", "available": True,
            "tags": [name], "requires": [], "created_at": iso(t), "updated_at": iso(t),
            "shareable": True, "documentation_url": None,
            "broker_catalog": {
                "id": broker_id, "metadata": {"shareable": True},
                "features": {"plan_updateable": True, "bindable": True, "instances_retrievable": retrievable,
                             "bindings_retrievable": retrievable, "allow_context_updates": False},
            },
            "relationships": {"service_broker": {"data": {"guid": broker_guid}}},
            "metadata": self._meta(),
        }

    def _plan(self, guid, name, broker_id, description, offering_guid, t, mversion) -> dict[str, Any]:
        return {
            "guid": guid, "name": name, "description": description, "visibility_type": "public",
            "available": True, "free": True, "costs": [], "created_at": iso(t), "updated_at": iso(t),
            "maintenance_info": {"version": mversion} if mversion else {},
            "broker_catalog": {"id": broker_id, "metadata": {}, "maximum_polling_duration": None,
                               "features": {"plan_updateable": True, "bindable": True}},
            "schemas": {"service_instance": {"create": {"parameters": {}}, "update": {"parameters": {}}},
                        "service_binding": {"create": {"parameters": {}}}},
            "relationships": {"service_offering": {"data": {"guid": offering_guid}}},
            "metadata": self._meta(),
        }

    def build_orgs(self, cf_instance_count: int) -> None:
        rnd = self.rnd
        n_orgs = max(2, cf_instance_count // 400 + 1)
        quota = rnd.uuid()
        self.spaces: list[tuple[str, str, str, str]] = []  # space guid, name, org guid, org name
        self.space_apps: dict[str, list[tuple[str, str]]] = {}
        for o in range(n_orgs):
            og, oname, t = rnd.uuid(), f"org-{o:03d}", rnd.when(400, 800)
            self.cf["organizations"].append({
                "guid": og, "created_at": iso(t), "updated_at": iso(t), "name": oname, "suspended": False,
                "relationships": {"quota": {"data": {"guid": quota}}}, "metadata": self._meta(),
            })
            for sname in ("dev", "staging", "prod"):
                sg = rnd.uuid()
                self.cf["spaces"].append({
                    "guid": sg, "created_at": iso(t), "updated_at": iso(t), "name": sname,
                    "relationships": {"organization": {"data": {"guid": og}}, "quota": {"data": None}},
                    "metadata": self._meta(),
                })
                self.spaces.append((sg, sname, og, oname))
                self.space_apps[sg] = []

    def app_in(self, space_guid: str) -> str:
        """An app of the space: reuse one (apps bind several instances) or push a new one."""
        rnd = self.rnd
        apps = self.space_apps[space_guid]
        if apps and rnd.r.random() < 0.4:
            return rnd.r.choice(apps)[0]
        guid, t = rnd.uuid(), rnd.when(1, 700)
        name = f"app-{len(self.cf['apps']):06d}"
        self.cf["apps"].append({
            "guid": guid, "name": name, "state": "STARTED", "created_at": iso(t), "updated_at": iso(t),
            "lifecycle": {"type": "buildpack", "data": {"buildpacks": ["python_buildpack"], "stack": "cflinuxfs4"}},
            "relationships": {"space": {"data": {"guid": space_guid}},
                              "current_droplet": {"data": {"guid": rnd.uuid()}}},
            "metadata": self._meta(),
        })
        apps.append((guid, name))
        return guid

    def cf_instance(self, guid, name, plan_guid, space_guid, created, *, state="succeeded", op="create",
                    labels=None, maintenance="1.4.2", dashboard=None) -> dict[str, Any]:
        updated = created + (3 * DAY if op == "update" else 180)
        inst = {
            "guid": guid, "created_at": iso(created), "updated_at": iso(updated), "name": name,
            "tags": [], "type": "managed",
            "maintenance_info": {"version": maintenance} if maintenance else {},
            "upgrade_available": maintenance not in (None, "1.4.2"),
            "dashboard_url": dashboard,
            "last_operation": {"type": op, "state": state,
                               "description": "Deployment failed" if state == "failed" else "Operation succeeded",
                               "updated_at": iso(updated), "created_at": iso(updated - 170)},
            "relationships": {"service_plan": {"data": {"guid": plan_guid}}, "space": {"data": {"guid": space_guid}}},
            "metadata": self._meta(labels),
        }
        self.cf["service_instances"].append(inst)
        return inst

    def binding(self, instance_guid, space_guid, credentials, created, kind) -> tuple[str, str | None]:
        rnd = self.rnd
        guid = rnd.uuid()
        app = self.app_in(space_guid) if kind == "app" else None
        b = {
            "guid": guid, "created_at": iso(created), "updated_at": iso(created),
            "name": None if kind == "app" and rnd.r.random() < 0.5 else f"{kind}-{guid[:8]}",
            "type": kind,
            "last_operation": {"type": "create", "state": "succeeded", "description": "",
                               "created_at": iso(created), "updated_at": iso(created)},
            "metadata": self._meta(),
            "relationships": {"service_instance": {"data": {"guid": instance_guid}}},
        }
        if app:
            b["relationships"]["app"] = {"data": {"guid": app}}
        self.cf["service_credential_bindings"].append(b)
        self.cf["binding_details"][guid] = {"credentials": credentials}
        return guid, app

    # -- one Blacksmith instance -------------------------------------------------------------

    def blacksmith_instance(self, iid: str, spec: PlanSpec, *, role: str, vault_state: str = "healthy",
                            legacy: str | None = None, upper: bool = False) -> None:
        """role: matched | cf_orphan_failed | cf_orphan_deleted | bosh_orphan | bosh_orphan_vault |
        vault_orphan_full | vault_orphan_index | vault_orphan_tree | provision_in_flight."""
        rnd = self.rnd
        service = spec.service
        created = rnd.when(2, 700)
        space_guid, space_name, org_guid, org_name = rnd.r.choice(self.spaces)
        name = f"{service}-{iid[:8]}"
        params = rnd.r.choice(USER_PARAMS[service])
        unrecoverable = vault_state == "unrecoverable_credentials"
        secret = forge_secret(rnd, service)
        manifest_secret = {**secret, **PLACEHOLDERS[service]} if unrecoverable else secret
        dep_guid = iid.upper() if upper else iid
        dep_name = f"{spec.plan_id}-{dep_guid}"
        has_cf = role in ("matched", "cf_orphan_failed", "cf_orphan_deleted", "provision_in_flight")
        deleting = vault_state == "delete_in_flight"
        has_bosh = role in ("matched", "bosh_orphan", "bosh_orphan_vault")

        # BOSH: manifest + VMs. The host is the first IP of <group>/0 (VM lines come unordered).
        ips = [rnd.ip() for _ in range(spec.nodes)]
        host = ips[0]
        manifest = MANIFESTS[service](dep_name, self.director_uuid, dep_guid, params, spec, manifest_secret)
        creds = credentials_for(service, iid, host, secret)
        if has_bosh:
            vm_created = created + 600
            vms = [_vm(rnd, spec.group, i, ips[i], vm_created, "large" if spec.plan.startswith("large") else "default")
                   for i in range(spec.nodes)]
            if len(vms) > 1:
                rnd.r.shuffle(vms)
            self.deployments.append(_deployment(dep_name, manifest, RELEASES[service], vms))

        # CF
        bindings: list[tuple[str, str | None, int]] = []
        if has_cf:
            failed = role == "cf_orphan_failed"
            creating = role == "provision_in_flight"
            maint = "1.4.2" if rnd.r.random() < 0.9 else "1.3.0"
            labels = {"team": rnd.r.choice(("payments", "search", "identity"))} if rnd.r.random() < 0.3 else None
            dash = f"https://{host}:15672/#/" if service == "rabbitmq" and not failed else None
            op = "update" if not failed and rnd.r.random() < 0.2 else "create"
            state = "failed" if failed else "succeeded"
            if creating or deleting:
                op, state = ("create" if creating else "delete"), "in progress"
                created = NOW - 600 if creating else created
            self.cf_instance(iid, name, self.plan_guids[spec.plan_id], space_guid, created,
                             state=state, op=op, labels=labels, maintenance=maint, dashboard=dash)
            self.cf["instance_parameters"][iid] = dict(params)
            if not failed and not creating:
                for _ in range(rnd.r.choice((0, 1, 1, 1, 2, 3))):
                    kind = "app" if rnd.r.random() < 0.8 else "key"
                    bt = created + rnd.r.randrange(DAY, 30 * DAY)
                    bg, app = self.binding(iid, space_guid, creds, bt, kind)
                    bindings.append((bg, app, bt))

        # Vault, as Blacksmith wrote it ...
        p = f"secret/{iid}"
        has_index = role not in ("bosh_orphan", "vault_orphan_tree") and vault_state not in ("lost_index", "lost_both")
        if role == "provision_in_flight":
            self.provision_in_flight(iid, spec, org_guid, space_guid, org_name, space_name, name, created)
            return
        has_tree = role not in ("bosh_orphan", "vault_orphan_index") and vault_state not in ("lost_tree", "lost_both")
        deployed = role != "cf_orphan_failed"
        if has_cf and deployed and not has_tree:
            if service in RETRIEVABLE:
                self.exp["fetched_parameters"][iid] = dict(params)
            else:
                self.exp["unfetchable_parameters"].append(iid)
        index_entry = {
            "service_id": service, "plan_id": spec.plan_id, "instance_id": iid,
            "organization_guid": org_guid, "space_guid": space_guid,
            "organization_name": org_name, "space_name": space_name, "instance_name": name,
            "created": created, "requested_at": iso(created),
            "status": "failed" if role == "cf_orphan_failed" else "provisioned",
            "deployment_name": f"{spec.plan_id}-{iid}",
        }
        if deleting:  # the broker's recordDeprovisionRequest
            index_entry.update(status="deprovision_requested", deprovision_requested_at=iso(NOW - 300))
        if role == "vault_orphan_full":  # an older reconciler's orphan mark (a map): to be removed
            index_entry["orphaned"] = {"type": "vault", "since": iso(NOW - 5 * DAY)}
            self.exp["orphan_marks_removed"].append(iid)
        if has_index:
            self.index[iid] = index_entry
        if has_tree:
            root = {
                "instance_id": iid, "service_id": service, "plan_id": spec.plan_id,
                "deployment_name": f"{spec.plan_id}-{iid}",
                "organization_guid": org_guid, "space_guid": space_guid,
                "organization_name": org_name, "space_name": space_name, "instance_name": name,
                "parameters": dict(params),
                "context": {"platform": "cloudfoundry", "organization_guid": org_guid, "space_guid": space_guid,
                            "organization_name": org_name, "space_name": space_name, "instance_name": name},
                "requested_at": iso(created), "created_at": created,
            }
            self.vault[p] = root
            self.exp["preserved_fields"][p] = ["parameters", "context", "requested_at"]
            if deployed:
                stale = vault_state == "stale_manifest"
                vault_manifest = manifest
                if stale:
                    old_params = {k: v for k, v in params.items() if k != "max_connections"}
                    vault_manifest = MANIFESTS[service](dep_name, self.director_uuid, dep_guid, old_params, spec,
                                                        manifest_secret, old=True)
                self.vault[f"{p}/manifest"] = {"manifest": vault_manifest, "updated_at": iso(created + 600)}
                history = [{"timestamp": created, "action": "provision", "description": "instance provisioned",
                            "plan_id": spec.plan_id}]
                if rnd.r.random() < 0.3:
                    history.append({"timestamp": created + 10 * DAY, "action": "update",
                                    "description": "instance updated", "plan_id": spec.plan_id})
                self.vault[f"{p}/metadata"] = {"history": history, "deployment_name": f"{spec.plan_id}-{iid}",
                                               "created_at": iso(created), "updated_at": iso(history[-1]["timestamp"])}
                if vault_state == "string_stamped_history":  # written by an older reconciler
                    history.append({"timestamp": iso(NOW - 2 * DAY), "action": "reconcile",
                                    "description": "reconciler updated manifest", "paths": ["manifest"]})
                    self.exp["history_converted"].append(iid)
                if not unrecoverable:
                    fp = f"{p}/{FORGE_SECRET_PATH[service]}"
                    self.vault[fp] = dict(secret)
                    self.exp["untouched_paths"].append(fp)
                if vault_state not in ("missing_credentials", "unrecoverable_credentials"):
                    self.vault[f"{p}/credentials"] = creds
                    self.exp["untouched_paths"].append(f"{p}/credentials")
                for bg, app, bt in bindings:
                    bp = f"{p}/bindings/{bg}"
                    self.vault[f"{bp}/credentials"] = creds
                    self.vault[f"{bp}/metadata"] = {"binding_id": bg, "instance_id": iid, "app_guid": app,
                                                    "service_id": service, "plan_id": spec.plan_id,
                                                    "created_at": iso(bt)}
                    self.exp["untouched_paths"].append(f"{bp}/credentials")
                if legacy:
                    self.legacy_backup(iid, legacy, index_entry, creds, bindings)
                if deleting:  # the broker's task record and a stale manifest no run may repair now
                    self.vault[f"{p}/task"] = {"action": "deprovision", "task": 0, "state": "initializing",
                                               "description": "Starting deprovisioning process",
                                               "updated_at": NOW - 300, "params": {}}
                    self.vault[f"{p}/manifest"]["manifest"] += "# edited while the delete runs\n"
                    self.exp["untouched_paths"] += [f"{p}/manifest", f"{p}/metadata", p]

        # ... and what a correct reconciler must conclude.
        if deleting:
            self.exp["in_flight"][iid] = "CF delete in progress"
            self.exp["orphans"]["in_flight"].append(iid)
        if upper and role == "matched" and not deleting:  # in flight: not judged until the delete ends
            self.exp["name_mismatch"][iid] = dep_name
            self.exp["orphans"]["name_mismatch"].append(iid)
        if role == "cf_orphan_failed":
            self.exp["failed_provisions"].append(iid)
        if role == "matched":
            self.exp["matched"][iid] = dep_name
            if vault_state in ("missing_credentials", "lost_tree", "lost_both"):
                self.exp["recoverable_credentials"].append(iid)
                self.exp["recovered_credentials"][iid] = creds
            if not has_tree and bindings:
                # CF still holds these bindings' credentials (binding_details)
                self.exp["lost_binding_credentials"][iid] = [bg for bg, _, _ in bindings]
            elif unrecoverable:
                field = "password"
                self.exp["unrecoverable_credentials"][iid] = (
                    f"manifest holds an unresolved placeholder {PLACEHOLDERS[service][field]} for the {field}"
                )
            self.exp["index_ids"].append(iid)  # a lost entry must come back
        else:
            if has_index:
                self.exp["index_ids"].append(iid)
            kind = {"cf_orphan_failed": "failed_provision", "cf_orphan_deleted": "cf", "bosh_orphan": "bosh",
                    "bosh_orphan_vault": "bosh"}.get(role, "vault")
            self.exp["orphans"][kind].append(dep_name if kind == "bosh" else iid)
        for kind in (vault_state if vault_state != "healthy" else None, legacy,
                     "upper_case_names" if upper else None, "extra_dash_plans" if spec.extra_dashes else None):
            if kind:
                self.drift_ids.setdefault(kind, []).append(iid)

    def provision_in_flight(self, iid, spec, org_guid, space_guid, org_name, space_name, name, created) -> None:
        """What the broker has written ten minutes into a provision (``Provision`` before BOSH is done):
        the index entry, ``secret/<id>/deployment``, the root record and the task; no deployment yet."""
        p = f"secret/{iid}"
        names = {"organization_name": org_name, "space_name": space_name, "instance_name": name}
        self.index[iid] = {"service_id": spec.service, "plan_id": spec.plan_id, "created": created,
                           "requested_at": iso(created), "status": "request_received",
                           "organization_guid": org_guid, "space_guid": space_guid, **names}
        info = {"requested_at": iso(created), "organization_guid": org_guid, "space_guid": space_guid,
                "service_id": spec.service, "plan_id": spec.plan_id, "deployment_name": f"{spec.plan_id}-{iid}",
                "instance_id": iid, **names}
        self.vault[f"{p}/deployment"] = info
        self.vault[p] = {**info, "context": {"platform": "cloudfoundry", **names}}
        self.vault[f"{p}/task"] = {"action": "provision", "task": 0, "state": "initializing",
                                   "description": "Starting provisioning process", "updated_at": created,
                                   "params": {}}
        self.exp["in_flight"][iid] = "CF create in progress"
        self.exp["orphans"]["in_flight"].append(iid)
        self.exp["index_ids"].append(iid)
        self.exp["untouched_paths"] += [p, f"{p}/deployment", f"{p}/task"]

    def legacy_backup(self, iid, fmt, index_entry, creds, bindings) -> None:
        """A backup written by an older version, to be migrated (never deleted)."""
        rnd = self.rnd
        p = f"secret/{iid}"
        ts = NOW - rnd.r.randrange(30 * DAY, 400 * DAY)
        if fmt == "legacy_backups":
            # Blacksmith's own record: secret/<id>/backups/<sha256>
            data = {
                "index": index_entry,
                "metadata": self.vault.get(f"{p}/metadata", {}),
                "manifest": self.vault.get(f"{p}/manifest", {}),  # each part is the secret at secret/<id>/<part>
                "credentials": creds,
                "bindings": {bg: creds for bg, _, _ in bindings},
            }
            sha = hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
            path = f"{p}/backups/{sha}"
            self.vault[path] = {"data": data, "timestamp": ts, "sha256": sha}
            kind = "blacksmith-record"
        else:
            # The old Go reconciler: secret/backups/<id>/<sha256> = {timestamp, archive}, archive =
            # base64(gzip(safe-export JSON of the instance tree)) -- safe exports string values.
            tree = [p, f"{p}/manifest", f"{p}/metadata", f"{p}/credentials"]
            tree += [f"{p}/bindings/{bg}/{leaf}" for bg, _, _ in bindings for leaf in ("credentials", "metadata")]
            export = {
                path: {k: v if isinstance(v, str) else json.dumps(v, sort_keys=True)
                       for k, v in self.vault[path].items()}
                for path in tree
                if path in self.vault
            }
            raw = json.dumps(export, sort_keys=True, separators=(",", ":")).encode()
            sha = hashlib.sha256(raw).hexdigest()
            path = f"secret/backups/{iid}/{sha}"
            archive = base64.b64encode(gzip.compress(raw, compresslevel=6, mtime=0)).decode()
            self.vault[path] = {"timestamp": ts, "archive": archive}
            kind = "gzip-archive"
        self.exp["legacy_backups"].append(iid)
        self.exp["legacy_backup_paths"][path] = kind

    # -- noise the reconciler must leave alone --------------------------------------------

    def user_provided(self, count: int) -> None:
        rnd = self.rnd
        for i in range(count):
            guid, t = rnd.uuid(), rnd.when(2, 700)
            space_guid = rnd.r.choice(self.spaces)[0]
            self.cf["service_instances"].append({
                "guid": guid, "created_at": iso(t), "updated_at": iso(t), "name": f"ups-{i:04d}",
                "tags": ["external"], "type": "user-provided",
                "syslog_drain_url": f"syslog-tls://logs.example.com:{6000 + i % 100}" if i % 3 == 0 else None,
                "route_service_url": None,
                "last_operation": {"type": "create", "state": "succeeded", "description": "Operation succeeded",
                                   "updated_at": iso(t), "created_at": iso(t)},
                "relationships": {"space": {"data": {"guid": space_guid}}},
                "metadata": self._meta(),
            })
            creds = {"uri": f"https://user:{rnd.password(16)}@ext.example.com", "username": "user"}
            self.cf["instance_credentials"][guid] = creds
            if i % 2 == 0:
                self.binding(guid, space_guid, creds, t + DAY, "app")
            self.exp["ignored_cf_instances"].append(guid)
            self.drift_ids.setdefault("user_provided", []).append(guid)

    def other_broker(self, count: int) -> None:
        rnd = self.rnd
        for i in range(count):
            guid, t = rnd.uuid(), rnd.when(2, 700)
            space_guid = rnd.r.choice(self.spaces)[0]
            self.cf_instance(guid, f"csb-{i:04d}", rnd.r.choice(self.other_plan_guids), space_guid, t, maintenance=None)
            if i % 2 == 0:
                self.binding(guid, space_guid, {"username": "csb", "password": rnd.password()}, t + DAY, "key")
            # The other broker keeps its own secrets in this Vault too: hands off.
            path = f"secret/csb/{guid}/credentials"
            self.vault[path] = {"password": rnd.password()}
            self.exp["untouched_paths"].append(path)
            self.exp["ignored_cf_instances"].append(guid)
            self.drift_ids.setdefault("other_broker", []).append(guid)

    def platform_deployments(self, count: int, foreign: int) -> None:
        rnd = self.rnd
        names = [b for base in NON_SERVICE_BASES for b in (base, f"{base}-x")][:count]
        if count > len(names):
            names += [f"{NON_SERVICE_BASES[i % 7]}-x{i}" for i in range(len(names), count)]
        for name in names:
            base = name.split("-")[0]
            manifest = (
                f"---\nname: {name}\nreleases:\n- name: {base}\n  version: \"1.0.{len(name)}\"\n"
                f"stemcells:\n- alias: default\n  os: ubuntu-jammy\n  version: {_q(STEMCELL_VERSION)}\n"
                f"instance_groups:\n- name: {base}\n  instances: 1\n  azs: [z1]\n  networks: [{{name: default}}]\n"
                f"  stemcell: default\n  vm_type: default\n  jobs:\n  - name: {base}\n    release: {base}\n"
                f"    properties:\n      admin_password: (({base}_admin_password))\n"
                f"update:\n  canaries: 1\n  max_in_flight: 1\n  canary_watch_time: 1000-30000\n"
                f"  update_watch_time: 1000-30000\n"
            )
            vms = [_vm(rnd, base, 0, rnd.ip(), rnd.when(5, 300))]
            self.deployments.append(_deployment(name, manifest, [(base, f"1.0.{len(name)}")], vms))
            self.exp["excluded_deployments"].append(name)
        for _ in range(foreign):
            name = f"service-instance_{rnd.uuid()}"
            manifest = (f"---\nname: {name}\nreleases:\n- name: mysql\n  version: \"2.1.0\"\n"
                        f"instance_groups:\n- name: mysql\n  instances: 1\n  jobs: []\n")
            vms = [_vm(rnd, "mysql", 0, rnd.ip(), rnd.when(5, 300))]
            self.deployments.append(_deployment(name, manifest, [("mysql", "2.1.0")], vms))
            self.exp["foreign_deployments"].append(name)
        self.vault["secret/handshake"] = {"knock": "knock"}
        self.exp["untouched_paths"].append("secret/handshake")

    # -- assembly ----------------------------------------------------------------------------

    def run(self) -> tuple[dict[str, Any], dict[str, Any]]:
        d, n, rnd = self.drift, self.n, self.rnd
        n_cf_orph = min(_count(d.cf_orphans, n), n)
        n_bosh_orph = min(_count(d.bosh_orphans, n), n - n_cf_orph)
        n_vault_orph = min(_count(d.vault_orphans, n), n - n_cf_orph - n_bosh_orph)
        n_creating = min(_count(d.provisions_in_flight, n), n - n_cf_orph - n_bosh_orph - n_vault_orph)
        n_matched = n - n_cf_orph - n_bosh_orph - n_vault_orph - n_creating
        n_ups, n_other = _count(d.user_provided, n), _count(d.other_broker, n)

        self.build_catalog()
        self.build_orgs(n_matched + n_cf_orph + n_creating + n_ups + n_other)

        ids = [rnd.uuid() for _ in range(n)]
        # Plans: a share on the plans whose names carry extra dashes, the rest spread evenly.
        n_dashed = min(_count(d.extra_dash_plans, n), n)
        plans = [DASHED_PLANS[i % len(DASHED_PLANS)] for i in range(n_dashed)]
        plans += [PLAIN_PLANS[i % len(PLAIN_PLANS)] for i in range(n - n_dashed)]
        rnd.r.shuffle(plans)

        matched = list(range(n_matched))
        order = matched[:]
        rnd.r.shuffle(order)
        state: dict[int, str] = {}
        pos = 0
        for kind in ("lost_index", "lost_tree", "lost_both", "stale_manifest", "missing_credentials",
                     "unrecoverable_credentials", "delete_in_flight", "string_stamped_history"):
            k = min(_count(getattr(d, kind), n), n_matched - pos)
            for i in order[pos:pos + k]:
                state[i] = kind
            pos += k
        with_tree = [i for i in matched if state.get(i) not in ("lost_tree", "lost_both")]
        rnd.r.shuffle(with_tree)
        legacy: dict[int, str] = {}
        pos = 0
        for kind in ("legacy_backups", "legacy_archives"):
            k = min(_count(getattr(d, kind), n), len(with_tree) - pos)
            for i in with_tree[pos:pos + k]:
                legacy[i] = kind
            pos += k
        upper = set(rnd.r.sample(matched, min(_count(d.upper_case_names, n), n_matched)))

        for i in matched:
            self.blacksmith_instance(ids[i], plans[i], role="matched", vault_state=state.get(i, "healthy"),
                                     legacy=legacy.get(i), upper=i in upper)
        j = n_matched
        for k in range(n_cf_orph):
            self.blacksmith_instance(ids[j], plans[j], role="cf_orphan_failed" if k % 2 else "cf_orphan_deleted")
            self.drift_ids.setdefault("cf_orphans", []).append(ids[j])
            j += 1
        for k in range(n_bosh_orph):
            self.blacksmith_instance(ids[j], plans[j], role="bosh_orphan_vault" if k % 2 else "bosh_orphan")
            self.drift_ids.setdefault("bosh_orphans", []).append(ids[j])
            j += 1
        for k in range(n_vault_orph):
            role = ("vault_orphan_full", "vault_orphan_index", "vault_orphan_tree")[k % 3]
            self.blacksmith_instance(ids[j], plans[j], role=role)
            self.drift_ids.setdefault("vault_orphans", []).append(ids[j])
            j += 1
        for _ in range(n_creating):
            self.blacksmith_instance(ids[j], plans[j], role="provision_in_flight")
            self.drift_ids.setdefault("provisions_in_flight", []).append(ids[j])
            j += 1
        self.user_provided(n_ups)
        self.other_broker(n_other)
        self.platform_deployments(d.non_service_deployments, d.foreign_deployments)
        if d.non_service_deployments:
            self.drift_ids["non_service_deployments"] = list(self.exp["excluded_deployments"])

        # The Director lists deployments sorted by name; CF lists by created_at.
        self.deployments.sort(key=lambda dep: dep["name"])
        self.cf["service_instances"].sort(key=lambda r: (r["created_at"], r["guid"]))
        self.cf["service_credential_bindings"].sort(key=lambda r: (r["created_at"], r["guid"]))
        self.cf["apps"].sort(key=lambda r: (r["created_at"], r["guid"]))
        vault = {"secret/db": self.index, **self.vault}
        self.exp["drift"] = self.drift_ids
        world = {
            "cf": self.cf,
            "bosh": {"name": "bosh", "deployments": self.deployments},
            "vault": vault,
            "meta": {"generator": {"version": GENERATOR_VERSION, "instances": n, "seed": self.seed,
                                   "drift": asdict(d)}},
        }
        return world, self.exp


def generate(instances: int, seed: int, drift: Drift | Mapping[str, Any] | None = None,
             ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return ``(world, expected)`` for ``instances`` Blacksmith instance ids (see module doc).
    ``drift`` is a :class:`Drift`, a mapping of Drift fields over the defaults, or None (defaults)."""
    if isinstance(instances, bool) or not isinstance(instances, int) or instances < 0:
        raise ValueError(f"instances: expected a whole number >= 0, got {instances!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed: expected an integer, got {seed!r}")
    if isinstance(drift, Mapping):
        known = [f.name for f in fields(Drift)]
        unknown = sorted(set(drift) - set(known))
        if unknown:
            raise ValueError(f"drift: unknown setting {unknown[0]!r}; accepted: {', '.join(known)}")
        drift = Drift(**drift)
    elif drift is not None and not isinstance(drift, Drift):
        raise ValueError(f"drift: expected a Drift, a mapping of its fields or None, got {type(drift).__name__}")
    # Millions of small containers and no cycles: the cyclic GC would only rescan them.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _World(instances, seed, drift if drift is not None else Drift()).run()
    finally:
        if was_enabled:
            gc.enable()


def expected_path(out: str | Path) -> Path:
    """``world.json`` -> ``world.expected.json``."""
    out = Path(out)
    return out.with_suffix(".expected.json") if out.suffix else out.with_name(out.name + ".expected.json")


def write(world: dict[str, Any], expected: dict[str, Any], out: str | Path) -> tuple[Path, Path]:
    """Write the world to ``out`` and the expected outcome beside it (compact JSON)."""
    out = Path(out)
    exp_out = expected_path(out)
    if out.is_dir():
        raise OSError(f"cannot write the world to {out}: it is a directory (give a file name)")
    out.parent.mkdir(parents=True, exist_ok=True)
    for path, data in ((out, world), (exp_out, expected)):
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            # dumps + one write: json.dump streams through the pure-Python encoder, many times slower
            text = json.dumps(data, separators=(",", ":"))
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(text)
            del text
            tmp.replace(path)  # never leave a half-written file under the real name
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise OSError(f"cannot write {path}: {exc.strerror or exc}") from None
    return out, exp_out


def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--instances", type=int, required=True, help="Blacksmith instance ids in the world")
    parser.add_argument("--seed", type=int, default=1, help="random seed (same seed, same world)")
    parser.add_argument("--out", required=True, help="world file to write; the expected outcome goes to "
                                                     "<out without suffix>.expected.json")
    parser.add_argument("--drift", default="default",
                        help="'default', 'none', or NAME=VALUE,... over the defaults "
                             f"(names: {', '.join(f.name for f in fields(Drift))})")


def run_generate(args: argparse.Namespace) -> int:
    try:
        drift = Drift.from_spec(args.drift)
        started = time.monotonic()
        world, expected = generate(args.instances, args.seed, drift)
        generated = time.monotonic()
        out, exp_out = write(world, expected, args.out)
    except (ValueError, OSError) as exc:
        print(f"generate: {exc}", file=sys.stderr)
        return 2
    summary = {
        "world": str(out), "expected": str(exp_out), "instances": args.instances, "seed": args.seed,
        "cf_instances": len(world["cf"]["service_instances"]), "deployments": len(world["bosh"]["deployments"]),
        "vault_paths": len(world["vault"]), "generate_s": round(generated - started, 2),
        "write_s": round(time.monotonic() - generated, 2), "cpu_s": round(time.process_time(), 2),
        "bytes": out.stat().st_size,
        "drift": {k: len(v) for k, v in expected["drift"].items()},
    }
    print(json.dumps(summary))
    return 0


def main_generate(argv: list[str] | None = None) -> int:
    """``python -m mockstack generate ...`` (the CLI module delegates here)."""
    parser = argparse.ArgumentParser(prog="python -m mockstack generate", description="Write a generated world")
    add_generate_arguments(parser)
    return run_generate(parser.parse_args(argv))
