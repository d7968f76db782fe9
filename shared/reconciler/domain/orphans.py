"""Orphans: the three kinds, with first/last seen and a check count.

Nothing is deleted here or anywhere: an orphan is a recorded fact for an operator. A kind
is only evaluated when every source its evidence needs answered in this run; otherwise
the previous state of that kind is carried over unchanged (the real Blacksmith marked
everything orphaned when a scan came back empty after an error).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..models import SourceStatus
from .types import MatchResult, OrphanCandidate, OrphanKind, OrphanUpdate
from .uuids import normalize_uuid

#: The sources whose evidence each kind needs.
NEEDS: dict[OrphanKind, tuple[str, ...]] = {
    OrphanKind.CF: ("cf", "bosh"),
    OrphanKind.BOSH: ("cf", "bosh"),
    OrphanKind.VAULT: ("cf", "bosh", "vault"),
}


def source_ok(status: Mapping[str, SourceStatus | str], source: str) -> bool:
    """True when ``source`` (and each ``source:<name>`` part, e.g. one per foundation) is ok."""
    relevant = [v for k, v in status.items() if k == source or k.startswith(source + ":")]
    return bool(relevant) and all(str(v) == SourceStatus.OK.value for v in relevant)


def orphan_candidates(
    result: MatchResult,
    *,
    index: Mapping[str, Any] | None = None,
    vault_ids: Iterable[str] = (),
) -> list[OrphanCandidate]:
    """What this run's evidence says is orphaned, before any source-status check."""
    out: list[OrphanCandidate] = []
    failed = set(result.failed_provisions)
    for uid in result.unmatched_instances:
        reason = "CF create failed: no deployment (failed provision)" if uid in failed else (
            "CF instance without a deployment")
        out.append(OrphanCandidate(kind=OrphanKind.CF, key=uid, instance_id=uid, reason=reason))
    for m in result.matches:
        if not m.in_cf:
            out.append(
                OrphanCandidate(
                    kind=OrphanKind.BOSH,
                    key=m.deployment_name,
                    instance_id=m.instance_id,
                    deployment_name=m.deployment_name,
                    director=m.director,
                    reason=f"deployment of instance {m.instance_id} that CF does not have ({m.strategy})",
                )
            )
    alive = {m.instance_id for m in result.matches} | set(result.unmatched_instances) | set(result.conflicted_instances)
    seen: set[str] = set()
    for raw in [*(index or {}).keys(), *vault_ids]:
        uid = normalize_uuid(raw)
        if uid and uid not in alive and uid not in seen:
            seen.add(uid)
            out.append(
                OrphanCandidate(
                    kind=OrphanKind.VAULT, key=uid, instance_id=uid, reason="in Vault but neither in CF nor in BOSH"
                )
            )
    return out


def update_orphans(
    previous: Mapping[str, Mapping[str, Mapping[str, Any]]] | None,
    result: MatchResult,
    *,
    source_status: Mapping[str, SourceStatus | str],
    now: str,
    index: Mapping[str, Any] | None = None,
    vault_ids: Iterable[str] = (),
) -> OrphanUpdate:
    """New orphan state ``{"cf"|"bosh"|"vault": {key: entry}}`` from the previous one and this run.

    An entry: ``{type, key, instance_id, deployment_name, director, reason, first_seen,
    last_seen, checks}``. A key no longer a candidate (in an evaluated kind) is un-orphaned.
    """
    previous = previous or {}
    busy = set(result.in_flight)  # the broker's operation in flight: not judged this run
    candidates = [c for c in orphan_candidates(result, index=index, vault_ids=vault_ids)
                  if c.instance_id not in busy]
    update = OrphanUpdate(state={})
    for kind in OrphanKind:
        prev = {k: dict(v) for k, v in (previous.get(kind.value) or {}).items() if isinstance(v, Mapping)}
        missing = [s for s in NEEDS[kind] if not source_ok(source_status, s)]
        why = ""
        if missing:
            why = "source(s) failed or skipped this run: " + ", ".join(missing)
        elif kind in (OrphanKind.CF, OrphanKind.VAULT) and result.scan_failures:
            why = (
                f"{len(result.scan_failures)} unidentified deployment(s) could not be scanned; their owners are unknown"
            )
        if why:
            update.state[kind.value] = prev
            update.skipped[kind.value] = why
            continue
        # an instance in flight keeps whatever it had, unchanged, until its operation ends
        state: dict[str, dict[str, Any]] = {k: v for k, v in prev.items() if v.get("instance_id") in busy}
        for c in candidates:
            if c.kind != kind or c.key in state:
                continue
            old = prev.get(c.key, {})
            state[c.key] = {
                "type": kind.value,
                "key": c.key,
                "instance_id": c.instance_id,
                "deployment_name": c.deployment_name,
                "director": c.director,
                "reason": c.reason,
                "first_seen": old.get("first_seen") or now,
                "last_seen": now,
                "checks": int(old.get("checks") or 0) + 1,
            }
        update.state[kind.value] = state
        update.newly_orphaned[kind.value] = sorted(k for k in state if k not in prev)
        update.resolved[kind.value] = sorted(k for k in prev if k not in state)
    return update
