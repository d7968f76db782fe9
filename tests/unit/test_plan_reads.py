"""ApplyBatch reads only the paths a plan looks at (``paths_read``) instead of walking each
instance's whole tree: the plans must be identical either way, on worlds of every drift kind."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from mockstack.generator import generate
from reconciler.domain import DomainConfig, build_plan_items, match, paths_read, plan_instance, task_hold
from reconciler.domain.broker import task_record_decides, unix_seconds
from reconciler.models import CFBinding
from tests.unit.domain_support import WorldInputs

NOW = "2026-03-01T01:00:00Z"


class Recording(Mapping):
    """A tree that remembers which paths were looked up."""

    def __init__(self, data: Mapping[str, Any]):
        self.data, self.seen = dict(data), set()

    def __getitem__(self, key: str) -> Any:
        self.seen.add(key)
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        self.seen.add(key)
        return self.data.get(key, default)

    def __contains__(self, key: object) -> bool:
        self.seen.add(key)
        return key in self.data

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("the planner must not walk the tree")

    def __len__(self) -> int:
        raise AssertionError("the planner must not size the tree")


def plan_of(item, tree, cfg):
    return plan_instance(item.instance_id, current=tree, now=NOW, cf=item.cf, deployment=item.deployment,
                         match=item.match, bindings=item.bindings, parameters=item.parameters,
                         index_entry=item.index_entry, cfg=cfg)


@pytest.mark.parametrize("seed", [1, 2])
def test_plans_from_the_paths_read_equal_plans_from_whole_trees(seed):
    world, _ = generate(60, seed)
    w = WorldInputs(world)
    cfg = DomainConfig()
    result = match(w.instances, w.deployments, w.index, w.catalog, cfg)
    items = build_plan_items(result, instances=w.instances, details=w.deployments, index=w.index,
                             bindings=w.bindings, parameters=w.parameters, vault_ids=w.vault_ids())
    planned = wider = held = skipped_task = 0
    for item in items:
        if item.skip_reason:
            assert paths_read(item, cfg) == []
            continue
        whole = w.vault.tree(item.instance_id)
        wanted = paths_read(item, cfg)
        recording = Recording(whole)
        full = plan_of(item, recording, cfg)
        task = f"secret/{item.instance_id}/task"
        # the task record is left out where CF says when the last operation finished
        assert (task in wanted) == task_record_decides(item.cf.last_operation if item.cf else None)
        assert recording.seen - {task} <= set(wanted), recording.seen - set(wanted)
        part = plan_of(item, {p: whole[p] for p in wanted if p in whole}, cfg)
        busy = task_hold([item], now=unix_seconds(NOW))(item.instance_id, whole)
        if busy:  # a task newer than CF's settled operation: the tree read before the writes holds them
            assert task not in wanted and full.in_flight == busy and full.writes == []
            held += 1
        else:
            assert part.model_dump(exclude={"notes"}) == full.model_dump(exclude={"notes"})
        planned += 1
        skipped_task += task not in wanted
        wider += len(set(whole) - set(wanted)) > 0  # forge secrets, other bindings, legacy backups
    assert planned > 30 and wider > 5 and skipped_task > 20, (planned, wider, skipped_task)
    print(f"{held} held by a task record the plan did not read")


def test_paths_read_covers_bindings_and_skips_non_uuid_ones():
    uid = "0f0e0d0c-0b0a-4908-8706-050403020100"
    bid = "11111111-2222-4333-8444-555555555555"
    from reconciler.domain import PlanItem

    item = PlanItem(instance_id=uid, bindings=[
        CFBinding(foundation="cf", guid=bid, instance_guid=uid, type="app"),
        CFBinding(foundation="cf", guid="not-a-uuid", instance_guid=uid, type="app")])
    assert paths_read(item) == [f"secret/{uid}", f"secret/{uid}/manifest", f"secret/{uid}/credentials",
                                f"secret/{uid}/metadata", f"secret/{uid}/task", f"secret/{uid}/deployment",
                                f"secret/{uid}/bindings/{bid}/credentials",
                                f"secret/{uid}/bindings/{bid}/metadata"]
    assert paths_read(PlanItem(instance_id=uid, skip_reason="conflict")) == []


def test_the_task_record_is_read_only_where_cf_cannot_say_when_the_last_operation_finished():
    from reconciler.domain import PlanItem
    from reconciler.models import CFInstance

    uid = "0f0e0d0c-0b0a-4908-8706-050403020100"

    def item(op):
        return PlanItem(instance_id=uid, cf=CFInstance(foundation="cf", guid=uid, name="x", service_id="s",
                                                       plan_id="p", last_operation=op))

    task = f"secret/{uid}/task"
    assert task not in paths_read(item({"type": "create", "state": "succeeded", "updated_at": "2026-01-01T00:00:00Z"}))
    assert task in paths_read(item({"type": "create", "state": "in progress", "updated_at": "2026-01-01T00:00:00Z"}))
    assert task in paths_read(item({}))
