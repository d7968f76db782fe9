"""Helpers shared by the scenario e2e tests (the real ASL in the embedded engine, the mock stack)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mockstack.generator import generate
from mockstack.runner import Scenario
from reconciler.domain import is_uuid
from reconciler.store import Store

VAULT_POLICY = (Path(__file__).resolve().parents[2] / "deploy" / "vault-policy.hcl").read_text()


def vault_stack_options(backend: str) -> dict[str, Any]:
    """MockStack options per Vault backend (tests.integration.vault_fixtures.BACKENDS): the real
    OpenBao is reached with a token that only the shipped least-privilege policy allows."""
    return {"vault_backend": "openbao", "vault_policy": VAULT_POLICY} if backend == "openbao" else {}


# BOSH tasks finish at the first poll: the task flow is covered elsewhere, these tests are about
# the workflow's paths (and each run stays a few seconds on a loaded machine)
STACK = {"bosh_task_steps": 0}


def scenario(world: Any, **kwargs: Any) -> Scenario:
    return Scenario(world, stack_options={**STACK, **kwargs.pop("stack_options", {})}, **kwargs)


def small_world(instances: int = 12, seed: int = 3, **drift: float) -> tuple[dict, dict]:
    return generate(instances, seed=seed, drift=drift or None)


def store_of(sc: Scenario) -> Store:
    return Store(sc.engine.tables["CacheTable"], sc.engine.tables["StateTable"], client=sc.engine.client("dynamodb"))


def instance_of(path: str) -> str | None:
    """The instance id a logical Vault path belongs to (``secret/<id>/...``, ``secret/backups/<id>/...``)."""
    parts = path.split("/")
    if len(parts) >= 3 and parts[1] == "backups" and is_uuid(parts[2]):
        return parts[2].lower()
    if len(parts) >= 2 and is_uuid(parts[1]):
        return parts[1].lower()
    return None


def changed_paths(before: Mapping[str, Any], after: Mapping[str, Any]) -> set[str]:
    return {p for p in set(before) | set(after) if before.get(p) != after.get(p)}


def executions(sc: Scenario) -> list[dict[str, Any]]:
    sfn = sc.engine.client("stepfunctions")
    return sfn.list_executions(stateMachineArn=sc.engine.state_machine_arn(), maxResults=100)["executions"]


@contextmanager
def intercept(emulator: Any, before: Callable[[Any], None] | None = None,
              after: Callable[[Any, Any], None] | None = None) -> Iterator[None]:
    """Run ``before(request)`` / ``after(request, response)`` around every request the emulator
    answers (the server looks ``handle`` up on the instance)."""
    original = emulator.handle

    def handle(request: Any) -> Any:
        if before:
            before(request)
        response = original(request)
        if after:
            after(request, response)
        return response

    emulator.handle = handle
    try:
        yield
    finally:
        del emulator.handle


def wait_for(predicate: Callable[[], Any], timeout_s: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout_s:.0f}s")
        time.sleep(0.05)


class Gate:
    """Holds requests matching ``match`` until opened (bounded: a forgotten gate opens itself)."""

    def __init__(self, match: Callable[[Any], bool], timeout_s: float = 60.0) -> None:
        self.match, self.timeout_s = match, timeout_s
        self.opened = threading.Event()
        self.held = threading.Event()

    def __call__(self, request: Any) -> None:
        if self.match(request) and not self.opened.is_set():
            self.held.set()
            self.opened.wait(self.timeout_s)

    def open(self) -> None:
        self.opened.set()


WRITES = {"PUT", "POST", "PATCH", "DELETE"}


def assert_expected_outcome(report: dict, world: dict, expected: dict) -> None:
    """Both runs succeeded, the world is as the generator expects, the second run wrote nothing."""
    first, second = report["runs"]
    assert first["status"] == "SUCCEEDED", first["cause"]
    assert second["status"] == "SUCCEEDED", second["cause"]
    assert report["orphans"] == {k: sorted(v) for k, v in expected["orphans"].items()}
    assert sorted(report["vault"]["secret/db"]) == sorted(expected["index_ids"])
    for path in expected["untouched_paths"]:
        assert report["vault"].get(path) == world["vault"].get(path), path
    for iid in expected["recoverable_credentials"]:
        assert report["vault"].get(f"secret/{iid}/credentials"), iid
    # lost records get their CF parameters back where the offering lets CF fetch them
    assert expected["fetched_parameters"]
    for iid, params in expected["fetched_parameters"].items():
        assert report["vault"][f"secret/{iid}"]["parameters"] == params, iid
    for iid in expected["unfetchable_parameters"]:
        assert "parameters" not in report["vault"][f"secret/{iid}"], iid
    applied = first["output"]["phases"]["apply"], second["output"]["phases"]["apply"]
    assert applied[0].get("parameters_fetched") == len(expected["fetched_parameters"])
    assert not applied[1].get("parameters_fetched")  # written once, never asked for again
    assert not WRITES & set(second["requests"].get("vault", {}))  # the second has none
    assert second["output"]["phases"]["scan"].get("cache_hits", 0) > 0
    # beside the broker: the situations the generator names
    vault, index = report["vault"], report["vault"]["secret/db"]
    assert expected["in_flight"] and expected["name_mismatch"] and expected["failed_provisions"]
    for iid in expected["history_converted"]:
        assert all(isinstance(e["timestamp"], int) for e in vault[f"secret/{iid}/metadata"]["history"]), iid
    assert not any("orphaned" in e for e in index.values())
    for iid in set(expected["matched"]) - set(world["vault"]["secret/db"]):  # entries we added
        e = index[iid]
        assert isinstance(e["created"], int) and e["status"] == "provisioned" and "created_at" not in e, iid
    sync = first["output"]["phases"]["sync_index"]
    assert sync["name_mismatch"] == len(expected["name_mismatch"]) and sync["in_flight"] >= 1
    # orphan state in the store and in the orphan's own metadata history (where it has one)
    with_history = [i for k in ("cf", "vault") for i in expected["orphans"][k]
                    if f"secret/{i}/metadata" in world["vault"]]
    assert with_history and sync["orphan_history_written"] >= len(with_history)
    for iid in with_history:
        assert any(e.get("action") == "orphaned" and isinstance(e["timestamp"], int)
                   for e in vault[f"secret/{iid}/metadata"]["history"]), iid
    assert not second["output"]["phases"]["sync_index"]["orphan_history_written"]
    for run in (first, second):
        assert run["max_state_payload_bytes"] < 256 * 1024
        assert run["history_events"] < 25_000
