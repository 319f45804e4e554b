"""``python -m crossmod.reporting.ablations``: PVSE's ablations (SPEC 9) as a table per dataset.

Each ablation is one PVSE {t,g} network trained with some settings changed (K = 1, 2,
4; without the diversity loss; without MMD; global only), on every split. The table has
one row per ablation and, per task, top-1, top-3 and mean rank on the test pools: the
mean over splits with the standard deviation over splits. The tidy rows (one per
ablation, task and split) go to a CSV across datasets.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from crossmod.cli import ensure_parent, setup_logging
from crossmod.reporting.tables import CHANCE, Table

METRICS = ("top1", "top3", "rank")
HIGHER = {"top1": True, "top3": True, "rank": False}


def ablation_rows(paths: list[Path]) -> pd.DataFrame:
    rows = []
    for path in paths:
        report = json.loads(path.read_text())
        for task, values in report["test"].items():
            rows.append(
                {
                    "dataset": report["dataset"],
                    "variant": report["variant"],
                    "settings": json.dumps(report["method_settings"], sort_keys=True),
                    "task": task,
                    "split": report["split"],
                    **{m: values[m] for m in (*METRICS, "n_queries")},
                }
            )
    return pd.DataFrame(rows)


def ablation_table(rows: pd.DataFrame, dataset: str, order: list[str]) -> Table:
    chosen = rows[rows["dataset"] == dataset]
    grouped = chosen.groupby(["variant", "task"])[list(METRICS)]
    mean, std = grouped.mean(), grouped.std(ddof=1)
    tasks = sorted(chosen["task"].unique(), key=lambda t: ("t2g", "g2t").index(t))
    columns = [f"{task} {metric}" for task in tasks for metric in METRICS]
    values = pd.DataFrame(np.nan, index=order, columns=columns)
    spread = values.copy()
    bold = pd.DataFrame(False, index=order, columns=columns)
    for task in tasks:
        for metric in METRICS:
            column = f"{task} {metric}"
            for variant in order:
                if (variant, task) in mean.index:
                    values.loc[variant, column] = mean.loc[(variant, task), metric]
                    spread.loc[variant, column] = std.loc[(variant, task), metric]
            column_values = values[column]
            best = column_values.max() if HIGHER[metric] else column_values.min()
            bold[column] = column_values.eq(best) & column_values.notna()
    n_splits = chosen["split"].nunique()
    note = (
        f"PVSE {{t,g}} ablations: mean ± standard deviation over {n_splits} user splits of the "
        f"test pools; best per column in bold. {CHANCE}"
    )
    return Table("pvse_ablations", f"PVSE ablations, {dataset}", note, values, spread, bold)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics", nargs="+", required=True, help="ablation metrics.json")
    parser.add_argument("--order", nargs="+", required=True, help="ablation names, in order")
    parser.add_argument("--tidy", required=True, help="pvse_ablations.csv across datasets")
    parser.add_argument("--out", required=True, help="a folder per dataset gets the table")
    args = parser.parse_args(argv)
    log = setup_logging()
    rows = ablation_rows([Path(p) for p in args.metrics])
    rows.to_csv(ensure_parent(args.tidy), index=False)
    for dataset in sorted(rows["dataset"].unique()):
        table = ablation_table(rows, dataset, args.order)
        table.write(Path(args.out) / dataset)
        log.info("\n%s", table.markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
