"""The embedded AWS engine: ``template.yaml`` running in moto, with our handlers in-process.

What it does (facts behind it: the offline-AWS notes in the reference material):

1. translates the SAM template with ``aws-sam-translator`` in-process (local ``CodeUri`` /
   ``ContentUri`` / ``DefinitionUri`` swapped for ``s3://`` placeholders first);
2. creates the resources in moto with plain boto3 calls (CloudFormation ``create_stack`` in
   moto skips Function URLs, schedules and table TTL): DynamoDB tables with TTL, IAM roles,
   Lambda functions, Function URLs, the state machine (the ``DefinitionUri`` file with its
   ``DefinitionSubstitutions`` applied), Scheduler schedules and Events rules;
3. replaces ``moto.awslambda.models.LambdaFunction._invoke_lambda`` (the one place moto would
   start Docker) with an in-process call of the function's ``Handler`` loaded by path from its
   ``CodeUri`` folder, so direct invokes, Step Functions tasks and Map iterations run our code.

Per-function environment: each invocation runs inside ``reconciler.env.overlay(...)`` with the
function's own ``Environment`` variables (a ContextVar: Map iterations run in threads, and
nothing mutates ``os.environ`` per call). Code reads settings through ``reconciler.env``.
Values every function shares and that libraries read from ``os.environ`` (region, endpoint
in server mode) are set in the process environment once.

Two modes: ``inprocess`` (``mock_aws``: boto3 calls are intercepted, fastest, for tests) and
``server`` (``ThreadedMotoServer`` on 127.0.0.1, default port 4566, the LocalStack-compatible
endpoint that ``localstack-client`` sessions reach).
"""

from __future__ import annotations

import copy
import importlib.util
import io
import json
import os
import re
import sys
import threading
import time
import traceback
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
_SHARED = ROOT / "shared"
if str(_SHARED) not in sys.path:  # the layer package, as /opt/python is on Lambda
    sys.path.insert(0, str(_SHARED))

from reconciler import env as reconciler_env  # noqa: E402

DEFAULT_REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account
_NO_VALUE = object()


class EngineError(RuntimeError):
    """The template or a resource cannot be brought up in the embedded engine (names what and why)."""


# --------------------------------------------------------------------------------------------
# Template translation
# --------------------------------------------------------------------------------------------


class _NoManagedPolicies:
    """Managed-policy loader for the translator: offline, no IAM lookup."""

    def load(self) -> dict[str, str]:
        return {}


def load_sam_template(path: Path) -> dict[str, Any]:
    from samtranslator.yaml_helper import yaml_parse

    try:
        return yaml_parse(path.read_text())
    except Exception as exc:  # yaml errors carry line numbers
        raise EngineError(f"{path}: not a readable SAM template: {exc}") from exc


def translate(sam: dict[str, Any], parameters: Mapping[str, Any], region: str = DEFAULT_REGION,
              stack_name: str = "blacksmith") -> dict[str, Any]:
    """SAM -> CloudFormation, offline. Local artefact paths become ``s3://`` placeholders."""
    from samtranslator.translator.transform import transform

    sam = copy.deepcopy(sam)
    for logical_id, resource in sam.get("Resources", {}).items():
        props = resource.setdefault("Properties", {})
        kind = resource.get("Type")
        if kind == "AWS::Serverless::Function" and "InlineCode" not in props:
            props["CodeUri"] = f"s3://mockstack-artifacts/{logical_id}.zip"
        elif kind == "AWS::Serverless::LayerVersion":
            props["ContentUri"] = f"s3://mockstack-artifacts/{logical_id}.zip"
        elif kind == "AWS::Serverless::StateMachine" and "DefinitionUri" in props:
            props["DefinitionUri"] = f"s3://mockstack-artifacts/{logical_id}.asl.json"
    globals_fn = sam.get("Globals", {}).get("Function", {})
    if "CodeUri" in globals_fn:
        globals_fn["CodeUri"] = "s3://mockstack-artifacts/global.zip"
    previous = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = previous or region  # the translator reads the region from boto
    try:
        values = {"AWS::StackName": stack_name, "AWS::Region": region, "AWS::AccountId": ACCOUNT_ID,
                  **{k: v for k, v in parameters.items()}}
        return transform(sam, values, _NoManagedPolicies())
    except Exception as exc:
        raise EngineError(f"aws-sam-translator rejected the template: {exc}") from exc
    finally:
        if previous is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)


# --------------------------------------------------------------------------------------------
# Intrinsic functions
# --------------------------------------------------------------------------------------------


class _Resolver:
    """Resolves the intrinsics a translated template uses, against known physical ids."""

    def __init__(self, template: dict[str, Any], parameters: dict[str, Any], region: str, stack_name: str):
        self.template = template
        self.region = region
        self.stack_name = stack_name
        self.params = parameters
        self.refs: dict[str, Any] = {}
        self.attrs: dict[tuple[str, str], Any] = {}
        self._conditions: dict[str, bool] = {}

    def pseudo(self, name: str) -> Any:
        return {"AWS::Region": self.region, "AWS::AccountId": ACCOUNT_ID, "AWS::StackName": self.stack_name,
                "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com", "AWS::NoValue": _NO_VALUE,
                "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{ACCOUNT_ID}:stack/{self.stack_name}/0"}[name]

    def ref(self, name: str) -> Any:
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.params:
            return self.params[name]
        if name in self.refs:
            return self.refs[name]
        raise EngineError(f"Ref to unknown parameter or resource {name!r}")

    def get_att(self, name: str, attr: str) -> Any:
        try:
            return self.attrs[(name, attr)]
        except KeyError:
            raise EngineError(f"Fn::GetAtt {name}.{attr} is not known to the embedded engine") from None

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            spec = self.template.get("Conditions", {}).get(name)
            if spec is None:
                raise EngineError(f"unknown condition {name!r}")
            self._conditions[name] = bool(self.resolve(spec))
        return self._conditions[name]

    def sub(self, text: str, variables: Mapping[str, Any]) -> str:
        def one(match: re.Match[str]) -> str:
            key = match.group(1)
            if key.startswith("!"):
                return "${" + key[1:] + "}"
            if key in variables:
                value = variables[key]
            elif "." in key and not key.startswith("AWS::"):
                value = self.get_att(*key.split(".", 1))
            else:
                value = self.ref(key)
            return str(value)

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            out = [self.resolve(v) for v in value]
            return [v for v in out if v is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                name, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(name, attr)
            if key == "Fn::Sub":
                if isinstance(arg, list):
                    return self.sub(arg[0], {k: self.resolve(v) for k, v in arg[1].items()})
                return self.sub(arg, {})
            if key == "Fn::Join":
                sep, items = arg
                return sep.join(str(v) for v in self.resolve(items))
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::Split":
                sep, text = arg
                return str(self.resolve(text)).split(sep)
            if key == "Fn::If":
                name, yes, no = arg
                return self.resolve(yes if self.condition(name) else no)
            if key == "Fn::Equals":
                a, b = (self.resolve(v) for v in arg)
                return a == b
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(v) for v in arg)
            if key == "Fn::Or":
                return any(self.resolve(v) for v in arg)
            if key == "Condition":
                return self.condition(arg)
            if key.startswith("Fn::"):
                raise EngineError(f"intrinsic {key} is not supported by the embedded engine")
        out = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not _NO_VALUE}


def _parameter_values(template: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    declared = template.get("Parameters", {})
    unknown = set(overrides) - set(declared)
    if unknown:
        raise EngineError(f"unknown template parameter(s) {sorted(unknown)}; declared: {sorted(declared)}")
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        if name in overrides:
            raw = overrides[name]
        elif "Default" in spec:
            raw = spec["Default"]
        else:
            raise EngineError(f"template parameter {name!r} has no default: pass a value")
        if spec.get("Type") == "CommaDelimitedList":
            values[name] = raw if isinstance(raw, list) else str(raw).split(",")
        else:
            values[name] = str(raw).lower() if isinstance(raw, bool) else str(raw)
        allowed = spec.get("AllowedValues")
        if allowed and values[name] not in [str(a) for a in allowed]:
            raise EngineError(f"template parameter {name}={values[name]!r}: accepted values are {allowed}")
        _check_parameter(name, spec, values[name])
    return values


def _check_parameter(name: str, spec: Mapping[str, Any], value: Any) -> None:
    """What CloudFormation checks on a parameter value besides AllowedValues (one line, naming it)."""
    pattern = spec.get("AllowedPattern")
    items = value if isinstance(value, list) else [value]
    if pattern and any(re.fullmatch(pattern, str(item)) is None for item in items):
        accepted = spec.get("ConstraintDescription") or f"a match of {pattern}"
        raise EngineError(f"template parameter {name}={value!r}: accepted is {accepted}")
    if spec.get("Type") == "Number":
        try:
            number = float(value)
        except ValueError:
            raise EngineError(f"template parameter {name}={value!r}: a number is accepted") from None
        low, high = spec.get("MinValue"), spec.get("MaxValue")
        if (low is not None and number < float(low)) or (high is not None and number > float(high)):
            raise EngineError(f"template parameter {name}={value!r}: accepted is {low if low is not None else '-inf'}"
                              f"..{high if high is not None else 'inf'}")


# --------------------------------------------------------------------------------------------
# In-process Lambda
# --------------------------------------------------------------------------------------------


class LambdaContext:
    """The context object Lambda passes to a handler (the attributes Powertools reads)."""

    def __init__(self, function_name: str, arn: str, memory_mb: int, timeout_s: float) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = arn
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class FunctionSpec:
    """One template function as the engine runs it."""

    logical_id: str
    name: str
    arn: str
    code_dir: Path
    handler: str  # "app.handler"
    environment: dict[str, str]
    timeout_s: int = 3
    memory_mb: int = 128
    region: str = DEFAULT_REGION
    invocations: int = 0
    pool: Any = None  # artifact mode: a mockstack.lambda_runtime.WorkerPool runs the built function
    _module: ModuleType | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def load(self) -> Callable[[Any, Any], Any]:
        module_name, _, attr = self.handler.rpartition(".")
        with self._lock:
            if self._module is None:
                path = self.code_dir / (module_name.replace(".", "/") + ".py")
                if not path.is_file():
                    raise EngineError(f"{self.logical_id}: handler {self.handler!r} needs {path}, which does not exist")
                # a unique module name per function: every function has its own app.py
                unique = f"_mockstack_lambda_{self.logical_id}"
                spec = importlib.util.spec_from_file_location(unique, path)
                assert spec and spec.loader
                module = importlib.util.module_from_spec(spec)
                with reconciler_env.overlay(self.lambda_environment()):
                    spec.loader.exec_module(module)  # import-time code sees the function's env
                self._module = module
        handler = getattr(self._module, attr, None)
        if not callable(handler):
            raise EngineError(f"{self.logical_id}: {self.handler!r} is not a callable in {self.code_dir}")
        return handler

    def lambda_environment(self) -> dict[str, str]:
        return {
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_LAMBDA_FUNCTION_NAME": self.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
            "_HANDLER": self.handler,
            **self.environment,
        }

    def invoke(self, event: Any) -> tuple[str, bool, str]:
        """Run the handler: (payload JSON, errored, logs) as moto's ``_invoke_lambda`` returns."""
        self.invocations += 1
        if self.pool is not None:  # the built artifact, in a python3.12 worker process
            return self.pool.invoke(event)
        try:
            handler = self.load()
            context = LambdaContext(self.name, self.arn, self.memory_mb, self.timeout_s)
            with reconciler_env.overlay(self.lambda_environment()):
                result = handler(event, context)
            return json.dumps(result, default=str), False, ""
        except Exception as exc:  # the error shape Lambda returns; the class name is the ASL error name
            payload = {"errorMessage": str(exc), "errorType": type(exc).__name__,
                       "stackTrace": traceback.format_tb(exc.__traceback__)}
            return json.dumps(payload), True, ""


_FUNCTIONS: dict[tuple[str, str], FunctionSpec] = {}  # (region, function name) -> spec
_FUNCTIONS_LOCK = threading.Lock()
_PATCHED: dict[str, Any] = {}


def _install_lambda_hook() -> None:
    """Route moto's Lambda invocations of our functions to the in-process handlers (idempotent)."""
    from moto.awslambda.models import LambdaFunction

    with _FUNCTIONS_LOCK:
        if "original" in _PATCHED:
            return
        original = LambdaFunction._invoke_lambda

        def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
            spec = _FUNCTIONS.get((self.region, self.function_name))
            if spec is None:
                return original(self, event)
            return spec.invoke({} if event is None else event)

        _PATCHED["original"] = original
        LambdaFunction._invoke_lambda = _invoke_lambda


def _name_executions() -> None:
    """Unnamed executions get a UUID name, as on AWS (moto would name them all "None"); the
    Step Functions integration (the chain's ``Handover``) takes and returns AWS's field names."""
    from mockstack.moto_patches import name_executions_like_aws, sfn_task_parameters_like_aws

    name_executions_like_aws()
    sfn_task_parameters_like_aws()


def _forget_cached_clients() -> None:
    """Powertools Parameters keeps providers (boto3 clients bound to an endpoint) and values
    across calls: a new engine must not see an earlier engine's."""
    try:
        from aws_lambda_powertools.utilities import parameters

        parameters.clear_caches()
        parameters.base.DEFAULT_PROVIDERS.clear()
    except Exception:  # noqa: S110 - Powertools internals changed: nothing cached to forget
        pass


def _tiny_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "code runs in-process from the template's CodeUri (mockstack.aws)\n")
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------


@dataclass
class ExecutionResult:
    arn: str
    status: str
    output: Any
    error: str | None
    cause: str | None
    start: float
    stop: float
    chain: list[str] = field(default_factory=list)  # every execution of the run, the first to ``arn``

    @property
    def duration_s(self) -> float:
        return round(self.stop - self.start, 3)


def continued_as(output: Any) -> str | None:
    """The follow-up execution a run handed over to (continue-as-new: the state machine's
    ``HandedOver`` output ``{"continued": {"execution_arn": ...}}``), or None."""
    if isinstance(output, dict) and isinstance(output.get("continued"), dict):
        arn = output["continued"].get("execution_arn")
        return arn if isinstance(arn, str) and arn else None
    return None


class AwsEngine:
    """``template.yaml`` brought up in moto, handlers in-process.

    ``parameters``: template parameter overrides. ``function_env``: extra variables for every
    function (applied after the template's, per invocation). ``mode``: ``inprocess`` or ``server``.
    """

    def __init__(self, template: str | Path = ROOT / "template.yaml", *, parameters: Mapping[str, Any] | None = None,
                 function_env: Mapping[str, str] | None = None, region: str = DEFAULT_REGION,
                 stack_name: str = "blacksmith", mode: str = "inprocess", port: int = 4566,
                 host: str = "127.0.0.1", endpoint: str | None = None,
                 layer_cache: str | Path | None = None, artifacts: str | Path | None = None,
                 python: str | None = None) -> None:
        if mode not in ("inprocess", "server", "remote"):
            raise EngineError(f"mode {mode!r}: accepted are 'inprocess', 'server' and 'remote'")
        if (mode == "remote") != bool(endpoint):
            raise EngineError("mode 'remote' needs endpoint= (e.g. http://localhost:4566); other modes take none")
        # artifact mode: the `sam build` output (built template, function folders, layers), each
        # function run in python3.12 worker processes that reach the AWS side over HTTP
        self.artifacts = Path(artifacts).resolve() if artifacts is not None else None
        if self.artifacts is not None:
            if mode != "server":
                raise EngineError("artifacts= needs mode='server' (the function workers reach AWS over HTTP)")
            if not (self.artifacts / "template.yaml").is_file():
                raise EngineError(f"{self.artifacts}: no built template.yaml there (run make build)")
            template = self.artifacts / "template.yaml"
        self.python = python
        self._workdir: Path | None = None
        self._layer_dirs: dict[str, Path] = {}  # layer ARN -> built layer folder (artifact mode)
        self.template_path = Path(template).resolve()
        self.base_dir = self.template_path.parent
        self.parameter_overrides = dict(parameters or {})
        self.function_env = {k: str(v) for k, v in (function_env or {}).items()}
        self.region = region
        self.stack_name = stack_name
        self.mode = mode
        self.host = host
        self.port = port
        self.endpoint = endpoint.rstrip("/") if endpoint else None
        self.layer_cache = layer_cache
        self.created: list[tuple[str, str]] = []  # remote mode: (kind, id) to delete on stop, in creation order
        self.functions: dict[str, FunctionSpec] = {}  # logical id -> spec
        self.tables: dict[str, str] = {}  # logical id -> table name
        self.state_machines: dict[str, str] = {}  # logical id -> arn
        self.schedules: dict[str, dict[str, Any]] = {}  # logical id -> {name, expression, state, target, input}
        self.function_urls: dict[str, str] = {}  # function logical id -> url
        self.topics: dict[str, str] = {}  # logical id -> SNS topic arn
        self.outputs: dict[str, Any] = {}
        self.skipped: dict[str, str] = {}  # logical id -> resource type the engine does not create
        self.cfn: dict[str, Any] = {}
        self._mock: Any = None
        self._server: Any = None
        self._saved_env: dict[str, str | None] = {}
        self._saved_moto_config: dict[str, Any] | None = None
        self._started = False
        self.engine_id = uuid.uuid4().hex[:12]

    # ---- lifecycle ----------------------------------------------------------------------
    @property
    def endpoint_url(self) -> str | None:
        if self.mode == "remote":
            return self.endpoint
        return f"http://{self.host}:{self.port}" if self.mode == "server" else None

    def start(self) -> AwsEngine:
        if self._started:
            return self
        self._set_process_env({"AWS_DEFAULT_REGION": self.region, "AWS_REGION": self.region})
        if self.mode == "inprocess":
            from moto import mock_aws

            self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
            self._mock.start()
        elif self.mode == "server":
            self._start_server()
        if self.mode != "remote":  # a remote service runs the uploaded code itself
            _install_lambda_hook()
        _name_executions()
        _forget_cached_clients()
        self._started = True
        try:
            self._create_stack()
        except Exception:
            self.stop()
            raise
        return self

    def _start_server(self) -> None:
        import requests
        from moto.server import ThreadedMotoServer

        # the Step Functions interpreter calls Lambda at localhost:$MOTO_PORT; handlers' boto3
        # clients (same process, no mock) go to the server through AWS_ENDPOINT_URL
        self._set_process_env({
            "MOTO_PORT": str(self.port),
            "AWS_ENDPOINT_URL": self.endpoint_url or "",
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID") or "test",
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY") or "test",
        })
        from moto.core.config import default_user_config

        # moto's config endpoint replaces process-wide settings: keep ours to put back on stop,
        # or a later in-process mock would inherit execute mode
        self._saved_moto_config = copy.deepcopy(dict(default_user_config))
        self._server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        self._server.start()
        response = requests.post(f"{self.endpoint_url}/moto-api/config",
                                 json={"stepfunctions": {"execute_state_machine": True}}, timeout=10)
        response.raise_for_status()

    def stop(self) -> None:
        if self.mode == "remote":
            self._delete_remote()
        with _FUNCTIONS_LOCK:
            for spec in self.functions.values():
                _FUNCTIONS.pop((spec.region, spec.name), None)
        for spec in self.functions.values():
            if spec.pool is not None:
                spec.pool.close()
        if self._workdir is not None:
            import shutil

            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        if self._mock is not None:
            self._mock.stop()
            self._mock = None
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._saved_moto_config is not None:
            from moto.core.config import default_user_config

            default_user_config.update(self._saved_moto_config)  # type: ignore[typeddict-item]
            self._saved_moto_config = None
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()
        self._started = False

    def __enter__(self) -> AwsEngine:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _set_process_env(self, values: Mapping[str, str]) -> None:
        for key, value in values.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def client(self, service: str) -> Any:
        import boto3
        from botocore.config import Config

        kwargs: dict[str, Any] = {"region_name": self.region,
                                  "config": Config(retries={"max_attempts": 2}, read_timeout=120)}
        if self.endpoint_url:
            kwargs.update(endpoint_url=self.endpoint_url, aws_access_key_id="test", aws_secret_access_key="test")
        return boto3.client(service, **kwargs)

    # ---- stack creation -------------------------------------------------------------------
    def _create_stack(self) -> None:
        sam = load_sam_template(self.template_path)
        params = _parameter_values(sam, self.parameter_overrides)
        self.cfn = translate(sam, params, self.region, self.stack_name)
        resolver = _Resolver(self.cfn, params, self.region, self.stack_name)
        resources = self.cfn.get("Resources", {})
        active = {lid: r for lid, r in resources.items()
                  if "Condition" not in r or resolver.condition(r["Condition"])}
        self._assign_physical_ids(active, resolver)
        order = ["AWS::SNS::Topic", "AWS::DynamoDB::Table", "AWS::IAM::Role", "AWS::Lambda::LayerVersion",
                 "AWS::Lambda::Function", "AWS::Lambda::Url", "AWS::StepFunctions::StateMachine",
                 "AWS::Scheduler::Schedule", "AWS::Events::Rule"]
        for kind in order:
            for logical_id, resource in active.items():
                if resource["Type"] == kind:
                    props = resolver.resolve(resource.get("Properties", {}))
                    getattr(self, "_create_" + kind.split("::")[-1].lower())(logical_id, props, sam, resolver)
        for logical_id, resource in active.items():
            if resource["Type"] not in order:
                self.skipped[logical_id] = resource["Type"]
        for name, output in self.cfn.get("Outputs", {}).items():
            if "Condition" in output and not resolver.condition(output["Condition"]):
                continue
            self.outputs[name] = resolver.resolve(output["Value"])

    def _assign_physical_ids(self, resources: dict[str, Any], r: _Resolver) -> None:
        region, acct, stack = self.region, ACCOUNT_ID, self.stack_name
        for lid, res in resources.items():
            kind, props = res["Type"], res.get("Properties", {})

            def named(key: str, default: str, props: dict[str, Any] = props) -> str:
                return str(r.resolve(props[key])) if key in props else default

            if kind == "AWS::SNS::Topic":
                name = named("TopicName", f"{stack}-{lid}")
                r.refs[lid] = f"arn:aws:sns:{region}:{acct}:{name}"
                r.attrs[(lid, "TopicArn")] = r.refs[lid]
                r.attrs[(lid, "TopicName")] = name
            elif kind == "AWS::DynamoDB::Table":
                name = named("TableName", f"{stack}-{lid}")
                r.refs[lid] = name
                r.attrs[(lid, "Arn")] = f"arn:aws:dynamodb:{region}:{acct}:table/{name}"
                r.attrs[(lid, "StreamArn")] = f"arn:aws:dynamodb:{region}:{acct}:table/{name}/stream/0"
            elif kind == "AWS::IAM::Role":
                name = named("RoleName", f"{stack}-{lid}")[:64]
                r.refs[lid] = name
                r.attrs[(lid, "Arn")] = f"arn:aws:iam::{acct}:role/{name}"
            elif kind == "AWS::Lambda::Function":
                name = named("FunctionName", f"{stack}-{lid}")[:64]
                r.refs[lid] = name
                r.attrs[(lid, "Arn")] = f"arn:aws:lambda:{region}:{acct}:function:{name}"
            elif kind == "AWS::Lambda::LayerVersion":
                name = named("LayerName", f"{stack}-{lid}")
                r.refs[lid] = f"arn:aws:lambda:{region}:{acct}:layer:{name}:1"
            elif kind == "AWS::StepFunctions::StateMachine":
                name = named("StateMachineName", f"{stack}-{lid}")
                r.refs[lid] = f"arn:aws:states:{region}:{acct}:stateMachine:{name}"
                r.attrs[(lid, "Name")] = name
                r.attrs[(lid, "Arn")] = r.refs[lid]
            elif kind == "AWS::Scheduler::Schedule":
                name = named("Name", f"{stack}-{lid}")
                r.refs[lid] = name
                r.attrs[(lid, "Arn")] = f"arn:aws:scheduler:{region}:{acct}:schedule/default/{name}"
            elif kind == "AWS::Events::Rule":
                name = named("Name", f"{stack}-{lid}")
                r.refs[lid] = name
                r.attrs[(lid, "Arn")] = f"arn:aws:events:{region}:{acct}:rule/{name}"
            elif kind == "AWS::Lambda::Url":
                target = r.resolve(props.get("TargetFunctionArn"))
                url_id = uuid.uuid5(uuid.NAMESPACE_URL, str(target)).hex[:32]
                r.attrs[(lid, "FunctionUrl")] = f"https://{url_id}.lambda-url.{region}.on.aws/"
                r.attrs[(lid, "FunctionArn")] = target
                r.refs[lid] = target
            else:
                r.refs[lid] = f"{stack}-{lid}"

    def _create_topic(self, lid: str, props: dict[str, Any], sam: Any, r: _Resolver) -> None:
        arn = self.client("sns").create_topic(Name=props["TopicName"])["TopicArn"]
        self.topics[lid] = arn
        if self.mode == "remote":
            self.created.append(("topic", arn))

    def _create_table(self, lid: str, props: dict[str, Any], sam: Any, r: _Resolver) -> None:
        ddb = self.client("dynamodb")
        name = r.refs[lid]
        args: dict[str, Any] = {"TableName": name, "KeySchema": props["KeySchema"],
                                "AttributeDefinitions": props["AttributeDefinitions"],
                                "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST")}
        if args["BillingMode"] == "PROVISIONED":
            args["ProvisionedThroughput"] = {k: int(v) for k, v in props["ProvisionedThroughput"].items()}
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes", "StreamSpecification"):
            if key in props:
                args[key] = props[key]
        ddb.create_table(**args)
        if self.mode == "remote":
            self.created.append(("table", name))
            ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        ttl = props.get("TimeToLiveSpecification")
        if ttl and str(ttl.get("Enabled")).lower() == "true":
            ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={
                "AttributeName": ttl["AttributeName"], "Enabled": True})
        self.tables[lid] = name

    def _create_role(self, lid: str, props: dict[str, Any], sam: Any, r: _Resolver) -> None:
        iam = self.client("iam")
        name = r.refs[lid]
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(props["AssumeRolePolicyDocument"]))
        if self.mode == "remote":
            self.created.append(("role", name))
        for policy in props.get("Policies", []):
            document = {"Version": "2012-10-17", **policy["PolicyDocument"]}  # SAM policy templates omit it
            iam.put_role_policy(RoleName=name, PolicyName=policy["PolicyName"], PolicyDocument=json.dumps(document))

    def _create_layerversion(self, lid: str, props: dict[str, Any], sam: Any, r: _Resolver) -> None:
        if self.artifacts is not None:  # the built layer folder, merged into each function's /opt
            sam_lid = str(props.get("Content", {}).get("S3Key", "")).removesuffix(".zip")
            uri = sam["Resources"].get(sam_lid, {}).get("Properties", {}).get("ContentUri")
            if not isinstance(uri, str):
                raise EngineError(f"{lid}: the built template's layer has no local ContentUri, got {uri!r}")
            self._layer_dirs[r.refs[lid]] = (self.base_dir / uri).resolve()
            self.skipped[lid] = "AWS::Lambda::LayerVersion"
            return
        if self.mode != "remote":
            # layer code is on sys.path already (shared/ as /opt/python): nothing to publish
            self.skipped[lid] = "AWS::Lambda::LayerVersion"
            return
        from mockstack import package

        sam_lid = str(props.get("Content", {}).get("S3Key", "")).removesuffix(".zip")
        uri = sam["Resources"].get(sam_lid, {}).get("Properties", {}).get("ContentUri")
        if not isinstance(uri, str):
            raise EngineError(f"{lid}: a remote deployment needs a local ContentUri folder, got {uri!r}")
        folder = (self.base_dir / uri).resolve()
        if (folder / "requirements.txt").is_file():
            data = package.dependencies_layer_zip(folder / "requirements.txt", cache_dir=self.layer_cache)
        else:
            data = package.zip_tree(folder, "python")
        response = self.client("lambda").publish_layer_version(
            LayerName=f"{self.stack_name}-{props.get('LayerName', sam_lid)}", Content={"ZipFile": data},
            CompatibleRuntimes=props.get("CompatibleRuntimes", ["python3.12"]),
            Description=str(props.get("Description", ""))[:256])
        r.refs[lid] = response["LayerVersionArn"]
        self.created.append(("layer", response["LayerVersionArn"]))

    def _create_function(self, lid: str, props: dict[str, Any], sam: Any, r: _Resolver) -> None:
        sam_props = sam["Resources"].get(lid, {}).get("Properties", {})
        code_uri = sam_props.get("CodeUri") or sam.get("Globals", {}).get("Function", {}).get("CodeUri")
        if not isinstance(code_uri, str) or code_uri.startswith("s3://"):
            raise EngineError(f"{lid}: the embedded engine needs a local CodeUri folder, got {code_uri!r}")
        code_dir = (self.base_dir / code_uri).resolve()
        env = {k: str(v) for k, v in props.get("Environment", {}).get("Variables", {}).items()}
        env.update(self.function_env)
        # a new engine is a new deployment: cold starts, nothing cached from an earlier one
        env["MOCKSTACK_ENGINE_ID"] = self.engine_id
        name = r.refs[lid]
        spec = FunctionSpec(logical_id=lid, name=name, arn=r.attrs[(lid, "Arn")], code_dir=code_dir,
                            handler=props.get("Handler", "app.handler"), environment=env,
                            timeout_s=int(props.get("Timeout", 3)), memory_mb=int(props.get("MemorySize", 128)),
                            region=self.region)
        args: dict[str, Any] = {}
        if self.mode == "remote":  # the real code and layers; the service runs them
            from mockstack import package

            env.pop("MOCKSTACK_ENGINE_ID")
            code = package.function_zip(code_dir)
            args["Layers"] = [str(layer) for layer in props.get("Layers", [])]
        else:
            code = _tiny_zip()
        lam = self.client("lambda")
        lam.create_function(
            FunctionName=name, Runtime=props.get("Runtime", "python3.12"), Role=props["Role"],
            Handler=spec.handler, Code={"ZipFile": code}, Timeout=spec.timeout_s,
            MemorySize=spec.memory_mb, Description=str(props.get("Description", ""))[:256],
            Environment={"Variables": env}, **args)
        self.functions[lid] = spec
        if self.artifacts is not None:
            spec.pool = self._worker_pool(lid, spec, props)
        if self.mode == "remote":
            self.created.append(("function", name))
            lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 2, "MaxAttempts": 90})
            return
        with _FUNCTIONS_LOCK:
            _FUNCTIONS[(self.region, name)] = spec

    def _worker_pool(self, lid: str, spec: FunctionSpec, props: dict[str, Any]) -> Any:
        """The python3.12 execution environments of a built function (mockstack.lambda_runtime)."""
        import tempfile

        from mockstack import lambda_runtime

        runtime = str(props.get("Runtime", "python3.12"))
        if not runtime.startswith("python"):
            raise EngineError(f"{lid}: runtime {runtime!r}: artifact mode runs python runtimes only")
        if self.python is None:
            self.python = lambda_runtime.find_python(runtime.removeprefix("python"))
            if self.python is None:
                raise EngineError(f"no {runtime} interpreter found (on PATH or from pyenv): artifact mode runs "
                                  f"the built functions on the Lambda runtime's Python")
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="mockstack-opt-"))
        try:
            layers = [self._layer_dirs[str(arn)] for arn in props.get("Layers", [])]
        except KeyError as exc:
            raise EngineError(f"{lid}: layer {exc} is not one of the template's built layers") from None
        try:
            opt = lambda_runtime.merge_layers(layers, self._workdir)
            sdk = lambda_runtime.runtime_sdk()
        except lambda_runtime.RuntimeUnavailable as exc:
            raise EngineError(str(exc)) from None
        if not spec.code_dir.is_dir():
            raise EngineError(f"{lid}: built code folder {spec.code_dir} is missing (make build)")
        aws = {k: os.environ[k] for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
               if os.environ.get(k)}
        env = {**spec.lambda_environment(), **aws, "AWS_SESSION_TOKEN": "test",
               "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
               "AWS_LAMBDA_LOG_STREAM_NAME": time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex}
        return lambda_runtime.WorkerPool(python=self.python, code_dir=spec.code_dir, opt_dir=opt, runtime_dir=sdk,
                                         handler=spec.handler, environment=env, timeout_s=spec.timeout_s,
                                         arn=spec.arn)

    def _create_url(self, lid: str, props: dict[str, Any], sam: Any, r: _Resolver) -> None:
        target = props["TargetFunctionArn"]
        function_lid = next((f for f, s in self.functions.items() if target in (s.name, s.arn)), None)
        response = self.client("lambda").create_function_url_config(FunctionName=target, AuthType=props["AuthType"])
        r.attrs[(lid, "FunctionUrl")] = response["FunctionUrl"]
        if function_lid:
            self.function_urls[function_lid] = response["FunctionUrl"]

    def _create_statemachine(self, lid: str, props: dict[str, Any], sam: Any, r: _Resolver) -> None:
        if "DefinitionString" in props:
            text = props["DefinitionString"]
        elif "Definition" in props:
            text = json.dumps(props["Definition"])
        else:
            uri = sam["Resources"][lid]["Properties"].get("DefinitionUri")
            if not isinstance(uri, str):
                raise EngineError(f"{lid}: the embedded engine needs a local DefinitionUri file, got {uri!r}")
            text = (self.base_dir / uri).read_text()
        definition = substitute_definition(text, props.get("DefinitionSubstitutions", {}), where=lid)
        name = r.attrs[(lid, "Name")]
        response = self.client("stepfunctions").create_state_machine(
            name=name, definition=definition, roleArn=props["RoleArn"], type=props.get("StateMachineType", "STANDARD"))
        self.state_machines[lid] = response["stateMachineArn"]
        if self.mode == "remote":
            self.created.append(("state_machine", response["stateMachineArn"]))

    def _create_schedule(self, lid: str, props: dict[str, Any], sam: Any, r: _Resolver) -> None:
        target = props["Target"]
        args: dict[str, Any] = {"Name": r.refs[lid], "ScheduleExpression": props["ScheduleExpression"],
                                "FlexibleTimeWindow": props.get("FlexibleTimeWindow", {"Mode": "OFF"}),
                                "State": props.get("State", "ENABLED"),
                                "Target": {k: v for k, v in target.items() if k in ("Arn", "RoleArn", "Input")}}
        self.client("scheduler").create_schedule(**args)
        if self.mode == "remote":
            self.created.append(("schedule", r.refs[lid]))
        self.schedules[lid] = {"name": r.refs[lid], "expression": props["ScheduleExpression"],
                               "state": args["State"], "target": target["Arn"], "input": target.get("Input", "{}")}

    def _create_rule(self, lid: str, props: dict[str, Any], sam: Any, r: _Resolver) -> None:
        events = self.client("events")
        args = {k: props[k] for k in ("ScheduleExpression", "EventPattern", "State", "Description") if k in props}
        if isinstance(args.get("EventPattern"), dict):
            args["EventPattern"] = json.dumps(args["EventPattern"])
        events.put_rule(Name=r.refs[lid], **args)
        targets = [{"Id": t["Id"], "Arn": t["Arn"], **({"Input": t["Input"]} if "Input" in t else {})}
                   for t in props.get("Targets", [])]
        if targets:
            events.put_targets(Rule=r.refs[lid], Targets=targets)

    def _delete_remote(self) -> None:
        """Remove what a remote deployment created (best effort, newest first): a LocalStack
        shared by several test runs keeps no leftovers."""
        deleters = {
            "table": lambda name: self.client("dynamodb").delete_table(TableName=name),
            "function": lambda name: self.client("lambda").delete_function(FunctionName=name),
            "layer": lambda arn: self.client("lambda").delete_layer_version(
                LayerName=arn.rsplit(":", 1)[0], VersionNumber=int(arn.rsplit(":", 1)[1])),
            "state_machine": lambda arn: self.client("stepfunctions").delete_state_machine(stateMachineArn=arn),
            "schedule": lambda name: self.client("scheduler").delete_schedule(Name=name),
            "role": self._delete_role,
            "topic": lambda arn: self.client("sns").delete_topic(TopicArn=arn),
        }
        for kind, ident in reversed(self.created):
            try:
                deleters[kind](ident)
            except Exception:  # noqa: S112 - already gone, or the service lacks the API: nothing to keep
                continue
        self.created.clear()

    def _delete_role(self, name: str) -> None:
        iam = self.client("iam")
        for policy in iam.list_role_policies(RoleName=name).get("PolicyNames", []):
            iam.delete_role_policy(RoleName=name, PolicyName=policy)
        iam.delete_role(RoleName=name)

    # ---- using it ---------------------------------------------------------------------------
    def register_stack(self, outputs: Mapping[str, str]) -> str:
        """A CloudFormation stack named ``stack_name`` with these outputs, so a client finds the
        stack as it would on AWS (``describe_stacks`` -> ``ApiUrl``). The resources themselves
        are the engine's; the stack holds one placeholder resource."""
        import warnings

        template = {"Resources": {"Placeholder": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
                    "Outputs": {k: {"Value": str(v)} for k, v in outputs.items()}}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # moto does not model the placeholder's type; nothing needs it to
            return self.client("cloudformation").create_stack(StackName=self.stack_name,
                                                              TemplateBody=json.dumps(template))["StackId"]

    def state_machine_arn(self, logical_id: str | None = None) -> str:
        if logical_id is None:
            if len(self.state_machines) != 1:
                raise EngineError(f"name the state machine: {sorted(self.state_machines)}")
            return next(iter(self.state_machines.values()))
        return self.state_machines[logical_id]

    def function_name(self, logical_id: str) -> str:
        try:
            return self.functions[logical_id].name
        except KeyError:
            raise EngineError(f"no function {logical_id!r}; the template has {sorted(self.functions)}") from None

    def invoke(self, logical_id: str, event: Any) -> Any:
        """Invoke a function through the Lambda API (as ``sam local invoke`` would); raise on a function error."""
        response = self.client("lambda").invoke(FunctionName=self.function_name(logical_id),
                                                Payload=json.dumps(event).encode())
        payload = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            raise FunctionError(payload.get("errorType", "Error"), payload.get("errorMessage", ""), payload)
        return payload

    def start_execution(self, execution_input: Any = None, *, logical_id: str | None = None,
                        name: str | None = None) -> str:
        # always named, as AWS names unnamed executions with a UUID (moto's context object
        # would otherwise say ":None" in $$.Execution.Id)
        args: dict[str, Any] = {"stateMachineArn": self.state_machine_arn(logical_id),
                                "input": json.dumps(execution_input if execution_input is not None else {}),
                                "name": name or str(uuid.uuid4())}
        return self.client("stepfunctions").start_execution(**args)["executionArn"]

    def wait(self, execution_arn: str, timeout_s: float = 120.0, poll_s: float = 0.05, *,
             follow: bool = True) -> ExecutionResult:
        """Wait for the execution to end; ``follow``: a run that handed over (continue-as-new)
        is followed to its last execution, and the result is the run's: the last execution's
        status and output, the first one's start, ``chain`` every execution's ARN."""
        sfn = self.client("stepfunctions")
        deadline = time.monotonic() + timeout_s
        chain = [execution_arn]
        first_start: float | None = None
        while True:
            desc = sfn.describe_execution(executionArn=chain[-1])
            if desc["status"] == "RUNNING":
                if time.monotonic() > deadline:
                    raise TimeoutError(f"execution {chain[-1]} still RUNNING after {timeout_s:.0f}s")
                time.sleep(poll_s)
                continue
            output = json.loads(desc["output"]) if desc.get("output") else None
            if first_start is None:
                first_start = desc["startDate"].timestamp()
            nxt = continued_as(output) if follow and desc["status"] == "SUCCEEDED" else None
            if nxt is None:
                break
            if nxt in chain:
                raise EngineError(f"execution {chain[-1]} hands over to {nxt}, already in the chain")
            chain.append(nxt)
        stop = desc["stopDate"].timestamp() if desc.get("stopDate") else time.time()
        return ExecutionResult(chain[-1], desc["status"], output, desc.get("error"), desc.get("cause"), first_start,
                               stop, chain)

    def run(self, execution_input: Any = None, *, logical_id: str | None = None,
            timeout_s: float = 120.0) -> ExecutionResult:
        return self.wait(self.start_execution(execution_input, logical_id=logical_id), timeout_s)

    def history(self, execution_arn: str) -> Iterator[dict[str, Any]]:
        sfn = self.client("stepfunctions")
        token = None
        while True:
            args: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
            if token:
                args["nextToken"] = token
            page = sfn.get_execution_history(**args)
            yield from page["events"]
            token = page.get("nextToken")
            if not token:
                return

    def execution_figures(self, execution_arn: str) -> dict[str, Any]:
        """Cost figures: history events, state transitions (states entered), largest state payload."""
        events = list(self.history(execution_arn))
        transitions = sum(1 for e in events if e["type"].endswith("StateEntered"))
        largest = 0
        for event in events:
            for key, details in event.items():
                if key.endswith("EventDetails") and isinstance(details, dict):
                    for name in ("input", "output"):
                        value = details.get(name)
                        if isinstance(value, str):
                            largest = max(largest, len(value.encode()))
        by_type: dict[str, int] = {}
        for event in events:
            by_type[event["type"]] = by_type.get(event["type"], 0) + 1
        return {"history_events": len(events), "state_transitions": transitions,
                "max_state_payload_bytes": largest, "events_by_type": by_type}

    def chain_figures(self, result: ExecutionResult) -> dict[str, Any]:
        """A run's figures across its executions (continue-as-new): ``history_events`` the
        largest execution's (the 25,000 limit is per execution), ``history_events_per_execution``
        each, ``history_events_total``; transitions and ``events_by_type`` summed."""
        each = [self.execution_figures(arn) for arn in (result.chain or [result.arn])]
        by_type: dict[str, int] = {}
        for figures in each:
            for name, n in figures["events_by_type"].items():
                by_type[name] = by_type.get(name, 0) + n
        per = [f["history_events"] for f in each]
        return {"executions": len(each), "history_events": max(per), "history_events_per_execution": per,
                "history_events_total": sum(per), "state_transitions": sum(f["state_transitions"] for f in each),
                "max_state_payload_bytes": max(f["max_state_payload_bytes"] for f in each),
                "events_by_type": by_type}


class FunctionError(Exception):
    """A function invoked through :meth:`AwsEngine.invoke` answered with an error payload."""

    def __init__(self, error_type: str, message: str, payload: Any) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.payload = payload


def substitute_definition(text: str, substitutions: Mapping[str, Any], *, where: str = "definition") -> str:
    """Apply ``DefinitionSubstitutions`` as CloudFormation does (text, before parsing); check the result."""
    missing: set[str] = set()

    def one(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in substitutions:
            missing.add(key)
            return match.group(0)
        return str(substitutions[key])

    result = re.sub(r"\$\{([A-Za-z0-9_]+)\}", one, text)
    if missing:
        raise EngineError(f"{where}: no DefinitionSubstitutions for {sorted(missing)}")
    try:
        json.loads(result)
    except json.JSONDecodeError as exc:
        raise EngineError(f"{where}: not valid JSON after substitution: {exc}") from exc
    return result


# --------------------------------------------------------------------------------------------
# Schedule trigger (moto stores schedules but never fires them)
# --------------------------------------------------------------------------------------------

_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")


def rate_seconds(expression: str) -> float:
    """Seconds between runs of a ``rate(...)`` expression; ``cron``/``at`` are not fired locally."""
    match = _RATE.match(expression.strip())
    if not match:
        raise EngineError(f"schedule expression {expression!r}: the local trigger fires only "
                          "rate(N minutes|hours|days)")
    unit = {"minute": 60, "hour": 3600, "day": 86400}[match.group(2).rstrip("s")]
    return int(match.group(1)) * unit


class ScheduleTrigger:
    """Fires the engine's ENABLED schedules while serving: starts their target state machine with
    their input every ``every_s`` seconds (default: the schedule's own rate)."""

    def __init__(self, engine: AwsEngine, every_s: float | None = None,
                 on_start: Callable[[str], None] | None = None) -> None:
        self.engine = engine
        self.every_s = every_s
        self.on_start = on_start
        self.started: list[str] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> ScheduleTrigger:
        for lid, schedule in self.engine.schedules.items():
            interval = self.every_s or rate_seconds(schedule["expression"])
            thread = threading.Thread(target=self._loop, args=(lid, interval), daemon=True,
                                      name=f"schedule-{lid}")
            thread.start()
            self._threads.append(thread)
        return self

    def _loop(self, lid: str, interval: float) -> None:
        while not self._stop.wait(interval):
            self.fire(lid)

    def fire(self, lid: str) -> str | None:
        """Fire one schedule now (if it is ENABLED in the scheduler); returns the execution ARN."""
        schedule = self.engine.schedules[lid]
        current = self.engine.client("scheduler").get_schedule(Name=schedule["name"])
        if current.get("State", "ENABLED") != "ENABLED":
            return None
        target = current["Target"]
        arn = self.engine.client("stepfunctions").start_execution(
            stateMachineArn=target["Arn"], input=target.get("Input") or "{}",
            name=f"schedule-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}")["executionArn"]
        self.started.append(arn)
        if self.on_start:
            self.on_start(arn)
        return arn

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
