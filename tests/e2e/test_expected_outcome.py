"""Generated worlds reconcile to the generator's expected outcome through the real state
machine; a second run writes nothing."""

import pytest

from mockstack.generator import generate
from mockstack.runner import run_scenario

WRITES = {"PUT", "POST", "PATCH", "DELETE"}


@pytest.mark.parametrize("instances,seed", [(12, 3)])
def test_world_reconciles_to_expected_outcome(instances, seed):
    world, expected = generate(instances, seed=seed, drift={"cf_orphans": 0.2})  # a failed provision too
    report = run_scenario(world, runs=2)
    first, second = report["runs"]
    assert first["status"] == "SUCCEEDED", first["cause"]
    assert second["status"] == "SUCCEEDED", second["cause"]
    assert report["orphans"] == {k: sorted(v) for k, v in expected["orphans"].items()}
    assert sorted(report["vault"]["secret/db"]) == sorted(expected["index_ids"])
    for path in expected["untouched_paths"]:
        assert report["vault"].get(path) == world["vault"].get(path), path
    for iid in expected["recoverable_credentials"]:
        assert report["vault"].get(f"secret/{iid}/credentials"), iid
    assert WRITES & set(first["requests"]["vault"])  # the first run had work to do
    assert not WRITES & set(second["requests"].get("vault", {}))  # the second has none
    assert second["output"]["phases"]["scan"].get("cache_hits", 0) > 0
    # beside the broker: the situations the generator names
    vault, index = report["vault"], report["vault"]["secret/db"]
    assert expected["in_flight"] and expected["name_mismatch"] and expected["failed_provisions"]
    for iid in expected["history_converted"]:
        assert all(isinstance(e["timestamp"], int) for e in vault[f"secret/{iid}/metadata"]["history"]), iid
    assert not any("orphaned" in e for e in index.values())
    for iid in set(expected["matched"]) - set(world["vault"]["secret/db"]):  # entries we added
        e = index[iid]
        assert isinstance(e["created"], int) and e["status"] == "provisioned" and "created_at" not in e, iid
    sync = first["output"]["phases"]["sync_index"]
    assert sync["name_mismatch"] == len(expected["name_mismatch"]) and sync["in_flight"] >= 1
    for run in (first, second):
        assert run["max_state_payload_bytes"] < 256 * 1024
        assert run["history_events"] < 25_000
