"""``python -m crossmod.reporting.polysemy``: does polysemy help, as annotators disagree more?

In the synthetic generator each image holds several objects and each annotator looks at
some of them, so one image is seen several ways; ``view_disagreement`` scales how much
annotators of the same image differ in which objects they look at (0: all follow the
image's salience; 1: the default model). The sweep trains PVSE with K = 2, PVSE with
K = 1 and BASE on {t,g} at several values of the knob; this figure shows their test
top-3 on t2g and g2t (mean over splits, standard deviation as error bars) against it,
and the tidy CSV holds every split.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from crossmod.cli import ensure_parent, setup_logging

TASKS = ("t2g", "g2t")


def sweep_rows(points: list[tuple[str, str, str]]) -> pd.DataFrame:
    """One row per (knob value, method label, task, split) from the runs' metrics.json."""
    rows = []
    for value, label, path in points:
        report = json.loads(Path(path).read_text())
        for task in TASKS:
            values = report["test"][task]
            rows.append(
                {
                    "view_disagreement": float(value),
                    "method": label,
                    "task": task,
                    "split": report["split"],
                    "top1": values["top1"],
                    "top3": values["top3"],
                    "rank": values["rank"],
                }
            )
    return pd.DataFrame(rows)


def sweep_figure(rows: pd.DataFrame) -> plt.Figure:
    fig, axes = plt.subplots(1, len(TASKS), figsize=(11, 4), sharey=True)
    summary = rows.groupby(["task", "method", "view_disagreement"])["top3"].agg(["mean", "std"])
    for ax, task in zip(axes, TASKS, strict=True):
        for method in rows["method"].unique():
            line = summary.loc[(task, method)].reset_index()
            ax.errorbar(
                line["view_disagreement"],
                line["mean"],
                yerr=line["std"],
                marker="o",
                capsize=3,
                label=method,
            )
        ax.axhline(0.2, color="black", linestyle="--", linewidth=1, label="chance")
        ax.set_title(f"{task}: test top-3 vs annotators' disagreement")
        ax.set_xlabel("view_disagreement (generator knob)")
    axes[0].set_ylabel("top-3 accuracy (mean over splits)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--point",
        nargs=3,
        action="append",
        required=True,
        metavar=("VALUE", "LABEL", "METRICS"),
        help="one trained network at one knob value",
    )
    parser.add_argument("--tidy", required=True)
    parser.add_argument("--plot", required=True)
    args = parser.parse_args(argv)
    log = setup_logging()
    rows = sweep_rows(args.point)
    rows.to_csv(ensure_parent(args.tidy), index=False)
    fig = sweep_figure(rows)
    fig.savefig(ensure_parent(args.plot), dpi=100)
    plt.close(fig)
    log.info("\n%s", rows.groupby(["task", "method", "view_disagreement"])["top3"].mean())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
