"""World files: validation names the JSON path of the problem; save/load round-trips."""

import copy
import json

import pytest

from mockstack.world import WorldBuilder, WorldError, empty_world, load_world, save_world


def small_world():
    b = WorldBuilder()
    org = b.org("org")
    space = b.space("space", org)
    app = b.app("app", space)
    broker = b.broker("blacksmith")
    offering = b.offering("redis", broker, "redis-service-id")
    plan = b.plan("small", offering, "redis-service-id-small")
    inst = b.instance("db1", space, plan, parameters={"a": 1})
    b.instance("ups", space)
    b.binding(inst, app, name="b1", credentials={"password": "x"})
    b.binding(inst, name="key1")
    world = b.world(vault={"secret/db": {"x": {"plan_id": "p"}}, "secret/abc/credentials": {"password": "pw"}})
    world["bosh"]["deployments"].append({"name": "redis-small-abc", "manifest": "name: x\n",
                                         "releases": [{"name": "redis", "version": "1"}],
                                         "stemcells": [{"name": "ubuntu", "version": "1.1"}],
                                         "teams": [], "locked": False,
                                         "vms": [{"job_name": "redis", "id": "a1", "ips": ["10.0.0.1"],
                                                  "vm_cid": "vm-1"}]})
    return world


def test_valid_world_loads_with_defaults():
    world = load_world(small_world())
    assert world["cf"]["name"] == "cf"
    assert len(world["cf"]["service_instances"]) == 2
    loaded = load_world({"cf": {}, "bosh": {}, "vault": {}})
    assert loaded["cf"]["service_instances"] == [] and loaded["bosh"]["deployments"] == []
    assert empty_world()["cf"]["binding_details"] == {}


def test_save_and_load_round_trip(tmp_path):
    world = small_world()
    target = save_world(world, tmp_path / "sub" / "world.json")
    assert load_world(target) == load_world(world)
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]  # no temp file left


def test_save_refuses_an_invalid_world_and_keeps_the_old_file(tmp_path):
    target = save_world(small_world(), tmp_path / "w.json")
    before = target.read_bytes()
    broken = small_world()
    broken["cf"]["service_instances"][0]["guid"] = "nope"
    with pytest.raises(WorldError):
        save_world(broken, target)
    assert target.read_bytes() == before


def _break(mutate):
    world = copy.deepcopy(small_world())
    mutate(world)
    with pytest.raises(WorldError) as info:
        load_world(world)
    return info.value


@pytest.mark.parametrize("mutate,path,words", [
    (lambda w: w["cf"]["service_instances"][1].update(guid="nope"), "cf.service_instances[1].guid", "UUID"),
    (lambda w: w["cf"]["service_instances"][0]["relationships"]["service_plan"]["data"].update(
        guid="00000000-0000-0000-0000-000000000000"),
     "cf.service_instances[0].relationships.service_plan.data.guid", "no service plan"),
    (lambda w: w["cf"]["service_instances"][0]["relationships"].pop("space"),
     "cf.service_instances[0].relationships.space", "missing"),
    (lambda w: w["cf"]["service_instances"][0].update(type="shared"), "cf.service_instances[0].type", "managed"),
    (lambda w: w["cf"]["service_plans"][0]["relationships"]["service_offering"]["data"].update(
        guid="00000000-0000-0000-0000-000000000001"),
     "cf.service_plans[0].relationships.service_offering.data.guid", "no service offering"),
    (lambda w: w["cf"]["service_plans"][0]["broker_catalog"].pop("id"), "cf.service_plans[0].broker_catalog.id",
     "missing"),
    (lambda w: w["cf"]["service_offerings"][0].pop("broker_catalog"), "cf.service_offerings[0].broker_catalog",
     "missing"),
    (lambda w: w["cf"]["service_credential_bindings"][0]["relationships"]["app"]["data"].update(
        guid="00000000-0000-0000-0000-000000000002"),
     "cf.service_credential_bindings[0].relationships.app.data.guid", "no app"),
    (lambda w: w["cf"]["service_instances"].append(copy.deepcopy(w["cf"]["service_instances"][0])),
     "cf.service_instances[2].guid", "duplicate"),
    (lambda w: w["cf"]["service_instances"][0].update(created_at="yesterday"),
     "cf.service_instances[0].created_at", "timestamp"),
    (lambda w: w["cf"].update(service_instances={}), "cf.service_instances", "a list"),
    (lambda w: w["cf"].update(instances=[]), "cf.instances", "unknown key"),
    (lambda w: w["cf"]["binding_details"].update({"00000000-0000-0000-0000-000000000003": {"credentials": {}}}),
     "cf.binding_details.00000000-0000-0000-0000-000000000003", "no service credential binding"),
    (lambda w: w["bosh"]["deployments"].append({"name": "redis-small-abc"}), "bosh.deployments[1].name",
     "duplicate"),
    (lambda w: w["bosh"]["deployments"][0].update(manifest={"name": "x"}), "bosh.deployments[0].manifest",
     "a string"),
    (lambda w: w["bosh"]["deployments"][0]["releases"][0].pop("version"),
     "bosh.deployments[0].releases[0].version", "missing"),
    (lambda w: w["bosh"]["deployments"][0]["vms"][0].pop("id"), "bosh.deployments[0].vms[0].id", "missing"),
    (lambda w: w["bosh"]["deployments"][0].update(name="a/b"), "bosh.deployments[0].name", "'/'"),
    (lambda w: w["vault"].update({"secret/data/db": {}}), 'vault["secret/data/db"]', "logical"),
    (lambda w: w["vault"].update({"/secret/x": {}}), 'vault["/secret/x"]', "logical KV path"),
    (lambda w: w["vault"].update({"secret/x": "pw"}), 'vault["secret/x"]', "an object"),
    (lambda w: w.update(auth={"bosh_auth": "ldap"}), "auth.bosh_auth", "'uaa' or 'basic'"),
    (lambda w: w.update(auth={"cf_client": {"id": "x"}}), "auth.cf_client.secret", "missing"),
    (lambda w: w.pop("vault"), "vault", "missing"),
    (lambda w: w.update(extra=1), "extra", "unknown top-level key"),
])
def test_malformed_worlds_name_the_path(mutate, path, words):
    error = _break(mutate)
    assert error.path == path
    assert words in str(error)
    assert str(error).startswith(path)


def test_file_errors_are_clean(tmp_path):
    with pytest.raises(WorldError, match="does not exist"):
        load_world(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"cf": {}, ')
    with pytest.raises(WorldError, match="not valid JSON.*line 1"):
        load_world(bad)
    bad.write_text(json.dumps([1, 2]))
    with pytest.raises(WorldError, match="expected an object"):
        load_world(bad)


def test_secrets_in_values_are_not_echoed_in_errors():
    error = _break(lambda w: w["vault"].update({"secret/y": ["hunter2-password"]}))
    assert "hunter2" not in str(error)
