"""Small helpers shared by the stage command-line entry points."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import fields
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


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


def dataclass_from_dict(cls: type[T], values: dict, what: str) -> T:
    """Build settings from a config mapping; a misspelt key is an error, not a default."""
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {what} setting(s): {', '.join(unknown)}")
    return cls(**values)
