"""``python -m crossmod.reporting.tables``: the paper's tables (SPEC 7) for one dataset.

Every table is written as CSV (tidy: one row per task and method, mean and spread),
Markdown, LaTeX and HTML. Values are means over the user splits with the standard
deviation over splits; the best per task is in bold (ties: all of them); chance levels
are stated under each table.

Summary ranks (tables 1 and 5): for each task and each of top-1, top-3 (higher is
better) and mean rank (lower is better), the methods are ranked on their mean over
splits (ties share the average position); a method without a result for the task
(CONTENT on personality tasks) ranks last; the three ranks are then averaged.
"""

from __future__ import annotations

import argparse
import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from crossmod.cli import setup_logging, staged_folder, write_error
from crossmod.evaluation.ranking import TASKS  # the paper's row order
from crossmod.methods.ours import PERSONALITY_TASKS
from crossmod.methods.registry import registry

HIGHER_IS_BETTER = {"top1": True, "top3": True, "rank": False}
CHANCE = "Chance on a 15-answer pool: top-1 = 1/15 = 0.067, top-3 = 0.200, mean rank = 8."
TABLES = (
    "table1_summary",
    "table3_top3",
    "table5_joint_summary",
    "table6_joint_top3",
    "table7_style_vs_joint",
    "table8_weights",
    "tableS1_top1",
    "tableS2_rank",
    "identity",
)


@dataclass
class Table:
    name: str
    title: str
    note: str
    values: pd.DataFrame  # rows x columns of numbers (NaN: not applicable)
    spread: pd.DataFrame | None  # same shape, or None
    bold: pd.DataFrame  # same shape, booleans
    digits: int = 3

    def cell(self, row: str, column: str) -> str:
        value = self.values.loc[row, column]
        if pd.isna(value):
            return "N/A"
        text = f"{value:.{self.digits}f}"
        if self.spread is not None and pd.notna(self.spread.loc[row, column]):
            text += f" ± {self.spread.loc[row, column]:.{self.digits}f}"
        return text

    def tidy(self) -> pd.DataFrame:
        rows = []
        for row in self.values.index:
            for column in self.values.columns:
                rows.append(
                    {
                        "row": row,
                        "column": column,
                        "mean": self.values.loc[row, column],
                        "std": None if self.spread is None else self.spread.loc[row, column],
                        "best": bool(self.bold.loc[row, column]),
                    }
                )
        return pd.DataFrame(rows)

    def markdown(self) -> str:
        header = "| | " + " | ".join(self.values.columns) + " |"
        rule = "|---|" + "---|" * len(self.values.columns)
        lines = [f"**{self.title}**", "", header, rule]
        for row in self.values.index:
            cells = [
                f"**{self.cell(row, c)}**" if self.bold.loc[row, c] else self.cell(row, c)
                for c in self.values.columns
            ]
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
        return "\n".join([*lines, "", self.note, ""])

    def latex(self) -> str:
        escape = lambda s: str(s).replace("_", r"\_").replace("±", r"$\pm$")  # noqa: E731
        lines = [
            r"\begin{table}[t]",
            r"\centering",
            r"\small",
            r"\begin{tabular}{l" + "c" * len(self.values.columns) + "}",
            r"\toprule",
            " & " + " & ".join(escape(c) for c in self.values.columns) + r" \\",
            r"\midrule",
        ]
        for row in self.values.index:
            cells = []
            for c in self.values.columns:
                text = escape(self.cell(row, c))
                cells.append(rf"\textbf{{{text}}}" if self.bold.loc[row, c] else text)
            lines.append(escape(row) + " & " + " & ".join(cells) + r" \\")
        lines += [
            r"\bottomrule",
            r"\end{tabular}",
            rf"\caption{{{escape(self.title)}. {escape(self.note)}}}",
            rf"\label{{tab:{self.name}}}",
            r"\end{table}",
            "",
        ]
        return "\n".join(lines)

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in self.values.columns)
        body = []
        for row in self.values.index:
            cells = []
            for c in self.values.columns:
                text = html.escape(self.cell(row, c))
                cells.append(
                    f"<td><b>{text}</b></td>" if self.bold.loc[row, c] else f"<td>{text}</td>"
                )
            body.append(f"<tr><th>{html.escape(str(row))}</th>{''.join(cells)}</tr>")
        return (
            "<!DOCTYPE html><html><head><meta charset='utf-8'><style>"
            "body{font-family:sans-serif}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
            "</style></head><body>"
            f"<h3>{html.escape(self.title)}</h3><table><tr><th></th>{head}</tr>"
            f"{''.join(body)}</table><p>{html.escape(self.note)}</p></body></html>\n"
        )

    def write(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.tidy().to_csv(folder / f"{self.name}.csv", index=False)
        (folder / f"{self.name}.md").write_text(self.markdown())
        (folder / f"{self.name}.tex").write_text(self.latex())
        (folder / f"{self.name}.html").write_text(self.html())


def aggregate(metrics: pd.DataFrame, setup: str, methods: tuple[str, ...]) -> pd.DataFrame:
    """Mean and standard deviation over splits per (task, method)."""
    chosen = metrics[(metrics["setup"] == setup) & metrics["method"].isin(methods)]
    grouped = chosen.groupby(["task", "method"])[["top1", "top3", "rank"]]
    mean, std = grouped.mean(), grouped.std(ddof=1)
    return mean.join(std.add_suffix("_std")).reset_index()


def _grid(agg: pd.DataFrame, column: str, methods: tuple[str, ...]) -> pd.DataFrame:
    wide = agg.pivot(index="task", columns="method", values=column) if len(agg) else None
    frame = pd.DataFrame(np.nan, index=list(TASKS), columns=list(methods))
    if wide is not None:
        frame.update(wide)
    return frame


def best_mask(values: pd.DataFrame, higher_is_better: bool) -> pd.DataFrame:
    best = values.max(axis=1) if higher_is_better else values.min(axis=1)
    return values.eq(best, axis=0) & values.notna()


def summary_ranks(agg: pd.DataFrame, methods: tuple[str, ...]) -> pd.DataFrame:
    """Average over top-1, top-3 and mean rank of each method's position per task."""
    positions = []
    for metric, higher in HIGHER_IS_BETTER.items():
        values = _grid(agg, metric, methods)
        ranked = values.rank(axis=1, ascending=not higher, method="average")
        n_missing = values.isna().sum(axis=1)
        n_present = values.notna().sum(axis=1)
        # Missing methods share the last positions: the mean of n_present+1 .. n_methods.
        last = n_present + (n_missing + 1) / 2
        positions.append(ranked.apply(lambda col, last=last: col.fillna(last)))
    return sum(positions) / len(positions)


def _labels(frame: pd.DataFrame, prefix: str = "") -> pd.DataFrame:
    labels = registry().labels()
    return frame.rename(columns={m: prefix + labels.get(m, m) for m in frame.columns})


def metric_table(
    agg: pd.DataFrame, metric: str, methods: tuple[str, ...], name: str, title: str, note: str
) -> Table:
    values = _grid(agg, metric, methods)
    spread = _grid(agg, f"{metric}_std", methods)
    bold = best_mask(values, HIGHER_IS_BETTER[metric])
    return Table(name, title, note, _labels(values), _labels(spread), _labels(bold))


def summary_table(agg: pd.DataFrame, methods: tuple[str, ...], name: str, title: str) -> Table:
    ranks = summary_ranks(agg, methods)
    note = (
        "Each cell: the method's position among the columns on top-1, top-3 and mean rank "
        "(1 = best), averaged over the three; N/A ranks last. Lower is better."
    )
    return Table(name, title, note, _labels(ranks), None, _labels(best_mask(ranks, False)), 2)


def build_tables(
    metrics: pd.DataFrame, weights: pd.DataFrame, identity: pd.DataFrame, dataset: str
) -> list[Table]:
    metrics = metrics[metrics["dataset"] == dataset]
    n_splits = metrics["split"].nunique()
    spread_note = f"Mean ± standard deviation over {n_splits} user splits; best per task in bold."
    methods = registry()
    present = set(metrics["method"])

    def columns(setup: str) -> tuple[str, ...]:
        """The paper's methods always (N/A where absent); others where they have results."""
        paper = methods.columns(setup, paper_summary=True)
        return tuple(m for m in methods.columns(setup) if m in paper or m in present)

    per_task_columns, joint_columns = columns("per-task"), columns("joint")
    per_task = aggregate(metrics, "per-task", per_task_columns)
    joint = aggregate(metrics, "joint", joint_columns)
    note = f"{spread_note} {CHANCE}"
    tables = [
        summary_table(
            per_task,
            methods.columns("per-task", paper_summary=True),
            "table1_summary",
            f"Table 1: summary ranks, {dataset}",
        ),
        metric_table(
            per_task,
            "top3",
            per_task_columns,
            "table3_top3",
            f"Table 3: top-3 accuracy, {dataset}",
            note,
        ),
        summary_table(
            joint,
            methods.columns("joint", paper_summary=True),
            "table5_joint_summary",
            f"Table 5: summary ranks, joint setup, {dataset}",
        ),
        metric_table(
            joint,
            "top3",
            joint_columns,
            "table6_joint_top3",
            f"Table 6: top-3 accuracy, joint setup, {dataset}",
            note,
        ),
    ]
    if methods.columns("per-task", paper_summary=True) != per_task_columns:
        # Methods beyond the paper's (PVSE) get summary tables of their own (1x, 5x), so
        # that the paper's summary ranks (1, 5) stay comparable with the paper's.
        tables += [
            summary_table(
                per_task,
                per_task_columns,
                "table1x_summary",
                f"Table 1x: summary ranks with every method, {dataset}",
            ),
            summary_table(
                joint,
                joint_columns,
                "table5x_joint_summary",
                f"Table 5x: summary ranks with every method, joint setup, {dataset}",
            ),
        ]
    style = pd.concat(
        [
            per_task[per_task["method"] == "style"].assign(method="style"),
            joint[joint["method"] == "style"].assign(method="joint_style"),
        ]
    )
    LABEL_STYLE = {"style": "STYLE per-task", "joint_style": "STYLE joint"}
    values = _grid(style, "top3", ("style", "joint_style")).rename(columns=LABEL_STYLE)
    spread = _grid(style, "top3_std", ("style", "joint_style")).rename(columns=LABEL_STYLE)
    tables.append(
        Table(
            "table7_style_vs_joint",
            f"Table 7: STYLE per-task vs joint, top-3, {dataset}",
            f"{spread_note} {CHANCE}",
            values,
            spread,
            best_mask(values, True),
        )
    )
    tables.append(weights_table(weights[weights["dataset"] == dataset], dataset, n_splits))
    tables.append(
        metric_table(
            per_task,
            "top1",
            per_task_columns,
            "tableS1_top1",
            f"Table S1: top-1 accuracy, {dataset}",
            f"{spread_note} {CHANCE}",
        )
    )
    tables.append(
        metric_table(
            per_task,
            "rank",
            per_task_columns,
            "tableS2_rank",
            f"Table S2: mean rank (lower is better), {dataset}",
            f"{spread_note} {CHANCE}",
        )
    )
    tables.append(identity_table(identity[identity["dataset"] == dataset], dataset))
    return tables


def weights_table(weights: pd.DataFrame, dataset: str, n_splits: int) -> Table:
    columns = []
    for setup in ("per-task", "joint"):
        for part in ("style", "base", "content"):
            columns.append((setup, part))
    values = pd.DataFrame(np.nan, index=list(TASKS), columns=[f"{s} b_{p}" for s, p in columns])
    spread = values.copy()
    for (setup, part), column in zip(columns, values.columns, strict=True):
        chosen = weights[weights["setup"] == setup].groupby("task")[f"b_{part}"]
        values[column] = chosen.mean().reindex(TASKS)
        spread[column] = chosen.std(ddof=1).reindex(TASKS)
    for task in PERSONALITY_TASKS:  # no content embedding for personality
        values.loc[task, [c for c in values.columns if c.endswith("b_content")]] = np.nan
    bold = pd.DataFrame(False, index=values.index, columns=values.columns)
    note = (
        f"Mean ± standard deviation over {n_splits} splits of the weights OURS chose on "
        "validation (grid 0, .25, .5, .75, 1). N/A: personality has no content embedding."
    )
    return Table(
        "table8_weights", f"Table 8: selected weights, {dataset}", note, values, spread, bold, 2
    )


def identity_table(identity: pd.DataFrame, dataset: str) -> Table:
    rows = ["text", "gaze", "both"]
    values = pd.DataFrame(np.nan, index=rows, columns=["accuracy", "chance"])
    spread = values.copy()
    best_kernel = {}
    for features, group in identity.groupby("features"):
        top = group.sort_values("accuracy_mean", ascending=False).iloc[0]
        values.loc[features] = [top["accuracy_mean"], top["chance"]]
        spread.loc[features, "accuracy"] = top["accuracy_std"]
        best_kernel[features] = f"{features}: {top['kernel']} {top['params']}"
    bold = pd.DataFrame(False, index=values.index, columns=values.columns)
    bold["accuracy"] = values["accuracy"].eq(values["accuracy"].max()) & values["accuracy"].notna()
    note = (
        "Best 5-fold cross-validated accuracy of a linear or RBF SVM identifying the annotator "
        "(± sd over folds); chance = 1 / number of users. Chosen: "
        + "; ".join(best_kernel.values())
    )
    return Table("identity", f"Identity classifier, {dataset}", note, values, spread, bold)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics", required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--identity", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out", required=True, help="folder for the tables")
    args = parser.parse_args(argv)
    log = setup_logging()
    tables = build_tables(
        pd.read_csv(args.metrics),
        pd.read_csv(args.weights),
        pd.read_csv(args.identity),
        args.dataset,
    )
    try:
        with staged_folder(args.out) as folder:
            for table in tables:
                table.write(folder)
                log.info("\n%s", table.markdown())
    except OSError as err:
        raise write_error(err, args.out) from None
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
