"""Property tests: the index merge keeps broker data and is re-applicable; orphans need evidence."""

from __future__ import annotations

import copy
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from mockstack.generator import Drift, generate
from reconciler.domain import FindingKind, IndexObservation, MatchResult, empty_findings, merge_index, update_orphans
from reconciler.domain.types import Match, Strategy
from tests.unit.domain_support import WorldInputs
from tests.unit.test_domain_generated_worlds import NOW, check_expected, reconcile_once

uuids = st.uuids(version=4).map(str)
word = st.text(alphabet=string.ascii_lowercase + "-", min_size=1, max_size=10)
scalar = st.one_of(st.none(), st.integers(), word)
broker_entry = st.dictionaries(
    st.sampled_from(
        [
            "service_id",
            "plan_id",
            "organization_guid",
            "space_guid",
            "status",
            "requested_at",
            "created",
            "deployment_name",
            "instance_name",
            "custom",
        ]
    ),
    scalar,
)
index_st = st.dictionaries(st.one_of(uuids, uuids.map(str.upper), word), st.one_of(broker_entry, scalar), max_size=8)


def obs_st(keys):
    ids = st.one_of(uuids, uuids.map(str.upper), word, *([st.sampled_from(sorted(keys))] if keys else []))
    return st.lists(
        st.builds(
            IndexObservation,
            instance_id=ids,
            service_id=st.one_of(st.none(), word),
            plan_id=st.one_of(st.none(), word),
            deployment_name=st.one_of(st.none(), word),
            source=st.sampled_from(["cf", "bosh"]),
            organization_guid=st.one_of(st.none(), word),
        ),
        max_size=8,
    )


OWNED = {
    "service_id",
    "plan_id",
    "deployment_name",
    "reconciled_at",
    "orphaned",
    "organization_guid",
    "space_guid",
    "organization_name",
    "space_name",
    "instance_name",
    "created_at",
}


@settings(max_examples=700, deadline=None)
@given(index_st, st.data())
def test_merge_keeps_every_entry_and_broker_field_and_is_reapplicable(index, data):
    obs = data.draw(obs_st(index))
    before = copy.deepcopy(index)
    new, report = merge_index(index, obs, now=NOW)
    assert index == before  # input untouched
    for key, entry in before.items():
        assert key in new  # nothing deleted
        if not isinstance(entry, dict):
            assert new[key] == entry
            continue
        for k, v in entry.items():
            # a field we do not own is never changed; fill-only fields keep a non-empty value
            if k not in OWNED or (k in ("organization_guid", "space_guid", "instance_name") and v):
                assert new[key][k] == v
    again, report2 = merge_index(new, obs, now="2030-01-01T00:00:00Z")
    assert again == new and not report2.changed
    assert report.changed == (new != before)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(uuids, max_size=6, unique=True),
    st.lists(uuids, max_size=6, unique=True),
    st.fixed_dictionaries({s: st.sampled_from(["ok", "failed", "skipped"]) for s in ("cf", "bosh", "vault")}),
)
def test_orphans_never_marked_without_evidence(unmatched, bosh_only, status):
    result = MatchResult(
        unmatched_instances=sorted(unmatched),
        matches=[
            Match(
                instance_id=u,
                deployment_name=f"p-{u}",
                strategy=Strategy.UUID_PATTERN,
                confidence=1.0,
                reason="",
                in_cf=False,
            )
            for u in bosh_only
        ],
    )
    prev = {"cf": {"x": {"first_seen": "t0", "checks": 4}}, "bosh": {}, "vault": {"y": {"first_seen": "t0"}}}
    prev = {**empty_findings(), **prev}
    up = update_orphans(prev, result, source_status=status, now=NOW, index={"z": {}})
    for kind, sources in ((k.value, k.spec.needs) for k in FindingKind):
        if all(status[s] == "ok" for s in sources):
            assert kind not in up.skipped
            assert all(e["checks"] >= 1 and e["last_seen"] == NOW for e in up.state[kind].values())
        else:
            assert up.state[kind] == prev[kind] and kind in up.skipped


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 10**6), st.integers(5, 60))
def test_random_generated_worlds_reach_the_expected_outcome(seed, n):
    world, exp = generate(n, seed=seed, drift=Drift(non_service_deployments=3, foreign_deployments=1))
    w = WorldInputs(world)
    index_before = copy.deepcopy(w.index)
    result, batch, orphans, _ = reconcile_once(w, NOW)
    check_expected(world, exp, w, result, batch, orphans, index_before)
    _, batch2, _, report2 = reconcile_once(w, "2026-03-01T05:00:00Z", previous_orphans=orphans.state)
    assert batch2.writes == [] and not report2.changed
