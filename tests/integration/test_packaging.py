"""The project is an installable package: both import roots and the console script."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_holds_reconciler_mockstack_and_the_console_script(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                             "--wheel-dir", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("blacksmith_reconciler-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "reconciler/__init__.py" in names and "reconciler/domain/__init__.py" in names
    assert "mockstack/__init__.py" in names and "mockstack/aws.py" in names
    assert not any(n.startswith(("tests/", "shared/", "functions/")) for n in names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "blacksmith-reconciler = reconciler.cli:main" in text


def test_documented_commands_work_without_pythonpath(tmp_path):
    """make venv installs the project (pip install -e .): no PYTHONPATH, from any folder."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    check = subprocess.run([sys.executable, "-m", "reconciler.config", "check",
                            str(ROOT / "config" / "blacksmith.conf.example")],
                           capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert check.returncode == 0, f"{check.stderr.strip()[-300:]} (is the project installed? make venv)"
    assert check.stdout.startswith("ok:")
    script = Path(sys.executable).parent / "blacksmith-reconciler"
    assert script.is_file(), "the console script is missing: make venv (pip install -e .)"
    usage = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert usage.returncode == 0 and "usage: blacksmith-reconciler" in usage.stdout
