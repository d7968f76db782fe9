"""The project's shape: the layer package imports as Lambda sees it."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_layer_package_imports_like_lambda():
    import reconciler
    from reconciler import errors

    assert reconciler.__file__.startswith(str(ROOT / "shared"))
    assert issubclass(errors.VaultSealed, errors.Unavailable)
