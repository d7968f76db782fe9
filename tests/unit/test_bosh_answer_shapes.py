"""Director answers of the wrong shape: one deployment's bad record is that deployment's
recorded error, never a crash of the scan batch (which would skip every deployment in it),
and never garbage such as one "IP address" per character of a string."""

from __future__ import annotations

import pytest

from reconciler.bosh import BoshClient
from reconciler.config.models import BoshDirector


class Answer:
    def __init__(self, body):
        self.body, self.headers = body, {}

    def json(self):
        return self.body


def client(manifest, instances) -> BoshClient:
    director = BoshDirector(name="bosh", url="https://bosh.example", auth="basic", username="u", password="p")
    c = BoshClient(director, vm_details="instances")
    answers = {"/deployments/dep": {"manifest": manifest}, "/deployments/dep/instances": instances}
    c._get = lambda path, params=None, **kw: Answer(answers[path])
    return c


@pytest.mark.parametrize("manifest", [{"a": 1}, ["x"], 42, True])
def test_a_manifest_that_is_not_text_is_the_deployments_error(manifest):
    detail = client(manifest, []).detail("dep", use_cache=False)
    assert detail.error and "manifest is not text" in detail.error and detail.manifest_text is None


@pytest.mark.parametrize("record, expect", [
    ({"job_name": "node", "id": "a", "ips": "10.0.0.1"}, {"ips": ["10.0.0.1"]}),
    ({"job_name": "node", "id": "a", "ips": ["10.0.0.1", 7, None, ""]}, {"ips": ["10.0.0.1"]}),
    ({"job_name": "node", "id": "a", "index": True}, {"index": None}),
    ({"job_name": "node", "id": "a", "vm_cid": 12345, "agent_id": {"x": 1}, "az": ["z1"]},
     {"vm_cid": None, "agent_id": None, "az": None}),
    ({"job_name": "node", "id": "a", "dns": "node-0.example"}, {"dns": ["node-0.example"]}),
    ({}, {"instance_group": "", "id": "", "ips": []}),  # fields missing
])
def test_vm_records_of_odd_shapes(record, expect):
    detail = client("---\n", [record]).detail("dep", use_cache=False)
    assert detail.error is None
    vm = detail.vms[0].model_dump()
    for key, value in expect.items():
        assert vm[key] == value, key


@pytest.mark.parametrize("name", ["..", "a/b", "x" * 300, "a b", "ünï", "", "-lead"])
def test_hostile_deployment_names_never_reach_a_url(name):
    detail = client("---\n", []).detail(name, use_cache=False)
    assert detail.error and "accepted" in detail.error
