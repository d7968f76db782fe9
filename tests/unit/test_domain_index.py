from reconciler.domain import IndexObservation, match, merge_index, observations_from, validate_index
from reconciler.models import BoshDeployment, SourceStatus
from tests.unit.domain_support import CATALOG, LATER, NOW, cf_instance

A = "8bfe4c1b-9e18-45b1-83be-124163f31f9e"
B = "0d4e1a6c-3f1e-4b8a-9c6d-2e7f8a9b0c1d"
C = "5a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
OK = {"cf": SourceStatus.OK, "bosh": SourceStatus.OK, "vault": SourceStatus.OK}


def test_add_update_and_keep_broker_fields():
    current = {
        A: {
            "service_id": "redis",
            "plan_id": "old-plan",
            "organization_guid": "o",
            "space_guid": "s",
            "status": "provisioned",
            "requested_at": "2024",
            "created": 1700000000,
        }
    }
    obs = [
        IndexObservation(
            instance_id=A.upper(),
            service_id="redis",
            plan_id="redis-standalone",
            deployment_name=f"redis-standalone-{A}",
            organization_guid="other",
        ),
        IndexObservation(instance_id=B, service_id="redis", plan_id="redis-cache", deployment_name=f"redis-cache-{B}"),
    ]
    new, report = merge_index(current, obs, now=NOW)
    assert report.changed and report.added == [B] and report.updated == [A]
    e = new[A]
    assert e["plan_id"] == "redis-standalone" and e["deployment_name"] == f"redis-standalone-{A}"
    for k in ("organization_guid", "space_guid", "status", "requested_at", "created"):
        assert e[k] == current[A][k]
    # Re-applying on the merged index changes nothing (cas-conflict retry path).
    again, report2 = merge_index(new, obs, now=LATER)
    assert again == new and not report2.changed


def test_bosh_observation_only_fills_missing():
    current = {A: {"service_id": "redis", "plan_id": "standalone"}}
    obs = [
        IndexObservation(
            instance_id=A,
            service_id="redis",
            plan_id="redis-standalone",
            source="bosh",
            deployment_name=f"redis-standalone-{A}",
        )
    ]
    new, _ = merge_index(current, obs, now=NOW)
    assert new[A]["plan_id"] == "standalone"


def test_merge_on_a_fresh_reread_keeps_concurrent_broker_writes():
    obs = [IndexObservation(instance_id=A, service_id="redis", plan_id="redis-standalone",
                            deployment_name=f"redis-standalone-{A}")]
    first, _ = merge_index({}, obs, now=NOW)
    fresh = {C: {"service_id": "redis", "plan_id": "redis-standalone"}}  # broker added C meanwhile
    retry, _ = merge_index(fresh, obs, now=NOW)
    assert set(retry) == {A, C} and retry[A] == first[A]


def test_validation_report():
    index = {
        A: {"service_id": "redis", "plan_id": "standalone", "deployment_name": f"redis-standalone-{A}"},
        B.upper(): {"service_id": "redis", "plan_id": "redis-cache"},
        B: {"plan_id": "redis-cache", "deployment_name": f"redis-cache-{B.upper()}"},
        C: {"service_id": "redis", "plan_id": "redis-cache", "deployment_name": f"redis-cache-{B.upper()}"},
        "not-a-uuid": {"service_id": "x", "plan_id": "y"},
        "5a2b3c4d-0000-4a7b-8c9d-0e1f2a3b4c5d": "legacy string",
    }
    r = validate_index(index)
    kinds = {(i.kind, i.key) for i in r.issues}
    assert ("legacy_name", A) in kinds  # <service>-<plan>-<id> with an unprefixed plan id
    assert ("not_normalised", B.upper()) in kinds and ("duplicate_key", B) in kinds
    assert ("missing_field", B) in kinds and ("legacy_name", B.upper()) in kinds
    assert ("other_instance_name", C) in kinds and ("duplicate_deployment", f"redis-cache-{B.upper()}") in kinds
    assert ("invalid_key", "not-a-uuid") in kinds and ("not_a_map", "5a2b3c4d-0000-4a7b-8c9d-0e1f2a3b4c5d") in kinds
    assert r.entries == 6


def test_observations_and_no_orphan_marks_in_the_index():
    insts = [cf_instance(A), cf_instance(B)]
    deps = [BoshDeployment(director="bosh", name=f"redis-standalone-{A}")]
    res = match(insts, deps, {}, CATALOG)
    obs = observations_from(res, insts)
    by = {o.instance_id: o for o in obs}
    assert set(by) == {A, B} and by[A].deployment_name == f"redis-standalone-{A}" and by[B].deployment_name is None
    old_mark = {"type": "vault", "since": NOW}
    current = {C: {"service_id": "redis", "plan_id": "p", "orphaned": old_mark}}
    new, report = merge_index(current, obs, now=NOW)
    # B (a CF orphan) is not added: the broker's sweep would remove it within the hour
    assert B not in new and B in report.left_for_broker
    # an old mark of ours is removed; orphan state lives in the store
    assert "orphaned" not in new[C] and C in report.orphan_cleared
    assert all("orphaned" not in e for e in new.values())
    # and a second identical run writes nothing
    _, report2 = merge_index(new, observations_from(res, insts), now=LATER)
    assert not report2.changed
