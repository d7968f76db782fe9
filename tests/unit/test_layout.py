"""The project's shape: the layer mirrors pyproject's runtime dependencies."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _requirement_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def test_dependency_layer_mirrors_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert _requirement_lines(ROOT / "layers/dependencies/requirements.txt") == project["dependencies"]


def test_layer_package_imports_like_lambda():
    import reconciler
    from reconciler import errors

    assert reconciler.__file__.startswith(str(ROOT / "shared"))
    assert issubclass(errors.VaultSealed, errors.Unavailable)
