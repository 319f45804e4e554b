"""``python -m crossmod.reporting.ablations``: PVSE's ablations (SPEC 9) as a table per dataset.

Each ablation is one PVSE {t,g} network trained with some settings changed (K = 1, 2,
4; without the diversity loss; without MMD; global only), on every split. The table has
one row per ablation, below the configured PVSE network (``pvse_tg`` of the same splits),
and, per task, top-1, top-3 and mean rank on the test pools: the mean over splits with
the stratified bootstrap interval over test queries, marked ▲/▼ where the paired test
against the configured PVSE (Holm across the table's tasks) rejects, as the paper's
tables are against BASE (``crossmod.reporting.summary``). The tidy rows (one per
ablation, task and split) go to a CSV across datasets.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from crossmod.cli import ensure_parent, setup_logging
from crossmod.evaluation.intervals import IntervalSettings
from crossmod.reporting import summary
from crossmod.reporting.tables import CHANCE, MARKS, Table

METRICS = ("top1", "top3", "rank")
HIGHER = {"top1": True, "top3": True, "rank": False}
REFERENCE = "PVSE"
"""The row of the configured PVSE {t,g} network, the ablations' reference."""


def rank_rows(reports: list[dict], candidates: str) -> pd.DataFrame:
    """Every test query's rank per variant (the reference is ``REFERENCE``), one protocol."""
    frames = []
    for report in reports:
        for task in report["tasks"]:
            frames.append(
                pd.DataFrame(
                    {
                        "dataset": report["dataset"],
                        "setup": "per-task",
                        "method": report.get("variant") or REFERENCE,
                        "task": task,
                        "split": report["split"],
                        "candidates": candidates,
                        "query": report["test_queries"],
                        "rank": report["test_ranks"][candidates][task],
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def ablation_rows(reports: list[dict]) -> pd.DataFrame:
    rows = []
    for report in reports:
        for task, values in report["test"].items():
            rows.append(
                {
                    "dataset": report["dataset"],
                    "variant": report.get("variant") or REFERENCE,
                    "settings": json.dumps(report["method_settings"], sort_keys=True),
                    "task": task,
                    "split": report["split"],
                    **{m: values[m] for m in (*METRICS, "n_queries")},
                }
            )
    return pd.DataFrame(rows)


def ablation_table(
    rows: pd.DataFrame, dataset: str, order: list[str], cells: pd.DataFrame, alpha: float
) -> Table:
    """The table of one dataset; ``cells`` are its summary rows (intervals, tests)."""
    chosen = rows[rows["dataset"] == dataset]
    order = [REFERENCE, *order]
    mean = chosen.groupby(["variant", "task"])[list(METRICS)].mean()
    tasks = sorted(chosen["task"].unique(), key=lambda t: ("t2g", "g2t").index(t))
    columns = [f"{task} {metric}" for task in tasks for metric in METRICS]
    values = pd.DataFrame(np.nan, index=order, columns=columns)
    low, high = values.copy(), values.copy()
    marks = pd.DataFrame("", index=order, columns=columns)
    bold = pd.DataFrame(False, index=order, columns=columns)
    evidence = cells[cells["dataset"] == dataset].set_index(["method", "task", "metric"])
    for task in tasks:
        for metric in METRICS:
            column = f"{task} {metric}"
            for variant in order:
                if (variant, task) not in mean.index:
                    continue
                values.loc[variant, column] = mean.loc[(variant, task), metric]
                cell = evidence.loc[(variant, task, metric)]
                low.loc[variant, column], high.loc[variant, column] = (
                    cell["ci_low"],
                    cell["ci_high"],
                )
                if cell["p_holm"] < alpha:
                    reference = mean.loc[(REFERENCE, task), metric]
                    better = (cell["mean"] > reference) == HIGHER[metric]
                    marks.loc[variant, column] = MARKS["up" if better else "down"]
            column_values = values[column]
            best = column_values.max() if HIGHER[metric] else column_values.min()
            bold[column] = column_values.eq(best) & column_values.notna()
    n_splits = chosen["split"].nunique()
    note = (
        f"PVSE {{t,g}} ablations beside the configured PVSE: mean over {n_splits} user splits "
        "of the test pools [95% bootstrap interval over the test queries]; ▲/▼: better/worse "
        f"than the configured PVSE on the same queries (paired permutation test, Holm-corrected "
        f"across the table's tasks, p < {alpha:g}); best per column in bold. {CHANCE}"
    )
    return Table(
        "pvse_ablations",
        f"PVSE ablations, {dataset}",
        note,
        values,
        None,
        bold,
        low=low,
        high=high,
        marks=marks,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics", nargs="+", required=True, help="ablation metrics.json")
    parser.add_argument(
        "--reference", nargs="+", required=True, help="the configured pvse_tg's metrics.json"
    )
    parser.add_argument("--order", nargs="+", required=True, help="ablation names, in order")
    parser.add_argument("--settings", required=True, help="the intervals section (JSON)")
    parser.add_argument("--candidates", required=True, help="pools.candidates (config)")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--tidy", required=True, help="pvse_ablations.csv across datasets")
    parser.add_argument("--out", required=True, help="a folder per dataset gets the table")
    args = parser.parse_args(argv)
    log = setup_logging()
    settings = IntervalSettings.from_json(args.settings)
    reports = [json.loads(Path(p).read_text()) for p in [*args.reference, *args.metrics]]
    rows = ablation_rows(reports)
    rows.to_csv(ensure_parent(args.tidy), index=False)
    boots = summary.bootstraps(rank_rows(reports, args.candidates), settings, args.seed)
    cells = summary.summarise(boots, settings, args.seed, baseline=REFERENCE)
    for dataset in sorted(rows["dataset"].unique()):
        table = ablation_table(rows, dataset, args.order, cells, settings.alpha)
        table.write(Path(args.out) / dataset)
        log.info("\n%s", table.markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
