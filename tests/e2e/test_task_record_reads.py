"""The broker's ``task`` record is read for the plan only where CF cannot say when an
instance's last operation finished; elsewhere the tree read before a write sees it, and a task
newer than CF's settled operation holds the writes (in flight, as a plan that read it skips)."""

from __future__ import annotations

from reconciler.domain.broker import task_record_decides, unix_seconds
from tests.e2e.support import scenario, small_world


def test_task_records_read_only_where_they_decide_and_a_newer_task_holds_the_writes():
    world, expected = small_world(20, seed=5, stale_manifest=0.4)
    by_guid = {i["guid"]: i for i in world["cf"]["service_instances"]}
    drifted = [iid for iid in expected["drift"]["stale_manifest"]
               if not task_record_decides(by_guid[iid].get("last_operation"))]
    assert len(drifted) >= 2, "the test needs drifted instances whose CF operation has settled"
    busy, free = drifted[0], drifted[1]
    settled = unix_seconds(by_guid[busy]["last_operation"]["updated_at"])
    # an operation the broker started after CF settled the last one (CF has not seen it yet)
    world["vault"][f"secret/{busy}/task"] = {"action": "update", "state": "in_progress",
                                             "updated_at": settled + 60}
    with scenario(world) as sc:
        before = sc.vault_contents()
        run = sc.run_once()
        after = sc.vault_contents()
        entries = sc.stack.servers["vault"].log.entries("vault")
    assert run["status"] == "SUCCEEDED", run["cause"]
    read_tasks = {e.path.split("/")[-2] for e in entries if e.method == "GET" and e.path.endswith("/task")}
    decides = {g for g, i in by_guid.items() if task_record_decides(i.get("last_operation"))}
    # only where CF cannot tell, plus the trees read before a write (they list the task record)
    assert read_tasks - decides <= {busy}, read_tasks - decides
    assert busy in read_tasks
    apply = run["output"]["phases"]["apply"]
    assert after[f"secret/{busy}/manifest"] == before[f"secret/{busy}/manifest"]  # held: nothing written
    assert after[f"secret/{free}/manifest"] != before[f"secret/{free}/manifest"]  # repaired as before
    assert apply["instances_in_flight"] >= 1


def test_a_path_the_plan_read_as_absent_is_not_read_again_before_its_write():
    world, expected = small_world(20, seed=5, lost_tree=0.3)
    lost = expected["drift"]["lost_tree"]
    assert lost, "the test needs lost trees"
    with scenario(world) as sc:
        run = sc.run_once()
        after = sc.vault_contents()
        gets = [e.path for e in sc.stack.servers["vault"].log.entries("vault", "GET")]
    assert run["status"] == "SUCCEEDED", run["cause"]
    for iid in lost:
        assert f"secret/{iid}" in after  # restored
        assert gets.count(f"/v1/secret/data/{iid}") == 1, iid  # the plan's read; the write's cas 0 guards it
