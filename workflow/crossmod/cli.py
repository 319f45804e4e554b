"""Small helpers shared by the stage command-line entry points."""

from __future__ import annotations

import logging
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
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


def ensure_parent(path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def staged_folder(out: str | Path) -> Iterator[Path]:
    """Write a folder of outputs whole or not at all.

    Yields a hidden sibling ``.<name>.partial`` to write into; when the block ends
    normally the old ``out`` (if any) is replaced by it, so ``out`` is only ever
    missing, old or complete. When the block raises (a full disk, a bad value), the
    partial folder is removed and the error propagates: no half-written table can pass
    for a finished one.
    """
    out = Path(out)
    partial = out.with_name(f".{out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)


def write_error(err: OSError, out: str | Path) -> SystemExit:
    """The one-line message of a failed write: which file, why, and what was kept."""
    where = err.filename or out
    return SystemExit(f"{where}: {err.strerror or err}; nothing written to {out}")
