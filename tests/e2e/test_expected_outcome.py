"""Generated worlds reconcile to the generator's expected outcome through the real state
machine; a second run writes nothing. Against the Vault emulator, and against a real OpenBao
with a token that only deploy/vault-policy.hcl allows (same assertions)."""

import pytest

from mockstack.generator import generate
from mockstack.runner import run_scenario
from tests.e2e.support import vault_stack_options
from tests.integration.vault_fixtures import BACKENDS

WRITES = {"PUT", "POST", "PATCH", "DELETE"}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("instances,seed", [(12, 3)])
def test_world_reconciles_to_expected_outcome(instances, seed, backend):
    world, expected = generate(instances, seed=seed, drift={"cf_orphans": 0.2})  # a failed provision too
    report = run_scenario(world, runs=2, stack_options=vault_stack_options(backend))
    first, second = report["runs"]
    assert first["status"] == "SUCCEEDED", first["cause"]
    assert second["status"] == "SUCCEEDED", second["cause"]
    assert report["orphans"] == {k: sorted(v) for k, v in expected["orphans"].items()}
    assert sorted(report["vault"]["secret/db"]) == sorted(expected["index_ids"])
    for path in expected["untouched_paths"]:
        assert report["vault"].get(path) == world["vault"].get(path), path
    for iid in expected["recoverable_credentials"]:
        assert report["vault"].get(f"secret/{iid}/credentials"), iid
    # lost records get their CF parameters back where the offering lets CF fetch them
    assert expected["fetched_parameters"]
    for iid, params in expected["fetched_parameters"].items():
        assert report["vault"][f"secret/{iid}"]["parameters"] == params, iid
    for iid in expected["unfetchable_parameters"]:
        assert "parameters" not in report["vault"][f"secret/{iid}"], iid
    applied = first["output"]["phases"]["apply"], second["output"]["phases"]["apply"]
    assert applied[0].get("parameters_fetched") == len(expected["fetched_parameters"])
    assert not applied[1].get("parameters_fetched")  # written once, never asked for again
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
