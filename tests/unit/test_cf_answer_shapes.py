"""Cloud Controller answers of the wrong shape (a broken or hostile foundation): the CF source
fails cleanly with a message naming the problem (the run degrades to BOSH-only), never a
crash of the discovery with a bare KeyError/AttributeError."""

from __future__ import annotations

import pytest

from reconciler.cf import CFClient
from reconciler.config.models import CFFoundation
from reconciler.models import SourceStatus

BROKER = {"guid": "b0000000-0000-4000-8000-000000000000", "name": "blacksmith"}
OFFERING = {"guid": "0f000000-0000-4000-8000-000000000000", "name": "redis", "broker_catalog": {"id": "redis"},
            "relationships": {"service_broker": {"data": {"guid": BROKER["guid"]}}}}
PLAN = {"guid": "9a000000-0000-4000-8000-000000000000", "name": "small", "broker_catalog": {"id": "redis-small"},
        "relationships": {"service_offering": {"data": {"guid": OFFERING["guid"]}}}}
INSTANCE = {"guid": "1c000000-0000-4000-8000-000000000000", "name": "i", "type": "managed",
            "relationships": {"service_plan": {"data": {"guid": PLAN["guid"]}},
                              "space": {"data": {"guid": "5a000000-0000-4000-8000-000000000000"}}}}


def page(resources, **extra):
    return {"pagination": {"next": None}, "resources": resources, **extra}


GOOD = {
    "/v3/service_brokers": page([BROKER]),
    "/v3/service_offerings": page([OFFERING]),
    "/v3/service_plans": page([PLAN]),
    "/v3/service_instances": page([INSTANCE], included={"service_plans": [PLAN], "service_offerings": [OFFERING]}),
    "/v3/service_credential_bindings": page([]),
}


class FakeHttp:
    def __init__(self, answers):
        self.answers = answers

    def get_json(self, path, params=None, **_):
        return self.answers[path.split("?")[0]]


def client(answers) -> CFClient:
    foundation = CFFoundation(name="cf", api_url="https://api.example", client_id="c", client_secret="s",
                              broker_name="blacksmith", uaa_url="https://uaa.example")
    c = CFClient(foundation)
    c.http = FakeHttp(answers)
    return c


def test_the_good_shapes_discover():
    result = client(GOOD).discover()
    assert result.status == SourceStatus.OK and [i.guid for i in result.instances] == [INSTANCE["guid"]]


@pytest.mark.parametrize("path, body", [
    ("/v3/service_brokers", {"resources": [BROKER]}),  # no pagination at all: one page
    ("/v3/service_instances", page([INSTANCE], included=None)),
])
def test_missing_optional_parts_are_fine(path, body):
    result = client({**GOOD, path: body}).discover()
    assert result.status == SourceStatus.OK, result.error


@pytest.mark.parametrize("path, body", [
    ("/v3/service_brokers", {"pagination": "none", "resources": [BROKER]}),
    ("/v3/service_brokers", {"pagination": {"next": "http://elsewhere/page2"}, "resources": [BROKER]}),
    ("/v3/service_brokers", page([{"name": "blacksmith"}])),  # no guid
    ("/v3/service_offerings", page([{"name": "no-guid"}])),
    ("/v3/service_plans", page(["not-an-object"])),
    ("/v3/service_plans", page([{**PLAN, "broker_catalog": "redis-small"}])),
    ("/v3/service_instances", page([INSTANCE], included=["not", "a", "map"])),
    ("/v3/service_instances", page(["not-an-object"], included={})),
    ("/v3/service_instances", page([{**INSTANCE, "relationships": "none"}], included={})),
    ("/v3/service_instances", page([{**INSTANCE, "metadata": ["x"]}],
                                   included={"service_plans": [PLAN], "service_offerings": [OFFERING]})),
    ("/v3/service_credential_bindings", page([{"guid": 5, "relationships": []}])),
    ("/v3/service_instances", {"resources": "all of them"}),
    ("/v3/service_instances", ["a list"]),
])
def test_wrong_shapes_fail_the_source_cleanly(path, body):
    result = client({**GOOD, path: body}).discover()  # must not raise
    if result.status == SourceStatus.OK:  # tolerated: the odd record was skipped
        return
    assert result.status == SourceStatus.FAILED
    assert "cf" in result.error and ("malformed" in result.error or "not a v3 list" in result.error), result.error
