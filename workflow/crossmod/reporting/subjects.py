"""``python -m crossmod.reporting.subjects``: DEPER's identification tables and z_s plot.

From every encoder's metrics.json (DEPER, its baselines, or its ablations) and the
handcrafted baseline: the tidy ``results/subjects.csv`` (dataset, split, method, shots,
top1, top5, chance, n_queries: per split, averaged over the draws), a table per
dataset (rows: methods; columns: top-1 and top-5 per S; mean over splits with the 95%
Student-t interval over splits, marked where a paired test over splits finds a method
different from DEPER; chance as its own row),
the BFI probe per trait, DEPER's z_s by part (``parts``: the streams alone and the
summary path alone beside the whole, when ``deper.summary_path`` is on), and a PCA
map of z_s coloured by subject (seen and unseen panels, as the paper's Figure 4), all
under one folder with a subfolder per dataset.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from crossmod.cli import ensure_parent, setup_logging
from crossmod.evaluation.intervals import t_interval
from crossmod.reporting.tables import MARKS, Table

LABELS = {"deper": "DEPER", "handcrafted": "handcrafted"}
"""Method names in the tidy file and the tables; other encoders keep their config name."""


def method_name(variant: str) -> str:
    return LABELS.get(variant, variant)


def identification_rows(reports: list[dict]) -> pd.DataFrame:
    rows = []
    for report in reports:
        for row in report["identification"]:
            rows.append(
                {
                    "dataset": report["dataset"],
                    "split": row.get("split", report.get("split")),
                    "method": method_name(report["variant"]),
                    "shots": row["shots"],
                    "top1": row["top1"],
                    "top5": row["top5"],
                    "chance": row["chance_top1"],
                    "chance_top5": row["chance_top5"],
                    "n_queries": row["n_queries"],
                }
            )
    return pd.DataFrame(rows)


PARTS = {"streams": "DEPER, streams alone", "summary": "DEPER, summary path alone"}
"""Row names of the parts table: z_s's two addends (``deper.summary_path``) scored alone."""


def part_rows(reports: list[dict]) -> pd.DataFrame:
    """DEPER's identification beside that of each addend of its z_s, on the same draws.

    Empty when no DEPER report has parts (``deper.summary_path`` false, or older runs).
    """
    deper = [r for r in reports if r["variant"] == "deper" and r.get("parts")]
    whole = identification_rows(deper)
    alone = [
        {**report, "variant": PARTS[part], "identification": rows}
        for report in deper
        for part, rows in report["parts"].items()
    ]
    return pd.concat([whole, identification_rows(alone)], ignore_index=True) if deper else whole


def probe_rows(reports: list[dict]) -> pd.DataFrame:
    rows = []
    for report in reports:
        for key, value in report.get("probe", {}).items():
            rows.append(
                {
                    "dataset": report["dataset"],
                    "split": report["split"],
                    "method": method_name(report["variant"]),
                    "trait": key.removeprefix("r2_"),
                    "r2": value,
                }
            )
    return pd.DataFrame(rows)


PROTOCOLS = {
    "image": "embeddings L2-normalised and centred on their image, i.e. minus the mean "
    "over every annotation of that image, so people are compared on the same images",
    "none": "raw embeddings (not centred on their image: recognising a subject's image "
    "set counts as recognising the subject)",
}
"""How the few-shot rule compared the embeddings (``deper.centre``), for table notes."""


def protocol_of(reports: list[dict]) -> str:
    """The one ``centre`` every report was scored with; reports written before the
    setting existed were scored on raw embeddings. Mixed protocols cannot share a table."""
    found = {report.get("centre", "none") for report in reports}
    if len(found) != 1:
        raise SystemExit(
            f"identification was scored with different deper.centre settings {sorted(found)}: "
            "rerun the encoders and the handcrafted baseline with one setting"
        )
    return found.pop()


TITLES = {"deper_ablations": "DEPER ablations", "parts": "DEPER's z_s by part"}


def identification_table(
    rows: pd.DataFrame, dataset: str, name: str, centre: str = "image", alpha: float = 0.05
) -> Table:
    """Methods x (S, top-k): mean over splits [95% t-interval], marked against DEPER.

    Every method is scored on the same support/query draws of the same splits, so a
    method is compared with DEPER by a paired t-test over the per-split means (Holm
    across the rows of a column).
    """
    from scipy import stats

    from crossmod.evaluation.intervals import holm

    chosen = rows[rows["dataset"] == dataset]
    shots = sorted(chosen["shots"].unique())
    methods = list(dict.fromkeys(chosen["method"]))
    columns = [f"S={s} top-{k}" for s in shots for k in (1, 5)]
    values = pd.DataFrame(np.nan, index=[*methods, "chance"], columns=columns)
    low, high = values.copy(), values.copy()
    marks = pd.DataFrame("", index=values.index, columns=columns)
    for s in shots:
        at = chosen[chosen["shots"] == s]
        for k in (1, 5):
            column = f"S={s} top-{k}"
            per_split = at.groupby(["method", "split"])[f"top{k}"].mean().unstack("split")
            for method in methods:
                bounds = t_interval(per_split.loc[method].dropna().to_numpy())
                values.loc[method, column], low.loc[method, column], high.loc[method, column] = (
                    bounds
                )
            values.loc["chance", column] = at["chance" if k == 1 else "chance_top5"].mean()
            if "DEPER" not in per_split.index or per_split.shape[1] < 2:
                continue
            others = [m for m in methods if m != "DEPER"]
            p = [
                stats.ttest_rel(per_split.loc[m], per_split.loc["DEPER"]).pvalue
                if not np.allclose(per_split.loc[m], per_split.loc["DEPER"])
                else 1.0
                for m in others
            ]
            for method, adjusted in zip(others, holm(p), strict=True):
                if adjusted < alpha:
                    better = values.loc[method, column] > values.loc["DEPER", column]
                    marks.loc[method, column] = MARKS["up" if better else "down"]
    bold = values.eq(values.drop(index="chance").max()) & values.notna()
    bold.loc["chance"] = False
    n_splits = chosen["split"].nunique()
    draws = "draws of S support samples per unseen subject"
    note = (
        f"Few-shot identification of unseen subjects (nearest centroid, cosine; "
        f"{PROTOCOLS[centre]}): mean over "
        f"{n_splits} user splits [95% t-interval over splits]; each split averages the same "
        f"{draws} for every method. ▲/▼: better/worse than DEPER (paired t-test over the "
        f"splits' means, Holm across the column's rows, p < {alpha:g}). Best per column in bold."
    )
    title = TITLES.get(name, "Identification of unseen subjects")
    return Table(
        name, f"{title}, {dataset}", note, values, None, bold, low=low, high=high, marks=marks
    )


def probe_table(rows: pd.DataFrame, dataset: str) -> Table:
    chosen = rows[rows["dataset"] == dataset]
    grouped = chosen.groupby(["method", "trait"])["r2"]
    values = grouped.mean().unstack("trait")
    spread = grouped.std(ddof=1).unstack("trait")
    bold = pd.DataFrame(False, index=values.index, columns=values.columns)
    note = (
        "R^2 of a ridge probe from a subject's mean z_s to each BFI trait, fitted on seen "
        "subjects and scored on unseen ones (0 = predicting their mean); mean ± standard "
        "deviation over splits."
    )
    return Table("probe", f"BFI traits from z_s, {dataset}", note, values, spread, bold)


def subject_map(path: str, dataset: str, out: str, per_panel: int = 10) -> None:
    """PCA of split 0's DEPER z_s: seen (training) and unseen (test) subjects."""
    frame = pd.read_parquet(path)
    z = np.stack(frame["z"].to_numpy())
    z = z / np.linalg.norm(z, axis=1, keepdims=True).clip(1e-12)
    centred = z - z.mean(axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ axes[:2].T
    figure, panels = plt.subplots(1, 2, figsize=(10, 4.6), constrained_layout=True)
    for panel, (part, title) in zip(panels, (("train", "seen"), ("test", "unseen")), strict=True):
        users = sorted(frame.loc[frame["part"] == part, "user"].unique())[:per_panel]
        colours = plt.get_cmap("tab10")
        for i, user in enumerate(users):
            rows = (frame["user"] == user).to_numpy()
            panel.scatter(*xy[rows].T, s=14, color=colours(i % 10), label=user, alpha=0.8)
        panel.set_title(f"{title} subjects ({len(users)} shown)")
        panel.set_xlabel("PC 1")
        panel.set_ylabel("PC 2")
        panel.legend(fontsize=7, ncol=2, loc="best")
    figure.suptitle(f"DEPER subject embeddings z_s, {dataset}, split 0 (PCA of all samples)")
    figure.savefig(ensure_parent(out), dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics", nargs="+", required=True, help="encoders' metrics.json")
    parser.add_argument("--handcrafted", nargs="*", default=[], help="handcrafted.json")
    parser.add_argument("--embeddings", nargs="*", default=[], help="split 0 DEPER z_s")
    parser.add_argument("--tidy", required=True, help="the tidy CSV across datasets")
    parser.add_argument("--probe", help="the BFI probe's tidy CSV")
    parser.add_argument("--out", required=True, help="a folder per dataset goes here")
    args = parser.parse_args(argv)
    log = setup_logging()
    reports = [json.loads(Path(p).read_text()) for p in args.metrics]
    handcrafted = [json.loads(Path(p).read_text()) for p in args.handcrafted]
    rows = identification_rows(reports + handcrafted)
    centre = protocol_of(reports + handcrafted)
    rows.to_csv(ensure_parent(args.tidy), index=False)
    probes = probe_rows(reports)
    if args.probe:
        probes.to_csv(ensure_parent(args.probe), index=False)
    name = "identification" if handcrafted else "deper_ablations"
    for dataset in sorted(rows["dataset"].unique()):
        folder = Path(args.out) / dataset
        table = identification_table(rows, dataset, name, centre)
        table.write(folder)
        log.info("\n%s", table.markdown())
        if args.probe:
            probe_table(probes, dataset).write(folder)
        parts = part_rows([r for r in reports if r["dataset"] == dataset])
        if handcrafted and not parts.empty:
            parts_table = identification_table(parts, dataset, "parts", centre)
            parts_table.write(folder)
            log.info("\n%s", parts_table.markdown())
    for path in args.embeddings:  # results/{dataset}/split0/subjects/deper/subjects.parquet
        dataset = Path(path).parts[-5]
        subject_map(path, dataset, str(Path(args.out) / dataset / "z_map.png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
