"""Fault convergence: does the reconciler reach the same Vault under faults as without?

``python -m mockstack.faults [--instances 150] [--seed 7] [--fault-seeds 7,8,...] [--error-rate 0.2]
[--runs 3] [--scenarios cf,bosh,vault,all] [--quick] [--json OUT]`` generates one world (``--seed``),
runs the reconciler on it ``--runs`` times without faults (the reference: the Vault after each
run), then, per scenario and per fault seed (``--fault-seeds``, default ``--seed``: which requests fail),
on a fresh copy of the same world with the scenario's faults injected, run after run until the
Vault equals the fault-free one after as many runs (or ``--runs`` is reached). The fault-free
lines show how many paths its own later runs still changed. Runs are separated as an hourly
schedule would separate them: the deployment cache is emptied and every circuit breaker / rate
limiter item dropped between runs (an hour apart, the cache's TTL and the breakers' timeouts
have long expired).

Per scenario and run it prints the execution status, failed items (deployments whose scan
failed, instances not reconciled, batches missing, discoveries failed), the Vault paths still
different from the reference, and the requests per API. Every scenario is also checked for the
two things that must never happen, whatever the faults: a credential lost or changed (every
path of the world's ``untouched_paths``), and a write outside the allowed paths (``secret/db``,
``secret/<our instance>/...`` and ``secret/backups/<our instance>/...``).

Compared "equal" ignores what legitimately differs between two correct runs: timestamps
(``updated_at``, ``reconciled_at``, ``timestamp``, an orphan mark's ``since``), the metadata
``history`` and the backups' content hashes (a backup is compared as "this instance has one").
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

TIMESTAMP_KEYS = frozenset({"updated_at", "reconciled_at", "timestamp", "since", "first_seen", "last_seen"})
WRITE_METHODS = frozenset({"PUT", "POST", "PATCH", "DELETE"})
APIS = ("cf", "bosh", "vault")
UUID_TAIL = re.compile(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")
# ``--quick`` (and tests/e2e/test_fault_convergence.py): the breakers, retries and rate limits of
# the spec's defaults; only the pauses and retry delays shortened (they sleep in real time)
QUICK_CONFIG = """\
reconciler:
  retry: {initial_delay: 200ms, max_delay: 2s}
  batch: {delay: 0s}
  concurrency: {cooldown_period: 0s}
  apis:
    cf: {rate_limit: {wait_timeout: 60s}}
    bosh: {rate_limit: {wait_timeout: 60s}}
    vault: {rate_limit: {wait_timeout: 60s}}
"""


def scenarios(error_rate: float, seed: int) -> dict[str, dict[str, dict[str, Any]]]:
    """Faults per scenario: ``{name: {api: knobs}}`` (the mock stack's fault knobs)."""
    def err(offset: int) -> dict[str, Any]:
        return {"error_rate": error_rate, "seed": seed + offset}

    return {"cf": {"cf": err(1)}, "bosh": {"bosh": err(2)}, "vault": {"vault": err(3)},
            "all": {"cf": err(1), "bosh": err(2), "vault": err(3)},
            "latency": {api: {"latency_s": 0.02, "jitter_s": 0.13, "seed": seed + i} for i, api in enumerate(APIS)}}


# --- comparing two Vaults --------------------------------------------------------------------


def _normal(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("<ts>" if k in TIMESTAMP_KEYS else _normal(v)) for k, v in value.items() if k != "history"}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def normalized(vault: Mapping[str, Any]) -> dict[str, Any]:
    """A Vault snapshot with what may differ between two correct runs taken out."""
    out: dict[str, Any] = {}
    for path, data in vault.items():
        parts = path.split("/")
        if len(parts) == 4 and parts[1] == "backups":  # secret/backups/<id>/<sha>: "has a backup"
            out[f"{parts[0]}/backups/{parts[2]}/*"] = True
            continue
        out[path] = _normal(data)
    return out


def differences(vault: Mapping[str, Any], reference: Mapping[str, Any]) -> list[str]:
    """Paths whose (normalized) data differ, are missing or are extra, sorted."""
    a, b = normalized(vault), normalized(reference)
    return sorted(p for p in set(a) | set(b) if a.get(p) != b.get(p))


# --- what must never happen -------------------------------------------------------------------


def our_instance_ids(expected: Mapping[str, Any]) -> set[str]:
    ids = set(expected.get("matched") or {}) | set(expected.get("index_ids") or [])
    orphans = expected.get("orphans") or {}
    ids |= set(orphans.get("cf") or []) | set(orphans.get("vault") or [])
    for name in orphans.get("bosh") or []:
        found = UUID_TAIL.search(name)
        if found:
            ids.add(found.group(1))
    return ids


def logical(path: str, mount: str = "secret") -> str | None:
    """``/v1/secret/data/<p>`` (or ``metadata``/``delete``/``destroy``/``undelete``) -> ``<p>``."""
    prefix = f"/v1/{mount}/"
    if not path.startswith(prefix):
        return None
    rest = path[len(prefix):].split("?", 1)[0]
    head, _, tail = rest.partition("/")
    return tail if head in ("data", "metadata", "delete", "destroy", "undelete") else rest


def writes_outside(requests: Iterable[Any], ours: set[str]) -> list[str]:
    """Vault writes to anything but ``db``, ``<ours>[/...]`` and ``backups/<ours>/...``."""
    bad = []
    for r in requests:
        if r.api != "vault" or r.method not in WRITE_METHODS or r.path.startswith("/v1/auth/"):
            continue
        p = logical(r.path)
        if p is None:
            bad.append(f"{r.method} {r.path}")
            continue
        parts = p.split("/")
        allowed = p == "db" or parts[0] in ours or (parts[0] == "backups" and len(parts) > 1 and parts[1] in ours)
        if not allowed:
            bad.append(f"{r.method} {p}")
    return sorted(set(bad))


def credentials_changed(world_vault: Mapping[str, Any], final: Mapping[str, Any], paths: Iterable[str]) -> list[str]:
    return sorted(p for p in paths if p in world_vault and final.get(p) != world_vault[p])


def bindings_missing(final: Mapping[str, Any], world_cf: Mapping[str, Any], lost: Mapping[str, list[str]]) -> list[str]:
    """Lost binding credentials (expected ``lost_binding_credentials``) not back in Vault as CF has them."""
    details = world_cf.get("binding_details") or {}
    out = []
    for iid, guids in lost.items():
        for guid in guids:
            want = (details.get(guid) or {}).get("credentials")
            if final.get(f"secret/{iid}/bindings/{guid}/credentials") != want:
                out.append(f"{iid}/bindings/{guid}")
    return sorted(out)


# --- one run's figures ------------------------------------------------------------------------


def failed_items(record: Mapping[str, Any]) -> dict[str, Any]:
    """What a run did not do, from its output (a FAILED execution has none: everything failed)."""
    out = record.get("output") or {}
    phases = out.get("phases") or {}
    scan, apply = phases.get("scan") or {}, phases.get("apply") or {}
    figures = {"status": record["status"] if record["status"] != "SUCCEEDED" else out.get("status", "?"),
               "error": record.get("error"),
               "scan_failed": int(scan.get("scan_failed", 0)),
               "scan_batches_missing": int(scan.get("batches_missing", 0)),
               "instances_failed": int(apply.get("instances_failed", 0)),
               "apply_batches_missing": int(apply.get("batches_missing", 0)),
               "not_reconciled": out.get("not_reconciled"),
               "discovery_failed": [n for n in ("discover_cf", "discover_bosh")
                                    if (phases.get(n) or {}).get("status") == "failed"]}
    return figures


def expire_between_runs(engine: Any) -> None:
    """What an hour does: the deployment cache expired, every breaker and bucket back to closed/full."""
    ddb = engine.client("dynamodb")
    for table, keep in ((engine.tables["CacheTable"], lambda pk: True),
                        (engine.tables["StateTable"], lambda pk: pk == "guard")):
        kwargs: dict[str, Any] = {"TableName": table, "ProjectionExpression": "pk, sk"}
        while True:
            page = ddb.scan(**kwargs)
            for item in page.get("Items", []):
                if keep(item["pk"]["S"]):
                    ddb.delete_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]})
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


# --- the scenarios ------------------------------------------------------------------------------


def run_scenario(name: str, world: Mapping[str, Any], expected: Mapping[str, Any], faults: Mapping[str, Any],
                 references: list[Mapping[str, Any]] | None, *, max_runs: int, config_text: str | None = None,
                 until_converged: bool = True) -> dict[str, Any]:
    """Runs until the Vault equals the fault-free run's after as many runs (``references[i]``:
    the fault-free Vault after run i+1; the last one stands for later runs), at most ``max_runs``.
    Without references (the fault-free scenario itself) every run's Vault is kept in ``vaults``."""
    from mockstack.runner import Scenario

    ours = our_instance_ids(expected)
    runs: list[dict[str, Any]] = []
    vaults: list[dict[str, Any]] = []
    converged_after = None
    with Scenario(json.loads(json.dumps(world)), config_text=config_text) as scenario:
        scenario.set_faults(faults)
        for i in range(1, max_runs + 1):
            if i > 1:
                expire_between_runs(scenario.engine)
            record = scenario.run_once(timeout_s=1800)
            vault = scenario.vault_contents()
            diff = differences(vault, references[min(i, len(references)) - 1]) if references else []
            if not references:
                vaults.append(vault)
            runs.append({"run": i, **failed_items(record), "duration_s": record["duration_s"],
                         "requests": {api: sum(m.values()) for api, m in record["requests"].items()},
                         "paths_different": len(diff), "paths_different_sample": diff[:5]})
            if references and not diff and converged_after is None:
                converged_after = i
                if until_converged:
                    break
        final = scenario.vault_contents()
        logged = scenario.stack.requests()
        outside = writes_outside(logged, ours)
    errors = {api: sum(1 for r in logged if r.api == api and (r.status >= 500 or r.status == 0)) for api in APIS}
    lost = expected.get("lost_binding_credentials") or {}
    return {"scenario": name, "faults": faults, "runs": runs, "converged_after": converged_after,
            "credentials_changed": credentials_changed(world["vault"], final, expected.get("untouched_paths") or []),
            "writes_outside_allowed": outside, "bindings_not_restored": bindings_missing(final, world["cf"], lost),
            "errors_answered": errors,  # 5xx and resets the emulators gave: the faults were there
            "final_vault": final, "vaults": vaults}


def suite(instances: int = 150, seed: int = 7, error_rate: float = 0.2, max_runs: int = 3,
          names: Iterable[str] = ("cf", "bosh", "vault", "all"), config_text: str | None = None,
          progress: Any = None, fault_seeds: Iterable[int] | None = None) -> dict[str, Any]:
    """The fault-free timeline of the world of ``seed``, then every scenario of ``names`` once
    per fault seed (default: ``seed``), each against that timeline."""
    import mockstack.aws  # noqa: F401  (puts shared/ on the path)
    from mockstack.generator import generate

    world, expected = generate(instances, seed)
    started = time.monotonic()
    # the fault-free timeline: a second run may still change what the first could not yet
    # (backups aged, orphans past their grace period), so run k is compared with its run k
    base = run_scenario("fault-free", world, expected, {}, None, max_runs=max_runs, config_text=config_text)
    references = base.pop("vaults")
    base.pop("final_vault")
    base["converged_after"] = 1
    for i, run in enumerate(base["runs"][1:], 2):  # how much later fault-free runs still change
        run["paths_different"] = len(differences(references[i - 1], references[i - 2]))
    results = [base]
    if progress:
        progress(base)
    seeds = list(fault_seeds or [seed])
    for name in names:
        for fault_seed in seeds:
            result = run_scenario(name, world, expected, scenarios(error_rate, fault_seed)[name], references,
                                  max_runs=max_runs, config_text=config_text)
            result.pop("final_vault")
            result.pop("vaults")
            result["fault_seed"] = fault_seed
            results.append(result)
            if progress:
                progress(result)
    return {"instances": instances, "seed": seed, "fault_seeds": seeds, "error_rate": error_rate, "max_runs": max_runs,
            "deployments": len(world["bosh"]["deployments"]), "wall_s": round(time.monotonic() - started, 1),
            "lost_binding_credentials": sum(len(v) for v in (expected.get("lost_binding_credentials") or {}).values()),
            "scenarios": results}


def render(result: Mapping[str, Any]) -> str:
    lines = []
    for r in result.get("scenarios", [result]):
        conv = r["converged_after"]
        seed = f" (fault seed {r['fault_seed']})" if "fault_seed" in r else ""
        outcome = f"converged after {conv} run(s)" if conv else "NOT converged"
        lines.append(f"{r['scenario']}{seed}: {outcome}; "
                     f"credentials changed {len(r['credentials_changed'])}, writes outside allowed paths "
                     f"{len(r['writes_outside_allowed'])}, lost binding credentials not restored "
                     f"{len(r['bindings_not_restored'])}")
        for run in r["runs"]:
            req = ", ".join(f"{api} {n}" for api, n in sorted(run["requests"].items()))
            lines.append(f"  run {run['run']}: {run['status']}{' (' + run['error'] + ')' if run['error'] else ''}; "
                         f"scan failed {run['scan_failed']}, instances failed {run['instances_failed']}, "
                         f"batches missing {run['scan_batches_missing']}+{run['apply_batches_missing']}, "
                         f"not reconciled {run['not_reconciled'] if run['not_reconciled'] is not None else '-'}, "
                         f"discovery failed {run['discovery_failed'] or '-'}; paths different {run['paths_different']};"
                         f" {run['duration_s']:.0f}s; requests: {req}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mockstack.faults", description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=150, help="service instances to generate (default 150)")
    parser.add_argument("--seed", type=int, default=7, help="generator seed (and fault seed by default; default 7)")
    parser.add_argument("--fault-seeds", default="", help="comma-separated fault seeds, each scenario run once per "
                        "seed against the one fault-free timeline (default: --seed)")
    parser.add_argument("--quick", action="store_true", help="the test suite's configuration (retry delays and "
                        "pauses shortened, breakers and rate limits as the spec's defaults)")
    parser.add_argument("--error-rate", type=float, default=0.2, help="share of requests failed (default 0.2)")
    parser.add_argument("--runs", type=int, default=3, help="runs at most per scenario (default 3)")
    parser.add_argument("--scenarios", default="cf,bosh,vault,all",
                        help="comma-separated, of: " + ", ".join(scenarios(0, 0)) + " (default cf,bosh,vault,all)")
    parser.add_argument("--json", help="write the figures as JSON here")
    parser.add_argument("--log", default="out/faults.log", help="the functions' log (default out/faults.log)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = [n for n in names if n not in scenarios(0, 0)]
    seeds = [n.strip() for n in args.fault_seeds.split(",") if n.strip()]
    bad_seeds = [n for n in seeds if not n.isdigit()]
    if unknown or bad_seeds or args.instances < 1 or args.runs < 1 or not 0 <= args.error_rate <= 1:
        print(f"faults: bad arguments ({', '.join(unknown + bad_seeds) or 'counts'}); accepted scenarios: "
              f"{', '.join(scenarios(0, 0))}; --fault-seeds whole numbers >= 0; --instances, --runs >= 1; "
              "--error-rate 0..1", file=sys.stderr)
        return 2
    from mockstack.runner import logs_to

    log_path = Path(args.log)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.unlink(missing_ok=True)

    def progress(r: Mapping[str, Any]) -> None:
        print(render(r), file=sys.stderr, flush=True)

    with logs_to(log_path):
        result = suite(args.instances, args.seed, args.error_rate, args.runs, names, progress=progress,
                       config_text=QUICK_CONFIG if args.quick else None, fault_seeds=[int(n) for n in seeds])
    print(render(result))
    print(f"{result['instances']} instances, {result['deployments']} deployments, "
          f"{result['lost_binding_credentials']} lost binding credentials in the world; {result['wall_s']}s")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, sort_keys=True, default=str))
    ok = all(r["converged_after"] and r["converged_after"] <= 2 and not r["credentials_changed"]
             and not r["writes_outside_allowed"] for r in result["scenarios"])
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
