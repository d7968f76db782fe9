"""Planning: the exact Vault writes that make one instance's tree true to CF and BOSH.

Rules (DESIGN.md §5):
- user fields of the root record (``parameters``, ``original_request``, ``provision_params``,
  ``update_params``, ``context``) are kept as they are;
- an existing credential value is never deleted or overwritten: only missing keys are added;
- volatile fields (``updated_at``, ``reconciled_at`` ...) are not content, so an unchanged
  instance plans no write at all; a history entry is added only when something changed,
  and the history is bounded;
- every write carries the ``cas`` version it was planned against (0: the path must not exist).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from ..models import VM, CatalogPlan, CFBinding, CFInstance, DeploymentDetail, Record, VaultWrite
from .broker import bound_history, history_in_broker_format, task_in_flight, task_record_decides, unix_seconds
from .credentials import recover_credentials
from .types import USER_FIELDS, DomainConfig, InstancePlan, Match, MatchResult
from .uuids import instance_path, is_allowed_write_path, normalize_uuid

#: ``{logical path: (data or None, version or None)}`` of one instance's current Vault tree.
Tree = Mapping[str, tuple[Mapping[str, Any] | None, int | None]]


def stable(data: Mapping[str, Any] | None, volatile: Sequence[str], also: Sequence[str] = ()) -> dict[str, Any]:
    """``data`` without the fields that change without meaning a change."""
    skip = set(volatile) | set(also)
    return {k: v for k, v in (data or {}).items() if k not in skip}


def vm_summary(vm: VM) -> dict[str, Any]:
    """What the metadata keeps of a VM: identity and addresses, not its fleeting state."""
    return {
        "instance_group": vm.instance_group,
        "index": vm.index,
        "id": vm.id,
        "ips": list(vm.ips),
        "dns": list(vm.dns),
        "az": vm.az,
        "vm_cid": vm.vm_cid,
    }


def _sorted_vms(vms: Sequence[VM]) -> list[VM]:
    return sorted(vms, key=lambda v: (v.instance_group, v.index if v.index is not None else -1, v.id))


class _Planner:
    def __init__(self, uid: str, current: Tree, cfg: DomainConfig, plan: InstancePlan):
        self.uid, self.current, self.cfg, self.plan = uid, current, cfg, plan
        self.pending: list[VaultWrite] = []
        self.changed_parts: list[str] = []

    def path(self, *parts: str) -> str:
        return instance_path(self.uid, *parts, mount=self.cfg.mount)

    def existing(self, path: str) -> tuple[dict[str, Any] | None, int | None]:
        data, version = self.current.get(path, (None, None))
        return (dict(data) if isinstance(data, Mapping) else None), version

    def cas(self, path: str) -> int | None:
        data, version = self.current.get(path, (None, None))
        if path not in self.current:
            return 0
        return version  # None: KV v1, no check-and-set

    def write(self, path: str, data: dict[str, Any], part: str, reason: str) -> None:
        if not is_allowed_write_path(path, self.cfg.mount):  # belt and braces: never leave our tree
            raise ValueError("planned a Vault write outside the reconciler's paths")
        self.pending.append(VaultWrite(path=path, data=data, cas=self.cas(path), reason=reason))
        self.changed_parts.append(part)
        self.plan.changes.append(f"{part}: {reason}")


def _set(record: dict[str, Any], key: str, value: Any) -> None:
    if value not in (None, ""):  # never replace a value with nothing
        record[key] = value


def merge_record(
    old: Mapping[str, Any] | None,
    *,
    core: Mapping[str, Any],
    extra: Mapping[str, Any] = {},  # noqa: B006 - read only
    fill: Mapping[str, Any] = {},  # noqa: B006 - read only
    volatile: Sequence[str] = (),
    ignore: Sequence[str] = (),
) -> tuple[dict[str, Any], bool]:
    """Merge what we know into a record without churning it.

    ``core`` fields are ours: set when they differ. ``fill`` fields are set only when absent
    or empty. ``extra`` fields enrich the record: kept up to date once present, but added
    only when the record is written anyway, so a healthy estate is not rewritten just to
    gain a new field. Every other field of ``old`` is kept as it is.
    Returns (new record, changed) where changed ignores ``volatile`` and ``ignore`` fields.
    """
    new = dict(old or {})
    for k, v in core.items():
        _set(new, k, v)
    for k, v in fill.items():
        if new.get(k) in (None, ""):
            _set(new, k, v)
    for k, v in extra.items():
        if k in new:
            _set(new, k, v)
    changed = old is None or stable(new, volatile, ignore) != stable(old, volatile, ignore)
    if changed:
        for k, v in extra.items():
            _set(new, k, v)
    return new, changed


def _context(cf: CFInstance) -> dict[str, Any]:
    return {
        k: v
        for k, v in {
            "platform": "cloudfoundry",
            "organization_guid": cf.organization_guid,
            "space_guid": cf.space_guid,
            "organization_name": cf.organization_name,
            "space_name": cf.space_name,
            "instance_name": cf.name,
        }.items()
        if v
    }


def plan_instance(
    instance_id: str,
    *,
    current: Tree,
    now: str,
    cf: CFInstance | None = None,
    deployment: DeploymentDetail | None = None,
    match: Match | None = None,
    bindings: Sequence[CFBinding] = (),
    parameters: Mapping[str, Any] | None = None,
    index_entry: Mapping[str, Any] | None = None,
    bosh_available: bool = True,
    cfg: DomainConfig | None = None,
) -> InstancePlan:
    """The Vault writes for one instance, given its current tree ``{path: (data, version)}``.

    ``deployment`` is the scanned deployment (None: no deployment, or BOSH not available);
    ``parameters`` the instance's CF parameters when fetched; ``now`` an ISO-8601 timestamp.
    """
    cfg = cfg or DomainConfig()
    uid = normalize_uuid(instance_id)
    plan = InstancePlan(instance_id=uid or str(instance_id)[:80])
    if uid is None:
        plan.skipped = "instance id is not a UUID; nothing may be written for it"
        return plan
    match, deployment = _trusted_evidence(plan, match, deployment, cfg.min_confidence)
    scanned = deployment if deployment is not None and not deployment.error else None
    plan.deployment_name = (deployment.name if deployment else None) or (match.deployment_name if match else None)

    p = _Planner(uid, current, cfg, plan)
    stamp = unix_seconds(now)
    if _skipped_in_flight(p, cf, stamp):
        return plan
    _plan_root(p, now, cf=cf, deployment=deployment, match=match, parameters=parameters, index_entry=index_entry)
    _plan_deployment_record(p, cf)
    if scanned is not None and scanned.manifest_text is not None:
        _plan_manifest(p, scanned, now)
    service = (cf.service_id if cf else None) or (match.service_id if match else None) or (
        (index_entry or {}).get("service_id"))
    _plan_credentials(p, service, scanned=scanned, deployment=deployment, bosh_available=bosh_available)
    for b in bindings:
        _plan_binding(p, b, now)
    _plan_metadata(p, scanned, now, stamp, unscanned=deployment is not None and scanned is None)
    plan.writes = p.pending
    plan.changed = bool(p.pending)
    return plan


def _trusted_evidence(
    plan: InstancePlan, match: Match | None, deployment: DeploymentDetail | None, min_confidence: float
) -> tuple[Match | None, DeploymentDetail | None]:
    """The match and deployment whose data may be written (a weak match: neither), noted in ``plan``."""
    if match is not None and match.confidence < min_confidence:
        plan.notes.append(
            f"deployment {match.deployment_name} matched only by {match.strategy} "
            f"(confidence {match.confidence} < {min_confidence}); its data is not written"
        )
        match, deployment = None, None
    if deployment is not None and deployment.error:
        plan.notes.append(f"deployment {deployment.name} could not be scanned this run; infrastructure kept as is")
    return match, deployment


def _skipped_in_flight(p: _Planner, cf: CFInstance | None, stamp: int | None) -> bool:
    """True (and the plan skipped) when the broker's operation is under way: not drift,
    nothing to repair now."""
    task, _ = p.existing(p.path("task"))
    busy = task_in_flight(task, cf.last_operation if cf else None, now=stamp if stamp is not None else 0)
    if busy:
        p.plan.in_flight = busy
        p.plan.skipped = f"in flight: {busy}"
    return bool(busy)


def _root_fields(
    p: _Planner,
    cf: CFInstance | None,
    deployment: DeploymentDetail | None,
    match: Match | None,
    parameters: Mapping[str, Any] | None,
    index_entry: Mapping[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(core, extra, fill) of the root record, for :func:`merge_record`."""
    core: dict[str, Any] = {"instance_id": p.uid, "deployment_name": p.plan.deployment_name}
    extra: dict[str, Any] = {"bosh_director": deployment.director if deployment else None}
    fill: dict[str, Any] = {}
    if cf is not None:
        core.update(
            service_id=cf.service_id,
            plan_id=cf.plan_id,
            instance_name=cf.name,
            organization_guid=cf.organization_guid,
            organization_name=cf.organization_name,
            space_guid=cf.space_guid,
            space_name=cf.space_name,
        )
        extra.update(service_name=cf.service_name, plan_name=cf.plan_name, foundation=cf.foundation)
        fill.update(created_at=cf.created_at, context=_context(cf))
    else:  # BOSH-only: what the match and the index know, never overriding the record
        entry = index_entry or {}
        fill["service_id"] = (match.service_id if match else None) or entry.get("service_id")
        fill["plan_id"] = (match.plan_id if match else None) or entry.get("plan_id")
    if parameters is not None:
        fill["parameters"] = dict(parameters)
    return core, extra, fill


def _plan_root(
    p: _Planner,
    now: str,
    *,
    cf: CFInstance | None,
    deployment: DeploymentDetail | None,
    match: Match | None,
    parameters: Mapping[str, Any] | None,
    index_entry: Mapping[str, Any] | None,
) -> None:
    """``secret/<id>``: the instance record; the user's fields never dropped, never rewritten."""
    vol = p.cfg.volatile_fields
    root_path = p.path()
    old_root, _ = p.existing(root_path)
    core, extra, fill = _root_fields(p, cf, deployment, match, parameters, index_entry)
    root, _ = merge_record(old_root, core=core, extra=extra, fill=fill, volatile=vol)
    for f in USER_FIELDS:
        if old_root is not None and f in old_root:
            root[f] = old_root[f]
    if old_root is None or stable(root, vol) != stable(old_root, vol):
        root["updated_at"] = now
        root["reconciled_at"] = now
        p.write(root_path, root, "root", "created" if old_root is None else "instance record updated")


def _plan_deployment_record(p: _Planner, cf: CFInstance | None) -> None:
    """``secret/<id>/deployment``: the broker prefers it for bindings; kept true where it exists."""
    dep_path = p.path("deployment")
    old_dep, _ = p.existing(dep_path)
    if old_dep is None:
        return
    truth: dict[str, Any] = {"instance_id": p.uid, "deployment_name": p.plan.deployment_name}
    if cf is not None:
        truth.update(service_id=cf.service_id, plan_id=cf.plan_id, organization_guid=cf.organization_guid,
                     space_guid=cf.space_guid)
    dep_record, dep_changed = merge_record(old_dep, core=truth, volatile=p.cfg.volatile_fields)
    if dep_changed:
        wrong = sorted(k for k, v in truth.items() if v not in (None, "") and old_dep.get(k) != v)
        p.write(dep_path, dep_record, "deployment", "deployment record corrected: " + ", ".join(wrong))


def _plan_manifest(p: _Planner, scanned: DeploymentDetail, now: str) -> None:
    """``secret/<id>/manifest``: the deployment's manifest as BOSH has it."""
    man_path = p.path("manifest")
    old_man, _ = p.existing(man_path)
    man, changed = merge_record(
        old_man,
        core={"manifest": scanned.manifest_text},
        extra={"deployment_name": scanned.name, "director": scanned.director},
        volatile=p.cfg.volatile_fields,
    )
    if not changed:
        return
    man["updated_at"] = now
    if old_man is None:
        what = "stored"
    elif old_man.get("manifest") != scanned.manifest_text:
        what = "manifest changed in BOSH"
    else:
        what = "record updated"
    p.write(man_path, man, "manifest", what)


def _plan_credentials(
    p: _Planner,
    service: str | None,
    *,
    scanned: DeploymentDetail | None,
    deployment: DeploymentDetail | None,
    bosh_available: bool,
) -> None:
    """``secret/<id>/credentials``: recovered from the manifest and VMs when missing, never
    overwritten; when they cannot be recovered now, the plan says why."""
    cred_path = p.path("credentials")
    old_cred, _ = p.existing(cred_path)
    if old_cred:
        return
    plan = p.plan
    if scanned is None:
        if not bosh_available:
            plan.needs_credential_recovery = plan.credential_recovery_deferred = True
            plan.credential_recovery_reason = "credentials missing; BOSH was not available this run"
        elif deployment is not None:
            plan.needs_credential_recovery = plan.credential_recovery_deferred = True
            plan.credential_recovery_reason = "credentials missing; the deployment could not be scanned this run"
        else:  # a CF orphan: nothing deployed, nothing to recover
            plan.notes.append("no credentials and no deployment: nothing to recover them from")
        return
    creds, reason = recover_credentials(
        service, scanned.manifest_text, scanned.vms, p.uid, release_services=p.cfg.release_services
    )
    if creds is None:
        plan.needs_credential_recovery = True
        plan.credential_recovery_reason = reason
    else:
        plan.credentials_recovered = True
        p.write(cred_path, creds, "credentials", "recovered from the manifest and VM addresses")


def _plan_binding(p: _Planner, b: CFBinding, now: str) -> None:
    """``secret/<id>/bindings/<bid>/{credentials,metadata}`` of one CF binding."""
    bid = normalize_uuid(b.guid)
    if bid is None:
        p.plan.notes.append("a binding guid is not a UUID; binding skipped")
        return
    _plan_binding_credentials(p, bid, b)
    bm_path = p.path("bindings", bid, "metadata")
    old_bm, _ = p.existing(bm_path)
    bm, changed = merge_record(
        old_bm,
        core={"binding_id": bid, "instance_id": p.uid, "app_guid": b.app_guid},
        extra={"name": b.name, "type": b.type, "app_name": b.app_name},
        fill={"created_at": b.created_at},
        volatile=p.cfg.volatile_fields,
    )
    if changed:
        bm["updated_at"] = now
        p.write(bm_path, bm, f"bindings/{bid}/metadata", "binding metadata updated" if old_bm else "stored")


def _plan_binding_credentials(p: _Planner, bid: str, b: CFBinding) -> None:
    """Only the keys Vault lacks are added from CF's binding details; none is overwritten."""
    bc_path = p.path("bindings", bid, "credentials")
    old_bc, _ = p.existing(bc_path)
    if isinstance(b.credentials, Mapping) and b.credentials:
        merged = dict(old_bc or {})
        added = [k for k in b.credentials if k not in merged]
        for k in added:
            merged[k] = b.credentials[k]
        if old_bc is None or added:
            why = "restored from CF binding details" if not old_bc else f"{len(added)} missing field(s) added"
            p.write(bc_path, merged, f"bindings/{bid}/credentials", why)
    elif not old_bc:
        p.plan.missing_binding_credentials.append(bid)


def _infrastructure(scanned: DeploymentDetail | None) -> dict[str, Any]:
    """What the metadata record keeps of a scanned deployment ({} when not scanned)."""
    if scanned is None:
        return {}
    return {
        "director": scanned.director,
        "releases": [{"name": r.name, "version": r.version} for r in scanned.releases],
        "stemcells": [{"name": s.name, "version": s.version} for s in scanned.stemcells],
        "vms": [vm_summary(v) for v in _sorted_vms(scanned.vms)],
    }


def _plan_metadata(p: _Planner, scanned: DeploymentDetail | None, now: str, stamp: int | None, *,
                   unscanned: bool = False) -> None:
    """``secret/<id>/metadata``: infrastructure and a bounded history, written only when
    something of the instance changed (or its history needs converting).

    ``unscanned``: the instance has a deployment this run could not scan (its scan failed or
    was deferred). A write the metadata alone would need (a history conversion, a field of its
    own) then waits for a run that scans it: the infrastructure is added only when the record
    is written anyway, so written now without it, it would never come (an instance whose scan
    failed once kept a record without director, releases, stemcells and VMs for good)."""
    meta_path = p.path("metadata")
    old_meta, _ = p.existing(meta_path)
    infra = _infrastructure(scanned)
    meta, meta_changed = merge_record(
        old_meta, core={"deployment_name": p.plan.deployment_name}, extra=infra,
        volatile=p.cfg.volatile_fields, ignore=("history",),
    )
    meta_changed = meta_changed and (old_meta is not None or bool(p.pending) or scanned is not None)
    old_history = (old_meta or {}).get("history")
    history, converted = history_in_broker_format(old_history if isinstance(old_history, list) else [])
    if not (p.pending or meta_changed or converted) or (unscanned and not p.pending):
        return
    for k, v in infra.items():  # written anyway: bring the infrastructure in
        _set(meta, k, v)
    parts = [*p.changed_parts, *(["metadata"] if old_meta is not None and meta_changed else [])]
    if converted:  # the broker's next history append would drop string-stamped entries
        p.plan.history_converted = converted
        parts.append("history timestamps")
    history.append(
        {
            "timestamp": stamp if stamp is not None else now,
            "action": "reconcile",
            "description": "reconciler updated " + ", ".join(parts or ["metadata"]),
            "paths": parts or ["metadata"],
        }
    )
    meta["history"] = bound_history(history, p.cfg.history_limit)
    meta["updated_at"] = now
    why = "history entry" + (" and infrastructure" if infra else "")
    if converted:
        why += f"; {converted} history timestamp(s) converted to Unix seconds"
    p.write(meta_path, meta, "metadata", why)


# --- batches ---------------------------------------------------------------------------


class PlanItem(Record):
    """Everything one instance's plan needs except its Vault tree."""

    instance_id: str
    cf: CFInstance | None = None
    deployment: DeploymentDetail | None = None
    match: Match | None = None
    bindings: list[CFBinding] = Field(default_factory=list)
    parameters: dict[str, Any] | None = None
    #: CF can be asked for this instance's parameters (its offering's ``instances_retrievable``)
    parameters_retrievable: bool = False
    index_entry: dict[str, Any] | None = None
    skip_reason: str = ""
    in_flight: str = ""  # the broker's operation in flight (then skip_reason says so)


class BatchPlan(Record):
    plans: list[InstancePlan] = Field(default_factory=list)

    @property
    def writes(self) -> list[VaultWrite]:
        return [w for p in self.plans for w in p.writes]

    @property
    def changed_instances(self) -> list[str]:
        return [p.instance_id for p in self.plans if p.changed]

    @property
    def needs_credential_recovery(self) -> dict[str, str]:
        return {p.instance_id: p.credential_recovery_reason for p in self.plans if p.needs_credential_recovery}


def build_plan_items(
    result: MatchResult,
    *,
    instances: Sequence[CFInstance] | None,
    details: Mapping[str, DeploymentDetail] | Sequence[DeploymentDetail] = (),
    index: Mapping[str, Any] | None = None,
    bindings: Sequence[CFBinding] = (),
    parameters: Mapping[str, Mapping[str, Any]] | None = None,
    cf_available: bool = True,
    vault_ids: Iterable[str] = (),
    catalog: Sequence[CatalogPlan] = (),
) -> list[PlanItem]:
    """The instances a run writes for, with their inputs.

    With CF available, CF is the list of what should exist: every CF instance of our broker
    (matched or not) gets an item; deployments without a CF instance (BOSH orphans) do not.
    Without CF (BOSH-only run), identified deployments of instances Vault already knows (in
    the index or in ``vault_ids``, the ids with a tree) are refreshed; the others get a
    skipped item: a BOSH orphan must not be given a Vault tree while CF cannot be asked.
    Conflicted instances get a skipped item, so the report shows them.
    """
    inputs = _ItemInputs.gather(result, details=details, index=index, bindings=bindings, parameters=parameters,
                                catalog=catalog)
    if cf_available and instances is not None:
        items = _items_of_cf_instances(result, instances, inputs)
    else:
        known = set(inputs.index) | {u for u in (normalize_uuid(v) for v in vault_ids) if u}
        items = _items_without_cf(result, known, inputs)
    for uid in set(result.conflicted_instances):
        if uid in items or not cf_available:
            items[uid] = PlanItem(instance_id=uid, skip_reason="conflicting evidence; see the match report")
    for uid, op in result.in_flight.items():
        if uid in items:
            items[uid] = PlanItem(instance_id=uid, in_flight=op, skip_reason=f"in flight: {op}")
    return [items[k] for k in sorted(items)]


@dataclass(frozen=True)
class _ItemInputs:
    """A run's evidence, keyed by normalised instance id, from which plan items are made."""

    matches: Mapping[str, Match]
    details: Mapping[str, DeploymentDetail]
    index: Mapping[str, Mapping[str, Any]]
    bindings: Mapping[str, list[CFBinding]]
    parameters: Mapping[str, dict[str, Any]]
    retrievable: frozenset[tuple[str, str]]  # (foundation, plan id) whose parameters CF hands out

    @classmethod
    def gather(
        cls,
        result: MatchResult,
        *,
        details: Mapping[str, DeploymentDetail] | Sequence[DeploymentDetail],
        index: Mapping[str, Any] | None,
        bindings: Sequence[CFBinding],
        parameters: Mapping[str, Mapping[str, Any]] | None,
        catalog: Sequence[CatalogPlan],
    ) -> _ItemInputs:
        by_inst: dict[str, list[CFBinding]] = {}
        for b in bindings:
            uid = normalize_uuid(b.instance_guid)
            if uid:
                by_inst.setdefault(uid, []).append(b)
        return cls(
            matches=result.by_instance(),
            details=details if isinstance(details, Mapping) else {d.name: d for d in details},
            index=_by_uuid({k: v for k, v in (index or {}).items() if isinstance(v, Mapping)}),
            bindings=by_inst,
            parameters={u: dict(v) for u, v in _by_uuid(parameters or {}).items()},
            retrievable=frozenset((p.foundation, p.plan_id) for p in catalog if p.instances_retrievable),
        )

    def item(self, uid: str, cf: CFInstance | None) -> PlanItem:
        m = self.matches.get(uid)
        if m is not None and cf is not None and not m.in_cf:
            m = None  # its director does not serve the instance's foundation: not its deployment
        dep = self.details.get(m.deployment_name) if m else None
        if m is not None and dep is None:
            dep = DeploymentDetail(director=m.director, name=m.deployment_name, error="deployment was not scanned")
        entry = self.index.get(uid)
        return PlanItem(
            instance_id=uid,
            cf=cf,
            deployment=dep,
            match=m,
            bindings=self.bindings.get(uid, []),
            parameters=self.parameters.get(uid),
            parameters_retrievable=cf is not None and (cf.foundation, cf.plan_id) in self.retrievable,
            index_entry=dict(entry) if entry is not None else None,
        )


def _by_uuid(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """``mapping`` keyed by normalised UUID; keys that are not UUIDs are left out."""
    return {u: v for u, v in ((normalize_uuid(k), v) for k, v in mapping.items()) if u}


def _items_of_cf_instances(
    result: MatchResult, instances: Sequence[CFInstance], inputs: _ItemInputs
) -> dict[str, PlanItem]:
    """One item per CF instance of our broker, matched or not."""
    items: dict[str, PlanItem] = {}
    for inst in instances:
        uid = normalize_uuid(inst.guid)
        if uid is None or uid in items or result.foundations.get(uid, inst.foundation) != inst.foundation:
            continue  # the same guid in another foundation: a twin, whose data Vault does not hold
        items[uid] = inputs.item(uid, inst)
    return items


def _items_without_cf(result: MatchResult, known: set[str], inputs: _ItemInputs) -> dict[str, PlanItem]:
    """BOSH-only: the matched instances Vault knows are refreshed, the others skipped."""
    items: dict[str, PlanItem] = {}
    for m in result.matches:
        if m.instance_id in known:
            items.setdefault(m.instance_id, inputs.item(m.instance_id, None))
        else:
            items.setdefault(
                m.instance_id,
                PlanItem(
                    instance_id=m.instance_id,
                    match=m,
                    skip_reason="CF unavailable and Vault does not know this instance: not created now",
                ),
            )
    return items


def needs_parameters(item: PlanItem, current: Tree, cfg: DomainConfig | None = None) -> bool:
    """True when CF should be asked for ``item``'s parameters: its Vault record is lost or has
    no ``parameters`` key, CF has the instance and its offering allows fetching
    (``instances_retrievable``). A ``parameters`` key already in Vault (even ``{}`` or null) is
    the user's: never asked for again, never rewritten."""
    cfg = cfg or DomainConfig()
    uid = normalize_uuid(item.instance_id)
    if uid is None or item.skip_reason or item.cf is None or not item.parameters_retrievable:
        return False
    if item.parameters is not None:
        return False
    found = current.get(instance_path(uid, mount=cfg.mount))
    root = found[0] if found else None
    return not isinstance(root, Mapping) or "parameters" not in root


def paths_read(item: PlanItem, cfg: DomainConfig | None = None) -> list[str]:
    """The Vault paths :func:`plan_instance` looks at for ``item``: the root, ``manifest``,
    ``credentials``, ``metadata``, the broker's ``deployment`` record, both paths of each CF
    binding, and the broker's ``task`` record only where CF cannot say when the instance's
    last operation finished (:func:`~reconciler.domain.broker.task_record_decides`): else a
    task counts only if newer than that finish, an operation started after this run read CF,
    and the tree read before any write (the backup's, judged by :func:`task_hold`) sees it;
    an instance that gets no write needs no task read. A plan needs nothing else of the tree
    (no LIST): forge secrets, other bindings and legacy backups only matter to the backup
    taken before a write, which reads the whole tree. [] for a skipped item."""
    cfg = cfg or DomainConfig()
    uid = normalize_uuid(item.instance_id)
    if uid is None or item.skip_reason:
        return []
    records: list[tuple[str, ...]] = [(), ("manifest",), ("credentials",), ("metadata",)]
    if task_record_decides(item.cf.last_operation if item.cf is not None else None):
        records.append(("task",))
    records.append(("deployment",))
    out = [instance_path(uid, *parts, mount=cfg.mount) for parts in records]
    for b in item.bindings:
        bid = normalize_uuid(b.guid)
        if bid is not None:
            out += [instance_path(uid, "bindings", bid, "credentials", mount=cfg.mount),
                    instance_path(uid, "bindings", bid, "metadata", mount=cfg.mount)]
    return list(dict.fromkeys(out))


def task_hold(items: Sequence[PlanItem], *, now: float, cfg: DomainConfig | None = None
              ) -> Callable[[str, Mapping[str, Any]], str]:
    """The ``hold`` of :func:`reconciler.apply.apply_plan` for ``items``: on the tree read
    before an instance's writes (``{path: (data, version)}``), the broker operation its
    ``task`` record shows under way since CF's last settled one ("" when none). It covers
    the task record :func:`paths_read` left out (CF settled): an instance held writes nothing."""
    cfg = cfg or DomainConfig()
    ops = {i.instance_id: i.cf.last_operation if i.cf is not None else None for i in items}

    def hold(instance_id: str, tree: Mapping[str, Any]) -> str:
        uid = normalize_uuid(instance_id)
        got = tree.get(instance_path(uid, "task", mount=cfg.mount)) if uid is not None else None
        return task_in_flight(got[0] if got else None, ops.get(instance_id), now=now)

    return hold


def bindings_without_credentials(item: PlanItem, view: Mapping[str, Any], cfg: DomainConfig | None = None
                                 ) -> list[CFBinding]:
    """The item's CF bindings whose ``bindings/<id>/credentials`` is absent from ``view`` (the
    Vault data read for the plan): the ones to restore from CF's binding details. A binding
    with credentials in Vault is never asked for (nothing is overwritten)."""
    cfg = cfg or DomainConfig()
    uid = normalize_uuid(item.instance_id)
    if uid is None or item.skip_reason:
        return []
    out = []
    for b in item.bindings:
        bid = normalize_uuid(b.guid)
        if bid is not None and not b.credentials and not view.get(
                instance_path(uid, "bindings", bid, "credentials", mount=cfg.mount)):
            out.append(b)
    return out


def plan_batch(
    items: Sequence[PlanItem],
    trees: Mapping[str, Tree],
    *,
    now: str,
    cfg: DomainConfig | None = None,
    bosh_available: bool = True,
) -> BatchPlan:
    """Plan every item of a batch; ``trees`` maps instance id -> its current Vault tree."""
    cfg = cfg or DomainConfig()
    out = BatchPlan()
    for it in items:
        if it.skip_reason:
            out.plans.append(InstancePlan(instance_id=it.instance_id, skipped=it.skip_reason, in_flight=it.in_flight))
            continue
        out.plans.append(
            plan_instance(
                it.instance_id,
                current=trees.get(it.instance_id, {}),
                now=now,
                cf=it.cf,
                deployment=it.deployment,
                match=it.match,
                bindings=it.bindings,
                parameters=it.parameters,
                index_entry=it.index_entry,
                bosh_available=bosh_available,
                cfg=cfg,
            )
        )
    return out
