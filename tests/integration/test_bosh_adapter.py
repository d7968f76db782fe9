"""The BOSH adapter against the Director emulator (TLS, UAA or basic auth, vms task flow)."""

import logging

import boto3
import pytest
from moto import mock_aws

from mockstack.base import EmulatorServer
from mockstack.bosh import BoshDirectorEmulator
from mockstack.uaa import UAAEmulator
from reconciler.bosh import BoshClient, inventory_all
from reconciler.config.models import BoshDirector, Settings
from reconciler.errors import NotFound, Unavailable
from reconciler.models import SourceStatus
from reconciler.resilience import reset_local_state
from reconciler.store import Store, create_tables

BOSH_SECRET = "bosh-client-secret-1a2b3c"
BOSH_PASSWORD = "bosh-admin-password-7x8y9z"
MANIFEST = "name: redis-small-abc\nmeta:\n  params:\n    instance_id: abc\ninstance_groups: []\n"


def world(name="bosh"):
    def vm(group, index, ip):
        return {"vm_cid": f"vm-{group}-{index}", "active": True, "vm_created_at": "2024-01-01T00:00:00Z",
                "ips": [ip], "dns": [f"{index}.{group}.default.redis.bosh"], "agent_id": f"agent-{group}-{index}",
                "job_name": group, "index": index, "id": f"id-{group}-{index}", "az": "z1",
                "job_state": "running", "process_state": "running"}

    return {"name": name, "deployments": [
        {"name": "redis-small-abc", "manifest": MANIFEST, "releases": [{"name": "redis", "version": "1.0"}],
         "stemcells": [{"name": "ubuntu-jammy", "version": "1.423"}], "teams": [], "locked": False,
         "vms": [vm("redis", 0, "10.0.0.1"), vm("redis", 1, "10.0.0.2")]},
        {"name": "cf", "manifest": "name: cf\n", "releases": [{"name": "cf", "version": "1"}],
         "stemcells": [], "teams": [], "locked": False, "vms": [vm("router", 0, "10.0.1.1")]},
    ]}


class Director:
    def __init__(self, auth="uaa", name="bosh", task_steps=2):
        self.uaa = UAAEmulator({"reconciler": {"secret": BOSH_SECRET, "authorities": ["bosh.admin"]}})
        self.uaa_server = EmulatorServer(self.uaa).start()
        self.emu = BoshDirectorEmulator(world(name), auth=auth, uaa_url=self.uaa_server.url,
                                        authority=self.uaa.authority, basic=("admin", BOSH_PASSWORD),
                                        task_steps=task_steps)
        self.server = self.emu.server().start()
        self.name, self.auth = name, auth

    @property
    def url(self):
        return self.server.url.replace("127.0.0.1", "localhost")

    def config(self, **extra):
        creds = {"client_id": "reconciler", "client_secret": BOSH_SECRET} if self.auth == "uaa" else \
            {"username": "admin", "password": BOSH_PASSWORD}
        return BoshDirector.model_validate({"name": self.name, "url": self.url, "auth": self.auth,
                                            "ca_cert": self.emu.ca_path, **creds, **extra})

    def stop(self):
        self.server.stop()
        self.uaa_server.stop()


def settings(vm_details="task", **extra):
    return Settings.model_validate({"reconciler": {"bosh": {"vm_details": vm_details}, "cache_ttl": "5m",
                                                   "apis": {"bosh": {"rate_limit": {"requests_per_second": 500,
                                                                                    "burst": 50}}},
                                                   "retry": {"max_attempts": 2, "initial_delay": "10ms"}, **extra}})


@pytest.fixture(autouse=True)
def _fresh_guards():
    reset_local_state()
    yield
    reset_local_state()


@pytest.fixture(params=["uaa", "basic"])
def director(request):
    d = Director(auth=request.param)
    yield d
    d.stop()


def test_list_and_detail_through_the_task_flow(director, caplog):
    caplog.set_level(logging.DEBUG)
    client = BoshClient(director.config(), settings("task"), poll_initial=0.01)
    inv = client.inventory()
    assert inv.status == SourceStatus.OK and inv.director == "bosh"
    assert [d.name for d in inv.deployments] == ["cf", "redis-small-abc"]
    redis = inv.deployments[1]
    assert redis.releases[0].name == "redis" and redis.director == "bosh"
    director.server.log.clear()
    detail = client.detail(redis)
    assert detail.error is None and detail.manifest_text == MANIFEST
    assert [(v.instance_group, v.index, v.ips) for v in detail.vms] == [("redis", 0, ["10.0.0.1"]),
                                                                        ("redis", 1, ["10.0.0.2"])]
    assert detail.vms[0].dns == ["0.redis.default.redis.bosh"] and detail.vms[0].process_state == "running"
    paths = [e.path for e in director.server.log.entries()]
    # manifest + vms (302) + polls (task_steps=2 unfinished, then done) + output
    assert paths.count("/tasks/1") + sum(p.startswith("/tasks/") and not p.endswith("output") for p in paths) >= 3
    assert len(paths) == 1 + 1 + 3 + 1
    for secret in (BOSH_SECRET, BOSH_PASSWORD):
        assert secret not in caplog.text
    if director.auth == "uaa":
        assert director.uaa_server.log.count(method="POST") == 1
        assert client.http.auth.header().split(" ", 1)[1] not in caplog.text


def test_instances_mode_costs_one_call(director):
    client = BoshClient(director.config(), settings("instances"))
    client.info()
    director.server.log.clear()
    detail = client.detail("redis-small-abc")
    assert detail.error is None and len(detail.vms) == 2 and detail.vms[0].instance_group == "redis"
    assert [e.path for e in director.server.log.entries()] == ["/deployments/redis-small-abc",
                                                               "/deployments/redis-small-abc/instances"]
    assert director.emu.tasks_created("vms") == 0


def test_unknown_deployment_is_not_found_and_recorded_on_the_detail(director):
    client = BoshClient(director.config(), settings())
    with pytest.raises(NotFound, match="/deployments/nope"):
        client.manifest("nope")
    with pytest.raises(NotFound):
        client.deployment_detail("nope")  # the workflow's scan records and skips it
    detail = client.detail("nope")
    assert detail.error and "HTTP 404" in detail.error and detail.vms == []
    assert sum(1 for e in director.server.log.entries() if e.path == "/deployments/nope") == 3  # never retried


def test_tls_fails_closed_without_the_ca():
    d = Director(auth="basic")
    try:
        cfg = d.config(ca_cert=None)
        inv = BoshClient(cfg, settings()).inventory()
        assert inv.status == SourceStatus.FAILED and "TLS verification failed" in inv.error
        assert d.server.log.count() == 0  # the handshake failed: nothing reached the Director
        with pytest.raises(Unavailable, match="TLS"):
            BoshClient(cfg, settings()).info()
    finally:
        d.stop()


def test_failing_task_is_recorded_and_polling_is_bounded():
    d = Director(auth="basic", task_steps=50)
    try:
        client = BoshClient(d.config(), settings(), poll_initial=0.001, poll_max=0.002, max_polls=5)
        detail = client.detail("redis-small-abc")
        assert "unfinished after 5 polls" in detail.error
        d.emu.failing_deployments.add("cf")
        d.emu.task_steps = 0
        detail = client.detail("cf")
        assert "ended 'error'" in detail.error
    finally:
        d.stop()


def test_details_are_cached_in_the_store(monkeypatch):
    for k, v in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": "eu-west-1"}.items():
        monkeypatch.setenv(k, v)
    d = Director(auth="basic")
    try:
        with mock_aws():
            ddb = boto3.client("dynamodb", region_name="eu-west-1")
            create_tables(ddb, "cache", "state")
            store = Store("cache", "state", ddb)
            client = BoshClient(d.config(), settings("instances"), store=store)
            first = client.detail("redis-small-abc")
            d.server.log.clear()
            second = client.detail("redis-small-abc")
            assert second == first and d.server.log.count() == 0
            counts = client.take_counts()
            assert counts["cache_hits_total"] == 1 and counts["cache_misses_total"] == 1
            store.clear_cache()
            client.detail("redis-small-abc")
            assert d.server.log.count() == 2
    finally:
        d.stop()


def test_several_directors_each_labelled():
    a, b = Director(auth="basic", name="dir-a"), Director(auth="uaa", name="dir-b")
    try:
        s = settings().model_copy(update={"bosh_directors": [a.config(), b.config()]})
        invs = inventory_all(s)
        assert [(i.director, i.status) for i in invs] == [("dir-a", SourceStatus.OK), ("dir-b", SourceStatus.OK)]
        assert all(dep.director == i.director for i in invs for dep in i.deployments)
    finally:
        a.stop()
        b.stop()
