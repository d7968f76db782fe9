"""A dry run (execution input ``{"dry_run": true}``) on a drifted generated world writes nothing,
and its plan lists exactly the changes the real run that follows makes."""

from __future__ import annotations

import json

from mockstack.generator import generate
from reconciler.plans import written_paths
from tests.e2e.support import changed_paths, scenario, store_of

WRITES = {"PUT", "POST", "PATCH", "DELETE"}


def test_dry_run_writes_nothing_and_plans_exactly_what_the_real_run_does():
    world, expected = generate(14, seed=7)
    with scenario(world) as sc:
        before = sc.vault_contents()
        orphans_before = sc.orphans()
        sc.stack.reset()
        dry = sc.run_once(force=True, dry_run=True)
        assert dry["status"] == "SUCCEEDED", dry["cause"]
        assert not WRITES & set(dry["requests"].get("vault", {})), dry["requests"]["vault"]
        assert sc.vault_contents() == before
        assert sc.orphans() == orphans_before  # the orphan state is not published either
        run_id = dry["execution_arn"].rsplit(":", 1)[-1]
        status, _, body = sc.api("GET", f"/b/runs/{run_id}/plan")
        assert status == 200, body
        plan = json.loads(body)
        record = store_of(sc).get_run(run_id)

        real = sc.run_once(force=True)
        assert real["status"] == "SUCCEEDED", real["cause"]
        after = sc.vault_contents()
        real_id = real["execution_arn"].rsplit(":", 1)[-1]
        status, _, body = sc.api("GET", f"/b/runs/{real_id}/plan")
        changes = json.loads(body)

    assert plan["dry_run"] is True and record["dry_run"] is True
    assert record["plan"]["instances"] == plan["summary"]["instances"] > 0
    assert dry["output"]["plan"] == record["plan"]
    # exactly the paths the real run wrote or removed: instance trees, backups, the index
    assert written_paths(plan) == changed_paths(before, after)
    assert written_paths(changes) == changed_paths(before, after)
    assert not changes["dry_run"]
    # a created path is one that did not exist, an updated one did
    for row in plan["instances"]:
        for action in row["actions"]:
            if action["action"] == "create":
                assert action["path"] not in before and action["path"] in after
            if action["action"] == "update":
                assert action["path"] in before and action["path"] in after
    actions = {a["action"] for row in plan["instances"] for a in row["actions"]}
    assert {"create", "update", "backup"} <= actions
    recovered = set(expected["recoverable_credentials"])
    assert recovered and all(any(a["path"] == f"secret/{iid}/credentials" and a["action"] == "create"
                                 for row in plan["instances"] for a in row["actions"]) for iid in recovered)


def test_a_plan_never_shows_a_secret_value():
    world, expected = generate(8, seed=11)
    with scenario(world) as sc:
        dry = sc.run_once(force=True, dry_run=True)
        run_id = dry["execution_arn"].rsplit(":", 1)[-1]
        status, _, body = sc.api("GET", f"/b/runs/{run_id}/plan")
    assert status == 200
    text = body.decode()
    creds = expected["recovered_credentials"]
    assert creds
    secret_values = {str(v) for c in creds.values() for k, v in c.items()
                     if isinstance(v, str) and len(v) >= 8 and any(w in k for w in ("pass", "secret", "token", "key"))}
    assert secret_values
    leaked = [v for v in secret_values if v in text]
    assert not leaked, leaked[:3]
    plan = json.loads(text)
    cred_actions = [a for row in plan["instances"] for a in row["actions"] if a["path"].endswith("/credentials")]
    assert cred_actions and all(a["secret"] for a in cred_actions)
    assert all("before" not in f and "after" not in f for a in cred_actions for f in a["fields"])
    assert all(f["change"] in ("added", "changed", "removed", "unchanged") for a in cred_actions for f in a["fields"])
