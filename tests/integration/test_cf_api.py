"""CF Cloud Controller v3 emulator over real HTTP: every endpoint, filter, error and
pagination edge documented in cf-v3.md."""

import concurrent.futures
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from mockstack.base import EmulatorServer
from mockstack.cf import CloudControllerEmulator
from mockstack.uaa import UAAEmulator, fetch_token
from mockstack.world import load_world, sample_world


@pytest.fixture(scope="module")
def cf():
    world = load_world(sample_world(120))
    uaa = UAAEmulator({"reconciler": {"secret": "s3cret", "authorities": ["cloud_controller.admin_read_only"]},
                       "auditor": {"secret": "a", "authorities": ["cloud_controller.global_auditor"]},
                       "nobody": {"secret": "n", "authorities": ["cloud_controller.read"]},
                       "bosh": {"secret": "b", "authorities": ["bosh.admin"]}})
    with EmulatorServer(uaa) as uaa_server:
        emulator = CloudControllerEmulator(world["cf"], uaa_url=uaa_server.url, authority=uaa.authority)
        with EmulatorServer(emulator) as server:
            session = requests.Session()
            session.headers["Authorization"] = f"bearer {fetch_token(uaa_server.url, 'reconciler', 's3cret')}"
            yield {"url": server.url, "uaa": uaa_server.url, "world": world, "s": session, "server": server,
                   "emulator": emulator, "authority": uaa.authority}


def get(cf, path, **params):
    return cf["s"].get(f"{cf['url']}{path}", params=params, timeout=10)


def error_of(response):
    errors = response.json()["errors"]
    assert len(errors) == 1 and list(errors[0]) == ["detail", "title", "code"]
    return errors[0]


def test_root_and_info_need_no_token(cf):
    root = requests.get(f"{cf['url']}/", timeout=5).json()["links"]
    assert root["self"]["href"] == cf["url"]
    assert root["cloud_controller_v3"]["href"] == f"{cf['url']}/v3"
    assert root["login"]["href"] == root["uaa"]["href"] == cf["uaa"]
    assert "cloud_controller_v2" not in root and root["credhub"] is None
    info = requests.get(f"{cf['url']}/v3/info", timeout=5)
    assert info.status_code == 200 and info.json()["links"]["self"]["href"] == f"{cf['url']}/v3/info"
    assert info.json()["rate_limits"]["enabled"] is False
    v3 = requests.get(f"{cf['url']}/v3", timeout=5).json()["links"]
    assert v3["service_instances"]["href"] == f"{cf['url']}/v3/service_instances"


def test_authentication_errors(cf):
    missing = requests.get(f"{cf['url']}/v3/service_instances", timeout=5)
    assert missing.status_code == 401 and error_of(missing) == {
        "detail": "Authentication error", "title": "CF-NotAuthenticated", "code": 10002}
    bad = requests.get(f"{cf['url']}/v3/service_instances", headers={"Authorization": "bearer junk"}, timeout=5)
    assert bad.status_code == 401 and error_of(bad) == {
        "detail": "Invalid Auth Token", "title": "CF-InvalidAuthToken", "code": 1000}
    bosh_token = fetch_token(cf["uaa"], "bosh", "b")  # right signature, wrong audience
    wrong = requests.get(f"{cf['url']}/v3/service_instances", headers={"Authorization": f"Bearer {bosh_token}"},
                         timeout=5)
    assert wrong.status_code == 401 and error_of(wrong)["code"] == 1000
    no_role = requests.get(f"{cf['url']}/v3/service_instances", timeout=5,
                           headers={"Authorization": f"bearer {fetch_token(cf['uaa'], 'nobody', 'n')}"})
    assert no_role.status_code == 403 and error_of(no_role)["title"] == "CF-NotAuthorized"


def test_expired_token_is_invalid(cf):
    import time
    token = cf["authority"].mint({"jti": "x", "exp": int(time.time()) - 1, "aud": ["cloud_controller"],
                                  "scope": ["cloud_controller.admin"]})
    r = requests.get(f"{cf['url']}/v3/service_instances", headers={"Authorization": f"bearer {token}"}, timeout=5)
    assert r.status_code == 401 and error_of(r)["title"] == "CF-InvalidAuthToken"


def test_pagination_envelope_and_hrefs(cf):
    r = get(cf, "/v3/service_instances", per_page=50, page=2)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    body = r.json()
    assert list(body) == ["pagination", "resources"]
    p = body["pagination"]
    assert p["total_results"] == 123 and p["total_pages"] == 3
    base = f"{cf['url']}/v3/service_instances"
    assert p["first"] == {"href": f"{base}?page=1&per_page=50"}
    assert p["last"] == {"href": f"{base}?page=3&per_page=50"}
    assert p["next"] == {"href": f"{base}?page=3&per_page=50"}
    assert p["previous"] == {"href": f"{base}?page=1&per_page=50"}
    assert len(body["resources"]) == 50
    first = get(cf, "/v3/service_instances").json()["pagination"]
    assert first["previous"] is None and first["first"]["href"].endswith("?page=1&per_page=50")
    last = get(cf, "/v3/service_instances", page=3).json()
    assert last["pagination"]["next"] is None and len(last["resources"]) == 23
    beyond = get(cf, "/v3/service_instances", page=9).json()
    assert beyond["resources"] == [] and beyond["pagination"]["total_pages"] == 3


def test_hrefs_carry_every_filter_sorted_and_escaped(cf):
    r = get(cf, "/v3/service_instances", **{"fields[space]": "guid,name", "per_page": 2, "type": "managed",
                                            "label_selector": "env=dev"})
    href = r.json()["pagination"]["next"]["href"]
    query = urlsplit(href).query
    assert query == "fields%5Bspace%5D=guid%2Cname&label_selector=env%3Ddev&page=2&per_page=2&type=managed"
    # following next verbatim works and keeps the filters
    nxt = cf["s"].get(href, timeout=5).json()
    assert all(i["type"] == "managed" for i in nxt["resources"])
    assert "included" in nxt


def test_walking_all_pages_returns_every_instance_once(cf):
    seen, url = [], f"{cf['url']}/v3/service_instances?per_page=7"
    while url:
        body = cf["s"].get(url, timeout=5).json()
        seen += [r["guid"] for r in body["resources"]]
        url = body["pagination"]["next"] and body["pagination"]["next"]["href"]
    world_guids = [i["guid"] for i in cf["world"]["cf"]["service_instances"]]
    assert seen == world_guids


def test_empty_list_has_one_page(cf):
    p = get(cf, "/v3/service_instances", names="no-such").json()
    assert p["resources"] == []
    assert p["pagination"]["total_results"] == 0 and p["pagination"]["total_pages"] == 1
    assert p["pagination"]["last"]["href"].endswith("page=1&per_page=50")


@pytest.mark.parametrize("params,detail", [
    ({"page": "0"}, "The query parameter is invalid: Page must be a positive integer"),
    ({"per_page": "5001"}, "The query parameter is invalid: Per page must be between 1 and 5000"),
    ({"per_page": "0"}, "Per page must be between 1 and 5000"),
    ({"per_page": "abc"}, "Per page must be between 1 and 5000"),
    ({"fruits": "apple"}, "Unknown query parameter(s): 'fruits'. Valid parameters are: 'page'"),
    ({"include": "space"}, "Unknown query parameter(s): 'include'"),
    ({"type": "shared"}, "Type must be one of 'managed', 'user-provided'"),
    ({"order_by": "guid"}, "Order by can only be"),
    ({"fields[fruit]": "guid"}, "Fields [fruit] valid resources are: 'space', 'space.organization'"),
    ({"fields[space]": "guid,color"}, "Fields valid keys for 'space' are"),
    ({"created_ats[near]": "2020-01-01T00:00:00Z"}, "Invalid relational operator"),
    ({"label_selector": "a=(b"}, "Invalid label_selector value"),
])
def test_bad_query_parameters(cf, params, detail):
    r = get(cf, "/v3/service_instances", **params)
    assert r.status_code == 400
    err = error_of(r)
    assert err["title"] == "CF-BadQueryParameter" and err["code"] == 10005
    assert detail in err["detail"]


def test_several_problems_are_joined(cf):
    err = error_of(get(cf, "/v3/service_instances", page="0", per_page="9999"))
    assert err["detail"] == ("The query parameter is invalid: Page must be a positive integer, "
                             "Per page must be between 1 and 5000")


def test_per_page_5000_is_accepted(cf):
    body = get(cf, "/v3/service_instances", per_page=5000).json()
    assert len(body["resources"]) == 123 and body["pagination"]["total_pages"] == 1


def test_instance_resource_shapes(cf):
    world = cf["world"]["cf"]
    managed = world["service_instances"][0]
    r = get(cf, f"/v3/service_instances/{managed['guid']}").json()
    assert list(r) == ["guid", "created_at", "updated_at", "name", "tags", "type", "maintenance_info",
                       "upgrade_available", "dashboard_url", "last_operation", "relationships", "metadata", "links"]
    assert r["relationships"]["service_plan"]["data"]["guid"] == managed["relationships"]["service_plan"]["data"][
        "guid"]
    assert set(r["links"]) == {"self", "space", "service_credential_bindings", "service_route_bindings",
                               "service_plan", "parameters", "shared_spaces"}
    assert r["links"]["self"]["href"] == f"{cf['url']}/v3/service_instances/{managed['guid']}"
    assert r["metadata"]["labels"]["env"] == "dev"
    ups = next(i for i in world["service_instances"] if i["type"] == "user-provided")
    u = get(cf, f"/v3/service_instances/{ups['guid']}").json()
    assert "service_plan" not in u["relationships"] and "maintenance_info" not in u
    assert u["syslog_drain_url"] is None and u["route_service_url"] is None
    assert set(u["links"]) == {"self", "space", "service_credential_bindings", "service_route_bindings",
                               "credentials"}


def test_not_found_errors(cf):
    r = get(cf, "/v3/service_instances/00000000-0000-0000-0000-000000000000")
    assert r.status_code == 404 and error_of(r) == {"detail": "Service instance not found",
                                                    "title": "CF-ResourceNotFound", "code": 10010}
    for path, label in [("service_plans", "Service plan"), ("service_offerings", "Service offering"),
                        ("service_brokers", "Service broker"), ("spaces", "Space"),
                        ("organizations", "Organization"), ("apps", "App"),
                        ("service_credential_bindings", "Service credential binding")]:
        r = get(cf, f"/v3/{path}/00000000-0000-0000-0000-000000000000")
        assert r.status_code == 404 and error_of(r)["detail"] == f"{label} not found"
    unknown = get(cf, "/v3/routes")
    assert unknown.status_code == 404 and error_of(unknown) == {"detail": "Unknown request", "title": "CF-NotFound",
                                                                "code": 10000}


def _guids(cf, path, **params):
    params.setdefault("per_page", 5000)
    return [r["guid"] for r in get(cf, path, **params).json()["resources"]]


def test_instance_filters(cf):
    world = cf["world"]["cf"]
    insts = world["service_instances"]
    spaces = world["spaces"]
    plans = world["service_plans"]
    assert _guids(cf, "/v3/service_instances", names="inst-0003,ups-1") == [insts[3]["guid"],
                                                                          insts[121]["guid"]]
    assert _guids(cf, "/v3/service_instances", guids=f"{insts[5]['guid']},{insts[2]['guid']}") == [
        insts[2]["guid"], insts[5]["guid"]]
    assert len(_guids(cf, "/v3/service_instances", type="user-provided")) == 3
    assert len(_guids(cf, "/v3/service_instances", type="managed")) == 120
    in_space = _guids(cf, "/v3/service_instances", space_guids=spaces[2]["guid"])
    assert in_space == [i["guid"] for i in insts if i["relationships"]["space"]["data"]["guid"] == spaces[2]["guid"]]
    org_a = world["organizations"][0]["guid"]
    assert len(_guids(cf, "/v3/service_instances", organization_guids=org_a)) == 80 + 2
    by_plan = _guids(cf, "/v3/service_instances", service_plan_guids=plans[1]["guid"])
    assert len(by_plan) == 30
    assert _guids(cf, "/v3/service_instances", service_plan_names="LARGE") == by_plan  # case-insensitive
    assert _guids(cf, "/v3/service_instances", service_plan_guids=plans[1]["guid"], space_guids=spaces[1]["guid"]) \
        == [g for g in by_plan if g in _guids(cf, "/v3/service_instances", space_guids=spaces[1]["guid"])]
    assert len(_guids(cf, "/v3/service_instances", label_selector="env=dev")) == 60
    assert len(_guids(cf, "/v3/service_instances", label_selector="env=dev,tier")) == 12
    assert len(_guids(cf, "/v3/service_instances", label_selector="!tier")) == 123 - 24
    assert len(_guids(cf, "/v3/service_instances", label_selector="env in (dev,prod),tier notin (backend)")) == 96
    assert len(_guids(cf, "/v3/service_instances", label_selector="env!=dev")) == 63


def test_order_and_timestamp_filters(cf):
    names = [r["name"] for r in get(cf, "/v3/service_instances", order_by="-name", per_page=5).json()["resources"]]
    assert names == ["ups-2", "ups-1", "ups-0", "inst-0119", "inst-0118"]
    insts = cf["world"]["cf"]["service_instances"]
    stamp = insts[10]["created_at"]
    newer = _guids(cf, "/v3/service_instances", **{"created_ats[gt]": stamp})
    assert newer == [i["guid"] for i in insts[11:]]
    assert _guids(cf, "/v3/service_instances", created_ats=stamp) == [insts[10]["guid"]]
    assert _guids(cf, "/v3/service_instances", **{"created_ats[lte]": stamp}) == [i["guid"] for i in insts[:11]]


def test_fields_broker_mapping(cf):
    r = get(cf, "/v3/service_instances", per_page=8, **{
        "fields[service_plan]": "guid,name,relationships.service_offering",
        "fields[service_plan.service_offering]": "guid,name,relationships.service_broker",
        "fields[service_plan.service_offering.service_broker]": "guid,name"}).json()
    inc = r["included"]
    world = cf["world"]["cf"]
    assert [p["guid"] for p in inc["service_plans"]] == [p["guid"] for p in world["service_plans"]]
    assert list(inc["service_plans"][0]) == ["guid", "name", "relationships"]
    assert inc["service_plans"][0]["relationships"]["service_offering"]["data"]["guid"] == world[
        "service_offerings"][0]["guid"]
    assert list(inc["service_offerings"][0]) == ["name", "guid", "relationships"]
    assert inc["service_brokers"] == [{"name": "blacksmith", "guid": world["service_brokers"][0]["guid"]},
                                      {"name": "other-broker", "guid": world["service_brokers"][1]["guid"]}]
    only_broker = get(cf, "/v3/service_instances", per_page=4, **{
        "fields[service_plan.service_offering.service_broker]": "name"}).json()
    assert list(only_broker["included"]) == ["service_brokers"]
    assert only_broker["included"]["service_brokers"] == [{"name": "blacksmith"}, {"name": "other-broker"}]
    # a page with no managed instances gets no included at all
    ups = get(cf, "/v3/service_instances", type="user-provided", **{"fields[service_plan]": "guid"}).json()
    assert "included" not in ups


def test_fields_space_and_org(cf):
    r = get(cf, "/v3/service_instances", per_page=3, **{"fields[space]": "guid,name,relationships.organization",
                                                         "fields[space.organization]": "name,guid"}).json()
    spaces = r["included"]["spaces"]
    assert len(spaces) == 3 and spaces[0]["relationships"]["organization"]["data"]["guid"]
    assert [o["name"] for o in r["included"]["organizations"]] == ["org-a", "org-b"]


def test_show_instance_with_fields_rejects_relationship_keys(cf):
    guid = cf["world"]["cf"]["service_instances"][0]["guid"]
    ok = get(cf, f"/v3/service_instances/{guid}", **{"fields[service_plan]": "guid,name"}).json()
    assert ok["included"]["service_plans"][0]["name"] == "small"
    bad = get(cf, f"/v3/service_instances/{guid}", **{"fields[service_plan]": "relationships.service_offering"})
    assert bad.status_code == 400
    bad2 = get(cf, f"/v3/service_instances/{guid}", page=1)
    assert bad2.status_code == 400 and "Unknown query parameter" in error_of(bad2)["detail"]


def test_parameters_and_credentials(cf):
    world = cf["world"]["cf"]
    inst = world["service_instances"][7]
    assert get(cf, f"/v3/service_instances/{inst['guid']}/parameters").json() == {"index": 7}
    ups = world["service_instances"][-1]
    r = get(cf, f"/v3/service_instances/{ups['guid']}/parameters")
    assert r.status_code == 400 and error_of(r) == {
        "detail": "This service does not support fetching service instance parameters.",
        "title": "CF-ServiceFetchInstanceParametersNotSupported", "code": 120004}
    assert get(cf, f"/v3/service_instances/{ups['guid']}/credentials").json() == {}
    r = get(cf, "/v3/service_instances/00000000-0000-0000-0000-000000000000/parameters")
    assert r.status_code == 404


def test_bindings_list_filters_and_include_app(cf):
    world = cf["world"]["cf"]
    bindings = world["service_credential_bindings"]
    r = get(cf, "/v3/service_credential_bindings", include="app").json()
    assert r["pagination"]["total_results"] == 10
    apps = r["included"]["apps"]
    assert {a["guid"] for a in apps} == {b["relationships"]["app"]["data"]["guid"] for b in bindings
                                         if b["type"] == "app"}
    assert apps == sorted(apps, key=lambda a: (a["created_at"], a["guid"]))
    first = r["resources"][0]
    assert list(first) == ["guid", "created_at", "updated_at", "name", "type", "last_operation", "metadata",
                           "relationships", "links"]
    assert first["last_operation"]["description"] == ""  # synthesised for bindings without an operation row
    assert set(first["links"]) == {"self", "details", "parameters", "service_instance", "app"}
    key = r["resources"][1]
    assert key["type"] == "key" and "app" not in key["relationships"] and "app" not in key["links"]
    inst = bindings[0]["relationships"]["service_instance"]["data"]["guid"]
    assert _guids(cf, "/v3/service_credential_bindings", service_instance_guids=inst) == [bindings[0]["guid"]]
    assert len(_guids(cf, "/v3/service_credential_bindings", type="key")) == 5
    assert len(_guids(cf, "/v3/service_credential_bindings", type="app")) == 5
    bad = get(cf, "/v3/service_credential_bindings", type="app,key")
    assert bad.status_code == 400 and "Type must be one of 'app', 'key'" in error_of(bad)["detail"]
    keys_only = get(cf, "/v3/service_credential_bindings", type="key", include="app").json()
    assert keys_only["included"] == {"apps": []}
    both = get(cf, "/v3/service_credential_bindings", include="app,service_instance", per_page=2).json()
    assert len(both["included"]["service_instances"]) == 2
    assert get(cf, "/v3/service_credential_bindings", include="space").status_code == 400
    names = _guids(cf, "/v3/service_credential_bindings", service_plan_names="small")
    assert names and all(b in [x["guid"] for x in bindings] for b in names)


def test_binding_details(cf):
    world = cf["world"]["cf"]
    binding = world["service_credential_bindings"][3]
    r = get(cf, f"/v3/service_credential_bindings/{binding['guid']}/details")
    assert r.json() == {"credentials": {"password": "pw-3"}}  # unset keys omitted, not null
    show = get(cf, f"/v3/service_credential_bindings/{binding['guid']}", include="service_instance").json()
    assert show["included"]["service_instances"][0]["guid"] == binding["relationships"]["service_instance"][
        "data"]["guid"]
    auditor = fetch_token(cf["uaa"], "auditor", "a")
    hidden = requests.get(f"{cf['url']}/v3/service_credential_bindings/{binding['guid']}/details", timeout=5,
                          headers={"Authorization": f"bearer {auditor}"})
    assert hidden.status_code == 404  # global auditors may not read secrets: 404, not 403
    listed = requests.get(f"{cf['url']}/v3/service_credential_bindings", timeout=5,
                          headers={"Authorization": f"bearer {auditor}"})
    assert listed.status_code == 200


def test_plans_offerings_brokers(cf):
    world = cf["world"]["cf"]
    brokers = world["service_brokers"]
    plans = get(cf, "/v3/service_plans", service_broker_names="blacksmith").json()
    assert [p["broker_catalog"]["id"] for p in plans["resources"]] == [
        "redis-service-id-small", "redis-service-id-large", "postgresql-service-id-standalone"]
    plan = plans["resources"][0]
    assert plan["costs"] == [] and plan["maintenance_info"] == {}
    assert plan["schemas"]["service_instance"]["create"] == {"parameters": {}}
    assert set(plan["links"]) == {"self", "service_offering", "visibility"}
    assert len(_guids(cf, "/v3/service_plans", service_broker_guids=brokers[1]["guid"])) == 1
    assert len(_guids(cf, "/v3/service_plans", broker_catalog_ids="redis-service-id-large,mysql-id-db")) == 2
    assert len(_guids(cf, "/v3/service_plans", names="SMALL")) == 1
    assert len(_guids(cf, "/v3/service_plans", service_offering_names="redis")) == 2
    assert len(_guids(cf, "/v3/service_plans", space_guids=world["spaces"][0]["guid"])) == 4  # public plans
    assert len(_guids(cf, "/v3/service_plans", available="true")) == 4
    inst = world["service_instances"][1]
    assert _guids(cf, "/v3/service_plans", service_instance_guids=inst["guid"]) == [
        inst["relationships"]["service_plan"]["data"]["guid"]]
    with_off = get(cf, "/v3/service_plans", include="service_offering",
                   **{"fields[service_offering.service_broker]": "guid,name"}).json()
    assert [o["name"] for o in with_off["included"]["service_offerings"]] == ["redis", "postgresql", "mysql"]
    assert [b["name"] for b in with_off["included"]["service_brokers"]] == ["blacksmith", "other-broker"]

    offerings = get(cf, "/v3/service_offerings", service_broker_names="blacksmith",
                    **{"fields[service_broker]": "name"}).json()
    assert [o["broker_catalog"]["id"] for o in offerings["resources"]] == ["redis-service-id",
                                                                            "postgresql-service-id"]
    assert offerings["included"] == {"service_brokers": [{"name": "blacksmith"}]}
    off = offerings["resources"][0]
    assert off["links"]["service_plans"]["href"] == f"{cf['url']}/v3/service_plans?service_offering_guids={off['guid']}"
    assert off["broker_catalog"]["features"]["instances_retrievable"] is True
    assert len(_guids(cf, "/v3/service_offerings", broker_catalog_ids="mysql-service-id")) == 1
    assert get(cf, "/v3/service_offerings", service_plan_guids="x").status_code == 400

    listed = get(cf, "/v3/service_brokers", names="blacksmith").json()["resources"]
    assert len(listed) == 1 and listed[0]["relationships"] == {} and "space" not in listed[0]["links"]
    assert listed[0]["links"]["service_offerings"]["href"].endswith(f"service_broker_guids={brokers[0]['guid']}")


def test_orgs_spaces_apps(cf):
    world = cf["world"]["cf"]
    orgs = get(cf, "/v3/organizations").json()["resources"]
    assert [o["name"] for o in orgs] == ["org-a", "org-b"]
    spaces = get(cf, "/v3/spaces", organization_guids=orgs[0]["guid"], include="organization").json()
    assert [s["name"] for s in spaces["resources"]] == ["dev", "prod"]
    assert [o["name"] for o in spaces["included"]["organizations"]] == ["org-a"]
    apps = get(cf, "/v3/apps", space_guids=world["spaces"][0]["guid"]).json()["resources"]
    assert [a["name"] for a in apps] == ["app-0", "app-3"]
    app = get(cf, f"/v3/apps/{apps[0]['guid']}").json()
    assert app["lifecycle"]["type"] == "buildpack"


def test_concurrent_requests_are_served_correctly(cf):
    world = cf["world"]["cf"]

    def fetch(i):
        inst = world["service_instances"][i]
        body = get(cf, f"/v3/service_instances/{inst['guid']}").json()
        page = get(cf, "/v3/service_instances", per_page=10, page=i % 13 + 1).json()
        return body["guid"] == inst["guid"] and len(page["resources"]) == (10 if i % 13 < 12 else 3)

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(fetch, range(120)))
    assert all(results)
    assert cf["server"].log.count("cf", "GET") >= 240


def test_injected_faults_answer_in_cf_format(cf):
    server = cf["server"]
    try:
        server.set_faults(rate_limit_rps=1, retry_after_s=7)
        statuses = []
        limited = None
        for _ in range(4):
            r = get(cf, "/v3/service_brokers")
            statuses.append(r.status_code)
            limited = r if r.status_code == 429 else limited
        assert limited is not None
        assert limited.headers["Retry-After"] == "7"
        assert limited.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(limited.headers)
        assert limited.json()["errors"][0]["title"] == "CF-RateLimitExceeded"
        server.reset_faults()
        server.set_faults(error_rate=1.0, error_codes=[503])
        r = get(cf, "/v3/service_brokers")
        assert r.status_code == 503 and error_of(r)["title"] == "CF-ServiceUnavailable"
        server.set_faults(error_codes=[500])
        assert error_of(get(cf, "/v3/service_brokers")) == {"detail": "An unknown error occurred.",
                                                             "title": "UnknownError", "code": 10001}
    finally:
        server.reset_faults()


def test_rate_limit_headers_when_enabled(cf):
    emulator = CloudControllerEmulator(cf["world"]["cf"], uaa_url=cf["uaa"], authority=cf["authority"],
                                       rate_limits={"general_limit": 100, "reset_interval_in_minutes": 30})
    with EmulatorServer(emulator) as server:
        a = cf["s"].get(f"{server.url}/v3/service_brokers", timeout=5)
        b = cf["s"].get(f"{server.url}/v3/service_brokers", timeout=5)
        assert a.headers["X-RateLimit-Limit"] == "100"
        assert int(a.headers["X-RateLimit-Remaining"]) == int(b.headers["X-RateLimit-Remaining"]) + 1
        assert "X-RateLimit-Limit" not in requests.get(f"{server.url}/", timeout=5).headers
        info = requests.get(f"{server.url}/v3/info", timeout=5).json()["rate_limits"]
        assert info == {"enabled": True, "general_limit": 100, "reset_interval_in_minutes": 30}


def test_reload_world_at_run_time(cf):
    world = load_world(sample_world(5, seed="other"))
    emulator = CloudControllerEmulator(cf["world"]["cf"], uaa_url=cf["uaa"], authority=cf["authority"])
    with EmulatorServer(emulator) as server:
        assert cf["s"].get(f"{server.url}/v3/service_instances", timeout=5).json()["pagination"][
            "total_results"] == 123
        emulator.load(world["cf"])
        assert cf["s"].get(f"{server.url}/v3/service_instances", timeout=5).json()["pagination"][
            "total_results"] == 8


def test_hrefs_parse_back_to_the_callers_query(cf):
    r = get(cf, "/v3/service_plans", per_page=1, names="small,large", include="service_offering")
    nxt = r.json()["pagination"]["next"]["href"]
    assert parse_qs(urlsplit(nxt).query) == {"include": ["service_offering"], "names": ["small,large"],
                                             "page": ["2"], "per_page": ["1"]}
