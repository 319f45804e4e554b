"""``python -m crossmod.tracking.experiments``: create the MLflow experiments, once, up front.

One experiment per dataset (named after it). Every training job depends on this job's
output, ``experiments.json`` (tracking URI and name -> id), and reads ids from it
rather than asking the tracking store, so that parallel jobs never race to create one.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from crossmod.cli import ensure_parent, setup_logging
from crossmod.tracking.store import ensure_experiments, resolve_tracking_uri


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", nargs="+", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--artifact-root", default="results/mlartifacts")
    args = parser.parse_args(argv)
    log = setup_logging()
    uri = args.tracking_uri or resolve_tracking_uri()
    ids = ensure_experiments(args.datasets, uri, Path(args.artifact_root))
    content = {"tracking_uri": uri, "experiments": ids}
    ensure_parent(args.out).write_text(json.dumps(content, indent=2) + "\n")
    log.info("tracking %s: %s", uri, ids)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
