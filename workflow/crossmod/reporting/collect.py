"""``python -m crossmod.reporting.collect``: the tidy outputs, for anyone analysing further.

- ``metrics.csv``: dataset, setup, method, task, split, top1, top3, rank, n_queries (test
  pools), plus the network that produced the row. Methods: veit, base, content, style,
  ours, and base_sub / style_sub (base and style trained with the content subset: the
  parts of OURS for personality tasks).
- ``weights.csv``: dataset, setup, task, split, b_base, b_content, b_style (OURS).
- ``identity.csv``: dataset, features, kernel, params, accuracy_mean, accuracy_std,
  n_users, chance (every grid point; the tables keep the best per feature set).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from crossmod.cli import ensure_parent, setup_logging

METRIC_COLUMNS = (
    "dataset",
    "setup",
    "method",
    "task",
    "split",
    "top1",
    "top3",
    "rank",
    "n_queries",
    "network",
)
WEIGHT_COLUMNS = ("dataset", "setup", "task", "split", "b_base", "b_content", "b_style")


def network_rows(report: dict) -> list[dict]:
    method = report["method"] + ("_sub" if report.get("content_subset") else "")
    return [
        {
            "dataset": report["dataset"],
            "setup": report["setup"],
            "method": method,
            "task": task,
            "split": report["split"],
            **values,
            "network": report["network"],
        }
        for task, values in report["test"].items()
    ]


def ours_rows(combined: dict) -> tuple[list[dict], list[dict]]:
    metric_rows, weight_rows = [], []
    for result in combined["results"]:
        common = {
            "dataset": combined["dataset"],
            "setup": result["setup"],
            "task": result["task"],
            "split": combined["split"],
        }
        metric_rows.append(
            {
                **common,
                "method": "ours",
                **result["test"],
                "n_queries": result["n_queries"]["test"],
                "network": "ours",
            }
        )
        weight_rows.append({**common, **{k: result[k] for k in ("b_base", "b_content", "b_style")}})
    return metric_rows, weight_rows


def collect(
    network_files: list[Path], combine_files: list[Path], identity_files: list[Path]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    metric_rows: list[dict] = []
    weight_rows: list[dict] = []
    for path in network_files:
        metric_rows += network_rows(json.loads(path.read_text()))
    for path in combine_files:
        rows, weights = ours_rows(json.loads(path.read_text()))
        metric_rows += rows
        weight_rows += weights
    metrics = pd.DataFrame(metric_rows, columns=list(METRIC_COLUMNS))
    metrics = metrics.sort_values(["dataset", "setup", "method", "task", "split"], kind="stable")
    weights = pd.DataFrame(weight_rows, columns=list(WEIGHT_COLUMNS))
    weights = weights.sort_values(["dataset", "setup", "task", "split"], kind="stable")
    identity = pd.concat([pd.read_csv(p) for p in identity_files], ignore_index=True)
    return metrics.reset_index(drop=True), weights.reset_index(drop=True), identity


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--networks", nargs="+", required=True, help="metrics.json files")
    parser.add_argument("--combine", nargs="*", default=[], help="combine.json files")
    parser.add_argument("--identity", nargs="*", default=[], help="identity.csv files")
    parser.add_argument("--metrics-out", required=True)
    parser.add_argument("--weights-out", required=True)
    parser.add_argument("--identity-out", required=True)
    args = parser.parse_args(argv)
    log = setup_logging()
    metrics, weights, identity = collect(
        [Path(p) for p in args.networks],
        [Path(p) for p in args.combine],
        [Path(p) for p in args.identity],
    )
    metrics.to_csv(ensure_parent(args.metrics_out), index=False)
    weights.to_csv(ensure_parent(args.weights_out), index=False)
    identity.to_csv(ensure_parent(args.identity_out), index=False)
    log.info(
        "%d metric rows, %d weight rows, %d identity rows",
        len(metrics),
        len(weights),
        len(identity),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
