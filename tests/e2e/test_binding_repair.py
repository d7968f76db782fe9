"""Binding repair: credentials lost with an instance's tree come back from CF's binding details
(``GET /v3/service_credential_bindings/:guid/details``), written only where Vault has none;
a CF client that may not read them leaves them reported ``needs_credential_recovery``."""

from __future__ import annotations

import pytest

from tests.e2e.support import scenario, small_world, store_of


@pytest.fixture(scope="module")
def generated():
    world, expected = small_world(30, seed=11, lost_tree=0.2, lost_both=0.05)
    lost = expected["lost_binding_credentials"]
    assert lost, "the world loses binding credentials with some trees"
    return world, expected


def _details_requests(sc) -> list[str]:
    return [e.path for e in sc.stack.servers["cf"].log.entries() if e.path.endswith("/details")]


def test_lost_binding_credentials_are_restored_from_cf(generated):
    world, expected = generated
    lost = expected["lost_binding_credentials"]
    details = world["cf"]["binding_details"]
    with scenario(world) as sc:
        present = {p: d for p, d in sc.vault_contents().items() if "/bindings/" in p and p.endswith("/credentials")}
        run = sc.run_once()
        after = sc.vault_contents()
        asked = _details_requests(sc)
        again = sc.run_once()
        asked_again = _details_requests(sc)[len(asked):]
        roots = len([e for e in sc.stack.servers["cf"].log.entries() if e.path == "/"])
    assert run["status"] == "SUCCEEDED", run["cause"]
    for iid, guids in lost.items():
        for guid in guids:
            assert after[f"secret/{iid}/bindings/{guid}/credentials"] == details[guid]["credentials"]
    assert run["output"]["phases"]["apply"]["binding_credentials_restored"] == sum(len(g) for g in lost.values())
    # only the missing ones were asked for, and nothing that existed was overwritten
    assert sorted(asked) == sorted(f"/v3/service_credential_bindings/{g}/details" for gs in lost.values() for g in gs)
    assert all(after[p] == d for p, d in present.items())
    assert again["output"]["status"] == "succeeded" and asked_again == []  # restored: never asked again
    # the API root is read once per run, by DiscoverCF: ApplyBatch's clients take its UAA links (run's flags)
    assert roots == 2  # one per run (it was one more per ApplyBatch that asked CF for binding details)


def test_a_cf_client_that_may_not_read_credentials_reports_needs_credential_recovery(generated):
    world, expected = generated
    lost = expected["lost_binding_credentials"]
    with scenario(world) as sc:
        for client in sc.stack.cf_uaa.clients.values():  # read everything, but no secrets
            client["scope"] = ["cloud_controller.global_auditor", "cloud_controller.read"]
        run = sc.run_once()
        after = sc.vault_contents()
        errors = store_of(sc).recent_errors()
    assert run["status"] == "SUCCEEDED", run["cause"]
    apply = run["output"]["phases"]["apply"]
    assert apply["bindings_need_credential_recovery"] == sum(len(g) for g in lost.values())
    assert not apply.get("binding_credentials_restored")
    for iid, guids in lost.items():
        for guid in guids:
            assert f"secret/{iid}/bindings/{guid}/credentials" not in after
            reported = [e for e in errors if e["target"].startswith(f"binding {guid}")]
            assert reported and "needs_credential_recovery" in reported[0]["message"]
            assert "admin_read_only" in reported[0]["message"]  # the reason names what the client lacks
