"""``python -m crossmod.data.validate``: read a release-format folder into a checked table.

Writes ``annotations.parquet`` (one row per annotation) and ``rejects.csv`` (the
rows dropped in lenient mode, with reasons; only a header in strict mode). A strict
read that finds problems exits with status 1 and lists every one of them.
"""

from __future__ import annotations

import argparse
import sys

from crossmod.cli import ensure_parent, setup_logging
from crossmod.data.release import DatasetError, read_release


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", required=True, help="dataset folder in the release format")
    parser.add_argument("--out", required=True, help="annotations.parquet to write")
    parser.add_argument("--rejects", required=True, help="rejects.csv to write")
    parser.add_argument("--lenient", action="store_true", help="drop bad rows instead of failing")
    args = parser.parse_args(argv)
    log = setup_logging()

    try:
        result = read_release(args.root, lenient=args.lenient)
    except DatasetError as err:
        log.error("%s", err)
        print(err, file=sys.stderr)
        return 1
    frame = result.annotations
    frame.to_parquet(ensure_parent(args.out), index=False)
    result.rejects_frame().to_csv(ensure_parent(args.rejects), index=False)
    if result.rejects:
        log.warning(
            "%s: dropped %d bad row(s) (lenient mode); reasons in %s",
            result.csv_path,
            len(result.rejects),
            args.rejects,
        )
        for problem in result.rejects:
            log.warning("  %s", problem)
    log.info(
        "%s: %d annotations, %d users, %d images, %d tasks",
        result.csv_path,
        len(frame),
        frame["user"].nunique(),
        frame["image"].nunique(),
        frame["task_id"].nunique(),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
