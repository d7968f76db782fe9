"""The domain package does no I/O: importing it pulls in no network or AWS client."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Not the stdlib ``socket`` module itself: pydantic imports email.utils, which imports it.
# What matters is that no client that opens connections is loaded (the source check below
# also keeps ``socket`` out of our own code).
FORBIDDEN = [
    "requests",
    "boto3",
    "botocore",
    "hvac",
    "urllib3",
    "http.client",
    "ssl",
    "aiohttp",
    "httpx",
    "aws_lambda_powertools",
    "mockstack",
    "reconciler.store",
    "reconciler.vault",
    "reconciler.cf",
    "reconciler.bosh",
]


def test_domain_imports_nothing_that_does_io():
    code = (
        "import sys, json\n"
        "import reconciler.domain, reconciler.domain.index, reconciler.domain.orphans\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": f"{ROOT / 'shared'}", "PATH": ""},
        check=True,
    )
    loaded = set(json.loads(out.stdout))
    assert "reconciler.domain" in loaded
    bad = sorted(m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))
    assert bad == [], f"reconciler.domain imports I/O modules: {bad}"


def test_domain_source_has_no_io_calls():
    # Belt and braces: no file, socket, environment or clock access in the package source.
    for path in (ROOT / "shared/reconciler/domain").glob("*.py"):
        text = path.read_text()
        for needle in ("open(", "os.environ", "socket", "datetime.now", "time.time(", "requests.", "boto3"):
            assert needle not in text, f"{path.name} contains {needle!r}"
