"""One Lambda execution environment: a python3.12 process that runs one built function.

Started by :mod:`mockstack.lambda_runtime` as ``python3.12 -I -S lambda_worker.py CODE_DIR OPT_DIR
RUNTIME_DIR HANDLER`` (isolated: no site-packages, no PYTHON* variables, no script folder), it
sets ``sys.path`` to what Lambda's python3.12 runtime gives: the function folder (/var/task),
``/opt/python/lib/python3.12/site-packages`` and ``/opt/python`` from the merged layers, the
runtime's own SDK (/var/runtime: boto3, botocore), then the standard library. Nothing else: a
dependency missing from the layers, a wrong handler path or a 3.12-only failure shows up here.

Protocol: one JSON request per line on stdin (``{"event", "request_id", "deadline_ms", "trace_id"}``),
one JSON answer per line on the original stdout (``{"payload"}`` or ``{"error": {errorMessage,
errorType, stackTrace}}``). The handler's own stdout goes to stderr, as its logs.
Standard library only: it must not need anything from the project.
"""

import importlib
import json
import os
import sys
import time
import traceback


class Context:
    """The Lambda context object (the attributes Powertools and handlers read)."""

    def __init__(self, request: dict) -> None:
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = request.get("arn", "")
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.aws_request_id = request["request_id"]
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline_ms = request["deadline_ms"]

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self._deadline_ms - time.time() * 1000))


def _error(exc: BaseException, error_type: str | None = None, message: str | None = None) -> dict:
    return {"errorMessage": message if message is not None else str(exc),
            "errorType": error_type or type(exc).__name__,
            "stackTrace": traceback.format_tb(exc.__traceback__)}


def main() -> None:
    code_dir, opt_dir, runtime_dir, handler_name = sys.argv[1:5]
    site = os.path.join(opt_dir, "python", "lib", "python3.12", "site-packages")
    layer_paths = [site] if os.path.isdir(site) else []
    stdlib = [p for p in sys.path if p.startswith(sys.base_prefix)]
    sys.path[:] = [code_dir, *layer_paths, os.path.join(opt_dir, "python"), runtime_dir, *stdlib]
    os.chdir(code_dir)  # Lambda's working directory is /var/task

    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # the handler's prints are logs, not answers
    sys.stdout = os.fdopen(1, "w", buffering=1)

    module_name, _, attr = handler_name.rpartition(".")
    handler = None
    init_error = None
    try:
        module = importlib.import_module(module_name)
        handler = getattr(module, attr, None)
        if not callable(handler):
            init_error = {"errorMessage": f"Handler '{attr}' missing on module '{module_name}'",
                          "errorType": "Runtime.HandlerNotFound", "stackTrace": []}
    except Exception as exc:  # what Lambda answers for a module that does not import
        init_error = _error(exc, "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}")

    for line in sys.stdin:
        request = json.loads(line)
        os.environ["_X_AMZN_TRACE_ID"] = request.get("trace_id", "")
        if init_error is not None:
            answer = {"error": init_error}
        else:
            try:
                result = handler(request["event"], Context(request))
                answer = {"payload": json.loads(json.dumps(result, default=str))}
            except Exception as exc:
                answer = {"error": _error(exc)}
        answers.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
