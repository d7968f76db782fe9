"""Records of the domain logic: configuration, matches, plans, reports.

Pydantic records like ``reconciler.models`` so the workflow can store them between states
(``model_dump(mode="json")`` / ``model_validate``). Pure data.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import Field

from ..models import Record, VaultWrite
from .findings import FindingKind
from .remediation import RemediationPolicy

# --- configuration ---------------------------------------------------------------------

#: Real Blacksmith's non-service deployments: ``word`` or ``word-...`` is excluded.
DEFAULT_EXCLUDED_DEPLOYMENTS: tuple[str, ...] = (
    "blacksmith",
    "bosh",
    "cf",
    "concourse",
    "grafana",
    "prometheus",
    "shield",
    "vault",
)
#: Release name -> service kind, for release-based inference and credential recovery.
DEFAULT_RELEASE_SERVICES: dict[str, str] = {
    "redis": "redis",
    "redis-forge": "redis",
    "postgres": "postgresql",
    "postgresql": "postgresql",
    "postgres-forge": "postgresql",
    "postgresql-forge": "postgresql",
    "rabbitmq": "rabbitmq",
    "cf-rabbitmq": "rabbitmq",
    "rabbitmq-forge": "rabbitmq",
}
#: Root-record fields that belong to the user: kept as they are, never dropped.
USER_FIELDS: tuple[str, ...] = ("parameters", "original_request", "provision_params", "update_params", "context")
#: Fields that change on every run without meaning a change of content.
DEFAULT_VOLATILE_FIELDS: tuple[str, ...] = (
    "updated_at",
    "reconciled_at",
    "last_reconciled",
    "last_seen",
    "fetched_at",
    "timestamp",
)


class MatchingRule(Record):
    """A custom matching rule (``reconciler.matching.rules[]``, validated at config load)."""

    index: int = 0  # position in the configuration, for the decisions and errors
    name: str | None = None
    name_regex: str | None = None
    manifest_path: str | None = None
    service: str | None = None
    plan: str | None = None
    confidence: float = Field(default=0.6, gt=0.0, le=1.0)
    before: bool = False
    directors: list[str] = Field(default_factory=list)
    foundations: list[str] = Field(default_factory=list)

    @property
    def label(self) -> str:
        return f"rule {self.index} {self.name!r}" if self.name else f"rule {self.index}"


class DomainConfig(Record):
    excluded_deployments: list[str] = Field(default_factory=lambda: list(DEFAULT_EXCLUDED_DEPLOYMENTS))
    release_services: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_RELEASE_SERVICES))
    history_limit: int = Field(default=50, ge=1, le=10_000)
    #: Matches below this confidence are reported but get no Vault writes.
    min_confidence: float = Field(default=0.5, ge=0.0, le=1.0)
    volatile_fields: list[str] = Field(default_factory=lambda: list(DEFAULT_VOLATILE_FIELDS))
    mount: str = "secret"
    #: Custom matching rules, in configuration order.
    rules: list[MatchingRule] = Field(default_factory=list)
    #: director name -> the foundations whose instances its deployments may belong to (absent: all).
    director_foundations: dict[str, list[str]] = Field(default_factory=dict)
    #: finding kind -> what is done about it (reconciler.remediation; absent: report)
    remediation: dict[str, RemediationPolicy] = Field(default_factory=dict)

    def serves(self, director: str, foundation: str | None) -> bool:
        """True when ``director``'s deployments may belong to instances of ``foundation``."""
        allowed = self.director_foundations.get(director)
        return allowed is None or foundation is None or foundation in allowed

    @classmethod
    def from_settings(cls, settings: Any) -> DomainConfig:
        """Read ``settings.reconciler.matching.{excluded_deployments, release_services}`` and,
        where present, ``settings.reconciler.history_limit``; anything absent keeps its default."""
        kwargs: dict[str, Any] = {}
        rec = getattr(settings, "reconciler", None)
        matching = getattr(rec, "matching", None)
        excluded = getattr(matching, "excluded_deployments", None)
        if excluded is not None:
            kwargs["excluded_deployments"] = list(excluded)
        services = getattr(matching, "release_services", None)
        if isinstance(services, Mapping):
            kwargs["release_services"] = dict(services)
        for name in ("history_limit", "min_confidence"):
            value = getattr(matching, name, None)
            if value is None:
                value = getattr(rec, name, None)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                kwargs[name] = value
        rules = getattr(matching, "rules", None)
        if isinstance(rules, list | tuple):
            kwargs["rules"] = [
                MatchingRule(index=i, **(r.model_dump() if hasattr(r, "model_dump") else dict(r)))
                for i, r in enumerate(rules)
            ]
        serves = {str(getattr(d, "name", "")): list(getattr(d, "foundations", None) or [])
                  for d in getattr(settings, "bosh_directors", None) or []}
        kwargs["director_foundations"] = {name: fs for name, fs in serves.items() if fs}
        policies = getattr(rec, "remediation", None)
        if policies is not None:
            out: dict[str, RemediationPolicy] = {}
            for kind in FindingKind:
                p = getattr(policies, kind.remediation_key, None)
                if p is None:
                    continue
                fields: dict[str, Any] = {"action": getattr(p, "action", "report")}
                if getattr(p, "archive_after", None) is not None:
                    fields["archive_after_s"] = p.archive_after
                if getattr(p, "after_runs", None) is not None:
                    fields["after_runs"] = p.after_runs
                out[kind.value] = RemediationPolicy(**fields)
            kwargs["remediation"] = out
        vault = getattr(settings, "vault", None)
        mount = getattr(vault, "mount", None)
        if isinstance(mount, str) and mount:
            kwargs["mount"] = mount.strip("/")
        return cls(**kwargs)


# --- matching --------------------------------------------------------------------------


class Strategy(StrEnum):
    UUID_PATTERN = "uuid_pattern"  # <catalog plan id>-<uuid>
    MANIFEST_METADATA = "manifest_metadata"  # properties.blacksmith / meta.params.instance_id
    INDEX = "index"  # secret/db entry names this deployment
    UUID_SUFFIX = "uuid_suffix"  # name ends in a known instance's UUID, prefix not in catalog
    NAME_PATTERN = "name_pattern"  # a known instance's UUID appears elsewhere in the name
    RELEASE = "release"  # releases say which service; no instance id
    RULE = "custom_rule"  # a reconciler.matching.rules[] entry (its own confidence)


CONFIDENCE: dict[Strategy, float] = {
    Strategy.UUID_PATTERN: 1.0,
    Strategy.MANIFEST_METADATA: 0.9,
    Strategy.INDEX: 0.8,
    Strategy.UUID_SUFFIX: 0.7,
    Strategy.NAME_PATTERN: 0.5,
    Strategy.RELEASE: 0.3,
    Strategy.RULE: 0.6,  # the default; each rule says its own
}


class Evidence(Record):
    strategy: Strategy
    instance_id: str | None = None
    plan_id: str | None = None
    service_id: str | None = None
    detail: str = ""
    confidence: float | None = None  # a custom rule's own confidence (else the strategy's)
    rule: str | None = None  # the custom rule's label

    @property
    def weight(self) -> float:
        return self.confidence if self.confidence is not None else CONFIDENCE[self.strategy]


class Match(Record):
    """A deployment identified as the deployment of ``instance_id``."""

    instance_id: str
    deployment_name: str
    director: str = ""
    strategy: Strategy
    confidence: float
    reason: str
    service_id: str | None = None
    plan_id: str | None = None
    in_cf: bool = False  # the instance is a CF instance of our broker (this run's CF data)
    foundation: str | None = None  # the CF foundation of the instance (None: not known)
    evidence: list[Evidence] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class Conflict(Record):
    """Evidence that disagrees; never resolved silently: both facts are kept."""

    kind: str  # "instance_mismatch" | "duplicate_deployments" | "duplicate_cf_instance"
    deployments: list[str] = Field(default_factory=list)
    instance_ids: list[str] = Field(default_factory=list)
    facts: list[str] = Field(default_factory=list)


class UnidentifiedDeployment(Record):
    """A deployment that is not excluded but not tied to any instance id."""

    name: str
    director: str = ""
    service_hint: str | None = None  # from release-based inference
    strategy: Strategy | None = None
    confidence: float = 0.0
    reason: str = ""


class MatchResult(Record):
    matches: list[Match] = Field(default_factory=list)
    conflicts: list[Conflict] = Field(default_factory=list)
    unmatched_instances: list[str] = Field(default_factory=list)  # CF instance ids, no deployment
    unidentified_deployments: list[UnidentifiedDeployment] = Field(default_factory=list)
    excluded_deployments: list[str] = Field(default_factory=list)
    malformed_manifests: dict[str, str] = Field(default_factory=dict)  # deployment -> parse error
    ignored_instances: dict[str, str] = Field(default_factory=dict)  # CF guid -> why ignored
    scan_failures: dict[str, str] = Field(default_factory=dict)  # unidentified deployment -> scan error
    conflicted_instances: list[str] = Field(default_factory=list)
    foundations: dict[str, str] = Field(default_factory=dict)  # CF instance id -> the foundation Vault's is of
    twin_instances: list[str] = Field(default_factory=list)  # "<foundation>:<id>": the same guid elsewhere
    #: instance id -> the operation the broker has in flight (CF last_operation, index status):
    #: no repair, no orphan mark, no index change for it this run
    in_flight: dict[str, str] = Field(default_factory=dict)
    failed_provisions: list[str] = Field(default_factory=list)  # CF create failed, no deployment

    def by_instance(self) -> dict[str, Match]:
        return {m.instance_id: m for m in self.matches}

    def by_deployment(self) -> dict[str, Match]:
        return {m.deployment_name: m for m in self.matches}


# --- planning --------------------------------------------------------------------------


class InstancePlan(Record):
    instance_id: str
    deployment_name: str | None = None
    writes: list[VaultWrite] = Field(default_factory=list)
    changed: bool = False
    changes: list[str] = Field(default_factory=list)  # "<path>: <what>", never a value
    needs_credential_recovery: bool = False
    credential_recovery_reason: str = ""
    credential_recovery_deferred: bool = False  # no scan this run (BOSH down, scan failed): try again next run
    credentials_recovered: bool = False
    missing_binding_credentials: list[str] = Field(default_factory=list)  # binding ids
    skipped: str = ""  # why nothing was planned (conflict, invalid id, ...)
    in_flight: str = ""  # the broker's operation in flight (then ``skipped`` says so too)
    history_converted: int = 0  # string-stamped history entries turned into Unix seconds
    notes: list[str] = Field(default_factory=list)


# --- index -----------------------------------------------------------------------------


class IndexObservation(Record):
    """What this run learned about one instance, for ``secret/db``."""

    instance_id: str
    service_id: str | None = None
    plan_id: str | None = None
    deployment_name: str | None = None
    source: str = "cf"  # "cf" | "bosh"
    organization_guid: str | None = None
    space_guid: str | None = None
    organization_name: str | None = None
    space_name: str | None = None
    instance_name: str | None = None
    created: int | None = None  # Unix seconds (CF's created_at), the broker's ``created``
    status: str | None = None  # for an entry we add: what CF says (``provisioned``)
    in_flight: str = ""  # the broker's operation in flight: the entry is left alone
    deployment_known: bool = True  # False: BOSH did not answer, so "no deployment" means "unknown"
    foundation: str | None = None  # the CF foundation of the instance
    director: str | None = None  # the BOSH director of its deployment


class NameMismatch(Record):
    """A running deployment whose name is not the ``<plan_id>-<instance_id>`` the broker derives."""

    instance_id: str
    deployment_name: str
    derived_name: str
    advice: str = ""


class ValidationIssue(Record):
    # missing_field | invalid_key | not_normalised | legacy_name | duplicate_key | duplicate_deployment | not_a_map
    kind: str
    key: str
    detail: str = ""


class ValidationReport(Record):
    entries: int = 0
    changed: bool = False  # False: the merged index equals the current one; write nothing
    issues: list[ValidationIssue] = Field(default_factory=list)
    added: list[str] = Field(default_factory=list)
    updated: list[str] = Field(default_factory=list)
    orphan_cleared: list[str] = Field(default_factory=list)  # entries whose old ``orphaned`` map we removed
    in_flight: list[str] = Field(default_factory=list)  # left alone: the broker's operation is under way
    left_for_broker: list[str] = Field(default_factory=list)  # no deployment: never (re)added, never touched
    name_mismatch: list[NameMismatch] = Field(default_factory=list)
    name_mismatch_restored: list[str] = Field(default_factory=list)  # entries the sweep removed, put back

    def count(self, kind: str) -> int:
        return sum(1 for i in self.issues if i.kind == kind)


# --- orphans ---------------------------------------------------------------------------


OrphanKind = FindingKind  # the earlier name of the finding kinds (domain/findings.py)


class OrphanCandidate(Record):
    kind: OrphanKind
    key: str  # instance id (cf, vault) or deployment name (bosh)
    instance_id: str | None = None
    deployment_name: str | None = None
    director: str | None = None
    foundation: str | None = None
    reason: str = ""


class OrphanUpdate(Record):
    state: dict[str, dict[str, dict[str, Any]]]  # {kind: {key: entry}} for each FindingKind
    newly_orphaned: dict[str, list[str]] = Field(default_factory=dict)
    resolved: dict[str, list[str]] = Field(default_factory=dict)
    skipped: dict[str, str] = Field(default_factory=dict)  # kind -> why not evaluated this run
    evaluated_at: str = ""  # the run's time: last_seen of every finding this run saw
