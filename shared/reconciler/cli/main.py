"""blacksmith-reconciler: drive a deployed reconciler from a terminal or a script.

Exit codes: 0 ok; 1 the run failed, finished with errors, or (``--dry-run``) found drift;
2 a usage or input error; 3 the stack (or Vault) cannot be reached. Every failure is one line
on stderr; ``--json`` prints the API's answer as JSON on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

from .. import backup as bk
from ..apply import list_backups
from ..config import load_settings
from ..config.__main__ import main as config_main
from ..errors import ConfigError, InvalidInput, NotFound, ReconcilerError
from ..observability import redact_text
from ..restore import describe_backup, restore_diff, restore_with_proof
from ..vault import VaultClient
from . import render
from .remote import CliError, StackClient, Unreachable

PROG = "blacksmith-reconciler"
POLL_S = 2.0


class Parser(argparse.ArgumentParser):
    """argparse, with every mistake on one line (no usage block) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise CliError(f"{self.prog}: {message} (see {self.prog} --help)", 2)


def connection_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("stack")
    group.add_argument("--stack", default=default, help="CloudFormation stack name (or BLACKSMITH_RECONCILER_STACK)")
    group.add_argument("--url", default=default, help="the API's Function URL (or BLACKSMITH_RECONCILER_URL)")
    group.add_argument("--region", default=default, help="AWS region (default: AWS_REGION / the profile's)")
    group.add_argument("--profile", default=default, help="AWS profile (default: AWS_PROFILE)")
    group.add_argument("--endpoint-url", default=default,
                       help="AWS endpoint, e.g. a LocalStack or mockstack serve (default: AWS_ENDPOINT_URL)")
    group.add_argument("--json", action="store_true", default=argparse.SUPPRESS if suppress else False,
                       help="print JSON instead of text")


def vault_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("vault (backups and restore talk to Vault directly)")
    group.add_argument("--config", dest="vault_config",
                       help="blacksmith.conf whose vault: section to use (default: VAULT_ADDR, VAULT_TOKEN, "
                            "VAULT_CACERT)")
    group.add_argument("--mount", default=None, help="KV mount (default: the config's, or secret)")


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    connection_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        connection_options(cmd, suppress=True)
        return cmd

    command("status", "what the reconciler is doing: the current run's phase and progress, the last run")
    run = command("run", "start a run (a forced run clears the deployment cache)")
    run.add_argument("--dry-run", action="store_true", help="plan only: nothing is written; exit 1 when drift is found")
    run.add_argument("--force", action="store_true", help="clear the deployment cache (rescan every deployment)")
    run.add_argument("--instance", action="append", default=[], metavar="ID", help="only this instance (repeatable)")
    run.add_argument("--service", action="append", default=[], metavar="ID", help="only this service (repeatable)")
    run.add_argument("--wait", action="store_true", help="follow the run with a progress bar until it ends")
    run.add_argument("--timeout", type=float, default=3600.0, help="--wait gives up after this many seconds")
    runs = command("runs", "recent runs, or one run's figures")
    runs.add_argument("run_id", nargs="?", metavar="RUN_ID")
    runs.add_argument("--limit", type=int, default=20, help="how many runs (1-100)")
    command("orphans", "orphans and other findings by kind, with first seen and age")
    plan = command("plan", "a dry run's plan (or a real run's changes) as a diff; default: the latest run")
    plan.add_argument("run_id", nargs="?", metavar="RUN_ID")
    backups = command("backups", "an instance's backups (reads Vault directly)")
    bsub = backups.add_subparsers(dest="backups_command", required=True, metavar="list|show", parser_class=Parser)
    blist = bsub.add_parser("list", help="the backups of INSTANCE, newest first")
    blist.add_argument("instance")
    bshow = bsub.add_parser("show", help="the paths and keys in one backup (secret values hidden)")
    bshow.add_argument("instance")
    bshow.add_argument("sha")
    for cmd in (blist, bshow):
        connection_options(cmd, suppress=True)
        vault_options(cmd)
    restore = command("restore", "restore INSTANCE (or one --path) from backup SHA, backing up first, verified")
    restore.add_argument("instance")
    restore.add_argument("sha")
    restore.add_argument("--path", help="restore only this path of the backup")
    restore.add_argument("--dry-run", action="store_true", help="show what would be written, write nothing")
    vault_options(restore)
    config = command("config", "check a blacksmith.conf, show its effective settings, or its template parameters")
    config.add_argument("action", choices=["check", "show", "parameters"])
    config.add_argument("file", metavar="FILE")
    command("doctor", "check that every dependency is reached, authenticated and authorised (GET /b/health)")
    return parser


# --- output -----------------------------------------------------------------------------


def emit(args: argparse.Namespace, data: Any, text: Callable[[Any], str]) -> None:
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        print(text(data))


def stack(args: argparse.Namespace) -> StackClient:
    return StackClient.connect(url=args.url, stack=args.stack, profile=args.profile, region=args.region,
                               endpoint_url=args.endpoint_url)


# --- commands ---------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    emit(args, stack(args).get("/b/status"), render.status_text)
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    client = stack(args)
    if args.run_id:
        emit(args, client.get(f"/b/runs/{args.run_id}"), render.run_text)
        return 0
    if not 1 <= args.limit <= 100:
        raise CliError(f"--limit {args.limit}: accepted is a whole number from 1 to 100")
    emit(args, client.get(f"/b/runs?limit={args.limit}")["runs"], render.runs_table)
    return 0


def cmd_orphans(args: argparse.Namespace) -> int:
    emit(args, stack(args).get("/b/orphans"), render.findings_text)
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    client = stack(args)
    run_id = args.run_id
    if not run_id:
        runs = client.get("/b/runs?limit=20")["runs"]
        run_id = next((r["run_id"] for r in runs if r.get("plan") is not None), None)
        if run_id is None:
            raise CliError("no recent run has a plan: start one with `run --dry-run --wait`")
    emit(args, client.get(f"/b/runs/{run_id}/plan"), render.plan_text)
    return 0


def run_outcome(record: dict[str, Any]) -> int:
    status = record.get("status")
    if status == "succeeded":
        plan = record.get("plan") or {}
        drift = bool(plan.get("instances") or plan.get("index"))
        return 1 if record.get("dry_run") and drift else 0
    return 1


def cmd_run(args: argparse.Namespace) -> int:
    client = stack(args)
    body = {"force": args.force, "dry_run": args.dry_run, "instances": args.instance, "services": args.service}
    answer = client.request("POST", "/b/reconcile", body)
    if answer.status == 409:
        raise CliError(f"a run is already going ({(answer.body or {}).get('execution_arn')}); try again when it ends",
                       1)
    if answer.status != 202:
        raise CliError(answer.error, 2)
    run_id = answer.body["run"]
    if not args.wait:
        emit(args, answer.body, lambda b: f"started {'dry run' if b.get('dry_run') else 'run'} {b['run']} "
                                          f"({b['execution_arn']}); follow it with `{PROG} status`")
        return 0
    record = wait_for_run(client, run_id, args.timeout, quiet=args.json)
    if args.json:
        print(json.dumps(record, indent=2, sort_keys=True, default=str))
    else:
        print(render.run_text(record))
        if record.get("dry_run"):
            print(f"the plan: {PROG} plan {run_id}")
    return run_outcome(record)


def wait_for_run(client: StackClient, run_id: str, timeout_s: float, *, quiet: bool) -> dict[str, Any]:
    """Poll until the run has finished; a progress line on stderr meanwhile (rewritten in place on a terminal)."""
    deadline = time.monotonic() + timeout_s
    tty = sys.stderr.isatty()
    last = ""
    while True:
        answer = client.request("GET", f"/b/runs/{run_id}")
        if answer.status == 200 and answer.body.get("finished_at"):
            if tty and last:
                sys.stderr.write("\n")
            return answer.body
        status = client.get("/b/status")
        current = status.get("current_execution") or {}
        refused = [e for e in status.get("errors") or [] if e.get("run_id") == run_id and e.get("target") == "run"]
        if refused and answer.status == 404:
            raise CliError(f"run {run_id} failed before it started: {refused[0].get('message')}", 1)
        if not quiet and current.get("run_id") == run_id:
            line = render.progress_line(current.get("progress"))
            if tty:
                sys.stderr.write("\r" + line[:150].ljust(150))
                sys.stderr.flush()
            elif line != last:
                print(line, file=sys.stderr, flush=True)
            last = line
        if time.monotonic() > deadline:
            raise CliError(f"run {run_id} still going after {timeout_s:.0f}s (--timeout); it goes on", 1)
        time.sleep(POLL_S)


def local_vault(args: argparse.Namespace) -> Any:
    """Vault from ``--config`` (its vault: section) or the usual VAULT_ADDR/VAULT_TOKEN/VAULT_CACERT."""

    if args.vault_config:
        try:
            with open(args.vault_config, encoding="utf-8") as fh:
                settings = load_settings(None, fh.read(), args.vault_config)
        except OSError as exc:
            raise CliError(f"--config {args.vault_config}: cannot read it: {exc.strerror}") from None
        if args.mount:
            settings.vault.mount = args.mount
        return VaultClient.from_settings(settings)
    address, token = os.environ.get("VAULT_ADDR"), os.environ.get("VAULT_TOKEN")
    if not address or not token:
        raise CliError("no Vault given: pass --config blacksmith.conf, or set VAULT_ADDR and VAULT_TOKEN")
    return VaultClient(address, token=token, mount=args.mount or "secret", ca_cert=os.environ.get("VAULT_CACERT"))


def cmd_backups(args: argparse.Namespace) -> int:

    vault = local_vault(args)
    if args.backups_command == "list":
        bk.check_instance_id(args.instance)
        items = list_backups(vault, args.instance)
        emit(args, items, lambda rows: render.table(
            ["SHA256", "TIME", "AGE", "FORMAT"],
            [[r["sha256"], render.iso(r["timestamp"]), render.age(render.iso(r["timestamp"])), r["format"]]
             for r in rows]) if rows else f"instance {args.instance} has no backups")
        return 0
    emit(args, describe_backup(vault, args.instance, args.sha), render.backup_text)
    return 0


def cmd_restore(args: argparse.Namespace) -> int:

    vault = local_vault(args)
    if args.dry_run:
        diff = restore_diff(vault, args.instance, args.sha, args.path)
        emit(args, diff, render.restore_diff_text)
        return 0
    result = restore_with_proof(vault, args.instance, args.sha, args.path)
    emit(args, result, render.restore_text)
    return 0 if result["verified"] else 1


def cmd_config(args: argparse.Namespace) -> int:

    argv = [args.action, args.file] + (["--json"] if args.json and args.action == "parameters" else [])
    return config_main(argv)


def cmd_doctor(args: argparse.Namespace) -> int:
    """This machine's AWS side (credentials, the stack reached, the signature accepted), then the
    stack's own checks (``GET /b/health``: CF, BOSH, Vault, tables, state machine)."""
    client = stack(args)
    answer = client.request("GET", "/b/health", accept=(503,))  # 503: some check failed, the body says which
    if answer.status not in (200, 503) or not isinstance(answer.body, dict) or "checks" not in answer.body:
        raise CliError(f"GET /b/health: {answer.error}", 3)
    local = {"name": "stack reached (SigV4 accepted)", "ok": True, "detail": client.url, "fix": ""}
    report = {"ok": bool(answer.body.get("ok")), "checks": [local, *answer.body["checks"]]}
    emit(args, report, render.doctor_text)
    return 0 if report["ok"] else 1


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "status": cmd_status, "run": cmd_run, "runs": cmd_runs, "orphans": cmd_orphans, "plan": cmd_plan,
    "backups": cmd_backups, "restore": cmd_restore, "config": cmd_config, "doctor": cmd_doctor,
}


class _Quiet(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact_text(f"{PROG}: {record.levelname.lower()}: {record.getMessage()}")


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """The library's log lines (structured JSON on stdout, for Lambda) would mix with the output:
    while a command runs, only warnings and errors, one plain line each on stderr, masked like
    the logs; the logger is given back as it was (``main`` may be called in-process)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Quiet())
    std = logging.getLogger("reconciler")
    saved = (list(std.handlers), std.level, std.propagate)
    for old in saved[0]:
        std.removeHandler(old)
    std.addHandler(handler)
    std.setLevel(logging.WARNING)
    std.propagate = False
    try:
        yield
    finally:
        std.removeHandler(handler)
        for old in saved[0]:
            std.addHandler(old)
        std.setLevel(saved[1])
        std.propagate = saved[2]


def main(argv: Sequence[str] | None = None) -> int:
    with quiet_logs():
        return run_command(argv)


def run_command(argv: Sequence[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except CliError as exc:
        print(f"{PROG}: {exc}" if not str(exc).startswith(PROG) else str(exc), file=sys.stderr)
        return exc.code
    except NotFound as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except (InvalidInput, ConfigError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except ReconcilerError as exc:  # Vault sealed, unreachable, refused: the other end, not the caller
        print(f"{PROG}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # --help
        return int(exc.code or 0) if isinstance(exc.code, int) else 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["main", "Unreachable"]
