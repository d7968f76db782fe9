"""reconciler.concurrency.overlap_phases: apply batches beside the scan (issue 17, item 2).

Through the real state machine: the early batches apply the instances the evidence read so
far matches cleanly, Match drops what they applied and the late pass does the rest; the
world ends as the generator expects (the same assertions as with the phases in sequence)
and a second run writes nothing."""

import pytest

from mockstack.generator import generate
from mockstack.runner import run_scenario
from tests.e2e.support import assert_expected_outcome

pytestmark = pytest.mark.slow

CONFIG = """\
reconciler:
  batch_size: 4
  batch: {delay: 0s}
  concurrency: {cooldown_period: 0s, max_deployments_per_run: 0, overlap_phases: %s}
"""


@pytest.mark.parametrize("overlap", ["true", "false"])
def test_world_reconciles_to_expected_outcome_with_the_apply_beside_the_scan(overlap):
    world, expected = generate(12, seed=3, drift={"cf_orphans": 0.2})
    report = run_scenario(world, runs=2, config_text=CONFIG % overlap)
    assert_expected_outcome(report, world, expected)
    first = report["runs"][0]["output"]["phases"]
    if overlap == "true":
        assert first["match"]["applied_early"] > 0, first["match"]  # the early pass did apply
        assert first["apply"]["batches"] == first["match"]["apply_batches"]  # the early ones counted too
    else:
        assert not first["match"].get("applied_early")


def test_an_instance_written_early_that_a_later_manifest_claims_is_reported():
    """The residual of writing before every manifest is read: instance X's deployment is in an
    early scan batch and matches X cleanly by name, so early batch 0 applies X; a deployment
    scanned later (its name ends in a UUID no one knows, so no early batch waits for it) names
    X in its manifest. On complete evidence Match finds the conflict: X's late item is the
    usual skipped conflict item, and the early write is recorded as an error on X."""
    import copy
    import uuid

    from tests.e2e.support import Gate, intercept, scenario, store_of

    world, _expected = generate(6, seed=3)
    deployments = world["bosh"]["deployments"]
    own = next(d for d in deployments if d["name"].startswith("redis-cluster-"))
    x = own["name"][len("redis-cluster-"):]
    claimer = copy.deepcopy(own)
    claimer["name"] = f"zz-legacy-redis-{uuid.UUID(int=7)}"
    claimer["manifest"] = own["manifest"].replace(f"name: {own['name']}", f"name: {claimer['name']}") \
        + f"meta:\n  params:\n    instance_id: {x}\n"
    deployments.append(claimer)
    config = CONFIG % "true"
    with scenario(world, config_text=config.replace("batch_size: 4", "batch_size: 2")) as sc:
        # the claimer is read only once X's early batch has cut its items (its first Vault request)
        gate = Gate(lambda r: claimer["name"] in r.path, timeout_s=60)
        with intercept(sc.stack.bosh, before=gate), \
                intercept(sc.stack.vault, before=lambda r: gate.open() if x in r.path else None):
            run = sc.run_once()
        assert run["status"] == "SUCCEEDED", run["cause"]
        out = run["output"]
        match = out["phases"]["match"]
        assert match["conflicts"] >= 1 and match["applied_early"] > 0, match
        report = store_of(sc).get_scratch(out["run_id"], "match")
        assert x in report["conflicted_instances"], report["conflicts"]
        errors = [e for e in store_of(sc).recent_errors() if e.get("target") == f"instance {x}"]
        assert any("written early, before deployments" in e["message"] and claimer["name"] in e["message"]
                   for e in errors), errors
