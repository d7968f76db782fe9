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
