"""Two CF foundations and two BOSH directors (each on its own port with its own UAA) through the
real state machine: a shared guid is two instances, a director serving one foundation is only
matched to its instances, a second run writes nothing; with one foundation down, only its share
degrades."""

from __future__ import annotations

import pytest

from mockstack.multiworld import generate_multi
from tests.e2e.support import changed_paths, scenario, store_of

pytestmark = pytest.mark.slow
WRITES = {"PUT", "POST", "PATCH", "DELETE"}


def finding_keys(store):
    return {kind: sorted(entries) for kind, entries in store.get_orphans().items()}


def test_two_foundations_two_directors_reach_the_expected_outcome():
    world, expected = generate_multi(12, seed=1)
    shared, twin = expected["shared_guid"], expected["twin"]
    with scenario(world) as sc:
        endpoints = sc.stack.endpoints()
        assert [f["name"] for f in endpoints["cf_foundations"]] == ["us", "eu"]
        assert len({f["api_url"] for f in endpoints["cf_foundations"]}) == 2
        assert len({f["uaa_url"] for f in endpoints["cf_foundations"]}) == 2  # each its own UAA
        assert [d["name"] for d in endpoints["bosh_directors"]] == ["east", "west"]
        before = sc.vault_contents()
        first = sc.run_once()
        second = sc.run_once()
        after = sc.vault_contents()
        keys = finding_keys(store_of(sc))

    assert first["status"] == "SUCCEEDED", first["cause"]
    assert second["status"] == "SUCCEEDED", second["cause"]
    out = first["output"]
    assert out["phases"]["discover_cf"]["foundations"] == 2 and out["phases"]["discover_cf"]["status"] == "ok"
    for kind, ids in expected["orphans"].items():
        assert keys.get(kind, []) == ids, kind
    assert twin in keys["cf"]  # the same guid in eu: another instance, without a deployment
    assert after[f"secret/{shared}"] == before[f"secret/{shared}"]  # Vault keeps the us instance's record
    assert sorted(after["secret/db"]) == expected["index_ids"]
    for path in expected["untouched_paths"]:
        assert after.get(path) == before.get(path), path
    for iid in expected["recoverable_credentials"]:
        assert after.get(f"secret/{iid}/credentials"), iid
    added = set(after["secret/db"]) - set(before["secret/db"])
    assert added
    for iid in added:  # entries the reconciler writes say where the instance lives
        entry = after["secret/db"][iid]
        home = "us" if iid in expected["by_foundation"]["us"] else "eu"
        assert entry["foundation"] == home, iid
        assert entry["director"] == ("east" if home == "us" else "west"), iid
    assert WRITES & set(first["requests"]["vault"])
    assert not WRITES & set(second["requests"].get("vault", {}))  # the second run writes nothing


def test_one_foundation_down_degrades_only_its_share():
    world, expected = generate_multi(12, seed=1)
    with scenario(world) as sc:
        sc.set_faults({"cf:eu": {"down": True}})
        before = sc.vault_contents()
        run = sc.run_once()
        after = sc.vault_contents()
        keys = finding_keys(store_of(sc))

    assert run["status"] == "SUCCEEDED", run["cause"]
    out = run["output"]
    assert out["status"] == "succeeded_with_errors"
    assert out["phases"]["discover_cf"]["status"] == "failed" and out["phases"]["discover_cf"]["instances"] > 0
    # no finding judged on eu's missing evidence, us's share judged as usual ...
    us = expected["orphans_by_foundation"]["us"]
    for kind in ("cf", "bosh", "failed_provision", "name_mismatch", "in_flight"):
        assert keys[kind] == sorted(us.get(kind, [])), kind
    assert keys["vault"] == []  # a Vault entry names no foundation: not judged while one is down
    not_evaluated = out["phases"]["orphans"]["not_evaluated"]
    assert all("partly: foundation(s) eu did not answer" in not_evaluated[k] for k in ("cf", "bosh", "vault"))
    # ... no eu instance touched, and the us instances reconciled as usual
    eu_ids = set(expected["by_foundation"]["eu"])
    changed = changed_paths(before, after)
    assert not {p for p in changed if any(f"/{i}" in p for i in eu_ids)}
    assert all(after["secret/db"].get(i) == before["secret/db"].get(i) for i in eu_ids)
    us_recoverable = [i for i in expected["recoverable_credentials"] if i in expected["by_foundation"]["us"]]
    assert us_recoverable
    for iid in us_recoverable:
        assert after.get(f"secret/{iid}/credentials"), iid


def test_one_director_down_degrades_only_the_share_it_serves():
    """east (serving only us) down: eu's share (its instances, west's deployments, which serve
    every foundation, and both foundations answered) is judged and written as usual; no us
    instance is touched and no finding is judged on east's missing evidence."""
    world, expected = generate_multi(12, seed=1)
    with scenario(world) as sc:
        sc.set_faults({"bosh": {"down": True}})  # the first director, east
        before = sc.vault_contents()
        run = sc.run_once()
        after = sc.vault_contents()
        keys = finding_keys(store_of(sc))

    assert run["status"] == "SUCCEEDED", run["cause"]
    out = run["output"]
    assert out["status"] == "succeeded_with_errors"
    bosh = out["phases"]["discover_bosh"]
    assert bosh["failed_directors"] == ["east"] and bosh["ok_directors"] == ["west"]
    eu = expected["orphans_by_foundation"]["eu"]
    for kind in ("cf", "bosh", "failed_provision", "name_mismatch"):
        assert keys[kind] == sorted(eu.get(kind, [])), kind  # eu's share judged, nothing of us's
    # (the shared guid is neither: which foundation's instance Vault's record is may rest on east)
    assert keys["in_flight"] == expected["orphans"]["in_flight"]  # CF's evidence alone: judged whole
    assert keys["vault"] == []  # an index entry names no foundation: not judged while anything is down
    not_evaluated = out["phases"]["orphans"]["not_evaluated"]
    assert all("partly: director(s) east did not answer" in not_evaluated[k] for k in ("cf", "bosh", "vault"))
    us_ids = set(expected["by_foundation"]["us"])
    changed = changed_paths(before, after)
    assert not {p for p in changed if any(f"/{i}" in p for i in us_ids)}
    assert all(after["secret/db"].get(i) == before["secret/db"].get(i) for i in us_ids)
    eu_recoverable = [i for i in expected["recoverable_credentials"] if i in expected["by_foundation"]["eu"]]
    assert eu_recoverable
    for iid in eu_recoverable:
        assert after.get(f"secret/{iid}/credentials"), iid


def test_a_director_serving_every_foundation_down_leaves_only_the_other_directors_deployments_judged():
    """west (serving every foundation) down: no CF instance's finding can be judged (its
    deployment could be on west), east's deployments without a CF instance are (east serves us, which answered);
    us's instances matched on east are written as usual, eu's left as they are."""
    world, expected = generate_multi(12, seed=1)
    with scenario(world) as sc:
        sc.set_faults({"bosh:west": {"down": True}})
        before = sc.vault_contents()
        run = sc.run_once()
        after = sc.vault_contents()
        keys = finding_keys(store_of(sc))

    assert run["status"] == "SUCCEEDED", run["cause"]
    out = run["output"]
    assert out["status"] == "succeeded_with_errors"
    assert out["phases"]["discover_bosh"]["failed_directors"] == ["west"]
    us = expected["orphans_by_foundation"]["us"]
    assert keys["bosh"] == sorted(us.get("bosh", []))  # east's deployments without a CF instance
    # a finding of a us instance waits for every director serving us (west could hold another
    # deployment of it): even the name mismatch of an instance matched on east
    for kind in ("cf", "failed_provision", "vault", "name_mismatch"):
        assert keys[kind] == [], kind
    assert keys["in_flight"] == expected["orphans"]["in_flight"]
    eu_ids = set(expected["by_foundation"]["eu"])
    changed = changed_paths(before, after)
    assert not {p for p in changed if any(f"/{i}" in p for i in eu_ids)}
    us_recoverable = [i for i in expected["recoverable_credentials"] if i in expected["by_foundation"]["us"]]
    assert us_recoverable
    for iid in us_recoverable:
        assert after.get(f"secret/{iid}/credentials"), iid
