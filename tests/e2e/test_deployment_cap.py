"""reconciler.concurrency.max_deployments_per_run on the real state machine: each run scans at
most the cap, the next run continues where the last stopped, and successive runs cover every
deployment; a deferred deployment is never scanned in that run (no Director call for it)."""

from __future__ import annotations

import pytest

from mockstack.generator import generate
from mockstack.runner import Scenario
from reconciler.store import Store

pytestmark = pytest.mark.slow


def test_capped_runs_cover_the_estate_round_robin(tmp_path):
    world, expected = generate(5, seed=7, drift={"bosh_orphans": 0.2})
    service = sorted(d["name"] for d in world["bosh"]["deployments"]
                     if d["name"] not in expected["excluded_deployments"])
    assert len(service) >= 4
    config = "reconciler:\n  batch_size: 2\n  concurrency: {max_deployments_per_run: 2}\n"
    with Scenario(world, config_text=config, workdir=str(tmp_path / "stack")) as scenario:
        store = Store(scenario.engine.tables["CacheTable"], scenario.engine.tables["StateTable"],
                      client=scenario.engine.client("dynamodb"))
        scanned: list[list[str]] = []
        for _ in range((len(service) + 1) // 2):
            run = scenario.run_once(force=True)  # forced: the deployment cache is cleared, every scan is real
            assert run["status"] == "SUCCEEDED", run["cause"]
            bosh = run["output"]["phases"]["discover_bosh"]
            assert bosh["to_scan"] == 2 and bosh["deferred"] == len(service) - 2
            listing = store.get_scratch(run["execution_arn"].rsplit(":", 1)[-1], "bosh")
            scanned.append([d["name"] for d in listing["deployments"]])
            assert run["output"]["phases"]["scan"]["cache_misses"] == 2  # only the chosen two hit the Director
    assert scanned[0] == service[:2] and scanned[1] == service[2:4]
    assert set(sum(scanned, [])) == set(service)
