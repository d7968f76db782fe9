"""The world generator: determinism, drift mix, self-consistent expected outcome, parseable
forge manifests, and worlds the world loader accepts."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import hashlib
import json

import pytest
import yaml

from mockstack import generator
from mockstack.generator import CATALOG, Drift, generate, main_generate
from mockstack.world import load_world
from reconciler.backup import decode_backup

PORTS = {"redis": 6379, "postgresql": 5432, "rabbitmq": 5672}
KINDS = ["lost_index", "lost_tree", "lost_both", "stale_manifest", "missing_credentials",
         "unrecoverable_credentials", "cf_orphans", "bosh_orphans", "vault_orphans", "legacy_backups",
         "legacy_archives", "upper_case_names", "extra_dash_plans", "user_provided", "other_broker",
         "non_service_deployments"]


@pytest.fixture(scope="module")
def world300():
    return generate(300, seed=42)


def _loader():
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _views(world):
    cf = world["cf"]
    plans = {p["guid"]: p for p in cf["service_plans"]}
    offerings = {o["guid"]: o for o in cf["service_offerings"]}
    brokers = {b["guid"]: b for b in cf["service_brokers"]}

    def broker_of(inst):
        if inst["type"] != "managed":
            return None
        plan = plans[inst["relationships"]["service_plan"]["data"]["guid"]]
        offering = offerings[plan["relationships"]["service_offering"]["data"]["guid"]]
        return brokers[offering["relationships"]["service_broker"]["data"]["guid"]]["name"]

    instances = {i["guid"]: i for i in cf["service_instances"]}
    deployments = {d["name"]: d for d in world["bosh"]["deployments"]}
    return instances, deployments, broker_of, plans


def _split(name):
    """Split a deployment name with the catalog (longest plan id first), not by dashes."""
    for plan_id in sorted((p.plan_id for p in CATALOG), key=len, reverse=True):
        if name.startswith(plan_id + "-") and len(name) == len(plan_id) + 37:
            return plan_id, name[len(plan_id) + 1:].lower()
    return None, None


def _recover(service, manifest_text, vms, instance_id):
    """An independent recovery: literal secrets from the manifest, host from <group>/0."""
    m = yaml.load(manifest_text, Loader=_loader())
    group = m["instance_groups"][0]["name"]
    host = next(vm["ips"][0] for vm in vms if vm["job_name"] == group and vm["index"] == 0)
    jobs = {j["name"]: j.get("properties", {}) for j in m["instance_groups"][0]["jobs"]}
    if service == "redis":
        secret = {"password": next(p["auth"]["password"] for p in jobs.values() if "auth" in p)}
    elif service == "postgresql":
        secret = dict(m["meta"]["service"])
    else:
        r = jobs["rabbitmq"]["rabbitmq"]
        secret = {"username": r["default"]["user"], "password": r["default"]["password"],
                  "admin_username": r["admin"]["user"], "admin_password": r["admin"]["pass"]}
    if any(str(v).startswith("((") for v in secret.values()):
        return None
    return generator.credentials_for(service, instance_id, host, secret)


def test_same_seed_same_world_other_seed_other_world():
    a = json.dumps(generate(120, seed=7), sort_keys=True)
    b = json.dumps(generate(120, seed=7), sort_keys=True)
    c = json.dumps(generate(120, seed=8), sort_keys=True)
    assert a == b
    assert a != c


def test_every_drift_kind_appears_in_a_few_hundred(world300):
    _, expected = world300
    for kind in KINDS:
        assert expected["drift"].get(kind), f"no {kind} in a 300-instance world"
    assert expected["recoverable_credentials"] and expected["unrecoverable_credentials"]
    assert all(expected["orphans"][k] for k in ("cf", "bosh", "vault"))
    formats = set(expected["legacy_backup_paths"].values())
    assert formats == {"blacksmith-record", "gzip-archive"}
    assert expected["excluded_deployments"] and expected["foreign_deployments"]


def test_instance_count_is_our_broker_ids(world300):
    world, expected = world300
    ids = set(expected["matched"]) | set(expected["orphans"]["cf"]) | set(expected["orphans"]["vault"])
    ids |= {_split(n)[1] for n in expected["orphans"]["bosh"]} | set(expected["orphans"]["failed_provision"])
    ids |= set(expected["in_flight"])  # provisions in flight: no deployment yet, not an orphan
    assert len(ids) == 300


def test_broker_ids_follow_blacksmith_and_differ_from_guids(world300):
    world, expected = world300
    cf = world["cf"]
    ours = expected["broker"]["guid"]
    assert [b["name"] for b in cf["service_brokers"] if b["guid"] == ours] == ["blacksmith"]
    offerings = {o["guid"]: o for o in cf["service_offerings"]}
    plan_ids = set()
    for plan in cf["service_plans"]:
        offering = offerings[plan["relationships"]["service_offering"]["data"]["guid"]]
        assert plan["guid"] != plan["broker_catalog"]["id"]
        if offering["relationships"]["service_broker"]["data"]["guid"] == ours:
            assert plan["broker_catalog"]["id"] == f"{offering['broker_catalog']['id']}-{plan['name']}"
            plan_ids.add(plan["broker_catalog"]["id"])
    assert {"redis-standalone", "redis-cache-small", "redis-cache-small-ha", "postgresql-small",
            "rabbitmq-single-node"} <= plan_ids
    # another broker offers a service with one of our names: only the broker tells them apart
    names = [o["name"] for o in cf["service_offerings"]]
    assert names.count("postgresql") == 2


def test_matched_instances_and_deployments_agree(world300):
    world, expected = world300
    instances, deployments, broker_of, plans = _views(world)
    assert expected["matched"]
    upper = set(expected["drift"]["upper_case_names"])
    for iid, name in expected["matched"].items():
        inst = instances[iid]
        assert broker_of(inst) == "blacksmith"
        assert name in deployments
        plan_id, guid = _split(name)
        assert guid == iid
        assert plans[inst["relationships"]["service_plan"]["data"]["guid"]]["broker_catalog"]["id"] == plan_id
        assert (name != name.lower()) == (iid in upper)
        assert iid in expected["index_ids"]


def test_orphans_are_where_they_should_be(world300):
    world, expected = world300
    instances, deployments, broker_of, _ = _views(world)
    vault = world["vault"]
    deployed_ids = {_split(n)[1] for n in deployments if _split(n)[1]}
    for iid in expected["orphans"]["cf"] + expected["orphans"]["failed_provision"]:
        assert broker_of(instances[iid]) == "blacksmith"
        assert iid not in deployed_ids
    for name in expected["orphans"]["bosh"]:
        assert name in deployments
        assert _split(name)[1] not in instances
    for iid in expected["orphans"]["vault"]:
        assert iid in vault["secret/db"] or f"secret/{iid}" in vault
        assert iid not in instances and iid not in deployed_ids
    # and nothing else of our naming is unaccounted for
    ours = {n for n in deployments if _split(n)[0]}
    assert ours == set(expected["matched"].values()) | set(expected["orphans"]["bosh"])


def test_ignored_and_excluded(world300):
    world, expected = world300
    instances, deployments, broker_of, _ = _views(world)
    for guid in expected["ignored_cf_instances"]:
        assert instances[guid]["type"] == "user-provided" or broker_of(instances[guid]) != "blacksmith"
    ignored = set(expected["ignored_cf_instances"])
    for guid, inst in instances.items():
        if guid not in ignored:
            assert broker_of(inst) == "blacksmith"
    for name in expected["excluded_deployments"] + expected["foreign_deployments"]:
        assert name in deployments and not _split(name)[0]
    assert {"cf", "bosh", "concourse", "grafana", "prometheus", "shield", "vault", "cf-x"} <= set(
        expected["excluded_deployments"])


def test_recoverable_credentials_rebuild_from_manifest_and_vms(world300):
    world, expected = world300
    instances, deployments, _, _ = _views(world)
    vault = world["vault"]
    for iid in expected["recoverable_credentials"]:
        assert f"secret/{iid}/credentials" not in vault
        dep = deployments[expected["matched"][iid]]
        service = vault["secret/db"].get(iid, {}).get("service_id") or _split(dep["name"])[0].split("-")[0]
        got = _recover(service, dep["manifest"], dep["vms"], iid)
        want = expected["recovered_credentials"][iid]
        assert got == want
        assert want["port"] == PORTS[service]
        # what Blacksmith handed to the apps is what recovery yields
        for b in world["cf"]["service_credential_bindings"]:
            if b["relationships"]["service_instance"]["data"]["guid"] == iid:
                assert world["cf"]["binding_details"][b["guid"]]["credentials"] == want
    for iid, reason in expected["unrecoverable_credentials"].items():
        assert f"secret/{iid}/credentials" not in vault
        dep = deployments[expected["matched"][iid]]
        service = _split(dep["name"])[0].split("-")[0]
        assert _recover(service, dep["manifest"], dep["vms"], iid) is None
        assert "((" in reason
    assert not set(expected["recoverable_credentials"]) & set(expected["unrecoverable_credentials"])


def test_host_is_index_zero_of_the_group_not_the_first_line(world300):
    world, expected = world300
    _, deployments, _, _ = _views(world)
    multi = [deployments[n] for n in expected["matched"].values() if len(deployments[n]["vms"]) > 1]
    assert multi
    assert any(d["vms"][0]["index"] != 0 for d in multi)  # NDJSON order is not index order


def test_untouched_paths_exist_and_cover_every_credential(world300):
    world, expected = world300
    vault = world["vault"]
    untouched = set(expected["untouched_paths"])
    assert untouched <= set(vault)
    for path in vault:
        if path.endswith("/credentials") or path.endswith("/system"):
            assert path in untouched, path
    for path, keys in expected["preserved_fields"].items():
        assert all(k in vault[path] for k in keys)
    assert set(vault["secret/db"]) <= set(expected["index_ids"])


def test_vault_drift_shapes(world300):
    world, expected = world300
    vault, drift = world["vault"], expected["drift"]
    deployments = {d["name"]: d for d in world["bosh"]["deployments"]}
    for iid in drift["lost_index"]:
        assert iid not in vault["secret/db"] and f"secret/{iid}" in vault
    for iid in drift["lost_tree"]:
        assert iid in vault["secret/db"] and not any(p.startswith(f"secret/{iid}") for p in vault)
    for iid in drift["lost_both"]:
        assert iid not in vault["secret/db"] and f"secret/{iid}" not in vault
    assert expected["lost_binding_credentials"]
    for iid, guids in expected["lost_binding_credentials"].items():
        assert iid in drift["lost_tree"] or iid in drift["lost_both"]
        for guid in guids:
            assert guid in world["cf"]["binding_details"]
            assert f"secret/{iid}/bindings/{guid}/credentials" not in vault
    for iid in drift["stale_manifest"]:
        assert vault[f"secret/{iid}/manifest"]["manifest"] != deployments[expected["matched"][iid]]["manifest"]
    # an instance being deleted carries a manifest edited meanwhile (no run may repair it now)
    healthy = set(expected["matched"]) - {i for k in ("lost_tree", "lost_both", "stale_manifest", "delete_in_flight")
                                          for i in drift[k]}
    for iid in healthy:
        assert vault[f"secret/{iid}/manifest"]["manifest"] == deployments[expected["matched"][iid]]["manifest"]
    entry = vault["secret/db"][next(iter(vault["secret/db"]))]
    assert {"service_id", "plan_id", "organization_guid", "space_guid", "created", "requested_at",
            "status"} <= set(entry)


def test_legacy_backups_decode(world300):
    world, expected = world300
    vault = world["vault"]
    for path, fmt in expected["legacy_backup_paths"].items():
        record = vault[path]
        sha = path.rsplit("/", 1)[1]
        if fmt == "blacksmith-record":
            assert path.split("/")[2] == "backups"
            assert record["sha256"] == sha
            assert set(record["data"]) == {"index", "metadata", "manifest", "credentials", "bindings"}
            raw = json.dumps(record["data"], sort_keys=True, separators=(",", ":")).encode()
        else:
            assert path.startswith("secret/backups/")
            raw = gzip.decompress(base64.b64decode(record["archive"]))
            export = json.loads(raw)
            iid = path.split("/")[2]
            assert f"secret/{iid}" in export
            assert all(isinstance(v, str) for data in export.values() for v in data.values())  # safe format
        assert hashlib.sha256(raw).hexdigest() == sha
        iid = path.split("/")[1 if fmt == "blacksmith-record" else 2]
        assert iid in expected["legacy_backups"]
        # the project's own backup reader understands both formats
        decoded = decode_backup(record, instance_id=iid, key=sha)
        assert decoded.format == {"blacksmith-record": "legacy-blacksmith", "gzip-archive": "legacy-gzip"}[fmt]
        assert decoded.tree


def test_manifests_parse_and_carry_the_instance_id():
    world, expected = generate(60, seed=4, drift=Drift(stale_manifest=0.2, unrecoverable_credentials=0.1))
    seen_plans = set()
    for dep in world["bosh"]["deployments"]:
        m = yaml.load(dep["manifest"], Loader=_loader())
        assert m["name"] == dep["name"]
        plan_id, guid = _split(dep["name"])
        if plan_id:
            seen_plans.add(plan_id)
            assert m["meta"]["params"]["instance_id"].lower() == guid
            assert {r["name"] for r in m["releases"]} == {r["name"] for r in dep["releases"]}
            assert m["instance_groups"][0]["networks"]
            assert m["stemcells"][0]["version"] == dep["stemcells"][0]["version"]
    assert seen_plans == {p.plan_id for p in CATALOG}
    for path, data in world["vault"].items():
        if path.endswith("/manifest"):
            assert yaml.load(data["manifest"], Loader=_loader())["meta"]["params"]["instance_id"]


def test_world_passes_the_loader(world300):
    world, _ = world300
    loaded = load_world(world)
    assert len(loaded["cf"]["service_instances"]) == len(world["cf"]["service_instances"])


def test_no_drift_means_everything_matches():
    world, expected = generate(40, seed=1, drift=Drift.none())
    assert len(expected["matched"]) == 40
    assert not any(expected["orphans"].values())
    assert not expected["recoverable_credentials"] and not expected["legacy_backups"]
    assert not expected["drift"] and not expected["ignored_cf_instances"]
    assert sorted(world["vault"]["secret/db"]) == sorted(expected["index_ids"])
    load_world(world)


def test_tiny_and_empty_worlds():
    for n in (0, 1, 5):
        world, expected = generate(n, seed=n)
        load_world(world)
        # in-flight provisions have no deployment yet (a finding, not an orphan); in-flight deletes are matched
        kinds = ("cf", "bosh", "vault", "failed_provision", "in_flight")
        deleting = len(expected["drift"].get("delete_in_flight", []))
        assert len(expected["matched"]) + sum(len(expected["orphans"][k]) for k in kinds) - deleting == n


@pytest.mark.parametrize("bad", [-1, 1.5, "10", True])
def test_bad_instance_count(bad):
    with pytest.raises(ValueError, match="instances"):
        generate(bad, seed=1)


def test_drift_validation_and_spec():
    with pytest.raises(ValueError, match="lost_index"):
        Drift(lost_index=1.5)
    with pytest.raises(ValueError, match="non_service_deployments"):
        Drift(non_service_deployments=-1)
    d = Drift.from_spec("lost_index=0.1, non_service_deployments=3")
    assert d.lost_index == 0.1 and d.non_service_deployments == 3 and d.cf_orphans == Drift().cf_orphans
    assert Drift.from_spec("none") == Drift.none()
    with pytest.raises(ValueError, match="expected NAME=VALUE"):
        Drift.from_spec("bogus=1")
    with pytest.raises(ValueError, match="expected a fraction"):
        Drift.from_spec("lost_index=lots")
    assert all(getattr(Drift.none(), f.name) == 0 for f in dataclasses.fields(Drift))


def test_cli_writes_world_and_expected(tmp_path, capsys):
    out = tmp_path / "w.json"
    assert main_generate(["--instances", "30", "--seed", "5", "--out", str(out), "--drift", "cf_orphans=0.2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["instances"] == 30
    world = load_world(out)
    expected = json.loads((tmp_path / "w.expected.json").read_text())
    assert len(expected["orphans"]["cf"]) + len(expected["orphans"]["failed_provision"]) == 6
    assert json.dumps(world["vault"], sort_keys=True) == json.dumps(generate(30, 5, Drift(cf_orphans=0.2))[0]["vault"],
                                                                    sort_keys=True)


def test_cli_bad_input_is_a_clear_message(tmp_path, capsys):
    assert main_generate(["--instances", "-3", "--out", str(tmp_path / "w.json")]) == 2
    assert "instances" in capsys.readouterr().err
    assert main_generate(["--instances", "3", "--out", str(tmp_path / "w.json"), "--drift", "x=1"]) == 2
    assert "NAME=VALUE" in capsys.readouterr().err
    assert main_generate(["--instances", "3", "--out", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_module_entry_point(tmp_path, capsys):
    from mockstack.__main__ import main

    out = tmp_path / "sub" / "world.json"
    assert main(["generate", "--instances", "4", "--seed", "9", "--out", str(out)]) == 0
    assert out.exists() and (tmp_path / "sub" / "world.expected.json").exists()


def test_deterministic_across_processes_and_hash_seeds():
    """No set or dict-hash order leaks into the world: other interpreters, same bytes."""
    import os
    import subprocess
    import sys

    code = ("import hashlib, json; from mockstack.generator import generate; "
            "print(hashlib.sha256(json.dumps(generate(80, 4), sort_keys=False).encode()).hexdigest())")
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": os.pathsep.join(sys.path)}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                             check=True)
        digests.add(out.stdout.strip())
    assert len(digests) == 1


def test_drift_as_mapping():
    a = generate(50, 2, {"cf_orphans": 0.2})
    b = generate(50, 2, Drift(cf_orphans=0.2))
    assert json.dumps(a) == json.dumps(b)
    with pytest.raises(ValueError, match="unknown setting 'cf_orphan'"):
        generate(50, 2, {"cf_orphan": 0.2})
    with pytest.raises(ValueError, match="expected a Drift"):
        generate(50, 2, 0.5)
