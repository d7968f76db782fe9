"""Custom matching rules (reconciler.matching.rules[]): validation at load, matching, properties."""

from __future__ import annotations

import string

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.config import load_settings
from reconciler.domain import DomainConfig, MatchingRule, Strategy, match
from reconciler.domain.uuids import normalize_uuid
from reconciler.errors import ConfigError
from reconciler.models import BoshDeployment
from tests.unit.domain_support import CATALOG, cf_instance, detail, redis_manifest

A = "8bfe4c1b-9e18-45b1-83be-124163f31f9e"
B = "0d4e1a6c-3f1e-4b8a-9c6d-2e7f8a9b0c1d"


def cfg_of(*rules: dict, **kw) -> DomainConfig:
    return DomainConfig(rules=[MatchingRule(index=i, **r) for i, r in enumerate(rules)], **kw)


def settings_with(rules_yaml: str):
    return load_settings(env={}, file_text="reconciler:\n  matching:\n    rules:\n" + rules_yaml)


def config_error(rules_yaml: str) -> str:
    with pytest.raises(ConfigError) as err:
        settings_with(rules_yaml)
    return str(err.value)


# --- validation ---------------------------------------------------------------------------


def test_rules_load_in_order_into_the_domain_config():
    s = settings_with(
        "      - name: legacy\n"
        "        name_regex: '^legacy-(?P<plan>[a-z-]+)-(?P<instance>[0-9a-f-]{36})$'\n"
        "        confidence: 0.75\n"
        "      - manifest_path: properties.tenant.instance\n"
        "        before: yes\n"
        "        service: redis\n"
    )
    rules = DomainConfig.from_settings(s).rules
    assert [(r.index, r.name, r.before, r.confidence) for r in rules] == [(0, "legacy", False, 0.75),
                                                                          (1, None, True, 0.6)]
    assert rules[1].label == "rule 1" and rules[0].label == "rule 0 'legacy'"


@pytest.mark.parametrize(
    ("rules_yaml", "parts"),
    [
        ("      - name_regex: '(('\n", ["rules[0].name_regex", "'(('", "line 4", "not a valid regular expression",
                                         "named groups: instance, service, plan"]),
        ("      - manifest_path: a.b\n      - name_regex: '^x-(?P<tenant>.*)$'\n",
         ["rules[1].name_regex", "line 5", "unknown named group(s) tenant"]),
        ("      - name_regex: '^redis-.*'\n", ["rules[0]", "line 4", "no (?P<instance>...) group"]),
        ("      - service: redis\n", ["rules[0]", "needs name_regex", "or manifest_path"]),
        ("      - name_regex: '(?P<instance>.*)'\n        manifest_path: meta.params.instance_id\n",
         ["rules[0]", "keep one"]),
        ("      - manifest_path: 'meta..id'\n", ["rules[0].manifest_path", "not a dotted manifest path"]),
        ("      - manifest_path: a.b\n        confidence: 0\n", ["rules[0].confidence", "0", "from 0 to 1"]),
        ("      - manifest_path: a.b\n        confidence: 1.5\n", ["rules[0].confidence", "1.5", "line 5"]),
        ("      - manifest_path: a.b\n        befor: true\n", ["rules[0].befor", "unknown key", "'before'"]),
        ("      - manifest_path: a.b\n        before: sometimes\n", ["rules[0].before", "true/false"]),
    ],
)
def test_bad_rules_name_the_rule_index_key_line_and_what_is_accepted(rules_yaml, parts):
    msg = config_error(rules_yaml)
    for part in parts:
        assert part in msg, (part, msg)
    assert "Traceback" not in msg


def test_a_single_mapping_instead_of_a_list_is_refused():
    with pytest.raises(ConfigError, match="give a list of rules"):
        load_settings(env={}, file_text="reconciler:\n  matching:\n    rules:\n      manifest_path: a.b\n")


def test_rules_from_the_environment_are_json():
    env = {"BLACKSMITH_RECONCILER_MATCHING_RULES": '[{"manifest_path": "meta.id", "before": "true"}]'}
    (rule,) = load_settings(env=env).reconciler.matching.rules
    assert rule.before and rule.manifest_path == "meta.id"
    with pytest.raises(ConfigError) as err:
        load_settings(env={"BLACKSMITH_RECONCILER_MATCHING_RULES": "manifest_path=meta.id"})
    assert "BLACKSMITH_RECONCILER_MATCHING_RULES" in str(err.value) and "JSON" in str(err.value)


# --- matching -----------------------------------------------------------------------------


def test_after_rule_identifies_what_the_builtins_cannot():
    cfg = cfg_of({"name": "legacy", "name_regex": r"^legacy-(?P<plan>[a-z-]+)--(?P<instance>[0-9a-fA-F-]{36})$",
                  "confidence": 0.65})
    # A is not a CF instance (a deployment CF lost): only the rule can name it
    dep = BoshDeployment(director="bosh", name=f"legacy-redis-cache--{A}")
    res = match([cf_instance(B)], [dep], {}, CATALOG, cfg)
    m = res.by_instance()[A]
    assert m.strategy == Strategy.RULE and m.confidence == 0.65 and not m.in_cf
    assert "rule 0 'legacy'" in m.reason and "name matches" in m.reason
    assert m.plan_id == "redis-cache" and m.service_id == "redis"
    assert match([cf_instance(B)], [dep], {}, CATALOG, DomainConfig()).matches == []


def test_after_rule_is_not_asked_when_a_builtin_strategy_names_an_instance():
    cfg = cfg_of({"name_regex": r"(?P<instance>[0-9a-f-]{36})$", "plan": "other"})
    name = f"redis-standalone-{A}"
    m = match([cf_instance(A)], [detail(name, redis_manifest(name, A))], {}, CATALOG, cfg).by_instance()[A]
    assert Strategy.RULE not in {e.strategy for e in m.evidence}


def test_manifest_path_rule_reads_lists_and_nested_properties():
    manifest = redis_manifest("tenant-db", None, properties={"tenant": {"ids": [{"instance": A.upper()}]}})
    cfg = cfg_of({"manifest_path": "properties.tenant.ids.0.instance", "service": "redis", "plan": "redis-cache"})
    m = match([cf_instance(A)], [detail("tenant-db", manifest)], {}, CATALOG, cfg).by_instance()[A]
    assert m.strategy == Strategy.RULE and "manifest properties.tenant.ids.0.instance" in m.reason
    assert any("differs" in n for n in m.notes)  # CF's plan is authoritative, the difference is noted


def test_before_rule_wins_over_a_misleading_name_and_says_so():
    name = f"redis-standalone-{B}"  # the name claims B, the team's convention puts the real id in the manifest
    manifest = redis_manifest(name, None, properties={"owner": {"instance": A}})
    cfg = cfg_of({"name": "owner", "manifest_path": "properties.owner.instance", "before": True})
    res = match([cf_instance(A), cf_instance(B)], [detail(name, manifest)], {}, CATALOG, cfg)
    m = res.by_instance()[A]
    assert m.strategy == Strategy.RULE and res.conflicts == []
    assert any(B in n and "takes precedence" in n for n in m.notes)
    assert res.unmatched_instances == [B]


def test_first_applying_rule_wins_and_non_uuid_falls_through_to_the_next():
    cfg = cfg_of({"name_regex": r"^x-(?P<instance>[^-]+)-"}, {"name_regex": r"-(?P<instance>[0-9a-f-]{36})$"})
    res = match([cf_instance(B)], [BoshDeployment(director="bosh", name=f"x-notauuid-{A}")], {}, CATALOG, cfg)
    m = res.by_instance()[A]
    assert "rule 1" in m.reason and any("rule 0" in n and "not a UUID" in n for n in m.notes)


def test_rule_restricted_to_directors_and_foundations():
    dep = detail("tenant-db", redis_manifest("tenant-db", None, properties={"owner": A}), director="east")
    base = {"manifest_path": "properties.owner"}
    assert match([cf_instance(A)], [dep], {}, CATALOG, cfg_of({**base, "directors": ["west"]})).matches == []
    res = match([cf_instance(A)], [dep], {}, CATALOG, cfg_of({**base, "foundations": ["eu"]}))
    assert res.matches == [] and res.unmatched_instances == [A]
    assert match([cf_instance(A, foundation="eu")], [dep], {}, CATALOG, cfg_of({**base, "foundations": ["eu"]})).matches
    served = cfg_of(base, director_foundations={"east": ["us"]})
    res = match([cf_instance(A, foundation="eu")], [dep], {}, CATALOG, served)
    assert res.matches == [] and res.unidentified_deployments[0].name == "tenant-db"
    assert match([cf_instance(A, foundation="us")], [dep], {}, CATALOG, served).matches


def test_decisions_are_logged_with_the_rule(caplog):
    import logging

    from reconciler.phases.match import log_decisions

    cfg = cfg_of({"name": "legacy", "name_regex": r"^legacy--(?P<instance>.+)$"})
    res = match([cf_instance(B)], [BoshDeployment(director="bosh", name=f"legacy--{A}")], {}, CATALOG, cfg)
    with caplog.at_level(logging.DEBUG, logger="reconciler.phases.match"):
        log_decisions(res)
    assert any("custom_rule" in r.getMessage() and "rule 0 'legacy'" in r.getMessage() for r in caplog.records)


# --- properties ---------------------------------------------------------------------------

PROFILE = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FOUNDATIONS = ["us", "eu", "ap"]
DIRECTORS = ["east", "west"]
junk = st.text(alphabet=string.ascii_lowercase + string.digits + "-", min_size=1, max_size=40)
maybe_uuid = st.one_of(st.uuids().map(str), st.uuids().map(lambda u: str(u).upper()), junk,
                       st.uuids().map(lambda u: str(u)[:-1] + "g"), st.uuids().map(lambda u: f" {u}\n"))
rule_st = st.builds(
    dict,
    name_regex=st.sampled_from([r"^legacy-(?P<instance>.+)$", r"(?P<instance>[^/]+)$", r"^legacy-(?P<instance>.{36})"]),
    before=st.booleans(),
    confidence=st.floats(0.05, 1.0),
    foundations=st.lists(st.sampled_from(FOUNDATIONS), max_size=2, unique=True),
    directors=st.lists(st.sampled_from(DIRECTORS), max_size=1),
)


@st.composite
def world(draw):
    ids = draw(st.lists(st.uuids().map(str), min_size=1, max_size=6, unique=True))
    instances = [cf_instance(u, foundation=draw(st.sampled_from(FOUNDATIONS))) for u in ids]
    deployments = []
    for _ in range(draw(st.integers(1, 8))):
        tail = draw(st.one_of(st.sampled_from(ids), maybe_uuid))
        deployments.append(BoshDeployment(director=draw(st.sampled_from(DIRECTORS)), name=f"legacy-{tail}"))
    serves = draw(st.dictionaries(st.sampled_from(DIRECTORS), st.lists(st.sampled_from(FOUNDATIONS), unique=True)))
    rules = draw(st.lists(rule_st, min_size=1, max_size=3))
    return instances, deployments, cfg_of(*rules, director_foundations=serves)


@PROFILE
@given(world())
def test_a_rule_never_matches_another_foundation_nor_a_non_uuid(case):
    instances, deployments, cfg = case
    foundation = {i.guid: i.foundation for i in instances}
    res = match(instances, deployments, {}, CATALOG, cfg)
    for m in res.matches:
        rule_evidence = [e for e in m.evidence if e.strategy == Strategy.RULE]
        for e in rule_evidence:
            assert normalize_uuid(e.instance_id) == e.instance_id  # a normalised UUID, nothing else
            rule = cfg.rules[int(e.rule.split()[1])]
            f = foundation.get(m.instance_id)
            if rule.foundations:
                assert f in rule.foundations
            assert cfg.serves(m.director, f)
        assert normalize_uuid(m.instance_id) == m.instance_id


@PROFILE
@given(st.text(max_size=60), st.text(alphabet=string.printable, max_size=60))
def test_any_yaml_for_a_rule_is_either_accepted_or_one_clear_error(regex, path):
    text = yaml.safe_dump({"reconciler": {"matching": {"rules": [{"name_regex": regex, "manifest_path": path}]}}})
    try:
        load_settings(env={}, file_text=text)
    except ConfigError as exc:
        assert "rules[0]" in str(exc) and "Traceback" not in str(exc)


def test_the_plan_lists_the_decisions_rules_took_part_in():
    from reconciler.plans import rule_decisions

    cfg = cfg_of({"name": "legacy", "name_regex": r"^legacy--(?P<instance>.+)$"})
    deps = [BoshDeployment(director="bosh", name=f"legacy--{A}"), BoshDeployment(director="bosh",
                                                                                  name=f"redis-standalone-{B}")]
    res = match([cf_instance(B)], deps, {}, CATALOG, cfg)
    (d,) = rule_decisions(res.model_dump(mode="json"))
    assert d["instance_id"] == A and d["rule"] == "rule 0 'legacy'" and d["strategy"] == "custom_rule"
