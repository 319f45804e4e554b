"""``python -m crossmod.reporting.captions``: DEPER's caption tables, tests and examples.

From every split's generated captions: the tidy ``results/captions.csv`` (dataset,
split, condition in own/mean/other, metric, value: the split's mean, CLS included),
paired bootstrap tests of own vs mean and own vs other on the very same test samples
(``results/captions_tests.csv``; items resampled within splits), and per dataset a
table (mean over splits ± half-width of the 95% t-interval over splits), the tests as
a table, and a few examples: the captions generated for two unseen subjects who
described the same image, beside what each of them wrote.
"""

from __future__ import annotations

import argparse
import html
import json
from pathlib import Path

import numpy as np
import pandas as pd

from crossmod.cli import ensure_parent, setup_logging
from crossmod.evaluation.captions import paired_bootstrap
from crossmod.evaluation.intervals import t_interval
from crossmod.reporting.tables import MARKS, Table

CONDITIONS = ("own", "mean", "other")
COMPARISONS = (("own", "mean"), ("own", "other"))


def load(generated: list[str], metrics: list[str]) -> tuple[pd.DataFrame, list[dict]]:
    frames, reports = [], []
    for frame_path, report_path in zip(generated, metrics, strict=True):
        report = json.loads(Path(report_path).read_text())
        frame = pd.read_parquet(frame_path)
        frames.append(frame.assign(dataset=report["dataset"], split=report["split"]))
        reports.append(report)
    return pd.concat(frames, ignore_index=True), reports


def tidy_rows(items: pd.DataFrame, reports: list[dict]) -> pd.DataFrame:
    metrics = reports[0]["metrics"]
    means = items.groupby(["dataset", "split", "condition"])[metrics].mean().reset_index()
    rows = means.melt(["dataset", "split", "condition"], var_name="metric", value_name="value")
    cls = []
    for report in reports:
        for key, value in report["cls"].items():
            condition, _, metric = key.partition("_CLS_")
            cls.append(
                {
                    "dataset": report["dataset"],
                    "split": report["split"],
                    "condition": condition,
                    "metric": f"CLS {metric}",
                    "value": value,
                }
            )
    return pd.concat([rows, pd.DataFrame(cls)], ignore_index=True)


def test_rows(items: pd.DataFrame, metrics: list[str], seed: int) -> pd.DataFrame:
    rows = []
    for dataset, chosen in items.groupby("dataset"):
        wide = chosen.pivot_table(
            index=["split", "annotation_id"], columns="condition", values=metrics
        )
        blocks = wide.index.get_level_values("split").to_numpy()
        for a, b in COMPARISONS:
            for metric in metrics:
                result = paired_bootstrap(
                    wide[(metric, a)].to_numpy(), wide[(metric, b)].to_numpy(), blocks, seed=seed
                )
                rows.append(
                    {"dataset": dataset, "comparison": f"{a} vs {b}", "metric": metric}
                    | result
                    | {"n_items": len(wide)}
                )
    return pd.DataFrame(rows)


def caption_table(
    tidy: pd.DataFrame, dataset: str, tests: pd.DataFrame | None = None, alpha: float = 0.05
) -> Table:
    """Conditions x metrics: mean over splits [95% t-interval]; own marked against mean.

    The mark on the own row comes from the paired bootstrap of own vs mean on the same
    test samples (``tests``), Holm-corrected across the table's metrics.
    """
    from crossmod.evaluation.intervals import holm

    chosen = tidy[(tidy["dataset"] == dataset) & (tidy["metric"] != "CLS chance")]
    columns = list(dict.fromkeys(chosen["metric"]))
    values = pd.DataFrame(np.nan, index=list(CONDITIONS), columns=columns)
    low, high = values.copy(), values.copy()
    marks = pd.DataFrame("", index=values.index, columns=columns)
    for (condition, metric), group in chosen.groupby(["condition", "metric"]):
        bounds = t_interval(group["value"].to_numpy())
        values.loc[condition, metric], low.loc[condition, metric], high.loc[condition, metric] = (
            bounds
        )
    if tests is not None:
        own = tests[(tests["dataset"] == dataset) & (tests["comparison"] == "own vs mean")]
        own = own[own["metric"].isin(columns)]
        for row, adjusted in zip(own.itertuples(), holm(own["p"].to_numpy()), strict=True):
            if adjusted < alpha:
                marks.loc["own", row.metric] = MARKS["up" if row.diff > 0 else "down"]
    bold = values.eq(values.max()) & values.notna()
    chance = tidy[(tidy["dataset"] == dataset) & (tidy["metric"] == "CLS chance")]["value"]
    note = (
        "Captions generated for unseen subjects' test samples, scored against the subject's "
        "own caption. own: conditioned on the subject's few-shot z_s; mean: on the seen "
        "subjects' mean z_s (no personalisation); other: on another unseen subject's z_s. "
        "CLS: does each annotator's reference pick out the caption generated for them "
        f"(chance {chance.mean():.3f}; an own caption that is one of k tied at the top earns "
        "1/k, its chance under a random tie-break, so captions that do not differ score chance; "
        "the mean condition writes one caption per image and has none). "
        "Mean over splits [95% t-interval over splits]; "
        "▲/▼ on own: better/worse than mean on the same samples (paired bootstrap, Holm "
        f"across the metrics, p < {alpha:g})."
    )
    return Table(
        "captions",
        f"Personalised captions, {dataset}",
        note,
        values,
        None,
        bold,
        low=low,
        high=high,
        marks=marks,
    )


def tests_table(tests: pd.DataFrame, dataset: str) -> Table:
    chosen = tests[tests["dataset"] == dataset]
    values = chosen.pivot(index="comparison", columns="metric", values="diff")
    p = chosen.pivot(index="comparison", columns="metric", values="p")
    bold = (p < 0.05) & values.notna()
    note = (
        "Mean per-sample difference (first condition minus second) on the same test "
        "samples; bold: paired bootstrap p < 0.05 (2,000 resamples within splits, "
        "uncorrected)."
    )
    return Table("caption_tests", f"Paired differences, {dataset}", note, values, None, bold)


def examples(items: pd.DataFrame, dataset: str, n_images: int = 3) -> tuple[str, str]:
    """Markdown and HTML: per image two unseen annotators, what they wrote and got."""
    chosen = items[(items["dataset"] == dataset) & (items["split"] == 0)]
    own = chosen[chosen["condition"] == "own"]
    mean = chosen[chosen["condition"] == "mean"].set_index("annotation_id")["caption"]
    shared = [img for img, g in own.groupby("image") if g["user"].nunique() >= 2][:n_images]
    lines = [f"**Generated captions, {dataset} (split 0, unseen subjects)**", ""]
    rows_html = []
    for image in shared:
        pair = own[own["image"] == image].drop_duplicates("user").head(2)
        lines.append(f"*{image}*")
        for row in pair.itertuples():
            lines.append(f"- {row.user} wrote: {row.reference}")
            lines.append(f"  - generated with {row.user}'s z_s: {row.caption}")
            rows_html.append(
                "<tr>"
                + "".join(
                    f"<td>{html.escape(str(v))}</td>"
                    for v in (image, row.user, row.reference, row.caption, mean[row.annotation_id])
                )
                + "</tr>"
            )
        lines.append(f"- with the seen subjects' mean z_s: {mean[pair.iloc[0]['annotation_id']]}")
        lines.append("")
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "image",
            "subject",
            "their caption",
            "generated (own z_s)",
            "generated (mean z_s)",
        )
    )
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><style>body{font-family:sans-serif}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}</style>"
        f"</head><body><h3>Generated captions, {html.escape(dataset)}</h3>"
        f"<table><tr>{head}</tr>{''.join(rows_html)}</table></body></html>\n"
    )
    return "\n".join(lines), page


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--generated", nargs="+", required=True)
    parser.add_argument("--metrics", nargs="+", required=True)
    parser.add_argument("--seed", type=int, required=True, help="the bootstrap's seed")
    parser.add_argument("--tidy", required=True)
    parser.add_argument("--tests", required=True)
    parser.add_argument("--out", required=True, help="a folder per dataset goes here")
    args = parser.parse_args(argv)
    log = setup_logging()
    items, reports = load(args.generated, args.metrics)
    tidy = tidy_rows(items, reports)
    tidy.to_csv(ensure_parent(args.tidy), index=False)
    tests = test_rows(items, reports[0]["metrics"], args.seed)
    tests.to_csv(ensure_parent(args.tests), index=False)
    for dataset in sorted(items["dataset"].unique()):
        folder = Path(args.out) / dataset
        table = caption_table(tidy, dataset, tests)
        table.write(folder)
        tests_table(tests, dataset).write(folder)
        markdown, page = examples(items, dataset)
        (folder / "examples.md").write_text(markdown + "\n")
        (folder / "examples.html").write_text(page)
        log.info("\n%s\n%s", table.markdown(), markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
