"""Generated worlds reconcile to the generator's expected outcome through the real state
machine; a second run writes nothing. Against the Vault emulator, and against a real OpenBao
with a token that only deploy/vault-policy.hcl allows (same assertions)."""

import pytest

from mockstack.generator import generate
from mockstack.runner import run_scenario
from tests.e2e.support import assert_expected_outcome, vault_stack_options
from tests.integration.vault_fixtures import BACKENDS


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("instances,seed", [(12, 3)])
def test_world_reconciles_to_expected_outcome(instances, seed, backend):
    world, expected = generate(instances, seed=seed, drift={"cf_orphans": 0.2})  # a failed provision too
    report = run_scenario(world, runs=2, stack_options=vault_stack_options(backend))
    assert_expected_outcome(report, world, expected)
