"""``python -m crossmod.evaluation.identity``: does text or gaze tell who made it? (SPEC 6)

Features per annotation: ``text`` (the caption's mean GloVe vector), ``gaze`` (the gaze
statistics: fraction revealed, max and min distance between bubble centres) and
``both``. Labels: the annotator (``mturker_id``). Five-fold stratified cross-validation
(scikit-learn's ``GridSearchCV`` with ``StratifiedKFold``, shuffled with the seed) of a
linear SVM (``LinearSVC``, C in ``linear_c``) and an RBF SVM (``SVC``, a 3 x 3 grid of
gamma and C), features standardised inside each fold. The best mean accuracy per
feature set is reported with its spread over folds, beside chance = 1 / number of users
(and the majority-class rate, which is higher when users did different numbers of tasks).
"""

from __future__ import annotations

import argparse
import json
import logging
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC

from crossmod.cli import ensure_parent, setup_logging
from crossmod.data.arrays import read_table
from crossmod.settings import Settings

log = logging.getLogger("crossmod.evaluation.identity")
GAZE_STATISTICS = ("revealed", "max_distance", "min_distance")


@dataclass(frozen=True)
class IdentitySettings(Settings):
    """The ``identity`` section (defaults and meanings: the config schema)."""

    SECTION = "identity"
    WORKFLOW_KEYS = ("threads",)

    folds: int
    linear_c: tuple[float, ...]
    rbf_c: tuple[float, ...]
    rbf_gamma: tuple[float, ...]  # multiples of 1 / n_features


def feature_sets(meta: pd.DataFrame, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    gaze = meta[list(GAZE_STATISTICS)].to_numpy(dtype=np.float64)
    text = np.asarray(arrays["text"], dtype=np.float64)
    return {"text": text, "gaze": gaze, "both": np.hstack([text, gaze])}


def classify(
    features: np.ndarray, labels: np.ndarray, settings: IdentitySettings, seed: int, threads: int
) -> list[dict]:
    """Cross-validated accuracy of every grid point of both kernels (folds shuffled by seed)."""
    folds = StratifiedKFold(settings.folds, shuffle=True, random_state=seed)
    n_features = features.shape[1]
    searches = {
        "linear": (
            make_pipeline(StandardScaler(), LinearSVC(dual="auto", max_iter=5000)),
            {"linearsvc__C": list(settings.linear_c)},
        ),
        "rbf": (
            make_pipeline(StandardScaler(), SVC(kernel="rbf")),
            {
                "svc__C": list(settings.rbf_c),
                "svc__gamma": [g / n_features for g in settings.rbf_gamma],
            },
        ),
    }
    rows = []
    for kernel, (pipeline, grid) in searches.items():
        search = GridSearchCV(pipeline, grid, cv=folds, n_jobs=threads)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            search.fit(features, labels)
        cv = search.cv_results_
        for i, params in enumerate(cv["params"]):
            rows.append(
                {
                    "kernel": kernel,
                    "params": json.dumps({k.split("__")[1]: v for k, v in params.items()}),
                    "accuracy_mean": float(cv["mean_test_score"][i]),
                    "accuracy_std": float(cv["std_test_score"][i]),
                }
            )
    return rows


def identity_table(
    meta: pd.DataFrame,
    arrays: dict[str, np.ndarray],
    settings: IdentitySettings,
    seed: int,
    threads: int = 1,
) -> pd.DataFrame:
    labels = meta["user"].astype(str).to_numpy()
    _, counts = np.unique(labels, return_counts=True)
    rows = []
    for name, features in feature_sets(meta, arrays).items():
        for row in classify(features, labels, settings, seed, threads):
            rows.append({"features": name, **row})
    table = pd.DataFrame(rows)
    table["n_users"] = len(counts)
    table["chance"] = 1 / len(counts)
    table["majority"] = counts.max() / counts.sum()
    table["folds"] = settings.folds  # the tables' t-interval over folds needs their number
    return table


def best_per_feature_set(table: pd.DataFrame) -> pd.DataFrame:
    ordered = table.sort_values(["features", "accuracy_mean"], ascending=[True, False])
    return ordered.groupby("features", sort=False).head(1).reset_index(drop=True)


def main(argv: list[str] | None = None) -> int:
    from pathlib import Path

    from crossmod.tracking.store import code_commit, log_run

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--features", required=True)
    parser.add_argument("--experiments", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out", required=True, help="identity.csv (every grid point)")
    parser.add_argument("--settings", required=True, help="the identity section (JSON)")
    parser.add_argument("--seed", type=int, required=True, help="the config's seed")
    parser.add_argument("--threads", type=int, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    settings = IdentitySettings.from_json(args.settings)
    meta, arrays = read_table(args.features)
    table = identity_table(meta, arrays, settings, args.seed, args.threads)
    table.insert(0, "dataset", args.dataset)
    table.to_csv(ensure_parent(args.out), index=False)
    best = best_per_feature_set(table)
    for _, row in best.iterrows():
        log.info(
            "%s: %s %s accuracy %.3f +- %.3f (chance %.3f)",
            row["features"],
            row["kernel"],
            row["params"],
            row["accuracy_mean"],
            row["accuracy_std"],
            row["chance"],
        )
    experiments = json.loads(Path(args.experiments).read_text())
    log_run(
        experiments["tracking_uri"],  # resolved once, by the experiments job
        experiments["experiments"][args.dataset],
        f"{args.dataset}/identity",
        params={
            "folds": settings.folds,
            "seed": args.seed,
            "linear_c": settings.linear_c,
            "rbf_c": settings.rbf_c,
            "rbf_gamma_times_inverse_features": settings.rbf_gamma,
        },
        tags={"dataset": args.dataset, "method": "identity", "git_commit": code_commit()},
        series={},
        final={f"{r.features}_accuracy": r.accuracy_mean for r in best.itertuples()}
        | {"chance": float(best["chance"].iloc[0])},
        artifacts=[Path(args.out)],
        tables={"identity.json": table},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
