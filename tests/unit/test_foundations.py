"""Several foundations and directors in the domain: an instance is (foundation, guid), a
deployment is matched only to instances its director serves."""

from __future__ import annotations

import pytest

from mockstack.world import WorldError, parts, validate_world
from reconciler.api.status import api_labels, labelled_orphans, orphan_shares
from reconciler.config import load_settings
from reconciler.domain import DomainConfig, FindingKind, build_plan_items, match, observations_from, update_orphans
from reconciler.domain.shares import hold_back, share_of
from reconciler.errors import ConfigError
from reconciler.models import BoshDeployment
from tests.unit.domain_support import CATALOG, cf_instance

G = "8bfe4c1b-9e18-45b1-83be-124163f31f9e"
OK = {"cf": "ok", "bosh": "ok", "vault": "ok"}


def dep(director, uid=G):
    return BoshDeployment(director=director, name=f"redis-standalone-{uid}")


def test_a_shared_guid_is_two_instances_and_the_director_decides_which_one_is_deployed():
    us, eu = cf_instance(G, foundation="us"), cf_instance(G, foundation="eu")
    cfg = DomainConfig(director_foundations={"east": ["us"]})
    res = match([us, eu], [dep("east")], {}, CATALOG, cfg)
    (m,) = res.matches
    assert m.foundation == "us" and m.in_cf and res.foundations == {G: "us"}
    assert res.twin_instances == [f"eu:{G}"] and res.unmatched_instances == []
    (item,) = build_plan_items(res, instances=[us, eu])
    assert item.cf.foundation == "us"  # Vault's record is the us instance's; the twin is never written
    (obs,) = observations_from(res, [us, eu])
    assert (obs.foundation, obs.director) == ("us", "east")
    state = update_orphans({}, res, source_status=OK, now="2026-01-01T00:00:00Z").state
    assert list(state[FindingKind.CF.value]) == [f"eu:{G}"]
    assert state[FindingKind.CF.value][f"eu:{G}"]["foundation"] == "eu"


def test_without_a_director_restriction_the_index_entry_decides_or_it_is_a_conflict():
    us, eu = cf_instance(G, foundation="us"), cf_instance(G, foundation="eu")
    res = match([us, eu], [dep("west")], {}, CATALOG, DomainConfig())
    assert res.matches == [] and res.conflicts[0].kind == "instance_in_two_foundations"
    res = match([us, eu], [dep("west")], {G: {"plan_id": "redis-standalone", "foundation": "eu"}}, CATALOG)
    assert res.matches[0].foundation == "eu" and res.twin_instances == [f"us:{G}"]


def test_a_deployment_is_never_matched_to_an_instance_of_a_foundation_its_director_does_not_serve():
    res = match([cf_instance(G, foundation="eu")], [dep("east")], {}, CATALOG,
                DomainConfig(director_foundations={"east": ["us"]}))
    (m,) = res.matches
    assert not m.in_cf and any("does not serve" in n for n in m.notes)  # a deployment without its CF instance
    assert res.unmatched_instances == [G]


def test_director_foundations_come_from_the_configuration_and_are_checked():
    base = ("cf:\n  - {name: us, api_url: 'https://api.us', client_id: c, client_secret: s}\n"
            "  - {name: eu, api_url: 'https://api.eu', client_id: c, client_secret: s}\n"
            "bosh:\n  - {name: east, url: 'https://east:25555', client_id: c, client_secret: s, foundations: [us]}\n"
            "  - {name: west, url: 'https://west:25555', client_id: c, client_secret: s}\n")
    cfg = DomainConfig.from_settings(load_settings(env={}, file_text=base))
    assert cfg.director_foundations == {"east": ["us"]} and cfg.serves("west", "eu") and not cfg.serves("east", "eu")
    with pytest.raises(ConfigError, match="foundations ap are not configured; accepted: eu, us"):
        load_settings(env={}, file_text=base.replace("foundations: [us]", "foundations: [ap]"))


def test_world_files_hold_one_or_several_named_foundations_and_directors():
    one = validate_world({"cf": {}, "bosh": {}, "vault": {}})
    assert [p["name"] for p in parts(one, "cf")] == ["cf"]
    many = validate_world({"cf": [{"name": "us"}, {"name": "eu"}], "bosh": [{"name": "a", "foundations": ["us"]}],
                           "vault": {}})
    assert [p["name"] for p in parts(many, "cf")] == ["us", "eu"] and parts(many, "bosh")[0]["foundations"] == ["us"]
    for bad, where in (({"cf": [{}]}, "cf[0]"), ({"cf": [{"name": "x"}, {"name": "x"}]}, "cf[1].name"),
                       ({"cf": []}, "cf"), ({"cf": [{"name": "x", "apps": 3}]}, "cf[0].apps")):
        with pytest.raises(WorldError) as err:
            validate_world({"cf": {}, "bosh": {}, "vault": {}, **bad})
        assert err.value.path == where, (bad, err.value)


def test_one_foundation_down_judges_only_the_healthy_share():
    H = "0d4e1a6c-3f1e-4b8a-9c6d-2e7f8a9b0c1d"
    us = cf_instance(G, foundation="us")
    cfg = DomainConfig(director_foundations={"east": ["us"]})
    deps = [dep("east", "5a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"), dep("west", H)]  # neither has a CF instance
    res = match([us], deps, {}, CATALOG, cfg)
    status = {"cf:us": "ok", "cf:eu": "failed", "bosh": "ok", "vault": "ok"}
    old = {"bosh": {"old-west": {"key": "old-west", "director": "west", "first_seen": "x", "checks": 2}},
           "vault": {H: {"key": H, "instance_id": H, "first_seen": "x", "checks": 1}}}
    up = update_orphans(old, res, source_status=status, now="2026-01-01T00:00:00Z", index={H: {"plan_id": "p"}},
                        serves=cfg.director_foundations)
    assert sorted(up.state["cf"]) == [G]  # us answered, BOSH answered: judged
    # east serves only us: judged; west serves eu too: not judged, its old finding kept as it was
    assert sorted(up.state["bosh"]) == ["old-west", "redis-standalone-5a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"]
    assert up.state["bosh"]["old-west"]["checks"] == 2
    assert up.state["vault"] == old["vault"]  # no foundation known: kept
    assert all(up.skipped[k].startswith("partly: foundation(s) eu") for k in ("cf", "bosh", "vault"))


def test_one_director_down_judges_only_the_share_it_does_not_serve():
    H = "0d4e1a6c-3f1e-4b8a-9c6d-2e7f8a9b0c1d"
    us, eu = cf_instance(G, foundation="us"), cf_instance(H, foundation="eu")
    cfg = DomainConfig(director_foundations={"east": ["us"]})
    deps = [dep("west", "5a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d")]  # east did not answer; west's has no CF instance
    res = match([us, eu], deps, {}, CATALOG, cfg)
    status = {"cf": "ok", "bosh:east": "failed", "bosh:west": "ok", "vault": "ok"}
    old = {"cf": {G: {"key": G, "instance_id": G, "foundation": "us", "first_seen": "x", "checks": 3}},
           "bosh": {"old-east": {"key": "old-east", "director": "east", "first_seen": "x", "checks": 2}}}
    up = update_orphans(old, res, source_status=status, now="2026-01-01T00:00:00Z", serves=cfg.director_foundations)
    # eu is served by west alone, which answered: judged; us may have its deployment on east: kept as it was
    assert up.state["cf"][G]["checks"] == 3 and sorted(up.state["cf"]) == sorted([G, H])
    assert up.newly_orphaned["cf"] == [H] and up.resolved["cf"] == []
    # west serves every foundation and both answered: judged; east's old finding kept
    assert sorted(up.state["bosh"]) == ["old-east", "redis-standalone-5a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"]
    assert up.skipped["cf"].startswith("partly: director(s) east did not answer")
    # the same with every director up: east's old finding is judged (resolved)
    whole = update_orphans(old, res, source_status=OK, now="2026-01-01T00:00:00Z", serves=cfg.director_foundations)
    assert "old-east" not in whole.state["bosh"] and "cf" not in whole.skipped


def test_a_director_down_holds_back_the_instances_whose_deployment_it_may_hold():
    H = "0d4e1a6c-3f1e-4b8a-9c6d-2e7f8a9b0c1d"
    cfg = DomainConfig(director_foundations={"east": ["us"]})
    insts = [cf_instance(G, foundation="us"), cf_instance(H, foundation="eu"), cf_instance(G, foundation="eu")]
    res = match(insts, [], {}, CATALOG, cfg)
    items = build_plan_items(res, instances=insts)
    held = {i.instance_id: i.skip_reason for i in hold_back(items, ["east"], cfg, res)}
    assert held[H] == ""  # eu: east does not serve it
    assert held[G].startswith("BOSH director(s) east did not answer")  # a guid of us (and eu): east may hold it
    assert all(not i.skip_reason for i in hold_back(items, [], cfg, res))
    assert {i.instance_id: bool(i.skip_reason) for i in hold_back(items, ["west"], cfg, res)} == {G: True, H: True}


def test_share_of_is_none_when_nothing_is_split_or_a_whole_source_is_down():
    assert share_of(OK) is None
    assert share_of({"cf": "failed", "bosh:a": "ok", "bosh:b": "failed", "vault": "ok"}) is None
    assert share_of({"cf:x": "failed", "cf:y": "failed", "bosh": "ok"}) is None
    s = share_of({"cf:x": "ok", "cf:y": "failed", "bosh:a": "ok", "bosh:b": "failed"}, {"a": ["x"]})
    assert s is not None and s.why() == "foundation(s) y and director(s) b did not answer"
    assert not s.judged("x", None)  # b serves every foundation and is down
    assert s.judged(None, "a")  # a serves x only, and both answered
    assert not s.judged(None, None)


ORPHANS = {"cf": {"eu:" + G: {"instance_id": G, "foundation": "eu", "director": None},
                  G: {"instance_id": G, "foundation": "us", "director": None}},
           "bosh": {"redis-x": {"deployment_name": "redis-x", "director": "west"}},
           "vault": {G: {"instance_id": G}}}


def test_findings_are_counted_per_foundation_and_director():
    rows = {(r["kind"], r["foundation"], r["director"]): r["count"]
            for r in orphan_shares(ORPHANS, ["us", "eu"], ["east", "west"])}
    assert rows[("cf", "us", "")] == 1 and rows[("cf", "eu", "")] == 1  # (foundation, guid): two instances
    assert rows[("bosh", "", "west")] == 1 and rows[("vault", "", "")] == 1  # unknown among several: empty
    assert rows[("in_flight", "", "")] == 0  # every kind present
    single = {(r["kind"], r["foundation"], r["director"]): r["count"]
              for r in orphan_shares({"vault": {G: {"instance_id": G}}}, ["cf"], ["bosh"])}
    assert single[("vault", "cf", "bosh")] == 1 and single[("cf", "cf", "bosh")] == 0  # the one name
    labelled = labelled_orphans(ORPHANS, ["us", "eu"], ["east", "west"])
    assert labelled["cf"]["eu:" + G]["foundation"] == "eu" and labelled["bosh"]["redis-x"]["director"] == "west"


def test_metrics_label_findings_and_per_api_figures_with_the_foundation_and_director():
    from prometheus_client.parser import text_string_to_metric_families

    from reconciler.api import metrics_text
    from reconciler.resilience import per_member

    counts = per_member({"api_requests_total__cf": 7, "api_errors_total__cf": 1, "cache_hits_total": 2}, "eu-1")
    assert counts["api_requests_total__cf"] == 7 and "cache_hits_total__m_" not in str(counts)
    figures = {**counts, **per_member({"api_requests_total__bosh": 3}, "west")}
    shares = orphan_shares(ORPHANS, ["us", "eu"], ["east", "west"])
    text = metrics_text.render(figures, {}, running=False, shares=shares)
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    findings = {(s.labels["kind"], s.labels["foundation"], s.labels["director"]): s.value
                for s in fams["blacksmith_reconciler_findings"].samples}
    assert findings[("cf", "eu", "")] == 1 and findings[("bosh", "", "west")] == 1
    member = {(s.labels["api"], s.labels["foundation"], s.labels["director"]): s.value
              for s in fams["blacksmith_reconciler_member_api_requests"].samples}
    assert member == {("cf", "eu-1", ""): 7, ("bosh", "", "west"): 3}
    totals = {s.labels["api"]: s.value for s in fams["blacksmith_reconciler_api_requests"].samples}
    assert totals == {"cf": 7, "bosh": 3}  # the per-member counters are not counted twice
    assert api_labels("cf:eu:uaa") == {"foundation": "eu", "director": ""}
    assert api_labels("bosh:west") == {"foundation": "", "director": "west"} and api_labels("vault")["director"] == ""


def test_the_orphan_listing_names_each_findings_foundation_and_director():
    from reconciler.cli.render import findings_text

    text = findings_text(labelled_orphans(ORPHANS, ["us", "eu"], ["east", "west"]))
    assert "FOUNDATION" in text and "DIRECTOR" in text
    line = next(x for x in text.splitlines() if "redis-x" in x)
    assert "west" in line
