"""The BOSH Director emulator checked against bosh-director.md with `requests`, over verified TLS.

Note: this machine sets REQUESTS_CA_BUNDLE, which overrides ``Session.verify``; only a
per-request ``verify=`` wins, so every call here passes it.
"""

import json
import threading
import time

import pytest
import requests

from mockstack.base import EmulatorServer
from mockstack.bosh import BoshDirectorEmulator
from mockstack.tls import make_tls
from mockstack.uaa import UAAEmulator, fetch_token

USER, PASSWORD = "admin", "director-password"
DEP = "redis-small-8bfe4c1b-9e18-45b1-83be-124163f31f9e"
MANIFEST = f"---\nname: {DEP}\nmeta:\n  params:\n    instance_id: 8bfe4c1b-9e18-45b1-83be-124163f31f9e\n"


def vm(i, instance, cid="vm", active=True):
    return {"vm_cid": f"{cid}-{i}" if cid else None, "active": active, "vm_created_at": "2024-01-11T14:11:02Z",
            "ips": [f"10.0.0.{i}"], "agent_id": f"agent-{i}", "job_name": "redis", "index": i, "id": instance,
            "az": "z1", "job_state": "running" if cid else None, "process_state": "running"}


def world():
    return {"name": "test-director", "deployments": [
        {"name": DEP, "manifest": MANIFEST, "teams": [],
         "releases": [{"name": "redis-forge", "version": "0.6.3"}, {"name": "bpm", "version": "1.4.20"}],
         "stemcells": [{"name": "bosh-warden-boshlite-ubuntu-jammy-go_agent", "version": "1.423"}],
         "vms": [vm(0, "inst-0"), vm(1, "inst-1"), vm(2, "inst-2", cid=None, active=False)]},
        {"name": "cf", "manifest": None, "teams": ["platform"], "locked": True, "releases": [], "stemcells": [],
         "vms": []},
        {"name": "broken", "manifest": "---\nname: broken\n", "vms": [vm(5, "inst-5")]},
    ]}


@pytest.fixture()
def director():
    bosh = BoshDirectorEmulator(world(), auth="basic", basic=(USER, PASSWORD), task_steps=2)
    with bosh.server() as server:
        yield bosh, server


def get(server, bosh, path, auth=(USER, PASSWORD), **kw):
    kw.setdefault("timeout", 30)  # a loaded 2-core machine answers slowly; a hang still ends
    return requests.get(server.url + path, auth=auth, verify=bosh.ca_path, **kw)


def test_info_basic_mode_needs_no_auth(director):
    bosh, server = director
    r = get(server, bosh, "/info", auth=None)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    info = r.json()
    assert info["user_authentication"] == {"type": "basic", "options": {}}
    assert info["user"] is None and info["name"] == "test-director" and info["uuid"]
    assert get(server, bosh, "/info").json()["user"] == USER
    assert ", " not in r.text and ": " not in r.text  # compact, like JSON.generate


def test_tls_is_verified_against_the_published_ca(director):
    bosh, server = director
    assert server.url.startswith("https://127.0.0.1:")
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(server.url + "/info", verify=make_tls(name="other").ca_path, timeout=5)
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(server.url + "/info", verify=True, timeout=5)  # system trust store: not our CA
    assert requests.get(server.url + "/info", verify=bosh.ca_path, timeout=5).status_code == 200
    with open(bosh.ca_path) as fh:
        assert fh.read() == bosh.tls.ca_pem and "BEGIN CERTIFICATE" in bosh.tls.ca_pem


def test_401_is_plain_text(director):
    bosh, server = director
    for auth in (None, (USER, "wrong")):
        r = get(server, bosh, "/deployments", auth=auth)
        assert r.status_code == 401
        assert r.text == "Not authorized: '/deployments'\n"
        assert r.headers["WWW-Authenticate"] == 'Basic realm="BOSH Director"'
    r = requests.get(server.url + "/deployments", headers={"Authorization": "Basic !!notbase64"},
                     verify=bosh.ca_path, timeout=5)
    assert r.status_code == 401


def test_deployments_list(director):
    bosh, server = director
    r = get(server, bosh, "/deployments")
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/html;charset=utf-8"
    deps = json.loads(r.text)
    assert [d["name"] for d in deps] == sorted(["broken", "cf", DEP])
    redis = next(d for d in deps if d["name"] == DEP)
    assert redis == {"name": DEP, "teams": [], "cloud_config": "latest",
                     "stemcells": [{"name": "bosh-warden-boshlite-ubuntu-jammy-go_agent", "version": "1.423"}],
                     "releases": [{"name": "bpm", "version": "1.4.20"}, {"name": "redis-forge", "version": "0.6.3"}],
                     "locked": False}
    assert next(d for d in deps if d["name"] == "cf")["locked"] is True
    slim = get(server, bosh, "/deployments?exclude_configs=true&exclude_releases=true&exclude_stemcells=true"
                             "&exclude_lock=true").json()
    assert slim[0] == {"name": "broken", "teams": []}


def test_manifest_is_raw_yaml_text(director):
    bosh, server = director
    r = get(server, bosh, f"/deployments/{DEP}")
    assert r.json() == {"manifest": MANIFEST}
    assert "\\n" in r.text and "\n" not in r.text  # one line, newlines escaped
    assert get(server, bosh, "/deployments/cf").json() == {"manifest": None}


def test_not_found_shapes(director):
    bosh, server = director
    r = get(server, bosh, "/deployments/redis-nope")
    assert r.status_code == 404 and r.json() == {"code": 70000, "description": "Deployment 'redis-nope' doesn't exist"}
    r = get(server, bosh, "/deployments/redis-nope/vms?format=full", allow_redirects=False)
    assert r.status_code == 404 and r.json()["code"] == 70000 and bosh.tasks_created() == 0
    r = get(server, bosh, "/tasks/999999")
    assert r.status_code == 404 and r.json() == {"code": 10000, "description": "Task 999999 not found"}
    r = get(server, bosh, "/no/such/route")
    assert r.status_code == 404 and r.text == "Endpoint '/no/such/route' not found."


def test_vms_task_redirect_flow_keeps_auth_and_advances(director):
    bosh, server = director
    header = {"Authorization": requests.auth._basic_auth_str(USER, PASSWORD)}
    first = requests.get(f"{server.url}/deployments/{DEP}/vms?format=full", headers=header, verify=bosh.ca_path,
                         timeout=5, allow_redirects=False)
    assert first.status_code == 302 and first.content == b""
    location = first.headers["Location"]
    assert location.startswith(server.url + "/tasks/")  # absolute, same scheme/host/port
    # requests follows the redirect with the header kept (same host)
    followed = requests.get(f"{server.url}/deployments/{DEP}/vms?format=full", headers=header, verify=bosh.ca_path,
                            timeout=5)
    assert [h.status_code for h in followed.history] == [302]
    assert followed.status_code == 200 and followed.headers["Content-Type"] == "application/json"
    task = followed.json()
    assert task["state"] == "queued" and task["description"] == "retrieve vm-stats" and task["result"] is None
    assert task["user"] == USER and task["deployment"] == DEP
    url = followed.url
    assert get(server, bosh, url[len(server.url):]).json()["state"] == "processing"
    assert get(server, bosh, url[len(server.url) + 0:] + "/output?type=result").status_code == 204  # not done yet
    done = get(server, bosh, url[len(server.url):]).json()
    assert done["state"] == "done" and done["result"] == "" and done["started_at"] is not None
    out = get(server, bosh, url[len(server.url):] + "/output?type=result")
    assert out.status_code == 200 and out.text.endswith("\n")
    lines = [json.loads(line) for line in out.text.splitlines() if line]
    assert sorted(v["vm_cid"] for v in lines) == ["vm-0", "vm-1"]  # the VM-less instance is not a VM
    assert list(lines[0])[:3] == ["vm_cid", "active", "vm_created_at"]
    assert all("process_state" not in v and v["job_state"] == "running" for v in lines)
    events = get(server, bosh, url[len(server.url):] + "/output?type=event").text.splitlines()
    assert [json.loads(e)["state"] for e in events] == ["started", "finished"]


def test_instances_full_has_null_vm_fields(director):
    bosh, server = director
    task_url = get(server, bosh, f"/deployments/{DEP}/instances?format=full").url
    for _ in range(3):
        state = get(server, bosh, task_url[len(server.url):]).json()["state"]
    assert state == "done"
    lines = [json.loads(x) for x in get(server, bosh, task_url[len(server.url):] + "/output?type=result").text
             .splitlines()]
    assert len(lines) == 3
    idle = next(v for v in lines if v["id"] == "inst-2")
    assert idle["vm_cid"] is None and idle["active"] is False and idle["job_state"] is None


def test_fast_vms_and_instances(director):
    bosh, server = director
    vms = get(server, bosh, f"/deployments/{DEP}/vms").json()
    assert [v["cid"] for v in vms] == ["vm-0", "vm-1"]
    assert set(vms[0]) == {"agent_id", "cid", "job", "index", "id", "az", "ips", "vm_created_at", "active",
                           "permanent_nats_credentials"}
    instances = get(server, bosh, f"/deployments/{DEP}/instances").json()
    assert [(i["id"], i["expects_vm"]) for i in instances] == [("inst-0", True), ("inst-1", True),
                                                                ("inst-2", False)]
    assert bosh.tasks_created() == 0


def test_task_steps_zero_and_failing_deployment():
    bosh = BoshDirectorEmulator(world(), auth="basic", basic=(USER, PASSWORD), task_steps=0)
    bosh.failing_deployments.add("broken")
    with bosh.server() as server:
        assert get(server, bosh, f"/deployments/{DEP}/vms?format=full").json()["state"] == "done"
        failed = get(server, bosh, "/deployments/broken/vms?format=full")
        assert failed.json()["state"] == "error" and "broken" in failed.json()["result"]
        assert get(server, bosh, failed.url[len(server.url):] + "/output?type=result").status_code == 204


def test_time_driven_tasks_finish():
    bosh = BoshDirectorEmulator(world(), auth="basic", basic=(USER, PASSWORD), task_seconds=0.2)
    with bosh.server() as server:
        task = get(server, bosh, f"/deployments/{DEP}/vms?format=full").json()
        assert task["state"] in ("queued", "processing")
        states = []
        deadline = 200  # polls, bounded
        while task["state"] != "done" and deadline:
            threading.Event().wait(0.02)
            task = get(server, bosh, f"/tasks/{task['id']}").json()
            states.append(task["state"])
            deadline -= 1
        assert task["state"] == "done"


def test_tasks_filters_and_context_id(director):
    bosh, server = director
    get(server, bosh, f"/deployments/{DEP}/vms?format=full", headers={"X-Bosh-Context-Id": "run-42"},
        allow_redirects=False)
    default = get(server, bosh, "/tasks").json()
    assert default and all(t["description"] == "create deployment" for t in default)  # vms tasks hidden
    assert [t["id"] for t in default] == sorted((t["id"] for t in default), reverse=True)
    everything = get(server, bosh, "/tasks?verbose=2").json()
    assert everything[0]["description"] == "retrieve vm-stats" and everything[0]["context_id"] == "run-42"
    assert get(server, bosh, "/tasks?verbose=2&context_id=run-42").json() == [everything[0]]
    assert [t["deployment"] for t in get(server, bosh, f"/tasks?deployment={DEP}").json()] == [DEP]
    assert len(get(server, bosh, "/tasks?verbose=2&limit=1").json()) == 1
    assert get(server, bosh, "/tasks?verbose=2&state=queued").json() == [everything[0]]
    assert get(server, bosh, "/tasks?state=queued").json() == []


def test_events_by_deployment(director):
    bosh, server = director
    events = get(server, bosh, f"/events?deployment={DEP}").json()
    assert len(events) == 2 and all(e["deployment"] == DEP for e in events)
    assert int(events[0]["id"]) > int(events[1]["id"]) and events[0]["parent_id"] == events[1]["id"]
    # EventManager#event_to_hash leaves out nil and empty fields (no error, no instance here)
    assert set(events[1]) == {"id", "timestamp", "user", "action", "object_type", "object_name", "task",
                              "deployment", "context"}
    assert get(server, bosh, "/events?deployment=none").json() == []


def test_events_filters_follow_the_directors_controller(director):
    """EventsController: newest first, 200 a page, before_id is id < N, after_time is
    timestamp >= T + 1 (whole seconds), before_time timestamp < T, a bad time is a 400."""
    bosh, server = director
    seeded = get(server, bosh, "/events").json()
    newest = max(e["timestamp"] for e in seeded)
    later = newest + 100
    for i in range(250):
        bosh.change_deployment(DEP, when=later + i)  # two events (start, end) per change
    page = get(server, bosh, f"/events?after_time={later - 1}").json()
    assert len(page) == 200 and [int(e["id"]) for e in page] == sorted((int(e["id"]) for e in page), reverse=True)
    rest = get(server, bosh, f"/events?after_time={later - 1}&before_id={page[-1]['id']}").json()
    assert len(rest) == 200 and int(rest[0]["id"]) == int(page[-1]["id"]) - 1
    last = get(server, bosh, f"/events?after_time={later - 1}&before_id={rest[-1]['id']}").json()
    assert len(page) + len(rest) + len(last) == 500 and all(e["timestamp"] >= later for e in last)
    assert get(server, bosh, f"/events?after_time={later + 249}").json() == []  # strictly after, in seconds
    assert {e["timestamp"] for e in get(server, bosh, f"/events?after_time={later + 248}").json()} == {later + 249}
    before = get(server, bosh, f"/events?before_time={later}").json()
    assert before and all(e["timestamp"] < later for e in before)
    iso = get(server, bosh, "/events?after_time=" + time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(later + 248)))
    assert {e["timestamp"] for e in iso.json()} == {later + 249}
    bad = get(server, bosh, "/events?after_time=yesterday")
    assert bad.status_code == 400 and bad.text == "Invalid after parameter: 'yesterday' "
    assert get(server, bosh, "/events?before_time=x").text == "Invalid before parameter: 'x' "
    assert get(server, bosh, f"/events?action=update&deployment={DEP}&after_time={later + 248}").json()[0]["action"] \
        == "update"


def test_output_ranges(director):
    bosh, server = director
    bosh.task_steps = 0
    url = get(server, bosh, f"/deployments/{DEP}/vms?format=full").url[len(server.url):] + "/output?type=result"
    full = get(server, bosh, url).content
    part = get(server, bosh, url, headers={"Range": "bytes=10-"})
    assert part.status_code == 206 and part.content == full[10:]
    assert part.headers["Content-Range"] == f"bytes 10-{len(full) - 1}/{len(full)}"
    assert get(server, bosh, url, headers={"Range": f"bytes={len(full)}-"}).status_code == 416


def test_concurrent_task_flows(director):
    bosh, server = director
    bosh.task_steps = 1
    results, errors = [], []

    def worker():
        try:
            for _ in range(5):
                task = get(server, bosh, f"/deployments/{DEP}/vms?format=full").json()
                while task["state"] != "done":
                    task = get(server, bosh, f"/tasks/{task['id']}").json()
                out = get(server, bosh, f"/tasks/{task['id']}/output?type=result").text
                results.append((task["id"], len(out.splitlines())))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert len(results) == 30 and len({r[0] for r in results}) == 30 and {r[1] for r in results} == {2}
    assert bosh.tasks_created() == 30
    assert server.log.count("bosh", "GET") == 30 * 4


def test_faults(director):
    bosh, server = director
    server.set_faults(error_rate=1.0, error_codes=[502])
    r = get(server, bosh, "/deployments")
    assert r.status_code == 502 and "injected fault" in r.text
    server.set_faults(error_rate=0.0, rate_limit_rps=1, retry_after_s=4)
    statuses = [get(server, bosh, "/info") for _ in range(3)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited and limited[0].headers["Retry-After"] == "4"
    server.reset_faults()
    server.set_faults(latency_s=0.05)
    server.log.clear()
    assert get(server, bosh, "/info").status_code == 200
    entry = server.log.entries("bosh")[0]
    assert entry.end - entry.start >= 0.05
    server.set_faults(latency_s=0.0, reset_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        get(server, bosh, "/info")
    server.set_faults(reset_rate=0.0, down=True)
    with pytest.raises(requests.ConnectionError):
        get(server, bosh, "/info")
    server.set_faults(down=False)
    assert get(server, bosh, "/info").status_code == 200


def test_world_errors_name_the_entry():
    with pytest.raises(ValueError, match=r"bosh.deployments\[0\].name"):
        BoshDirectorEmulator({"deployments": [{"manifest": ""}]}, auth="basic")
    with pytest.raises(ValueError, match=r"bosh.deployments\[0\].manifest"):
        BoshDirectorEmulator({"deployments": [{"name": "a", "manifest": {"x": 1}}]}, auth="basic")
    with pytest.raises(ValueError, match=r"bosh.deployments\[1\].name: duplicate"):
        BoshDirectorEmulator({"deployments": [{"name": "a"}, {"name": "a"}]}, auth="basic")
    with pytest.raises(ValueError, match=r"vms\[0\]"):
        BoshDirectorEmulator({"deployments": [{"name": "a", "vms": [{"job_name": 1}]}]}, auth="basic")
    with pytest.raises(ValueError, match="authority"):
        BoshDirectorEmulator({}, auth="uaa")
    with pytest.raises(ValueError, match="auth must be"):
        BoshDirectorEmulator({}, auth="ldap")


# ---------------------------------------------------------------------- UAA mode


@pytest.fixture()
def uaa_director():
    uaa = UAAEmulator({"reconciler": {"secret": "rs", "authorities": ["bosh.admin"]},
                       "reader": {"secret": "ro", "authorities": ["bosh.read"]},
                       "team": {"secret": "ts", "authorities": ["bosh.teams.platform.read"]},
                       "nobody": {"secret": "ns", "authorities": ["uaa.none"]}}, expires_in=600)
    with EmulatorServer(uaa) as uaa_server:
        bosh = BoshDirectorEmulator(world(), auth="uaa", uaa_url=uaa_server.url, authority=uaa.authority)
        with bosh.server() as server:
            yield bosh, server, uaa_server


def bearer(uaa_server, client, secret):
    return {"Authorization": f"bearer {fetch_token(uaa_server.url, client, secret)}"}


def test_uaa_info_and_admin_token(uaa_director):
    bosh, server, uaa_server = uaa_director
    info = get(server, bosh, "/info", auth=None).json()
    assert info["user_authentication"] == {"type": "uaa", "options": {"url": uaa_server.url,
                                                                     "urls": [uaa_server.url]}}
    headers = bearer(uaa_server, "reconciler", "rs")
    assert get(server, bosh, "/info", auth=None, headers=headers).json()["user"] == "reconciler"
    deps = get(server, bosh, "/deployments", auth=None, headers=headers).json()
    assert len(deps) == 3
    task = get(server, bosh, f"/deployments/{DEP}/vms?format=full", auth=None, headers=headers).json()
    assert task["user"] == "reconciler"  # the redirect kept the bearer header


def test_uaa_rejects_basic_and_bad_tokens(uaa_director):
    bosh, server, uaa_server = uaa_director
    assert get(server, bosh, "/deployments").status_code == 401  # basic credentials in UAA mode
    r = get(server, bosh, "/deployments", auth=None, headers={"Authorization": "bearer not-a-jwt"})
    assert r.status_code == 401 and r.text == "Not authorized: '/deployments'\n"


def test_uaa_team_scoping(uaa_director):
    bosh, server, uaa_server = uaa_director
    team = bearer(uaa_server, "team", "ts")
    assert [d["name"] for d in get(server, bosh, "/deployments", auth=None, headers=team).json()] == ["cf"]
    denied = get(server, bosh, f"/deployments/{DEP}", auth=None, headers=team)
    assert denied.status_code == 401 and denied.json()["code"] == 600000
    assert "bosh.read" in denied.json()["description"]
    nobody = bearer(uaa_server, "nobody", "ns")
    assert get(server, bosh, "/deployments", auth=None, headers=nobody).json() == []
    reader = bearer(uaa_server, "reader", "ro")
    assert get(server, bosh, f"/deployments/{DEP}", auth=None, headers=reader).json()["manifest"] == MANIFEST
    url = get(server, bosh, f"/deployments/{DEP}/vms?format=full", auth=None, headers=reader).url
    debug = get(server, bosh, url[len(server.url):] + "/output?type=debug", auth=None, headers=reader)
    assert debug.status_code == 401 and debug.json()["code"] == 600000  # debug output is admin only


def test_a_bad_deployment_loads_nothing():
    bosh = BoshDirectorEmulator(world(), auth="basic", basic=(USER, PASSWORD))
    with pytest.raises(ValueError, match=r"bosh.deployments\[1\]"):
        bosh.load([{"name": "fresh"}, {"name": DEP}])
    with bosh.server() as server:
        assert "fresh" not in [d["name"] for d in get(server, bosh, "/deployments").json()]


def test_large_director_lists_every_deployment():
    deployments = [{"name": f"redis-small-{i:05d}", "manifest": "---\n", "vms": [vm(0, f"i-{i}")]}
                   for i in range(50_000)]
    bosh = BoshDirectorEmulator({"deployments": deployments}, auth="basic", basic=(USER, PASSWORD))
    with bosh.server() as server:
        # 50,000 deployments: a generous timeout, the shared 2-core machine is often loaded
        names = [d["name"] for d in get(server, bosh, "/deployments?exclude_configs=true", timeout=60).json()]
        assert len(names) == 50_000 and names == sorted(names)
        assert len(get(server, bosh, "/events?deployment=redis-small-04242").json()) == 2
        assert len(get(server, bosh, "/events").json()) == 200  # the Director caps event pages at 200
