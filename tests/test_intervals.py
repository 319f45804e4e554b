"""Intervals and paired tests of the tables: formulas by hand, coverage and level by simulation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from conftest import looked_at
from crossmod.data.pools import draw_pools
from crossmod.data.synthetic import GeneratorSettings
from crossmod.evaluation.intervals import (
    IntervalSettings,
    bootstrap_means,
    bootstrap_weights,
    holm,
    paired_p,
    per_query,
    percentile_interval,
)
from crossmod.evaluation.ranking import TASKS, ranks
from crossmod.reporting import summary
from crossmod.reporting.tables import Evidence, aggregate, build_tables, summary_ranks


def wilson(successes: int, n: int, level: float = 0.99) -> tuple[float, float]:
    z = stats.norm.ppf(0.5 + level / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def test_holm_by_hand():
    # sorted: .005 x 4 = .02, .01 x 3 = .03, .03 x 2 = .06, .04 x 1 = .04 -> max(.06, .04)
    got = holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(got, [0.03, 0.06, 0.06, 0.02])
    assert np.isnan(holm([0.2, np.nan])[1]) and holm([0.2, np.nan])[0] == pytest.approx(0.2)
    assert holm([0.6, 0.7]).tolist() == [1.0, 1.0]  # capped at 1


def test_per_query_values_are_the_metrics():
    rank = np.array([1, 2, 3, 4, 15])
    assert per_query(rank, "top1").tolist() == [1, 0, 0, 0, 0]
    assert per_query(rank, "top3").tolist() == [1, 1, 1, 0, 0]
    assert per_query(rank, "rank").mean() == 5.0
    with pytest.raises(ValueError, match="unknown metric"):
        per_query(rank, "top5")


def test_bootstrap_is_the_mean_over_splits_of_resampled_split_means():
    values = [np.array([0.0, 1.0]), np.array([1.0])]
    weights = [np.array([[2, 0], [1, 1], [0, 2]]), np.array([[1], [1], [1]])]
    # split A resampled means 0, .5, 1; split B always 1 -> (0+1)/2, (.5+1)/2, (1+1)/2
    np.testing.assert_allclose(bootstrap_means(values, weights), [0.5, 0.75, 1.0])
    drawn = bootstrap_weights([4, 7], 50, np.random.default_rng(0))
    assert [w.shape for w in drawn] == [(50, 4), (50, 7)]
    assert all((w.sum(axis=1) == n).all() for w, n in zip(drawn, (4, 7), strict=True))
    low, high = percentile_interval(np.arange(101.0), 0.9)
    assert (low, high) == pytest.approx((5.0, 95.0))


def test_paired_test_by_hand():
    rng = np.random.default_rng(0)
    # One split, differences (1, 1): of the 4 sign patterns, 2 reach |mean| >= 1.
    assert paired_p([np.array([1.0, 1.0])], 4000, rng) == pytest.approx(0.5, abs=0.03)
    assert paired_p([np.zeros(5), np.zeros(3)], 100, rng) == 1.0
    # Ten of ten queries better in each of 3 splits: only the all-positive patterns.
    p = paired_p([np.ones(10)] * 3, 999, rng)
    assert p == pytest.approx(1 / 1000)
    many = paired_p([np.stack([np.ones(10), np.zeros(10)], axis=1)], 999, rng)
    assert many.shape == (2,) and many[1] == 1.0 and many[0] < 0.01


def test_intervals_cover_a_known_mean_at_their_level():
    """Known distribution: per-query hits ~ Bernoulli(0.3), 5 splits of 60 queries."""
    rng = np.random.default_rng(7)
    truth, level, repetitions = 0.3, 0.95, 400
    covered = 0
    for _ in range(repetitions):
        values = [(rng.random(60) < truth).astype(float) for _ in range(5)]
        weights = bootstrap_weights([60] * 5, 1000, rng)
        low, high = percentile_interval(bootstrap_means(values, weights), level)
        covered += low <= truth <= high
    low, high = wilson(covered, repetitions)
    assert low <= level <= high, (covered / repetitions, low, high)


def _null_world_ranks(seed: int) -> dict[str, dict[str, list[np.ndarray]]]:
    """Per-query g2p and p2g ranks of two ridge scorers on a null synthetic set (5 splits).

    With ``style_strength: 0`` nothing links what a person looks at to their answers,
    so both scorers (the same features, two penalties) are at chance and neither is
    better: a paired test of one against the other must reject at its nominal rate.
    """
    settings = GeneratorSettings.from_config(
        kind="coco", n_users=79, n_images=363, n_sets=30, seed=seed, style_strength=0.0
    )
    X, P, U, table = looked_at(settings)
    out: dict[str, dict[str, list[np.ndarray]]] = {"g2p": {}, "p2g": {}}
    for split in range(5):
        rng = np.random.default_rng([seed, split])
        order = rng.permutation(settings.n_users)
        train = np.isin(U, order[: int(0.7 * len(order))])
        test = np.isin(U, order[int(0.8 * len(order)) :])
        Xs = (X - X[train].mean(0)) / (X[train].std(0) + 1e-9)
        Ps = (P - P[train].mean(0)) / (P[train].std(0) + 1e-9)
        pools = draw_pools(table, np.flatnonzero(test), rng)
        for name, penalty in (("a", 1.0), ("b", 100.0)):
            A = Xs[train]
            W = np.linalg.solve(A.T @ A + penalty * np.eye(A.shape[1]), A.T @ Ps[train])
            predicted = Xs @ W  # every annotation's gaze mapped into answer space
            g2p = -((Ps[pools] - predicted[pools[:, 0]][:, None, :]) ** 2).sum(-1)
            p2g = -((predicted[pools] - Ps[pools[:, 0]][:, None, :]) ** 2).sum(-1)
            out["g2p"].setdefault(name, []).append(ranks(g2p))
            out["p2g"].setdefault(name, []).append(ranks(p2g))
    return out


@pytest.mark.slow
def test_paired_test_holds_its_level_on_the_null_synthetic_set():
    """Fraction of p < 0.05 across tasks, metrics and generator seeds is 0.05."""
    p_values = []
    for seed in range(10):
        rng = np.random.default_rng(seed)
        for per_method in _null_world_ranks(seed).values():
            for metric in ("top1", "top3", "rank"):
                differences = [
                    per_query(a, metric) - per_query(b, metric)
                    for a, b in zip(per_method["a"], per_method["b"], strict=True)
                ]
                p_values.append(paired_p(differences, 999, rng))
    rejected = int((np.array(p_values) < 0.05).sum())
    low, high = wilson(rejected, len(p_values), level=0.95)
    assert low <= 0.05 <= high, (rejected, len(p_values), low, high)


def _ranks_frame(seed: int = 0) -> pd.DataFrame:
    """Ranks of base, a much better method, a copy of base and a slightly worse one."""
    rng = np.random.default_rng(seed)
    rows = []
    for setup in ("per-task", "joint"):
        for task in TASKS:
            for split in range(3):
                queries = np.arange(40) + 100 * split
                base = rng.integers(1, 16, size=40)
                methods = {
                    "base": base,
                    "style": base.copy(),
                    "ours": np.maximum(1, base - 6),
                    "veit": np.minimum(15, base + rng.integers(0, 2, size=40)),
                }
                if setup == "per-task" and task in ("t2g", "g2t"):
                    methods["content"] = rng.integers(1, 16, size=40)
                for method, values in methods.items():
                    for query, rank in zip(queries, values, strict=True):
                        rows.append(("d", setup, method, task, split, "any", query, rank))
    columns = ["dataset", "setup", "method", "task", "split", "candidates", "query", "rank"]
    return pd.DataFrame(rows, columns=columns)


def _metrics_from(ranks_frame: pd.DataFrame) -> pd.DataFrame:
    grouped = ranks_frame.groupby(["dataset", "setup", "method", "task", "split"])["rank"]
    rows = []
    for (dataset, setup, method, task, split), r in grouped:
        r = r.to_numpy()
        rows.append(
            (dataset, setup, method, task, split, (r == 1).mean(), (r <= 3).mean(), r.mean(),
             len(r), method)
        )  # fmt: skip
    return pd.DataFrame(
        rows,
        columns=[
            "dataset", "setup", "method", "task", "split",
            "top1", "top3", "rank", "n_queries", "network",
        ],
    )  # fmt: skip


def test_summary_cells_tests_and_marks():
    settings = IntervalSettings.from_config(resamples=500)
    frame = _ranks_frame()
    boots = summary.bootstraps(frame, settings, seed=0)
    cells = summary.summarise(boots, settings, seed=0)
    metrics = _metrics_from(frame)
    merged = cells.merge(
        metrics.groupby(["setup", "method", "task"])[["top1", "top3", "rank"]].mean().reset_index()
        .melt(id_vars=["setup", "method", "task"], var_name="metric", value_name="expected"),
        on=["setup", "method", "task", "metric"],
    )  # fmt: skip
    np.testing.assert_allclose(merged["mean"], merged["expected"])  # the tables' means
    assert (cells["ci_low"] <= cells["mean"]).all() and (cells["mean"] <= cells["ci_high"]).all()
    assert (cells["n_queries"] == 120).all() and (cells["n_splits"] == 3).all()
    by = cells.set_index(["setup", "task", "method", "metric"])
    assert np.isnan(by.loc[("per-task", "t2g", "base", "top3"), "p_vs_baseline"])
    assert by.loc[("per-task", "t2g", "style", "top3"), "p_holm"] == 1.0  # a copy of base
    assert by.loc[("joint", "g2p", "ours", "top3"), "p_holm"] <= 6 / 501  # the smallest p, x 6
    # Holm across the six tasks of a table: never below the raw p, at most 6 times it.
    ours = cells[(cells["method"] == "ours") & (cells["metric"] == "rank")]
    assert (ours["p_holm"] >= ours["p_vs_baseline"]).all()
    assert (ours["p_holm"] <= 6 * ours["p_vs_baseline"] + 1e-12).all()

    sets = {("table1", "per-task"): ("veit", "base", "content", "style", "ours")}
    positions = summary.positions(boots, settings, sets)
    expected = summary_ranks(aggregate(metrics, "per-task", sets[("table1", "per-task")]),
                             sets[("table1", "per-task")])  # fmt: skip
    got = positions.pivot(index="task", columns="method", values="position")
    pd.testing.assert_frame_equal(
        got.loc[list(TASKS), list(expected.columns)], expected, check_names=False
    )
    content = positions[(positions["method"] == "content") & (positions["task"] == "g2p")]
    assert content["position"].iloc[0] == 5.0 and content["ci_low"].iloc[0] == 5.0  # N/A: last

    weights = pd.DataFrame(columns=["dataset", "setup", "task", "split", "b_base", "b_content",
                                    "b_style"])  # fmt: skip
    identity = pd.DataFrame(
        [("d", f, "rbf", "{}", 0.1, 0.02, 10, 0.1, 5) for f in ("text", "gaze", "both")],
        columns=["dataset", "features", "kernel", "params", "accuracy_mean", "accuracy_std",
                 "n_users", "chance", "folds"],
    )  # fmt: skip
    evidence = Evidence(cells, positions, alpha=0.05, level=0.95)
    tables = {t.name: t for t in build_tables(metrics, weights, identity, "d", evidence)}
    top3 = tables["table3_top3"]
    assert top3.cell("t2g", "OURS").endswith("▲") and "[" in top3.cell("t2g", "OURS")
    assert not top3.cell("t2g", "STYLE").endswith(("▲", "▼"))
    assert not top3.cell("t2g", "BASE").endswith(("▲", "▼"))
    assert r"$^{\uparrow}$" in top3.latex() and "▲" in top3.html()
    assert "Holm" in top3.note and "bootstrap" in top3.note
    assert "[" in tables["table1_summary"].cell("t2g", "OURS")
    assert "[" in tables["identity"].cell("text", "accuracy")
    half = stats.t.ppf(0.975, 4) * 0.02 / np.sqrt(4)  # sd over folds with ddof 0
    assert tables["identity"].low.loc["text", "accuracy"] == pytest.approx(0.1 - half)


def test_a_method_missing_queries_is_an_error():
    frame = _ranks_frame()
    frame = frame.drop(frame[(frame["method"] == "veit") & (frame["query"] == 5)].index)
    settings = IntervalSettings.from_config(resamples=100)
    with pytest.raises(ValueError, match="veit do not rank every test query"):
        summary.bootstraps(frame, settings, seed=0)
