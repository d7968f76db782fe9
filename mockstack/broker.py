"""A small model of what the live Blacksmith broker does to Vault, for tests that put the
reconciler beside it (../shared/api-reference/blacksmith-broker-vault.md; the broker's Go
source, blacksmith-community/blacksmith at 670ae665). Written in our own words, only the
behaviour that touches what the reconciler reads or writes:

- ``secret/db`` is one map ``instance id -> entry``, read, changed and written back whole,
  never with check-and-set: a broker write between our read and our write wins, and a
  broker write that started before ours overwrites ours (``begin_index``/``commit_index``).
- every history append keeps only entries whose ``timestamp`` is a number of Unix seconds
  not older than 30 days, and the last 1000 of those;
- the hourly sweep derives ``<plan_id>-<instance_id>`` from each index entry (it never
  reads a stored ``deployment_name``) and removes the entry when BOSH has no deployment of
  that name;
- provision and deprovision write the index ``status`` (``request_received`` ...
  ``provisioning_started``; ``deprovision_requested``), ``secret/<id>/deployment``, the root
  record and ``secret/<id>/task``, whose ``state`` is never set back when an operation ends.

The Vault it acts on is anything with ``read(path) -> dict | None`` and ``write(path, data)``
(no cas): :class:`DictKV` in memory, :class:`HttpKV` over a real KV v2 HTTP API.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import requests

HISTORY_RETENTION_DAYS = 30  # pkg/vault/constants.go DefaultHistoryRetentionDays
HISTORY_MAX_SIZE = 1000  # pkg/vault/constants.go HistoryMaxSize
DAY = 86400


class KV(Protocol):
    def read(self, path: str) -> dict[str, Any] | None: ...

    def write(self, path: str, data: dict[str, Any]) -> None: ...


class DictKV:
    """An in-memory Vault: ``{logical path: data}``; ``writes`` counts writes per path."""

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self.data: dict[str, dict[str, Any]] = copy.deepcopy(dict(data or {}))
        self.writes: dict[str, int] = {}

    def read(self, path: str) -> dict[str, Any] | None:
        got = self.data.get(path)
        return copy.deepcopy(got) if got is not None else None

    def write(self, path: str, data: dict[str, Any]) -> None:
        self.data[path] = copy.deepcopy(data)
        self.writes[path] = self.writes.get(path, 0) + 1


class HttpKV:
    """A KV v2 mount over HTTP, as the broker's Vault client uses it: plain writes, no cas."""

    def __init__(self, address: str, token: str, *, mount: str = "secret", verify: Any = True) -> None:
        self.address, self.mount = address.rstrip("/"), mount
        self.session = requests.Session()
        self.session.headers["X-Vault-Token"] = token
        self.session.verify = verify

    def _url(self, path: str) -> str:
        prefix = self.mount + "/"
        if not path.startswith(prefix):
            raise ValueError(f"broker model: path {path!r} is not under {prefix}")
        return f"{self.address}/v1/{self.mount}/data/{path[len(prefix):]}"

    def read(self, path: str) -> dict[str, Any] | None:
        r = self.session.get(self._url(path), timeout=10)
        if r.status_code == 404:
            return None
        r.raise_for_status()
        return (r.json().get("data") or {}).get("data")

    def write(self, path: str, data: dict[str, Any]) -> None:
        self.session.post(self._url(path), json={"data": data}, timeout=10).raise_for_status()


def is_unix_seconds(value: Any) -> bool:
    """What the broker's retention filter accepts as a timestamp: a JSON number (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def filter_history(history: Iterable[Any], *, now: float) -> list[dict[str, Any]]:
    """The broker's ``FilterHistoryByRetention``: drop entries whose timestamp is missing or not
    a number, drop those older than 30 days, keep the last 1000."""
    cutoff = int(now) - HISTORY_RETENTION_DAYS * DAY
    kept = [e for e in history if isinstance(e, Mapping) and is_unix_seconds(e.get("timestamp"))
            and int(e["timestamp"]) >= cutoff]
    return [dict(e) for e in kept[-HISTORY_MAX_SIZE:]]


def derived_deployment_name(instance_id: str, entry: Mapping[str, Any]) -> str | None:
    """The name the broker uses for every lifecycle step: ``plan_id + "-" + instance_id``
    (None when the entry has no string ``service_id``/``plan_id``: the sweep skips it)."""
    if not isinstance(entry, Mapping):
        return None
    if not isinstance(entry.get("service_id"), str) or not isinstance(entry.get("plan_id"), str):
        return None
    return f"{entry['plan_id']}-{instance_id}"


class BrokerModel:
    """The broker's Vault behaviour. ``deployments()`` lists BOSH deployment names (the
    sweep's view); ``clock()`` gives Unix seconds."""

    def __init__(self, kv: KV, deployments: Callable[[], Iterable[str]], *, mount: str = "secret",
                 clock: Callable[[], float] = time.time) -> None:
        self.kv, self.deployments, self.mount, self.clock = kv, deployments, mount, clock
        self.removed: list[str] = []  # instance ids the sweeps removed, in order

    def path(self, *parts: str) -> str:
        return "/".join([self.mount, *parts])

    # -- the index: whole-map read-modify-write, no cas ---------------------------------------

    def begin_index(self) -> dict[str, Any]:
        """The broker's read of ``secret/db`` at the start of an index change."""
        return self.kv.read(self.path("db")) or {}

    def commit_index(self, index: Mapping[str, Any]) -> None:
        """The broker's write of the whole map: whatever was written since its read is lost."""
        self.kv.write(self.path("db"), dict(index))

    def update_entry(self, instance_id: str, updates: Mapping[str, Any], *,
                     read: dict[str, Any] | None = None) -> None:
        """``buildIndexEntry`` + ``Index`` (or ``UpdateIndexEntry``): the existing entry with
        ``updates`` over it. ``read`` is an index read earlier (a write racing ours)."""
        index = read if read is not None else self.begin_index()
        entry = dict(index.get(instance_id) or {}) if isinstance(index.get(instance_id), Mapping) else {}
        entry.update(updates)
        index[instance_id] = entry
        self.commit_index(index)

    def remove_entry(self, instance_id: str, *, read: dict[str, Any] | None = None) -> None:
        index = read if read is not None else self.begin_index()
        index.pop(instance_id, None)
        self.commit_index(index)

    # -- history -----------------------------------------------------------------------------

    def append_history(self, instance_id: str, action: str, description: str) -> None:
        """``AppendHistory``: read the metadata, append, apply the retention filter, write."""
        path = self.path(instance_id, "metadata")
        meta = self.kv.read(path) or {}
        history = meta.get("history") if isinstance(meta.get("history"), list) else []
        now = int(self.clock())
        history = [*history, {"timestamp": now, "action": action, "description": description}]
        meta["history"] = filter_history(history, now=now)
        self.kv.write(path, meta)

    def track(self, instance_id: str, action: str, description: str, task: int, state: str) -> None:
        """``TrackProgress``: ``secret/<id>/task`` (its state is never cleared afterwards)."""
        self.kv.write(self.path(instance_id, "task"), {
            "action": action, "task": task, "state": state, "description": description,
            "updated_at": int(self.clock()), "params": {}})

    # -- the hourly sweep ----------------------------------------------------------------------

    def sweep(self) -> list[str]:
        """``ServiceWithNoDeploymentCheck``: remove every entry whose derived deployment name
        BOSH does not have. Returns the removed instance ids."""
        names = set(self.deployments())
        index = self.begin_index()
        gone = []
        for iid, entry in list(index.items()):
            name = derived_deployment_name(iid, entry)
            if name is not None and name not in names:
                gone.append(iid)
        for iid in gone:  # the broker saves once per removal; the net effect is the same
            index.pop(iid, None)
        if gone:
            self.commit_index(index)
        self.removed += gone
        return gone

    # -- provision and deprovision ----------------------------------------------------------

    def provision_request(self, instance_id: str, *, service_id: str, plan_id: str, organization_guid: str = "",
                          space_guid: str = "", context: Mapping[str, str] | None = None) -> None:
        """``Provision`` up to the hand-off to BOSH: the index entry (``request_received`` ->
        ``validated`` -> ``provisioning_started``), ``secret/<id>/deployment`` and the root
        record, the task record and a history entry."""
        now = int(self.clock())
        base: dict[str, Any] = {"service_id": service_id, "plan_id": plan_id, "created": now,
                                "requested_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}
        if organization_guid:
            base["organization_guid"] = organization_guid
        if space_guid:
            base["space_guid"] = space_guid
        names = {k: v for k, v in (context or {}).items()
                 if k in ("organization_name", "space_name", "instance_name", "platform") and v}
        self.update_entry(instance_id, {**base, **names, "status": "request_received"})
        info = {"requested_at": base["requested_at"], "organization_guid": organization_guid,
                "space_guid": space_guid, "service_id": service_id, "plan_id": plan_id,
                "deployment_name": f"{plan_id}-{instance_id}", "instance_id": instance_id, **names}
        self.kv.write(self.path(instance_id, "deployment"), info)
        self.kv.write(self.path(instance_id), {**info, **({"context": dict(context)} if context else {})})
        self.track(instance_id, "provision", "Starting provisioning process", 0, "initializing")
        self.append_history(instance_id, "provision", "Starting provisioning process")

    def provision_started(self, instance_id: str) -> None:
        """The status the broker leaves on a provisioned entry: it never writes a final one."""
        self.update_entry(instance_id, {"status": "provisioning_started"})
        self.track(instance_id, "provision", "BOSH deployment in progress (task 42)", 42, "in_progress")
        self.append_history(instance_id, "provision", "BOSH deployment in progress (task 42)")

    def provision_completed(self, instance_id: str) -> None:
        """``OnProvisionCompleted``: ``created_at`` into the metadata and the index entry."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(self.clock())))
        path = self.path(instance_id, "metadata")
        meta = self.kv.read(path) or {}
        meta["created_at"] = stamp
        self.kv.write(path, meta)
        index = self.begin_index()
        if isinstance(index.get(instance_id), Mapping):
            self.update_entry(instance_id, {"created_at": stamp}, read=index)

    def deprovision_request(self, instance_id: str, *, service_id: str, plan_id: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(self.clock())))
        self.update_entry(instance_id, {"service_id": service_id, "plan_id": plan_id,
                                        "deprovision_requested_at": stamp, "status": "deprovision_requested"})
        self.track(instance_id, "deprovision", "Starting deprovisioning process", 0, "initializing")
        self.append_history(instance_id, "deprovision", "Starting deprovisioning process")

    def deprovision_completed(self, instance_id: str) -> None:
        """The deployment is gone: the entry leaves the index (the other paths stay)."""
        self.track(instance_id, "deprovision", "Removing from service index", 0, "initializing")
        self.append_history(instance_id, "deprovision", "Removing from service index")
        self.remove_entry(instance_id)


# -- beside a running scenario ---------------------------------------------------------------


def for_scenario(scenario: Any, *, clock: Callable[[], float] = time.time) -> BrokerModel:
    """A broker model acting on a running :class:`mockstack.runner.Scenario`: Vault over HTTP,
    BOSH's deployment list from the Director emulator."""
    vault = scenario.stack.endpoints()["vault"]
    kv = HttpKV(vault["address"], vault["token"], mount=vault.get("mount") or "secret",
                verify=vault.get("ca_cert") or True)
    return BrokerModel(kv, scenario.stack.bosh.deployment_names, mount=vault.get("mount") or "secret", clock=clock)


def entries_changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Index keys added, removed or changed between two reads of ``secret/db``."""
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


def measure_cycles(world: Any, *, cycles: int = 3, config_text: str | None = None) -> list[dict[str, Any]]:
    """Alternate the broker's hourly sweep and a reconciler run ``cycles`` times on ``world``;
    per cycle: the entries the sweep removed and the entries the run changed (added,
    removed or rewritten), with the run's own count of name_mismatch restorations when it
    reports one."""
    from mockstack.runner import Scenario

    out: list[dict[str, Any]] = []
    with Scenario(world, config_text=config_text) as scenario:
        broker = for_scenario(scenario)
        for n in range(1, cycles + 1):
            swept = broker.sweep()
            before = broker.begin_index()
            record = scenario.run_once()
            after = broker.begin_index()
            changed = entries_changed(before, after)
            output = record.get("output") if isinstance(record.get("output"), Mapping) else {}
            restored = ((output.get("phases") or {}).get("sync_index") or {}).get("name_mismatch_restored")
            out.append({"cycle": n, "run_status": record["status"], "sweep_removed": len(swept),
                        "run_changed": len(changed), "name_mismatch_restored": restored,
                        "index_entries": len(after)})
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m mockstack.broker --instances 300 --seed 1 --cycles 3``: one JSON line per cycle
    (the functions' logs go to ``--log``)."""
    import argparse
    import json
    from pathlib import Path

    from mockstack.generator import generate
    from mockstack.runner import logs_to

    root = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(prog="python -m mockstack.broker",
                                     description="broker sweep / reconciler run cycles on a generated world")
    parser.add_argument("--instances", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--config", default=str(root / "config/demo.conf"), help="reconciler settings (YAML)")
    parser.add_argument("--log", default="broker-cycles.log", help="where the functions' logs go")
    args = parser.parse_args(argv)
    world, _ = generate(args.instances, args.seed)
    with logs_to(Path(args.log)):
        rows = measure_cycles(world, cycles=args.cycles, config_text=Path(args.config).read_text())
    for row in rows:
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
