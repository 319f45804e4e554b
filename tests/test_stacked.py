"""Splits of a network trained at once equal each split trained alone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from crossmod.data.pools import make_pools
from crossmod.data.splits import make_splits
from crossmod.evaluation.scoring import embed_all
from crossmod.methods import triplet
from crossmod.methods.registry import registry
from crossmod.methods.veit import veit_loss
from crossmod.training.data import split_data
from crossmod.training.loop import TrainSettings, train_network
from crossmod.training.stacked import train_stacked


def toy_splits(n_splits: int = 3, seed: int = 0) -> dict:
    """A small set with structure to learn: 30 users, 40 images, 3 annotators each."""
    rng = np.random.default_rng(seed)
    rows = []
    for image in range(40):
        for user in rng.choice(30, size=3, replace=False):
            rows.append((f"u{user:02d}", f"im{image:02d}"))
    annotations = pd.DataFrame(rows, columns=["user", "image"])
    annotations.insert(0, "annotation_id", np.arange(len(annotations)))
    n = len(annotations)
    style = rng.normal(size=(30, 4))[annotations["user"].str[1:].astype(int)]
    content = rng.normal(size=(40, 4))[annotations["image"].str[2:].astype(int)]
    latent = np.hstack([style, content])
    arrays = {
        "text": latent @ rng.normal(size=(8, 12)) + 0.3 * rng.normal(size=(n, 12)),
        "gaze": latent @ rng.normal(size=(8, 16)) + 0.3 * rng.normal(size=(n, 16)),
        "personality": rng.integers(1, 6, size=(n, 10)).astype(float),
        "image": content @ rng.normal(size=(4, 16)),
    }
    arrays = {k: v.astype(np.float32) for k, v in arrays.items()}
    splits = make_splits(annotations["user"].tolist(), n_splits, seed=0)
    pools = make_pools(annotations, splits, seed=0)
    meta = annotations.rename(columns={"image": "image_name"})
    return {s: split_data(meta, arrays, splits, pools, s) for s in range(n_splits)}


@pytest.mark.parametrize(
    "name", ["base_tg", "content_tg", "style_sub_gp", "veit_tp", "joint_style"]
)
def test_stacked_training_equals_training_each_split_alone(name):
    datas = toy_splits()
    spec = registry().network(name)
    settings = TrainSettings.from_config(steps=30, eval_every=10, patience=0, batch_size=32)
    stacked = train_stacked(spec, datas, settings)
    for split, data in datas.items():
        alone = train_network(spec, data, settings, split)
        got = stacked[split]
        assert got.best_step == alone.best_step and got.steps_run == alone.steps_run
        assert [s for s, _ in got.val_series] == [s for s, _ in alone.val_series]
        for (_, a), (_, b) in zip(got.val_series, alone.val_series, strict=True):
            assert a == b  # validation metrics, every evaluation
        np.testing.assert_allclose(
            [v for _, v in got.loss_series["total"]],
            [v for _, v in alone.loss_series["total"]],
            rtol=1e-5,
        )
        mine, theirs = embed_all(got.model, spec, data), embed_all(alone.model, spec, data)
        for modality in theirs:
            np.testing.assert_allclose(mine[modality], theirs[modality], atol=1e-5)


def test_splits_that_stop_early_leave_the_stack_and_keep_their_result():
    datas = toy_splits(n_splits=4, seed=1)
    spec = registry().network("style_tg")
    settings = TrainSettings.from_config(
        steps=200, eval_every=5, patience=2, batch_size=32, learning_rate=4.0
    )
    stacked = train_stacked(spec, datas, settings)
    steps = {split: result.steps_run for split, result in stacked.items()}
    assert len(set(steps.values())) > 1, steps  # the stack shrank while others trained on
    for split, data in datas.items():
        alone = train_network(spec, data, settings, split)
        assert stacked[split].steps_run == alone.steps_run
        assert stacked[split].best_step == alone.best_step
        assert stacked[split].stopped_early == alone.stopped_early
        mine, theirs = (
            embed_all(stacked[split].model, spec, data),
            embed_all(alone.model, spec, data),
        )
        for modality in theirs:
            np.testing.assert_allclose(mine[modality], theirs[modality], atol=1e-5)


def test_the_engine_and_veit_give_each_batch_of_a_stack_its_own_loss():
    rng = np.random.default_rng(0)
    spec = registry().network("content_tg")
    stack, batches = 3, []
    for _ in range(stack):
        emb = {m: torch.nn.functional.normalize(torch.randn(16, 5), dim=1) for m in spec.modalities}
        keys = {"image": torch.tensor(rng.integers(0, 5, size=16))}
        batches.append((emb, keys))
    stacked_emb = {m: torch.stack([b[0][m] for b in batches]) for m in spec.modalities}
    stacked_keys = {"image": torch.stack([b[1]["image"] for b in batches])}
    together = triplet.triplet_loss(spec.terms, stacked_emb, stacked_keys, 0.2)
    alone = [triplet.triplet_loss(spec.terms, e, k, 0.2) for e, k in batches]
    torch.testing.assert_close(together, torch.stack(alone))
    W = torch.randn(stack, 5, 5)
    pairs = [("text", "gaze")]
    together = veit_loss(stacked_emb, W, pairs)
    alone = [veit_loss(batches[i][0], W[i], pairs) for i in range(stack)]
    torch.testing.assert_close(together, torch.stack(alone))
