"""VEIT: the bilinear baseline, our adaptation of Veit et al. (CVPR 2018).

Their code is unpublished. One linear layer per modality into m = 200 and a full
m x m interaction matrix W score a pair as ``s(x, y) = f(x)^T W g(y)`` (x the modality
listed first in the network); parameters O((d1 + d2) m + m^2), as the paper says.
Their user-conditional prediction becomes "which in-batch sample of the other modality
belongs to this annotation": the softmax cross-entropy of the positive over the
in-batch candidates, both directions, summed over the network's pairs. Networks:
``veit_{tg,gp,tp}`` and ``joint_veit``.
"""

from __future__ import annotations

from itertools import combinations
from typing import TYPE_CHECKING

from crossmod.methods import linear
from crossmod.methods.registry import (
    Method,
    NetworkSpec,
    pair_networks,
)

if TYPE_CHECKING:
    import numpy as np
    import torch

    from crossmod.training.loop import TrainSettings


def build(spec: NetworkSpec, data, settings: TrainSettings, method_settings=None):
    """The linear encoders plus the interaction matrix W."""
    return linear.build(spec, data, settings, bilinear=True)


def bilinear_scores(x: torch.Tensor, y: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """(..., n, m) scores ``x_i^T W y_j`` (a leading stack of splits carries through)."""
    return x @ W @ y.transpose(-1, -2)


def veit_loss(
    embeddings: dict[str, torch.Tensor], W: torch.Tensor, pairs: list[tuple[str, str]]
) -> torch.Tensor:
    """Softmax cross-entropy of the positive (the same annotation) over the batch, both ways.

    One batch ((B, D) embeddings, W (D, D)) gives a scalar; a stack of S batches
    ((S, B, D), W (S, D, D)) gives the (S,) losses of each.
    """
    import torch
    import torch.nn.functional as F

    total = None
    for x, y in pairs:
        logits = bilinear_scores(embeddings[x], embeddings[y], W)
        lead, n = logits.shape[:-2], logits.shape[-1]
        flat = logits.reshape(-1, n, n)
        target = torch.arange(n, device=logits.device).expand(len(flat), n)
        # rows: x -> which y (classes along columns); columns: y -> which x.
        rows = F.cross_entropy(flat.transpose(1, 2), target, reduction="none").mean(dim=1)
        columns = F.cross_entropy(flat, target, reduction="none").mean(dim=1)
        part = (rows + columns).reshape(lead)
        total = part if total is None else total + part
    return total


def loss(model, spec: NetworkSpec, embeddings, keys, settings: TrainSettings) -> torch.Tensor:
    return veit_loss(embeddings, model.W, list(combinations(spec.retrieval_modalities, 2)))


def similarity(
    model, spec: NetworkSpec, query: str, answer: str, queries: np.ndarray, candidates: np.ndarray
) -> np.ndarray:
    """(n, pool) bilinear scores, W read the way round the network's modalities are listed."""
    import numpy as np

    W = model.W.detach().cpu().numpy()
    if spec.modalities.index(query) < spec.modalities.index(answer):
        return np.einsum("nd,nkd->nk", queries @ W, candidates)
    return np.einsum("nkd,nd->nk", candidates @ W, queries)


METHOD = Method(
    name="veit",
    label="VEIT",
    order=0,
    colour="#1f77b4",
    networks=pair_networks("veit"),
    build=build,
    loss=loss,
    similarity=similarity,
    stackable=True,
)
