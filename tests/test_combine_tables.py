"""OURS grid search against brute force; summary ranks by hand; the identity classifier."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import no_weights_or_identity
from crossmod.evaluation.combine import (
    combined_metrics,
    grid_metrics,
    parts_for,
    pool_gram,
    search,
    select,
    weight_grid,
)
from crossmod.evaluation.identity import IdentitySettings, best_per_feature_set, identity_table
from crossmod.reporting.tables import TASKS, build_tables, summary_ranks


def test_weight_grid_sizes():
    assert weight_grid(["base", "content", "style"]).shape == (124, 3)
    personality = weight_grid(["base", "style"])
    assert personality.shape == (24, 3) and (personality[:, 1] == 0).all()
    assert (weight_grid(["base", "content", "style"]).sum(axis=1) > 0).all()
    assert parts_for("per-task", "t2p") == {"base": "base_sub_tp", "style": "style_sub_tp"}
    assert parts_for("joint", "g2t")["content"] == "content_tg"


def _tiny_problem(seed=0, n=40, d=3):
    rng = np.random.default_rng(seed)
    embeddings = {
        part: {m: rng.normal(size=(n, d)).astype(np.float32) for m in ("text", "gaze")}
        for part in ("base", "content", "style")
    }
    position = np.arange(n)
    pools = np.array(
        [[q, *rng.choice(np.delete(np.arange(n), q), 14, replace=False)] for q in range(12)]
    )
    return embeddings, position, pools


@pytest.mark.parametrize("mode", ["concat", "sum"])
def test_grid_search_matches_brute_force(mode):
    embeddings, position, pools = _tiny_problem()
    weights = weight_grid(["base", "content", "style"])
    fast = grid_metrics(pool_gram(embeddings, "t2g", position, pools, mode), weights)
    best_key, best_index = None, None
    for w, row in enumerate(weights):
        slow = combined_metrics(embeddings, "t2g", row, position, pools, mode)
        for key in ("top1", "top3", "rank"):
            assert fast[key][w] == pytest.approx(slow[key]), (row, key)
        key = (slow["top1"], slow["top3"], -slow["rank"])
        if best_key is None or key > best_key:  # first in grid order wins ties
            best_key, best_index = key, w
    assert select(fast) == best_index


def test_concat_is_the_weighted_sum_of_squared_distances():
    embeddings, position, pools = _tiny_problem(seed=3)
    gram = pool_gram(embeddings, "g2t", position, pools, "concat")
    q = {p: e["gaze"][pools[:, 0]] for p, e in embeddings.items()}
    c = {p: e["text"][pools] for p, e in embeddings.items()}
    d = {p: ((c[p] - q[p][:, None]) ** 2).sum(-1) for p in embeddings}
    w = np.array([0.25, 0.5, 1.0])
    expected = 0.25**2 * d["base"] + 0.5**2 * d["content"] + 1.0 * d["style"]
    np.testing.assert_allclose(np.einsum("nckl,k,l->nc", gram, w, w), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="unknown combine mode"):
        pool_gram(embeddings, "g2t", position, pools, "product")


def test_search_applies_validation_choice_to_test():
    embeddings, position, pools = _tiny_problem(seed=1)
    _, val_pools, test_pools = None, pools[:6], pools[6:]
    weights, val, test, best = search(
        embeddings, "g2t", ["base", "style"], position, val_pools, test_pools, "concat"
    )
    assert (weights[:, 1] == 0).all()
    expected = combined_metrics(embeddings, "g2t", weights[best], position, test_pools, "concat")
    assert test["top1"][best] == pytest.approx(expected["top1"])
    assert val["top1"][best] == val["top1"].max()


def test_summary_ranks_by_hand():
    rows = [
        # task, method, top1, top3, rank
        ("t2g", "veit", 0.1, 0.4, 5),
        ("t2g", "base", 0.3, 0.5, 4),
        ("t2g", "content", 0.3, 0.6, 3),
        ("t2g", "style", 0.2, 0.3, 6),
        ("t2g", "ours", 0.5, 0.7, 2),
        ("g2p", "veit", 0.1, 0.3, 7),
        ("g2p", "base", 0.2, 0.2, 8),
        ("g2p", "style", 0.2, 0.4, 6),
        ("g2p", "ours", 0.3, 0.4, 6),  # no content: N/A
    ]
    agg = pd.DataFrame(rows, columns=["task", "method", "top1", "top3", "rank"])
    ranks = summary_ranks(agg, ("veit", "base", "content", "style", "ours"))
    expected_t2g = {
        "ours": 1.0,
        "content": 6.5 / 3,
        "base": 8.5 / 3,
        "style": 14 / 3,
        "veit": 13 / 3,
    }
    expected_g2p = {
        "ours": 4 / 3,
        "style": 5.5 / 3,
        "veit": 10 / 3,
        "base": 10.5 / 3,
        "content": 5.0,
    }
    for method, value in expected_t2g.items():
        assert ranks.loc["t2g", method] == pytest.approx(value), method
    for method, value in expected_g2p.items():
        assert ranks.loc["g2p", method] == pytest.approx(value), method
    assert ranks.loc["p2t"].isna().sum() == 0  # no results at all: every method ties last
    assert ranks.loc["p2t", "ours"] == pytest.approx(3.0)


def test_tables_from_tidy_metrics(tmp_path):
    rng = np.random.default_rng(0)
    rows, weights = [], []
    for split in range(3):
        for setup, methods in (
            ("per-task", ("veit", "base", "content", "style", "ours")),
            ("joint", ("veit", "base", "style", "ours")),
        ):
            for task in TASKS:
                for method in methods:
                    if method == "content" and "p" in task:
                        continue
                    top3 = 0.3 + 0.1 * (method == "ours") + rng.uniform(0, 0.01)
                    rows.append(("d", setup, method, task, split, top3 / 2, top3, 6.0, 100, method))
                weights.append(("d", setup, task, split, 0.5, 0.0 if "p" in task else 0.25, 1.0))
    metrics = pd.DataFrame(
        rows,
        columns=[
            "dataset",
            "setup",
            "method",
            "task",
            "split",
            "top1",
            "top3",
            "rank",
            "n_queries",
            "network",
        ],
    )
    weights = pd.DataFrame(
        weights, columns=["dataset", "setup", "task", "split", "b_base", "b_content", "b_style"]
    )
    identity = pd.DataFrame(
        [("d", f, "rbf", "{}", 0.1, 0.01, 10, 0.1, 5) for f in ("text", "gaze", "both")],
        columns=[
            "dataset",
            "features",
            "kernel",
            "params",
            "accuracy_mean",
            "accuracy_std",
            "n_users",
            "chance",
            "folds",
        ],
    )
    tables = {t.name: t for t in build_tables(metrics, weights, identity, "d")}
    top3 = tables["table3_top3"]
    assert top3.bold["OURS"].all() and not top3.bold["BASE"].any()
    assert top3.cell("g2p", "CONTENT") == "N/A"
    assert "±" in top3.cell("t2g", "OURS")
    md = top3.markdown()
    assert "**" in md and "Chance" in md and "3 user splits" in md
    assert r"\textbf" in top3.latex() and "<b>" in top3.html()
    assert tables["table8_weights"].values.loc["t2g", "per-task b_content"] == 0.25
    assert pd.isna(tables["table8_weights"].values.loc["g2p", "per-task b_content"])
    top3.write(tmp_path)
    tidy = pd.read_csv(tmp_path / "table3_top3.csv")
    expected = {"row", "column", "mean", "std", "ci_low", "ci_high", "mark", "best"}
    assert set(tidy.columns) == expected and len(tidy) == 30


def _identity_frame(n_users=10, per_user=20, separated=True, seed=0):
    rng = np.random.default_rng(seed)
    users = np.repeat([f"u{i}" for i in range(n_users)], per_user)
    centres = rng.normal(size=(n_users, 8)) * (3.0 if separated else 0.0)
    text = centres[np.repeat(np.arange(n_users), per_user)] + rng.normal(size=(len(users), 8))
    meta = pd.DataFrame(
        {
            "user": users,
            "revealed": rng.uniform(size=len(users)),
            "max_distance": rng.uniform(size=len(users)),
            "min_distance": rng.uniform(size=len(users)),
        }
    )
    return meta, {"text": text.astype(np.float32)}


def test_identity_classifier_finds_distinct_users_and_not_shuffled_ones():
    settings = IdentitySettings.from_config(rbf_c=[1.0], rbf_gamma=[1.0], linear_c=[1.0])
    meta, arrays = _identity_frame()
    best = best_per_feature_set(identity_table(meta, arrays, settings, seed=0)).set_index(
        "features"
    )
    assert best.loc["text", "accuracy_mean"] > 0.8  # chance 0.1
    assert best.loc["gaze", "accuracy_mean"] < 0.25  # gaze statistics here are pure noise
    shuffled = meta.assign(user=np.random.default_rng(1).permutation(meta["user"].to_numpy()))
    best = best_per_feature_set(identity_table(shuffled, arrays, settings, seed=0)).set_index(
        "features"
    )
    assert best.loc["text", "accuracy_mean"] < 0.25 and best.loc["both", "accuracy_mean"] < 0.25
    assert best.loc["text", "chance"] == pytest.approx(0.1)


def test_top3_plot_gives_each_method_one_colour_in_both_panels():
    import matplotlib.pyplot as plt

    from crossmod.methods.registry import registry
    from crossmod.reporting.plots import top3_figure

    methods = registry()
    PER_TASK, JOINT, LABEL = methods.columns("per-task"), methods.columns("joint"), methods.labels()

    rows = [
        {
            "dataset": "d",
            "setup": setup,
            "method": method,
            "task": task,
            "split": split,
            "top1": 0.1,
            "top3": 0.3 + 0.01 * split,
            "rank": 5.0,
            "n_queries": 10,
        }
        for setup, methods in (("per-task", PER_TASK), ("joint", JOINT))
        for method in methods
        for task in TASKS
        for split in (0, 1)
        if not (method == "content" and "p" in task)
    ]
    fig = top3_figure(pd.DataFrame(rows), "d")
    colours = []
    for ax in fig.axes:
        handles, labels = ax.get_legend_handles_labels()
        colours.append(
            {
                label: tuple(h.patches[0].get_facecolor())
                for h, label in zip(handles, labels, strict=True)
                if label != "chance"
            }
        )
    plt.close(fig)
    per_task, joint = colours
    assert set(per_task) == {LABEL[m] for m in PER_TASK}
    assert set(joint) == {LABEL[m] for m in JOINT}
    assert all(joint[label] == per_task[label] for label in joint)
    assert len(set(per_task.values())) == len(per_task)


def test_pvse_ablation_table_by_hand(tmp_path):
    import json

    from crossmod.reporting.ablations import main as ablations_main

    rng = np.random.default_rng(0)
    paths, references = [], []
    for variant, shift in ((None, 0), ("K1", 0), ("K2", -5)):
        for split in (0, 1):
            queries = list(range(100 * split, 100 * split + 30))
            reference_ranks = np.random.default_rng(split).integers(1, 16, size=30)
            ranks = {
                task: np.clip(reference_ranks + shift + rng.integers(0, 2, size=30), 1, 15)
                for task in ("t2g", "g2t")
            }
            report = {
                "dataset": "d",
                "variant": variant,
                "split": split,
                "tasks": ["t2g", "g2t"],
                "method_settings": {"k": 2 if variant != "K1" else 1},
                "test": {
                    task: {
                        "top1": float((r == 1).mean()),
                        "top3": float((r <= 3).mean()),
                        "rank": float(r.mean()),
                        "n_queries": 30,
                    }
                    for task, r in ranks.items()
                },
                "test_queries": queries,
                "test_ranks": {"any": {t: r.tolist() for t, r in ranks.items()}},
            }
            path = tmp_path / f"{variant}{split}.json"
            path.write_text(json.dumps(report))
            (references if variant is None else paths).append(str(path))
    tidy, out = tmp_path / "tidy.csv", tmp_path / "tables"
    ablations_main(
        ["--metrics", *paths, "--reference", *references, "--order", "K1", "K2",
         "--settings", "{}", "--candidates", "any", "--seed", "0",
         "--tidy", str(tidy), "--out", str(out)]
    )  # fmt: skip
    rows = pd.read_csv(tidy)
    assert len(rows) == 3 * 2 * 2 and set(rows["variant"]) == {"PVSE", "K1", "K2"}
    table = pd.read_csv(out / "d" / "pvse_ablations.csv").set_index(["row", "column"])
    expected = np.mean([json.loads(open(p).read())["test"]["t2g"]["top3"] for p in paths[2:]])
    assert table.loc[("K2", "t2g top3"), "mean"] == pytest.approx(expected)
    low, high = table.loc[("K2", "t2g top3"), ["ci_low", "ci_high"]]
    assert low <= expected <= high and low < high
    assert table.loc[("K2", "t2g rank"), "mark"] == "▲"  # 5 ranks better on every query
    assert pd.isna(table.loc[("PVSE", "t2g rank"), "mark"])  # the reference itself
    assert table.loc[("K2", "g2t top3"), "best"] and not table.loc[("K1", "g2t top3"), "best"]
    assert "PVSE ablations" in (out / "d" / "pvse_ablations.md").read_text()


def test_methods_beyond_the_paper_get_summary_tables_of_their_own():
    rows = [
        ("d", setup, method, task, 0, 0.2, 0.4, 6.0, 10, method)
        for setup, methods in (
            ("per-task", ("veit", "base", "content", "style", "ours", "pvse")),
            ("joint", ("veit", "base", "style", "ours", "pvse")),
        )
        for method in methods
        for task in TASKS
    ]
    columns = [
        "dataset",
        "setup",
        "method",
        "task",
        "split",
        "top1",
        "top3",
        "rank",
        "n_queries",
        "network",
    ]
    metrics = pd.DataFrame(rows, columns=columns)
    weights, identity = no_weights_or_identity()
    tables = {t.name: t for t in build_tables(metrics, weights, identity, "d")}
    assert "PVSE" in tables["table3_top3"].values.columns
    assert "PVSE" in tables["table6_joint_top3"].values.columns
    assert "PVSE" not in tables["table1_summary"].values.columns  # the paper's ranks
    assert "PVSE" in tables["table1x_summary"].values.columns
    assert "PVSE" in tables["table5x_joint_summary"].values.columns
    without = build_tables(metrics[metrics["method"] != "pvse"], weights, identity, "d")
    assert "table1x_summary" not in {t.name for t in without}
