"""A 50,000-instance world loads and its list endpoints serve 5,000-per-page pages.

Figures (load time, per-page time, bytes) are printed for the report, never asserted.
"""

import json
import time

import pytest
import requests

from mockstack.base import EmulatorServer
from mockstack.cf import CloudControllerEmulator
from mockstack.uaa import UAAEmulator, fetch_token
from mockstack.world import WorldBuilder, load_world, save_world

N = 50_000


def big_world():
    b = WorldBuilder("big")
    org = b.org("org")
    spaces = [b.space(f"space-{i}", org) for i in range(20)]
    app = b.app("app", spaces[0])
    broker = b.broker("blacksmith")
    offerings = [b.offering(s, broker, f"{s}-id") for s in ("redis", "postgresql", "rabbitmq")]
    plans = [b.plan(p, o, f"{o}-{p}") for o in offerings for p in ("small", "medium", "large")]
    for i in range(N):
        inst = b.instance(f"i-{i:05d}", spaces[i % 20], plans[i % 9], parameters={"n": i} if i % 10 == 0 else None)
        if i % 25 == 0:
            b.binding(inst, app if i % 50 == 0 else None, name=f"b-{i}", credentials={"password": "x"})
    return b.world()


@pytest.mark.slow
def test_50k_world_loads_and_serves_5000_per_page(tmp_path):
    t0 = time.perf_counter()
    world = big_world()
    built = time.perf_counter() - t0
    path = save_world(world, tmp_path / "big.json")
    t0 = time.perf_counter()
    loaded = load_world(path)
    load_s = time.perf_counter() - t0
    uaa = UAAEmulator({"r": {"secret": "s", "authorities": ["cloud_controller.admin_read_only"]}})
    t0 = time.perf_counter()
    emulator = CloudControllerEmulator(loaded["cf"], uaa_url="http://127.0.0.1:1", authority=uaa.authority)
    index_s = time.perf_counter() - t0
    with EmulatorServer(uaa) as uaa_server, EmulatorServer(emulator) as server:
        session = requests.Session()
        session.headers["Authorization"] = f"bearer {fetch_token(uaa_server.url, 'r', 's')}"
        figures = {}
        for label in ("cold", "warm"):
            url, pages, seen, size = f"{server.url}/v3/service_instances?per_page=5000", 0, 0, 0
            t0 = time.perf_counter()
            while url:
                r = session.get(url, timeout=60)
                assert r.status_code == 200
                body = r.json()
                pages += 1
                seen += len(body["resources"])
                size += len(r.content)
                url = body["pagination"]["next"] and body["pagination"]["next"]["href"]
            served = [e for e in server.log.entries("cf", "GET") if e.path == "/v3/service_instances"][-pages:]
            figures[label] = {"pages": pages, "instances": seen, "bytes": size,
                              "client_seconds": round(time.perf_counter() - t0, 2),
                              "server_seconds_per_page": round(sum(e.end - e.start for e in served) / pages, 3)}
            assert pages == 10 and seen == N
        # a filtered walk uses the indexes: one plan = 1/9 of the world
        plan = loaded["cf"]["service_plans"][4]["guid"]
        t0 = time.perf_counter()
        r = session.get(f"{server.url}/v3/service_instances", params={"service_plan_guids": plan, "per_page": 5000},
                        timeout=60).json()
        figures["filtered_by_plan"] = {"total": r["pagination"]["total_results"],
                                       "seconds": round(time.perf_counter() - t0, 3)}
        assert r["pagination"]["total_results"] == len(range(4, N, 9))
        bindings = session.get(f"{server.url}/v3/service_credential_bindings",
                               params={"per_page": 5000, "include": "app"}, timeout=60).json()
        assert bindings["pagination"]["total_results"] == N // 25
    print(json.dumps({"world_file_mb": round(path.stat().st_size / 1e6, 1), "build_s": round(built, 2),
                      "load_validate_s": round(load_s, 2), "index_s": round(index_s, 2), **figures}))
