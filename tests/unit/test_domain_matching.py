import uuid

from reconciler.domain import DomainConfig, Strategy, is_excluded_name, match
from reconciler.models import BoshDeployment, NameVersion
from tests.unit.domain_support import CATALOG, cf_instance, detail, redis_manifest

A = "8bfe4c1b-9e18-45b1-83be-124163f31f9e"
B = "0d4e1a6c-3f1e-4b8a-9c6d-2e7f8a9b0c1d"
C = "5a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"


def test_uuid_pattern_match_with_dashed_plan_ids():
    deps = [
        detail(f"redis-cache-small-{A}", redis_manifest(f"redis-cache-small-{A}", A)),
        detail(f"postgresql-ha-large-v2-{B}", None, release="postgres"),
    ]
    res = match([cf_instance(A, "redis-cache-small"), cf_instance(B, "postgresql-ha-large-v2")], deps, {}, CATALOG)
    by = res.by_instance()
    assert by[A].deployment_name == f"redis-cache-small-{A}"
    assert by[A].strategy == Strategy.UUID_PATTERN and by[A].confidence == 1.0
    assert {e.strategy for e in by[A].evidence} == {Strategy.UUID_PATTERN, Strategy.MANIFEST_METADATA}
    assert by[B].plan_id == "postgresql-ha-large-v2" and by[B].service_id == "postgresql"
    assert by[A].in_cf and by[B].in_cf
    assert res.unmatched_instances == [] and res.conflicts == []


def test_uppercase_uuid_in_name_is_normalised():
    res = match([cf_instance(A)], [BoshDeployment(director="bosh", name=f"redis-standalone-{A.upper()}")], {}, CATALOG)
    assert res.by_instance()[A].deployment_name == f"redis-standalone-{A.upper()}"


def test_manifest_metadata_matches_legacy_name():
    # Name follows no pattern; Blacksmith's meta.params.instance_id identifies it.
    res = match([cf_instance(A)], [detail("my-old-redis", redis_manifest("my-old-redis", A.upper()))], {}, CATALOG)
    m = res.by_instance()[A]
    assert m.strategy == Strategy.MANIFEST_METADATA and m.confidence == 0.9
    assert "meta.params.instance_id" in m.reason


def test_properties_blacksmith_block():
    text = redis_manifest(
        "legacy", None, properties={"blacksmith": {"service_id": "redis", "plan_id": "x", "instance_id": A}}
    )
    res = match([cf_instance(A)], [detail("legacy", text)], {}, CATALOG)
    m = res.by_instance()[A]
    assert "properties.blacksmith.instance_id" in m.reason
    assert m.plan_id == "redis-standalone"  # CF is authoritative for the plan
    assert any("differs" in n for n in m.notes)


def test_conflict_name_vs_manifest_is_flagged_not_resolved():
    name = f"redis-standalone-{A}"
    res = match([cf_instance(A), cf_instance(B)], [detail(name, redis_manifest(name, B))], {}, CATALOG)
    assert res.matches == []
    (c,) = res.conflicts
    assert c.kind == "instance_mismatch" and c.instance_ids == sorted([A, B])
    assert any(A in f for f in c.facts) and any(B in f for f in c.facts)
    assert set(res.conflicted_instances) == {A, B}
    assert res.unmatched_instances == []  # not CF orphans either: we don't know


def test_two_deployments_for_one_instance_conflict():
    deps = [
        BoshDeployment(director="bosh", name=f"redis-standalone-{A}"),
        BoshDeployment(director="bosh", name=f"redis-cache-{A}"),
    ]
    res = match([cf_instance(A)], deps, {}, CATALOG)
    assert res.matches == [] and res.conflicts[0].kind == "duplicate_deployments"
    assert len(res.conflicts[0].deployments) == 2


def test_exclusions_default_and_service_named_like_excluded_word():
    deps = [
        BoshDeployment(director="bosh", name=n)
        for n in [
            "cf",
            "bosh",
            "concourse-workers",
            "prometheus",
            "vault",
            "shield-v8",
            "grafana",
            "blacksmith",
            f"vault-standard-{A}",
            "cfcr",
            "redis-thing",
        ]
    ]
    res = match([cf_instance(A, "vault-standard")], deps, {}, CATALOG)
    assert set(res.excluded_deployments) == {
        "cf",
        "bosh",
        "concourse-workers",
        "prometheus",
        "vault",
        "shield-v8",
        "grafana",
        "blacksmith",
    }
    assert res.by_instance()[A].deployment_name == f"vault-standard-{A}"
    assert {u.name for u in res.unidentified_deployments} == {"cfcr", "redis-thing"}


def test_excluded_list_is_configurable():
    cfg = DomainConfig(excluded_deployments=["logsearch"])
    assert is_excluded_name("logsearch-2", cfg.excluded_deployments)
    assert not is_excluded_name("cf", cfg.excluded_deployments)
    assert is_excluded_name("CF", DomainConfig().excluded_deployments)


def test_bosh_only_run_uses_index_as_catalog():
    index = {
        A: {"service_id": "redis", "plan_id": "redis-cache-small"},
        C: {"service_id": "redis", "plan_id": "standalone"},
    }
    deps = [
        BoshDeployment(director="bosh", name=f"redis-cache-small-{A}"),
        BoshDeployment(director="bosh", name=f"redis-cache-small-{B}"),  # plan known from the index
        BoshDeployment(director="bosh", name=f"redis-standalone-{C}"),
    ]  # legacy unprefixed plan id
    res = match(None, deps, index, [])
    by = res.by_instance()
    assert set(by) == {A, B, C}
    assert not any(m.in_cf for m in res.matches)
    assert by[C].plan_id == "standalone" and "legacy" in by[C].reason


def test_index_deployment_name_and_uuid_suffix_strategies():
    index = {A: {"service_id": "redis", "plan_id": "p", "deployment_name": "weird-name"}}
    deps = [BoshDeployment(director="bosh", name="weird-name"), BoshDeployment(director="bosh", name=f"other-plan-{B}")]
    res = match([cf_instance(A), cf_instance(B)], deps, index, CATALOG)
    by = res.by_instance()
    assert by[A].strategy == Strategy.INDEX
    assert by[B].strategy == Strategy.UUID_SUFFIX and by[B].confidence < 1.0


def test_stale_index_entry_never_outvotes_the_name():
    index = {B: {"service_id": "redis", "plan_id": "redis-standalone", "deployment_name": f"redis-standalone-{A}"}}
    res = match([cf_instance(A)], [BoshDeployment(director="bosh", name=f"redis-standalone-{A}")], index, CATALOG)
    m = res.by_instance()[A]
    assert res.conflicts == [] and any(B in n for n in m.notes)


def test_name_pattern_and_release_inference_are_low_confidence():
    deps = [
        detail(f"backup-of-{A}-old", None, release="postgres"),
        detail("mystery-db", None, release="postgres"),
    ]
    res = match([cf_instance(A, "postgresql-small")], deps, {}, CATALOG)
    m = res.by_instance()[A]
    assert m.strategy == Strategy.NAME_PATTERN and m.confidence == 0.5
    (u,) = res.unidentified_deployments
    assert u.name == "mystery-db" and u.service_hint == "postgresql" and u.strategy == Strategy.RELEASE
    assert u.confidence < 0.5


def test_malformed_manifest_is_recorded_not_raised():
    name = f"redis-standalone-{A}"
    for bad in ["key: [unclosed", "- just\n- a list\n", "", "\t\x00bad"]:
        res = match([cf_instance(A)], [detail(name, bad)], {}, CATALOG)
        assert name in res.malformed_manifests
        assert res.by_instance()[A].strategy == Strategy.UUID_PATTERN  # the name still matches


def test_invalid_guids_are_ignored_and_invalid_manifest_ids_noted():
    res = match(
        [cf_instance("not-a-uuid")], [detail(f"redis-standalone-{A}", redis_manifest("x", "nope"))], {}, CATALOG
    )
    assert "not-a-uuid" in res.ignored_instances
    m = res.by_instance()[A]
    assert not m.in_cf and any("not a UUID" in n for n in m.notes)


def test_unmatched_and_unscanned():
    res = match([cf_instance(A)], [detail("something", None, error="timeout")], {}, CATALOG)
    assert res.unmatched_instances == [A]
    assert res.scan_failures == {"something": "timeout"}


def test_many_random_instances_match_exactly():
    ids = [str(uuid.UUID(int=i * 7919 + 1, version=4)) for i in range(200)]
    plans = [p.plan_id for p in CATALOG]
    insts = [cf_instance(u, plans[i % len(plans)]) for i, u in enumerate(ids)]
    deps = [
        BoshDeployment(
            director="bosh", name=f"{plans[i % len(plans)]}-{u}", releases=[NameVersion(name="x", version="1")]
        )
        for i, u in enumerate(ids)
    ]
    res = match(insts, deps, {}, CATALOG)
    assert len(res.matches) == 200 and all(
        m.plan_id == plans[i % len(plans)]
        for i, m in enumerate(sorted(res.matches, key=lambda m: ids.index(m.instance_id)))
    )


def test_domain_config_from_real_settings():
    from reconciler.config import load_settings

    s = load_settings(env={}, file_text="reconciler:\n  matching:\n    excluded_deployments: [logsearch]\n")
    cfg = DomainConfig.from_settings(s)
    assert cfg.excluded_deployments == ["logsearch"] and cfg.release_services["redis-forge"] == "redis"
    assert cfg.mount == "secret"
    assert DomainConfig.from_settings(object()) == DomainConfig()
