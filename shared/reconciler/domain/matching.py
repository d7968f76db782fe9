"""Matching CF instances x BOSH deployments x the Vault index.

Each deployment is examined with every strategy that applies; each strategy yields
``Evidence`` naming an instance id (or only a service). Agreeing evidence makes a ``Match``
whose strategy is the strongest one; disagreeing evidence makes a ``Conflict`` that keeps
both facts and matches nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..models import BoshDeployment, CatalogPlan, CFInstance, DeploymentDetail
from .broker import failed_provision, instance_in_flight
from .catalog import Catalog, build_catalog
from .manifests import dig, manifest_releases, parse_manifest
from .types import (
    CONFIDENCE,
    Conflict,
    DomainConfig,
    Evidence,
    Match,
    MatchingRule,
    MatchResult,
    Strategy,
    UnidentifiedDeployment,
)
from .uuids import embedded_uuids, normalize_uuid, split_deployment_name, trailing_uuid

Deployment = BoshDeployment | DeploymentDetail


def is_excluded_name(name: str, excluded: Iterable[str]) -> bool:
    """``word`` or ``word-...`` for a word of the exclusion list (case-insensitive)."""
    low = name.lower()
    for word in excluded:
        w = word.strip().lower()
        if w and (low == w or low.startswith(w + "-")):
            return True
    return False


def service_from_releases(releases: Iterable[str], release_services: Mapping[str, str]) -> str | None:
    """The service a deployment's releases imply, or None (ambiguous releases give None)."""
    found = {release_services[r] for r in releases if r in release_services}
    return found.pop() if len(found) == 1 else None


def _release_names(dep: Deployment, manifest: dict[str, Any] | None) -> list[str]:
    names = [r.name for r in dep.releases]
    return names or manifest_releases(manifest)


def index_deployment_names(index: Mapping[str, Any]) -> dict[str, str]:
    """deployment name -> instance id, from index entries with a valid UUID key."""
    out: dict[str, str] = {}
    for key, entry in index.items():
        uid = normalize_uuid(key)
        if uid and isinstance(entry, Mapping) and isinstance(entry.get("deployment_name"), str):
            out.setdefault(entry["deployment_name"], uid)
    return out


def _manifest_evidence(manifest: dict[str, Any], notes: list[str]) -> list[Evidence]:
    out: list[Evidence] = []
    props = dig(manifest, "properties", "blacksmith")
    sources = [
        (
            "properties.blacksmith.instance_id",
            dig(props, "instance_id"),
            dig(props, "plan_id"),
            dig(props, "service_id"),
        ),
        ("meta.params.instance_id", dig(manifest, "meta", "params", "instance_id"), None, None),
    ]
    for where, raw, plan_id, service_id in sources:
        if raw is None:
            continue
        uid = normalize_uuid(raw)
        if uid is None:
            notes.append(f"manifest {where} is not a UUID; ignored")
            continue
        out.append(
            Evidence(
                strategy=Strategy.MANIFEST_METADATA,
                instance_id=uid,
                plan_id=plan_id if isinstance(plan_id, str) else None,
                service_id=service_id if isinstance(service_id, str) else None,
                detail=f"manifest {where} = {uid}",
            )
        )
    return out


def _manifest_value(manifest: Any, path: str) -> Any:
    """The value at a dotted manifest path (digits index lists), or None."""
    node = manifest
    for part in path.split("."):
        if isinstance(node, Mapping):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _rule_evidence(
    rule: MatchingRule,
    dep: Deployment,
    manifest: dict[str, Any] | None,
    foundation_of: Mapping[str, str | None],
    catalog: Catalog,
    cfg: DomainConfig,
    notes: list[str],
) -> Evidence | None:
    """The evidence ``rule`` gives about ``dep``, or None (the rule does not apply, or what it
    found is not a UUID, or the instance belongs to a foundation the rule or director may not use)."""
    if rule.directors and dep.director not in rule.directors:
        return None
    groups: dict[str, str] = {}
    how: list[str] = []
    if rule.name_regex is not None:
        found = re.search(rule.name_regex, dep.name)
        if found is None:
            return None
        groups = {k: v for k, v in found.groupdict().items() if v is not None}
        how.append(f"name matches {rule.name_regex!r}")
    if rule.manifest_path is not None:
        if manifest is None:
            return None
        raw = _manifest_value(manifest, rule.manifest_path)
        if raw is None:
            return None
        how.append(f"manifest {rule.manifest_path}")
    else:
        raw = groups.get("instance")
    uid = normalize_uuid(raw)
    if uid is None:
        notes.append(f"{rule.label}: {' and '.join(how)}, but the instance it names is not a UUID; ignored")
        return None
    foundation = foundation_of.get(uid)
    if rule.foundations and foundation not in rule.foundations:
        where = f"foundation {foundation!r}" if foundation else "no known foundation"
        notes.append(f"{rule.label}: instance {uid} has {where}, the rule allows only {rule.foundations}; ignored")
        return None
    if not cfg.serves(dep.director, foundation):
        notes.append(f"{rule.label}: instance {uid} is in foundation {foundation!r}, "
                     f"which director {dep.director!r} does not serve; ignored")
        return None
    plan_id = rule.plan or groups.get("plan")
    service_id = rule.service or groups.get("service") or (catalog.service_of(plan_id) if plan_id else None)
    return Evidence(
        strategy=Strategy.RULE,
        instance_id=uid,
        plan_id=plan_id,
        service_id=service_id,
        confidence=rule.confidence,
        rule=rule.label,
        detail=f"{rule.label}: {' and '.join(how)} -> instance {uid}",
    )


def _first_rule(
    rules: Iterable[MatchingRule], dep: Deployment, manifest: dict[str, Any] | None,
    foundation_of: Mapping[str, str | None], catalog: Catalog, cfg: DomainConfig, notes: list[str],
) -> Evidence | None:
    for rule in rules:
        found = _rule_evidence(rule, dep, manifest, foundation_of, catalog, cfg, notes)
        if found is not None:
            return found
    return None


def _examine(
    dep: Deployment,
    catalog: Catalog,
    known_ids: set[str],
    index_names: Mapping[str, str],
    cfg: DomainConfig,
    result: MatchResult,
    foundation_of: Mapping[str, str | None] | None = None,
) -> tuple[list[Evidence], list[str], str | None]:
    """All evidence about one deployment; returns (evidence, notes, service hint).

    Custom rules: the first ``before`` rule that applies decides (built-in evidence for another
    instance becomes a note); the other rules are asked, in order, only when the built-in
    strategies found no instance."""
    notes: list[str] = []
    foundation_of = foundation_of or {}
    manifest = _readable_manifest(dep, result)
    ruled = _first_rule([r for r in cfg.rules if r.before], dep, manifest, foundation_of, catalog, cfg, notes)
    evidence = _builtin_evidence(dep.name, manifest, catalog, known_ids, index_names, notes)
    if ruled is not None:
        for e in evidence:
            if e.instance_id and e.instance_id != ruled.instance_id:
                notes.append(f"{e.strategy} says instance {e.instance_id}; {ruled.rule} (before) takes precedence")
        evidence = [ruled, *(e for e in evidence if e.instance_id == ruled.instance_id)]
    elif not any(e.instance_id for e in evidence):
        later = _first_rule([r for r in cfg.rules if not r.before], dep, manifest, foundation_of, catalog, cfg, notes)
        if later is not None:
            evidence.append(later)
    hint = service_from_releases(_release_names(dep, manifest), cfg.release_services)
    return evidence, notes, hint


def _readable_manifest(dep: Deployment, result: MatchResult) -> dict[str, Any] | None:
    """The scanned deployment's parsed manifest; a malformed one is recorded in ``result``."""
    if not isinstance(dep, DeploymentDetail) or dep.manifest_text is None:
        return None
    parsed = parse_manifest(dep.manifest_text)
    if parsed.error:
        result.malformed_manifests[dep.name] = parsed.error
        return None
    return parsed.data


def _builtin_evidence(
    name: str,
    manifest: dict[str, Any] | None,
    catalog: Catalog,
    known_ids: set[str],
    index_names: Mapping[str, str],
    notes: list[str],
) -> list[Evidence]:
    """The built-in strategies' evidence: name pattern, manifest, index, then the weaker name
    guesses (a known instance id at the end of, or anywhere in, the name)."""
    evidence: list[Evidence] = []
    split = split_deployment_name(name, catalog.prefixes)
    if split:
        prefix, uid = split
        info = catalog.prefixes[prefix]
        legacy = " (legacy plan id without service prefix)" if prefix in catalog.legacy_prefixes else ""
        evidence.append(
            Evidence(
                strategy=Strategy.UUID_PATTERN,
                instance_id=uid,
                plan_id=info.plan_id,
                service_id=info.service_id,
                detail=f"name = plan {prefix!r} + instance {uid}{legacy}",
            )
        )
    if manifest is not None:
        evidence.extend(_manifest_evidence(manifest, notes))
    if name in index_names:
        uid = index_names[name]
        evidence.append(Evidence(strategy=Strategy.INDEX, instance_id=uid, detail=f"secret/db entry {uid} names it"))
    if not split:
        evidence.extend(_known_id_in_name(name, known_ids, found_already=bool(evidence)))
    return evidence


def _known_id_in_name(name: str, known_ids: set[str], *, found_already: bool) -> list[Evidence]:
    """A known instance id ending the name; else, when nothing else was found, any in it."""
    tail = trailing_uuid(name)
    if tail and tail[1] in known_ids:
        return [
            Evidence(
                strategy=Strategy.UUID_SUFFIX,
                instance_id=tail[1],
                detail=f"name ends in known instance {tail[1]}; prefix {tail[0]!r} is not a catalog plan id",
            )
        ]
    if found_already:
        return []
    return [
        Evidence(strategy=Strategy.NAME_PATTERN, instance_id=uid, detail=f"name contains known instance {uid}")
        for uid in embedded_uuids(name)
        if uid in known_ids
    ]


@dataclass
class _Run:
    """What matching one estate knows while it examines each deployment."""

    cat: Catalog
    cfg: DomainConfig
    result: MatchResult
    #: an instance is (foundation, guid): the same guid in two foundations is two instances
    cf_all: dict[str, dict[str, CFInstance]]
    index_foundation: dict[str, str]
    known_ids: set[str]
    index_names: Mapping[str, str]
    foundation_of: dict[str, str | None]


def match(
    instances: Sequence[CFInstance] | None,
    deployments: Sequence[Deployment],
    index: Mapping[str, Any] | None,
    catalog: Sequence[CatalogPlan] | Catalog = (),
    cfg: DomainConfig | None = None,
) -> MatchResult:
    """Cross-reference CF instances, BOSH deployments and the ``secret/db`` index.

    ``instances`` is None when CF was not queried or failed (BOSH-only run); the catalog then
    comes from the index. ``deployments`` may mix list entries and scanned details.
    """
    cfg = cfg or DomainConfig()
    index = index if isinstance(index, Mapping) else {}
    result = MatchResult()
    cf_all = _cf_instances_by_uid(instances, result)
    index_foundation = {u: e["foundation"] for u, e in ((normalize_uuid(k), v) for k, v in index.items())
                        if u and isinstance(e, Mapping) and isinstance(e.get("foundation"), str)}
    foundation_of: dict[str, str | None] = {}
    if cfg.rules:
        foundation_of.update(index_foundation)
        foundation_of.update({uid: next(iter(insts)) for uid, insts in cf_all.items() if len(insts) == 1})
    run = _Run(
        cat=catalog if isinstance(catalog, Catalog) else build_catalog(catalog, index),
        cfg=cfg,
        result=result,
        cf_all=cf_all,
        index_foundation=index_foundation,
        known_ids=set(cf_all) | {u for u in (normalize_uuid(k) for k in index) if u},
        index_names=index_deployment_names(index),
        foundation_of=foundation_of,
    )
    candidates = [m for m in (_match_deployment(run, dep) for dep in deployments) if m is not None]
    conflicted = _flag_duplicate_deployments(candidates, result)
    result.matches = [m for m in candidates if m.instance_id not in conflicted]
    result.conflicted_instances = sorted(conflicted)
    # a deployment of a director that does not serve the instance's foundation is not its deployment
    matched = {m.instance_id for m in result.matches if m.in_cf or m.instance_id not in cf_all}
    cf_by_id = _instance_of_each_guid(run)
    result.unmatched_instances = sorted(u for u in cf_by_id if u not in matched and u not in conflicted)
    _flag_operations(result, cf_by_id, index)
    return result


def _cf_instances_by_uid(
    instances: Sequence[CFInstance] | None, result: MatchResult
) -> dict[str, dict[str, CFInstance]]:
    """``{uid: {foundation: instance}}``; a guid that is no UUID, or listed twice by one
    foundation, is recorded in ``result`` instead."""
    cf_all: dict[str, dict[str, CFInstance]] = {}
    for inst in instances or []:
        uid = normalize_uuid(inst.guid)
        if uid is None:
            result.ignored_instances[inst.guid] = "CF instance guid is not a UUID"
            continue
        if inst.foundation in cf_all.get(uid, {}):
            result.conflicts.append(
                Conflict(kind="duplicate_cf_instance", instance_ids=[uid],
                         facts=[f"foundation {inst.foundation!r} lists {uid} twice"]))
            continue
        cf_all.setdefault(uid, {})[inst.foundation] = inst
    return cf_all


def _match_deployment(run: _Run, dep: Deployment) -> Match | None:
    """The candidate match of one deployment; None when it names no instance, or several
    (recorded in ``run.result`` as unidentified, excluded or a conflict)."""
    evidence, notes, hint = _examine(dep, run.cat, run.known_ids, run.index_names, run.cfg, run.result,
                                     run.foundation_of)
    evidence = _without_stale_index(evidence, notes)
    ids = sorted({e.instance_id for e in evidence if e.instance_id})
    if len(ids) > 1:
        run.result.conflicts.append(
            Conflict(
                kind="instance_mismatch",
                deployments=[dep.name],
                instance_ids=ids,
                facts=[f"{e.strategy}: {e.detail}" for e in evidence if e.instance_id],
            )
        )
        return None
    if not ids:
        _record_unidentified(run, dep, hint, notes)
        return None
    return _candidate(run, dep, ids[0], evidence, notes, hint)


def _without_stale_index(evidence: list[Evidence], notes: list[str]) -> list[Evidence]:
    """A stale index entry is what we are here to fix: it never outvotes name or manifest."""
    primary = {e.instance_id for e in evidence if e.instance_id and e.strategy != Strategy.INDEX}
    if not primary:
        return evidence
    for e in evidence:
        if e.strategy == Strategy.INDEX and e.instance_id not in primary:
            notes.append(f"secret/db entry {e.instance_id} names this deployment, but name/manifest say otherwise")
    return [e for e in evidence if e.strategy != Strategy.INDEX or e.instance_id in primary]


def _record_unidentified(run: _Run, dep: Deployment, hint: str | None, notes: list[str]) -> None:
    """A deployment naming no instance: excluded by name, or reported as unidentified."""
    if is_excluded_name(dep.name, run.cfg.excluded_deployments):
        run.result.excluded_deployments.append(dep.name)
        return
    scan_error = dep.error if isinstance(dep, DeploymentDetail) else None
    if scan_error:
        run.result.scan_failures[dep.name] = scan_error
    reason = "no instance id in name, manifest or index"
    if hint:
        reason += f"; releases suggest service {hint!r}"
    if notes:
        reason += "; " + "; ".join(notes)
    run.result.unidentified_deployments.append(
        UnidentifiedDeployment(
            name=dep.name,
            director=dep.director,
            service_hint=hint,
            strategy=Strategy.RELEASE if hint else None,
            confidence=CONFIDENCE[Strategy.RELEASE] if hint else 0.0,
            reason=reason,
        )
    )


def _candidate(
    run: _Run, dep: Deployment, uid: str, evidence: list[Evidence], notes: list[str], hint: str | None
) -> Match | None:
    """The match of ``dep`` to instance ``uid`` that agreeing ``evidence`` makes; None (and a
    conflict) when the instance is in two foundations the director serves."""
    best = max(evidence, key=lambda e: e.weight)
    strategies = {e.strategy for e in evidence}
    confidence = best.weight
    if len(strategies) > 1:  # independent agreeing evidence
        confidence = min(1.0, confidence + 0.05 * (len(strategies) - 1))
    plan_id = next((e.plan_id for e in evidence if e.plan_id), None)
    service_id = next((e.service_id for e in evidence if e.service_id), None)
    if len({e.plan_id for e in evidence if e.plan_id}) > 1:
        notes.append("plan ids disagree: " + "; ".join(f"{e.strategy} says {e.plan_id}" for e in evidence if e.plan_id))
    cf, why = _instance_for(dep.director, uid, run.cf_all, run.index_foundation, run.cfg)
    if why:
        notes.append(why)
    if cf is None and why.startswith("ambiguous"):
        run.result.conflicts.append(Conflict(kind="instance_in_two_foundations", deployments=[dep.name],
                                             instance_ids=[uid], facts=[why]))
        return None
    if cf is not None:
        if plan_id and cf.plan_id and cf.plan_id != plan_id:
            notes.append(f"CF plan {cf.plan_id!r} differs from deployment's plan {plan_id!r} (plan update?)")
        plan_id, service_id = cf.plan_id or plan_id, cf.service_id or service_id
    elif service_id is None and plan_id:
        service_id = run.cat.service_of(plan_id)
    if service_id is None and hint:
        notes.append(f"service inferred from releases: {hint}")
    return Match(
        instance_id=uid,
        deployment_name=dep.name,
        director=dep.director,
        strategy=best.strategy,
        confidence=round(confidence, 3),
        reason="; ".join(f"{e.strategy}: {e.detail}" for e in evidence),
        service_id=service_id,
        plan_id=plan_id,
        in_cf=cf is not None,
        foundation=cf.foundation if cf is not None else run.index_foundation.get(uid),
        evidence=evidence,
        notes=notes,
    )


def _flag_duplicate_deployments(candidates: Sequence[Match], result: MatchResult) -> set[str]:
    """One instance, several deployments: flag, don't pick. Returns every conflicted instance."""
    by_uid: dict[str, list[Match]] = {}
    for m in candidates:
        by_uid.setdefault(m.instance_id, []).append(m)
    conflicted: set[str] = {u for c in result.conflicts for u in c.instance_ids}
    for uid, ms in by_uid.items():
        if len(ms) > 1:
            result.conflicts.append(
                Conflict(
                    kind="duplicate_deployments",
                    deployments=[m.deployment_name for m in ms],
                    instance_ids=[uid],
                    facts=[f"{m.director}/{m.deployment_name}: {m.reason}" for m in ms],
                )
            )
            conflicted.add(uid)
    return conflicted


def _instance_of_each_guid(run: _Run) -> dict[str, CFInstance]:
    """Each guid's instance for Vault: the matched one, else the one its index entry names,
    else the first foundation's; the same guid in another foundation is a twin (reported in
    ``run.result``, never written)."""
    result = run.result
    cf_by_id: dict[str, CFInstance] = {}
    by_instance = {m.instance_id: m for m in result.matches}
    for uid, insts in run.cf_all.items():
        hit = by_instance.get(uid)
        pick = (hit.foundation if hit is not None and hit.in_cf else None) or run.index_foundation.get(uid)
        chosen = insts[pick] if pick is not None and pick in insts else insts[sorted(insts)[0]]
        cf_by_id[uid] = chosen
        result.foundations[uid] = chosen.foundation
        result.twin_instances += [f"{f}:{uid}" for f in sorted(insts) if f != chosen.foundation]
    return cf_by_id


def _instance_for(director: str, uid: str, cf_all: Mapping[str, Mapping[str, CFInstance]],
                  index_foundation: Mapping[str, str], cfg: DomainConfig) -> tuple[CFInstance | None, str]:
    """The CF instance a deployment of ``director`` naming ``uid`` belongs to: only among the
    foundations the director serves; of several, the one the index entry names. (instance, note)."""
    insts = cf_all.get(uid) or {}
    served = {f: i for f, i in insts.items() if cfg.serves(director, f)}
    if not insts:
        return None, ""
    if not served:
        return None, (f"instance {uid} is in foundation(s) {sorted(insts)}, which director {director!r} does not "
                      "serve: no CF instance for this deployment")
    if len(served) == 1:
        only = next(iter(served.values()))
        note = "" if len(insts) == 1 else (f"instance {uid} is in foundations {sorted(insts)}; director {director!r} "
                                           f"serves only {only.foundation!r}")
        return only, note
    named = index_foundation.get(uid)
    if named in served:
        return served[named], f"instance {uid} is in foundations {sorted(served)}; its index entry names {named!r}"
    return None, (f"ambiguous: instance {uid} is in foundations {sorted(served)}, all served by director "
                  f"{director!r}, and no index entry names one")


def _flag_operations(result: MatchResult, cf_by_id: Mapping[str, CFInstance], index: Mapping[str, Any]) -> None:
    """The broker's operations in flight (CF last_operation, index status) and failed provisions."""
    entries = {u: e for u, e in ((normalize_uuid(k), v) for k, v in index.items()) if u and isinstance(e, Mapping)}
    unmatched = set(result.unmatched_instances)
    for uid in sorted(set(cf_by_id) | set(entries)):
        cf = cf_by_id.get(uid)
        op = instance_in_flight(cf.last_operation if cf else None, entries.get(uid))
        if op:
            result.in_flight[uid] = op
        elif cf is not None and uid in unmatched and failed_provision(cf.last_operation):
            result.failed_provisions.append(uid)
