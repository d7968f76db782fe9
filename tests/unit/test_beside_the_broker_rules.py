"""The reconciler's domain logic beside a model of the live broker (mockstack/broker.py):
interleavings of broker actions (sweep, history appends, provision and deprovision, racing
index writes) with reconciler runs. After any of them a whole broker cycle (two sweeps, two
runs) changes the index only by the counted name-mismatch restorations, no history entry of
ours is filtered away, and no credential is lost."""

from __future__ import annotations

import copy
import json
from typing import Any

from mockstack.broker import BrokerModel, derived_deployment_name, filter_history
from mockstack.generator import Drift, generate
from reconciler.domain.broker import task_in_flight, task_record_decides, unix_seconds
from reconciler.models import DeploymentDetail
from tests.unit.domain_support import WorldInputs
from tests.unit.test_domain_generated_worlds import reconcile_once

T0 = "2026-03-01T01:00:00Z"


class WorldKV:
    """The broker's view of the in-memory world: ``secret/db`` is ``w.index``, the rest ``w.vault``."""

    def __init__(self, w: WorldInputs) -> None:
        self.w = w

    def read(self, path: str) -> dict[str, Any] | None:
        got = self.w.index if path == "secret/db" else self.w.vault.data.get(path)
        return copy.deepcopy(got) if got is not None else None

    def write(self, path: str, data: dict[str, Any]) -> None:
        data = json.loads(json.dumps(data))
        if path == "secret/db":
            self.w.index = data
        else:
            self.w.vault.data[path] = data
        self.w.vault.version[path] = self.w.vault.version.get(path, 0) + 1


class Clock:
    def __init__(self, iso: str) -> None:
        self.t = unix_seconds(iso)

    def iso(self) -> str:
        import time

        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.t))

    def __call__(self) -> float:
        return float(self.t)

    def tick(self, seconds: int = 3600) -> str:
        self.t += seconds
        return self.iso()


def _world(n: int = 60, seed: int = 5, **drift: float):
    world, exp = generate(n, seed, Drift(**drift) if drift else None)
    w = WorldInputs(world)
    clock = Clock(T0)
    broker = BrokerModel(WorldKV(w), lambda: [d.name for d in w.deployments], clock=clock)
    return world, exp, w, broker, clock


def _credentials(w: WorldInputs) -> dict[str, Any]:
    return {p: v for p, v in w.vault.data.items() if p.endswith("/credentials")}


def _cycle(w, broker, clock, orphans):
    """Two sweeps and two runs; returns the index changes and the runs' restorations."""
    changes, restored = 0, 0
    for _ in range(2):
        before = copy.deepcopy(w.index)
        broker.sweep()
        changes += sum(1 for k in set(before) | set(w.index) if before.get(k) != w.index.get(k))
        before = copy.deepcopy(w.index)
        _, _, orphans, report = reconcile_once(w, clock.tick(), previous_orphans=orphans.state)
        changes += sum(1 for k in set(before) | set(w.index) if before.get(k) != w.index.get(k))
        restored += len(report.name_mismatch_restored)
    return changes, restored, orphans


def test_model_history_filter_and_derived_name():
    now = 1_800_000_000
    history = [{"timestamp": "2026-01-01T00:00:00Z"}, {"timestamp": now - 31 * 86400}, {"action": "x"},
               {"timestamp": True}, {"timestamp": now - 10}, {"timestamp": float(now)}]
    assert filter_history(history, now=now) == [{"timestamp": now - 10}, {"timestamp": float(now)}]
    assert derived_deployment_name("a", {"service_id": "redis", "plan_id": "redis-small"}) == "redis-small-a"
    assert derived_deployment_name("a", {"plan_id": "redis-small"}) is None  # the sweep skips it


def test_a_broker_cycle_after_the_first_run_changes_only_counted_restorations():
    world, exp, w, broker, clock = _world(80, seed=11, upper_case_names=0.05, cf_orphans=0.05, vault_orphans=0.05)
    creds = _credentials(w)
    _, _, orphans, first = reconcile_once(w, clock.tick())
    upper = set(exp["drift"]["upper_case_names"])
    assert {m.instance_id for m in first.name_mismatch} == upper
    # the first sweep removes what it is right about (CF and Vault orphans) and the name mismatches
    removed = set(broker.sweep())
    assert upper <= removed
    _, _, orphans, report = reconcile_once(w, clock.tick(), previous_orphans=orphans.state)
    assert set(report.name_mismatch_restored) == upper  # put back and counted, nothing else re-added
    assert not (removed - upper) & set(w.index)
    changes, restored, orphans = _cycle(w, broker, clock, orphans)
    assert restored == 2 * len(upper) and changes == 2 * restored  # sweep removes, run restores: nothing else
    assert _credentials(w) == {**creds, **{p: v for p, v in _credentials(w).items() if p not in creds}}
    assert sorted(orphans.state["cf"]) == sorted(exp["orphans"]["cf"])


def test_no_history_entry_of_ours_is_filtered_away():
    world, exp, w, broker, clock = _world(30, seed=2, stale_manifest=0.3)
    reconcile_once(w, clock.tick())
    ours = {p: [e for e in v["history"] if e.get("action") == "reconcile"]
            for p, v in w.vault.data.items() if p.endswith("/metadata") and "history" in v}
    assert any(ours.values())
    for path in ours:
        broker.append_history(path.split("/")[1], "update", "broker update")
    for path, entries in ours.items():
        kept = [e for e in w.vault.data[path]["history"] if e.get("action") == "reconcile"]
        assert kept == entries, path


def test_string_stamped_history_of_older_versions_is_converted_not_dropped():
    world, exp, w, broker, clock = _world(30, seed=4, stale_manifest=0.0)
    iid = next(iter(exp["matched"]))
    path = f"secret/{iid}/metadata"
    recent = clock.iso()
    w.vault.data[path]["history"].append({"timestamp": recent, "action": "reconcile", "description": "older"})
    _, batch, _, _ = reconcile_once(w, clock.tick())
    plan = next(p for p in batch.plans if p.instance_id == iid)
    assert plan.history_converted == 1
    stamps = [e["timestamp"] for e in w.vault.data[path]["history"]]
    assert all(isinstance(t, int) for t in stamps) and unix_seconds(recent) in stamps
    broker.append_history(iid, "update", "broker update")
    assert any(e.get("description") == "older" for e in w.vault.data[path]["history"])


def test_a_failed_scan_does_not_leave_the_metadata_without_its_infrastructure_for_good():
    """A run whose scan of the instance's deployment failed must not write a metadata record
    that only a history conversion asks for: written without the infrastructure, nothing made
    a later run add it (issue 15, the bosh scenario of fault seed 7: one path off for good)."""
    from mockstack.faults import normalized

    def timeline(fail_first: bool):
        world, exp, w, broker, clock = _world(30, seed=4, stale_manifest=0.0)
        iid = next(iter(exp["matched"]))
        path = f"secret/{iid}/metadata"
        for k in ("director", "releases", "stemcells", "vms"):
            w.vault.data[path].pop(k, None)  # a record written before the infrastructure was kept
        w.vault.data[path]["history"].append({"timestamp": clock.iso(), "action": "reconcile", "description": "old"})
        name = w.vault.data[f"secret/{iid}"]["deployment_name"]
        real = list(w.deployments)
        if fail_first:
            w.deployments = [DeploymentDetail(director=d.director, name=d.name, error="scan failed: HTTP 503")
                             if d.name == name else d for d in real]
        _, first, _, _ = reconcile_once(w, clock.tick())
        w.deployments = real
        reconcile_once(w, clock.tick())
        return iid, first, w.vault.data[path]

    iid, first, faulty = timeline(fail_first=True)
    plan = next(p for p in first.plans if p.instance_id == iid)
    assert not [wr for wr in plan.writes if wr.path.endswith("/metadata")]  # waits for a scanned run
    _, _, clean = timeline(fail_first=False)
    assert faulty.get("director") and faulty.get("vms") is not None
    assert normalized({"m": faulty}) == normalized({"m": clean})


def test_new_entries_in_the_broker_format_and_old_marks_removed():
    world, exp, w, broker, clock = _world(40, seed=9, lost_index=0.2, vault_orphans=0.1)
    some = next(iter(w.index))
    w.index[some]["orphaned"] = {"type": "vault", "since": T0}
    lost = exp["drift"]["lost_index"]
    reconcile_once(w, clock.tick())
    for iid in lost:
        e = w.index[iid]
        assert isinstance(e["created"], int) and e["status"] == "provisioned" and "created_at" not in e
        assert e["service_id"] and e["plan_id"] and e["organization_guid"] and e["space_name"]
        assert "orphaned" not in e
    assert "orphaned" not in w.index[some]


def test_provision_in_flight_is_left_to_the_broker_then_settles():
    world, exp, w, broker, clock = _world(30, seed=6)
    inst = w.instances[0].model_copy(update={
        "guid": "0b7c5e8e-1b2a-4c3d-9e8f-112233445566", "name": "new-one",
        "last_operation": {"type": "create", "state": "in progress", "updated_at": clock.iso()}})
    iid = inst.guid
    w.instances.append(inst)
    broker.provision_request(iid, service_id=inst.service_id, plan_id=inst.plan_id,
                             organization_guid=inst.organization_guid, space_guid=inst.space_guid)
    entry = copy.deepcopy(w.index[iid])
    tree = {p: v for p, v in w.vault.data.items() if p.startswith(f"secret/{iid}")}
    result, batch, orphans, report = reconcile_once(w, clock.tick())
    assert result.in_flight[iid] == "CF create in progress" and iid in report.in_flight
    assert not [wr for wr in batch.writes if f"/{iid}" in wr.path] and w.index[iid] == entry
    assert iid not in orphans.state["cf"] and orphans.state["in_flight"][iid]["reason"] == "CF create in progress"
    assert {p: v for p, v in w.vault.data.items() if p.startswith(f"secret/{iid}")} == tree
    broker.sweep()  # the hourly sweep meanwhile: no deployment yet, so the broker itself drops the entry
    assert iid not in w.index
    _, batch, orphans, report = reconcile_once(w, clock.tick(), previous_orphans=orphans.state)
    assert iid not in w.index and iid not in orphans.state["cf"]  # still in flight: not re-added, not judged

    # the provision completes: BOSH has the deployment, CF says succeeded, the broker's last index write
    w.deployments.append(DeploymentDetail(director="bosh", name=f"{inst.plan_id}-{iid}"))
    w.instances[-1] = inst.model_copy(update={"last_operation": {"type": "create", "state": "succeeded",
                                                                 "updated_at": clock.iso()}})
    broker.provision_request(iid, service_id=inst.service_id, plan_id=inst.plan_id,
                             organization_guid=inst.organization_guid, space_guid=inst.space_guid)
    broker.provision_started(iid)
    broker.provision_completed(iid)
    written = copy.deepcopy(w.index[iid])
    result, _, orphans, report = reconcile_once(w, clock.tick(), previous_orphans=orphans.state)
    assert iid not in result.in_flight and iid not in orphans.state["in_flight"]
    assert not any(iid in orphans.state[k] for k in orphans.state)  # settled and healthy: no finding
    assert all(w.index[iid][k] == v for k, v in written.items() if k != "reconciled_at")  # the broker's fields
    assert w.index[iid]["deployment_name"] == f"{inst.plan_id}-{iid}"
    changes, restored, _ = _cycle(w, broker, clock, orphans)
    assert changes == 2 * restored


def test_a_broker_index_write_racing_ours_is_repaired_next_run():
    world, exp, w, broker, clock = _world(40, seed=8, lost_index=0.2)
    lost = exp["drift"]["lost_index"]
    stale = broker.begin_index()  # the broker reads the index ...
    _, _, orphans, _ = reconcile_once(w, clock.tick())  # ... we add the lost entries ...
    assert set(lost) <= set(w.index)
    new = "1c2d3e4f-5a6b-4c7d-8e9f-a0b1c2d3e4f5"
    broker.update_entry(new, {"service_id": "redis", "plan_id": "redis-standalone", "status": "request_received"},
                        read=stale)  # ... and writes its stale copy back, without cas
    assert not set(lost) & set(w.index) and new in w.index
    result, _, orphans, _ = reconcile_once(w, clock.tick(), previous_orphans=orphans.state)
    assert set(lost) <= set(w.index) and w.index[new]["status"] == "request_received"
    assert result.in_flight[new] == "broker status request_received"  # the broker's own request: left alone
    assert new not in orphans.state["vault"]
    broker.sweep()  # the first sweep of this world removes what it is right about
    _, _, orphans, _ = reconcile_once(w, clock.tick(), previous_orphans=orphans.state)
    changes, restored, _ = _cycle(w, broker, clock, orphans)
    assert changes == 2 * restored


def test_failed_provision_is_reported_and_not_added():
    world, exp, w, broker, clock = _world(40, seed=3, cf_orphans=0.2)
    failed = [i.guid for i in w.instances if i.last_operation.get("state") == "failed"]
    assert failed
    for iid in failed:
        w.index.pop(iid, None)
    result, _, orphans, report = reconcile_once(w, clock.tick())
    assert set(result.failed_provisions) == set(failed)
    assert not set(failed) & set(w.index) and set(failed) <= set(report.left_for_broker)
    assert sorted(orphans.state["failed_provision"]) == sorted(failed) and not set(failed) & set(orphans.state["cf"])


def test_task_record_counts_only_while_newer_than_cfs_settled_operation():
    now = 1_800_000_000
    task = {"action": "provision", "state": "in_progress", "updated_at": now - 100}
    assert task_in_flight(task, {"state": "succeeded", "updated_at": now - 50}, now=now) == ""
    assert task_in_flight(task, {"state": "succeeded", "updated_at": now - 500}, now=now).startswith("broker task")
    assert task_in_flight(task, None, now=now)
    assert task_in_flight({**task, "updated_at": now - 3 * 86400}, None, now=now) == ""  # a record never cleared
    assert task_in_flight({**task, "state": "failed"}, None, now=now) == ""


def test_the_task_record_decides_only_where_cf_cannot_say_when_its_last_operation_finished():
    assert not task_record_decides({"state": "succeeded", "updated_at": "2026-01-01T00:00:00Z"})
    assert not task_record_decides({"state": "failed", "updated_at": 1_800_000_000})
    for op in (None, {}, {"state": "succeeded"}, {"state": "in progress", "updated_at": 1_800_000_000}):
        assert task_record_decides(op), op


def test_status_metrics_and_dashboard_show_in_flight_and_name_mismatch():
    from prometheus_client.parser import text_string_to_metric_families

    from reconciler.api import dashboard, metrics_text, status

    iid, dep = "3f0e8c1a-2b4d-4e6f-8a0b-1c2d3e4f5a6b", "redis-standalone-3F0E8C1A-2B4D-4E6F-8A0B-1C2D3E4F5A6B"
    state = {"name_mismatch": {iid: {"checks": 2, "first_seen": T0, "deployment_name": dep,
                                     "reason": f"deployment {dep}, broker derives redis-standalone-{iid}: rename"}},
             "in_flight": {"0b7c5e8e-1b2a-4c3d-9e8f-112233445566": {"checks": 1, "reason": "CF create in progress"}}}
    doc = status.build_status(figures={}, lock=None, runs=[], orphans=state, errors=[], breakers={},
                              interval_s=None, enabled=True)
    assert doc["orphans"]["name_mismatch"] == 1 and doc["orphans"]["in_flight"] == 1
    text = metrics_text.render({}, doc["orphans"], running=False)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(text) for s in fam.samples}
    share = (("director", ""), ("foundation", ""))  # no configured names given: unlabelled
    assert samples[("blacksmith_reconciler_findings", (*share, ("kind", "name_mismatch")))] == 1.0
    assert samples[("blacksmith_reconciler_findings", (*share, ("kind", "in_flight")))] == 1.0
    page = dashboard.render_dashboard(doc, [], state)
    assert "Name mismatch 1" in page and "In flight 1" in page
    assert dep in page and f"redis-standalone-{iid}" in page and "CF create in progress" in page


def test_a_task_newer_than_cfs_last_operation_skips_the_instance_and_reaches_sync_index():
    from reconciler.domain import plan_instance
    from reconciler.phases.sync_index import in_flight_tasks

    world, exp, w, broker, clock = _world(20, seed=2, stale_manifest=0.3)
    iid = exp["drift"]["stale_manifest"][0]
    inst = next(i for i in w.instances if i.guid == iid)
    settled = unix_seconds(inst.last_operation["updated_at"])
    tree = w.vault.tree(iid)
    task_path = f"secret/{iid}/task"
    for updated, busy in ((settled - 60, False), (settled + 60, True)):
        tree[task_path] = ({"action": "update", "state": "in_progress", "updated_at": updated}, 1)
        dep = next(d for d in w.deployments if d.name == exp["matched"][iid])
        plan = plan_instance(iid, current=tree, now=clock.iso(), cf=inst, deployment=dep)
        assert bool(plan.in_flight) is busy and (plan.writes == []) is busy, updated

    class Store:
        def get_scratch(self, run_id, key):
            scratch = {"flags": {"apply_batches": 2}, "apply#1#figures": {"in_flight_tasks": {iid: "broker task"}}}
            return scratch.get(key)

    assert in_flight_tasks(Store(), "r") == {iid: "broker task"}


def test_the_brokers_deployment_record_is_kept_true_where_it_exists():
    world, exp, w, broker, clock = _world(20, seed=3, upper_case_names=0.1)
    iid, actual = next(iter(exp["name_mismatch"].items()))
    inst = next(i for i in w.instances if i.guid == iid)
    record = {"instance_id": iid, "service_id": inst.service_id, "plan_id": inst.plan_id,
              "deployment_name": f"{inst.plan_id}-{iid}", "requested_at": T0, "organization_guid": "stale"}
    healthy = next(i for i in exp["matched"] if i not in exp["name_mismatch"] and i not in exp["in_flight"])
    for path, data in ((f"secret/{iid}/deployment", dict(record)),
                       (f"secret/{healthy}/deployment", {"deployment_name": exp["matched"][healthy]})):
        w.vault.data[path], w.vault.version[path] = data, 1
    _, batch, _, _ = reconcile_once(w, clock.tick())
    fixed = w.vault.data[f"secret/{iid}/deployment"]
    assert fixed["deployment_name"] == actual and fixed["organization_guid"] == inst.organization_guid
    assert fixed["requested_at"] == T0  # the broker's other fields are kept
    assert w.vault.data[f"secret/{healthy}/deployment"]["deployment_name"] == exp["matched"][healthy]
    created = {wr.path for wr in batch.writes if wr.path.endswith("/deployment") and wr.cas == 0}
    assert created == set()  # never created where the broker wrote none


def test_orphan_transitions_become_history_entries_in_the_brokers_format():
    from reconciler.domain.broker import orphan_history

    world, exp, w, broker, clock = _world(40, seed=12, cf_orphans=0.1, bosh_orphans=0.1)
    _, _, first, _ = reconcile_once(w, clock.tick())
    entries = orphan_history(first, {}, now=1_800_000_000)
    bosh_ids = {e["instance_id"] for e in first.state["bosh"].values()}
    assert set(exp["orphans"]["cf"]) | bosh_ids <= set(entries)
    assert not set(exp["in_flight"]) & set(entries)  # in flight: no orphan state, no history
    assert all(e["action"] == "orphaned" and e["timestamp"] == 1_800_000_000 for v in entries.values() for e in v)
    _, _, second, _ = reconcile_once(w, clock.tick(), previous_orphans=first.state)
    assert orphan_history(second, first.state, now=1_800_000_100) == {}  # nothing changed, nothing written
    gone = next(iter(first.state["bosh"]))
    w.deployments = [d for d in w.deployments if d.name != gone]  # a BOSH orphan deleted by an operator
    _, _, third, _ = reconcile_once(w, clock.tick(), previous_orphans=second.state)
    resolved = orphan_history(third, second.state, now=1_800_000_200)
    assert resolved[first.state["bosh"][gone]["instance_id"]][0]["action"] == "orphan_resolved"
