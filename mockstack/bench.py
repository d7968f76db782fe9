"""``make bench``: how the reconciler scales, in figures.

Generates a world of ``--instances`` service instances, runs the reconciler ``--runs`` times
through the real state machine in the embedded engine (the demo's settings by default), and
prints a table per run: wall time, state transitions, history events, the largest state
payload, requests by API and method (the emulators' logs), AWS API calls by service and
operation (the functions' boto3 calls: the rate limiter's DynamoDB writes show up here), and
the process's peak RSS. ``--json`` writes the same figures (and the run outputs) as JSON.

The checks of issue 7 are printed with the figures: every state payload under 256 KiB,
history events far below 25,000 (Step Functions' hard limit), and the Map iteration bound at
50,000 instances computed from the batch sizes.

The physics (``mockstack.physics``): per rate-limited API the requests, the minimum a
correct reconciler must send for this world (computed from the world), their ratio, the
rate-limit bound and wall / bound, for run 1 (cold), run 2 (warm: details fresh) and run 3
(warm after ``cache_ttl``: the bench ages every cached detail by ``cache_ttl`` first, so the
events feed has to vouch for them); plus the run's AWS bill from its counts.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PAYLOAD_LIMIT = 256 * 1024  # Step Functions' state payload limit (bytes)
HISTORY_LIMIT = 25_000  # Step Functions' execution history limit (events)


class AwsCallCounter:
    """Counts boto3 calls (``{service: {operation: n}}``) made in this process while active."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._original: Any = None

    def __enter__(self) -> AwsCallCounter:
        from botocore.client import BaseClient

        original = self._original = BaseClient._make_api_call
        counter = self

        def counted(client: Any, operation_name: str, api_params: Any) -> Any:
            with counter._lock:
                counter.counts[(client.meta.service_model.service_name, operation_name)] += 1
            return original(client, operation_name, api_params)

        BaseClient._make_api_call = counted
        return self

    def __exit__(self, *exc: Any) -> None:
        from botocore.client import BaseClient

        BaseClient._make_api_call = self._original

    def snapshot(self) -> Counter[tuple[str, str]]:
        with self._lock:
            return Counter(self.counts)


def _nested(counts: Mapping[tuple[str, str], int]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for (service, op), n in sorted(counts.items()):
        if n:
            out.setdefault(service, {})[op] = n
    return out


def cpu_s() -> float:
    """CPU seconds this process used so far (user + system): less noisy than wall time on a busy machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


def map_bound(instances: int, deployments: int, settings: Any) -> dict[str, Any]:
    """Map iterations (= batches) per Map state, computed from the batch sizes as Begin/Match do."""
    from reconciler.phases.runtime import max_map_items, split

    most = max_map_items(settings)  # concurrency.queue_size, at most 1000
    scan_size, scan_batches = split(deployments, int(settings.reconciler.batch_size), most)  # DiscoverBosh
    apply_size, apply_batches = split(instances, int(settings.reconciler.batch.size), most)  # Match
    return {"instances": instances, "deployments": deployments, "scan_batch_size": scan_size,
            "scan_batches": scan_batches, "apply_batch_size": apply_size, "apply_batches": apply_batches,
            "max_map_items": most, "within_bound": scan_batches <= most and apply_batches <= most}


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    def line(r: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
    return "\n".join(line(r) for r in rows)


def physics_states() -> tuple[str, ...]:
    from mockstack.physics import PHASE_STATES  # as bench() imports physics: after mockstack.aws set the path

    return PHASE_STATES


def render(result: Mapping[str, Any]) -> str:
    runs = result["runs"]
    rows: list[tuple[str, ...]] = [("figure", *[f"run {i}" for i in range(1, len(runs) + 1)])]

    def row(label: str, fn: Any) -> None:
        rows.append((label, *[str(fn(r)) for r in runs]))

    row("status", lambda r: r["status"])
    row("wall time (s)", lambda r: f"{r['duration_s']:.1f}")
    row("CPU time, whole process (s)", lambda r: f"{r['cpu_s']:.1f}")
    row("state transitions", lambda r: r["state_transitions"])
    row("history events (largest execution)", lambda r: r["history_events"])
    row("executions (continue-as-new)", lambda r: r.get("executions", 1))
    row("max state payload (bytes)", lambda r: r["max_state_payload_bytes"])
    apis = sorted({(a, m) for r in runs for a, ms in r["requests"].items() for m in ms})
    for api, method in apis:
        row(f"{api} {method}", lambda r, a=api, m=method: r["requests"].get(a, {}).get(m, 0))
    ops = sorted({(s, o) for r in runs for s, os_ in r["aws_calls"].items() for o in os_})
    for service, op in ops:
        row(f"aws {service} {op}", lambda r, s=service, o=op: r["aws_calls"].get(s, {}).get(o, 0))
    row("vault writes", lambda r: r["vault_writes"])
    row("instances written", lambda r: ((r.get("output") or {}).get("phases") or {}).get("apply", {})
        .get("instances_written", "-"))
    row("instances failed", lambda r: ((r.get("output") or {}).get("phases") or {}).get("apply", {})
        .get("instances_failed", "-"))
    row("orphan kinds not judged", lambda r: ",".join(sorted((((r.get("output") or {}).get("phases") or {})
                                                           .get("orphans") or {}).get("not_evaluated") or {}))
        or "-")
    row("peak RSS (MiB)", lambda r: r["peak_rss_mib"])
    for api in ("bosh", "cf", "vault"):
        row(f"{api}: requests / minimum", lambda r, a=api: "{requests} / {minimum}".format(**r["physics"]["apis"][a]))
        row(f"{api}: ratio", lambda r, a=api: r["physics"]["apis"][a]["ratio"])
        row(f"{api}: rate-limit bound (s)", lambda r, a=api: r["physics"]["apis"][a]["bound_s"])
    row("run bound (s): slowest API", lambda r: r["physics"]["bound_s"])
    row("wall / bound", lambda r: r["physics"]["wall_over_bound"])
    for state in physics_states():
        row(f"{state} (s from start)", lambda r, s=state: "-".join(f"{x:.1f}" for x in
                                                              (r.get("phase_spans_s") or {}).get(s) or []) or "-")
    row("Lambda GB-s", lambda r: r["cost"]["lambda_gb_s"])
    row("DynamoDB reads / writes", lambda r: f"{r['cost']['dynamodb_reads']} / {r['cost']['dynamodb_writes']}")
    row("UpdateItem per API request", lambda r: r["cost"]["limiter_writes_per_request"])
    for part in ("lambda", "step_functions", "dynamodb", "secrets_manager"):
        row(f"cost {part} (USD)", lambda r, p=part: f"{r['cost']['usd'][p]:.5f}")
    row("cost total (USD)", lambda r: f"{r['cost']['usd_total']:.5f}")
    checks = result["checks"]
    bound = result["map_bound_50000"]
    lines = [f"bench: {result['instances']} instances, {result['deployments']} deployments, seed {result['seed']}, "
             f"world generated in {result['generate_s']:.1f}s, total {result['wall_s']:.1f}s",
             table(rows), "",
             f"every state payload < 256 KiB: {checks['payload_under_256KiB']} "
             f"(largest {checks['max_state_payload_bytes']} bytes)",
             f"history events far below 25,000: {checks['history_far_below_25000']} "
             f"(most {checks['max_history_events']})",
             f"Map bound at 50,000 instances / {bound['deployments']} deployments: apply "
             f"{bound['apply_batches']} batches of {bound['apply_batch_size']}, scan {bound['scan_batches']} batches "
             f"of {bound['scan_batch_size']} (<= {bound['max_map_items']}: {bound['within_bound']})",
             f"rates: {result['rates']} requests/s; run 1 cold, run 2 warm, run 3 warm after cache_ttl (aged); "
             f"prices (USD): {result['prices']}"]
    return "\n".join(lines)


def bench(instances: int, *, seed: int = 7, runs: int = 2, config_text: str | None = None,
          workdir: str | None = None, log_path: Path | None = None) -> dict[str, Any]:
    import mockstack.aws  # noqa: F401  (puts shared/ on the path, as /opt/python is on Lambda)
    from mockstack.generator import generate
    from mockstack.runner import Scenario, build_config, logs_to
    from reconciler.config import load_settings

    started = time.monotonic()
    world, _expected = generate(instances, seed)
    generated = time.monotonic() - started
    deployments = len(world["bosh"]["deployments"])
    out_runs: list[dict[str, Any]] = []
    from mockstack import physics

    with AwsCallCounter() as counter, logs_to(log_path), \
            Scenario(world, config_text=config_text, workdir=workdir) as scenario:
        config, _ = build_config(scenario.stack.endpoints(), config_text or "")
        settings = load_settings({}, config)
        minimum = physics.minimums(world, _expected, settings)
        rate = physics.rates(settings)
        for n in range(runs):
            if n == 2:  # run 3: every cached detail past cache_ttl, as an hourly run finds them
                age_cache(scenario, float(settings.reconciler.cache_ttl) + 60,
                          [d.name for d in settings.bosh_directors])
            before, cpu_before = counter.snapshot(), cpu_s()
            record = scenario.run_once(timeout_s=3600)
            record["cpu_s"] = round(cpu_s() - cpu_before, 1)
            calls = counter.snapshot()
            calls.subtract(before)
            methods = record["requests"].get("vault", {})
            record = {**record, "aws_calls": _nested(calls), "peak_rss_mib": peak_rss_mib(),
                      "vault_writes": sum(methods.get(m, 0) for m in ("POST", "PUT", "PATCH", "DELETE"))}
            kind = ("cold", "warm", "warm_after_ttl")[min(n, 2)] if n < 3 else "warm"
            record["physics"] = {"kind": kind, **physics.physics(record, minimum[kind], rate)}
            chain = [list(scenario.engine.history(arn))  # the run's every execution (continue-as-new)
                     for arn in record.get("execution_arns") or [record["execution_arn"]]]
            events = [e for history in chain for e in history]
            # event ids restart in every execution: a Task's start and end are paired within one
            record["cost"] = physics.cost(record, sum(physics.lambda_seconds(history) for history in chain))
            record["phase_spans_s"] = physics.state_spans(events)
            out_runs.append(record)
    largest = max(r["max_state_payload_bytes"] for r in out_runs)
    most = max(r["history_events"] for r in out_runs)
    return {"instances": instances, "deployments": deployments, "seed": seed, "generate_s": round(generated, 3),
            "minimum": minimum, "rates": rate, "prices": physics.PRICES,
            "wall_s": round(time.monotonic() - started, 3), "runs": out_runs,
            "checks": {"max_state_payload_bytes": largest, "payload_under_256KiB": largest < PAYLOAD_LIMIT,
                       "max_history_events": most, "history_far_below_25000": most < HISTORY_LIMIT // 5},
            "map_bound_50000": map_bound(50_000, max(1, deployments * 50_000 // max(1, instances)), settings)}


def age_cache(scenario: Any, seconds: float, directors: list[str]) -> None:
    """Make every cached deployment detail (and each director's events-feed chain) ``seconds``
    older, as if that much time had passed since the last run: the next run must revalidate."""
    from reconciler.phases import contracts
    from reconciler.store import Store

    engine = scenario.engine
    store = Store(engine.tables["CacheTable"], engine.tables["StateTable"], client=engine.client("dynamodb"))
    dynamodb = engine.client("dynamodb")
    kwargs: dict[str, Any] = {"TableName": engine.tables["CacheTable"], "ProjectionExpression": "pk, sk, cached_ts"}
    while True:
        page = dynamodb.scan(**kwargs)
        for item in page.get("Items", []):
            if "cached_ts" in item:
                dynamodb.update_item(TableName=engine.tables["CacheTable"], Key={"pk": item["pk"], "sk": item["sk"]},
                                     UpdateExpression="SET cached_ts = cached_ts - :s",
                                     ExpressionAttributeValues={":s": {"N": str(int(seconds))}})
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    for director in directors:
        feed = store.get_scratch(contracts.CARRYOVER, contracts.bosh_feed(director))
        if isinstance(feed, dict) and "chain_since" in feed:
            feed = {**feed, "chain_since": feed["chain_since"] - seconds, "read_until": feed["read_until"] - seconds}
            store.put_scratch(contracts.CARRYOVER, contracts.bosh_feed(director), feed, contracts.CARRYOVER_TTL_S)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mockstack.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=2000, help="service instances to generate (default 2000)")
    parser.add_argument("--seed", type=int, default=7, help="generator seed (default 7)")
    parser.add_argument("--runs", type=int, default=3,
                        help="reconciler runs, one after another (default 3: cold, warm, warm after cache_ttl)")
    parser.add_argument("--config", default=str(ROOT / "config/bench.conf"),
                        help="reconciler settings (YAML; default config/bench.conf: the default batch sizes, "
                             "rate limits lifted); 'defaults' for the spec's own")
    parser.add_argument("--out", default="out/bench", help="folder for the JSON figures and the functions' log")
    args = parser.parse_args(argv)
    if args.instances < 1 or args.runs < 1:
        print("bench: --instances and --runs must be at least 1", file=sys.stderr)
        return 2
    config_text = None
    if args.config != "defaults":
        try:
            config_text = Path(args.config).read_text()
        except OSError as exc:
            print(f"bench: --config {args.config}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / f"bench-{args.instances}.log"
    log_path.unlink(missing_ok=True)
    print(f"bench: generating {args.instances} instances and running the reconciler {args.runs} time(s) ...",
          flush=True)
    result = bench(args.instances, seed=args.seed, runs=args.runs, config_text=config_text,
                   workdir=str(out / "stack"), log_path=log_path)
    result["config"] = args.config
    path = out / f"bench-{args.instances}.json"
    path.write_text(json.dumps(result, indent=2, sort_keys=True, default=str))
    print(render(result))
    print(f"figures: {path}; the functions' log: {log_path}")
    return 0 if all(r["status"] == "SUCCEEDED" for r in result["runs"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
