"""Splits, pools, ranks and the VEIT score."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from crossmod.data.pools import POOL_SIZE, draw_pools, make_pools, pool_matrix, validation_draws
from crossmod.data.splits import make_splits
from crossmod.evaluation.ranking import metrics, pool_vectors, ranks, task_modalities
from crossmod.evaluation.scoring import pool_rows
from crossmod.methods.encoders import Embedder
from crossmod.methods.veit import bilinear_scores, veit_loss
from crossmod.training.sampler import GroupBatchSampler


def test_splits_are_disjoint_sized_and_seeded():
    users = [f"u{i}" for i in range(139)]
    table = make_splits(users * 2, 5, seed=0)
    for _, part in table.groupby("split"):
        assert part["user"].is_unique and set(part["user"]) == set(users)
        sizes = part["part"].value_counts()
        assert (sizes["train"], sizes["val"], sizes["test"]) == (97, 14, 28)
    first = table[table["split"] == 0].set_index("user")["part"]
    second = table[table["split"] == 1].set_index("user")["part"]
    assert (first != second.reindex(first.index)).any()
    pd.testing.assert_frame_equal(table, make_splits(users, 5, seed=0))
    assert not make_splits(users, 5, seed=1).equals(table)
    with pytest.raises(ValueError, match="too few"):
        make_splits(["a", "b"], 1, 0)


def _annotations(n_images=30, per_image=3, n_users=12, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for image in range(n_images):
        for user in rng.choice(n_users, size=per_image, replace=False):
            rows.append((len(rows), f"u{user}", f"img{image}"))
    return pd.DataFrame(rows, columns=["annotation_id", "user", "image"])


def test_pool_composition():
    annotations = _annotations()
    queries = annotations["annotation_id"].to_numpy()[:40]
    pools = draw_pools(annotations, queries, np.random.default_rng(0))
    table = annotations.set_index("annotation_id")
    assert pools.shape == (40, POOL_SIZE)
    for query, pool in zip(queries, pools, strict=True):
        user, image = table.loc[query, "user"], table.loc[query, "image"]
        assert pool[0] == query and len(set(pool)) == POOL_SIZE
        same = table.loc[pool[1:3]]
        assert (same["image"] == image).all() and (same["user"] != user).all()
        other = table.loc[pool[3:]]
        assert (other["image"] != image).all() and other["image"].is_unique
        assert (other["user"] != user).all()


def test_pools_are_drawn_once_per_split_and_reproducible():
    annotations = _annotations()
    splits = make_splits(annotations["user"].tolist(), 2, seed=0)
    pools = make_pools(annotations, splits, seed=0)
    pd.testing.assert_frame_equal(pools, make_pools(annotations, splits, seed=0))
    assert set(pools.loc[pools["part"] == "val", "candidates"]) == {"any"}
    assert set(pools.loc[pools["part"] == "test", "candidates"]) == {"any", "same_part"}
    for (split, part, _), chunk in pools.groupby(["split", "part", "candidates"]):
        members = splits[(splits["split"] == split) & (splits["part"] == part)]["user"]
        expected = annotations[annotations["user"].isin(members)]["annotation_id"]
        assert sorted(chunk["query"]) == sorted(expected)


def test_same_part_pools_draw_from_the_query_part_and_count_fallbacks():
    annotations = _annotations(n_images=40, per_image=3, n_users=20)
    splits = make_splits(annotations["user"].tolist(), 2, seed=0)
    pools = make_pools(annotations, splits, seed=0, candidates="same_part")
    assert set(pools["candidates"]) == {"any", "same_part"}  # test pools under both
    assert set(pools.loc[pools["part"] == "val", "candidates"]) == {"same_part"}
    user = annotations.set_index("annotation_id")["user"]
    for split in (0, 1):
        part_of = splits[splits["split"] == split].set_index("user")["part"]
        # The any pools do not depend on the option: the very draws of the default.
        default = make_pools(annotations, splits, seed=0)
        for protocol in ("any",):
            np.testing.assert_array_equal(
                pool_matrix(pools, split, "test", protocol)[1],
                pool_matrix(default, split, "test")[1],
            )
        chunk = pools[(pools["split"] == split) & (pools["candidates"] == "same_part")]
        for row in chunk.itertuples():
            pool = [getattr(row, f"c{k}") for k in range(POOL_SIZE)]
            home = part_of[user[pool[0]]]
            outside = sum(part_of[user[c]] != home for c in pool[1:])
            assert outside == row.fallbacks  # every candidate from elsewhere is counted
            assert len(set(pool)) == POOL_SIZE and (user[pool[1:]] != user[pool[0]]).all()
        # Test users rarely share an image: the same-image slots fall back, counted.
        assert chunk.loc[chunk["part"] == "test", "fallbacks"].sum() > 0
        queries, same_part = pool_matrix(pools, split, "test", "same_part")
        assert np.array_equal(queries, pool_matrix(pools, split, "test", "any")[0])
        assert not np.array_equal(same_part, pool_matrix(pools, split, "test", "any")[1])


def test_validation_draws_are_fresh_draws_of_the_same_queries():
    annotations = _annotations()
    splits = make_splits(annotations["user"].tolist(), 2, seed=0)
    pools = make_pools(annotations, splits, seed=0)
    extra = validation_draws(annotations, splits, seed=0, draws=4)
    pd.testing.assert_frame_equal(extra, validation_draws(annotations, splits, seed=0, draws=4))
    assert validation_draws(annotations, splits, seed=0, draws=1).empty
    table = annotations.set_index("annotation_id")
    for split in (0, 1):
        queries, saved = pool_matrix(pools, split, "val")
        chunk = extra[extra["split"] == split]
        assert sorted(chunk["draw"].unique()) == [1, 2, 3]
        for _, draw in chunk.groupby("draw"):
            candidates = draw[[f"c{k}" for k in range(POOL_SIZE)]].to_numpy()
            assert np.array_equal(draw["query"].to_numpy(), queries)
            assert np.array_equal(candidates[:, 0], queries)
            assert not np.array_equal(candidates, saved)  # a fresh draw, not a copy
            for pool in candidates:
                user = table.loc[pool[0], "user"]
                assert (table.loc[pool[1:], "user"] != user).all()


def test_ranks_count_ties_against_the_method():
    similarities = -np.array([[1, 2, 3], [1, 1, 0.5], [0, 0, 0], [2, 1, 3]])
    assert ranks(similarities).tolist() == [1, 3, 3, 2]
    got = metrics(ranks(similarities))
    assert got == {"top1": 0.25, "top3": 1.0, "rank": 2.25, "n_queries": 4}
    constant = np.zeros((10, 15))
    assert metrics(ranks(constant))["rank"] == 15  # a constant scorer gets the worst rank
    assert task_modalities("t2g") == ("text", "gaze")


def test_pool_rows_map_ids_to_the_rows_the_pools_read():
    # Ids 0..5 sit in rows 5, 3, -, 0, 1, 2 (id 2 has no row); the pools read ids 0, 3, 5, 4.
    position = np.array([5, 3, -1, 0, 1, 2])
    pools = np.array([[0, 3], [5, 3], [4, 0]])
    rows, local = pool_rows(position, pools)
    assert rows.tolist() == [0, 1, 2, 5]  # rows of ids 3, 4, 5, 0
    assert local.tolist() == [3, -1, -1, 0, 1, 2]  # id 1 (row 3) is not read: -1
    # The subset's vectors under the local map are the full table's under the full map.
    table = np.arange(6 * 2, dtype=float).reshape(6, 2)
    full = pool_vectors(table, table, position, pools)
    subset = pool_vectors(table[rows], table[rows], local, pools)
    for a, b in zip(full, subset, strict=True):
        np.testing.assert_array_equal(a, b)


def test_veit_score_and_loss_by_hand():
    x = torch.tensor([[1.0, 0.0]])
    y = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    W = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    torch.testing.assert_close(bilinear_scores(x, y, W), torch.tensor([[2.0, 3.0]]))
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    logits = (a @ W @ b.T).numpy()  # [[1, 3], [3, 7]]
    ce = lambda z, t: -(z[t] - np.log(np.exp(z).sum()))  # noqa: E731
    expected = (ce(logits[0], 0) + ce(logits[1], 1)) / 2 + (
        ce(logits.T[0], 0) + ce(logits.T[1], 1)
    ) / 2
    got = veit_loss({"text": a, "gaze": b}, W, [("text", "gaze")])
    assert got.item() == pytest.approx(expected, rel=1e-5)
    model = Embedder({"text": 3, "gaze": 4}, dim=5, bilinear=True)
    params = sum(p.numel() for p in model.parameters())
    assert params == (3 + 4) * 5 + 2 * 5 + 5 * 5  # O((d1 + d2) m + m^2)


def test_sampler_gives_every_anchor_a_positive():
    rng = np.random.default_rng(0)
    image = np.repeat(np.arange(100), 3)
    user = rng.integers(0, 40, size=300)
    sampler = GroupBatchSampler(
        {"image": image, "user": user, "user_image": np.arange(300)},
        ("image", "user"),
        128,
        4,
        rng,
    )
    for _ in range(20):
        batch = sampler()
        assert len(batch) == 128 and len(np.unique(batch)) == 128
        grouped = 0
        for key in (image, user):
            _, counts = np.unique(key[batch], return_counts=True)
            grouped += counts[counts >= 2].sum()
        assert grouped >= 100  # the P x K part; the rest is random filling
    random_only = GroupBatchSampler({"user_image": np.arange(300)}, ("user_image",), 128, 4, rng)
    assert len(np.unique(random_only())) == 128
