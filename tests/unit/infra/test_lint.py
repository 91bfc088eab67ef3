"""`sam validate --lint` and cfn-lint pass on template.yaml, and cfn-lint can fail.

Both run as `make validate` runs them: the venv's executables, telemetry off, the venv's
bin first on PATH (sam finds cfn-lint and the project's Python there).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # sam validate and cfn-lint: seconds each

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "template.yaml"
BIN = Path(sys.executable).parent
ENV = {
    **os.environ,
    "SAM_CLI_TELEMETRY": "0",
    "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
}


def run(tool: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / tool), *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_sam_validate_lint_passes() -> None:
    result = run("sam", "validate", "--lint", "--region", "us-east-1")
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_is_silent() -> None:
    result = run("cfn-lint", "template.yaml")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


# cfn-lint knows deprecated runtimes but accepts unknown strings ("python2.9" passes), so
# the broken copies use mistakes it is documented to catch.
@pytest.mark.parametrize(
    ("original", "broken", "reported"),
    [
        pytest.param(
            "    Runtime: python3.13\n",
            "    Runtime: python3.6\n",
            "python3.6",
            id="deprecated-runtime",
        ),
        pytest.param(
            "RateLimit: !Ref ThrottleRateLimit\n",
            "RateLimit: !Ref ThrottleRateLimitTypo\n",
            "ThrottleRateLimitTypo",
            id="ref-to-undefined-parameter",
        ),
    ],
)
def test_cfn_lint_fails_on_a_broken_copy(
    tmp_path: Path, original: str, broken: str, reported: str
) -> None:
    text = TEMPLATE.read_text()
    assert original in text, "the mutation no longer applies to template.yaml"
    (tmp_path / "template.yaml").write_text(text.replace(original, broken, 1))
    result = run("cfn-lint", "template.yaml", cwd=tmp_path)
    assert result.returncode != 0
    assert reported in result.stdout
