"""PVSE (SPEC 9): the losses against hand-computed values, their gradients, PIE-Net."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from crossmod.methods import pie_net, pvse

torch.set_num_threads(1)

# B = 2 pairs, K = 2 embeddings of D = 2, all unit vectors.
X = torch.tensor(
    [
        [[1.0, 0.0], [0.0, 1.0]],  # x0
        [[0.6, 0.8], [-1.0, 0.0]],  # x1
    ]
)
Y = torch.tensor(
    [
        [[0.8, 0.6], [0.0, -1.0]],  # y0
        [[0.6, 0.8], [0.0, -1.0]],  # y1
    ]
)
# S[i, j] = max over the 4 dot products <x_i,k, y_j,l>:
# S[0,0]: (1,0).(0.8,0.6)=0.8, (1,0).(0,-1)=0, (0,1).(0.8,0.6)=0.6, (0,1).(0,-1)=-1  -> 0.8
# S[0,1]: (1,0).(0.6,0.8)=0.6, 0, (0,1).(0.6,0.8)=0.8, -1                          -> 0.8
# S[1,0]: (0.6,0.8).(0.8,0.6)=0.96, (0.6,0.8).(0,-1)=-0.8, (-1,0).(0.8,0.6)=-0.8, 0 -> 0.96
# S[1,1]: (0.6,0.8).(0.6,0.8)=1.0, -0.8, (-1,0).(0.6,0.8)=-0.6, 0                   -> 1.0
S_BY_HAND = [[0.8, 0.8], [0.96, 1.0]]


def test_similarity_matrix_by_hand():
    torch.testing.assert_close(pvse.similarity_matrix(X, Y), torch.tensor(S_BY_HAND))


def test_mil_ranking_loss_by_hand_both_modes():
    margin = 0.1
    # c_s[i,j] = [m + S[i,j] - S[i,i]]+ off the diagonal:
    #   c_s[0,1] = 0.1 + 0.8 - 0.8 = 0.1;  c_s[1,0] = 0.1 + 0.96 - 1.0 = 0.06
    # c_im[i,j] = [m + S[i,j] - S[j,j]]+ off the diagonal:
    #   c_im[0,1] = [0.1 + 0.8 - 1.0]+ = 0;  c_im[1,0] = 0.1 + 0.96 - 0.8 = 0.26
    # hardest: mean_i max_j c_s = (0.1 + 0.06) / 2 = 0.08
    #          mean_j max_i c_im = (0.26 + 0) / 2 = 0.13      -> 0.21
    hardest = pvse.mil_ranking_loss(X, Y, margin, max_violation=True)
    assert hardest.item() == pytest.approx(0.21, abs=1e-6)
    # all: mean over the 4 entries of c_s = 0.16 / 4 = 0.04, of c_im = 0.26 / 4 = 0.065
    every = pvse.mil_ranking_loss(X, Y, margin, max_violation=False)
    assert every.item() == pytest.approx(0.105, abs=1e-6)


def test_mil_ranking_loss_zero_when_positives_win_by_the_margin():
    x = torch.eye(3)[:, None, :]  # three orthogonal single embeddings, y = x: S = I
    assert pvse.mil_ranking_loss(x, x.clone(), 0.5).item() == 0.0  # [0.5 + 0 - 1]+ = 0
    # margin 1.5: every off-diagonal c = 1.5 + 0 - 1 = 0.5; hardest: 0.5 + 0.5
    assert pvse.mil_ranking_loss(x, x.clone(), 1.5).item() == pytest.approx(1.0)
    # all: each matrix has 6 of 9 entries at 0.5 -> 3 / 9 each
    every = pvse.mil_ranking_loss(x, x.clone(), 1.5, max_violation=False)
    assert every.item() == pytest.approx(2 * 3 / 9)


def test_diversity_loss_by_hand():
    residuals = torch.tensor(
        [
            [[3.0, 4.0], [4.0, 3.0]],  # normalised (0.6,0.8), (0.8,0.6): G01 = G10 = 0.96
            [[1.0, 0.0], [0.0, 2.0]],  # orthogonal: G off-diagonal = 0
        ]
    )
    # sample 0: ||G_off||_F = sqrt(0.96^2 + 0.96^2) = 0.96 sqrt(2); / K^2 = / 4
    # sample 1: 0; mean over B = 0.96 sqrt(2) / 8
    expected = 0.96 * math.sqrt(2) / 8
    assert pvse.diversity_loss(residuals).item() == pytest.approx(expected, abs=1e-6)


def test_diversity_loss_divides_by_k_squared_and_does_not_square_the_norm():
    # K = 3 in D = 2: (1,0), (2,0), (0,5) -> normalised (1,0), (1,0), (0,1)
    # G off-diagonal: G01 = G10 = 1, the rest 0; ||.||_F = sqrt(2); / 9
    residuals = torch.tensor([[[1.0, 0.0], [2.0, 0.0], [0.0, 5.0]]])
    assert pvse.diversity_loss(residuals).item() == pytest.approx(math.sqrt(2) / 9, abs=1e-6)


def test_mmd_loss_by_hand():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    y = torch.tensor([[3.0, 0.0], [3.0, 4.0]])
    # gamma = 0.5, k = exp(-0.5 d), d the plain Euclidean distance:
    # xx: d = 0, 5, 5, 0    -> mean (2 + 2 e^-2.5) / 4 = (1 + e^-2.5) / 2
    # yy: d = 0, 4, 4, 0    -> mean (1 + e^-2) / 2
    # xy: (0,0)-(3,0) = 3, (0,0)-(3,4) = 5, (3,4)-(3,0) = 4, (3,4)-(3,4) = 0
    #                       -> mean (e^-1.5 + e^-2.5 + e^-2 + 1) / 4
    # mmd = xx - 2 xy + yy = (1 - e^-1.5) / 2
    expected = (1 - math.exp(-1.5)) / 2
    assert pvse.mmd_loss(x, y).item() == pytest.approx(expected, abs=1e-6)
    # gamma = 1: the same sums with every exponent doubled -> (1 - e^-3) / 2
    assert pvse.mmd_loss(x, y, gamma=1.0).item() == pytest.approx((1 - math.exp(-3)) / 2)


def test_mmd_gradient_is_finite_at_coincident_points():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [3.0, 4.0]], requires_grad=True)
    y = torch.tensor([[3.0, 4.0], [0.0, 0.0], [1.0, 1.0]], requires_grad=True)
    pvse.mmd_loss(x, y).backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all()
    assert pvse.mmd_loss(x, x).item() == 0.0  # same sample: exactly zero


@pytest.mark.parametrize("max_violation", [True, False])
def test_mil_gradcheck(max_violation):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 2, 3, dtype=torch.float64, generator=g, requires_grad=True)
    y = torch.randn(4, 3, 3, dtype=torch.float64, generator=g, requires_grad=True)

    def loss(a, b):
        a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
        return pvse.mil_ranking_loss(a, b, 0.5, max_violation=max_violation)

    assert loss(x, y).item() > 0  # the hinge is active, so the check means something
    assert torch.autograd.gradcheck(loss, (x, y))


def test_diversity_gradcheck():
    g = torch.Generator().manual_seed(1)
    r = torch.randn(3, 3, 4, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(pvse.diversity_loss, (r,))


def test_mmd_gradcheck():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(4, 3, dtype=torch.float64, generator=g, requires_grad=True)
    y = torch.randn(5, 3, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(pvse.mmd_loss, (x, y))


def test_k1_diversity_is_zero_with_zero_gradient():
    r = torch.randn(4, 1, 5, requires_grad=True)
    loss = pvse.diversity_loss(r)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(r.grad, torch.zeros_like(r))


def test_pvse_loss_skips_diversity_and_mmd_for_k1():
    g = torch.Generator().manual_seed(3)
    x = F.normalize(torch.randn(5, 1, 4, generator=g), dim=-1)
    y = F.normalize(torch.randn(5, 1, 4, generator=g), dim=-1)
    parts = pvse.pvse_loss(x, y, None, None, 0.1, 0.1, 0.01)
    assert set(parts) == {"mil", "diversity", "mmd", "total"}
    assert parts["diversity"].item() == 0.0 and parts["mmd"].item() == 0.0
    assert torch.equal(parts["total"], parts["mil"])
    torch.testing.assert_close(parts["mil"], pvse.mil_ranking_loss(x, y, 0.1))


def test_pvse_loss_sums_its_parts_for_k2():
    g = torch.Generator().manual_seed(4)
    x = F.normalize(torch.randn(5, 2, 4, generator=g), dim=-1)
    y = F.normalize(torch.randn(5, 2, 4, generator=g), dim=-1)
    rx, ry = torch.rand(5, 2, 4, generator=g), torch.rand(5, 2, 4, generator=g)
    parts = pvse.pvse_loss(x, y, rx, ry, 0.2, 0.1, 0.01, max_violation=False)
    mil = pvse.mil_ranking_loss(x, y, 0.2, max_violation=False)
    div = pvse.diversity_loss(rx) + pvse.diversity_loss(ry)
    mmd = pvse.mmd_loss(x.reshape(10, 4), y.reshape(10, 4))
    torch.testing.assert_close(parts["mil"], mil)
    torch.testing.assert_close(parts["diversity"], div)
    torch.testing.assert_close(parts["mmd"], mmd)
    torch.testing.assert_close(parts["total"], mil + 0.1 * div + 0.01 * mmd)
    with pytest.raises(ValueError, match="residuals"):
        pvse.pvse_loss(x, y, None, ry, 0.2, 0.1, 0.01)


def test_pvse_loss_logs_zero_weight_terms_without_gradient():
    x = F.normalize(torch.randn(3, 2, 4), dim=-1).requires_grad_()
    y = F.normalize(torch.randn(3, 2, 4), dim=-1)
    rx = torch.rand(3, 2, 4, requires_grad=True)
    parts = pvse.pvse_loss(x, y, rx, torch.rand(3, 2, 4), 0.1, 0.0, 0.0)
    assert parts["diversity"].item() > 0 and parts["mmd"].item() > 0
    assert not parts["diversity"].requires_grad and not parts["mmd"].requires_grad
    assert parts["total"].requires_grad


def test_max_pair_similarity_matches_brute_force():
    rng = np.random.default_rng(5)
    n, p, k, d = 3, 4, 2, 5
    queries = rng.normal(size=(n, k * d))
    candidates = rng.normal(size=(n, p, k * d))
    expected = np.empty((n, p))
    for i in range(n):
        for j in range(p):
            expected[i, j] = max(
                float(queries[i, a * d : (a + 1) * d] @ candidates[i, j, b * d : (b + 1) * d])
                for a in range(k)
                for b in range(k)
            )
    np.testing.assert_allclose(pvse.max_pair_similarity(queries, candidates, k), expected)
    # the same score as training's similarity matrix
    q = torch.as_tensor(queries[0].reshape(1, k, d))
    c = torch.as_tensor(candidates[0].reshape(p, k, d))
    np.testing.assert_allclose(pvse.similarity_matrix(q, c).numpy()[0], expected[0])
    with pytest.raises(ValueError):
        pvse.max_pair_similarity(queries, candidates, 3)


# --------------------------------------------------------------------------- PIE-Net


def _unit_norm(e: torch.Tensor) -> None:
    torch.testing.assert_close(e.norm(dim=-1), torch.ones(e.shape[:2]))


def test_pie_net_shapes_norms_and_attention():
    torch.manual_seed(0)
    net = pie_net.build_pie_net(d_local=6, d_global=5, d_embed=8, k=3)
    assert net.attention.w1.weight.shape == (3, 6) and net.attention.w1.bias is None
    assert net.attention.w2.weight.shape == (3, 3) and net.attention.w2.bias is None
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    e, r, a = net(torch.randn(2, 5), torch.randn(2, 4, 6), mask, return_attention=True)
    assert e.shape == (2, 3, 8) and r.shape == (2, 3, 8) and a.shape == (2, 3, 4)
    _unit_norm(e)
    assert torch.all(a[1, :, 2:] == 0)
    torch.testing.assert_close(a.sum(dim=-1), torch.ones(2, 3))
    assert ((r > 0) & (r < 1)).all()  # sigmoid residuals


def test_pie_net_sample_without_real_positions_gets_zero_attention():
    net = pie_net.build_pie_net(d_local=4, d_global=4, d_embed=6, k=2)
    mask = torch.tensor([[True, True, False], [False, False, False]])
    e, _, a = net(torch.randn(2, 4), torch.randn(2, 3, 4), mask, return_attention=True)
    assert torch.isfinite(e).all() and torch.all(a[1] == 0)


def test_global_only_flag():
    net = pie_net.build_pie_net(d_local=6, d_global=5, d_embed=8, global_only=True)
    e, r, a = net(torch.randn(3, 5), return_attention=True)
    assert e.shape == (3, 1, 8) and r is None and a is None
    _unit_norm(e)
    assert net.attention is None and net.fc is None
    with pytest.raises(ValueError):
        pie_net.build_pie_net(6, 5, 8, k=2, global_only=True)


def test_text_encoder_masks_padding_and_respects_lengths():
    torch.manual_seed(1)
    enc = pie_net.build_text_encoder(d_word=6, d_embed=8, k=3).eval()
    words = torch.randn(3, 5, 6)
    lengths = torch.tensor([5, 2, 3])
    e, r, a = enc(words, lengths, return_attention=True)
    assert e.shape == (3, 3, 8) and r.shape == (3, 3, 8) and a.shape == (3, 3, 5)
    _unit_norm(e)
    assert torch.all(a[1, :, 2:] == 0) and torch.all(a[2, :, 3:] == 0)
    # the GRU global feature ignores padding: sample 1 alone, unpadded, gives the same
    features = enc.local_features(words, lengths)
    alone = enc.local_features(words[1:2, :2], torch.tensor([2]))
    torch.testing.assert_close(features.global_feature[1:2], alone.global_feature)
    # and so do the embeddings: changing the padding changes nothing
    padded = words.clone()
    padded[1, 2:] = 100.0
    torch.testing.assert_close(enc(padded, lengths)[0], e)
    glob, _ = pie_net.build_text_encoder(6, 8, global_only=True)(words, lengths)
    assert glob.shape == (3, 1, 8)


def test_gaze_encoder_weights_the_cells_by_the_map():
    torch.manual_seed(2)
    enc = pie_net.build_encoder("gaze", 5, 8, k=2)
    conv = torch.randn(2, 5, 7, 7)
    grid = torch.rand(2, 7, 7)
    features = enc.local_features(conv, grid)
    assert features.local_features.shape == (2, 49, 5) and features.mask.all()
    # cell (row 2, column 3) is position 2 * 7 + 3
    torch.testing.assert_close(features.local_features[0, 17], conv[0, :, 2, 3] * grid[0, 2, 3])
    # global = SPEC 3's mean-pooled gaze vector
    torch.testing.assert_close(features.global_feature, (conv * grid[:, None]).mean(dim=(2, 3)))
    e, r = enc(conv, grid)
    assert e.shape == (2, 2, 8) and r.shape == (2, 2, 8)
    _unit_norm(e)
    with pytest.raises(ValueError):
        enc(conv, torch.rand(2, 14, 14))


def test_personality_encoder_tokens():
    torch.manual_seed(3)
    enc = pie_net.build_encoder("personality", 10, 8, k=2, d_token=4)
    answers = torch.tensor([[1, 2, 3, 4, 5, 5, 4, 3, 2, 1], [3] * 10])
    features = enc.local_features(answers)
    assert features.local_features.shape == (2, 10, 4)
    # an answer of 3 leaves the item embedding alone; 5 adds 2 x the answer vector
    torch.testing.assert_close(features.local_features[1], enc.items.weight)
    torch.testing.assert_close(
        features.local_features[0, 4], enc.items.weight[4] + 2 * enc.answer_direction
    )
    torch.testing.assert_close(features.global_feature[0], answers[0].float() - 3)
    e, r = enc(answers)
    assert e.shape == (2, 2, 8) and r.shape == (2, 2, 8)
    _unit_norm(e)


def test_module_imports_without_torch():
    code = "import sys; sys.modules['torch'] = None; import crossmod.methods.pvse"
    subprocess.run([sys.executable, "-c", code], check=True)


def _locals_split(seed: int = 0):
    """A split whose captions and gaze both name the image (content), as PVSE's caches.

    Every image has its own word and its own conv cells; an annotation's caption is that
    word among common filler words, and its gaze reveals a random part of the image. So
    t2g and g2t can find the image (top-3 holds the three same-image answers), and an
    untrained or broken PVSE sits at chance (0.2).
    """
    from crossmod.data.pools import make_pools
    from crossmod.data.splits import make_splits
    from crossmod.training.data import split_data

    rng = np.random.default_rng(seed)
    n_users, n_images = 24, 40
    rows = [(u, i) for u in range(n_users) for i in rng.choice(n_images, 8, replace=False)]
    frame = pd.DataFrame(rows, columns=["user", "image"])
    frame["user"] = frame["user"].map(lambda u: f"u{u:02d}")
    frame["image"] = frame["image"].map(lambda i: f"im{i:02d}")
    frame.insert(0, "annotation_id", np.arange(len(frame)))
    image_row = frame["image"].str[2:].astype(int).to_numpy()
    n = len(frame)
    vocabulary = rng.normal(size=(n_images + 5, 16)).astype(np.float32)
    tokens = np.full((n, 6), -1, dtype=np.int32)
    for i in range(n):
        words = [image_row[i], *(n_images + rng.choice(5, size=rng.integers(1, 5)))]
        tokens[i, : len(words)] = rng.permutation(words)
    centre = rng.normal(size=(n_images, 1, 8))  # what every cell of an image shares
    cells = (centre + 0.3 * rng.normal(size=(n_images, 49, 8))).astype(np.float32)
    grids = (rng.random((n, 7, 7)) < 0.4).astype(np.float32)
    extras = {
        "annotation_id": frame["annotation_id"].to_numpy(),
        "map_row": image_row,
        "grids": grids,
        "cells": cells,
        "tokens": tokens,
        "vocabulary": vocabulary,
    }
    arrays = {
        "text": rng.normal(size=(n, 4)),
        "gaze": rng.normal(size=(n, 4)),
        "image": rng.normal(size=(n, 4)),
        "personality": rng.integers(1, 6, size=(n, 10)).astype(float),
    }
    splits = make_splits(frame["user"].tolist(), 1, seed=0)
    pools = make_pools(frame, splits, seed=0)
    meta = frame.rename(columns={"image": "image_name"})
    data = split_data(meta, {k: v.astype(np.float32) for k, v in arrays.items()}, splits, pools, 0)
    data.extras["locals"] = extras
    return data


def test_pvse_trains_through_the_shared_loop_and_finds_the_image():
    from crossmod.evaluation.scoring import embed_all, evaluate
    from crossmod.methods.registry import registry
    from crossmod.training.loop import TrainSettings, train_network

    torch.set_num_threads(1)
    data = _locals_split()
    spec = registry().network("pvse_tg")
    settings = TrainSettings.from_config(eval_every=50, patience=0, batch_size=64, dim=32)
    untrained = pvse.PVSESettings.from_config(steps=1)
    trained = pvse.PVSESettings.from_config(steps=300, learning_rate=1e-2)
    before = evaluate(
        train_network(spec, data, settings, 0, "cpu", untrained).model, spec, data, "test"
    )
    result = train_network(spec, data, settings, 0, "cpu", trained)
    after = evaluate(result.model, spec, data, "test")
    # Each loss part is its own curve; K = 2 embeddings per sample, side by side.
    assert {"total", "mil", "diversity", "mmd"} <= set(result.loss_series)
    assert embed_all(result.model, spec, data)["text"].shape == (len(data.annotation_ids), 64)
    for task in ("t2g", "g2t"):
        assert after[task]["top3"] > 0.5, after  # chance 0.2
        assert after[task]["top3"] > before[task]["top3"] + 0.2, (before, after)
