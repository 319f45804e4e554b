"""Small helpers shared by the stage command-line entry points."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path


def setup_logging(verbose: bool = False) -> logging.Logger:
    """Log to stderr (rules redirect it into their ``log:`` file)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    return logging.getLogger("crossmod")


def parse_json(text: str) -> dict:
    """Settings arrive from Snakemake's ``params:`` as one JSON argument."""
    value = json.loads(text)
    if not isinstance(value, dict):
        raise SystemExit(f"expected a JSON object, got {text[:80]!r}")
    return value


def ensure_parent(path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
