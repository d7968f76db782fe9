"""The shared emulator plumbing: faults, request log and admin endpoint, over real HTTP."""

import requests

from mockstack.base import Emulator, EmulatorServer, json_response


class Echo(Emulator):
    api = "echo"

    def handle(self, request):
        return json_response(200, {"path": request.path, "query": request.query})


def test_serves_and_logs():
    with EmulatorServer(Echo()) as server:
        r = requests.get(f"{server.url}/x?a=1", timeout=5)
        assert r.json() == {"path": "/x", "query": {"a": ["1"]}}
        assert server.log.counts() == {"echo": {"GET": 1}}


def test_admin_endpoint_sets_faults_and_rate_limit_answers_429():
    with EmulatorServer(Echo()) as server:
        r = requests.put(f"{server.url}/__mockstack/faults", json={"rate_limit_rps": 2, "retry_after_s": 3}, timeout=5)
        assert r.status_code == 200
        statuses = [requests.get(f"{server.url}/y", timeout=5).status_code for _ in range(4)]
        assert statuses[:2] == [200, 200] and 429 in statuses[2:]
        limited = requests.get(f"{server.url}/y", timeout=5)
        assert limited.headers["Retry-After"] == "3"
        bad = requests.put(f"{server.url}/__mockstack/faults", json={"nope": 1}, timeout=5)
        assert bad.status_code == 400 and "nope" in bad.json()["error"]


def test_error_rate_is_seeded_and_repeatable():
    def run():
        with EmulatorServer(Echo()) as server:
            server.set_faults(error_rate=0.5, seed=7)
            return [requests.get(f"{server.url}/z", timeout=5).status_code for _ in range(12)]

    first = run()
    assert first == run()
    assert {200} < set(first)


def test_down_refuses_service():
    with EmulatorServer(Echo()) as server:
        server.set_faults(down=True)
        try:
            requests.get(f"{server.url}/", timeout=2)
            raise AssertionError("expected a connection error")
        except requests.ConnectionError:
            pass
