"""``python -m mockstack COMMAND``: the offline stack's command line.

Each command is two functions, ``<name>_arguments(parser)`` and ``<name>_command(args) -> int``,
listed in :data:`COMMANDS`; adding one is adding a row. User mistakes (bad world file,
unreadable path) print one line on stderr and exit 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mockstack.world import WorldError, load_world


# -- serve ------------------------------------------------------------------------------
def serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--world", required=True, help="world file (JSON) to serve")
    parser.add_argument("--workdir", help="directory for the TLS material and endpoints.json (default: a temp dir)")
    parser.add_argument("--expires-in", type=int, default=43199, help="UAA token lifetime in seconds")
    parser.add_argument("--bosh-task-steps", type=int, default=2, help="polls before a BOSH task is done")
    parser.add_argument("--tls", action="store_true", help="serve CF, its UAA and Vault over TLS too")
    parser.add_argument("--aws-port", type=int, default=4566,
                        help="port of the embedded AWS endpoint on 127.0.0.1 (default 4566; 0 = a free port)")
    parser.add_argument("--no-aws", action="store_true",
                        help="emulators only: no embedded AWS side (state machine, functions, API front)")
    parser.add_argument("--config", help="blacksmith.conf (YAML): reconciler settings for the functions "
                                         "(endpoints come from the stack)")
    parser.add_argument("--schedule-every", type=float,
                        help="fire the enabled schedule every N seconds (default: its own rate, e.g. 1 hour)")


def _aws_port(requested: int) -> int:
    """The port for the AWS endpoint: ``requested`` if free, a free one for 0; OSError naming the fix."""
    import socket

    if not 0 <= requested <= 65535:
        raise ValueError(f"--aws-port {requested}: a port number 0..65535 is accepted (0 = a free port)")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", requested))
        except OSError:
            raise OSError(f"127.0.0.1:{requested} is in use (a LocalStack or another serve?); pass --aws-port N, "
                          "--aws-port 0 for a free port, or --no-aws") from None
        return int(probe.getsockname()[1])


class AwsSide:
    """The AWS half of ``serve``: the template in the embedded engine (moto server mode), the
    configuration for the stack, the schedule trigger and the API's Function URL front."""

    def __init__(self, scenario: Any, schedule_every: float | None = None, require_sigv4: bool = False) -> None:
        self.scenario = scenario
        self.schedule_every = schedule_every
        self.require_sigv4 = require_sigv4  # the front answers 403 to unsigned requests (AWS_IAM)
        self.trigger: Any = None
        self.front: Any = None

    def start(self) -> AwsSide:
        from mockstack.aws import ScheduleTrigger
        from mockstack.frontdoor import FunctionUrlFront

        self.scenario.start()
        engine = self.scenario.engine
        self.trigger = ScheduleTrigger(engine, every_s=self.schedule_every).start()
        if "ApiFunction" in engine.functions:
            self.front = FunctionUrlFront(self._invoke_api, require_sigv4=self.require_sigv4).start()
        # `blacksmith-reconciler --stack blacksmith --endpoint-url <aws endpoint>` finds the API here
        engine.register_stack({**{k: v for k, v in engine.outputs.items() if isinstance(v, str)},
                               **({"ApiUrl": self.front.url + "/"} if self.front else {})})
        return self

    def _invoke_api(self, event: dict[str, Any]) -> Any:
        engine = self.scenario.engine
        response = engine.client("lambda").invoke(FunctionName=engine.function_name("ApiFunction"),
                                                  Payload=json.dumps(event).encode())
        payload = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            raise RuntimeError(f"ApiFunction failed: {payload.get('errorType', 'Error')}")
        return payload

    def describe(self) -> dict[str, Any]:
        from mockstack.runner import CONFIG_PARAMETER, SECRET_NAME

        engine = self.scenario.engine
        return {"endpoint": engine.endpoint_url, "region": engine.region, "stack_name": engine.stack_name,
                "access_key_id": "test", "secret_access_key": "test",  # moto accepts any
                "state_machine_arn": engine.state_machine_arn(), "tables": dict(engine.tables),
                "functions": {lid: spec.name for lid, spec in engine.functions.items()},
                "schedules": {lid: s["name"] for lid, s in engine.schedules.items()},
                "config_parameter": CONFIG_PARAMETER, "secret_name": SECRET_NAME}

    def stop(self) -> None:
        if self.trigger is not None:
            self.trigger.stop()
        if self.front is not None:
            self.front.stop()
        self.scenario.stop()


def serve_command(args: argparse.Namespace) -> int:
    from mockstack.runner import Scenario, ScenarioError
    from mockstack.stack import MockStack

    if args.expires_in < 1 or args.bosh_task_steps < 0:
        print("serve: --expires-in must be >= 1 and --bosh-task-steps >= 0", file=sys.stderr)
        return 2
    if args.schedule_every is not None and not args.schedule_every > 0:
        print("serve: --schedule-every must be > 0 seconds", file=sys.stderr)
        return 2
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    aws: AwsSide | None = None
    stack_options = {"expires_in": args.expires_in, "bosh_task_steps": args.bosh_task_steps, "tls": args.tls}
    try:
        if args.no_aws:
            stack = MockStack(args.world, args.workdir, **stack_options)
        else:
            world = load_world(args.world)  # a bad world is named before anything starts
            config_text = Path(args.config).read_text() if args.config else None
            port = _aws_port(args.aws_port)
            aws = AwsSide(Scenario(world, config_text=config_text, workdir=args.workdir,
                                   stack_options=stack_options, mode="server", port=port),
                          schedule_every=args.schedule_every)
            stack = aws.scenario.stack
        with contextlib.ExitStack() as running:
            if aws is None:
                running.enter_context(stack)
            else:
                running.callback(aws.stop)
                aws.start()
            endpoints = stack.endpoints()
            if aws is not None:
                endpoints["aws"] = aws.describe()
                endpoints["api_url"] = aws.front.url if aws.front else None
            print(json.dumps(endpoints), flush=True)
            while not stop.wait(0.5):
                pass
    except WorldError as exc:
        print(f"serve: invalid world: {exc}", file=sys.stderr)
        return 2
    except ScenarioError as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"serve: {where}{getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
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


def invoke_arguments(parser: argparse.ArgumentParser) -> None:
    from mockstack import invoke

    invoke.add_arguments(parser)


def invoke_command(args: argparse.Namespace) -> int:
    from mockstack import invoke

    return invoke.command(args)


# name, help, add arguments, run
COMMANDS: list[tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = [
    ("serve", "start every emulator for a world, print one JSON line of endpoints, serve until interrupted",
     serve_arguments, serve_command),
    ("generate", "write a generated world and its expected outcome", generate_arguments, generate_command),
    ("validate", "check a world file and print what it holds", validate_arguments, validate_command),
    ("run", "run the real state machine on a world N times and write a JSON report", run_arguments, run_command),
    ("invoke", "run one function with an event file against the mock stack (sam local invoke, without Docker)",
     invoke_arguments, invoke_command),
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
