"""Built artifacts (``sam build`` output) run as Lambda runs them: python3.12 worker processes.

The embedded engine's artifact mode (``AwsEngine(artifacts=".aws-sam/build")``) gives each
function a :class:`WorkerPool`: like Lambda's execution environments, a worker is started on
the first invocation (cold start), kept warm for the next ones, and another is started when
invocations overlap (Map iterations). Each worker is ``python3.12 -I -S mockstack/lambda_worker.py``
whose ``sys.path`` is exactly the runtime's: the function folder, ``/opt/python`` (the
function's layers merged in order, as Lambda extracts them into /opt), the runtime's SDK
(boto3/botocore: :func:`runtime_sdk`, from ``layers/lambda-runtime.txt``), the standard library.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "lambda_worker.py"
RUNTIME_REQUIREMENTS = ROOT / "layers" / "lambda-runtime.txt"
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "blacksmith-reconciler"


class RuntimeUnavailable(RuntimeError):
    """No interpreter for the function's runtime, or its SDK cannot be installed (one line)."""


def find_python(version: str = "3.12") -> str | None:
    """A working ``python<version>``: on PATH first, then pyenv's versions; None when there is none."""
    candidates = [shutil.which(f"python{version}")]
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    candidates += [str(p) for p in sorted((root / "versions").glob(f"{version}*/bin/python{version}"), reverse=True)]
    for candidate in filter(None, candidates):
        try:  # a pyenv shim on PATH exists even when that version is not selected: run it to know
            result = subprocess.run([candidate, "-I", "-c", "import sys; print(sys.executable)"],  # noqa: S603
                                    capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if result.returncode == 0 and result.stdout.strip():
            check = subprocess.run([candidate, "-I", "-c", f"import sys; assert sys.version.startswith('{version}.')"],  # noqa: S603
                                   capture_output=True, timeout=30, check=False)
            if check.returncode == 0:
                return result.stdout.strip()
    return None


def runtime_sdk(requirements: Path = RUNTIME_REQUIREMENTS, cache: Path | None = None) -> Path:
    """The folder standing in for the runtime's SDK (what /var/runtime holds on Lambda), installed
    once per lock file from its hashed pins for CPython 3.12 manylinux."""
    if not requirements.is_file():
        raise RuntimeUnavailable(f"{requirements}: the runtime SDK lock is missing (make lock)")
    key = hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]
    target = (cache or DEFAULT_CACHE) / f"lambda-runtime-{key}"
    if (target / ".complete").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
               "--require-hashes", "--no-compile", "--only-binary=:all:", "--platform", "manylinux2014_x86_64",
               "--implementation", "cp", "--python-version", "3.12", "--target", str(partial),
               "--requirement", str(requirements)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)  # noqa: S603
    if result.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        tail = [line for line in result.stderr.strip().splitlines() if not line.startswith("WARNING")][-1:]
        raise RuntimeUnavailable(f"cannot install the Lambda runtime's SDK from {requirements.name}: "
                                 f"{tail[0] if tail else 'pip failed'}")
    (partial / ".complete").write_text("")
    try:
        partial.rename(target)
    except OSError:  # another process finished first: use its copy
        shutil.rmtree(partial, ignore_errors=True)
    return target


def merge_layers(layers: Sequence[Path], workdir: Path) -> Path:
    """``/opt`` for a function: every file of each layer linked in at its place, later layers over
    earlier ones (Lambda extracts them in order into /opt). Returns the folder that plays /opt."""
    key = hashlib.sha256("\0".join(str(p) for p in layers).encode()).hexdigest()[:12]
    opt = workdir / f"opt-{key}"
    if opt.is_dir():
        return opt
    workdir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=opt.name + ".", dir=workdir))
    for layer in layers:
        if not layer.is_dir():
            raise RuntimeUnavailable(f"{layer}: the built layer folder is missing (make build)")
        for folder, _dirs, files in os.walk(layer):
            rel = Path(folder).relative_to(layer)
            (staging / rel).mkdir(parents=True, exist_ok=True)
            for name in files:
                dest = staging / rel / name
                if dest.is_symlink() or dest.exists():
                    dest.unlink()
                dest.symlink_to(Path(folder) / name)
    try:
        staging.rename(opt)
    except OSError:  # another engine merged the same layers first
        shutil.rmtree(staging, ignore_errors=True)
    return opt


class _Worker:
    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.stdin: IO[str] = process.stdin  # type: ignore[assignment]
        self.stdout: IO[str] = process.stdout  # type: ignore[assignment]


class WorkerPool:
    """The execution environments of one function (see the module docstring)."""

    def __init__(self, *, python: str, code_dir: Path, opt_dir: Path, runtime_dir: Path, handler: str,
                 environment: Mapping[str, str], timeout_s: float, arn: str) -> None:
        self.python, self.code_dir, self.opt_dir, self.runtime_dir = python, code_dir, opt_dir, runtime_dir
        self.handler, self.timeout_s, self.arn = handler, timeout_s, arn
        self.environment = dict(environment)
        self._idle: list[_Worker] = []
        self._all: list[_Worker] = []
        self._lock = threading.Lock()
        self.cold_starts = 0

    def _start(self) -> _Worker:
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "en_US.UTF-8", "TZ": ":UTC",
               "LAMBDA_TASK_ROOT": str(self.code_dir), "LAMBDA_RUNTIME_DIR": str(self.runtime_dir),
               **self.environment}
        process = subprocess.Popen(  # noqa: S603 - our interpreter and worker, fixed arguments
            [self.python, "-I", "-S", "-X", "utf8", str(WORKER), str(self.code_dir), str(self.opt_dir),
             str(self.runtime_dir), self.handler],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, env=env, text=True, bufsize=1,
            cwd=self.code_dir)
        worker = _Worker(process)
        with self._lock:
            self._all.append(worker)
            self.cold_starts += 1
        return worker

    def invoke(self, event: Any) -> tuple[str, bool, str]:
        """Run one invocation: (payload JSON, errored, logs), as moto's ``_invoke_lambda`` returns."""
        with self._lock:
            worker = self._idle.pop() if self._idle else None
        if worker is None or worker.process.poll() is not None:
            worker = self._start()
        request = {"event": event, "request_id": str(uuid.uuid4()), "arn": self.arn,
                   "deadline_ms": int((time.time() + self.timeout_s) * 1000),
                   "trace_id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0"}
        answer_box: list[str] = []
        reader = threading.Thread(target=lambda: answer_box.append(worker.stdout.readline()), daemon=True)
        try:
            worker.stdin.write(json.dumps(request, default=str) + "\n")
            worker.stdin.flush()
        except (BrokenPipeError, OSError):
            return self._failure("Runtime.ExitError", "the execution environment exited before the invocation")
        reader.start()
        reader.join(self.timeout_s + 5)  # a little over the function timeout: the worker's own clock rules
        line = answer_box[0] if answer_box else ""
        if reader.is_alive():
            self._kill(worker)
            return self._failure("Sandbox.Timedout", f"Task timed out after {self.timeout_s:.2f} seconds")
        if not line:
            code = worker.process.wait(timeout=10)
            self._forget(worker)
            return self._failure("Runtime.ExitError", f"RequestId: {request['request_id']} Error: Runtime exited "
                                                      f"with error: exit status {code}")
        with self._lock:
            self._idle.append(worker)
        answer = json.loads(line)
        if "error" in answer:
            return json.dumps(answer["error"]), True, ""
        return json.dumps(answer["payload"]), False, ""

    @staticmethod
    def _failure(error_type: str, message: str) -> tuple[str, bool, str]:
        return json.dumps({"errorMessage": message, "errorType": error_type, "stackTrace": []}), True, ""

    def _forget(self, worker: _Worker) -> None:
        with self._lock:
            if worker in self._all:
                self._all.remove(worker)

    def _kill(self, worker: _Worker) -> None:
        worker.process.kill()
        worker.process.wait(timeout=10)
        self._forget(worker)

    def close(self) -> None:
        with self._lock:
            workers, self._all, self._idle = list(self._all), [], []
        for worker in workers:
            if worker.process.poll() is None:
                worker.stdin.close()
                try:
                    worker.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    worker.process.kill()
                    worker.process.wait(timeout=5)
