"""DEPER's core pieces (SPEC 10) against values computed by hand."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from crossmod.features.trajectories import (
    annotation_trajectory,
    bubble_cell_weights,
    centres_from_map,
    click_sequence,
    sinusoidal_position_code,
    trajectory_tokens,
)
from crossmod.methods import deper_net
from crossmod.methods.deper import (
    DeperSettings,
    SubjectMemoryBank,
    centre_by_group,
    cls_chance,
    cls_metric,
    cls_over_images,
    supcon_loss,
    supcon_with_bank,
    trajectory_loss,
)


def test_modules_import_without_torch():
    """Snakemake imports crossmod.methods.* while parsing, where torch must not load."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import crossmod.methods.deper, crossmod.features.trajectories\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------- SupCon


def _supcon_example() -> tuple[torch.Tensor, ...]:
    anchors = torch.tensor([[1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    anchor_labels = torch.tensor([0, 1])
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-3.0, 0.0]])
    bank_labels = torch.tensor([0, 1, 0])
    return anchors, anchor_labels, bank, bank_labels


def test_supcon_by_hand():
    anchors, anchor_labels, bank, bank_labels = _supcon_example()
    # Normalised: a1 = (1, 0), a2 = (0, 1); b1 = (1, 0), b2 = (0, 1), b3 = (-1, 0).
    # t = 0.5, so s = 2 * cosine:
    #   a1: s = [2, 0, -2], L1 = logsumexp = log(e^2 + 1 + e^-2);
    #       positives b1, b3 (label 0): loss = -((2 - L1) + (-2 - L1)) / 2 = L1.
    #   a2: s = [0, 2, 0], L2 = log(1 + e^2 + 1);
    #       positive b2 (label 1): loss = -(2 - L2) = L2 - 2.
    # mean = (L1 + L2 - 2) / 2 = (2.14293 + 0.23954) / 2 = 1.19124.
    l1 = math.log(math.exp(2) + 1 + math.exp(-2))
    l2 = math.log(1 + math.exp(2) + 1)
    expected = (l1 + (l2 - 2)) / 2
    loss = supcon_loss(anchors, anchor_labels, bank, bank_labels, 0.5)
    assert loss.item() == pytest.approx(expected, abs=1e-5)
    loss.backward()
    assert torch.isfinite(anchors.grad).all()


def test_supcon_leaves_out_anchors_without_positive():
    anchors, anchor_labels, bank, bank_labels = _supcon_example()
    with_stranger = torch.cat([anchors.detach(), torch.tensor([[1.0, 1.0]])])
    labels = torch.cat([anchor_labels, torch.tensor([7])])  # subject 7 is not in the bank
    base = supcon_loss(anchors, anchor_labels, bank, bank_labels, 0.5)
    assert supcon_loss(with_stranger, labels, bank, bank_labels, 0.5).item() == pytest.approx(
        base.item(), abs=1e-6
    )


@pytest.mark.parametrize("case", ["no_positive", "empty_bank"])
def test_supcon_zero_still_backpropagates(case):
    anchors = torch.randn(4, 3, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 3])
    if case == "no_positive":
        bank, bank_labels = torch.randn(5, 3), torch.tensor([9, 9, 8, 8, 7])
    else:
        bank, bank_labels = torch.zeros((0, 3)), torch.zeros(0, dtype=torch.long)
    loss = supcon_loss(anchors, labels, bank, bank_labels, 0.07)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(anchors.grad, torch.zeros_like(anchors))


def test_supcon_depends_on_directions_only():
    generator = torch.Generator().manual_seed(0)
    anchors = torch.randn(6, 4, generator=generator)
    bank = torch.randn(10, 4, generator=generator)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    bank_labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    base = supcon_loss(anchors, labels, bank, bank_labels, 0.07)
    scaled = supcon_loss(anchors * 3.7, labels, bank * 0.2, bank_labels, 0.07)
    torch.testing.assert_close(scaled, base)


# ---------------------------------------------------------------- memory bank


def test_bank_is_empty_at_first():
    embeddings, labels = SubjectMemoryBank().contents()
    assert embeddings.shape[0] == 0 and labels.shape == (0,)


def test_bank_keeps_latest_per_subject_and_a_fifo():
    bank = SubjectMemoryBank(size=2)
    e = torch.eye(3)
    bank.add(e[:2], torch.tensor([5, 1]))  # e0 by subject 5, e1 by subject 1
    bank.add(e[2:], torch.tensor([5]))  # e2 by subject 5 again
    embeddings, labels = bank.contents()
    # Per subject (by label): 1 -> e1, 5 -> e2 (the latest); FIFO of 2, oldest first: e1, e2.
    assert labels.tolist() == [1, 5, 1, 5]
    torch.testing.assert_close(embeddings, torch.stack([e[1], e[2], e[1], e[2]]))
    assert len(bank) == 4


def test_bank_fifo_order_without_overflow():
    bank = SubjectMemoryBank(size=10)
    for label in [3, 1, 2]:
        bank.add(torch.full((1, 2), float(label)), torch.tensor([label]))
    embeddings, labels = bank.contents()
    assert labels.tolist() == [1, 2, 3, 3, 1, 2]  # per subject sorted, then FIFO as added
    assert embeddings[3:, 0].tolist() == [3.0, 1.0, 2.0]


def test_bank_stores_detached_copies():
    bank = SubjectMemoryBank()
    z = torch.ones(2, 3, requires_grad=True)
    bank.add(z * 2, torch.tensor([0, 1]))
    embeddings, _ = bank.contents()
    assert not embeddings.requires_grad
    source = torch.ones(1, 3)
    bank.add(source, torch.tensor([2]))
    source.mul_(10)  # a later in-place change must not reach the bank
    assert bank.contents()[0].max().item() == 2.0


def test_contents_are_built_before_the_batch_is_added():
    bank = SubjectMemoryBank()
    first = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    labels = torch.tensor([0, 1])
    loss = supcon_with_bank(bank, first, labels, 0.07)
    assert loss.item() == 0.0  # the bank was empty: an anchor is never its own positive
    loss.backward()
    assert len(bank) == 4
    before, before_labels = bank.contents()
    second = torch.tensor([[1.0, 0.1]])
    expected = supcon_loss(second, torch.tensor([0]), before, before_labels, 0.07)
    loss = supcon_with_bank(bank, second, torch.tensor([0]), 0.07)
    torch.testing.assert_close(loss, expected)
    assert len(bank) == 5  # subject 0 replaced in the per-subject part, FIFO one longer
    after, after_labels = bank.contents()
    adding_first = supcon_loss(second, torch.tensor([0]), after, after_labels, 0.07)
    assert abs(adding_first.item() - loss.item()) > 0.1  # so the order of use matters


# ---------------------------------------------------------------- FiLM


def test_film_shapes_and_identity_at_initialisation():
    film = deper_net.FiLM(features=8, condition=5)
    z = torch.randn(3, 5)
    for h in (torch.randn(3, 8), torch.randn(3, 4, 8)):
        out = film(h, z)
        assert out.shape == h.shape
        torch.testing.assert_close(out, h)


def test_film_applies_gamma_and_beta_per_sample():
    torch.manual_seed(0)
    film = deper_net.FiLM(features=4, condition=2)
    for layer in (film.gamma, film.beta):
        torch.nn.init.normal_(layer.weight)
        torch.nn.init.normal_(layer.bias)
    h, z = torch.randn(2, 3, 4), torch.randn(2, 2)
    gamma = z @ film.gamma.weight.T + film.gamma.bias  # (2, 4)
    beta = z @ film.beta.weight.T + film.beta.bias
    torch.testing.assert_close(film(h, z), gamma[:, None, :] * h + beta[:, None, :])


def test_film_learns_from_identity():
    film = deper_net.FiLM(features=4, condition=3)
    h, z = torch.randn(2, 4), torch.randn(2, 3)
    (film(h, z) ** 2).sum().backward()
    assert film.gamma.weight.grad.abs().sum() > 0
    assert film.beta.weight.grad.abs().sum() > 0


# ---------------------------------------------------------------- trajectory loss


def test_trajectory_loss_by_hand():
    pred = torch.tensor([[[0.5, 0.5], [0.0, 0.0], [0.9, 0.9]]])
    target = torch.tensor([[[0.5, 0.55], [0.2, 0.0], [0.0, 0.0]]])
    logits = torch.tensor([[0.0, 2.0, -1.0]])
    valid = torch.tensor([[True, True, False]])
    beta = 1 / 9
    # SmoothL1(d) = 0.5 d^2 / beta if |d| < beta else |d| - 0.5 beta, summed over x, y.
    step0 = 0.5 * 0.05**2 / beta  # dx = 0, dy = 0.05 < 1/9: quadratic -> 0.01125
    step1 = 0.2 - 0.5 * beta  # dx = 0.2 > 1/9: linear -> 0.14444; dy = 0
    position = (step0 + step1) / 2  # step 2 is padding: mean over the 2 valid steps
    # BCE with logits: log(1 + e^x) - y x, mean over all 3 steps.
    bce = (math.log(2) + (math.log(1 + math.exp(2)) - 2) + math.log(1 + math.exp(-1))) / 3
    loss = trajectory_loss(pred, logits, target, valid)
    assert loss.item() == pytest.approx(position + bce, abs=1e-5)


def test_trajectory_loss_without_valid_steps_is_validity_only():
    pred = torch.rand(2, 4, 2, requires_grad=True)
    logits = torch.zeros(2, 4)
    loss = trajectory_loss(pred, logits, torch.rand(2, 4, 2), torch.zeros(2, 4, dtype=torch.bool))
    assert loss.item() == pytest.approx(math.log(2), abs=1e-6)
    loss.backward()
    assert torch.equal(pred.grad, torch.zeros_like(pred))


# ---------------------------------------------------------------- trajectories


def _conv_map() -> np.ndarray:
    """2 x 7 x 7: channel 0 holds the cell's index r * 7 + c, channel 1 its negative."""
    index = np.arange(49, dtype=np.float32).reshape(7, 7)
    return np.stack([index, -index])


def test_click_sequence_respects_the_order_column():
    clicks = np.array([[10, 20, 3], [30, 40, 1], [50, 60, 2]], dtype=float)
    np.testing.assert_array_equal(click_sequence(clicks), [[30, 40], [50, 60], [10, 20]])
    assert click_sequence(None).shape == (0, 2)
    assert click_sequence(np.zeros((0, 3))).shape == (0, 2)
    with pytest.raises(ValueError):
        click_sequence(np.zeros((4, 2)))


def test_token_of_a_bubble_inside_one_cell():
    # A 70 x 70 image: each of the 7 x 7 cells is 10 x 10 pixels. The click (x, y) = (25, 35)
    # with radius 3 covers pixel columns 22..28 and rows 32..38, all in cell (row 3, col 2).
    trajectory = trajectory_tokens(np.array([[25.0, 35.0]]), _conv_map(), 70, 70, radius=3)
    np.testing.assert_allclose(trajectory.tokens[0], [3 * 7 + 2, -(3 * 7 + 2)])
    np.testing.assert_allclose(trajectory.positions[0], [25 / 70, 35 / 70])


def test_token_of_a_bubble_on_a_cell_boundary_is_the_two_cells_mean():
    # x = 29.5 lies on the border of columns 2 and 3 (pixel 29 ends at 30): the disc's
    # pixels split evenly, so the token is the plain mean of cells (3, 2) and (3, 3).
    trajectory = trajectory_tokens(np.array([[29.5, 35.0]]), _conv_map(), 70, 70, radius=3)
    np.testing.assert_allclose(trajectory.tokens[0], [23.5, -23.5])
    weights = bubble_cell_weights(29.5, 35.0, 3, 70, 70, (7, 7))
    assert weights[3, 2] == pytest.approx(0.5) and weights[3, 3] == pytest.approx(0.5)


def test_radius_zero_takes_the_cell_containing_the_point():
    trajectory = trajectory_tokens(np.array([[69.0, 0.0]]), _conv_map(), 70, 70, radius=0)
    np.testing.assert_allclose(trajectory.tokens[0], [6, -6])  # row 0, column 6


def test_trajectory_from_clicks_keeps_order_truncates_and_pads():
    clicks = np.array([[65, 5, 2], [5, 5, 1], [5, 65, 3]], dtype=float)
    hm = np.zeros((70, 70), dtype=np.float32)
    trajectory = annotation_trajectory(clicks, hm, _conv_map(), radius=2, max_steps=5)
    assert trajectory.from_clicks and trajectory.length == 3
    assert trajectory.valid.tolist() == [True, True, True, False, False]
    assert trajectory.tokens[:3, 0].tolist() == [0.0, 6.0, 42.0]  # cells (0,0), (0,6), (6,0)
    assert not trajectory.tokens[3:].any() and not trajectory.positions[3:].any()
    assert trajectory.tokens.dtype == np.float32 and trajectory.tokens.shape == (5, 2)
    short = annotation_trajectory(clicks, hm, _conv_map(), radius=2, max_steps=2)
    assert short.tokens[:, 0].tolist() == [0.0, 6.0]  # the first steps are kept


def _disc(hm: np.ndarray, x: float, y: float, radius: float) -> None:
    rows, cols = np.ogrid[: hm.shape[0], : hm.shape[1]]
    hm[(rows - y) ** 2 + (cols - x) ** 2 <= radius**2] = 1.0


def test_centres_from_a_map_with_two_discs():
    hm = np.zeros((60, 80), dtype=np.float32)
    _disc(hm, x=20, y=15, radius=6)
    _disc(hm, x=55, y=40, radius=9)
    hm = gaussian_filter(hm, sigma=1.0)
    hm /= hm.max()
    centres = centres_from_map(hm)
    assert centres.shape == (2, 2)
    # Ordered by peak strength: the larger (more completely revealed) disc first.
    np.testing.assert_allclose(centres[0], [55, 40], atol=1.5)
    np.testing.assert_allclose(centres[1], [20, 15], atol=1.5)
    assert centres_from_map(np.zeros((10, 10))).shape == (0, 2)


def test_trajectory_falls_back_to_the_map_without_clicks():
    hm = np.zeros((70, 70), dtype=np.float32)
    _disc(hm, x=25, y=35, radius=3)
    trajectory = annotation_trajectory(None, hm, _conv_map(), radius=3)
    assert not trajectory.from_clicks and trajectory.length == 1
    assert trajectory.valid.shape == (30,)
    np.testing.assert_allclose(trajectory.tokens[0], [23, -23])


def test_sinusoidal_code():
    positions = np.array([[0.0, 0.0], [0.5, 0.25], [0.5, 0.75], [0.51, 0.25]])
    code = sinusoidal_position_code(positions, 16)
    assert code.shape == (4, 16) and code.dtype == np.float32
    np.testing.assert_allclose(code[0, 0::2], 0.0)  # sin(0)
    np.testing.assert_allclose(code[0, 1::2], 1.0)  # cos(0)
    # The first half codes x only, the second y only.
    np.testing.assert_allclose(code[1, :8], code[2, :8])
    assert not np.allclose(code[1, 8:], code[2, 8:])
    # Distinct positions, even 1 % apart, get distinct codes.
    for i in range(4):
        for j in range(i + 1, 4):
            assert np.abs(code[i] - code[j]).max() > 0.1
    with pytest.raises(ValueError):
        sinusoidal_position_code(positions, 6)


# ---------------------------------------------------------------- CLS


SCORES = np.array(
    [
        [0.9, 0.1, 0.2],  # reference 0: its own caption (0.9) is best -> success
        [0.5, 0.4, 0.3],  # reference 1: caption 0 scores higher than its own -> failure
        [0.1, 0.2, 0.3],  # reference 2: its own caption (0.3) is best -> success
    ]
)
TIED = np.array(
    [
        [0.5, 0.5],  # reference 0: tied with caption 1 at the top -> 1/2
        [0.1, 0.2],  # reference 1: own caption best -> success
    ]
)
THREE_WAY = np.array(
    [
        [0.4, 0.4, 0.4],  # reference 0: own among three tied at the top -> 1/3
        [0.9, 0.2, 0.9],  # reference 1: captions 0 and 2 tie above its own -> 0
        [0.1, 0.7, 0.7],  # reference 2: own tied with caption 1 -> 1/2
    ]
)


def test_cls_of_one_image():
    assert cls_metric(SCORES) == pytest.approx(2 / 3)
    assert cls_metric(TIED) == pytest.approx((1 / 2 + 1) / 2)
    assert cls_metric(THREE_WAY) == pytest.approx((1 / 3 + 0 + 1 / 2) / 3)
    # Identical captions for every annotator: exactly chance, neither success nor failure.
    assert cls_metric(np.ones((4, 4))) == pytest.approx(1 / 4)
    with pytest.raises(ValueError):
        cls_metric(np.ones((2, 3)))


def test_cls_over_images_pools_references_and_skips_single_annotators():
    matrices = [SCORES, TIED, np.array([[1.0]])]
    assert cls_over_images(matrices) == pytest.approx((2 + 1.5) / (3 + 2))
    assert cls_chance(matrices) == pytest.approx(2 / 5)  # 3 * 1/3 + 2 * 1/2 over 5 refs
    assert math.isnan(cls_over_images([np.array([[1.0]])]))


# ---------------------------------------------------------------- centring in a batch


def test_centre_by_group_by_hand():
    z = torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0], [0.0, -4.0]], requires_grad=True)
    groups = torch.tensor([7, 7, 9, 7])
    got = centre_by_group(z, groups)
    # Group 7: (1, 0), (0, 1), (0, -1), mean (1/3, 0); group 9 has one row: normalised only.
    r = 1 / math.sqrt(2)
    expected = torch.tensor([[2 / 3, 0.0], [-1 / 3, 1.0], [r, r], [-1 / 3, -1.0]])
    assert torch.allclose(got, expected, atol=1e-6)
    got.sum().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()


def _inputs() -> dict[str, torch.Tensor]:
    return {
        "words": torch.tensor([[4, 5, 6, -1], [7, 8, -1, -1]]),
        "valid": torch.tensor([[True, True, True], [True, False, False]]),
        "positions": torch.rand(2, 3, 2),
    }


def test_hide_inputs_hides_words_and_clicks_and_nothing_else():
    from crossmod.training.subjects import hide_inputs

    inputs = _inputs()
    kept = hide_inputs(inputs, 0.0, 0.0)
    assert all(torch.equal(kept[k], inputs[k]) for k in inputs)
    hidden = hide_inputs(inputs, 1.0, 1.0)
    assert (hidden["words"] == -1).all() and not hidden["valid"].any()
    assert hidden["positions"] is inputs["positions"]
    assert (inputs["words"] >= 0).sum() == 5 and inputs["valid"].sum() == 4  # untouched
    torch.manual_seed(0)
    some = hide_inputs(
        {"words": torch.zeros(100, 50, dtype=torch.long), "valid": _inputs()["valid"]}, 0.3, 0.0
    )
    assert 0.25 < (some["words"] == -1).float().mean() < 0.35


def test_centred_training_draws_whole_images():
    from crossmod.training.subjects import SubjectData, training_sampler

    settings = DeperSettings.from_config(batch_subjects=2, samples_per_subject=3)
    images = np.repeat([f"im{i}" for i in range(8)], 3)
    users = np.array([f"u{i % 5}" for i in range(len(images))])
    data = SubjectData(
        **{f: None for f in SubjectData.__dataclass_fields__}
        | {"user": users, "image_name": images, "part": np.full(len(images), "train")}
    )
    rows = np.arange(len(images))
    batch = training_sampler(data, rows, settings, np.random.default_rng(0))()
    assert len(batch) == 6 and len(set(images[batch])) == 2  # two images, all three each
    by_user = training_sampler(
        data,
        rows,
        DeperSettings.from_config(centre="none", batch_subjects=2, samples_per_subject=3),
        np.random.default_rng(0),
    )()
    assert len(set(users[by_user])) == 2


def test_summary_path_learns_at_its_own_rate():
    from crossmod.methods.deper_net import DeperConfig, DeperNetwork
    from crossmod.training.subjects import parameter_groups

    settings = DeperSettings.from_config(learning_rate=1e-3, summary_learning_rate=5e-2)
    net = DeperNetwork(DeperConfig(dim=8, heads=2, summary_path=True), 4, torch.zeros(3, 5), 2)
    rest, summary = parameter_groups(net, settings)
    assert summary["lr"] == 5e-2 and "lr" not in rest  # the rest: the optimiser's rate
    assert {id(p) for p in summary["params"]} == {id(p) for p in net.summary.parameters()}
    assert len(rest["params"]) + len(summary["params"]) == len(list(net.parameters()))
    without = DeperNetwork(DeperConfig(dim=8, heads=2), 4, torch.zeros(3, 5), 2)
    (only,) = parameter_groups(without, settings)
    assert len(only["params"]) == len(list(without.parameters()))
