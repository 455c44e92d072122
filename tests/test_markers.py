"""The `license` marker plugin, run in a child pytest: skipped with the license named, or run and reported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
INNER = """
import pytest

@pytest.mark.license("opt-175b-license")
def test_needs_opt():
    pass

def test_plain():
    pass
"""


def run_inner(tmp_path: Path, accept: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_inner.py").write_text(INNER)
    env = {k: v for k, v in os.environ.items() if k != "LTR_PREDICTORS_ACCEPT_LICENSES"}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS_DIR), env.get("PYTHONPATH", "")])
    if accept is not None:
        env["LTR_PREDICTORS_ACCEPT_LICENSES"] = accept
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "license_marker",
            "-p",
            "no:cacheprovider",
            "-rs",
            "-q",
            "-W",
            "ignore::pytest.PytestUnknownMarkWarning",
            "--rootdir",
            str(tmp_path),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("accept", "outcome", "summary"),
    [
        (None, "1 passed, 1 skipped", "not accepted opt-175b-license: 1 test(s) skipped"),
        ("mit,opt-175b-license", "2 passed", "exercised opt-175b-license: 1 test(s) ran under this license"),
    ],
)
def test_license_marker_gates_on_the_environment(tmp_path, accept, outcome, summary):
    result = run_inner(tmp_path, accept)
    assert outcome in result.stdout, result.stdout + result.stderr
    assert summary in result.stdout
    if accept is None:
        assert "touches weights under opt-175b-license (OPT-175B License Agreement)" in result.stdout
