"""Few-shot identification, the t-interval and the BFI probe, against hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from crossmod.evaluation.fewshot import (
    Draw,
    draws_for,
    identification,
    identify,
    ridge_probe,
    t_interval,
    true_subject_rank,
)
from crossmod.features.trajectories import estimate_radius, trajectory_weights


def test_rank_counts_ties_against_the_true_subject():
    similarities = np.array([[0.9, 0.1, 0.5], [0.2, 0.2, 0.1], [0.3, 0.3, 0.3]])
    truth = np.array([0, 1, 2])
    # query 0: own best -> 0; query 1: tied with one other -> 1; query 2: all tied -> 2.
    assert true_subject_rank(similarities, truth).tolist() == [0, 1, 2]


def test_nearest_centroid_by_hand():
    # Two subjects on the x and y axes; a query at 30 degrees is nearer subject 0.
    z = np.array([[2.0, 0.0], [1.0, 0.1], [0.0, 3.0], [0.1, 1.0], [np.cos(0.5), np.sin(0.5)]])
    draw = Draw(
        subjects=np.array(["a", "b"]),
        support=np.array([[0, 1], [2, 3]]),
        queries=np.array([4, 4]),
        query_subject=np.array([0, 1]),
    )
    assert identify(z, draw).tolist() == [0, 1]


def test_draws_are_the_same_for_every_method_and_disjoint_from_queries():
    labels = np.repeat(np.array(["a", "b", "c"]), 4)
    first = draws_for(labels, np.unique(labels), 3, 2, seed=7, split=1)
    again = draws_for(labels, np.unique(labels), 3, 2, seed=7, split=1)
    for d, e in zip(first, again, strict=True):
        assert np.array_equal(d.support, e.support) and np.array_equal(d.queries, e.queries)
        assert not set(d.support.ravel()) & set(d.queries)
        assert len(d.queries) == 3  # one query per subject (4 samples, 3 support)
    assert not np.array_equal(
        first[0].support, draws_for(labels, np.unique(labels), 3, 1, 7, 2)[0].support
    )
    with pytest.raises(ValueError, match="more than 4 samples"):
        draws_for(labels, np.unique(labels), 4, 1, 0, 0)


def test_planted_subjects_are_found_and_noise_sits_at_chance():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(20).astype(str), 12)
    centres = rng.normal(size=(20, 16))
    planted = centres[labels.astype(int)] + 0.3 * rng.normal(size=(len(labels), 16))
    found = identification(planted, labels, np.unique(labels), (1, 5), 10, 0, 0)
    assert all(r["top1"] > 0.9 for r in found)
    noise = rng.normal(size=(len(labels), 16))
    null = identification(noise, labels, np.unique(labels), (5,), 50, 0, 0)[0]
    assert null["chance_top1"] == pytest.approx(1 / 20) and null["chance_top5"] == 0.25
    # 50 draws x 140 queries: the mean sits within a few standard errors of chance.
    assert abs(null["top1"] - 0.05) < 0.02 and abs(null["top5"] - 0.25) < 0.04


def test_t_interval_by_hand():
    values = np.array([0.2, 0.4, 0.6])
    mean, low, high = t_interval(values)
    half = stats.t.ppf(0.975, 2) * 0.2 / np.sqrt(3)  # sd of (0.2, 0.4, 0.6) is 0.2
    assert (mean, low, high) == pytest.approx((0.4, 0.4 - half, 0.4 + half))


def test_ridge_probe_finds_a_linear_trait_and_not_noise():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(120, 8))
    traits = np.stack([z[:, 0] * 2 + 0.1 * rng.normal(size=120), rng.normal(size=120)], axis=1)
    r2 = ridge_probe(z[:80], traits[:80], z[80:], traits[80:])
    assert r2[0] > 0.9 and r2[1] < 0.1


def test_trajectory_weights_by_hand():
    # 70 x 70 image, 7 x 7 grid of 10-pixel cells; radius 0 puts all weight on one cell.
    weights, positions, valid = trajectory_weights(
        np.array([[25.0, 35.0], [69.0, 0.0]]), 70, 70, 0.0, (7, 7), max_steps=3
    )
    assert valid.tolist() == [True, True, False]
    assert weights[0].reshape(7, 7)[3, 2] == 1.0 and weights[1].reshape(7, 7)[0, 6] == 1.0
    assert weights[2].sum() == 0 and positions[0] == pytest.approx([25 / 70, 35 / 70])


def test_radius_is_read_back_from_a_map_of_discs():
    yy, xx = np.mgrid[0:80, 0:120]
    centres = np.array([[30.0, 40.0], [50.0, 40.0], [100.0, 20.0]])  # two overlap
    hm = np.zeros((80, 120))
    for x, y in centres:
        hm[(xx - x) ** 2 + (yy - y) ** 2 <= 9.0**2] = 1.0
    assert estimate_radius(hm, centres) == pytest.approx(9.0, abs=1.0)
    assert estimate_radius(hm, np.zeros((0, 2))) == 0.0


def test_identification_table_by_hand():
    import pandas as pd

    from crossmod.reporting.subjects import identification_table

    fixed = {"dataset": "d", "shots": 1, "top5": 1.0, "chance": 0.25, "chance_top5": 1.0}
    rows = pd.DataFrame(
        [
            fixed | {"split": s, "method": m, "top1": v, "n_queries": 10}
            for m, values in (("DEPER", (0.5, 0.7)), ("handcrafted", (0.3, 0.3)))
            for s, v in enumerate(values)
        ]
    )
    table = identification_table(rows, "d", "identification")
    assert table.values.loc["DEPER", "S=1 top-1"] == pytest.approx(0.6)
    half = stats.t.ppf(0.975, 1) * np.std([0.5, 0.7], ddof=1) / np.sqrt(2)
    assert table.low.loc["DEPER", "S=1 top-1"] == pytest.approx(0.6 - half)
    assert table.high.loc["DEPER", "S=1 top-1"] == pytest.approx(0.6 + half)
    assert table.values.loc["chance", "S=1 top-1"] == 0.25
    assert table.bold.loc["DEPER", "S=1 top-1"] and not table.bold.loc["chance"].any()
    # Paired over splits: 0.5/0.7 vs 0.3/0.3 differs by 0.2/0.4, t = 3, p = 0.20 at 1 df.
    assert table.marks.loc["handcrafted", "S=1 top-1"] == ""


def test_identification_marks_a_method_that_differs_from_deper_in_every_split():
    import pandas as pd

    from crossmod.reporting.subjects import identification_table

    fixed = {"dataset": "d", "shots": 1, "top5": 1.0, "chance": 0.25, "chance_top5": 1.0}
    deper = (0.50, 0.60, 0.55, 0.65, 0.58)
    rows = pd.DataFrame(
        [
            fixed | {"split": s, "method": m, "top1": v + shift, "n_queries": 10}
            for m, shift in (("DEPER", 0.0), ("handcrafted", 0.2), ("random", 0.001))
            for s, v in enumerate(deper)
        ]
    )
    rows.loc[rows["method"] == "random", "top1"] += [0.01, -0.02, 0.0, 0.01, -0.01]
    rows.loc[rows["method"] == "handcrafted", "top1"] += [0.0, 0.01, -0.01, 0.02, 0.0]
    table = identification_table(rows, "d", "identification")
    assert table.marks.loc["handcrafted", "S=1 top-1"] == "▲"
    assert table.marks.loc["random", "S=1 top-1"] == ""
    assert table.marks.loc["DEPER", "S=1 top-1"] == ""
    assert "▲" in table.cell("handcrafted", "S=1 top-1")
