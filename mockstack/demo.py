"""``make demo``: a realistic generated world reconciled twice through the real state machine.

Generates a world with every kind of drift (and the outcome a correct reconciler reaches),
runs the reconciler twice in the embedded engine against the emulated CF, BOSH and Vault,
writes the full report, and prints a short human summary: per phase what it found and did,
orphans by type against the expected ones, credentials recovered, backups written, and the
Vault writes of the second run (a reconciled world needs none).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reconciler.domain.findings import FindingKind

ROOT = Path(__file__).resolve().parent.parent
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def vault_writes(run: Mapping[str, Any]) -> int:
    methods = (run.get("requests") or {}).get("vault") or {}
    return sum(int(methods.get(m, 0)) for m in WRITE_METHODS)


def _line(label: str, text: str) -> str:
    return f"  {label:<17}{text}"


def _phase_lines(output: Mapping[str, Any]) -> list[str]:
    phases = output.get("phases") or {}
    cf, bosh, scan = phases.get("discover_cf") or {}, phases.get("discover_bosh") or {}, phases.get("scan") or {}
    match, apply = phases.get("match") or {}, phases.get("apply") or {}
    index, orphans = phases.get("sync_index") or {}, phases.get("orphans") or {}

    def source(p: Mapping[str, Any], what: str) -> str:
        return what if p.get("status", "ok") == "ok" else f"FAILED ({p.get('error')}): run degraded"

    return [
        _line("1 CF", source(cf, f"{cf.get('instances', 0)} instances of our broker in {cf.get('foundations', 0)} "
                                 f"foundation(s), {cf.get('bindings', 0)} bindings, {cf.get('ignored', 0)} "
                                 f"ignored (user-provided or other brokers)")),
        _line("2 BOSH", source(bosh, f"{bosh.get('deployments', 0)} deployments, "
                                     f"{scan.get('scanned', scan.get('deployments', 0))} scanned in "
                                     f"{scan.get('batches', 0)} batches (cache hits {scan.get('cache_hits', 0)}, "
                                     f"misses {scan.get('cache_misses', 0)})")),
        _line("3 Match", f"{match.get('matched', 0)} matched, {match.get('excluded_deployments', 0)} non-service "
                         f"deployments excluded, {match.get('conflicts', 0)} conflicts, "
                         f"{match.get('unmatched_instances', 0)} CF instances without deployment "
                         f"({match.get('failed_provisions', 0)} failed provisions), {match.get('in_flight', 0)} "
                         f"with a broker operation in flight (left alone)"),
        _line("4 Vault", f"{apply.get('instances_written', 0)} instances written ({apply.get('writes', 0)} writes), "
                         f"{apply.get('instances_unchanged', 0)} unchanged, {apply.get('backups_written', 0)} "
                         f"backups, {apply.get('credentials_recovered', 0)} credentials recovered, "
                         f"{apply.get('credentials_unrecoverable', 0)} not recoverable, "
                         f"{apply.get('instances_failed', 0)} failed, {apply.get('history_converted', 0)} "
                         f"string history stamps converted to Unix seconds"),
        _line("5 Index", f"secret/db holds {index.get('entries', 0)} entries: {index.get('added', 0)} added, "
                         f"{index.get('updated', 0)} updated, written: {bool(index.get('written'))}; "
                         f"{index.get('name_mismatch', 0)} name mismatches ({index.get('name_mismatch_restored', 0)} "
                         f"restored), {index.get('left_for_broker', 0)} without deployment left to the broker's "
                         f"sweep, {index.get('orphan_marks_removed', 0)} old orphan marks removed"),
        _line("6 Orphans", ", ".join(f"{k} {v}" for k, v in (orphans.get("orphans") or {}).items()) or "none"),
    ]


def _broker_lines(found: Mapping[str, Any], expected: Mapping[str, Any], vault: Mapping[str, Any]) -> list[str]:
    """Beside the live broker: the deployments it cannot find by name, and what is in flight."""
    lines = []
    index = vault.get("secret/db") or {}
    mismatched = sorted(found.get(FindingKind.NAME_MISMATCH.value) or [])
    if mismatched:
        lines.append("Name mismatches (the broker derives <plan_id>-<instance_id>; its hourly sweep drops these "
                     "entries, each run restores them):")
        for iid in mismatched[:3]:
            plan = (index.get(iid) or {}).get("plan_id", "?")
            lines.append(_line("", f"{iid} runs as {(expected.get('name_mismatch') or {}).get(iid, '?')}, "
                                   f"broker derives {plan}-{iid}"))
    busy = expected.get("in_flight") or {}
    if busy:
        ops = sorted(set(busy.values()))
        lines.append(f"In flight (not judged, not repaired): {len(found.get(FindingKind.IN_FLIGHT.value) or [])} "
                     f"instances ({', '.join(ops)})")
    return lines


def summarize(report: Mapping[str, Any], expected: Mapping[str, Any], report_path: Path) -> str:
    lines = ["", "Blacksmith reconciler demo", "=" * 26]
    for i, run in enumerate(report["runs"], 1):
        output = run.get("output") or {}
        lines.append(f"Run {i}: {run['status']} ({output.get('status', '-')}) in {run['duration_s']:.1f}s, "
                     f"{run['state_transitions']} state transitions, {run['history_events']} history events, "
                     f"largest state payload {run['max_state_payload_bytes']} bytes, "
                     f"{vault_writes(run)} Vault writes")
        lines.extend(_phase_lines(output))
    found = report.get("orphans") or {}
    want = expected.get("orphans") or {}
    lines.append("Orphans (found / expected by the generator):")
    for kind in FindingKind:
        got, exp = set(found.get(kind.value) or []), set(want.get(kind.value) or [])
        verdict = "as expected" if got == exp else f"missing {len(exp - got)}, unexpected {len(got - exp)}"
        lines.append(_line(kind.value, f"{len(got)} / {len(exp)}: {verdict}"))
    vault = report.get("vault") or {}
    lines += _broker_lines(found, expected, vault)
    recoverable = set(expected.get("recoverable_credentials") or [])
    recovered = sorted(i for i in recoverable if vault.get(f"secret/{i}/credentials"))
    lines.append(f"Credentials recovered from manifests: {len(recovered)} of {len(recoverable)} recoverable; "
                 f"{len(expected.get('unrecoverable_credentials') or {})} left for an operator (not guessed)")
    backups = sum(1 for p in vault if p.startswith("secret/backups/"))
    lines.append(f"Backups in Vault: {backups} (secret/backups/<id>/<sha256>, zstd, deduplicated)")
    second = report["runs"][-1]
    lines.append(f"Vault writes in the last run: {vault_writes(second)} (a reconciled world needs none)")
    status = report.get("status") or {}
    if status:
        lines.append(f"/b/status: running={status.get('running')}, last run {status.get('last_run_status')} "
                     f"in {status.get('last_run_duration')}, instances found {status.get('instances_found')}")
    lines.append(f"Full report: {report_path}; the functions' logs: {report_path.parent / 'reconciler.log'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mockstack demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=300, help="service instances to generate (default 300)")
    parser.add_argument("--seed", type=int, default=2026, help="generator seed (default 2026)")
    parser.add_argument("--out", default="out/demo", help="folder for world, expected outcome and report")
    parser.add_argument("--config", default=str(ROOT / "config/demo.conf"), help="reconciler settings (YAML)")
    args = parser.parse_args(argv)
    # phases without figures of their own flush no EMF metrics; Powertools warns about each
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    if args.instances < 1:
        print("demo: --instances must be at least 1", file=sys.stderr)
        return 2
    from mockstack.generator import generate
    from mockstack.runner import ScenarioError, logs_to, run_scenario
    from mockstack.world import save_world

    try:  # the operator's mistakes: one line and exit 2, before anything runs
        config_text = Path(args.config).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        print(f"demo: --config {args.config}: {getattr(exc, 'strerror', None) or 'not UTF-8 text'}; "
              "accepted: a YAML file of reconciler settings", file=sys.stderr)
        return 2
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"demo: --out {args.out}: {exc.strerror}; accepted: a folder (created when missing)", file=sys.stderr)
        return 2
    started = time.monotonic()
    world, expected = generate(args.instances, args.seed)
    save_world(world, out / "world.json")
    (out / "world.expected.json").write_text(json.dumps(expected, indent=2, sort_keys=True))
    print(f"generated {args.instances} instances (seed {args.seed}) with every kind of drift: {out / 'world.json'}")
    print("running the reconciler twice through the real state machine ...", flush=True)
    log_path = out / "reconciler.log"
    log_path.unlink(missing_ok=True)
    try:
        with logs_to(log_path):
            report = run_scenario(world, config_text=config_text, runs=2, workdir=str(out / "stack"))
    except ScenarioError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    report["wall_s"] = round(time.monotonic() - started, 3)
    report_path = out / "report.json"
    report_path.write_text(json.dumps(report, indent=2, sort_keys=True, default=str))
    print(summarize(report, expected, report_path))
    print(f"Demo took {report['wall_s']:.0f}s.")
    return 0 if all(r["status"] == "SUCCEEDED" for r in report["runs"]) else 1


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:  # at any point: generating, running or summarising
        print("demo: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
