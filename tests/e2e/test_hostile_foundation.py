"""A hostile or broken foundation, through the real state machine on the emulators: odd
deployment names, manifests that are not YAML, YAML bombs, huge manifests, wrongly typed
fields, VMs without addresses, binding credentials that are not maps, odd instance names.
The runs complete, nothing is written outside ``secret/<uuid>/...``, ``secret/db`` and
``secret/backups/<uuid>/...``, and no manifest secret reaches the logs, the run output or the API."""

from __future__ import annotations

import copy
import json

import pytest

from mockstack.generator import generate
from mockstack.runner import run_scenario
from reconciler.domain.uuids import is_allowed_write_path

SECRET = "HOSTILE-S3CRET-7f3a"
BILLION_LAUGHS = "---\n" + 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(8)
) + f"meta:\n  password: {SECRET}\n  params:\n    instance_id: *i\n"


def deployment(name: str, manifest: str | None, vms: list | None = None) -> dict:
    return {"name": name, "manifest": manifest, "releases": [{"name": "redis-forge", "version": "0.6.3"}],
            "stemcells": [{"name": "ubuntu-jammy", "version": "1.423"}], "teams": [], "locked": False,
            "vms": vms or []}


def hostile_world() -> tuple[dict, dict]:
    world, expected = generate(5, seed=0)
    world = copy.deepcopy(world)
    cf_orphan = expected["orphans"]["cf"][0]  # a CF instance without a deployment: a name could claim it
    matched = next(iter(expected["matched"]))
    fresh = [f"5a5a5a5a-0000-4000-8000-00000000000{i}" for i in range(6)]
    redis = f"meta:\n  password: {SECRET}\n  params:\n    instance_id: %s\ninstance_groups:\n- name: node\n  jobs:\n" \
            f"  - name: node\n    properties:\n      auth:\n        password: {SECRET}\n"
    world["bosh"]["deployments"] += [
        deployment("..", None),
        deployment(f"redis small {cf_orphan}", redis % "[not, a, uuid]"),
        deployment(f"rédis-small-{fresh[0]}", BILLION_LAUGHS),
        deployment("x" * 300, redis % json.dumps(fresh[1])),
        deployment(f"redis-small-{fresh[2]}", "not: yaml: : [\n  - {"),
        deployment(f"redis-small-{fresh[3]}", "# padding\n" * 100_000 + redis % json.dumps(fresh[3])),
        deployment(f"redis-small-{fresh[4]}", redis % '{"a": 1}',
                   vms=[{"job_name": "node", "id": "0a0a0a0a-0000-4000-8000-000000000000"}]),
        deployment(f"redis-small-{cf_orphan.upper()}.", redis % json.dumps(cf_orphan)),
    ]
    for instance in world["cf"]["service_instances"]:
        if instance["guid"] == matched:
            instance["name"] = "evil\n../../secret/db ünïcode " + "n" * 200
    return world, expected


@pytest.mark.slow
def test_hostile_foundation_cannot_escape_the_tree_crash_the_run_or_leak(capfd):
    world, _expected = hostile_world()
    before = set(world["vault"])
    report = run_scenario(world, runs=2)
    logs = capfd.readouterr()
    for run in report["runs"]:
        assert run["status"] == "SUCCEEDED", run["cause"]
    after = report["vault"]
    new_paths = set(after) - before
    assert new_paths, "the runs wrote nothing: the test proves nothing"
    outside = sorted(p for p in new_paths if not is_allowed_write_path(p))
    assert not outside, outside
    changed = sorted(p for p in before & set(after) if after[p] != world["vault"][p])
    assert all(is_allowed_write_path(p) for p in changed), changed
    # nothing derived from a hostile name became a path
    assert not any(".." in p or " " in p or "é" in p or "x" * 50 in p for p in after)
    # the manifest secret is stored only inside manifests (that is what secret/<id>/manifest holds)
    for text, where in ((logs.out + logs.err, "logs"), (json.dumps(report["runs"]), "run output"),
                        (json.dumps(report.get("status")), "status"), (str(report.get("metrics")), "metrics")):
        assert SECRET not in text, where
    second = report["runs"][1]["output"]["phases"]
    assert second["apply"]["writes"] == 0  # hostile input does not make the reconciler churn
