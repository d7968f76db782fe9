"""Findings ("orphans"): each kind's rule, and their state with first/last seen and a check count.

The kinds are data (``domain/findings.py``); this module holds each kind's rule (``RULES``).
Nothing is deleted here or anywhere: a finding is a recorded fact for an operator. A kind
is only evaluated when every source its evidence needs answered in this run; otherwise
the previous state of that kind is carried over unchanged (the real Blacksmith marked
everything orphaned when a scan came back empty after an error).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..models import SourceStatus
from .broker import NAME_MISMATCH_ADVICE, derived_deployment_name
from .findings import FindingKind
from .shares import SPLIT_SOURCES, Share, share_of
from .types import MatchResult, OrphanCandidate, OrphanKind, OrphanUpdate
from .uuids import normalize_uuid

#: The sources whose evidence each kind needs.
NEEDS: dict[OrphanKind, tuple[str, ...]] = {kind: kind.spec.needs for kind in FindingKind}


def source_ok(status: Mapping[str, SourceStatus | str], source: str) -> bool:
    """True when ``source`` (and each ``source:<name>`` part, e.g. one per foundation) is ok."""
    relevant = [v for k, v in status.items() if k == source or k.startswith(source + ":")]
    return bool(relevant) and all(str(v) == SourceStatus.OK.value for v in relevant)


@dataclass(frozen=True)
class FindingEvidence:
    """What a rule may look at: this run's match result, the current index, Vault's instance ids."""

    result: MatchResult
    index: Mapping[str, Any] = field(default_factory=dict)
    vault_ids: tuple[str, ...] = ()


Rule = Callable[[FindingEvidence], list[OrphanCandidate]]


def _cf_without_deployment(ev: FindingEvidence) -> list[OrphanCandidate]:
    failed = set(ev.result.failed_provisions)
    out = [OrphanCandidate(kind=FindingKind.CF, key=uid, instance_id=uid, foundation=ev.result.foundations.get(uid),
                           reason="CF instance without a deployment")
           for uid in ev.result.unmatched_instances if uid not in failed]
    for twin in ev.result.twin_instances:  # "<foundation>:<id>": the same guid is another foundation's instance
        foundation, uid = twin.split(":", 1)
        out.append(OrphanCandidate(kind=FindingKind.CF, key=twin, instance_id=uid, foundation=foundation,
                                   reason=f"CF instance without a deployment; the same guid is foundation "
                                          f"{ev.result.foundations.get(uid)!r}'s instance, whose data Vault holds"))
    return out


def _failed_provision(ev: FindingEvidence) -> list[OrphanCandidate]:
    return [OrphanCandidate(kind=FindingKind.FAILED_PROVISION, key=uid, instance_id=uid,
                            foundation=ev.result.foundations.get(uid),
                            reason="CF create failed and no deployment exists: delete the instance in CF or retry")
            for uid in ev.result.failed_provisions]


def _name_mismatch(ev: FindingEvidence) -> list[OrphanCandidate]:
    out = []
    for m in ev.result.matches:
        derived = derived_deployment_name(m.plan_id, m.instance_id)
        if m.in_cf and derived and m.deployment_name != derived:
            out.append(OrphanCandidate(
                kind=FindingKind.NAME_MISMATCH, key=m.instance_id, instance_id=m.instance_id,
                deployment_name=m.deployment_name, director=m.director, foundation=m.foundation,
                reason=f"deployment {m.deployment_name}, broker derives {derived}: {NAME_MISMATCH_ADVICE}"))
    return out


def _in_flight(ev: FindingEvidence) -> list[OrphanCandidate]:
    return [OrphanCandidate(kind=FindingKind.IN_FLIGHT, key=uid, instance_id=uid,
                            foundation=ev.result.foundations.get(uid), reason=op)
            for uid, op in sorted(ev.result.in_flight.items())]


def _deployment_without_cf(ev: FindingEvidence) -> list[OrphanCandidate]:
    return [
        OrphanCandidate(
            kind=FindingKind.BOSH,
            key=m.deployment_name,
            instance_id=m.instance_id,
            deployment_name=m.deployment_name,
            director=m.director,
            reason=f"deployment of instance {m.instance_id} that CF does not have ({m.strategy})",
        )
        for m in ev.result.matches
        if not m.in_cf
    ]


def _vault_without_either(ev: FindingEvidence) -> list[OrphanCandidate]:
    result = ev.result
    alive = {m.instance_id for m in result.matches} | set(result.unmatched_instances) | set(result.conflicted_instances)
    out: list[OrphanCandidate] = []
    seen: set[str] = set()
    for raw in [*ev.index.keys(), *ev.vault_ids]:
        uid = normalize_uuid(raw)
        if uid and uid not in alive and uid not in seen:
            seen.add(uid)
            out.append(
                OrphanCandidate(
                    kind=FindingKind.VAULT, key=uid, instance_id=uid, reason="in Vault but neither in CF nor in BOSH",
                    foundation=_foundation_named(ev.index, raw),
                )
            )
    return out


def _foundation_named(index: Mapping[str, Any], key: str) -> str | None:
    entry = index.get(key)
    value = entry.get("foundation") if isinstance(entry, Mapping) else None
    return value if isinstance(value, str) and value else None


#: Each kind's rule: the candidates this run's evidence shows, before any source-status check.
RULES: dict[FindingKind, Rule] = {
    FindingKind.CF: _cf_without_deployment,
    FindingKind.BOSH: _deployment_without_cf,
    FindingKind.VAULT: _vault_without_either,
    FindingKind.FAILED_PROVISION: _failed_provision,
    FindingKind.NAME_MISMATCH: _name_mismatch,
    FindingKind.IN_FLIGHT: _in_flight,
}

if set(RULES) != set(FindingKind):  # a kind without a rule would silently never be found
    raise RuntimeError(f"finding kinds without a rule: {sorted(set(FindingKind) - set(RULES))}")


def orphan_candidates(
    result: MatchResult,
    *,
    index: Mapping[str, Any] | None = None,
    vault_ids: Iterable[str] = (),
) -> list[OrphanCandidate]:
    """What this run's evidence says is found, before any source-status check (kinds in order)."""
    evidence = FindingEvidence(result=result, index=index or {}, vault_ids=tuple(vault_ids))
    return [c for kind in FindingKind for c in RULES[kind](evidence)]


def _entry(kind: FindingKind, c: OrphanCandidate, old: Mapping[str, Any], now: str) -> dict[str, Any]:
    return {
        "type": kind.value,
        "key": c.key,
        "instance_id": c.instance_id,
        "deployment_name": c.deployment_name,
        "director": c.director,
        **({"foundation": c.foundation} if c.foundation else {}),
        "reason": c.reason,
        "first_seen": old.get("first_seen") or now,
        "last_seen": now,
        "checks": int(old.get("checks") or 0) + 1,
    }


def _judge_share(update: OrphanUpdate, kind: FindingKind, prev: dict[str, dict[str, Any]],
                 candidates: list[OrphanCandidate], share: Share, now: str) -> None:
    """One kind judged on the healthy share: the others' findings kept as they were. A guid that
    is an instance of several foundations is judged only when all of them are (which one Vault's
    record belongs to may rest on the missing evidence)."""
    homes: dict[str, set[str]] = {}
    for c in candidates:
        if c.instance_id and c.foundation:
            homes.setdefault(c.instance_id, set()).add(c.foundation)

    def judged(entry: Mapping[str, Any]) -> bool:
        known = {f for f in (entry.get("foundation"), *homes.get(str(entry.get("instance_id") or ""), ())) if f}
        director = entry.get("director")
        return all(share.judged(f, director) for f in known) if known else share.judged(None, director)

    partial = {k: v for k, v in prev.items() if not judged(v)}
    kept = len(partial)
    for c in candidates:
        if c.kind == kind and c.key not in partial and judged(c.model_dump()):
            partial[c.key] = _entry(kind, c, prev.get(c.key, {}), now)
    update.state[kind.value] = partial
    update.newly_orphaned[kind.value] = sorted(k for k in partial if k not in prev)
    update.resolved[kind.value] = sorted(k for k in prev if k not in partial)
    update.skipped[kind.value] = f"partly: {share.why()}; {kept} finding(s) of their share kept as they were"


def update_orphans(
    previous: Mapping[str, Mapping[str, Mapping[str, Any]]] | None,
    result: MatchResult,
    *,
    source_status: Mapping[str, SourceStatus | str],
    now: str,
    index: Mapping[str, Any] | None = None,
    vault_ids: Iterable[str] = (),
    serves: Mapping[str, Sequence[str]] | None = None,
) -> OrphanUpdate:
    """New finding state ``{kind: {key: entry}}`` (every FindingKind) from the previous one and this run.

    An entry: ``{type, key, instance_id, deployment_name, director, reason, first_seen,
    last_seen, checks}``. A key no longer a candidate (in an evaluated kind) is un-orphaned.

    With several foundations or directors (``source_status`` holds ``cf:<name>`` /
    ``bosh:<name>`` parts) and some of them down, a kind is judged on the healthy share only
    (``domain/shares.py``: a finding of a foundation that answered and whose directors all
    answered; a deployment of a director that answered and whose foundations all answered;
    ``serves`` maps a director to its foundations, absent: all); the rest keeps its previous
    state. Such a kind is still reported in ``skipped`` (partly evaluated), so nothing
    acts on it (auto-remediation needs a complete run)."""
    previous = previous or {}
    busy = set(result.in_flight)  # the broker's operation in flight: reported as such, not judged otherwise
    candidates = [c for c in orphan_candidates(result, index=index, vault_ids=vault_ids)
                  if c.kind is FindingKind.IN_FLIGHT or c.instance_id not in busy]
    update = OrphanUpdate(state={}, evaluated_at=now)
    for kind in FindingKind:
        prev = {k: dict(v) for k, v in (previous.get(kind.value) or {}).items() if isinstance(v, Mapping)}
        missing = [s for s in NEEDS[kind] if not source_ok(source_status, s)]
        why = ""
        share = share_of(source_status, serves) if missing and set(missing) <= set(SPLIT_SOURCES) else None
        if share is not None and not (kind.spec.needs_full_scan and result.scan_failures):
            _judge_share(update, kind, prev, candidates, share, now)
            continue
        if missing:
            why = "source(s) failed or skipped this run: " + ", ".join(missing)
        elif kind.spec.needs_full_scan and result.scan_failures:
            why = (
                f"{len(result.scan_failures)} unidentified deployment(s) could not be scanned; their owners are unknown"
            )
        if why:
            update.state[kind.value] = prev
            update.skipped[kind.value] = why
            continue
        # an instance in flight keeps whatever it had, unchanged, until its operation ends
        state: dict[str, dict[str, Any]] = {} if kind is FindingKind.IN_FLIGHT else {
            k: v for k, v in prev.items() if v.get("instance_id") in busy}
        for c in candidates:
            if c.kind != kind or c.key in state:
                continue
            state[c.key] = _entry(kind, c, prev.get(c.key, {}), now)
        update.state[kind.value] = state
        update.newly_orphaned[kind.value] = sorted(k for k in state if k not in prev)
        update.resolved[kind.value] = sorted(k for k in prev if k not in state)
    return update
