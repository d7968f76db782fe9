"""The locks: the tests run on constraints.txt, the layer is that same resolution, hashed.

Regenerate with `make lock` (tools/lock.py); these tests fail when a lock drifts from
pyproject.toml, from the installed test environment, or from each other.
"""

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer"}
LAMBDA = {"python_version": "3.12", "python_full_version": "3.12.0", "sys_platform": "linux",
          "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
          "platform_python_implementation": "CPython", "os_name": "posix"}
REGENERATE = "run `make lock` (tools/lock.py) and commit the result"


def _pins(path: Path) -> dict[str, str]:
    text = path.read_text().replace("\\\n", " ")
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            match = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)(\s+--hash=sha256:[0-9a-f]{64})*", line)
            assert match, f"{path.name}: not an exact, hashed-or-plain pin: {line!r}"
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def _hashes(path: Path) -> dict[str, list[str]]:
    out = {}
    for entry in path.read_text().replace("\\\n", " ").splitlines():
        entry = entry.split("#", 1)[0].strip()
        if entry:
            out[canonicalize_name(entry.split("==", 1)[0])] = re.findall(r"--hash=sha256:([0-9a-f]{64})", entry)
    return out


CONSTRAINTS = _pins(ROOT / "constraints.txt")
LAYER_FILE = ROOT / "layers/dependencies/requirements.txt"
LAYER = _pins(LAYER_FILE)
RUNTIME_FILE = ROOT / "layers/lambda-runtime.txt"


def _declared(extra: str | None = None) -> list[Requirement]:
    lines = PROJECT["dependencies"] if extra is None else PROJECT["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


@pytest.mark.parametrize("extra", [None, "dev"])
def test_every_declared_dependency_is_pinned_within_its_range(extra):
    for req in _declared(extra):
        name = canonicalize_name(req.name)
        assert name in CONSTRAINTS, f"{req} is not in constraints.txt: {REGENERATE}"
        assert req.specifier.contains(CONSTRAINTS[name], prereleases=True), \
            f"constraints.txt pins {name}=={CONSTRAINTS[name]}, outside pyproject's {req}: {REGENERATE}"


def test_the_tests_run_on_the_constraints():
    drift = {}
    for name, version in CONSTRAINTS.items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            drift[name] = f"locked {version}, installed {installed}"
    assert not drift, f"the test environment is not constraints.txt ({drift}): run `make venv`, or {REGENERATE}"


def test_layer_is_the_test_resolution_hashed():
    assert LAYER, "empty layer lock"
    for name, version in LAYER.items():
        assert CONSTRAINTS.get(name) == version, \
            f"layer pins {name}=={version}, the tests run {CONSTRAINTS.get(name)}: {REGENERATE}"
    unhashed = [name for name, hashes in _hashes(LAYER_FILE).items() if not hashes]
    assert not unhashed, f"layer entries without --hash: {unhashed}"


def test_layer_leaves_the_runtime_sdk_out_and_says_why():
    assert not RUNTIME_PROVIDED & set(LAYER), "boto3/botocore/s3transfer ship with the Lambda runtime"
    assert "python3.12 runtime ships them" in LAYER_FILE.read_text()


def test_layer_is_complete_for_lambda():
    """Every runtime dependency and everything it needs on python3.12/Linux, less the runtime SDK."""
    for req in _declared():
        if canonicalize_name(req.name) not in RUNTIME_PROVIDED:
            assert canonicalize_name(req.name) in LAYER, f"{req} is missing from the layer: {REGENERATE}"
    extras = {canonicalize_name(r.name): r.extras for r in _declared()}
    for name in LAYER:
        for text in importlib.metadata.requires(name) or []:
            req = Requirement(text)
            wanted = [""] + sorted(extras.get(name, ()))
            if req.marker and not any(req.marker.evaluate({**LAMBDA, "extra": e}) for e in wanted):
                continue
            needed = canonicalize_name(req.name)
            assert needed in LAYER or needed in RUNTIME_PROVIDED, \
                f"{name} needs {req} on Lambda, and the layer lacks it: {REGENERATE}"
            if needed in LAYER:
                assert req.specifier.contains(LAYER[needed], prereleases=True), f"{name} needs {req}"


def test_runtime_stand_in_is_the_oldest_sdk_we_accept():
    runtime = _pins(RUNTIME_FILE)
    boto3 = next(r for r in _declared() if r.name == "boto3")
    assert boto3.specifier.contains(runtime["boto3"]), f"lambda-runtime.txt boto3 {runtime['boto3']} vs {boto3}"
    floor = next(s.version for s in boto3.specifier if s.operator == ">=")
    assert runtime["boto3"].startswith(floor + "."), "the stand-in is the floor series of pyproject's boto3"
    assert all(_hashes(RUNTIME_FILE).values())


def test_make_build_without_python312_stops_with_one_line(tmp_path):
    import os
    import subprocess

    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYENV_ROOT": str(tmp_path / "pyenv")}
    result = subprocess.run([str(ROOT / "tools" / "find-python312")], capture_output=True, text=True, env=env,
                            timeout=60)
    if result.returncode == 0 and os.path.realpath(result.stdout.strip()).startswith("/usr"):
        pytest.skip("this machine has a system python3.12 in /usr/bin")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "no python3.12 found (on PATH or from pyenv)" in result.stderr
