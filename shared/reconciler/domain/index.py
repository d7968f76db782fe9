"""``secret/db``: merging what a run observed into Blacksmith's instance index.

The index is the broker's and the broker is the system of record (docs/matching-and-planning.md):

- every field it wrote is kept; an entry we add carries what the broker writes at provision
  (``service_id``, ``plan_id``, ``created`` in Unix seconds, ``status``, org/space guids and
  names) and ``deployment_name``;
- an instance without a deployment (a CF orphan, a failed provision) is never added: the
  broker's hourly sweep rightly removes such entries, and an existing one is left to it;
- an instance whose deployment is not named ``<plan_id>-<instance_id>`` is a name mismatch:
  its entry is kept, and restored (counted) when the sweep removed it;
- an instance with an operation in flight is left alone;
- orphan state lives in the reconciler's store, not in entries: the ``orphaned`` maps older
  versions wrote are removed (Blacksmith's built-in reconciler reads ``orphaned`` as a bool).

The merge is a pure function of (current index, observations), so on a check-and-set
conflict the workflow re-reads the index and merges again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .broker import NAME_MISMATCH_ADVICE, derived_deployment_name, settled_status, unix_seconds
from .types import (
    DEFAULT_VOLATILE_FIELDS,
    IndexObservation,
    MatchResult,
    NameMismatch,
    ValidationIssue,
    ValidationReport,
)
from .uuids import is_normal_uuid, normalize_uuid, trailing_uuid

REQUIRED_FIELDS = ("service_id", "plan_id")
ORPHAN_FIELD = "orphaned"  # older versions wrote {"type": "cf"|"bosh"|"vault", "since": first_seen} here
CONTEXT_FIELDS = ("organization_guid", "space_guid", "organization_name", "space_name", "instance_name")


def _stable(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k not in DEFAULT_VOLATILE_FIELDS}


def is_our_orphan_mark(value: Any) -> bool:
    """An ``orphaned`` value written by an older version of this reconciler (a map with a type)."""
    return isinstance(value, Mapping) and "type" in value


def observations_from(
    result: MatchResult,
    instances: Sequence[Any] | None,
    *,
    cf_available: bool = True,
    index: Mapping[str, Any] | None = None,
    bosh_available: bool = True,
) -> list[IndexObservation]:
    """Index observations of a run: every CF instance of our broker (with its deployment when
    matched; without BOSH its deployment is unknown, so nothing is added). In a BOSH-only run,
    only identified deployments of instances the index already holds: without CF, a BOSH
    orphan cannot be told from a live instance, so none is added."""
    matches = result.by_instance()
    conflicted = set(result.conflicted_instances)
    out: dict[str, IndexObservation] = {}
    if cf_available and instances is not None:
        for inst in instances:
            uid = normalize_uuid(inst.guid)
            if uid is None or uid in out or result.foundations.get(uid, inst.foundation) != inst.foundation:
                continue  # a twin (the same guid in another foundation) is not the instance Vault holds
            m = matches.get(uid) if uid not in conflicted else None
            m = m if m is None or m.in_cf else None  # a deployment of a director not serving the instance
            out[uid] = IndexObservation(
                instance_id=uid,
                service_id=inst.service_id or None,
                plan_id=inst.plan_id or None,
                deployment_name=m.deployment_name if m else None,
                source="cf",
                organization_guid=inst.organization_guid or None,
                space_guid=inst.space_guid or None,
                organization_name=inst.organization_name or None,
                space_name=inst.space_name or None,
                instance_name=inst.name or None,
                created=unix_seconds(inst.created_at),
                status=settled_status(inst.last_operation),
                in_flight=result.in_flight.get(uid, ""),
                deployment_known=bosh_available,
                foundation=inst.foundation or None,
                director=(m.director or None) if m else None,
            )
    else:
        indexed = {u for u in (normalize_uuid(k) for k in (index or {})) if u}
        for m in result.matches:
            if m.instance_id not in indexed:
                continue
            out.setdefault(
                m.instance_id,
                IndexObservation(
                    instance_id=m.instance_id,
                    service_id=m.service_id,
                    plan_id=m.plan_id,
                    deployment_name=m.deployment_name,
                    source="bosh",
                    in_flight=result.in_flight.get(m.instance_id, ""),
                    director=m.director or None,
                ),
            )
    return [out[k] for k in sorted(out)]


def _combine(observations: Sequence[IndexObservation], report: ValidationReport) -> dict[str, IndexObservation]:
    """One observation per instance: several (e.g. two foundations) are combined, later
    non-empty values winning, so the merge stays a function of the set of facts."""
    combined: dict[str, IndexObservation] = {}
    for obs in observations:
        uid = normalize_uuid(obs.instance_id)
        key = uid or str(obs.instance_id)
        if key in combined:
            report.issues.append(
                ValidationIssue(
                    kind="duplicate_observation", key=key[:80], detail="several observations of one instance combined"
                )
            )
            prev = combined[key].model_dump()
            prev.update({k: v for k, v in obs.model_dump().items() if v not in (None, "")})
            combined[key] = IndexObservation(**prev)
        else:
            combined[key] = obs
    return combined


def _new_entry(obs: IndexObservation) -> dict[str, Any]:
    """An entry in the broker's own shape (``recordInitialRequest``), for an instance with a deployment."""
    entry: dict[str, Any] = {"service_id": obs.service_id, "plan_id": obs.plan_id}
    if obs.created is not None:
        entry["created"] = obs.created
    entry["status"] = obs.status or settled_status(None)
    return entry


def _observe(
    uid: str, obs: IndexObservation, current: Mapping[str, Any], new: dict[str, Any], report: ValidationReport
) -> bool:
    """Merge one observation into ``new``; True when the entry changed."""
    entry: dict[str, Any] | None = new.get(uid)
    if _left_alone(uid, obs, report):
        return False
    is_new = entry is None
    if entry is None:
        entry = _entry_to_create(uid, obs, current)
    before = dict(entry)
    _merge_observed_fields(entry, obs)
    _check_deployment_name(uid, obs, entry, is_new, report)
    # where the instance lives (several foundations/directors): kept true once present, added
    # when the entry is written anyway, so a healthy estate is not rewritten to gain them
    placed = {f: getattr(obs, f) for f in ("foundation", "director") if getattr(obs, f)}
    for field, value in placed.items():
        if field in entry and entry[field] != value:
            entry[field] = value
    if is_new or _stable(entry) != _stable(before):
        entry.update(placed)
        new[uid] = entry
        (report.added if is_new else report.updated).append(uid)
        return True
    return False


def _left_alone(uid: str, obs: IndexObservation, report: ValidationReport) -> bool:
    """True when this run must not edit the instance's entry (noted in ``report`` where it says why)."""
    if obs.in_flight:
        report.in_flight.append(uid)
        return True
    if obs.source == "cf" and not obs.deployment_name and not obs.deployment_known:
        return True  # BOSH did not answer: whether it has a deployment is unknown this run
    if obs.source == "cf" and not obs.deployment_name:
        # no deployment: the broker's sweep removes the entry within the hour; not ours to edit
        report.left_for_broker.append(uid)
        return True
    return False


def _entry_to_create(uid: str, obs: IndexObservation, current: Mapping[str, Any]) -> dict[str, Any]:
    """The start of a new entry: a legacy upper-case key's fields for the same instance (the
    old key is kept), under the broker's own shape when CF has the instance."""
    legacy = next((k for k in current if k != uid and normalize_uuid(k) == uid), None)
    entry = dict(current[legacy]) if legacy is not None and isinstance(current[legacy], Mapping) else {}
    return {**_new_entry(obs), **entry} if obs.source == "cf" else entry


def _merge_observed_fields(entry: dict[str, Any], obs: IndexObservation) -> None:
    """CF's service and plan ids win (BOSH's only fill gaps); context fields only fill gaps."""
    authoritative = obs.source == "cf"
    for field in ("service_id", "plan_id"):
        value = getattr(obs, field)
        if value and (authoritative or not entry.get(field)):
            entry[field] = value
    if obs.deployment_name:
        entry["deployment_name"] = obs.deployment_name
    for field in CONTEXT_FIELDS:
        value = getattr(obs, field)
        if value and not entry.get(field):
            entry[field] = value


def _check_deployment_name(
    uid: str, obs: IndexObservation, entry: Mapping[str, Any], is_new: bool, report: ValidationReport
) -> None:
    """A deployment name other than the one the broker derives from plan and id is reported."""
    derived = derived_deployment_name(entry.get("plan_id"), uid)
    if obs.deployment_name and derived and obs.deployment_name != derived:
        report.name_mismatch.append(NameMismatch(instance_id=uid, deployment_name=obs.deployment_name,
                                                 derived_name=derived, advice=NAME_MISMATCH_ADVICE))
        if is_new:
            report.name_mismatch_restored.append(uid)


def merge_index(
    current: Mapping[str, Any] | None,
    observations: Sequence[IndexObservation],
    *,
    now: str,
    remove_old_marks: bool = True,
) -> tuple[dict[str, Any], ValidationReport]:
    """New ``secret/db`` data and a validation report (``report.changed`` says whether to write).
    ``remove_old_marks`` False (a selective run) leaves the other entries' old orphan marks alone."""
    current = current if isinstance(current, Mapping) else {}
    new: dict[str, Any] = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in current.items()}
    report = ValidationReport()
    touched: set[str] = set()
    for obs in _combine(observations, report).values():
        uid = normalize_uuid(obs.instance_id)
        if uid is None:
            report.issues.append(
                ValidationIssue(
                    kind="invalid_key",
                    key=str(obs.instance_id)[:80],
                    detail="observation with a non-UUID instance id ignored",
                )
            )
            continue
        if uid in new and not isinstance(new[uid], dict):
            continue  # reported below as not_a_map; never overwritten
        if _observe(uid, obs, current, new, report):
            touched.add(uid)
    # orphan marks of older versions: orphan state lives in the reconciler's store now
    busy = set(report.in_flight)
    for key, entry in new.items() if remove_old_marks else ():
        if normalize_uuid(key) in busy:
            continue
        if isinstance(entry, dict) and is_our_orphan_mark(entry.get(ORPHAN_FIELD)):
            del entry[ORPHAN_FIELD]
            report.orphan_cleared.append(key)
            touched.add(key)
    for key in touched:
        if isinstance(new.get(key), dict):
            new[key]["reconciled_at"] = now
    report.changed = bool(touched)
    validate_index(new, report)
    return new, report


def validate_index(index: Mapping[str, Any], report: ValidationReport | None = None) -> ValidationReport:
    """Missing fields, non-UUID keys, legacy name formats, duplicates. Reports only; changes nothing."""
    report = report or ValidationReport()
    report.entries = len(index)
    by_uid: dict[str, list[str]] = {}
    by_deployment: dict[str, list[str]] = {}
    for key, entry in index.items():
        uid = normalize_uuid(key)
        if uid is None:
            report.issues.append(ValidationIssue(kind="invalid_key", key=str(key)[:80], detail="key is not a UUID"))
        else:
            by_uid.setdefault(uid, []).append(key)
            if not is_normal_uuid(key):
                report.issues.append(ValidationIssue(kind="not_normalised", key=key, detail="key is not lower case"))
        if not isinstance(entry, Mapping):
            report.issues.append(
                ValidationIssue(kind="not_a_map", key=str(key)[:80], detail=f"entry is a {type(entry).__name__}")
            )
            continue
        for field in REQUIRED_FIELDS:
            if not entry.get(field):
                report.issues.append(ValidationIssue(kind="missing_field", key=key, detail=f"no {field}"))
        name = entry.get("deployment_name")
        if not name:
            report.issues.append(
                ValidationIssue(
                    kind="legacy_name", key=key, detail="no deployment_name (implicit <plan-id>-<instance-id>)"
                )
            )
        elif isinstance(name, str):
            by_deployment.setdefault(name, []).append(key)
            if uid is not None:
                _check_name(key, uid, name, entry, report)
    for uid, keys in by_uid.items():
        if len(keys) > 1:
            report.issues.append(ValidationIssue(kind="duplicate_key", key=uid, detail="keys: " + ", ".join(keys)))
    for name, keys in by_deployment.items():
        if len(keys) > 1:
            report.issues.append(
                ValidationIssue(kind="duplicate_deployment", key=name, detail="named by " + ", ".join(keys))
            )
    return report


def _check_name(key: str, uid: str, name: str, entry: Mapping[str, Any], report: ValidationReport) -> None:
    plan_id, service_id = entry.get("plan_id"), entry.get("service_id")
    tail = trailing_uuid(name)
    if tail is None:
        report.issues.append(
            ValidationIssue(kind="legacy_name", key=key, detail="deployment name does not end in a UUID")
        )
        return
    prefix, tail_uid = tail
    if tail_uid != uid:
        report.issues.append(
            ValidationIssue(
                kind="other_instance_name", key=key, detail="deployment name ends in another instance's UUID"
            )
        )
        return
    if not name.endswith(uid):
        report.issues.append(
            ValidationIssue(kind="legacy_name", key=key, detail="deployment name has an upper-case UUID")
        )
    if plan_id and prefix != plan_id:
        if service_id and prefix == f"{service_id}-{plan_id}":
            report.issues.append(
                ValidationIssue(
                    kind="legacy_name",
                    key=key,
                    detail="legacy <service-id>-<plan-id>-<instance-id> with unprefixed plan id",
                )
            )
        else:
            report.issues.append(
                ValidationIssue(
                    kind="legacy_name", key=key, detail=f"deployment name prefix is not the plan id {plan_id!r}"
                )
            )
