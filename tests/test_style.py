"""The code stays ruff-clean and the Snakemake files snakefmt-formatted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO

BIN = Path(sys.executable).parent


def test_ruff_is_clean():
    for args in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [str(BIN / "ruff"), *args, "workflow", "tests", "scripts"],
            capture_output=True, text=True, cwd=REPO,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr


def test_snakefmt_is_clean():
    result = subprocess.run(
        [str(BIN / "snakefmt"), "--check", "Snakefile", "rules"],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
