"""A selective run (``{"selection": {"instances": [id]}}``) on the real state machine reconciles
that instance only: no other instance tree is read or written, and no orphan is marked."""

from __future__ import annotations

import re

import pytest

from reconciler.domain import FindingKind
from tests.e2e.support import changed_paths, instance_of, scenario, small_world

pytestmark = pytest.mark.slow
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def test_selective_run_touches_only_the_selected_instance():
    world, expected = small_world(12, seed=3)
    known = set(world["vault"]["secret/db"])
    iid = next(i for i in expected["recoverable_credentials"] if i in known)
    others_needing_work = {*expected["drift"]["stale_manifest"], *expected["recoverable_credentials"]} - {iid}
    assert others_needing_work  # the selection is what keeps them unchanged
    with scenario(world) as sc:
        before = sc.vault_contents()
        sc.stack.reset()
        run = sc.run_once(selection={"instances": [iid]})
        after = sc.vault_contents()
        vault_requests = [(e.method, e.path) for e in sc.stack.servers["vault"].log.entries()]
        orphans = sc.orphans()

    assert run["status"] == "SUCCEEDED", run["cause"]
    out = run["output"]
    assert out["selection"]["instances"] == [iid]
    assert out["phases"]["discover_cf"]["instances"] == 1
    assert out["phases"]["match"]["to_update"] == 1

    changed = changed_paths(before, after)
    assert {instance_of(p) for p in changed} == {iid}  # backups/<iid> and the instance's own tree
    assert after[f"secret/{iid}/credentials"] == expected["recovered_credentials"][iid]
    read_ids = {m.group(0).lower() for _, path in vault_requests for m in UUID.finditer(path)}
    assert read_ids == {iid}, sorted(read_ids - {iid})  # no other instance tree was read
    assert orphans == {kind.value: [] for kind in FindingKind}
    assert out["phases"]["orphans"]["newly_orphaned"] == {}
    assert set(out["phases"]["orphans"]["not_evaluated"]) == {kind.value for kind in FindingKind}
