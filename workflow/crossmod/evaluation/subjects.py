"""``python -m crossmod.evaluation.subjects``: the handcrafted-feature baseline of DEPER.

The identity classifier's features (mean GloVe of the caption + the gaze statistics),
standardised with the split's training users, compared as DEPER's embeddings are
(centred on their image with ``deper.centre: image``) and identified few-shot by the
same nearest-centroid rule on the same draws (``crossmod.evaluation.fewshot``):
how far do features that need no training go at telling unseen people apart?
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd

from crossmod.cli import ensure_parent, setup_logging
from crossmod.data.arrays import read_table
from crossmod.evaluation.fewshot import identification, protocol_embeddings
from crossmod.evaluation.identity import feature_sets
from crossmod.methods.deper import DeperSettings


def handcrafted_rows(
    meta: pd.DataFrame, features: np.ndarray, users: pd.DataFrame, settings: DeperSettings
) -> list[dict]:
    rows = []
    for split, placed in users.groupby("split"):
        part = meta["user"].map(dict(zip(placed["user"], placed["part"], strict=True)))
        if part.isna().any():
            missing = sorted(meta.loc[part.isna(), "user"].unique())[:5]
            raise ValueError(f"split {split} does not place user(s) {missing}")
        train = (part == "train").to_numpy()
        mean, scale = features[train].mean(axis=0), features[train].std(axis=0)
        scaled = (features - mean) / np.where(scale > 0, scale, 1.0)
        compared = protocol_embeddings(scaled, meta["image_name"].to_numpy(str), settings.centre)
        test = (part == "test").to_numpy()
        labels = meta["user"].astype(str).to_numpy()[test]
        for row in identification(
            compared[test],
            labels,
            np.unique(labels),
            tuple(settings.shots),
            settings.draws,
            settings.seed,
            int(split),
        ):
            rows.append({"split": int(split), **row})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--features", required=True, help="features/annotations.parquet")
    parser.add_argument("--splits", required=True, help="splits/users.csv")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--settings", required=True, help="the deper section (JSON)")
    parser.add_argument("--out", required=True, help="handcrafted.json to write")
    args = parser.parse_args(argv)
    log = setup_logging()
    meta, arrays = read_table(args.features)
    features = feature_sets(meta, arrays)["both"]
    settings = DeperSettings.from_json(args.settings)
    try:
        rows = handcrafted_rows(meta, features, pd.read_csv(args.splits), settings)
    except ValueError as err:
        raise SystemExit(f"{args.splits}: {err}") from None
    report = {
        "dataset": args.dataset,
        "variant": "handcrafted",
        "centre": settings.centre,
        "identification": rows,
    }
    ensure_parent(args.out).write_text(json.dumps(report, indent=2) + "\n")
    log.info("%s", pd.DataFrame(rows).groupby("shots")[["top1", "top5"]].mean())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
