"""Complete judgement at a scan cap: runs read least recently scanned first, and fresh or
revalidated details are evidence without a read, so within ceil(deployments / cap) runs
every orphan kind is judged (whatever the deployments' names) and the run after that, on an
unchanged world, reads nothing from BOSH and writes nothing to Vault."""

from __future__ import annotations

import math

import pytest

from tests.e2e.support import scenario, small_world

pytestmark = pytest.mark.slow

CAP = 8
CONFIG = f"""\
reconciler:
  batch_size: 4
  batch: {{delay: 0s}}
  concurrency: {{cooldown_period: 0s, max_deployments_per_run: {CAP}}}
"""


def test_every_orphan_kind_is_judged_within_a_cycle_and_the_next_run_writes_nothing():
    world, expected = small_world(18, seed=11)
    service = len(world["bosh"]["deployments"]) - len(expected["excluded_deployments"])
    cycle = math.ceil(service / CAP)
    assert cycle >= 2
    with scenario(world, config_text=CONFIG) as sc:
        runs = [sc.run_once() for _ in range(cycle + 1)]
    for run in runs:
        assert run["status"] == "SUCCEEDED", run["cause"]
    bosh = [r["output"]["phases"]["discover_bosh"] for r in runs]
    assert all(b["to_read"] <= CAP for b in bosh)
    assert sum(b["to_read"] for b in bosh[:cycle]) == service  # each deployment read once in the cycle
    judged = runs[cycle - 1]["output"]["phases"]["orphans"]
    assert judged["published"] and not judged.get("not_evaluated"), judged  # every kind judged
    last = runs[cycle]
    assert bosh[cycle]["to_read"] == 0 and bosh[cycle]["deferred"] == 0
    vault = last["requests"].get("vault") or {}
    assert sum(vault.get(m, 0) for m in ("POST", "PUT", "PATCH", "DELETE")) == 0  # nothing written
    assert not last["output"]["phases"]["orphans"].get("not_evaluated")
