"""``python -m crossmod.tracking.track``: log one split's trained networks to MLflow, one run each.

Training jobs do not import MLflow (its import alone costs about 3 s of CPU, more than
many networks take to train); each writes its params, tags, step series and final
metrics into its ``metrics.json``. This job logs them, with the checkpoint as an
artifact, and writes ``runs.json`` (network -> run id) for downstream rules, which read
run ids from files, never from the tracking store.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from crossmod.cli import ensure_parent, setup_logging
from crossmod.tracking.store import code_commit, log_run


def network_run_name(dataset: str, split: int, network: str) -> str:
    """The MLflow run name of one network on one split (the live run has it too)."""
    return f"{dataset}/split{split}/{network}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--experiments", required=True, help="experiments.json")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--metrics", nargs="+", required=True, help="metrics.json per network")
    parser.add_argument("--out", required=True, help="runs.json to write")
    args = parser.parse_args(argv)
    log = setup_logging()
    experiments = json.loads(Path(args.experiments).read_text())
    uri = experiments["tracking_uri"]  # resolved once, by the experiments job
    experiment_id = experiments["experiments"][args.dataset]
    commit = code_commit()
    runs = {}
    for path in map(Path, args.metrics):
        report = json.loads(path.read_text())
        record = report["run"]
        name = network_run_name(report["dataset"], report["split"], report["network"])
        run_id = log_run(
            uri,
            experiment_id,
            name,
            record["params"],
            dict(record["tags"], git_commit=commit),
            {k: [tuple(p) for p in v] for k, v in record["series"].items()},
            record["final"],
            [path.with_name("model.pt"), path],
            live_run_id=record.get("live_run_id") if record.get("live_complete") else None,
        )
        runs[report["network"]] = run_id
        log.info("%s -> run %s", name, run_id)
    content = {"tracking_uri": uri, "experiment_id": experiment_id, "runs": runs}
    ensure_parent(args.out).write_text(json.dumps(content, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
