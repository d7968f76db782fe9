"""Measured facts for the resilience settings, over real HTTP against the CF emulator:

* 4 concurrent workers, each with its own adapter and limiter, sharing the DynamoDB state
  (moto): the emulator's request log never shows more than rate + burst in any 1-s window;
  without the shared limiter the same load exceeds it (the measurement can fail).
* a breaker opened by one *process* is seen open by another (ThreadedMotoServer), and
  closes after success_threshold successes.
* timeout, max_connections and keep_alive change what happens on the wire.
"""

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from moto.server import ThreadedMotoServer

from reconciler.cf import CFClient
from reconciler.config.models import Settings
from reconciler.errors import Unavailable
from reconciler.resilience import ApiPolicy, Resilience, make_session, reset_local_state
from reconciler.store import Store, create_tables

pytest.importorskip("mockstack.cf")

from test_cf_adapter import Foundation, build_world  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def max_in_window(times, width=1.0):
    """Most requests whose start falls in any window (t - width, t]."""
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - width:
            j += 1
        best = max(best, i - j + 1)
    return best


@pytest.fixture(autouse=True)
def _fresh_guards():
    reset_local_state()
    yield
    reset_local_state()


@pytest.fixture
def aws(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "eu-west-1"}.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def cf():
    f = Foundation(build_world("rl", ours=4)[0])
    yield f
    f.stop()


def limited(rps, burst, **cb):
    return Settings.model_validate({"reconciler": {
        "apis": {"cf": {"rate_limit": {"requests_per_second": rps, "burst": burst, "wait_timeout": "30s"},
                        "circuit_breaker": {"enabled": False, **cb}}},
        "retry": {"max_attempts": 1}}})


def hammer(cf, settings, store, workers=4, per_worker=20):
    clients = [CFClient(cf.config(), settings, store=store) for _ in range(workers)]
    for c in clients:
        c.broker()  # token + root outside the measured part
    cf.server.log.clear()
    errors = []

    def work(client):
        try:
            for _ in range(per_worker):
                client.http.get_json("/v3/service_brokers", {"names": "blacksmith"})
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    return [e.start for e in cf.server.log.entries()]


def test_four_workers_share_one_global_rate_limit(cf, aws):
    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-west-1")
        create_tables(client, "cache", "state")
        store = Store("cache", "state", client)
        starts = hammer(cf, limited(20, 5), store)
    assert len(starts) == 80
    peak = max_in_window(starts)
    print(f"\nshared limiter 20/s burst 5, 4 workers x 20 requests: max {peak} requests in any 1-s window")
    assert peak <= 20 + 5
    assert peak >= 15  # and it lets (most of) the configured rate through


def test_without_the_shared_state_the_bound_does_not_hold(cf):
    # each worker has a private limiter (no store, private state): 4 x 20/s
    clients = [CFClient(cf.config(), limited(20, 5)) for _ in range(4)]
    for c in clients:
        c.resilience.guard.state._items = {}  # a separate "process" each
        c.broker()
    cf.server.log.clear()
    threads = [threading.Thread(target=lambda c=c: [c.http.get_json("/v3/service_brokers", {"names": "x"})
                                                    for _ in range(20)]) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert max_in_window([e.start for e in cf.server.log.entries()]) > 25


def test_per_process_fallback_divides_by_share(cf):
    clients = []
    for _ in range(4):
        c = CFClient(cf.config(), limited(20, 8))
        c.resilience = Resilience(c.policy, None, share=4, local_state={})
        c.http.resilience = c.resilience
        c.broker()
        clients.append(c)
    cf.server.log.clear()
    threads = [threading.Thread(target=lambda c=c: [c.http.get_json("/v3/service_brokers", {"names": "x"})
                                                    for _ in range(10)]) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert max_in_window([e.start for e in cf.server.log.entries()]) <= 20 + 8


WORKER = r"""
import json, os, sys
sys.path[:0] = [os.environ["ROOT"] + "/shared", os.environ["ROOT"]]
import boto3
from reconciler.errors import CircuitOpen, Unavailable
from reconciler.resilience import ApiPolicy, BreakerConfig, RateLimit, Resilience, RetryPolicy, make_session
from reconciler.store import Store
store = Store("cache", "state", boto3.client("dynamodb", endpoint_url=os.environ["DDB"], region_name="eu-west-1"))
policy = ApiPolicy(api="cf", endpoint="shared", timeout=5, rate_limit=RateLimit(0),
                   circuit_breaker=BreakerConfig(True, 3, 2, float(os.environ["CBT"]), 1),
                   retry=RetryPolicy(max_attempts=1))
res = Resilience(policy, store)
session = make_session(policy)
from reconciler.resilience import error_for_status
def get():
    r = session.get(os.environ["URL"] + "/v3/info")
    if r.status_code >= 400:
        raise error_for_status(r, "cf", "GET /v3/info")
    return r.status_code
out = []
for _ in range(int(os.environ["N"])):
    try:
        out.append(res.call(get, what="GET /v3/info"))
    except CircuitOpen:
        out.append("open")
    except Unavailable as exc:
        out.append(exc.status or "unavailable")
print(json.dumps({"results": out, "state": res.guard.current()}))
"""


def run_worker(ddb, url, n, cbt=30):
    env = {**os.environ, "ROOT": str(ROOT), "DDB": ddb, "URL": url, "N": str(n), "CBT": str(cbt),
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1"}
    out = subprocess.run([sys.executable, "-c", WORKER], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_breaker_opened_by_one_process_is_seen_by_another_and_closes(cf, aws):
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        ddb = f"http://{host}:{port}"
        client = boto3.client("dynamodb", endpoint_url=ddb, region_name="eu-west-1")
        create_tables(client, "cache", "state")
        cf.server.set_faults(down=True)
        first = run_worker(ddb, cf.server.url, 3, cbt=600)
        assert first["state"] == "open" and first["results"] == ["unavailable"] * 3
        cf.server.set_faults(down=False)
        cf.server.log.clear()
        second = run_worker(ddb, cf.server.url, 2, cbt=600)  # another process, within the breaker timeout
        assert second["results"] == ["open", "open"] and cf.server.log.count() == 0  # no network
        store = Store("cache", "state", client)
        assert store.get_breaker_states()["cf:shared"]["state"] == "open"
        # processes configured with a short timeout (0.05 s, long passed): half-open trials
        third = run_worker(ddb, cf.server.url, 1, cbt=0.05)
        assert third["results"] == [200] and third["state"] == "half_open"  # 1 of success_threshold 2
        fourth = run_worker(ddb, cf.server.url, 2, cbt=0.05)
        assert fourth["results"] == [200, 200] and fourth["state"] == "closed"
        assert cf.server.log.count() == 3
    finally:
        server.stop()


# --- session settings on the wire ---------------------------------------------------------


def test_timeout_setting_bounds_each_request(cf):
    cf.server.set_faults(latency_s=1.0)
    slow_ok = ApiPolicy(api="cf", timeout=5)
    assert make_session(slow_ok).get(cf.server.url + "/v3/info").status_code == 200
    impatient = ApiPolicy(api="cf", timeout=0.2)
    res = Resilience(impatient, None, local_state={})
    session = make_session(impatient)
    with pytest.raises(Unavailable, match="timeout"):
        res.call(lambda: session.get(cf.server.url + "/v3/info"), what="GET /v3/info")


@pytest.mark.parametrize("max_connections", [1, 3])
def test_max_connections_bounds_concurrent_requests(cf, max_connections):
    cf.server.set_faults(latency_s=0.3)
    session = make_session(ApiPolicy(api="cf", max_connections=max_connections, timeout=30))
    threads = [threading.Thread(target=lambda: session.get(cf.server.url + "/v3/info")) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    entries = cf.server.log.entries()
    assert len(entries) == 6
    events = sorted([(e.start, 1) for e in entries] + [(e.end, -1) for e in entries], key=lambda x: (x[0], x[1]))
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak == max_connections


def test_keep_alive_sets_tcp_keepalive_probes(cf):
    session = make_session(ApiPolicy(api="cf", keep_alive=17))
    session.get(cf.server.url + "/v3/info")
    pool = session.get_adapter(cf.server.url).poolmanager.connection_from_url(cf.server.url)
    conn = pool._new_conn()  # a connection exactly as the session opens them
    conn.connect()
    sock = conn.sock
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    if hasattr(socket, "TCP_KEEPIDLE"):
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 17
    conn.close()
