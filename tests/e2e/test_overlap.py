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
