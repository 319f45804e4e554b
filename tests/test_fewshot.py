"""Few-shot identification, the t-interval and the BFI probe, against hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from crossmod.evaluation.fewshot import (
    RIDGE_PENALTIES,
    Draw,
    centre_on_images,
    draws_for,
    identification,
    identify,
    protocol_embeddings,
    ridge_fit,
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


def test_ridge_fit_by_hand():
    # y = x on x = (0, 1, 2). A huge penalty leaves the intercept alone: the mean, 1,
    # everywhere. Between a huge and a tiny penalty, leave-one-out picks the tiny one
    # (the flat fit's left-out residuals are -1.5, 0, 1.5; the line's about 0), whose
    # fit is the line itself.
    x, y = np.array([[0.0], [1.0], [2.0]]), np.array([[0.0], [1.0], [2.0]])
    flat = ridge_fit(x, y, np.array([1e12]))
    assert flat(np.array([[5.0]]))[0, 0] == pytest.approx(1.0)
    line = ridge_fit(x, y, np.array([1e6, 1e-6]))
    assert line(np.array([[5.0]]))[0, 0] == pytest.approx(5.0, abs=1e-5)


@pytest.mark.parametrize(("n", "d"), [(40, 64), (111, 64), (200, 8), (9, 64)])
def test_ridge_fit_matches_scikit_learns_ridge_cv(n, d):
    # The closed form stands in for RidgeCV(alphas=...) (the same leave-one-out choice
    # and fit); fewer subjects than dimensions, and more.
    from sklearn.linear_model import RidgeCV

    rng = np.random.default_rng(n + d)
    x = rng.normal(size=(n, d)) * rng.uniform(0.1, 3.0, size=d)
    y = x[:, :3] @ rng.normal(size=(3, 5)) + rng.normal(size=(n, 5))
    test = rng.normal(size=(20, d))
    expected = RidgeCV(alphas=RIDGE_PENALTIES).fit(x, y).predict(test)
    assert ridge_fit(x, y, RIDGE_PENALTIES)(test) == pytest.approx(expected, rel=1e-9, abs=1e-9)


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


def test_centre_on_images_by_hand():
    z = np.array([[3.0, 0.0], [0.0, 2.0], [0.0, -1.0], [5.0, 5.0]])
    images = np.array(["a", "a", "b", "c"])
    # Normalised rows: (1, 0), (0, 1) on image a, mean (0.5, 0.5); (0, -1) alone on b
    # and (0.7071, 0.7071) alone on c: a single annotation of an image centres to zero.
    expected = np.array([[0.5, -0.5], [-0.5, 0.5], [0.0, 0.0], [0.0, 0.0]])
    assert np.allclose(centre_on_images(z, images), expected)
    assert np.allclose(protocol_embeddings(z, images, "none"), z)
    with pytest.raises(ValueError, match="centre"):
        protocol_embeddings(z, images, "user")
    with pytest.raises(ValueError, match="3 image labels for 4"):
        centre_on_images(z, images[:3])


def test_centring_removes_an_image_set_confound():
    """The known answer behind ``centre: image``: a person who is only their image set.

    30 subjects, 3 per set of 6 images, all alike. An encoder trained on seen subjects
    maps every image of a set near the seen annotators of that set, so here every
    embedding is its set's signature plus noise. Uncentred, the nearest centroid
    "identifies" subjects through their set (far above chance); centred on the images,
    nothing is left to find (at chance). A planted person signal survives the centring.
    """
    rng = np.random.default_rng(3)
    subjects = np.repeat(np.arange(30), 6)
    sets = subjects // 3
    images = np.array([f"set{s}_{i % 6}" for i, s in enumerate(sets)])
    z = rng.normal(size=(10, 32))[sets] + 0.5 * rng.normal(size=(len(images), 32))
    labels = subjects.astype(str)

    def top1(x: np.ndarray) -> float:
        return identification(x, labels, np.unique(labels), (3,), 30, 0, 0)[0]["top1"]

    chance = 1 / 30
    assert top1(z) > 5 * chance
    assert abs(top1(centre_on_images(z, images)) - chance) < 0.03
    person = rng.normal(size=(30, 32))[subjects]
    assert top1(centre_on_images(z + person, images)) > 0.5


def test_parts_table_rows_sit_beside_deper_on_the_same_draws():
    from crossmod.reporting.subjects import PARTS, part_rows

    def report(variant: str, top1: float, parts: dict | None) -> dict:
        row = {"shots": 3, "top5": 1.0, "chance_top1": 0.1, "chance_top5": 0.5, "n_queries": 7}
        made = {"dataset": "d", "split": 0, "variant": variant}
        made["identification"] = [row | {"top1": top1}]
        if parts:
            made["parts"] = {name: [row | {"top1": value}] for name, value in parts.items()}
        return made

    reports = [
        report("deper", 0.4, {"streams": 0.2, "summary": 0.35}),
        report("caption_only", 0.3, {"streams": 0.1, "summary": 0.3}),  # not DEPER: left out
    ]
    rows = part_rows(reports)
    assert dict(zip(rows["method"], rows["top1"], strict=True)) == {
        "DEPER": 0.4,
        PARTS["streams"]: 0.2,
        PARTS["summary"]: 0.35,
    }
    assert set(rows["shots"]) == {3} and set(rows["n_queries"]) == {7}
    assert part_rows([report("deper", 0.4, None)]).empty  # no summary path: no table
