"""The generator's expected outcome against the project's own domain logic: what the world
says is recoverable, the domain's credential recovery rebuilds exactly; what it says is not,
the domain refuses with a reason."""

from __future__ import annotations

import pytest

from mockstack.generator import CATALOG, generate
from reconciler.domain.credentials import recover_credentials
from reconciler.models import VM


@pytest.fixture(scope="module")
def world():
    return generate(400, seed=11)


def _vms(dep):
    return [VM(instance_group=v["job_name"], index=v["index"], id=v["id"], ips=v["ips"], az=v["az"],
               vm_cid=v["vm_cid"], agent_id=v["agent_id"], process_state=v["job_state"], active=v["active"])
            for v in dep["vms"]]


def _service(name):
    plan_id = max((p.plan_id for p in CATALOG if name.startswith(p.plan_id + "-")), key=len)
    return next(p.service for p in CATALOG if p.plan_id == plan_id)


def test_domain_recovers_what_the_world_says_is_recoverable(world):
    w, expected = world
    deployments = {d["name"]: d for d in w["bosh"]["deployments"]}
    assert expected["recoverable_credentials"]
    for iid in expected["recoverable_credentials"]:
        dep = deployments[expected["matched"][iid]]
        creds, reason = recover_credentials(_service(dep["name"]), dep["manifest"], _vms(dep), iid)
        assert reason == ""
        assert creds == expected["recovered_credentials"][iid]


def test_domain_refuses_what_the_world_says_is_unrecoverable(world):
    w, expected = world
    deployments = {d["name"]: d for d in w["bosh"]["deployments"]}
    assert expected["unrecoverable_credentials"]
    for iid in expected["unrecoverable_credentials"]:
        dep = deployments[expected["matched"][iid]]
        creds, reason = recover_credentials(_service(dep["name"]), dep["manifest"], _vms(dep), iid)
        assert creds is None
        assert "placeholder" in reason.lower() or "((" in reason
