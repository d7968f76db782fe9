"""The configuration models. Attribute names are the spec's key names; durations are float seconds.

Defaults: the spec's tables where they give one (basic settings, backup), otherwise the
values of the spec's ``blacksmith.conf`` example (concurrency, apis, retry, batch,
timeouts, metrics). Our own additions (matching, bosh, endpoints) are documented in
docs/configuration.md.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import os
import re
import tempfile
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from annotated_types import Ge, Gt, Le
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, create_model, model_validator

from ..domain.findings import FindingKind
from ..errors import ConfigError
from ..secrets import CertRef, Secret
from .types import (
    Age,
    Bool,
    Duration,
    Fraction,
    Kind,
    Level,
    Multiplier,
    NonNegInt,
    Port,
    PosDuration,
    PosFloat,
    PosInt,
    Str,
    StrList,
    StrMap,
    parse_float,
    parse_int,
    parse_str,
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def deep_merge(base: Any, over: Any) -> Any:
    """``over`` merged into ``base``: mappings recursively, anything else replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = deep_merge(base[key], value) if key in base else value
        return out
    return over


# --- reconciler.* ------------------------------------------------------------------------


class Concurrency(_Model):
    max_concurrent: PosInt = 4
    max_deployments_per_run: NonNegInt = 100  # 0 = no limit
    queue_size: PosInt = 1000
    worker_pool_size: PosInt = 10
    cooldown_period: Duration = 2.0
    overlap_phases: Bool = True  # apply batches beside the scan, each once its deployments are scanned


class RateLimit(_Model):
    requests_per_second: PosFloat = 10.0
    burst: PosInt = 5
    wait_timeout: Duration = 5.0


class CircuitBreaker(_Model):
    enabled: Bool = True
    failure_threshold: PosInt = 5
    success_threshold: PosInt = 2
    timeout: PosDuration = 60.0
    max_concurrent: PosInt = 1


class ApiSettings(_Model):
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    circuit_breaker: CircuitBreaker = Field(default_factory=CircuitBreaker)
    timeout: PosDuration = 30.0
    max_connections: PosInt = 10
    keep_alive: Duration = 30.0


# Each API has its own defaults (the spec example's values); a partial override in the file
# or the environment is merged over these, not over the generic ApiSettings defaults.
API_DEFAULTS: dict[str, dict[str, Any]] = {
    "bosh": {
        "rate_limit": {"requests_per_second": 10, "burst": 5, "wait_timeout": 5.0},
        "circuit_breaker": {
            "enabled": True,
            "failure_threshold": 5,
            "success_threshold": 2,
            "timeout": 60.0,
            "max_concurrent": 1,
        },
        "timeout": 30.0,
        "max_connections": 10,
        "keep_alive": 30.0,
    },
    "cf": {
        "rate_limit": {"requests_per_second": 20, "burst": 10, "wait_timeout": 5.0},
        "circuit_breaker": {
            "enabled": True,
            "failure_threshold": 3,
            "success_threshold": 2,
            "timeout": 30.0,
            "max_concurrent": 2,
        },
        "timeout": 15.0,
        "max_connections": 20,
        "keep_alive": 30.0,
    },
    "vault": {
        "rate_limit": {"requests_per_second": 50, "burst": 20, "wait_timeout": 3.0},
        "circuit_breaker": {
            "enabled": True,
            "failure_threshold": 5,
            "success_threshold": 2,
            "timeout": 45.0,
            "max_concurrent": 3,
        },
        "timeout": 10.0,
        "max_connections": 30,
        "keep_alive": 30.0,
    },
}


class Apis(_Model):
    bosh: ApiSettings
    cf: ApiSettings
    vault: ApiSettings

    @model_validator(mode="before")
    @classmethod
    def _per_api_defaults(cls, data: Any) -> Any:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            return data  # pydantic reports the type error
        out = dict(data)
        for api, defaults in API_DEFAULTS.items():
            given = out.get(api, {})
            if isinstance(given, ApiSettings):
                continue
            out[api] = deep_merge(defaults, given) if isinstance(given, dict) else given
        return out

    def get(self, api: str) -> ApiSettings:
        """Settings of one API by name (``bosh``, ``cf``, ``vault``)."""
        if api not in API_DEFAULTS:
            raise KeyError(api)
        return getattr(self, api)


DEFAULT_RETRYABLE_ERRORS = ("timeout", "connection refused", "rate limit", "temporary")


class Retry(_Model):
    max_attempts: PosInt = 3
    initial_delay: Duration = 1.0
    max_delay: Duration = 30.0
    multiplier: Multiplier = 2.0
    jitter: Fraction = 0.1
    retryable_errors: StrList = Field(default_factory=lambda: list(DEFAULT_RETRYABLE_ERRORS))

    @model_validator(mode="after")
    def _delays(self) -> Retry:
        if self.initial_delay > self.max_delay:
            raise ValueError(
                f"initial_delay ({self.initial_delay:g}s) is greater than max_delay ({self.max_delay:g}s)"
            )
        return self


class Batch(_Model):
    size: PosInt = 10
    delay: Duration = 0.5
    max_parallel_batch: PosInt = 2
    adaptive_scaling: Bool = True
    min_size: PosInt = 5
    max_size: PosInt = 50

    @model_validator(mode="after")
    def _bounds(self) -> Batch:
        if not self.min_size <= self.size <= self.max_size:
            raise ValueError(
                f"needs min_size <= size <= max_size, got min_size={self.min_size}, "
                f"size={self.size}, max_size={self.max_size}"
            )
        return self


class Timeouts(_Model):
    reconciliation_run: PosDuration = 900.0
    deployment_scan: PosDuration = 300.0
    instance_discovery: PosDuration = 180.0
    vault_operations: PosDuration = 120.0
    health_check: PosDuration = 30.0
    shutdown_grace_period: Duration = 30.0


class Execution(_Model):
    # continue-as-new: one execution's budgets; past them a run hands over to a follow-up execution
    max_history_events: Annotated[int, BeforeValidator(parse_int), Ge(200), Kind("a whole number")] = 12500
    time_share: Annotated[float, BeforeValidator(parse_float), Gt(0), Le(1), Kind("a number")] = 0.6


class Metrics(_Model):
    enabled: Bool = True
    collection_interval: PosDuration = 30.0
    retention_period: PosDuration = 86400.0
    export_prometheus: Bool = True
    prometheus_port: Port = 9090


class Backup(_Model):
    enabled: Bool = True
    retention_count: NonNegInt = 5  # 0 = keep all
    retention_days: NonNegInt = 0  # 0 = no age limit
    compression_level: Level = 9
    cleanup_enabled: Bool = True
    backup_on_update: Bool = True
    backup_on_delete: Bool = True


# The real Blacksmith skips these deployments (and their "-x" variants: see Matching.is_excluded).
DEFAULT_EXCLUDED_DEPLOYMENTS = ("blacksmith", "bosh", "cf", "concourse", "grafana", "prometheus", "shield", "vault")
DEFAULT_RELEASE_SERVICES = {
    "redis": "redis",
    "postgres": "postgresql",
    "rabbitmq": "rabbitmq",
    "redis-forge": "redis",
    "postgresql-forge": "postgresql",
    "rabbitmq-forge": "rabbitmq",
}


#: Named groups a rule's ``name_regex`` may use: what each captured value means.
RULE_GROUPS = ("instance", "service", "plan")
_MANIFEST_PATH = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")


def _parse_rules(value: Any) -> Any:
    """A YAML list of rules, or JSON text of one (environment variable)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError("not JSON text of a list of rules") from None
    if isinstance(value, dict):
        raise ValueError("a single rule: give a list of rules (start each with '- ')")
    return value


def _parse_regex(value: Any) -> str:
    text = parse_str(value)
    if not text:
        raise ValueError("empty")
    try:
        compiled = re.compile(text)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression ({exc})") from None
    unknown = sorted(set(compiled.groupindex) - set(RULE_GROUPS))
    if unknown:
        raise ValueError(f"unknown named group(s) {', '.join(unknown)}")
    return text


def _parse_manifest_path(value: Any) -> str:
    text = parse_str(value)
    if not _MANIFEST_PATH.fullmatch(text):
        raise ValueError("not a dotted manifest path (meta.params.instance_id, properties.x.y)")
    return text


Regex = Annotated[
    str, BeforeValidator(_parse_regex), Kind("a regular expression (named groups: instance, service, plan)")
]
ManifestPath = Annotated[str, BeforeValidator(_parse_manifest_path), Kind("a dotted path: meta.params.instance_id")]


class MatchRule(_Model):
    """One custom matching rule: a deployment -> (service, plan, instance)."""

    name: Str | None = None  # shown in the match decisions; default "rule <index>"
    name_regex: Regex | None = None  # searched in the deployment name (anchor it with ^...$)
    manifest_path: ManifestPath | None = None  # where the manifest holds the instance id
    service: Str | None = None  # service id (default: the regex's 'service' group, else the catalog)
    plan: Str | None = None  # plan id (default: the regex's 'plan' group, else CF)
    confidence: Annotated[float, BeforeValidator(parse_float), Gt(0), Le(1), Kind("a number")] = 0.6
    before: Bool = False  # true: evaluated before the built-in strategies (and wins over them)
    directors: StrList = Field(default_factory=list)  # only deployments of these directors; empty = all
    foundations: StrList = Field(default_factory=list)  # only instances of these foundations; empty = all

    @model_validator(mode="after")
    def _one_source(self) -> MatchRule:
        if self.name_regex is None and self.manifest_path is None:
            raise ValueError("a rule needs name_regex (with an 'instance' group) or manifest_path")
        groups = set(re.compile(self.name_regex).groupindex) if self.name_regex else set()
        if self.manifest_path is None and "instance" not in groups:
            raise ValueError("name_regex has no (?P<instance>...) group and there is no manifest_path: "
                             "the rule cannot name an instance")
        if self.manifest_path is not None and "instance" in groups:
            raise ValueError("both name_regex's 'instance' group and manifest_path name the instance; keep one")
        return self


class Matching(_Model):
    excluded_deployments: StrList = Field(default_factory=lambda: list(DEFAULT_EXCLUDED_DEPLOYMENTS))
    release_services: StrMap = Field(default_factory=lambda: dict(DEFAULT_RELEASE_SERVICES))
    rules: Annotated[
        list[MatchRule], BeforeValidator(_parse_rules), Kind("a list of rules (env: JSON text)")
    ] = Field(default_factory=list)

    def is_excluded(self, deployment_name: str) -> bool:
        """True when the name equals an excluded word or starts with ``word-`` (``cf``, ``cf-mysql``).

        Note ``cfdev`` is not excluded (no dash), nor ``redis-cf``.
        """
        return any(deployment_name == w or deployment_name.startswith(w + "-") for w in self.excluded_deployments)

    def service_for_releases(self, release_names: list[str] | tuple[str, ...]) -> str | None:
        """The service a deployment's releases point to (first match in release order), or None."""
        for name in release_names:
            if name in self.release_services:
                return self.release_services[name]
        return None


NotificationEvent = Literal["run_failed", "run_with_errors", "new_findings", "findings_resolved",
                            "credentials_recovered", "circuit_opened", "remediation"]
NOTIFICATION_EVENTS: tuple[NotificationEvent, ...] = get_args(NotificationEvent)


def _parse_webhooks(value: Any) -> Any:
    """A YAML list of webhooks, or JSON text of one (environment variable)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError("not JSON text of a list of webhooks") from None
    if isinstance(value, dict):
        raise ValueError("a single webhook: give a list (start each with '- ')")
    return value


class Webhook(_Model):
    """One webhook: where to POST, which events, and the HMAC key signing the body."""

    url: Annotated[str, BeforeValidator(lambda v: _parse_url(v) if v else v), Kind("an http:// or https:// URL")]
    events: Annotated[list[NotificationEvent], Kind(f"a list of {', '.join(NOTIFICATION_EVENTS)}")] = \
        Field(default_factory=lambda: list(NOTIFICATION_EVENTS))  # default: every event
    # the HMAC-SHA256 key of X-Blacksmith-Signature (a reference in production)
    secret: Annotated[Secret, Kind("a string, or a reference ssm:/name, secretsmanager:name[#key]")] | None = None


class Notifications(_Model):
    webhooks: Annotated[
        list[Webhook], BeforeValidator(_parse_webhooks), Kind("a list of webhooks (env: JSON text)")
    ] = Field(default_factory=list)
    timeout: PosDuration = 5.0  # each delivery attempt
    attempts: PosInt = 3  # per webhook and event, with backoff (0.5 s, 1 s, 2 s ...)
# --- reconciler.remediation --------------------------------------------------------------

DEFAULT_ARCHIVE_AFTER_S = 30 * 86400.0
DEFAULT_AFTER_RUNS = 3


def _policy_shorthand(value: Any) -> Any:
    """``cf_orphan: report`` means ``cf_orphan: {action: report}``."""
    return {"action": value} if isinstance(value, str) else value


def _policy_model(kind: FindingKind) -> type[_Model]:
    """``reconciler.remediation.<kind>``: the actions the kind accepts; thresholds where one can act."""
    actions = kind.spec.actions
    fields: dict[str, Any] = {
        "action": (Annotated[Literal[actions], Kind(" or ".join(actions))], "report"),  # type: ignore[valid-type]
    }
    if set(actions) - {"report"}:
        fields["archive_after"] = (Age, DEFAULT_ARCHIVE_AFTER_S)  # the finding's age (since first seen)
        fields["after_runs"] = (PosInt, DEFAULT_AFTER_RUNS)  # consecutive complete runs that saw it
    name = "".join(part.title() for part in kind.remediation_key.split("_")) + "Policy"
    model = create_model(name, __base__=_Model, **fields)
    return model


_POLICIES = {kind: _policy_model(kind) for kind in FindingKind}

_REMEDIATION_FIELDS: dict[str, Any] = {
    kind.remediation_key: (Annotated[_POLICIES[kind], BeforeValidator(_policy_shorthand)],
                           Field(default_factory=_POLICIES[kind]))
    for kind in FindingKind}
if TYPE_CHECKING:  # built from the kinds at import: to the type checker, a model of unknown fields
    Remediation = _Model
else:
    Remediation = create_model("Remediation", __base__=_Model, **_REMEDIATION_FIELDS)
Remediation.__doc__ = ("Per finding kind, what is done about it: ``report`` (default, nothing else) or, for "
                       "Vault orphans only, ``archive`` (verified backup, then the instance's Vault data removed).")


class BoshScan(_Model):
    # task: GET /deployments/:d/vms?format=full (a BOSH task, full details);
    # instances: GET /deployments/:d/instances (no task, fewer details, cheaper).
    vm_details: Annotated[Literal["task", "instances"], Kind("task or instances")] = "instances"


class ReconcilerSettings(_Model):
    enabled: Bool = True
    interval: PosDuration = 3600.0
    debug: Bool = False
    max_concurrency: PosInt = 5
    batch_size: PosInt = 10
    retry_attempts: NonNegInt = 3
    retry_delay: Duration = 10.0
    cache_ttl: Duration = 300.0
    concurrency: Concurrency = Field(default_factory=Concurrency)
    apis: Apis = Field(default_factory=lambda: Apis.model_validate({}))
    retry: Retry = Field(default_factory=Retry)
    batch: Batch = Field(default_factory=Batch)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    execution: Execution = Field(default_factory=Execution)
    metrics: Metrics = Field(default_factory=Metrics)
    backup: Backup = Field(default_factory=Backup)
    matching: Matching = Field(default_factory=Matching)
    bosh: BoshScan = Field(default_factory=BoshScan)
    notifications: Notifications = Field(default_factory=Notifications)
    remediation: Remediation = Field(default_factory=Remediation)

    @model_validator(mode="after")
    def _archive_needs_backups(self) -> ReconcilerSettings:
        archiving = [key for key, policy in self.remediation if getattr(policy, "action", "report") == "archive"]
        if archiving and not (self.backup.enabled and self.backup.backup_on_delete):
            raise ValueError(f"remediation {', '.join(archiving)}: action 'archive' needs backup.enabled and "
                             "backup.backup_on_delete true (an instance's data is only removed after a verified "
                             "backup)")
        return self

    def schedule_expression(self) -> str:
        """``interval`` as an EventBridge rate expression (whole minutes, at least 1, rounded up)."""
        minutes = max(1, math.ceil(self.interval / 60 - 1e-9))
        if minutes % 1440 == 0:
            days = minutes // 1440
            return f"rate({days} day{'s' if days > 1 else ''})"
        if minutes % 60 == 0:
            hours = minutes // 60
            return f"rate({hours} hour{'s' if hours > 1 else ''})"
        return f"rate({minutes} minute{'s' if minutes > 1 else ''})"

    def template_parameters(self) -> dict[str, str]:
        """The ``template.yaml`` parameters this configuration decides (deploy time):
        ``sam deploy --parameter-overrides "$(python -m reconciler.config parameters FILE)"``.

        ``retry_attempts``/``retry_delay`` are the state machine's retries of a failed *step*
        (a phase or batch Lambda); ``retry.*`` are the adapters' retries of one HTTP call.
        """
        return {
            "ScheduleExpression": self.schedule_expression(),
            "ScheduleEnabled": "true" if self.enabled else "false",
            "RunTimeoutSeconds": str(max(MIN_RUN_TIMEOUT_S, math.ceil(self.timeouts.reconciliation_run))),
            "StateRetryMaxAttempts": str(self.retry_attempts),
            "StateRetryIntervalSeconds": str(max(1, math.ceil(self.retry_delay))),
        }


# template parameter -> the key (path under reconciler) it is derived from
TEMPLATE_PARAMETER_KEYS: dict[str, tuple[str, ...]] = {
    "ScheduleExpression": ("interval",),
    "ScheduleEnabled": ("enabled",),
    "RunTimeoutSeconds": ("timeouts", "reconciliation_run"),
    "StateRetryMaxAttempts": ("retry_attempts",),
    "StateRetryIntervalSeconds": ("retry_delay",),
}
MIN_RUN_TIMEOUT_S = 60  # template.yaml's RunTimeoutSeconds MinValue


# --- endpoints ---------------------------------------------------------------------------

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


def _parse_name(value: Any) -> str:
    text = parse_str(value)
    if not _NAME.fullmatch(text):
        raise ValueError("not a valid name")
    return text


def _parse_url(value: Any) -> str:
    text = parse_str(value)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or " " in text:
        raise ValueError("not an http(s) URL")
    if parts.username or parts.password:  # it would be printed by `show`, in logs and on the dashboard
        raise ValueError("credentials in the URL (user:password@) are not accepted; "
                         "set them in their own keys (client_id/client_secret, username/password, token)")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError("bad port") from None
    return text.rstrip("/")


Name = Annotated[str, BeforeValidator(_parse_name), Kind("a name of letters, digits, '.', '_' or '-' (max 63)")]
Url = Annotated[str, BeforeValidator(_parse_url), Kind("an http:// or https:// URL")]
SecretField = Annotated[Secret, Kind("a string, or a reference ssm:/name, secretsmanager:name[#key]")]
CACert = Annotated[CertRef, Kind("PEM text, a path to a PEM file, or a reference ssm:/name, secretsmanager:name")]

_CA_FILES: dict[str, str] = {}


class _Endpoint(_Model):
    ca_cert: CACert | None = None
    insecure_skip_verify: Bool = False

    @model_validator(mode="after")
    def _ca_exists(self) -> _Endpoint:
        ca = self.ca_cert
        if ca is not None and not ca.is_reference:
            text = ca.get()
            if "-----BEGIN" not in text and not os.path.isfile(text):
                raise ValueError("ca_cert is neither PEM text nor the path of an existing file")
        return self

    @property
    def skip_ssl_validation(self) -> bool:
        return self.insecure_skip_verify

    def tls_verify(self) -> bool | str:
        """What ``requests``/``hvac`` take as ``verify``: False, True, or a CA bundle path.

        PEM text (inline or from a reference) is written once to a private temp file.
        """
        if self.insecure_skip_verify:
            return False
        if self.ca_cert is None:
            return True
        text = self.ca_cert.get()
        if "-----BEGIN" not in text:
            if not os.path.isfile(text):
                raise ConfigError(f"ca_cert file {text!r} does not exist")
            return text
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        path = _CA_FILES.get(digest)
        if path is None or not os.path.isfile(path):
            fd, path = tempfile.mkstemp(prefix=f"ca-{digest}-", suffix=".pem")
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            _CA_FILES[digest] = path
        return path


class CFFoundation(_Endpoint):
    name: Name = "cf"
    api_url: Url
    uaa_url: Url | None = None  # default: discovered from the API root (links.uaa / links.login)
    client_id: Str
    client_secret: SecretField
    broker_name: Str | None = None
    broker_guid: Str | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_broker(cls, data: Any) -> Any:
        # Neither broker_name nor broker_guid: Blacksmith's usual registration name.
        if isinstance(data, dict) and data.get("broker_name") is None and data.get("broker_guid") is None:
            data = {**data, "broker_name": "blacksmith"}
        return data


class BoshDirector(_Endpoint):
    name: Name = "bosh"
    url: Url
    auth: Annotated[Literal["uaa", "basic"], Kind("uaa or basic")] = "uaa"
    uaa_url: Url | None = None  # default: from the Director's GET /info
    client_id: Str | None = None
    client_secret: SecretField | None = None
    username: Str | None = None
    password: SecretField | None = None
    # the CF foundations whose instances this director deploys (empty: all): a deployment is
    # only matched to an instance of one of them, and only their outages keep its findings open
    foundations: StrList = Field(default_factory=list)

    @model_validator(mode="after")
    def _auth(self) -> BoshDirector:
        if self.auth == "uaa" and (not self.client_id or self.client_secret is None):
            raise ValueError("auth 'uaa' needs client_id and client_secret")
        if self.auth == "basic" and (not self.username or self.password is None):
            raise ValueError("auth 'basic' needs username and password")
        return self


class VaultSettings(_Endpoint):
    address: Url | None = None
    auth: Annotated[Literal["token", "aws"], Kind("token or aws")] = "token"
    token: SecretField | None = None
    aws_role: Str | None = None  # Vault role for the AWS IAM auth method
    aws_mount: Str = "aws"  # where the AWS auth method is mounted
    aws_header_value: Str | None = None  # X-Vault-AWS-IAM-Server-ID, if the role requires it
    namespace: Str | None = None  # Vault Enterprise namespace
    mount: Str = "secret"  # the KV mount Blacksmith uses
    kv_version: Annotated[Literal["auto", "1", "2"], BeforeValidator(lambda v: str(v)), Kind("auto, 1 or 2")] = "auto"

    @model_validator(mode="after")
    def _auth(self) -> VaultSettings:
        if self.address is None:
            return self
        if self.auth == "token" and self.token is None:
            raise ValueError("auth 'token' needs token (or set VAULT_TOKEN)")
        if self.auth == "aws" and not self.aws_role:
            raise ValueError("auth 'aws' needs aws_role")
        return self


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, dict | BaseModel) else value


# --- the whole ---------------------------------------------------------------------------


class Settings(_Model):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_name=True, validate_by_alias=True)

    reconciler: ReconcilerSettings = Field(default_factory=ReconcilerSettings)
    cf_foundations: Annotated[list[CFFoundation], BeforeValidator(_one_or_many)] = Field(
        default_factory=list, alias="cf"
    )
    bosh_directors: Annotated[list[BoshDirector], BeforeValidator(_one_or_many)] = Field(
        default_factory=list, alias="bosh"
    )
    vault: VaultSettings = Field(default_factory=VaultSettings)

    _global_debug: bool = PrivateAttr(default=False)
    _warnings: tuple[str, ...] = PrivateAttr(default=())
    _source: str = PrivateAttr(default="defaults")

    @model_validator(mode="after")
    def _unique_names(self) -> Settings:
        for label, items in (("cf", self.cf_foundations), ("bosh", self.bosh_directors)):
            names = [item.name for item in items]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{label}: names must be unique, repeated: {', '.join(dupes)}")
        known = {f.name for f in self.cf_foundations}
        for d in self.bosh_directors:
            unknown = sorted(set(d.foundations) - known)
            if unknown:
                raise ValueError(f"bosh director {d.name!r}: foundations {', '.join(unknown)} are not configured; "
                                 f"accepted: {', '.join(sorted(known)) or 'none (no cf section)'}")
        return self

    @property
    def debug(self) -> bool:
        """True when ``reconciler.debug`` is on or ``BLACKSMITH_DEBUG`` is set true."""
        return self.reconciler.debug or self._global_debug

    @property
    def load_warnings(self) -> tuple[str, ...]:
        """Warnings found while loading (duplicate keys ...)."""
        return self._warnings

    @property
    def source(self) -> str:
        """Where the file part came from (a path, ``ssm:/name`` or ``defaults``)."""
        return self._source

    def foundation(self, name: str) -> CFFoundation:
        for item in self.cf_foundations:
            if item.name == name:
                return item
        raise ConfigError(f"no CF foundation named {name!r}; configured: {[f.name for f in self.cf_foundations]}")

    def director(self, name: str) -> BoshDirector:
        for item in self.bosh_directors:
            if item.name == name:
                return item
        raise ConfigError(f"no BOSH director named {name!r}; configured: {[d.name for d in self.bosh_directors]}")

    def require_endpoints(self, *, cf: bool = True, bosh: bool = True, vault: bool = True) -> None:
        """Raise one ConfigError listing every endpoint a run needs but the configuration lacks."""
        missing = []
        if cf and not self.cf_foundations:
            missing.append("no CF foundation: add a 'cf:' section or set BLACKSMITH_CF_API_URL")
        if bosh and not self.bosh_directors:
            missing.append("no BOSH director: add a 'bosh:' section or set BLACKSMITH_BOSH_URL")
        if vault and self.vault.address is None:
            missing.append("no Vault address: set vault.address, BLACKSMITH_VAULT_ADDR or VAULT_ADDR")
        if missing:
            raise ConfigError("configuration is missing endpoints:\n  - " + "\n  - ".join(missing))

    def security_warnings(self) -> list[str]:
        """One warning per endpoint with TLS verification off or plain http to a non-loopback host."""
        out = []
        endpoints: list[tuple[str, _Endpoint, str | None]] = [
            *((f"CF foundation {f.name!r}", f, f.api_url) for f in self.cf_foundations),
            *((f"BOSH director {d.name!r}", d, d.url) for d in self.bosh_directors),
        ]
        if self.vault.address is not None:
            endpoints.append(("Vault", self.vault, self.vault.address))
        for label, ep, url in endpoints:
            if ep.insecure_skip_verify:
                out.append(
                    f"TLS certificate verification is OFF for {label} ({url}): insecure_skip_verify is true; "
                    "anyone on the network path can impersonate it"
                )
            if url and url.startswith("http://") and not _is_loopback(url):
                out.append(f"{label} uses plain http ({url}): credentials travel unencrypted")
        return out


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
