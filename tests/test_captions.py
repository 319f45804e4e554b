"""DEPER's personalised captions (SPEC 10): the decoder, the caption metrics, CLS, bootstrap."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from crossmod.evaluation.captions import (
    caption_metrics,
    cls_scores,
    java_available,
    paired_bootstrap,
    tokenise,
)
from crossmod.methods.captioner import CaptionDecoder, CaptionerConfig, caption_loss


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: with several threads, contention costs far more than it saves."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------- the decoder

V, WORD_DIM, IMAGE_DIM, SUBJECT_DIM, CELLS = 7, 5, 6, 4, 49


def _decoder(seed: int = 0, **config) -> CaptionDecoder:
    torch.manual_seed(seed)
    settings = dict(dim=16, layers=2, heads=2, dropout=0.0, max_length=6)
    settings.update(config)
    model = CaptionDecoder(
        CaptionerConfig(**settings), torch.randn(V, WORD_DIM), IMAGE_DIM, SUBJECT_DIM
    )
    return model.eval()


def _inputs(batch: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    image = torch.randn(batch, CELLS, IMAGE_DIM, generator=generator)
    subject = torch.randn(batch, SUBJECT_DIM, generator=generator)
    return image, subject


def test_forward_shapes_and_frozen_vocabulary():
    model = _decoder()
    image, subject = _inputs(3)
    words = torch.tensor([[0, 1, 2, 3], [4, 5, -1, -1], [-1, -1, -1, -1]])
    logits = model(image, subject, words)
    assert logits.shape == (3, 5, V + 1)
    assert model.eos == V
    assert "word_vectors" in dict(model.named_buffers())
    assert all(p.shape != (V, WORD_DIM) for p in model.parameters())
    with pytest.raises(ValueError, match="real words first"):
        model(image, subject, torch.tensor([[0, -1, 2, 3]] * 3))
    with pytest.raises(ValueError, match="max_length"):
        model(image, subject, torch.zeros((3, 7), dtype=torch.long))


def test_logits_are_causal():
    """Position t sees the subject, <bos> and words before t only."""
    model = _decoder()
    image, subject = _inputs(1)
    base = model(image, subject, torch.tensor([[1, 2, 3, 4]]))
    changed = model(image, subject, torch.tensor([[1, 2, 5, 0]]))
    torch.testing.assert_close(changed[:, :3], base[:, :3])
    assert not torch.allclose(changed[:, 3:], base[:, 3:])
    shorter = model(image, subject, torch.tensor([[1, 2, -1, -1]]))
    torch.testing.assert_close(shorter[:, :3], base[:, :3])


def test_logits_depend_on_subject_and_image():
    model = _decoder()
    image, subject = _inputs(2)
    words = torch.tensor([[1, 2], [1, 2]])
    logits = model(image[[0, 0]], subject, words)
    assert not torch.allclose(logits[0], logits[1])
    logits = model(image, subject[[0, 0]], words)
    assert not torch.allclose(logits[0], logits[1])


def _log_softmax(row: list[float], k: int) -> float:
    return row[k] - math.log(sum(math.exp(x) for x in row))


def test_caption_loss_by_hand():
    # Two real words + <eos> (id 2). Row 0: one word then padding; row 1: two words.
    words = torch.tensor([[0, -1], [1, 1]])
    logits = torch.tensor(
        [
            [[2.0, 0.0, -1.0], [0.5, 0.5, 3.0], [9.0, -9.0, 4.0]],  # targets 0, <eos>, -
            [[0.0, 1.0, 0.0], [1.0, 2.0, 3.0], [0.0, 0.0, 1.0]],  # targets 1, 1, <eos>
        ]
    )
    expected = (
        -(
            _log_softmax([2.0, 0.0, -1.0], 0)
            + _log_softmax([0.5, 0.5, 3.0], 2)
            + _log_softmax([0.0, 1.0, 0.0], 1)
            + _log_softmax([1.0, 2.0, 3.0], 1)
            + _log_softmax([0.0, 0.0, 1.0], 2)
        )
        / 5
    )
    assert caption_loss(logits, words).item() == pytest.approx(expected, rel=1e-6)


def test_caption_loss_ignores_padding():
    words = torch.tensor([[3, 1, -1], [2, -1, -1]])
    logits = torch.randn(2, 4, V + 1, generator=torch.Generator().manual_seed(0))
    loss = caption_loss(logits, words)
    noisy = logits.clone()
    noisy[0, 3] = 100.0  # after row 0's <eos> target
    noisy[1, 2:] = -50.0  # after row 1's <eos> target
    assert caption_loss(noisy, words).item() == pytest.approx(loss.item())
    # One more padding column changes nothing either.
    wider = torch.cat([words, torch.full((2, 1), -1)], dim=1)
    assert caption_loss(torch.cat([logits, noisy[:, :1]], dim=1), wider).item() == pytest.approx(
        loss.item()
    )


def test_greedy_is_stepwise_argmax_of_forward():
    model = _decoder()
    image, subject = _inputs(4)
    captions = model.generate(image, subject)
    assert len(captions) == 4
    for i, caption in enumerate(captions):
        assert all(0 <= w < V for w in caption) and len(caption) <= 6
        logits = model(image[i : i + 1], subject[i : i + 1], torch.tensor([caption]).reshape(1, -1))
        best = logits[0].argmax(dim=-1).tolist()
        assert best[: len(caption)] == caption
        if len(caption) < 6:
            assert best[len(caption)] == V  # <eos>
        # The batch does not change a sample's caption.
        assert model.generate(image[i : i + 1], subject[i : i + 1]) == [caption]


def test_beam_never_scores_below_greedy_and_sometimes_above():
    model = _decoder(seed=3)
    image, subject = _inputs(8, seed=4)
    greedy = model.generate(image, subject, max_length=5)
    beamed = model.generate(image, subject, beam=3, max_length=5)
    assert beamed == model.generate(image, subject, beam=3, max_length=5)  # deterministic
    greedy_scores = model.score(image, subject, greedy, max_length=5)
    beam_scores = model.score(image, subject, beamed, max_length=5)
    assert bool((beam_scores >= greedy_scores - 1e-6).all())
    assert bool((beam_scores > greedy_scores + 1e-4).any())


def test_generate_is_deterministic_and_restores_training_mode():
    model = _decoder(dropout=0.5).train()
    image, subject = _inputs(2)
    first = model.generate(image, subject, beam=2)
    assert model.training
    assert model.generate(image, subject, beam=2) == first


def test_training_learns_each_subjects_own_caption():
    """Same image, two subjects, two fixed captions: the caption must follow z_s."""
    torch.manual_seed(0)
    model = _decoder(dim=32, heads=4).train()
    image = torch.randn(1, CELLS, IMAGE_DIM).expand(2, -1, -1)
    subject = torch.randn(2, SUBJECT_DIM)
    words = torch.tensor([[0, 1, 2, 3], [0, 2, 1, -1]])
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        optimiser.zero_grad()
        loss = caption_loss(model(image, subject, words), words)
        loss.backward()
        optimiser.step()
    assert loss.item() < 0.05
    assert model.generate(image, subject) == [[0, 1, 2, 3], [0, 2, 1]]
    assert model.generate(image, subject, beam=3) == [[0, 1, 2, 3], [0, 2, 1]]


# ---------------------------------------------------------------- caption metrics


def test_modules_import_without_torch():
    """The scoring runs in jobs without torch; pycocoevalcap must not pull it in either."""
    code = "import sys; sys.modules['torch'] = None\nimport crossmod.evaluation.captions\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_tokenise():
    assert tokenise("A Man's  dog, running!\n") == "a man's dog running"
    assert tokenise("  ...  ") == ""


def test_bleu_1_by_hand():
    # Candidate unigrams: the x2, cat, on, a; clipped matches: the 2, cat 1, on 1 -> 4/5.
    # Brevity penalty: c = 5 < r = 6 -> exp(1 - 6/5).
    scores = caption_metrics(["the cat sat on the mat"], ["The the cat on a"])
    assert scores["BLEU-1"][0] == pytest.approx(0.8 * math.exp(1 - 6 / 5), rel=1e-6)
    # Bigrams: "the the", "the cat", "cat on", "on a": one match ("the cat") -> 1/4.
    expected = math.sqrt(0.8 * 0.25) * math.exp(1 - 6 / 5)
    assert scores["BLEU-2"][0] == pytest.approx(expected, rel=1e-6)


def test_rouge_l_by_hand():
    # LCS("a b c d e", "a c e f") = "a c e": P = 3/4, R = 3/5; beta = 1.2.
    scores = caption_metrics(["a b c d e"], ["a c e f"])
    p, r, beta2 = 3 / 4, 3 / 5, 1.2**2
    assert scores["ROUGE-L"][0] == pytest.approx((1 + beta2) * p * r / (r + beta2 * p))


def test_identical_caption_scores_one():
    caption = "a dog runs across the green field"
    scores = caption_metrics([caption], [caption.upper() + "."])
    assert scores["BLEU-4"][0] == pytest.approx(1.0, abs=1e-6)
    assert scores["ROUGE-L"][0] == pytest.approx(1.0)
    assert set(scores) == {"BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr"}


REFERENCES = [
    "a red car parked on the street",
    "two dogs play in the snow",
    "a man eating a large sandwich",
]


def test_cider_prefers_the_right_caption():
    right = caption_metrics(REFERENCES, ["a red car parked on a street", *REFERENCES[1:]])
    wrong = caption_metrics(REFERENCES, ["two dogs play in the snow", *REFERENCES[1:]])
    assert right["CIDEr"][0] > wrong["CIDEr"][0] + 1.0
    assert right["CIDEr"].shape == (3,)


def test_empty_candidates_score_zero():
    scores = caption_metrics(REFERENCES, ["", "two dogs play in the snow", "!!"])
    for name, values in scores.items():
        assert values[0] == 0.0 and values[2] == 0.0, name
        assert values[1] > 0.5, name
    assert all(v.shape == (0,) for v in caption_metrics([], []).values())
    assert caption_metrics(["", ""], ["a b", ""])["CIDEr"].tolist() == [0.0, 0.0]


@pytest.mark.skipif(not java_available(), reason="METEOR needs a Java runtime")
def test_meteor_when_java_runs():
    scores = caption_metrics(
        REFERENCES[:2], ["a red car parked on the street", "a cat"], meteor=True
    )
    assert scores["METEOR"][0] > 0.9
    assert scores["METEOR"][1] < 0.3


IMAGES = [
    (["a red car on a dusty road", "a blue sky with white clouds"], None),
    (
        [
            "a woman holding a black umbrella",
            "a dog running on green grass",
            "people shopping at a street market",
        ],
        None,
    ),
]
GENERATED = [
    ["a red car on the road", "blue sky and white clouds"],
    [
        "woman holding a black umbrella",
        "a brown dog running on the grass",
        "people shopping at a market",
    ],
]


def test_cls_scores_distinctive_and_swapped_captions():
    right = [(refs, gen) for (refs, _), gen in zip(IMAGES, GENERATED, strict=True)]
    scores = cls_scores(right)
    assert scores == {
        "BLEU-4": 1.0,
        "ROUGE-L": 1.0,
        "CIDEr": 1.0,
        "mean": 1.0,
        "chance": pytest.approx(2 / 5),
    }
    # Each annotator gets another annotator's caption (a swap; a rotation for three).
    swapped = [(refs, gen[1:] + gen[:1]) for (refs, _), gen in zip(IMAGES, GENERATED, strict=True)]
    scores = cls_scores(swapped)
    assert {k: v for k, v in scores.items() if k != "chance"} == {
        "BLEU-4": 0.0,
        "ROUGE-L": 0.0,
        "CIDEr": 0.0,
        "mean": 0.0,
    }


def test_cls_scores_ties_score_chance_and_single_annotators_are_skipped():
    """Captions that do not differ between annotators tie everywhere: CLS is 1/N, chance."""
    same = [(IMAGES[0][0], ["a red car on the road"] * 2), (["only one"], ["only one"])]
    scores = cls_scores(same, metrics=("ROUGE-L", "CIDEr"))
    assert scores == {"ROUGE-L": 0.5, "CIDEr": 0.5, "mean": 0.5, "chance": 0.5}


# ---------------------------------------------------------------- paired bootstrap


def test_paired_bootstrap_shift_identity_and_seed():
    rng = np.random.default_rng(0)
    b = rng.random(60)
    blocks = np.repeat(["train", "val", "test"], 20)
    shifted = paired_bootstrap(b + 0.1, b, blocks)
    assert shifted["diff"] == pytest.approx(0.1)
    assert 0.0 < shifted["ci_low"] <= 0.1 <= shifted["ci_high"]
    assert shifted["p"] < 0.01
    same = paired_bootstrap(b, b, blocks)
    assert same["diff"] == 0.0 and same["ci_low"] == 0.0 and same["ci_high"] == 0.0
    assert same["p"] == 1.0
    noisy = b + rng.normal(0.0, 0.2, 60)
    assert paired_bootstrap(noisy, b, blocks, seed=5) == paired_bootstrap(noisy, b, blocks, seed=5)
    assert paired_bootstrap(noisy, b, blocks, seed=5) != paired_bootstrap(noisy, b, blocks, seed=6)
    result = paired_bootstrap(noisy, b, blocks)
    assert set(result) == {"mean_a", "mean_b", "diff", "ci_low", "ci_high", "p"}
    assert result["mean_a"] == pytest.approx(noisy.mean())
    assert result["ci_low"] < result["diff"] < result["ci_high"]


def test_paired_bootstrap_resamples_within_blocks():
    # Block "x" always differs by +1, block "y" by -1; the block sizes are kept, so every
    # resampled mean is exactly (3 * 1 + 1 * -1) / 4 = 0.5.
    a = np.array([1.0, 1.0, 1.0, 0.0])
    b = np.array([0.0, 0.0, 0.0, 1.0])
    result = paired_bootstrap(a, b, np.array(["x", "x", "x", "y"]))
    assert result["ci_low"] == pytest.approx(0.5) and result["ci_high"] == pytest.approx(0.5)
    assert result["p"] == 0.0
    with pytest.raises(ValueError):
        paired_bootstrap(a, b[:3], np.zeros(4))
