"""``python -m mockstack invoke FUNCTION -e events/<file>.json``: one function, one event, the mock stack.

What ``sam local invoke`` would do, without Docker: the mock stack (CF, BOSH, Vault emulators
for a world) and the template in the embedded engine, configured as a run would be; then one
invocation of FUNCTION (its logical id, ``BeginFunction``, or its folder, ``begin``) with the
event, through the Lambda API. The function's answer is printed as JSON (exit 0), or its error
payload (exit 1). ``--built [DIR]`` runs what ``make build`` produced (``.aws-sam/build``) in a
python3.12 worker, as Lambda would; the default runs the source folders in this process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("function", metavar="FUNCTION",
                        help="logical id in template.yaml (BeginFunction) or its folder under functions/ (begin)")
    parser.add_argument("-e", "--event", help="event file (JSON), e.g. events/begin.json; default {}")
    parser.add_argument("--world", help="world file (JSON) for the emulators; default: a generated 12-instance world")
    parser.add_argument("--config", help="blacksmith.conf (YAML): reconciler settings (endpoints come from the stack)")
    parser.add_argument("--built", nargs="?", const=str(ROOT / ".aws-sam" / "build"), metavar="DIR",
                        help="run the built artifact (default DIR .aws-sam/build, from make build) in python3.12")


def _logical_id(function: str, template: dict[str, Any]) -> str:
    functions = {lid: res.get("Properties", {}) for lid, res in template.get("Resources", {}).items()
                 if res.get("Type") == "AWS::Serverless::Function"}
    if function in functions:
        return function
    for lid, props in functions.items():
        if str(props.get("CodeUri", "")).rstrip("/").split("/")[-1] == function:
            return lid
    raise ValueError(f"no function {function!r}; accepted: {', '.join(sorted(functions))} "
                     "(or their folder under functions/)")


def _read_event(path: str | None) -> Any:
    if path is None:
        return {}
    try:
        return json.loads(Path(path).read_text())
    except OSError as exc:
        raise ValueError(f"--event {path}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"--event {path}: not a JSON document ({exc}); accepted: a JSON event file") from None


def command(args: argparse.Namespace) -> int:
    from mockstack.aws import EngineError, FunctionError, load_sam_template
    from mockstack.generator import generate
    from mockstack.runner import Scenario, ScenarioError, _free_port
    from mockstack.world import WorldError

    try:
        event = _read_event(args.event)
        built = Path(args.built) if args.built else None
        template_path = built / "template.yaml" if built else ROOT / "template.yaml"
        if built and not template_path.is_file():
            raise ValueError(f"--built {built}: no template.yaml there; run `make build` first")
        lid = _logical_id(args.function, load_sam_template(template_path))
        config_text = Path(args.config).read_text() if args.config else None
        world: Any = args.world if args.world else generate(12, seed=1)[0]
        # moto's server-mode state lives as long as the process: a stack name of this invocation's own
        options: dict[str, Any] = {"artifacts": built, "stack_name": f"invoke-{uuid.uuid4().hex[:8]}"} if built else {}
        scenario = Scenario(world, config_text=config_text, mode="server" if built else "inprocess",
                            port=_free_port() if built else 4566, engine_options=options)
        answer = sys.stdout
        # as sam local invoke: the function's logs on stderr, its answer alone on stdout
        with contextlib.redirect_stdout(sys.stderr), scenario:
            try:
                payload = scenario.engine.invoke(lid, event)
            except FunctionError as exc:
                print(json.dumps(exc.payload, indent=2, default=str), file=answer)
                print(f"invoke: {lid} answered an error: {exc}", file=sys.stderr)
                return 1
    except (ValueError, EngineError, ScenarioError, WorldError) as exc:
        print(f"invoke: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"invoke: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(json.dumps(payload, indent=2, default=str), file=answer)
    return 0
