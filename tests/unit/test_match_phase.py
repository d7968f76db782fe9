"""The Match phase's view of the scan: a failed scan batch is failed evidence, never grounds
for marking an orphan (the real Blacksmith marked everything orphaned after a failed scan)."""

from reconciler.domain import match, update_orphans
from reconciler.models import CatalogPlan, CFInstance, DeploymentDetail
from reconciler.phases.contracts import SourceResult
from reconciler.phases.match import SCAN_BATCH_FAILED, gather_details

IID = "0d7f6c1e-2a4b-4c8d-9e0f-1a2b3c4d5e6f"
LONELY = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
PLAN = CatalogPlan(foundation="cf", plan_guid="pg", plan_id="redis-standalone", plan_name="standalone",
                   service_guid="sg", service_id="redis", service_name="redis")


class ScratchStore:
    def __init__(self, data):
        self.data = data

    def get_scratch(self, run_id, key, default=None):
        return self.data.get(key, default)


def _store(second_batch_failed: bool) -> ScratchStore:
    listing = {"batch_size": 1, "deployments": [{"director": "bosh", "name": f"redis-standalone-{IID}"},
                                               {"director": "bosh", "name": "mystery-deployment"}]}
    data = {"bosh": listing,
            "scan#0": [DeploymentDetail(director="bosh", name=f"redis-standalone-{IID}").model_dump(mode="json")],
            "scan#0#figures": {"scanned": 1}}
    if not second_batch_failed:
        data["scan#1"] = [DeploymentDetail(director="bosh", name="mystery-deployment").model_dump(mode="json")]
        data["scan#1#figures"] = {"scanned": 1}
    return ScratchStore(data)


def _orphans(store):
    details, unscanned = gather_details(store, "r", SourceResult(status="ok", batches=[0, 1]))
    instances = [CFInstance(foundation="cf", guid=g, name=g[:4], service_id="redis", plan_id="redis-standalone")
                 for g in (IID, LONELY)]
    result = match(instances, details, {}, [PLAN])
    return details, unscanned, update_orphans({}, result, source_status={"cf": "ok", "bosh": "ok", "vault": "ok"},
                                              now="2026-11-26T00:00:00Z")


def test_failed_scan_batch_keeps_orphan_marking_off():
    details, unscanned, update = _orphans(_store(second_batch_failed=True))
    assert [d.name for d in unscanned] == ["mystery-deployment"]
    assert {d.name: d.error for d in details}["mystery-deployment"] == SCAN_BATCH_FAILED
    assert update.state.get("cf", {}) == {}  # the lonely CF instance might own the unscanned deployment


def test_with_every_batch_scanned_the_cf_orphan_is_marked():
    _, unscanned, update = _orphans(_store(second_batch_failed=False))
    assert unscanned == []
    assert LONELY in {e["instance_id"] for e in update.state["cf"].values()}
