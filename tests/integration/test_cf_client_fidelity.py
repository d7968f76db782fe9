"""The CF emulator driven by a client nobody here wrote: the ``cloudfoundry-client`` package.

It discovers the token endpoint from ``GET /`` (links.login), authenticates against the UAA
emulator (client credentials and the cf CLI's password grant), follows ``next.href`` across
pages through its v3 managers, maps ``included`` resources, and refreshes an expired token
when the CC answers 401 CF-InvalidAuthToken.
"""

import time

import pytest
from cloudfoundry_client.client import CloudFoundryClient
from cloudfoundry_client.errors import InvalidStatusCode

from mockstack.base import EmulatorServer
from mockstack.cf import CloudControllerEmulator
from mockstack.uaa import UAAEmulator
from mockstack.world import load_world, sample_world


@pytest.fixture(scope="module")
def stack():
    world = load_world(sample_world(130))
    uaa = UAAEmulator({"reconciler": {"secret": "s3cret", "authorities": ["cloud_controller.admin_read_only"]}},
                      users={"admin": "adminpw"})
    with EmulatorServer(uaa) as uaa_server:
        cc = CloudControllerEmulator(world["cf"], uaa_url=uaa_server.url, authority=uaa.authority)
        with EmulatorServer(cc) as cc_server:
            yield {"world": world["cf"], "url": cc_server.url, "uaa": uaa, "cc_server": cc_server}


@pytest.fixture
def client(stack):
    c = CloudFoundryClient(stack["url"], client_id="reconciler", client_secret="s3cret")
    c.init_with_client_credentials()
    return c


def test_lists_instances_across_pages(stack, client):
    stack["cc_server"].log.clear()
    instances = list(client.v3.service_instances.list(per_page=20))
    assert [i["guid"] for i in instances] == [i["guid"] for i in stack["world"]["service_instances"]]
    assert {i["type"] for i in instances} == {"managed", "user-provided"}
    pages = [e for e in stack["cc_server"].log.entries("cf", "GET") if e.path == "/v3/service_instances"]
    assert len(pages) == 7  # 133 instances, 20 per page: the client followed next.href six times


def test_filters_and_navigable_links(stack, client):
    plan = stack["world"]["service_plans"][0]
    selected = list(client.v3.service_instances.list(service_plan_guids=[plan["guid"]], per_page=5))
    expected = [i["guid"] for i in stack["world"]["service_instances"]
                if (i["relationships"].get("service_plan") or {}).get("data", {}).get("guid") == plan["guid"]]
    assert [i["guid"] for i in selected] == expected
    # links became methods: follow the instance's plan link through the client
    assert selected[0].service_plan()["guid"] == plan["guid"]
    one = client.v3.service_instances.get(expected[0])
    assert one["name"] == selected[0]["name"]


def test_plans_offerings_brokers(stack, client):
    plans = list(client.v3.service_plans.list(service_broker_names=["blacksmith"], per_page=2))
    assert [p["broker_catalog"]["id"] for p in plans] == [
        "redis-service-id-small", "redis-service-id-large", "postgresql-service-id-standalone"]
    offerings = list(client.v3.service_offerings.list(per_page=1))
    assert [o["name"] for o in offerings] == ["redis", "postgresql", "mysql"]
    brokers = list(client.v3.service_brokers.list())
    assert [b["name"] for b in brokers] == ["blacksmith", "other-broker"]
    with_offering = list(client.v3.service_plans.list(include="service_offering", per_page=3))
    # the client maps included resources onto relationships
    assert with_offering[0].service_offering()["name"] == "redis"


def test_bindings_with_included_apps_and_details(stack, client):
    bindings = list(client.v3.service_credential_bindings.list(include="app", per_page=3))
    assert len(bindings) == 10
    app_binding = next(b for b in bindings if b["type"] == "app")
    assert app_binding.app()["guid"] == app_binding["relationships"]["app"]["data"]["guid"]
    details = client.v3.service_credential_bindings.get(app_binding["guid"], "details")
    assert details["credentials"]["password"].startswith("pw-")
    keys = list(client.v3.service_credential_bindings.list(type="key"))
    assert len(keys) == 5 and all(k["type"] == "key" for k in keys)


def test_spaces_and_organizations(client):
    assert [o["name"] for o in client.v3.organizations.list()] == ["org-a", "org-b"]
    assert [s["name"] for s in client.v3.spaces.list()] == ["dev", "prod", "other"]


def test_errors_surface_as_invalid_status(client):
    with pytest.raises(InvalidStatusCode) as info:
        client.v3.service_instances.get("00000000-0000-0000-0000-000000000000")
    assert info.value.status_code == 404
    assert info.value.body["errors"][0]["title"] == "CF-ResourceNotFound"
    with pytest.raises(InvalidStatusCode) as info:
        list(client.v3.service_instances.list(fruits="apple"))
    assert info.value.status_code == 400


def test_password_grant_and_refresh_after_expiry(stack):
    uaa = stack["uaa"]
    uaa.expires_in = 1
    try:
        client = CloudFoundryClient(stack["url"])  # the cf CLI's client: "cf" with an empty secret
        client.init_with_user_credentials("admin", "adminpw")
        first_token = client._access_token
        assert len(list(client.v3.service_brokers.list())) == 2
        deadline = time.time() + 5
        while uaa.authority.validate(first_token) is not None and time.time() < deadline:
            time.sleep(0.2)
        # the CC now answers 401 CF-InvalidAuthToken; the client refreshes and retries
        assert len(list(client.v3.service_brokers.list())) == 2
        assert client._access_token != first_token
    finally:
        uaa.expires_in = 43199
