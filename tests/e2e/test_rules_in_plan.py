"""A custom matching rule's decisions appear in the dry-run plan (``match_decisions``)."""

from __future__ import annotations

from tests.e2e.support import scenario, small_world, store_of

CONFIG = """\
reconciler:
  retry: {initial_delay: 100ms, max_delay: 1s}
  matching:
    rules:
      - name: forge-params
        manifest_path: meta.params.instance_id
        before: true
        confidence: 0.95
"""


def test_rule_decisions_are_in_the_dry_run_plan_and_the_real_run_matches_the_same():
    world, expected = small_world(12, seed=3)
    with scenario(world, config_text=CONFIG) as sc:
        dry = sc.run_once(dry_run=True)
        plan = store_of(sc).get_scratch(dry["output"]["run_id"], "plan")
        real = sc.run_once()
    assert dry["status"] == "SUCCEEDED", dry["cause"]
    assert real["status"] == "SUCCEEDED", real["cause"]
    decided = {d["instance_id"]: d for d in plan["match_decisions"]}
    assert decided and all(d["rule"] == "rule 0 'forge-params'" for d in decided.values())
    assert set(expected["matched"]) & set(decided)  # the matched instances' forge manifests name them
    for d in decided.values():
        assert d["instance_id"] in d["deployment"].lower() and "custom_rule" in d["reason"]
    assert real["output"]["phases"]["match"]["matched"] == dry["output"]["phases"]["match"]["matched"]
