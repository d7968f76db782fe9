"""The scenario runner: a world, the real state machine, a report.

``python -m mockstack run --world FILE [--config blacksmith.conf] [--runs N] [--faults FILE]
[--force] --report OUT.json`` starts the mock stack (CF/UAA, BOSH, Vault) seeded with the
world, brings ``template.yaml`` up in the embedded engine, writes the configuration to the
SSM parameter the functions read (credentials in Secrets Manager, referenced, never inline),
runs the state machine N times and writes the report:

- ``runs``: per run its ARN (the last execution's), status, error, duration_s,
  state_transitions, history_events (the largest execution's), max_state_payload_bytes,
  requests (``{api: {method: n}}`` from the emulators' request logs, this run only) and the
  output; a run larger than one execution's budgets (continue-as-new) is followed to its last
  execution: ``executions``, ``execution_arns`` and ``history_events_per_execution`` say how;
- ``vault``: the final Vault contents (every logical path -> its latest data);
- ``orphans``: ``{"cf": [instance ids], "bosh": [deployment names], "vault": [instance ids]}``;
- ``status`` and ``metrics``: what ``GET /b/status`` and ``GET /b/metrics`` answer after the
  last run (through real Function URL events), when the API function is present.

The faults file is ``{api: {knob: value}}`` with the mock stack's knobs (``down``,
``error_rate``, ``latency_s``, ``rate_limit_rps`` ...; ``api`` one of cf, uaa, bosh,
bosh_uaa, vault), applied before the first run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from reconciler.domain.findings import FindingKind

ROOT_DIR = Path(__file__).resolve().parent.parent
SECRET_NAME = "blacksmith/reconciler/mockstack"
# Without --config: the spec's defaults, except the rate limiters' wait_timeout: on a loaded
# 2-core machine a call may wait longer than the spec's 3-5 s for its token, and a call that
# gives up is a failed instance (a flaky scenario), not what a scenario is meant to show.
LOCAL_CONFIG = """\
reconciler:
  apis:
    cf: {rate_limit: {wait_timeout: 60s}}
    bosh: {rate_limit: {wait_timeout: 60s}}
    vault: {rate_limit: {wait_timeout: 60s}}
"""
CONFIG_PARAMETER = "/blacksmith/reconciler/config"
# Retry intervals of the state machine sleep in real time: keep them short locally.
ENGINE_PARAMETERS = {"StateRetryIntervalSeconds": "1", "StateRetryMaxAttempts": "1", "PhaseTimeoutSeconds": "300"}


@contextlib.contextmanager
def logs_to(path: Path | None) -> Iterator[None]:
    """Send the process's stdout (the functions' structured logs and EMF lines) to a file, at
    the descriptor level so every thread's writes land there, keeping the terminal for a
    summary. ``None``: leave stdout alone."""
    if path is None:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    with path.open("ab") as log:
        os.dup2(log.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)


class ScenarioError(Exception):
    """A user mistake in the runner's inputs (the message says what and what is accepted)."""


def build_config(endpoints: Mapping[str, Any], user_text: str | None = None) -> tuple[str, dict[str, str]]:
    """blacksmith.conf for the stack (the user's ``reconciler`` settings kept; endpoints from
    the stack) and the secret values to store in Secrets Manager."""
    from reconciler.config import load_settings
    from reconciler.config.yamlfile import load_yaml
    from reconciler.errors import ConfigError

    try:  # the reconciler's own reader: one-line errors with the line, safe tags only, aliases bounded
        user = load_yaml(user_text, "--config")[0] if user_text else {}
    except ConfigError as exc:
        raise ScenarioError(str(exc)) from None
    if not isinstance(user, dict):
        raise ScenarioError("--config: expected a mapping with a 'reconciler' section")
    vault = endpoints["vault"]
    ref = f"secretsmanager:{SECRET_NAME}#"
    secrets = {"vault_token": vault["token"]}
    foundations, directors = [], []
    user_cf = user.get("cf")
    for cf in endpoints.get("cf_foundations") or [endpoints["cf"]]:
        # every foundation's UAA has the same generated client (one secret for all)
        secrets["cf_client_secret"] = cf["client_secret"]
        foundation = {"name": cf["name"], "api_url": cf["api_url"], "client_id": cf["client_id"],
                      "client_secret": ref + "cf_client_secret"}
        if isinstance(user_cf, dict):
            foundation.update({k: v for k, v in user_cf.items() if k in ("broker_name", "broker_guid")})
        if cf.get("ca_cert"):
            foundation["ca_cert"] = cf["ca_cert"]
        foundations.append(foundation)
    for bosh in endpoints.get("bosh_directors") or [endpoints["bosh"]]:
        director: dict[str, Any] = {"name": bosh["name"], "url": bosh["url"], "auth": bosh["auth"]}
        if bosh.get("foundations") is not None:
            director["foundations"] = bosh["foundations"]
        if bosh.get("ca_cert"):
            director["ca_cert"] = bosh["ca_cert"]
        if bosh["auth"] == "uaa":
            director.update(client_id=bosh["client_id"], client_secret=ref + "bosh_client_secret")
            secrets["bosh_client_secret"] = bosh["client_secret"]
        else:
            director.update(username=bosh["username"], password=ref + "bosh_password")
            secrets["bosh_password"] = bosh["password"]
        directors.append(director)
    vault_cfg: dict[str, Any] = {"address": vault["address"], "token": ref + "vault_token", "mount": vault["mount"]}
    if vault.get("ca_cert"):
        vault_cfg["ca_cert"] = vault["ca_cert"]
    config = {k: v for k, v in user.items() if k not in ("cf", "bosh", "vault")}
    config.update(cf=foundations, bosh=directors, vault=vault_cfg)
    text = yaml.safe_dump(config, sort_keys=False)
    try:  # refuse a bad setting now, with its key, rather than as a failed run after the stack started
        load_settings({}, text, "--config (with the stack's endpoints)")
    except ConfigError as exc:
        raise ScenarioError(str(exc)) from None
    return text, secrets


def derived_parameters(user_text: str | None) -> dict[str, str]:
    """Template parameters the configuration decides (as ``python -m reconciler.config
    parameters`` prints them for ``sam deploy``): the schedule always; the run timeout and the
    state machine's retries only when the file sets their keys (locally the engine keeps its
    short retry intervals, which the interpreter sleeps in real time)."""
    import mockstack.aws  # noqa: F401  (puts shared/ on sys.path outside pytest, e.g. for `make demo`)
    from reconciler.config import load_settings
    from reconciler.config.models import TEMPLATE_PARAMETER_KEYS
    from reconciler.config.yamlfile import load_yaml
    from reconciler.errors import ConfigError

    try:
        data = load_yaml(user_text, "--config")[0] if user_text else {}
        # only the reconciler settings matter here; endpoints come from the stack (build_config
        # keeps a partial cf: {broker_name: ...}, which alone is not a valid endpoint)
        text = yaml.safe_dump({k: v for k, v in data.items() if k not in ("cf", "bosh", "vault")}) \
            if isinstance(data, dict) else user_text or ""
        settings = load_settings(env={}, file_text=text, file_name="--config")
    except ConfigError as exc:
        raise ScenarioError(f"--config: {exc}") from None
    rc = settings.reconciler
    out = {}
    for param, value in rc.template_parameters().items():
        *parents, leaf = TEMPLATE_PARAMETER_KEYS[param]
        model = rc
        for part in parents:
            model = getattr(model, part)
        if param.startswith("Schedule") or leaf in model.model_fields_set:
            out[param] = value
    return out


def load_faults(path: str | None) -> dict[str, dict[str, Any]]:
    if not path:
        return {}
    try:
        faults = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ScenarioError(f"--faults {path}: cannot read a JSON object: {exc}") from None
    if not isinstance(faults, dict) or not all(isinstance(v, dict) for v in faults.values()):
        raise ScenarioError('--faults: expected {"<api>": {"<knob>": value}}, e.g. {"bosh": {"down": true}}')
    return faults


def _diff(after: Mapping[str, Mapping[str, int]], before: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for api, methods in after.items():
        for method, n in methods.items():
            delta = n - before.get(api, {}).get(method, 0)
            if delta:
                out.setdefault(api, {})[method] = delta
    return out


def orphan_lists(state: Mapping[str, Any]) -> dict[str, list[str]]:
    """The store's orphan state as the report's id lists."""
    out: dict[str, list[str]] = {}
    for kind in FindingKind:
        entries = state.get(kind.value) or {}
        out[kind.value] = sorted(str((e or {}).get(kind.spec.key_field) or key) for key, e in entries.items())
    return out


class Scenario:
    """A running scenario: the mock stack, the engine, and helpers to run and report."""

    def __init__(self, world: Any, *, config_text: str | None = None, workdir: str | None = None,
                 engine_parameters: Mapping[str, str] | None = None, stack_options: Mapping[str, Any] | None = None,
                 mode: str = "inprocess", port: int = 4566, engine_options: Mapping[str, Any] | None = None) -> None:
        from mockstack.stack import MockStack

        self.stack = MockStack(world, workdir, **dict(stack_options or {}))
        self.config_text = LOCAL_CONFIG if config_text is None else config_text
        self.engine_parameters = {**ENGINE_PARAMETERS, **derived_parameters(self.config_text),
                                  **dict(engine_parameters or {})}
        self.mode, self.port = mode, port
        self.engine_options = dict(engine_options or {})  # e.g. endpoint= and stack_name= for mode "remote"
        self.engine: Any = None
        self.runs: list[dict[str, Any]] = []

    def start(self) -> Scenario:
        from mockstack.aws import AwsEngine

        self.stack.start()
        try:
            config, secrets = build_config(self.stack.endpoints(), self.config_text)
            self.engine = AwsEngine(parameters=self.engine_parameters, mode=self.mode, port=self.port,
                                    **self.engine_options).start()
            self._put_secret(json.dumps(secrets))
            self.put_config(config)
        except BaseException:
            self.stop()
            raise
        return self

    def _put_secret(self, value: str) -> None:
        sm = self.engine.client("secretsmanager")
        try:
            sm.create_secret(Name=SECRET_NAME, SecretString=value)
        except sm.exceptions.ResourceExistsException:  # a shared (remote) service from an earlier run
            sm.put_secret_value(SecretId=SECRET_NAME, SecretString=value)

    def put_config(self, text: str) -> None:
        self.engine.client("ssm").put_parameter(Name=CONFIG_PARAMETER, Value=text, Type="SecureString",
                                                Overwrite=True)

    def stop(self) -> None:
        if self.engine is not None:
            self.engine.stop()
            self.engine = None
        self.stack.stop()

    def __enter__(self) -> Scenario:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def set_faults(self, faults: Mapping[str, Mapping[str, Any]]) -> None:
        for api, knobs in faults.items():
            try:
                self.stack.set_faults(api, **knobs)
            except (KeyError, ValueError) as exc:
                raise ScenarioError(f"faults for {api!r}: {exc}") from None

    def run_once(self, *, force: bool = False, selection: Mapping[str, Any] | None = None,
                 timeout_s: float = 600.0, dry_run: bool = False) -> dict[str, Any]:
        """One execution of the real state machine, with its figures."""
        before = self.stack.request_counts()
        execution_input: dict[str, Any] = {"source": "runner", "forced": force}
        if dry_run:
            execution_input["dry_run"] = True
        if selection:
            execution_input["selection"] = dict(selection)
        result = self.engine.run(execution_input, timeout_s=timeout_s)  # the run's whole chain
        figures = self.engine.chain_figures(result)
        record = {"execution_arn": result.arn, "status": result.status, "error": result.error,
                  "cause": (result.cause or "")[:2000] or None, "duration_s": result.duration_s,
                  "state_transitions": figures["state_transitions"], "history_events": figures["history_events"],
                  "executions": figures["executions"], "execution_arns": result.chain,
                  "history_events_per_execution": figures["history_events_per_execution"],
                  "max_state_payload_bytes": figures["max_state_payload_bytes"],
                  "requests": _diff(self.stack.request_counts(), before), "output": result.output}
        self.runs.append(record)
        return record

    def vault_contents(self) -> dict[str, Any]:
        return self.stack.vault.snapshot()

    def orphans(self) -> dict[str, list[str]]:
        from reconciler.store import Store

        store = Store(self.engine.tables["CacheTable"], self.engine.tables["StateTable"],
                      client=self.engine.client("dynamodb"))
        return orphan_lists(store.get_orphans())

    def api(self, method: str, path: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        """One request to the API function, as its Function URL would pass it."""
        from mockstack.frontdoor import function_url_event, http_response

        headers = {"host": "localhost", "user-agent": "mockstack-runner"}
        if body:
            headers["content-type"] = "application/json"
        event = function_url_event(method, path, "", headers, body)
        response = self.engine.client("lambda").invoke(FunctionName=self.engine.function_name("ApiFunction"),
                                                       Payload=json.dumps(event).encode())
        payload = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            return 502, {}, json.dumps({"Message": "Internal Server Error"}).encode()
        return http_response(payload)

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {"runs": self.runs, "vault": self.vault_contents(), "orphans": self.orphans()}
        if "ApiFunction" in self.engine.functions:
            status, _, body = self.api("GET", "/b/status")
            out["status"] = json.loads(body) if status == 200 else {"http_status": status}
            status, _, body = self.api("GET", "/b/metrics")
            out["metrics"] = body.decode() if status == 200 else {"http_status": status}
        return out


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_scenario(world: Any, *, config_text: str | None = None, runs: int = 1, faults: Mapping[str, Any] | None = None,
                 force: bool = False, workdir: str | None = None, stack_options: Mapping[str, Any] | None = None,
                 engine_options: Mapping[str, Any] | None = None, mode: str = "inprocess") -> dict[str, Any]:
    port = _free_port() if mode == "server" else 4566
    with Scenario(world, config_text=config_text, workdir=workdir, stack_options=stack_options,
                  engine_options=engine_options, mode=mode, port=port) as scenario:
        scenario.set_faults(faults or {})
        for _ in range(runs):
            scenario.run_once(force=force)
        return scenario.report()


# -- command line (python -m mockstack run) -------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--world", required=True, help="world file (JSON)")
    parser.add_argument("--config", help="blacksmith.conf (YAML): reconciler settings (endpoints come from the stack)")
    parser.add_argument("--runs", type=int, default=1, help="executions to run one after another (default 1)")
    parser.add_argument("--faults", help='JSON file {"<api>": {"<knob>": value}} applied before the first run')
    parser.add_argument("--force", action="store_true", help="forced runs (clear the deployment cache)")
    parser.add_argument("--workdir", help="directory for the stack's TLS material (default: a temp dir)")
    parser.add_argument("--report", required=True, help="where to write the JSON report")
    parser.add_argument("--built", nargs="?", const=str(ROOT_DIR / ".aws-sam" / "build"), metavar="DIR",
                        help="run the built artifacts (default DIR .aws-sam/build, from make build) in python3.12 "
                             "workers instead of the source folders")


def command(args: argparse.Namespace) -> int:
    from mockstack.aws import EngineError
    from mockstack.world import WorldError

    if args.runs < 1:
        print("run: --runs must be >= 1", file=sys.stderr)
        return 2
    report_path = Path(args.report)
    if report_path.is_dir() or not report_path.parent.is_dir():
        # checked first: the report is written after every run, when a typo would lose them all
        print(f"run: --report {args.report}: accepted is a file path in an existing folder", file=sys.stderr)
        return 2
    try:
        config_text = Path(args.config).read_text() if args.config else None
        faults = load_faults(args.faults)
        started = time.monotonic()
        built: dict[str, Any] = {}
        if args.built:
            if not (Path(args.built) / "template.yaml").is_file():
                raise ScenarioError(f"--built {args.built}: no template.yaml there; run `make build` first")
            built = {"mode": "server", "engine_options": {"artifacts": args.built}}
        report = run_scenario(args.world, config_text=config_text, runs=args.runs, faults=faults, force=args.force,
                              workdir=args.workdir, **built)
    except (ScenarioError, WorldError, EngineError) as exc:
        print(f"run: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"run: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except UnicodeDecodeError:
        print(f"run: --config {args.config}: not UTF-8 text; accepted: a YAML file", file=sys.stderr)
        return 2
    report["wall_s"] = round(time.monotonic() - started, 3)
    Path(args.report).write_text(json.dumps(report, indent=2, sort_keys=True, default=str))
    for i, r in enumerate(report["runs"], 1):
        print(f"run {i}: {r['status']}{' (' + r['error'] + ')' if r['error'] else ''} in {r['duration_s']}s, "
              f"{r['state_transitions']} state transitions, {r['history_events']} history events"
              f"{' (most of ' + str(r['executions']) + ' executions)' if r.get('executions', 1) > 1 else ''}, "
              f"largest payload {r['max_state_payload_bytes']} bytes")
    print(f"report: {args.report}")
    return 0 if all(r["status"] == "SUCCEEDED" for r in report["runs"]) else 1


def main_run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mockstack run", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return command(parser.parse_args(argv))
