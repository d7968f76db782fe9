"""`sam validate --lint` on the template (aws-sam-cli lives in .venv-sam: it pins boto3)."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAM = ROOT / ".venv-sam" / "bin" / "sam"


def test_sam_validate_lint():
    if not SAM.is_file():
        pytest.skip("aws-sam-cli is not installed in .venv-sam (make sam); cfn-lint still runs (test_template.py)")
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1"}
    result = subprocess.run([str(SAM), "validate", "--lint", "--template", str(ROOT / "template.yaml")],
                            capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "is a valid SAM Template" in result.stdout + result.stderr
