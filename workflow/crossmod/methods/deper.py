"""DEPER's core pieces (SPEC 10): the losses, the subject memory bank, FiLM and CLS.

DEPER (Xue et al., 2025) learns a subject embedding z_s from an (image, caption,
attention trajectory) triplet. SPEC 10 fixes its details from the authors' released
code; this module holds the parts that the rest of the method is built on and that
can be checked by hand:

- :func:`supcon_loss`: the supervised contrastive loss of a batch against a bank;
- :class:`SubjectMemoryBank`: the bank (latest embedding per subject + a FIFO);
- :func:`supcon_with_bank`: the order of use SPEC 10 decides (bank read before the
  batch is added);
- ``FiLM`` (the decoder's conditioning on z_s) is a ``torch.nn`` module in
  :mod:`crossmod.methods.deper_net`, with the networks to come;
- :func:`trajectory_loss`: the trajectory decoder's position + validity loss;
- :func:`centre_by_group`: embeddings centred on their image within a batch (the
  ``centre: image`` training);
- :func:`cls_metric`, :func:`cls_over_images`, :func:`cls_chance`: the reference's
  ``eval_cls`` (does a reference caption pick out the caption generated for its own
  author?).

Snakemake imports ``crossmod.methods.*`` while it parses the workflow, where torch
must not be imported (registry.py): each function here imports it when it runs, and
the ``nn.Module`` classes live in the torch module :mod:`crossmod.methods.deper_net`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from crossmod.settings import Settings

if TYPE_CHECKING:
    import torch

TEMPERATURE = 0.07
"""SupCon temperature t (SPEC 10)."""
BANK_SIZE = 4096
"""Length of the memory bank's FIFO (SPEC 10)."""
MAX_STEPS = 30
"""At most this many steps per trajectory (SPEC 10); longer ones keep their first steps.

Here, with the method, rather than with the trajectory builder
(:mod:`crossmod.features.trajectories`, which reads it from here): a training job needs
the number, and the builder's imports (scipy.ndimage, scikit-image, the release
reader) would add about half a second to each of its start-ups.
"""
SMOOTH_L1_BETA = 1.0 / 9.0
"""SmoothL1's switch from quadratic to linear, in normalised image units (SPEC 10)."""


@dataclass(frozen=True)
class DeperSettings(Settings):
    """The ``deper`` section (defaults and meanings: the config schema)."""

    SECTION = "deper"
    WORKFLOW_KEYS = ("baselines", "ablations")

    dim: int
    heads: int
    layers: int
    dropout: float
    streams: str
    order_code: bool
    classifier_scale: float
    summary_path: bool
    summary_learning_rate: float
    word_dropout: float
    click_dropout: float
    steps: int
    batch_subjects: int
    samples_per_subject: int
    learning_rate: float
    weight_decay: float
    trajectory_weight: float
    subject_weight: float
    supcon_weight: float
    temperature: float
    bank_size: int
    eval_every: int
    patience: int
    shots: tuple[int, ...]
    draws: int
    centre: str
    seed: int


def _zero_loss(anchors: torch.Tensor) -> torch.Tensor:
    """A zero that is still part of the graph, so ``loss.backward()`` works (zero grads).

    A fresh ``tensor(0.0)`` has no grad_fn and would make a training step that happens
    to have no positives (e.g. the first batch, against an empty bank) raise.
    """
    return anchors.sum() * 0.0


def supcon_loss(
    anchors: torch.Tensor,
    anchor_labels: torch.Tensor,
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    temperature: float = TEMPERATURE,
) -> torch.Tensor:
    """Supervised contrastive loss of ``anchors`` (A, D) against ``bank`` (N, D).

    Both are L2-normalised (the loss depends on directions only), ``s = a b^T / t`` and
    ``log_p = s - logsumexp_row(s)``: each anchor's softmax over the whole bank. An
    anchor with at least one bank entry of its own label scores
    ``loss_a = -mean_{n: same label} log_p[a, n]``, pulling its subject's entries closer
    than every other entry; the loss is the mean of ``loss_a`` over those anchors.
    Anchors whose subject is not in the bank are left out (they have nothing to be
    pulled towards), and with no such anchor or an empty bank the loss is a zero that
    still backpropagates. Gradients flow into the anchors (and into the bank only if
    the caller passes a bank that requires them; the memory bank's does not).
    """
    import torch
    import torch.nn.functional as F

    if anchors.ndim != 2 or bank.ndim != 2:
        raise ValueError(f"anchors and bank must be 2-D, got {anchors.shape}, {bank.shape}")
    if len(anchors) == 0 or len(bank) == 0:
        return _zero_loss(anchors)
    if anchors.shape[1] != bank.shape[1]:
        raise ValueError(f"anchor dim {anchors.shape[1]} != bank dim {bank.shape[1]}")
    a = F.normalize(anchors, dim=1)
    b = F.normalize(bank.to(anchors.dtype), dim=1)
    s = a @ b.T / temperature  # (A, N)
    log_p = s - torch.logsumexp(s, dim=1, keepdim=True)
    positive = anchor_labels.reshape(-1, 1) == bank_labels.reshape(1, -1).to(anchor_labels)
    n_positive = positive.sum(dim=1)
    has_positive = n_positive > 0
    if not bool(has_positive.any()):
        return _zero_loss(anchors)
    per_anchor = -(log_p * positive).sum(dim=1)[has_positive] / n_positive[has_positive]
    return per_anchor.mean()


class SubjectMemoryBank:
    """The contrastive bank: the latest embedding per subject plus a FIFO of recent ones.

    The per-subject entry guarantees that every subject seen so far has a positive,
    however long ago it was seen; the FIFO of the last ``size`` embeddings (all
    subjects, oldest dropped first) supplies many positives and negatives at once.
    Everything stored is detached and copied, so the bank never holds a graph or sees
    later in-place changes. Use :meth:`contents` for the loss, then :meth:`add` the
    batch (or :func:`supcon_with_bank`, which does both): SPEC 10 builds the bank
    BEFORE the batch is added, so an anchor is never its own positive.

    ``contents`` lists the per-subject entries first (by subject label), then the FIFO
    oldest first; an embedding can appear in both, which gives recent subjects a little
    more weight, as in the reference.
    """

    def __init__(self, size: int = BANK_SIZE) -> None:
        if size < 0:
            raise ValueError(f"bank size must be >= 0, got {size}")
        self.size = int(size)
        self._latest: dict[int, torch.Tensor] = {}
        self._fifo: deque[tuple[torch.Tensor, int]] = deque(maxlen=self.size)
        self._dim: int | None = None

    def __len__(self) -> int:
        """The number of rows :meth:`contents` returns."""
        return len(self._latest) + len(self._fifo)

    def add(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        """Store a batch: (B, D) embeddings with their (B,) integer subject labels."""
        if embeddings.ndim != 2 or len(embeddings) != len(labels):
            raise ValueError(
                f"need (B, D) embeddings and (B,) labels, got {embeddings.shape}, {labels.shape}"
            )
        if self._dim is not None and embeddings.shape[1] != self._dim:
            raise ValueError(f"embedding dim {embeddings.shape[1]} != bank dim {self._dim}")
        self._dim = int(embeddings.shape[1])
        rows = embeddings.detach().clone()
        for row, label in zip(rows, labels.tolist(), strict=True):
            self._latest[int(label)] = row
            self._fifo.append((row, int(label)))

    def contents(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(embeddings (N, D), labels (N,) long) as stored now; N = 0 when empty."""
        import torch

        subjects = sorted(self._latest)
        rows = [self._latest[s] for s in subjects] + [row for row, _ in self._fifo]
        labels = subjects + [label for _, label in self._fifo]
        if not rows:
            return torch.zeros((0, self._dim or 0)), torch.zeros(0, dtype=torch.long)
        stacked = torch.stack(rows)
        return stacked, torch.tensor(labels, dtype=torch.long, device=stacked.device)


def supcon_with_bank(
    bank: SubjectMemoryBank,
    anchors: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = TEMPERATURE,
) -> torch.Tensor:
    """SupCon of a batch against ``bank`` as it was before the batch; then add the batch.

    The one place that fixes SPEC 10's order of use. (The reference adds the batch
    first, so each anchor also meets its own detached copy as a positive; SPEC 10
    decides against that, since such a positive carries no information about the
    subject.)
    """
    bank_embeddings, bank_labels = bank.contents()
    bank_embeddings = bank_embeddings.to(anchors.device)
    loss = supcon_loss(anchors, labels, bank_embeddings, bank_labels.to(labels.device), temperature)
    bank.add(anchors, labels)
    return loss


def centre_by_group(z: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Rows L2-normalised, then each minus the mean of the rows of its group.

    ``z`` (B, D), ``groups`` (B,) integer labels (here: the annotated image). A row whose
    group has no other row in the batch is left normalised but uncentred: there is no
    one to compare it with, and centring would zero it. The training twin of
    :func:`crossmod.evaluation.fewshot.centre_on_images`: with ``centre: image`` the
    subject classifier and SupCon read embeddings centred on their image within the
    batch, so that recognising a training subject's image set no longer pays and only
    what tells apart the people who saw the same image does.
    """
    import torch
    import torch.nn.functional as F

    unit = F.normalize(z, dim=1)
    _, index = torch.unique(groups, return_inverse=True)
    members = F.one_hot(index).to(unit.dtype)  # (B, G)
    counts = members.sum(dim=0)  # (G,)
    means = (members.T @ unit) / counts[:, None]
    shared = (counts[index] > 1).to(unit.dtype)[:, None]
    return unit - shared * means[index]


def trajectory_loss(
    pred_xy: torch.Tensor,
    pred_valid_logits: torch.Tensor,
    target_xy: torch.Tensor,
    target_valid: torch.Tensor,
) -> torch.Tensor:
    """The trajectory decoder's loss: SmoothL1 on valid steps' positions + validity BCE.

    Shapes: positions (..., T, 2) in [0, 1], validity (..., T) (logits; targets bool or
    0/1). Position term: SmoothL1 with beta = 1/9 per coordinate, summed over x and y,
    then averaged over the valid steps only (padding has no position to match); as in
    the reference's box loss, which sums over coordinates and divides by the number of
    valid steps. Validity term: binary cross-entropy with logits averaged over all
    steps, padding included, because predicting where a trajectory ends is the point of
    it. With no valid step the position term is zero.
    """
    import torch.nn.functional as F

    valid = target_valid.to(pred_xy.dtype)
    per_step = F.smooth_l1_loss(pred_xy, target_xy, beta=SMOOTH_L1_BETA, reduction="none")
    per_step = per_step.sum(dim=-1)  # (..., T)
    position = (per_step * valid).sum() / valid.sum().clamp_min(1.0)
    validity = F.binary_cross_entropy_with_logits(pred_valid_logits, valid)
    return position + validity


def _cls_successes(scores: np.ndarray) -> np.ndarray:
    """Per reference i: its expected success when ties at the top are broken at random.

    1 when its own caption scores strictly highest, 1/k when it is one of k captions
    tied for the highest score, 0 otherwise. Ties are exact, as in the project's other
    ranks: identical captions are scored by the same computation, so they tie bit for bit.
    """
    matrix = np.asarray(scores, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"scores must be a square N x N matrix, got shape {matrix.shape}")
    if len(matrix) < 2:
        raise ValueError("CLS needs at least two annotators of the image")
    if not np.isfinite(matrix).all():
        raise ValueError("scores contain non-finite values")
    at_top = matrix == matrix.max(axis=1, keepdims=True)
    own_at_top = np.diag(at_top)
    return np.where(own_at_top, 1.0 / at_top.sum(axis=1), 0.0)


def cls_metric(scores: np.ndarray) -> float:
    """CLS of one image: the fraction of references whose own caption ranks first.

    ``scores[i, j]`` is the caption metric of reference i (annotator i's caption)
    against the caption generated for annotator j, for the N >= 2 annotators of the
    image. Reference i succeeds when ``scores[i, i]`` is the highest of its row; when
    k captions tie for the highest score and its own is among them, it gets 1/k, its
    expected success under a random tie-break. So a model whose captions do not differ
    between annotators (every row tied) gets exactly chance, 1/N: it neither passes
    for personalisation nor falls below chance, which is what an indifferent model
    should score. (The reference breaks ties by a stable sort, in favour of the
    annotator listed first: the same 1/N for a fully tied image, but biased by
    listing order.)
    """
    return float(_cls_successes(scores).mean())


def cls_over_images(score_matrices: Sequence[np.ndarray]) -> float:
    """CLS over a set: successes / references over all images with N >= 2 annotators.

    References are pooled (not per-image CLS averaged), as the reference does, so an
    image counts in proportion to its annotators. Images with fewer than two
    annotators are skipped (nothing to tell apart). NaN when no image qualifies, so an
    empty evaluation cannot pass for a score of 0.
    """
    successes, references = 0.0, 0
    for scores in score_matrices:
        if len(np.asarray(scores)) < 2:
            continue
        hits = _cls_successes(scores)
        successes += float(hits.sum())
        references += len(hits)
    return successes / references if references else float("nan")


def cls_chance(score_matrices: Sequence[np.ndarray]) -> float:
    """The CLS a random ranking would get on the same images: images / references.

    Each reference of an N-annotator image succeeds with probability 1/N, so the
    expected pooled CLS is sum_images N (1/N) / sum_images N (images with N >= 2).
    """
    sizes = [len(np.asarray(s)) for s in score_matrices]
    sizes = [n for n in sizes if n >= 2]
    return len(sizes) / sum(sizes) if sizes else float("nan")
