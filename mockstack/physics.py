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
  binding whose credentials Vault lost and the parameters of each instance that needs them.
* Vault reads: ``sys/mounts`` (none with ``kv_version`` set), the index in Match and again
  for its cas write, the mount's LIST for Vault orphans, and per instance of our broker the
  paths its plan needs (root, manifest, credentials, metadata, two per binding). The write
  side (backups, writes, the LIST of each written instance's tree) depends on the drift a
  run finds, so it is taken from the run: ``vault_writes`` in the table.
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


def minimums(world: Mapping[str, Any], expected: Mapping[str, Any], settings: Any, *,
             api_url: str = "https://api.example.com") -> dict[str, dict[str, int]]:
    """``{"cold"|"warm"|"warm_after_ttl": {"bosh"|"cf"|"vault": requests}}``."""
    from reconciler.cf import PER_PAGE, guids_per_request

    deployments = world["bosh"]["deployments"]
    service = len(deployments) - len(expected.get("excluded_deployments") or [])
    broker = expected.get("broker")
    ours = _our_instances(world, broker)
    cf_world = world["cf"]
    ids = {i["guid"] for i in ours}
    bindings = [b for b in cf_world.get("service_credential_bindings") or []
                if ((b.get("relationships") or {}).get("service_instance") or {}).get("data", {}).get("guid") in ids]
    per_instance: dict[str, int] = {}
    for b in bindings:
        guid = b["relationships"]["service_instance"]["data"]["guid"]
        per_instance[guid] = per_instance.get(guid, 0) + 1
    foundation = (settings.cf_foundations or [None])[0]
    broker_lookup = 0 if getattr(foundation, "broker_guid", None) else 1
    cf = (1 + broker_lookup + max(1, math.ceil(len(cf_world.get("service_offerings") or []) / PER_PAGE))
          + max(1, math.ceil(len(cf_world.get("service_plans") or []) / PER_PAGE))
          + max(1, math.ceil(len(cf_world.get("service_instances") or []) / PER_PAGE))
          + math.ceil(len(ids) / guids_per_request(str(getattr(foundation, "api_url", api_url) or api_url))))
    kv = str(getattr(settings.vault, "kv_version", "auto") or "auto")
    vault = (0 if kv in ("1", "2") else 1) + 3 + sum(4 + 2 * per_instance.get(g, 0) for g in ids)
    # a cold run also reads, for the drift it repairs, the CF details of bindings whose
    # credentials Vault lost and the parameters of instances that need them
    repairs = len(expected.get("lost_binding_credentials") or []) + len(expected.get("fetched_parameters") or [])
    return {"cold": {"bosh": 2 + 2 * service, "cf": cf + repairs, "vault": vault},
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
