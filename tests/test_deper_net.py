"""DEPER's network (SPEC 10): shapes, masks, invariances, conditioning and learning.

Everything is tiny (D = 16, a 3 x 3 grid, 5 steps, 4 words) and seeded, so the whole file
runs in seconds on one CPU thread.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crossmod.features.trajectories import sinusoidal_position_code
from crossmod.methods import deper_encoder
from crossmod.methods.deper import trajectory_loss
from crossmod.methods.deper_net import (
    CosineClassifier,
    DeperConfig,
    DeperNetwork,
    SummaryPath,
    position_code,
    scan_direction,
    trajectory_statistics,
)

B, CELLS, P, T, L, V, D_W, SUBJECTS = 4, 9, 6, 5, 4, 10, 6, 3
STREAMS = ("both", "caption", "trajectory")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one thread is fastest, and spares a CPU shared with other jobs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_net(seed: int = 0, **overrides) -> DeperNetwork:
    torch.manual_seed(seed)
    values = dict(dim=16, heads=2, layers=2, dropout=0.0, max_steps=T)
    values.update(overrides)
    word_vectors = torch.randn(V, D_W, generator=torch.Generator().manual_seed(99))
    return DeperNetwork(DeperConfig(**values), P, word_vectors, SUBJECTS).eval()


def make_batch(seed: int = 1, lengths=(5, 3, 1, 2), word_counts=(4, 2, 1, 3)) -> dict:
    """Real steps and words first, padding (zeros, -1) after."""
    g = torch.Generator().manual_seed(seed)
    valid = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
    known = torch.arange(L)[None, :] < torch.tensor(word_counts)[:, None]
    words = torch.randint(0, V, (B, L), generator=g)
    return {
        "image": torch.randn(B, CELLS, P, generator=g),
        "trajectory": torch.randn(B, T, P, generator=g) * valid[..., None],
        "positions": torch.rand(B, T, 2, generator=g) * valid[..., None],
        "valid": valid,
        "words": torch.where(known, words, torch.full_like(words, -1)),
    }


def z_of(net: DeperNetwork, batch: dict) -> torch.Tensor:
    with torch.no_grad():
        return net.encode(**batch)


@pytest.mark.parametrize("summary_path", [False, True])
@pytest.mark.parametrize("streams", STREAMS)
def test_output_shapes(streams, summary_path):
    net = make_net(streams=streams, summary_path=summary_path)
    out = net(**make_batch())
    assert out.z.shape == (B, 16)
    assert out.logits.shape == (B, SUBJECTS)
    assert out.positions.shape == (B, T, 2)
    assert out.validity.shape == (B, T)
    assert ((out.positions > 0) & (out.positions < 1)).all()
    torch.testing.assert_close(net.encode(**make_batch()), out.z)


def test_config_is_checked():
    with pytest.raises(ValueError, match="streams"):
        DeperConfig(streams="image")
    with pytest.raises(ValueError, match="heads"):
        DeperConfig(dim=20, heads=3)
    batch = make_batch()
    with pytest.raises(ValueError, match="disagree"):
        make_net()(**{**batch, "positions": torch.zeros(B, T + 1, 2)})
    longer = {
        **batch,
        "trajectory": torch.zeros(B, T + 1, P),
        "positions": torch.zeros(B, T + 1, 2),
        "valid": torch.zeros(B, T + 1, dtype=torch.bool),
    }
    with pytest.raises(ValueError, match="max_steps"):
        make_net()(**longer)


@pytest.mark.parametrize("dim", [4, 16, 128])
def test_position_code_equals_the_numpy_code(dim):
    rng = np.random.default_rng(dim)
    points = np.concatenate([rng.random((20, 2)), [[0.0, 0.0], [1.0, 1.0], [0.0, 1.0]]])
    points = points.astype(np.float32)
    expected = sinusoidal_position_code(points, dim)
    code = position_code(torch.from_numpy(points), dim)
    assert code.dtype == torch.float32
    np.testing.assert_allclose(code.numpy(), expected, rtol=0, atol=1e-6)
    batched = position_code(torch.from_numpy(points).reshape(1, -1, 2), dim)  # (1, 23, dim)
    np.testing.assert_allclose(batched[0].numpy(), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("summary_path", [False, True])
def test_padding_does_not_reach_z(summary_path):
    net, batch = make_net(summary_path=summary_path), make_batch()
    reference = z_of(net, batch)
    pad = ~batch["valid"]
    g = torch.Generator().manual_seed(5)
    changed = dict(batch)
    changed["trajectory"] = torch.where(
        pad[..., None], torch.randn(B, T, P, generator=g) * 10, batch["trajectory"]
    )
    changed["positions"] = torch.where(
        pad[..., None], torch.rand(B, T, 2, generator=g), batch["positions"]
    )
    changed["words"] = torch.where(batch["words"] < 0, -7, batch["words"])
    torch.testing.assert_close(z_of(net, changed), reference, rtol=0, atol=1e-6)
    longer = {**batch, "words": torch.cat([batch["words"], torch.full((B, 3), -1)], dim=1)}
    torch.testing.assert_close(z_of(net, longer), reference, rtol=0, atol=1e-6)
    # The same change at a real step does move z (the check above can fail).
    real = {**batch, "positions": batch["positions"].clone()}
    real["positions"][0, 0] = 1 - real["positions"][0, 0]
    assert (z_of(net, real)[0] - reference[0]).abs().max() > 1e-4


@pytest.mark.parametrize("order_code", [False, True])
def test_order_code_makes_the_order_matter(order_code):
    net, batch = make_net(order_code=order_code), make_batch()
    permuted = {**batch, "trajectory": batch["trajectory"].clone()}
    permuted["positions"] = batch["positions"].clone()
    order = torch.tensor([3, 0, 4, 1, 2])  # sample 0 has 5 real steps, sample 1 three
    permuted["trajectory"][0] = batch["trajectory"][0, order]
    permuted["positions"][0] = batch["positions"][0, order]
    permuted["trajectory"][1, :3] = batch["trajectory"][1, [2, 0, 1]]
    permuted["positions"][1, :3] = batch["positions"][1, [2, 0, 1]]
    reference, moved = z_of(net, batch), z_of(net, permuted)
    torch.testing.assert_close(moved[2:], reference[2:], rtol=0, atol=1e-6)
    gap = (moved[:2] - reference[:2]).abs().amax(dim=1)
    if order_code:
        assert (gap > 1e-4).all()  # small at first: the order embedding starts at std 0.02
    else:
        assert (gap < 1e-5).all()


def test_one_stream_ignores_the_other():
    batch = make_batch()
    g = torch.Generator().manual_seed(11)
    other_walk = {
        **batch,
        "trajectory": torch.randn(B, T, P, generator=g),
        "positions": torch.rand(B, T, 2, generator=g),
        "valid": torch.ones(B, T, dtype=torch.bool),
    }
    other_words = {**batch, "words": torch.randint(0, V, (B, L + 2), generator=g)}
    for streams, ignored, used in (
        ("caption", other_walk, other_words),
        ("trajectory", other_words, other_walk),
    ):
        net = make_net(streams=streams)
        with torch.no_grad():
            reference, out = net(**batch), net(**ignored)
        for name in ("z", "logits", "positions", "validity"):
            torch.testing.assert_close(getattr(out, name), getattr(reference, name))
        assert (z_of(net, used) - reference.z).abs().max() > 1e-4
    both = make_net(streams="both")
    for changed in (other_walk, other_words):
        assert (z_of(both, changed) - z_of(both, batch)).abs().max() > 1e-4


@pytest.mark.parametrize("streams", STREAMS)
def test_a_sample_with_no_step_and_no_word_is_finite(streams, monkeypatch):
    # Torch's CPU attention gives 0 where every key is masked, other kernels NaN: so
    # check the design itself, that no attention ever sees only padded keys.
    forward = deper_encoder.Attention.forward

    def checked(self, x, context, keep=None):
        assert keep is None or keep.any(dim=1).all(), "an attention with only padded keys"
        return forward(self, x, context, keep)

    monkeypatch.setattr(deper_encoder.Attention, "forward", checked)
    net = make_net(streams=streams).train()
    batch = make_batch(lengths=(0, 3, 0, 2), word_counts=(0, 0, 1, 3))
    out = net(**batch)
    for name in ("z", "logits", "positions", "validity"):
        assert torch.isfinite(getattr(out, name)).all(), name
    loss = out.z.square().sum() + out.logits.sum() + out.positions.sum() + out.validity.sum()
    loss.backward()
    for name, parameter in net.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name


def test_a_fresh_decoder_does_not_depend_on_z():
    net = make_net()
    g = torch.Generator().manual_seed(3)
    memory = torch.randn(B, 12, 16, generator=g)
    keep = torch.rand(B, 12, generator=g) > 0.3
    keep[:, 0] = True
    z1, z2 = torch.randn(B, 16, generator=g), torch.randn(B, 16, generator=g) * 5
    with torch.no_grad():
        first, second = net.decoder(memory, keep, z1, T), net.decoder(memory, keep, z2, T)
        torch.testing.assert_close(first[0], second[0], rtol=0, atol=0)
        torch.testing.assert_close(first[1], second[1], rtol=0, atol=0)
        torch.nn.init.normal_(net.decoder.films[0].gamma.weight)
        moved = net.decoder(memory, keep, z2, T)
    assert (moved[0] - first[0]).abs().max() > 1e-4


@pytest.mark.parametrize("summary_path", [False, True])
@pytest.mark.parametrize("streams", STREAMS)
def test_gradients_reach_every_parameter_but_not_the_word_vectors(streams, summary_path):
    net = make_net(streams=streams, summary_path=summary_path).train()
    batch = make_batch()
    out = net(**batch)
    labels = torch.tensor([0, 1, 2, 0])
    loss = (
        torch.nn.functional.cross_entropy(out.logits, labels)
        + trajectory_loss(out.positions, out.validity, batch["positions"], batch["valid"])
        + out.z.square().mean()
    )
    loss.backward()
    parameters = dict(net.named_parameters())
    assert "word_vectors" not in parameters and "word_vectors" in net.state_dict()
    assert not net.word_vectors.requires_grad and net.word_vectors.grad is None
    for name, parameter in parameters.items():
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, name
    if streams != "caption":
        assert "order" in parameters
    assert make_net(streams=streams, order_code=False).state_dict().get("order") is None


def test_training_learns_subjects_from_the_caption():
    """Each subject's captions hold its own word (0..2) among shared ones (3..9)."""
    net = make_net(seed=4).train()
    g = torch.Generator().manual_seed(8)
    n = 24
    labels = torch.arange(n) % SUBJECTS
    words = torch.randint(SUBJECTS, V, (n, L), generator=g)
    words[torch.arange(n), torch.randint(0, L, (n,), generator=g)] = labels
    valid = torch.rand(n, T, generator=g) < 0.7
    batch = {
        "image": torch.randn(n, CELLS, P, generator=g),
        "trajectory": torch.randn(n, T, P, generator=g) * valid[..., None],
        "positions": torch.rand(n, T, 2, generator=g) * valid[..., None],
        "valid": valid,
        "words": words,
    }

    def cross_entropy() -> float:
        with torch.no_grad():
            return torch.nn.functional.cross_entropy(net.eval()(**batch).logits, labels).item()

    before = cross_entropy()
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(20):
        net.train()
        loss = torch.nn.functional.cross_entropy(net(**batch).logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = cross_entropy()
    assert after < 0.5 * before, (before, after)


def test_cosine_classifier_by_hand():
    classifier = CosineClassifier(2, 2, scale=10.0)
    with torch.no_grad():
        classifier.linear.weight.copy_(torch.tensor([[3.0, 0.0], [1.0, 1.0]]))
    z = torch.tensor([[0.0, 5.0]])
    # cos to (1, 0) is 0, to (1, 1) is 1/sqrt(2); the length of z and of the rows is ignored.
    assert torch.allclose(classifier(z), torch.tensor([[0.0, 10.0 / 2**0.5]]), atol=1e-5)
    plain = CosineClassifier(2, 2, scale=0.0)
    assert torch.allclose(plain(z), plain.linear(z))
    with pytest.raises(ValueError, match="classifier_scale"):
        DeperConfig(classifier_scale=-1.0)


def test_z_reads_the_mean_of_the_streams_beside_the_query():
    """With the attention's output zeroed, z = MLP(LN(query + mean of the real tokens))."""
    extractor = make_net().extractor
    with torch.no_grad():
        extractor.attention.out.weight.zero_()
        extractor.attention.out.bias.zero_()
    states = torch.randn(2, 5, 16)
    keep = torch.tensor([[True, True, False, False, False], [True] * 5])
    states[0, 2:] = 100.0  # padding must not count
    mean = torch.stack([states[0, :2].mean(0), states[1].mean(0)])
    expected = extractor.mlp(extractor.norm(extractor.query[0] + mean))
    with torch.no_grad():
        assert torch.allclose(extractor(states, keep), expected, atol=1e-5)


def test_trajectory_statistics_by_hand():
    """Clicks at (0, 0), (1, 0), (1, 1); one click; none (T = 5, padding anywhere)."""
    positions = torch.zeros(3, T, 2)
    positions[0, :3] = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    positions[0, 3:] = 0.5  # padding: must not count
    positions[1, 0] = torch.tensor([0.3, 0.7])
    valid = torch.zeros(3, T, dtype=torch.bool)
    valid[0, :3] = True
    valid[1, 0] = True
    stats = trajectory_statistics(positions, valid, max_steps=T)
    # Distances 1, 1, sqrt(2) over the diagonal sqrt(2); x = (0, 1, 1) and y = (0, 0, 1)
    # both have variance 2/9 around their mean.
    spread = (2 / 9) ** 0.5
    expected = torch.tensor(
        [
            [3 / 5, 1.0, 1 / 2**0.5, spread, spread],
            [1 / 5, 0.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.0],
        ]
    )
    torch.testing.assert_close(stats, expected, rtol=0, atol=1e-6)


def test_scan_direction_by_hand():
    """Clicks (0, 0) -> (1, 0) -> (1, 2): unit steps (1, 0) and (0, 1), mean (1/2, 1/2).

    A hidden middle click leaves no step with both ends real (zero); a repeated click
    is a step of zero length (adds zero, still counts); one click or none: zero.
    """
    positions = torch.zeros(4, T, 2)
    positions[:, :3] = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 2.0]])
    positions[2, 2] = positions[2, 1]
    valid = torch.zeros(4, T, dtype=torch.bool)
    valid[:3, :3] = True
    valid[1, 1] = False
    valid[3, 0] = True
    expected = torch.tensor([[0.5, 0.5], [0.0, 0.0], [0.5, 0.0], [0.0, 0.0]])
    torch.testing.assert_close(scan_direction(positions, valid), expected, rtol=0, atol=1e-6)
    # Reversed order, reversed direction.
    backwards = positions[:1, :3].flip(1), valid[:1, :3]
    torch.testing.assert_close(scan_direction(*backwards), -expected[:1], rtol=0, atol=1e-6)


def test_summary_path_reads_the_mean_word_and_standardises():
    net = make_net(summary_path=True)
    batch = make_batch()
    features = net.summary_features(batch["positions"], batch["valid"], batch["words"])
    assert features.shape == (B, D_W + 5 + 2)  # words, statistics, scan direction
    # Sample 1 has two known words: its first D_W features are their vectors' mean.
    words = batch["words"][1, :2]
    torch.testing.assert_close(features[1, :D_W], net.word_vectors[words].mean(dim=0))
    net.summary.fit(features)
    standardised = (features - net.summary.shift) / net.summary.scale
    torch.testing.assert_close(standardised.mean(dim=0), torch.zeros(D_W + 7), atol=1e-6, rtol=0)
    # z = extractor + Linear(standardised summary); the fitted statistics are saved.
    _, streams, keep = net._encoded(**batch)
    with torch.no_grad():
        expected = net.extractor(streams, keep) + net.summary.linear(standardised)
        torch.testing.assert_close(net.encode(**batch), expected)
    state = net.state_dict()
    assert torch.equal(state["summary.shift"], net.summary.shift)
    # One stream: only that stream's summary.
    caption = make_net(streams="caption", summary_path=True)
    assert caption.summary_features(batch["positions"], batch["valid"], batch["words"]).shape == (
        B,
        D_W,
    )
    trajectory = SummaryPath(D_W, 16, T, ("trajectory",))
    assert trajectory.features(
        net.word_vectors, batch["words"], batch["positions"], batch["valid"]
    ).shape == (B, 7)
    # Without order codes the summary cannot depend on the clicks' order.
    unordered = make_net(summary_path=True, order_code=False)
    features = unordered.summary_features(batch["positions"], batch["valid"], batch["words"])
    assert features.shape == (B, D_W + 5)
    flipped = batch["positions"].flip(1), batch["valid"].flip(1), batch["words"]
    torch.testing.assert_close(unordered.summary_features(*flipped), features)
    with pytest.raises(ValueError, match="no summary path"):
        make_net().summary_features(batch["positions"], batch["valid"], batch["words"])
