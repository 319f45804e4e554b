"""``python -m crossmod.reporting.summary``: intervals and paired tests for every table cell.

From ``ranks.parquet`` (every test query's rank, per network and OURS, under each pool
protocol; ``crossmod.reporting.collect``) this writes:

- ``metrics_summary.csv``: dataset, setup, task, method, metric, mean, ci_low, ci_high,
  n_queries, n_splits, p_vs_baseline, p_holm, on the configured pool protocol. mean is
  the mean over splits (the tables' value); the interval a stratified bootstrap of the
  queries; p the paired sign-flip test against BASE (per-task setup) or JOINT-BASE
  (joint setup), Holm-corrected across the tasks of a table (one method, setup and
  metric) (``crossmod.evaluation.intervals``).
- ``summary_positions.csv``: the summary-rank tables' positions (tables 1, 5 and their
  every-method versions 1x, 5x) with intervals from the same bootstrap resamples.
- ``protocols_summary.csv``: each method's top-1/top-3/rank with its interval under
  every pool protocol (``pools.candidates``), for the report's protocol comparison.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from crossmod.cli import ensure_parent, setup_logging
from crossmod.evaluation.intervals import (
    HIGHER_IS_BETTER,
    METRICS,
    IntervalSettings,
    bootstrap_means,
    bootstrap_weights,
    holm,
    paired_p,
    per_query,
    percentile_interval,
    stream,
)

BASELINE = "base"  # BASE per-task, JOINT-BASE joint: the method "base" of each setup
SUMMARY_COLUMNS = (
    "dataset",
    "setup",
    "task",
    "method",
    "metric",
    "mean",
    "ci_low",
    "ci_high",
    "n_queries",
    "n_splits",
    "p_vs_baseline",
    "p_holm",
)


def aligned(group: pd.DataFrame) -> tuple[list[str], list[np.ndarray]]:
    """Methods and, per split, the (n_s, methods) rank matrix of one task's test queries.

    Every method must rank the very same queries (the saved pools); a method that lacks
    some is an error, not a silently smaller sample.
    """
    methods = sorted(group["method"].unique())
    matrices = []
    for split, chunk in group.groupby("split", sort=True):
        wide = chunk.pivot(index="query", columns="method", values="rank")
        missing = wide.columns[wide.isna().any()].tolist() + sorted(set(methods) - set(wide))
        if missing:
            where = f"{chunk['dataset'].iloc[0]} {chunk['setup'].iloc[0]} {chunk['task'].iloc[0]}"
            raise ValueError(
                f"ranks.parquet: {where} split {split}: {', '.join(map(str, missing))} "
                "do not rank every test query the other methods rank"
            )
        matrices.append(wide[methods].to_numpy(dtype=np.float64))
    return methods, matrices


def task_bootstrap(
    group: pd.DataFrame, settings: IntervalSettings, seed: int
) -> tuple[list[str], list[np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Methods, rank matrices, and per metric the means (M,) and bootstrap samples (R, M).

    The resamples depend only on (dataset, setup, task, protocol) and the seed: every
    method, metric and table reads the same draws.
    """
    first = group.iloc[0]
    methods, matrices = aligned(group)
    rng = stream(seed, first["dataset"], first["setup"], first["task"], first["candidates"])
    weights = bootstrap_weights([len(m) for m in matrices], settings.resamples, rng)
    means, samples = {}, {}
    for metric in METRICS:
        values = [per_query(m, metric) for m in matrices]
        means[metric] = np.mean([v.mean(axis=0) for v in values], axis=0)
        samples[metric] = bootstrap_means(values, weights)
    return methods, matrices, means, samples


GROUP = ["dataset", "setup", "candidates", "task"]


def bootstraps(ranks: pd.DataFrame, settings: IntervalSettings, seed: int) -> list[tuple]:
    """(dataset, setup, candidates, task) and its :func:`task_bootstrap`, per group."""
    return [
        (key, *task_bootstrap(group, settings, seed))
        for key, group in ranks.groupby(GROUP, sort=True)
    ]


def summarise(
    boots: list[tuple], settings: IntervalSettings, seed: int, baseline: str = BASELINE
) -> pd.DataFrame:
    """Every (dataset, setup, task, method, metric) cell with interval and paired test.

    ``baseline`` is the method every other is tested against (BASE for the paper's
    tables; the configured PVSE for its ablations).
    """
    rows = []
    for (dataset, setup, candidates, task), methods, matrices, means, samples in boots:
        n_queries = sum(len(m) for m in matrices)
        for metric in METRICS:
            low, high = percentile_interval(samples[metric], settings.level)
            p = np.full(len(methods), np.nan)
            if baseline in methods:
                b = methods.index(baseline)
                values = [per_query(m, metric) for m in matrices]
                differences = [v - v[:, [b]] for v in values]
                rng = stream(seed, dataset, setup, task, candidates, metric, "paired")
                p = np.asarray(paired_p(differences, settings.resamples, rng), dtype=np.float64)
                p[b] = np.nan
            for i, method in enumerate(methods):
                rows.append(
                    {
                        "dataset": dataset,
                        "setup": setup,
                        "candidates": candidates,
                        "task": task,
                        "method": method,
                        "metric": metric,
                        "mean": means[metric][i],
                        "ci_low": low[i],
                        "ci_high": high[i],
                        "n_queries": n_queries,
                        "n_splits": len(matrices),
                        "p_vs_baseline": p[i],
                    }
                )
    frame = pd.DataFrame(rows)
    family = ["dataset", "setup", "candidates", "method", "metric"]
    frame["p_holm"] = frame.groupby(family)["p_vs_baseline"].transform(lambda p: holm(p.to_numpy()))
    return frame


def positions(
    boots: list[tuple],
    settings: IntervalSettings,
    method_sets: dict[tuple[str, str], tuple[str, ...]],
) -> pd.DataFrame:
    """Summary-rank positions with bootstrap intervals, per (table, setup) method set.

    For each task and each of top-1, top-3 (higher is better) and mean rank (lower is
    better), the methods are ranked (ties share the average position, a method without
    a result for the task ranks last), and the three positions are averaged: in the
    point estimate and in every bootstrap resample alike.
    """
    rows = []
    for (dataset, setup, candidates, task), methods, _, means, samples in boots:
        for (table, table_setup), wanted in method_sets.items():
            if table_setup != setup:
                continue
            index = [methods.index(m) if m in methods else None for m in wanted]
            point = np.zeros(len(wanted))
            resampled = np.zeros((settings.resamples, len(wanted)))
            for metric, higher in HIGHER_IS_BETTER.items():
                point += _positions(means[metric][None, :], index, higher)[0]
                resampled += _positions(samples[metric], index, higher)
            point, resampled = point / len(METRICS), resampled / len(METRICS)
            low, high = percentile_interval(resampled, settings.level)
            for i, method in enumerate(wanted):
                rows.append(
                    {
                        "dataset": dataset,
                        "setup": setup,
                        "candidates": candidates,
                        "table": table,
                        "task": task,
                        "method": method,
                        "position": point[i],
                        "ci_low": low[i],
                        "ci_high": high[i],
                    }
                )
    return pd.DataFrame(rows)


def _positions(values: np.ndarray, index: list[int | None], higher: bool) -> np.ndarray:
    """(R, k) positions (1 = best, ties averaged, absent methods share the last places)."""
    present = [j for j, i in enumerate(index) if i is not None]
    chosen = values[:, [index[j] for j in present]]
    score = -chosen if higher else chosen
    # Average rank with ties: 1 + (number strictly better) + (number tied - 1) / 2.
    better = (score[:, None, :] < score[:, :, None]).sum(axis=2)
    tied = (score[:, None, :] == score[:, :, None]).sum(axis=2)
    out = np.empty((len(values), len(index)))
    out[:, present] = 1 + better + (tied - 1) / 2
    absent = [j for j, i in enumerate(index) if i is None]
    if absent:
        out[:, absent] = len(present) + (len(absent) + 1) / 2
    return out


def main(argv: list[str] | None = None) -> int:
    from crossmod.methods.registry import registry

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ranks", required=True, help="ranks.parquet (collect)")
    parser.add_argument("--settings", required=True, help="the intervals section (JSON)")
    parser.add_argument("--candidates", required=True, help="pools.candidates (config)")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--summary-out", required=True, help="metrics_summary.csv")
    parser.add_argument("--positions-out", required=True, help="summary_positions.csv")
    parser.add_argument("--protocols-out", required=True, help="protocols_summary.csv")
    args = parser.parse_args(argv)
    log = setup_logging()
    settings = IntervalSettings.from_json(args.settings)
    ranks = pd.read_parquet(args.ranks)
    boots = bootstraps(ranks, settings, args.seed)
    every = summarise(boots, settings, args.seed)
    configured = every[every["candidates"] == args.candidates]
    configured[list(SUMMARY_COLUMNS)].to_csv(ensure_parent(args.summary_out), index=False)
    protocols = every[every["method"].isin(registry().methods)].drop(
        columns=["p_vs_baseline", "p_holm"]
    )
    protocols.to_csv(ensure_parent(args.protocols_out), index=False)
    methods = registry()
    present = set(ranks["method"])
    sets = {}
    for setup, name, every_name in (
        ("per-task", "table1", "table1x"),
        ("joint", "table5", "table5x"),
    ):
        paper = methods.columns(setup, paper_summary=True)
        sets[(name, setup)] = paper
        sets[(every_name, setup)] = tuple(
            m for m in methods.columns(setup) if m in paper or m in present
        )
    chosen = [boot for boot in boots if boot[0][2] == args.candidates]
    positions(chosen, settings, sets).to_csv(ensure_parent(args.positions_out), index=False)
    marked = configured[configured["p_holm"] < settings.alpha]
    log.info(
        "%d cells, %d differ from the baseline after Holm correction (alpha %.2f)",
        len(configured),
        len(marked),
        settings.alpha,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
