"""Typed records that cross module boundaries.

Adapters produce the source records (CF, BOSH); domain logic consumes them and produces
plans; the workflow stores them as JSON between states (``model_dump(mode="json")`` /
``model_validate``). Pure data: no I/O here.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


# --- Cloud Foundry --------------------------------------------------------------------


class CatalogPlan(Record):
    """A plan of our broker as CF knows it; ``plan_id``/``service_id`` are the broker's ids."""

    foundation: str
    plan_guid: str  # CF guid (not a broker id)
    plan_id: str  # broker_catalog.id of the plan, e.g. "redis-standalone"
    plan_name: str
    service_guid: str
    service_id: str  # broker_catalog.id of the offering, e.g. "redis"
    service_name: str
    # the offering's broker_catalog.features.instances_retrievable: CF can fetch instance parameters
    instances_retrievable: bool = False


class CFInstance(Record):
    """A managed service instance of our broker in one CF foundation."""

    foundation: str
    guid: str  # the OSBAPI instance_id (lower-case UUID)
    name: str
    service_id: str
    plan_id: str
    service_name: str = ""
    plan_name: str = ""
    space_guid: str = ""
    space_name: str = ""
    organization_guid: str = ""
    organization_name: str = ""
    created_at: str = ""
    updated_at: str = ""
    last_operation: dict[str, Any] = Field(default_factory=dict)  # {type, state, description, ...}
    maintenance_info: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    binding_guids: list[str] = Field(default_factory=list)


class CFBinding(Record):
    """A service credential binding (type app or key). ``credentials`` is secret: only
    filled when credential recovery asked for the binding's details."""

    foundation: str
    guid: str
    instance_guid: str
    name: str = ""
    type: str = "app"
    app_guid: str = ""
    app_name: str = ""
    created_at: str = ""
    credentials: dict[str, Any] | None = None


# --- BOSH -----------------------------------------------------------------------------


class NameVersion(Record):
    name: str
    version: str


class BoshDeployment(Record):
    """An entry of ``GET /deployments`` on one director."""

    director: str
    name: str
    releases: list[NameVersion] = Field(default_factory=list)
    stemcells: list[NameVersion] = Field(default_factory=list)
    teams: list[str] = Field(default_factory=list)
    locked: bool = False


class VM(Record):
    """One VM of a deployment (from the vms task's NDJSON or from /instances)."""

    instance_group: str  # job_name / job
    index: int | None = None
    id: str = ""  # instance id
    ips: list[str] = Field(default_factory=list)
    dns: list[str] = Field(default_factory=list)
    az: str | None = None
    vm_cid: str | None = None
    agent_id: str | None = None
    process_state: str = ""
    active: bool | None = None


class DeploymentDetail(Record):
    """What a scan learns about one deployment: its manifest text and VMs."""

    director: str
    name: str
    manifest_text: str | None = None  # raw YAML as the Director stored it; None if never deployed
    releases: list[NameVersion] = Field(default_factory=list)
    stemcells: list[NameVersion] = Field(default_factory=list)
    vms: list[VM] = Field(default_factory=list)
    fetched_at: str = ""  # ISO-8601 UTC
    error: str | None = None  # set when the scan of this deployment failed (recorded, skipped)


# --- Vault ----------------------------------------------------------------------------


class VaultWrite(Record):
    """One planned Vault write. ``path`` is logical (``secret/<id>/manifest``); ``data`` the
    complete new secret; ``cas`` the version it was planned against (0 = must not exist,
    None = KV v1 or no check)."""

    path: str
    data: dict[str, Any]
    cas: int | None = None
    reason: str = ""


class SourceStatus(StrEnum):
    """How a source fared in this run; orphan marking needs ``ok`` evidence."""

    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"
