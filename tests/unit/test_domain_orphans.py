from reconciler.domain import FindingKind, match, update_orphans
from reconciler.domain.orphans import source_ok
from reconciler.models import BoshDeployment, SourceStatus
from tests.unit.domain_support import CATALOG, LATER, NOW, cf_instance, detail

A = "8bfe4c1b-9e18-45b1-83be-124163f31f9e"
B = "0d4e1a6c-3f1e-4b8a-9c6d-2e7f8a9b0c1d"
C = "5a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
D = "9a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
OK = {"cf": "ok", "bosh": "ok", "vault": "ok"}


def _world():
    insts = [cf_instance(A), cf_instance(B)]
    deps = [
        BoshDeployment(director="bosh", name=f"redis-standalone-{A}"),
        BoshDeployment(director="bosh", name=f"redis-standalone-{C}"),
        BoshDeployment(director="bosh", name="cf"),
    ]
    return match(insts, deps, {D: {"service_id": "redis", "plan_id": "redis-standalone"}}, CATALOG)


def test_three_kinds_with_counts():
    res = _world()
    up = update_orphans({}, res, source_status=OK, now=NOW, index={D: {}}, vault_ids=[C.upper(), "junk"])
    assert set(up.state["cf"]) == {B}
    assert (
        set(up.state["bosh"]) == {f"redis-standalone-{C}"}
        and up.state["bosh"][f"redis-standalone-{C}"]["instance_id"] == C
    )
    assert set(up.state["vault"]) == {D}  # C has a deployment, so it is a BOSH orphan, not a Vault orphan
    e = up.state["cf"][B]
    assert e["type"] == "cf" and e["first_seen"] == e["last_seen"] == NOW and e["checks"] == 1
    up2 = update_orphans(up.state, res, source_status=OK, now=LATER, index={D: {}})
    e2 = up2.state["cf"][B]
    assert e2["first_seen"] == NOW and e2["last_seen"] == LATER and e2["checks"] == 2
    assert up2.newly_orphaned["cf"] == [] and up.newly_orphaned["cf"] == [B]


def test_comes_back_is_unorphaned():
    res = _world()
    up = update_orphans({}, res, source_status=OK, now=NOW)
    res2 = match(
        [cf_instance(A), cf_instance(B)],
        [BoshDeployment(director="bosh", name=f"redis-standalone-{x}") for x in (A, B)],
        {},
        CATALOG,
    )
    up2 = update_orphans(up.state, res2, source_status=OK, now=LATER)
    assert up2.state["cf"] == {} and up2.resolved["cf"] == [B]
    assert up2.resolved["bosh"] == [f"redis-standalone-{C}"]


def test_failed_or_skipped_source_marks_nothing_and_keeps_previous():
    prev = {"cf": {B: {"type": "cf", "first_seen": "t0", "checks": 3}}, "bosh": {}, "vault": {}}
    # BOSH failed: the scan came back empty; every CF instance looks deployment-less.
    res = match([cf_instance(A), cf_instance(B)], [], {A: {}, B: {}, C: {}}, CATALOG)
    for status in (
        {"cf": "ok", "bosh": SourceStatus.FAILED, "vault": "ok"},
        {"cf": "ok", "vault": "ok"},
        {"cf": "ok", "cf:other": "skipped", "bosh": "ok", "vault": "ok"},
    ):
        up = update_orphans(prev, res, source_status=status, now=NOW, index={C: {}})
        assert up.state["cf"] == prev["cf"] and up.state["vault"] == {} and up.state["bosh"] == {}
        needs_failed = {k.value for k in FindingKind if any(s not in status or status[s] != "ok" or
                                                            f"{s}:other" in status for s in k.spec.needs)}
        assert set(up.skipped) == needs_failed and set(up.skipped) >= {"cf", "bosh", "vault"}


def test_vault_down_skips_only_vault_kind():
    res = _world()
    up = update_orphans({}, res, source_status={"cf": "ok", "bosh": "ok", "vault": "failed"}, now=NOW, index={D: {}})
    assert set(up.state["cf"]) == {B} and up.state["vault"] == {} and "vault" in up.skipped


def test_unscanned_unidentified_deployment_defers_cf_orphans():
    res = match([cf_instance(B)], [detail("odd-name", None, error="timeout")], {}, CATALOG)
    up = update_orphans({}, res, source_status=OK, now=NOW)
    assert up.state["cf"] == {} and "could not be scanned" in up.skipped["cf"]


def test_source_ok():
    assert source_ok({"cf": "ok", "cf:eu": "ok"}, "cf")
    assert not source_ok({"cf:eu": "ok", "cf:us": "failed"}, "cf")
    assert not source_ok({}, "cf")
