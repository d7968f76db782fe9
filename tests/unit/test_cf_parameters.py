"""CF instance parameters: asked for only where a Vault record lost them, only where the
offering allows it, written where nothing is, never over the user's."""

from __future__ import annotations

from reconciler.domain import MatchResult, PlanItem, build_plan_items, needs_parameters, plan_instance
from reconciler.models import CatalogPlan
from tests.unit.domain_support import NOW, cf_instance

A = "8bfe4c1b-9e18-45b1-83be-124163f31f9e"
ROOT = f"secret/{A}"


def catalog(retrievable: bool) -> list[CatalogPlan]:
    return [CatalogPlan(foundation="cf", plan_guid="pg", plan_id="redis-standalone", plan_name="standalone",
                        service_guid="sg", service_id="redis", service_name="redis",
                        instances_retrievable=retrievable)]


def item(retrievable: bool = True) -> PlanItem:
    (it,) = build_plan_items(MatchResult(unmatched_instances=[A]), instances=[cf_instance(A)],
                             catalog=catalog(retrievable))
    return it


def test_only_records_without_parameters_of_retrievable_offerings_are_asked_for():
    assert item().parameters_retrievable and not item(False).parameters_retrievable
    assert needs_parameters(item(), {})  # the record is lost
    assert needs_parameters(item(), {ROOT: ({"instance_id": A}, 1)})  # the record has none
    assert not needs_parameters(item(), {ROOT: ({"instance_id": A, "parameters": None}, 1)})  # a key is the user's
    assert not needs_parameters(item(), {ROOT: ({"instance_id": A, "parameters": {}}, 1)})  # the user's, even empty
    assert not needs_parameters(item(False), {})  # CF would answer 400 CF-ServiceFetchInstanceParametersNotSupported
    assert not needs_parameters(item().model_copy(update={"cf": None}), {})  # not a CF instance this run
    assert not needs_parameters(item().model_copy(update={"parameters": {"x": 1}}), {})  # already fetched


def test_fetched_parameters_are_written_where_nothing_is():
    for current in ({}, {ROOT: ({"instance_id": A}, 3)}):
        plan = plan_instance(A, current=current, now=NOW, cf=cf_instance(A), parameters={"maxmemory": "2gb"})
        (root,) = [w for w in plan.writes if w.path == ROOT]
        assert root.data["parameters"] == {"maxmemory": "2gb"}


def test_the_users_parameters_are_never_overwritten():
    mine = {"maxmemory": "8gb", "nested": {"a": [1, 2]}}
    current = {ROOT: ({"instance_id": A, "parameters": mine}, 3)}
    plan = plan_instance(A, current=current, now=NOW, cf=cf_instance(A), parameters={"maxmemory": "2gb"})
    for w in plan.writes:
        if w.path == ROOT:
            assert w.data["parameters"] == mine
    empty = {ROOT: ({"instance_id": A, "parameters": {}}, 3)}
    plan = plan_instance(A, current=empty, now=NOW, cf=cf_instance(A), parameters={"maxmemory": "2gb"})
    assert all(w.data["parameters"] == {} for w in plan.writes if w.path == ROOT)
