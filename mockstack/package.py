"""Deployment packages for a real Lambda service (a LocalStack): what ``sam build`` makes.

The embedded engine runs handlers in-process and needs none of this; the remote mode of
:class:`mockstack.aws.AwsEngine` uploads these zips instead:

- a function's code: the files of its ``CodeUri`` folder (``app.py``);
- the reconciler layer: ``shared/`` under ``python/`` (``/opt/python/reconciler`` on Lambda);
- the dependency layer: ``layers/dependencies/requirements.txt`` installed with pip for the
  Lambda platform (manylinux x86_64, CPython 3.12, binary wheels only) under ``python/``,
  cached per requirements file so a second deployment does not reinstall.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

SKIP_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache"}
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "blacksmith-reconciler" / "layers"


class PackageError(RuntimeError):
    """A package cannot be built (names the folder or requirement and what failed)."""


def zip_tree(folder: str | os.PathLike[str], prefix: str = "") -> bytes:
    """The files under ``folder`` (no caches, no compiled files) in a zip, under ``prefix``."""
    root = Path(folder)
    if not root.is_dir():
        raise PackageError(f"{root}: not a folder")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if path.is_dir() or SKIP_DIRS & set(rel.parts) or path.suffix in (".pyc", ".pyo"):
                continue
            info = zipfile.ZipInfo(str(Path(prefix) / rel), date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16  # reproducible: no local mode bits or times
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def function_zip(code_dir: str | os.PathLike[str]) -> bytes:
    return zip_tree(code_dir)


def reconciler_layer_zip(shared_dir: str | os.PathLike[str]) -> bytes:
    """``shared/`` as the python builder lays out a layer: ``python/reconciler/...``."""
    return zip_tree(shared_dir, "python")


def dependencies_layer_zip(requirements: str | os.PathLike[str], *, cache_dir: str | os.PathLike[str] | None = None,
                           python_version: str = "3.12", platform: str = "manylinux2014_x86_64") -> bytes:
    """``pip install -r requirements`` for the Lambda platform, zipped under ``python/``."""
    req = Path(requirements)
    if not req.is_file():
        raise PackageError(f"{req}: requirements file not found")
    key = hashlib.sha256(req.read_bytes() + f"{python_version}|{platform}".encode()).hexdigest()[:16]
    cache = Path(cache_dir) if cache_dir else DEFAULT_CACHE
    cached = cache / f"dependencies-{key}.zip"
    if cached.is_file():
        return cached.read_bytes()
    with tempfile.TemporaryDirectory(prefix="blacksmith-layer-") as tmp:
        target = Path(tmp) / "python"
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                   "--target", str(target), "--requirement", str(req), "--platform", platform,
                   "--implementation", "cp", "--python-version", python_version, "--only-binary=:all:"]
        if "--hash=" in req.read_text():  # a lock file is complete: install exactly it, as sam build does
            command += ["--no-deps", "--require-hashes"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)  # noqa: S603
        if result.returncode != 0:
            tail = "\n".join(result.stderr.strip().splitlines()[-5:])
            raise PackageError(f"pip could not install {req} for python{python_version}/{platform}: {tail}")
        data = zip_tree(tmp)
    cache.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".zip.part")
    partial.write_bytes(data)
    shutil.move(partial, cached)  # atomic: a concurrent build never reads half a zip
    return data
