"""``python -m crossmod.data.synthetic``: write one synthetic dataset in the release format."""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from crossmod.cli import setup_logging
from crossmod.data.synthetic import GeneratorSettings, generate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, help="dataset folder to (re)create")
    parser.add_argument("--settings", required=True, help="generator settings (JSON)")
    args = parser.parse_args(argv)
    log = setup_logging()
    settings = GeneratorSettings.from_json(args.settings)
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    start = time.perf_counter()
    csv_path = generate(settings, out)
    log.info("wrote %s in %.1f s with %s", csv_path, time.perf_counter() - start, settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
