"""Deployment packages for a real Lambda service (mockstack.package): layout and reproducibility."""

import io
import zipfile
from pathlib import Path

import pytest

from mockstack import package

ROOT = Path(__file__).resolve().parents[2]


def _names(data: bytes) -> list[str]:
    return zipfile.ZipFile(io.BytesIO(data)).namelist()


def test_reconciler_layer_is_laid_out_as_the_python_builder_does():
    data = package.reconciler_layer_zip(ROOT / "shared")
    names = _names(data)
    assert "python/reconciler/__init__.py" in names and "python/reconciler/phases/begin.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert package.reconciler_layer_zip(ROOT / "shared") == data  # reproducible: same tree, same bytes


def test_function_zip_holds_the_handler_at_its_root():
    assert _names(package.function_zip(ROOT / "functions" / "begin")) == ["app.py"]


def test_missing_inputs_are_named(tmp_path):
    with pytest.raises(package.PackageError, match="not a folder"):
        package.function_zip(tmp_path / "nope")
    with pytest.raises(package.PackageError, match="requirements file not found"):
        package.dependencies_layer_zip(tmp_path / "requirements.txt", cache_dir=tmp_path)


def test_dependency_layer_comes_from_the_cache_when_built(tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("PyYAML>=6\n")
    import hashlib

    key = hashlib.sha256(req.read_bytes() + b"3.12|manylinux2014_x86_64").hexdigest()[:16]
    (tmp_path / f"dependencies-{key}.zip").write_bytes(b"cached")
    assert package.dependencies_layer_zip(req, cache_dir=tmp_path) == b"cached"  # no pip run
