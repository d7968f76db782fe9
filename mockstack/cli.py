"""``python -m mockstack COMMAND``: the offline stack's command line.

Each command is two functions, ``<name>_arguments(parser)`` and ``<name>_command(args) -> int``,
listed in :data:`COMMANDS`; adding one is adding a row. User mistakes (bad world file,
unreadable path) print one line on stderr and exit 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from mockstack.world import WorldError, load_world


# -- serve ------------------------------------------------------------------------------
def serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--world", required=True, help="world file (JSON) to serve")
    parser.add_argument("--workdir", help="directory for the TLS material and endpoints.json (default: a temp dir)")
    parser.add_argument("--expires-in", type=int, default=43199, help="UAA token lifetime in seconds")
    parser.add_argument("--bosh-task-steps", type=int, default=2, help="polls before a BOSH task is done")
    parser.add_argument("--tls", action="store_true", help="serve CF, its UAA and Vault over TLS too")


def serve_command(args: argparse.Namespace) -> int:
    from mockstack.stack import MockStack

    if args.expires_in < 1 or args.bosh_task_steps < 0:
        print("serve: --expires-in must be >= 1 and --bosh-task-steps >= 0", file=sys.stderr)
        return 2
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        stack = MockStack(args.world, args.workdir, expires_in=args.expires_in,
                          bosh_task_steps=args.bosh_task_steps, tls=args.tls)
        with stack:
            print(json.dumps(stack.endpoints()), flush=True)
            while not stop.wait(0.5):
                pass
    except WorldError as exc:
        print(f"serve: invalid world: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return 2
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


# -- validate ---------------------------------------------------------------------------
def validate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--world", required=True, help="world file (JSON) to check")


def validate_command(args: argparse.Namespace) -> int:
    try:
        world = load_world(args.world)
    except WorldError as exc:
        print(f"validate: invalid world: {exc}", file=sys.stderr)
        return 2
    cf = world["cf"]
    summary = {"world": args.world, "valid": True,
               "cf": {key: len(cf[key]) for key in ("service_brokers", "service_offerings", "service_plans",
                                                    "service_instances", "service_credential_bindings",
                                                    "organizations", "spaces", "apps")},
               "bosh_deployments": len(world["bosh"]["deployments"]), "vault_paths": len(world["vault"])}
    print(json.dumps(summary))
    return 0


# -- generate (mockstack.generator) ----------------------------------------------------
def generate_arguments(parser: argparse.ArgumentParser) -> None:
    from mockstack import generator

    generator.add_generate_arguments(parser)


def generate_command(args: argparse.Namespace) -> int:
    from mockstack import generator

    return generator.run_generate(args)


# -- run ------------------------------------------------------------------------------------
def run_arguments(parser: argparse.ArgumentParser) -> None:
    from mockstack import runner

    runner.add_arguments(parser)


def run_command(args: argparse.Namespace) -> int:
    from mockstack import runner

    return runner.command(args)


# name, help, add arguments, run
COMMANDS: list[tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = [
    ("serve", "start every emulator for a world, print one JSON line of endpoints, serve until interrupted",
     serve_arguments, serve_command),
    ("generate", "write a generated world and its expected outcome", generate_arguments, generate_command),
    ("validate", "check a world file and print what it holds", validate_arguments, validate_command),
    ("run", "run the real state machine on a world N times and write a JSON report", run_arguments, run_command),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mockstack",
                                     description="Offline Cloud Foundry, BOSH and Vault emulators")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text, add_arguments, run in COMMANDS:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        add_arguments(sub)
        sub.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args: Any = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:  # Ctrl-C: the commands' context managers have stopped what they started
        print(f"{args.command}: interrupted", file=sys.stderr)
        return 130
