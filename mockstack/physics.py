"""The physics of a run, for ``make bench``: what each API must be sent (computed from the
world, not from the run), the rate-limit bound that follows, and the AWS bill of the run
from its counts.

A run can never be faster than ``max over APIs (minimum requests / requests_per_second)``
(burst ignored: it shortens the bound by ``burst / rate`` seconds at most). The minimum is
what a correct reconciler must send for that world:

* BOSH: cold ``/info`` + ``/deployments`` + manifest and instances of every service
  deployment; warm (details fresh) the first two; warm after ``cache_ttl`` the first two
  and one ``/events`` page (fewer than 200 events since the last run).
* CF: the API root, the broker lookup (none with ``broker_guid``), one page each of
  offerings, plans and instances per 5,000, and the bindings of our instances with as
  many guids per request as fit the 8 KB request line; cold, also the details of each
  binding whose credentials Vault lost and the parameters of each instance that needs them
  (one request each: CF has no bulk form of either).
* Vault reads: ``sys/mounts`` (none with ``kv_version`` set), the index in Match and again
  for its cas write, the mount's LIST for Vault orphans, and per instance of our broker that
  is not in flight (CF or the index says so: Match skips it) the paths its plan needs: root,
  manifest, credentials, metadata, the broker's ``deployment`` record (kept true where it
  exists, and only a read tells whether it does), two per CF binding, and the broker's
  ``task`` record only where CF cannot say when its last operation finished. Cold, also the
  tree read before each write (an instance the generator drifted so that it must be
  written): a LIST per folder of its tree, a GET per secret the plan did not read, the LIST
  of its backups (dedup, retention) and Blacksmith's legacy folder where it exists; and the
  metadata read before each orphan history entry of a BOSH or Vault orphan (trees no plan
  read). The writes depend on the drift a run finds, so they are taken from the run:
  ``vault_writes`` in the table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# us-east-1 list prices used for the cost line (USD), December 2026 price pages
PRICES = {
    "lambda_gb_s": 0.0000166667,  # x86, per GB-second
    "lambda_request": 0.20 / 1e6,
    "sfn_transition": 0.025 / 1000,  # Standard workflows
    "dynamodb_write": 0.625 / 1e6,  # on-demand, per write request unit (1 KB)
    "dynamodb_read": 0.125 / 1e6,  # on-demand, per read request unit (4 KB, strongly consistent)
    "secrets_call": 0.05 / 10_000,
}
LAMBDA_GB = 0.5  # template.yaml: MemorySize 512 for every function
DYNAMODB_READS = ("GetItem", "Query", "Scan", "BatchGetItem")
DYNAMODB_WRITES = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")


def _our_instances(world: Mapping[str, Any], broker: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    cf = world["cf"]
    broker_guid = (broker or {}).get("guid")
    offerings = {o["guid"] for o in cf.get("service_offerings") or []
                 if broker_guid is None or ((o.get("relationships") or {}).get("service_broker") or {})
                 .get("data", {}).get("guid") == broker_guid}
    plans = {p["guid"] for p in cf.get("service_plans") or []
             if ((p.get("relationships") or {}).get("service_offering") or {}).get("data", {}).get("guid")
             in offerings}
    return [i for i in cf.get("service_instances") or [] if i.get("type", "managed") == "managed"
            and ((i.get("relationships") or {}).get("service_plan") or {}).get("data", {}).get("guid") in plans]


# the generator's drift kinds (``expected["drift"]``) whose instances a correct cold run must
# write (record, manifest, credentials or history repaired); an instance that lost binding
# credentials or its parameters is written too. Index-only drift (``lost_index``), legacy
# backups (migrated only when the instance is written or the run is forced) and drift that
# cannot be repaired (``unrecoverable_credentials``) write no tree.
TREE_DRIFT = ("lost_both", "lost_tree", "missing_credentials", "stale_manifest", "string_stamped_history",
              "upper_case_names")


def _planned(world: Mapping[str, Any], ours: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Our instances the plan reads: not those CF or the index says are in flight (Match skips them)."""
    from reconciler.domain.broker import instance_in_flight

    index = world["vault"].get("secret/db") or {}
    return [i for i in ours if not instance_in_flight(i.get("last_operation"), index.get(i["guid"]))]


def _plan_reads(instance: Mapping[str, Any], bindings: int) -> int:
    """root, manifest, credentials, metadata, the broker's ``deployment`` record (kept true
    where it exists, so it must be looked at), two per binding, and the broker's ``task``
    record only where CF cannot say when its last operation finished."""
    from reconciler.domain.broker import task_record_decides

    return 5 + 2 * bindings + (1 if task_record_decides(instance.get("last_operation")) else 0)


def _tree_reads(vault: Mapping[str, Any], iid: str, plan_paths: set[str], backups: bool) -> int:
    """What the tree read before a write adds to the plan's reads, from the world's Vault: a
    LIST of every folder of ``secret/<id>/`` (Vault lists one level), a GET of every secret the
    plan did not read, and with backups on the LIST of ``secret/backups/<id>/`` (dedup and
    retention) and, where Blacksmith's ``secret/<id>/backups/`` exists, its LIST and records."""
    root = f"secret/{iid}"
    legacy = f"{root}/backups/"
    paths = [p for p in vault if p.startswith(root + "/")]
    folders = {root + "/"}
    for p in paths:
        if p.startswith(legacy):
            continue
        parts = p[len(root) + 1:].split("/")[:-1]
        folders |= {root + "/" + "/".join(parts[:n]) + "/" for n in range(1, len(parts) + 1)}
    reads = sum(1 for p in paths if not p.startswith(legacy) and p not in plan_paths)
    if not backups:
        return len(folders) + reads
    old = [p for p in paths if p.startswith(legacy)]
    return len(folders) + reads + 1 + ((1 + len(old)) if old else 0)


def _vault_cold_extra(world: Mapping[str, Any], expected: Mapping[str, Any], planned: list[dict[str, Any]],
                      bound: Mapping[str, list[str]], settings: Any) -> int:
    """The cold run's Vault reads beyond the plan's: each written instance's tree read, and
    the metadata read before each orphan history entry of a tree the plan did not read."""
    vault = world["vault"]
    drift = expected.get("drift") or {}
    ids = {i["guid"] for i in planned}
    written = {iid for kind in TREE_DRIFT for iid in drift.get(kind) or []}
    written |= set(expected.get("lost_binding_credentials") or {}) | set(expected.get("fetched_parameters") or {})
    backup = settings.reconciler.backup
    on = bool(backup.enabled and backup.backup_on_update)
    extra = 0
    for iid in sorted(written & ids):
        plan_paths = {f"secret/{iid}{s}" for s in ("", "/manifest", "/credentials", "/metadata", "/deployment")}
        plan_paths |= {f"secret/{iid}/bindings/{b}/{leaf}" for b in bound.get(iid) or [] for leaf in ("credentials",
                                                                                                    "metadata")}
        extra += _tree_reads(vault, iid, plan_paths, on)
    orphans = expected.get("orphans") or {}
    # BOSH orphans (by deployment) and Vault orphans: instances the plan never read
    extra += len(orphans.get("bosh") or []) + len(orphans.get("vault") or [])
    return extra


def minimums(world: Mapping[str, Any], expected: Mapping[str, Any], settings: Any, *,
             api_url: str = "https://api.example.com") -> dict[str, dict[str, int]]:
    """``{"cold"|"warm"|"warm_after_ttl": {"bosh"|"cf"|"vault": requests}}``."""
    from reconciler.cf import PER_PAGE, guids_per_request

    deployments = world["bosh"]["deployments"]
    service = len(deployments) - len(expected.get("excluded_deployments") or [])
    broker = expected.get("broker")
    ours = _our_instances(world, broker)
    planned = _planned(world, ours)
    cf_world = world["cf"]
    ids = {i["guid"] for i in ours}
    bindings = [b for b in cf_world.get("service_credential_bindings") or []
                if ((b.get("relationships") or {}).get("service_instance") or {}).get("data", {}).get("guid") in ids]
    bound: dict[str, list[str]] = {}
    for b in bindings:
        bound.setdefault(b["relationships"]["service_instance"]["data"]["guid"], []).append(b["guid"])
    foundation = (settings.cf_foundations or [None])[0]
    broker_lookup = 0 if getattr(foundation, "broker_guid", None) else 1
    cf = (1 + broker_lookup + max(1, math.ceil(len(cf_world.get("service_offerings") or []) / PER_PAGE))
          + max(1, math.ceil(len(cf_world.get("service_plans") or []) / PER_PAGE))
          + max(1, math.ceil(len(cf_world.get("service_instances") or []) / PER_PAGE))
          + math.ceil(len(ids) / guids_per_request(str(getattr(foundation, "api_url", api_url) or api_url))))
    kv = str(getattr(settings.vault, "kv_version", "auto") or "auto")
    vault = (0 if kv in ("1", "2") else 1) + 3 + sum(_plan_reads(i, len(bound.get(i["guid"]) or [])) for i in planned)
    # a cold run also reads, for the drift it repairs, the CF details of each binding whose
    # credentials Vault lost and the parameters of each instance that needs them (CF has no
    # bulk form of either)
    lost = expected.get("lost_binding_credentials") or {}
    repairs = sum(len(v) for v in lost.values()) + len(expected.get("fetched_parameters") or [])
    cold_vault = vault + _vault_cold_extra(world, expected, planned, bound, settings)
    return {"cold": {"bosh": 2 + 2 * service, "cf": cf + repairs, "vault": cold_vault},
            "warm": {"bosh": 2, "cf": cf, "vault": vault},
            "warm_after_ttl": {"bosh": 3, "cf": cf, "vault": vault}}


def rates(settings: Any) -> dict[str, float]:
    apis = settings.reconciler.apis
    return {api: float(getattr(apis, api).rate_limit.requests_per_second) for api in ("bosh", "cf", "vault")}


def sent(requests: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    """Requests per rate-limited API (UAA logins are their own emulators, outside the limits)."""
    return {api: sum((requests.get(api) or {}).values()) for api in ("bosh", "cf", "vault")}


def physics(run: Mapping[str, Any], minimum: Mapping[str, int], rate: Mapping[str, float]) -> dict[str, Any]:
    """Per API requests, minimum, ratio and bound; the run's wall / bound."""
    got = sent(run["requests"])
    writes = int(run.get("vault_writes") or 0)
    per_api: dict[str, dict[str, Any]] = {}
    for api in ("bosh", "cf", "vault"):
        need = int(minimum[api]) + (writes if api == "vault" else 0)
        per_api[api] = {"requests": got[api], "minimum": need,
                        "ratio": round(got[api] / need, 3) if need else None,
                        "bound_s": round(need / rate[api], 2) if rate[api] else 0.0}
    bound = max(v["bound_s"] for v in per_api.values())
    return {"apis": per_api, "bound_s": bound,
            "wall_over_bound": round(float(run["duration_s"]) / bound, 3) if bound else None}


def lambda_seconds(events: list[dict[str, Any]]) -> float:
    """Time spent in Lambda invocations: each Task's start to its end in the history."""
    by_id = {e["id"]: e for e in events}
    total = 0.0
    for e in events:
        if e["type"] in ("TaskSucceeded", "TaskFailed", "TaskTimedOut", "LambdaFunctionSucceeded",
                         "LambdaFunctionFailed", "LambdaFunctionTimedOut"):
            start = by_id.get(e.get("previousEventId"))
            if start is not None and start["type"] in ("TaskStarted", "LambdaFunctionStarted"):
                total += (e["timestamp"] - start["timestamp"]).total_seconds()
    return total


#: The states whose spans the bench prints: the top-level phases and, with overlap_phases, the
#: Parallel ``ScanAndApply`` and its early branch (``PrepareEarly``, the ``UpdateVaultEarly`` Map)
PHASE_STATES = ("Discover", "ScanAndApply", "ScanDeployments", "PrepareEarly", "UpdateVaultEarly", "Match",
                "UpdateVault", "SyncIndex", "Orphans", "Finish")


def state_spans(events: list[dict[str, Any]], names: tuple[str, ...] = PHASE_STATES) -> dict[str, list[float]]:
    """``{state: [entered, exited]}`` in seconds from the execution's first event, for the
    ``names`` (first entry, last exit; a state inside a Parallel branch too): where a run's
    wall time goes, phase by phase, and whether phases overlap."""
    if not events:
        return {}
    t0 = events[0]["timestamp"]
    spans: dict[str, list[float]] = {}
    for e in events:
        entered = (e.get("stateEnteredEventDetails") or {}).get("name")
        exited = (e.get("stateExitedEventDetails") or {}).get("name")
        at = round((e["timestamp"] - t0).total_seconds(), 1)
        if entered in names and entered not in spans:
            spans[entered] = [at, at]
        if exited in names and exited in spans:
            spans[exited][1] = at
    return spans


def cost(run: Mapping[str, Any], lambda_s: float) -> dict[str, Any]:
    """The run's AWS bill from its counts (one request unit per DynamoDB item: the scratch
    and cache items are compressed below 4 KB read / 1 KB write mostly; larger ones cost more)."""
    calls = run.get("aws_calls") or {}
    dynamo = calls.get("dynamodb") or {}
    reads = sum(dynamo.get(op, 0) for op in DYNAMODB_READS)
    writes = sum(dynamo.get(op, 0) for op in DYNAMODB_WRITES)
    invokes = sum((calls.get("lambda") or {}).values())
    secrets = sum((calls.get("secretsmanager") or {}).values())
    gb_s = lambda_s * LAMBDA_GB
    usd = {"lambda": gb_s * PRICES["lambda_gb_s"] + invokes * PRICES["lambda_request"],
           "step_functions": int(run["state_transitions"]) * PRICES["sfn_transition"],
           "dynamodb": reads * PRICES["dynamodb_read"] + writes * PRICES["dynamodb_write"],
           "secrets_manager": secrets * PRICES["secrets_call"]}
    return {"lambda_gb_s": round(gb_s, 1), "lambda_invocations": invokes,
            "transitions": int(run["state_transitions"]), "dynamodb_reads": reads, "dynamodb_writes": writes,
            "limiter_writes_per_request": round(dynamo.get("UpdateItem", 0) / max(1, sum(sent(run["requests"])
                                                                                       .values())), 2),
            "usd": {k: round(v, 5) for k, v in usd.items()}, "usd_total": round(sum(usd.values()), 5)}
