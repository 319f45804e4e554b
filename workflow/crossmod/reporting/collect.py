"""``python -m crossmod.reporting.collect``: the tidy outputs, for anyone analysing further.

- ``metrics.csv``: dataset, setup, method, task, split, top1, top3, rank, n_queries (test
  pools), plus the network that produced the row. Methods: veit, base, content, style,
  ours, and base_sub / style_sub (base and style trained with the content subset: the
  parts of OURS for personality tasks).
- ``weights.csv``: dataset, setup, task, split, b_base, b_content, b_style (OURS).
- ``identity.csv``: dataset, features, kernel, params, accuracy_mean, accuracy_std,
  n_users, chance (every grid point; the tables keep the best per feature set).
- ``ranks.parquet``: dataset, setup, method, task, split, candidates, query, rank: the
  positive's rank for every test query, under each pool protocol (``pools.candidates``),
  for every network and OURS. The intervals and paired tests of the tables
  (``crossmod.reporting.summary``) resample these.
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
RANK_COLUMNS = ("dataset", "setup", "method", "task", "split", "candidates", "query", "rank")


def _rank_frame(keys: dict, queries: list[int], ranks_by_protocol: dict[str, list[int]]) -> list:
    frames = []
    for protocol, values in ranks_by_protocol.items():
        if len(values) != len(queries):
            raise ValueError(
                f"{keys}: {len(values)} ranks under {protocol} for {len(queries)} test queries"
            )
        frame = pd.DataFrame({"query": queries, "rank": values})
        frames.append(frame.assign(**keys, candidates=protocol))
    return frames


def network_ranks(report: dict) -> list[pd.DataFrame]:
    method = report["method"] + ("_sub" if report.get("content_subset") else "")
    common = {"dataset": report["dataset"], "setup": report["setup"], "method": method}
    frames = []
    for task in report["tasks"]:
        by_protocol = {p: per_task[task] for p, per_task in report["test_ranks"].items()}
        keys = dict(common, task=task, split=report["split"])
        frames += _rank_frame(keys, report["test_queries"], by_protocol)
    return frames


def ours_ranks(combined: dict) -> list[pd.DataFrame]:
    frames = []
    for result in combined["results"]:
        keys = {
            "dataset": combined["dataset"],
            "setup": result["setup"],
            "method": "ours",
            "task": result["task"],
            "split": combined["split"],
        }
        frames += _rank_frame(keys, combined["test_queries"], result["test_ranks"])
    return frames


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
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    metric_rows: list[dict] = []
    weight_rows: list[dict] = []
    rank_frames: list[pd.DataFrame] = []
    for path in network_files:
        report = json.loads(path.read_text())
        metric_rows += network_rows(report)
        rank_frames += network_ranks(report)
    for path in combine_files:
        combined = json.loads(path.read_text())
        rows, weights = ours_rows(combined)
        metric_rows += rows
        weight_rows += weights
        rank_frames += ours_ranks(combined)
    metrics = pd.DataFrame(metric_rows, columns=list(METRIC_COLUMNS))
    metrics = metrics.sort_values(["dataset", "setup", "method", "task", "split"], kind="stable")
    weights = pd.DataFrame(weight_rows, columns=list(WEIGHT_COLUMNS))
    weights = weights.sort_values(["dataset", "setup", "task", "split"], kind="stable")
    identity = pd.concat([pd.read_csv(p) for p in identity_files], ignore_index=True)
    ranks = pd.concat(rank_frames, ignore_index=True)[list(RANK_COLUMNS)]
    ranks = ranks.sort_values(list(RANK_COLUMNS[:6]), kind="stable").reset_index(drop=True)
    return metrics.reset_index(drop=True), weights.reset_index(drop=True), identity, ranks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--networks", nargs="+", required=True, help="metrics.json files")
    parser.add_argument("--combine", nargs="*", default=[], help="combine.json files")
    parser.add_argument("--identity", nargs="*", default=[], help="identity.csv files")
    parser.add_argument("--metrics-out", required=True)
    parser.add_argument("--weights-out", required=True)
    parser.add_argument("--identity-out", required=True)
    parser.add_argument("--ranks-out", required=True)
    args = parser.parse_args(argv)
    log = setup_logging()
    metrics, weights, identity, ranks = collect(
        [Path(p) for p in args.networks],
        [Path(p) for p in args.combine],
        [Path(p) for p in args.identity],
    )
    metrics.to_csv(ensure_parent(args.metrics_out), index=False)
    weights.to_csv(ensure_parent(args.weights_out), index=False)
    identity.to_csv(ensure_parent(args.identity_out), index=False)
    ranks.to_parquet(ensure_parent(args.ranks_out), index=False)
    log.info(
        "%d metric rows, %d weight rows, %d identity rows",
        len(metrics),
        len(weights),
        len(identity),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
