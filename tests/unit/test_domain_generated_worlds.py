"""The domain logic reaches the generator's expected outcome on worlds of every drift kind."""

from __future__ import annotations

import copy
from dataclasses import fields

import pytest

from mockstack.generator import Drift, generate
from reconciler.domain import (
    DomainConfig,
    FindingKind,
    build_plan_items,
    empty_findings,
    is_allowed_write_path,
    match,
    merge_index,
    observations_from,
    plan_batch,
    update_orphans,
)
from tests.unit.domain_support import WorldInputs

NOW, LATER = "2026-03-01T01:00:00Z", "2026-03-01T02:00:00Z"
OK = {"cf": "ok", "bosh": "ok", "vault": "ok"}


def reconcile_once(w: WorldInputs, now: str, status=OK, previous_orphans=None, cfg=None):
    """The whole call sequence of docs/matching-and-planning.md over in-memory inputs."""
    cfg = cfg or DomainConfig()
    cf_ok, bosh_ok = status.get("cf") == "ok", status.get("bosh") == "ok"
    instances = w.instances if cf_ok else None
    deployments = w.deployments if bosh_ok else []
    result = match(instances, deployments, w.index, w.catalog if cf_ok else [], cfg)
    items = build_plan_items(
        result,
        instances=instances,
        details=deployments,
        index=w.index,
        bindings=w.bindings,
        parameters=w.parameters,
        cf_available=cf_ok,
        vault_ids=w.vault_ids(),
    )
    batch = plan_batch(
        items, {i.instance_id: w.vault.tree(i.instance_id) for i in items}, now=now, cfg=cfg, bosh_available=bosh_ok
    )
    for wr in batch.writes:
        assert is_allowed_write_path(wr.path), wr.path
    w.vault.apply(batch.writes)
    orphans = update_orphans(
        previous_orphans or {}, result, source_status=status, now=now, index=w.index, vault_ids=w.vault_ids()
    )
    new_index, report = merge_index(
        w.index, observations_from(result, instances, cf_available=cf_ok, index=w.index, bosh_available=bosh_ok),
        now=now,
    )
    w.index = new_index
    return result, batch, orphans, report


def check_beside_the_broker(exp, w: WorldInputs, result, batch, report):
    """The broker's situations the generator names: in flight, failed provisions, name
    mismatches, old history stamps, old orphan marks."""
    assert result.in_flight == exp["in_flight"]
    assert sorted(result.failed_provisions) == sorted(exp["failed_provisions"])
    assert {m.instance_id: m.deployment_name for m in report.name_mismatch} == exp["name_mismatch"]
    plans = {p.instance_id: p for p in batch.plans}
    assert {i for i, p in plans.items() if p.history_converted} == set(exp["history_converted"])
    for iid in exp["history_converted"]:
        assert all(isinstance(e["timestamp"], int) for e in w.vault.data[f"secret/{iid}/metadata"]["history"])
    assert set(report.orphan_cleared) == set(exp["orphan_marks_removed"])
    assert not any("orphaned" in e for e in w.index.values())
    for iid in exp["in_flight"]:
        assert plans[iid].skipped and not plans[iid].writes


def check_expected(world, exp, w: WorldInputs, result, batch, orphans, index_before):
    assert {m.instance_id: m.deployment_name for m in result.matches if m.in_cf} == exp["matched"]
    for kind in FindingKind:
        # a kind the generator makes no drift for is expected empty
        assert sorted(orphans.state[kind.value]) == sorted(exp["orphans"].get(kind.value, [])), kind
    assert sorted(result.excluded_deployments) == sorted(exp["excluded_deployments"])
    unidentified = {u.name for u in result.unidentified_deployments}
    assert set(exp.get("foreign_deployments", [])) <= unidentified
    assert result.conflicts == [] and result.malformed_manifests == {}

    plans = {p.instance_id: p for p in batch.plans}
    recovered = {i for i, p in plans.items() if p.credentials_recovered}
    assert recovered == set(exp["recoverable_credentials"])
    for iid, creds in exp.get("recovered_credentials", {}).items():
        assert w.vault.data[f"secret/{iid}/credentials"] == creds
    assert {i for i, p in plans.items() if p.needs_credential_recovery} == set(exp["unrecoverable_credentials"])
    for iid in exp["unrecoverable_credentials"]:
        assert "unresolved" in plans[iid].credential_recovery_reason

    ignored = set(exp["ignored_cf_instances"])
    assert not ignored & set(plans) and not any(i in wr.path for wr in batch.writes for i in ignored)
    for path in exp["untouched_paths"]:
        assert w.vault.data.get(path) == world["vault"].get(path), path
    for path, keys in exp.get("preserved_fields", {}).items():
        for k in keys:
            assert w.vault.data[path][k] == world["vault"][path][k], (path, k)
    assert not any("/backups/" in wr.path or wr.path.startswith("secret/backups") for wr in batch.writes)

    assert sorted(w.index) == sorted(exp["index_ids"])
    for iid, entry in index_before.items():
        for k in exp.get("index_preserved_fields", []):
            if k in entry:
                assert w.index[iid][k] == entry[k], (iid, k)


DRIFT_KINDS = [f.name for f in fields(Drift)]


def _single(kind: str) -> Drift:
    value = 6 if kind in ("non_service_deployments", "foreign_deployments") else 0.3
    return Drift(**{**{f.name: 0 for f in fields(Drift)}, kind: value})


@pytest.mark.parametrize("kind", [*DRIFT_KINDS, "default-mix", "none"])
def test_expected_outcome_then_idempotent(kind):
    drift = Drift() if kind == "default-mix" else Drift.none() if kind == "none" else _single(kind)
    world, exp = generate(120 if kind == "default-mix" else 30, seed=len(kind), drift=drift)
    if kind not in ("default-mix", "none"):
        assert exp["drift"].get(kind) or exp.get(kind), f"the generator made no {kind}"
    w = WorldInputs(world)
    index_before = copy.deepcopy(w.index)
    result, batch, orphans, report = reconcile_once(w, NOW)
    check_expected(world, exp, w, result, batch, orphans, index_before)
    check_beside_the_broker(exp, w, result, batch, report)

    # Second run over the repaired Vault: nothing to write, index unchanged, orphans counted on.
    index_after = copy.deepcopy(w.index)
    _, batch2, orphans2, report2 = reconcile_once(w, LATER, previous_orphans=orphans.state)
    assert batch2.writes == [], sorted({wr.path.split("/", 2)[-1] for wr in batch2.writes})[:5]
    assert not report2.changed and w.index == index_after
    for k in FindingKind:
        for key, entry in orphans2.state[k.value].items():
            assert entry["checks"] == 2 and entry["first_seen"] == NOW and entry["last_seen"] == LATER, key


def test_healthy_world_needs_no_writes():
    world, exp = generate(40, seed=7, drift=Drift.none())
    w = WorldInputs(world)
    _, batch, orphans, report = reconcile_once(w, NOW)
    assert batch.writes == [] and not report.changed
    assert all(not v for v in orphans.state.values())


@pytest.mark.parametrize("down", ["bosh", "cf"])
def test_a_failed_source_marks_no_orphans_and_loses_nothing(down):
    world, exp = generate(60, seed=3)
    w = WorldInputs(world)
    status = {**OK, down: "failed"}
    index_before = dict(w.index)
    result, batch, orphans, _ = reconcile_once(w, NOW, status=status)
    # operations in flight are CF's (and the index's) to tell: known without BOSH
    judged = {k.value for k in FindingKind if down not in k.spec.needs}
    assert {k: v for k, v in orphans.state.items() if k not in judged} == {
        k: v for k, v in empty_findings().items() if k not in judged}
    assert set(orphans.skipped) == set(empty_findings()) - judged
    for path in exp["untouched_paths"]:
        assert w.vault.data.get(path) == world["vault"].get(path), path
    plans = {p.instance_id: p for p in batch.plans}
    if down == "bosh":
        assert result.matches == [] and batch.plans  # CF-only: records from CF, no infrastructure
        assert not any(wr.path.count("/") == 2 and wr.path.endswith("/credentials") for wr in batch.writes)
        missing = {i for i, p in plans.items() if p.needs_credential_recovery}
        assert set(exp["recoverable_credentials"]) <= missing  # flagged, not guessed
        # without BOSH, whether an instance has a deployment is unknown: nothing is added
        assert sorted(w.index) == sorted(index_before)
    else:
        # BOSH-only: every deployment identified through the index's plan ids, none "in CF";
        # only instances Vault already knows are refreshed, nothing new enters the index.
        matched = {m.instance_id for m in result.matches}
        assert set(exp["matched"]) <= matched and not any(m.in_cf for m in result.matches)
        known = set(index_before) | set(w.vault_ids())
        # an operation in flight (the index's deprovision_requested) is skipped too
        assert {i for i, p in plans.items() if not p.skipped} == (matched & known) - set(result.in_flight)
        assert sorted(w.index) == sorted(index_before)
