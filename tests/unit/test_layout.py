"""The project's shape: the layer package imports as Lambda sees it."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_layer_package_imports_like_lambda():
    import reconciler
    from reconciler import errors

    assert reconciler.__file__.startswith(str(ROOT / "shared"))
    assert issubclass(errors.VaultSealed, errors.Unavailable)


def test_test_files_have_unique_basenames():
    # tests/ has no __init__.py: pytest imports test files by basename, and two files with the
    # same name in unit/ and e2e/ stop the whole suite's collection ("import file mismatch")
    names: dict[str, list[str]] = {}
    for path in (ROOT / "tests").rglob("test_*.py"):
        names.setdefault(path.name, []).append(str(path.relative_to(ROOT)))
    assert {n: p for n, p in names.items() if len(p) > 1} == {}
