"""``python -m crossmod.reporting.tables``: the paper's tables (SPEC 7) for one dataset.

Every table is written as CSV (tidy: one row per task and method, mean and interval),
Markdown, LaTeX and HTML. Values are means over the user splits with a 95% interval:
for retrieval metrics and summary ranks the stratified bootstrap over test queries of
``metrics_summary.csv`` / ``summary_positions.csv`` (``crossmod.reporting.summary``),
for OURS's weights and the identity classifier a t-interval over splits or folds. A
retrieval cell is marked ▲ (better) or ▼ (worse) where it differs from BASE (joint
setup: JOINT-BASE) on the same queries after Holm correction across the table's tasks.
The best per task is in bold (ties: all of them); chance levels are stated under each
table. Without a summary (ad-hoc use of :func:`build_tables`) cells show mean ± sd.

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
from crossmod.data.pools import POOL_SIZE
from crossmod.evaluation.intervals import IntervalSettings, t_interval
from crossmod.evaluation.ranking import TASKS  # the paper's row order
from crossmod.methods.ours import PERSONALITY_TASKS
from crossmod.methods.registry import registry

HIGHER_IS_BETTER = {"top1": True, "top3": True, "rank": False}
CHANCE = "Chance on a 15-answer pool: top-1 = 1/15 = 0.067, top-3 = 0.200, mean rank = 8."
MARKS = {"up": "▲", "down": "▼"}
LATEX_MARKS = {"▲": r"$^{\uparrow}$", "▼": r"$^{\downarrow}$"}
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
    "protocols_top3",
)


@dataclass
class Table:
    name: str
    title: str
    note: str
    values: pd.DataFrame  # rows x columns of numbers (NaN: not applicable)
    spread: pd.DataFrame | None  # same shape (± sd), or None
    bold: pd.DataFrame  # same shape, booleans
    digits: int = 3
    low: pd.DataFrame | None = None  # same shape: the interval, shown instead of the spread
    high: pd.DataFrame | None = None
    marks: pd.DataFrame | None = None  # same shape: "", ▲ or ▼ (differs from the baseline)

    def _at(self, frame: pd.DataFrame | None, row: str, column: str) -> object:
        return None if frame is None else frame.loc[row, column]

    def cell(self, row: str, column: str) -> str:
        value = self.values.loc[row, column]
        if pd.isna(value):
            return "N/A"
        d = self.digits
        text = f"{value:.{d}f}"
        low, high = self._at(self.low, row, column), self._at(self.high, row, column)
        spread = self._at(self.spread, row, column)
        if low is not None and pd.notna(low):
            text += f" [{low:.{d}f}, {high:.{d}f}]"
        elif spread is not None and pd.notna(spread):
            text += f" ± {spread:.{d}f}"
        mark = self._at(self.marks, row, column)
        return f"{text} {mark}" if mark else text

    def tidy(self) -> pd.DataFrame:
        rows = []
        for row in self.values.index:
            for column in self.values.columns:
                rows.append(
                    {
                        "row": row,
                        "column": column,
                        "mean": self.values.loc[row, column],
                        "std": self._at(self.spread, row, column),
                        "ci_low": self._at(self.low, row, column),
                        "ci_high": self._at(self.high, row, column),
                        "mark": self._at(self.marks, row, column) or "",
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
        def escape(text: object) -> str:
            text = str(text).replace("_", r"\_").replace("±", r"$\pm$")
            for mark, latex in LATEX_MARKS.items():
                text = text.replace(f" {mark}", latex).replace(mark, latex)
            return text

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


def _labels(frame: pd.DataFrame | None, prefix: str = "") -> pd.DataFrame | None:
    if frame is None:
        return None
    labels = registry().labels()
    return frame.rename(columns={m: prefix + labels.get(m, m) for m in frame.columns})


@dataclass(frozen=True)
class Evidence:
    """The summary job's intervals and tests for one dataset (None: plain mean ± sd)."""

    cells: pd.DataFrame  # metrics_summary.csv rows of the dataset
    positions: pd.DataFrame  # summary_positions.csv rows of the dataset
    alpha: float
    level: float

    def frames(
        self, setup: str, metric: str, methods: tuple[str, ...]
    ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """Interval bounds and marks (task x method) of one setup and metric."""
        chosen = self.cells[(self.cells["setup"] == setup) & (self.cells["metric"] == metric)]
        low, high = _grid(chosen, "ci_low", methods), _grid(chosen, "ci_high", methods)
        means, p = _grid(chosen, "mean", methods), _grid(chosen, "p_holm", methods)
        baseline = means["base"] if "base" in means else pd.Series(np.nan, index=means.index)
        better = (
            means.gt(baseline, axis=0) if HIGHER_IS_BETTER[metric] else means.lt(baseline, axis=0)
        )
        marks = pd.DataFrame("", index=means.index, columns=means.columns)
        significant = p < self.alpha
        marks[significant & better] = MARKS["up"]
        marks[significant & ~better] = MARKS["down"]
        return low, high, marks

    def note(self, n_splits: int) -> str:
        return (
            f"Mean over {n_splits} user splits [{self.level:.0%} bootstrap interval over the "
            f"test queries, stratified by split]; ▲/▼: better/worse than BASE (joint setup: "
            f"JOINT-BASE) on the same queries, paired permutation test, Holm-corrected across "
            f"the table's tasks, p < {self.alpha:g}; best per task in bold."
        )


def metric_table(
    agg: pd.DataFrame,
    metric: str,
    methods: tuple[str, ...],
    name: str,
    title: str,
    note: str,
    evidence: Evidence | None = None,
    setup: str = "per-task",
) -> Table:
    values = _grid(agg, metric, methods)
    spread = _grid(agg, f"{metric}_std", methods)
    bold = best_mask(values, HIGHER_IS_BETTER[metric])
    low = high = marks = None
    if evidence is not None:
        low, high, marks = evidence.frames(setup, metric, methods)
        spread = None
    return Table(
        name,
        title,
        note,
        _labels(values),
        _labels(spread),
        _labels(bold),
        low=_labels(low),
        high=_labels(high),
        marks=_labels(marks),
    )


def summary_table(
    agg: pd.DataFrame,
    methods: tuple[str, ...],
    name: str,
    title: str,
    evidence: Evidence | None = None,
    setup: str = "per-task",
) -> Table:
    ranks = summary_ranks(agg, methods)
    note = (
        "Each cell: the method's position among the columns on top-1, top-3 and mean rank "
        "(1 = best), averaged over the three; N/A ranks last. Lower is better."
    )
    low = high = None
    if evidence is not None:
        table = name.split("_")[0]
        chosen = evidence.positions[
            (evidence.positions["table"] == table) & (evidence.positions["setup"] == setup)
        ]
        low, high = _grid(chosen, "ci_low", methods), _grid(chosen, "ci_high", methods)
        note += (
            f" [{evidence.level:.0%} interval of the position over the same bootstrap "
            "resamples of the test queries as the metric tables.]"
        )
    return Table(
        name,
        title,
        note,
        _labels(ranks),
        None,
        _labels(best_mask(ranks, False)),
        2,
        low=_labels(low),
        high=_labels(high),
    )


def build_tables(
    metrics: pd.DataFrame,
    weights: pd.DataFrame,
    identity: pd.DataFrame,
    dataset: str,
    evidence: Evidence | None = None,
) -> list[Table]:
    metrics = metrics[metrics["dataset"] == dataset]
    n_splits = metrics["split"].nunique()
    spread_note = (
        evidence.note(n_splits)
        if evidence is not None
        else f"Mean ± standard deviation over {n_splits} user splits; best per task in bold."
    )
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
            evidence,
            "per-task",
        ),
        metric_table(
            per_task,
            "top3",
            per_task_columns,
            "table3_top3",
            f"Table 3: top-3 accuracy, {dataset}",
            note,
            evidence,
            "per-task",
        ),
        summary_table(
            joint,
            methods.columns("joint", paper_summary=True),
            "table5_joint_summary",
            f"Table 5: summary ranks, joint setup, {dataset}",
            evidence,
            "joint",
        ),
        metric_table(
            joint,
            "top3",
            joint_columns,
            "table6_joint_top3",
            f"Table 6: top-3 accuracy, joint setup, {dataset}",
            note,
            evidence,
            "joint",
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
                evidence,
                "per-task",
            ),
            summary_table(
                joint,
                joint_columns,
                "table5x_joint_summary",
                f"Table 5x: summary ranks with every method, joint setup, {dataset}",
                evidence,
                "joint",
            ),
        ]
    tables.append(style_table(per_task, joint, dataset, note, evidence))
    tables.append(weights_table(weights[weights["dataset"] == dataset], dataset, n_splits))
    tables.append(
        metric_table(
            per_task,
            "top1",
            per_task_columns,
            "tableS1_top1",
            f"Table S1: top-1 accuracy, {dataset}",
            note,
            evidence,
            "per-task",
        )
    )
    tables.append(
        metric_table(
            per_task,
            "rank",
            per_task_columns,
            "tableS2_rank",
            f"Table S2: mean rank (lower is better), {dataset}",
            note,
            evidence,
            "per-task",
        )
    )
    tables.append(identity_table(identity[identity["dataset"] == dataset], dataset))
    return tables


def style_table(
    per_task: pd.DataFrame,
    joint: pd.DataFrame,
    dataset: str,
    note: str,
    evidence: Evidence | None,
) -> Table:
    """Table 7: STYLE trained per task beside STYLE trained jointly, top-3."""
    label = {"style": "STYLE per-task", "joint_style": "STYLE joint"}
    style = pd.concat(
        [
            per_task[per_task["method"] == "style"].assign(method="style"),
            joint[joint["method"] == "style"].assign(method="joint_style"),
        ]
    )
    values = _grid(style, "top3", ("style", "joint_style")).rename(columns=label)
    spread = _grid(style, "top3_std", ("style", "joint_style")).rename(columns=label)
    low = high = marks = None
    if evidence is not None:
        spread = None
        parts = [evidence.frames(setup, "top3", ("style",)) for setup in ("per-task", "joint")]
        low, high, marks = _style_frames(parts, list(label.values()))
    return Table(
        "table7_style_vs_joint",
        f"Table 7: STYLE per-task vs joint, top-3, {dataset}",
        note,
        values,
        spread,
        best_mask(values, True),
        low=low,
        high=high,
        marks=marks,
    )


def _style_frames(parts: list[tuple], columns: list[str]) -> tuple[pd.DataFrame, ...]:
    """Per-task and joint STYLE frames (low, high, marks) side by side."""
    return tuple(
        pd.concat([parts[0][i], parts[1][i]], axis=1).set_axis(columns, axis=1) for i in range(3)
    )


def weights_table(weights: pd.DataFrame, dataset: str, n_splits: int) -> Table:
    columns = []
    for setup in ("per-task", "joint"):
        for part in ("style", "base", "content"):
            columns.append((setup, part))
    values = pd.DataFrame(np.nan, index=list(TASKS), columns=[f"{s} b_{p}" for s, p in columns])
    low, high = values.copy(), values.copy()
    for (setup, part), column in zip(columns, values.columns, strict=True):
        chosen = weights[weights["setup"] == setup]
        for task, group in chosen.groupby("task"):
            bounds = t_interval(group[f"b_{part}"].to_numpy())
            values.loc[task, column], low.loc[task, column], high.loc[task, column] = bounds
    for task in PERSONALITY_TASKS:  # no content embedding for personality
        values.loc[task, [c for c in values.columns if c.endswith("b_content")]] = np.nan
    bold = pd.DataFrame(False, index=values.index, columns=values.columns)
    note = (
        f"Mean [95% t-interval] over {n_splits} splits of the weights OURS chose on "
        "validation (grid 0, .25, .5, .75, 1). N/A: personality has no content embedding."
    )
    return Table(
        "table8_weights",
        f"Table 8: selected weights, {dataset}",
        note,
        values,
        None,
        bold,
        2,
        low=low,
        high=high,
    )


def identity_table(identity: pd.DataFrame, dataset: str) -> Table:
    from scipy import stats

    rows = ["text", "gaze", "both"]
    values = pd.DataFrame(np.nan, index=rows, columns=["accuracy", "chance"])
    low, high = values.copy(), values.copy()
    best_kernel = {}
    for features, group in identity.groupby("features"):
        top = group.sort_values("accuracy_mean", ascending=False).iloc[0]
        values.loc[features] = [top["accuracy_mean"], top["chance"]]
        folds = int(top["folds"])
        # scikit-learn's spread over folds is the population sd (ddof 0): the t-interval
        # of the mean over k folds is t * sd0 / sqrt(k - 1).
        half = stats.t.ppf(0.975, folds - 1) * top["accuracy_std"] / np.sqrt(folds - 1)
        low.loc[features, "accuracy"] = top["accuracy_mean"] - half
        high.loc[features, "accuracy"] = top["accuracy_mean"] + half
        best_kernel[features] = f"{features}: {top['kernel']} {top['params']}"
    bold = pd.DataFrame(False, index=values.index, columns=values.columns)
    bold["accuracy"] = values["accuracy"].eq(values["accuracy"].max()) & values["accuracy"].notna()
    note = (
        "Best cross-validated accuracy of a linear or RBF SVM identifying the annotator "
        "[95% t-interval over the folds]; chance = 1 / number of users. Chosen: "
        + "; ".join(best_kernel.values())
    )
    return Table(
        "identity",
        f"Identity classifier, {dataset}",
        note,
        values,
        None,
        bold,
        low=low,
        high=high,
    )


def protocol_table(protocols: pd.DataFrame, dataset: str, fallbacks: tuple[int, int]) -> Table:
    """Top-3 of every method (per-task setup) under each pool protocol, with intervals.

    ``protocols`` holds protocols_summary.csv rows of the dataset; ``fallbacks`` is
    (candidate slots of the same_part test pools drawn from another part, all slots).
    """
    chosen = protocols[(protocols["setup"] == "per-task") & (protocols["metric"] == "top3")]
    methods = tuple(m for m in registry().columns("per-task") if m in set(chosen["method"]))
    protocol_names = sorted(chosen["candidates"].unique())
    rows = [f"{task} {protocol}" for task in TASKS for protocol in protocol_names]
    frames = {
        c: pd.DataFrame(np.nan, index=rows, columns=list(methods)) for c in ("mean", "lo", "hi")
    }
    for r in chosen.itertuples():
        row = f"{r.task} {r.candidates}"
        for name, column in (("mean", "mean"), ("lo", "ci_low"), ("hi", "ci_high")):
            frames[name].loc[row, r.method] = getattr(r, column)
    bold = pd.DataFrame(False, index=rows, columns=list(methods))
    wide = chosen.pivot_table(index=["task", "method"], columns="candidates", values="mean")
    sentence = ""
    if {"any", "same_part"} <= set(wide.columns):
        change = (wide["same_part"] - wide["any"]).dropna()
        moved, total = fallbacks
        sentence = (
            f"Drawing every candidate from the query's own part changes top-3 by "
            f"{change.mean():+.3f} on average over methods and tasks (from {change.min():+.3f} "
            f"to {change.max():+.3f}); {moved} of {total} candidate slots "
            f"({moved / max(total, 1):.1%}) had to fall back to any part. "
        )
    note = (
        sentence + "any: candidates from any part of the split (SPEC 5; training users' samples "
        "among the negatives); same_part: only from the query's part (test users). Same "
        "trained networks and OURS weights, test pools drawn under each protocol; mean over "
        "splits [95% bootstrap interval over the test queries]. " + CHANCE
    )
    return Table(
        "protocols_top3",
        f"Pool protocol: top-3 with candidates from any part vs the query's part, {dataset}",
        note,
        _labels(frames["mean"]),
        None,
        _labels(bold),
        low=_labels(frames["lo"]),
        high=_labels(frames["hi"]),
    )


def fallback_count(pools: pd.DataFrame) -> tuple[int, int]:
    """(slots that fell back to another part, all candidate slots) of the same_part test pools."""
    chosen = pools[(pools["part"] == "test") & (pools["candidates"] == "same_part")]
    return int(chosen["fallbacks"].sum()), int(len(chosen) * (POOL_SIZE - 1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics", required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--identity", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--summary", required=True, help="metrics_summary.csv")
    parser.add_argument("--positions", required=True, help="summary_positions.csv")
    parser.add_argument("--protocols", required=True, help="protocols_summary.csv")
    parser.add_argument("--pools", required=True, help="the dataset's pools.parquet")
    parser.add_argument("--settings", required=True, help="the intervals section (JSON)")
    parser.add_argument("--out", required=True, help="folder for the tables")
    args = parser.parse_args(argv)
    log = setup_logging()
    settings = IntervalSettings.from_json(args.settings)
    summary, positions = pd.read_csv(args.summary), pd.read_csv(args.positions)
    evidence = Evidence(
        summary[summary["dataset"] == args.dataset],
        positions[positions["dataset"] == args.dataset],
        settings.alpha,
        settings.level,
    )
    tables = build_tables(
        pd.read_csv(args.metrics),
        pd.read_csv(args.weights),
        pd.read_csv(args.identity),
        args.dataset,
        evidence,
    )
    protocols = pd.read_csv(args.protocols)
    fallbacks = fallback_count(pd.read_parquet(args.pools))
    tables.append(
        protocol_table(protocols[protocols["dataset"] == args.dataset], args.dataset, fallbacks)
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
