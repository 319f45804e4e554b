"""PVSE: polysemous visual-semantic embeddings (Song & Soleymani, CVPR 2019; SPEC 9).

Why: one embedding per sample (BASE, STYLE, ...) must average every way a sample can
match another modality. PVSE gives each sample K embeddings instead, each attending to
different local parts of it (image cells, words, questionnaire items), and scores two
samples by their best-matching pair of embeddings, ``s(a, b) = max_{k,l} <e_k(a), e_l(b)>``.
The same score trains the model (the MIL ranking loss) and ranks the SPEC 5 pools.

What is here:

- the losses, as plain functions of tensors: :func:`similarity_matrix`,
  :func:`mil_ranking_loss`, :func:`diversity_loss`, :func:`mmd_loss` and their weighted
  sum :func:`pvse_loss`, which returns every part so that each can be logged;
- :func:`max_pair_similarity`, the numpy scorer evaluation uses on the shared pools;
- PIE-Net and one encoder per modality are ``torch.nn`` modules in
  :mod:`crossmod.methods.pie_net` (``build_pie_net``, ``build_encoder``, ...).

Snakemake imports ``crossmod.methods`` while it parses the workflow, and that must not
import torch: each loss here imports it when called, and the modules live in the torch
module :mod:`crossmod.methods.pie_net`.

Conventions, where the paper is loose (SPEC 9 is the decision; the authors' code,
github.com/yalesong/pvse, settles the rest):

- embeddings are L2-normalised, so dot products are cosine similarities; higher = closer;
- MIL: ``c_s`` compares each row's positive with the row (x -> y retrieval), ``c_im``
  each column's positive with the column (y -> x); without hardest negatives the mean is
  over all B x B entries, zeroed diagonal included (as the reference does);
- diversity: Frobenius norm (not squared) of the off-diagonal Gram matrix over K^2;
- MMD: kernel ``exp(-gamma ||a - b||)`` with the plain (not squared) Euclidean distance,
  gamma = 0.5, biased estimate over all pairs (i = i' included), as the reference does;
- both norms are computed by :func:`_safe_sqrt`: exact values, and a zero gradient where
  the norm is exactly zero (a coincident pair, or K = 1), instead of the NaN that
  ``sqrt`` gives there.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import TYPE_CHECKING

import numpy as np

from crossmod.methods.registry import (
    Method,
    NetworkSpec,
    pair_networks,
)
from crossmod.settings import Settings

if TYPE_CHECKING:
    import torch

MMD_GAMMA = 0.5
NUM_EMBEDDINGS = 2  # K
N_ITEMS = 10  # BFI-10 items (SPEC 1)
ANSWER_CENTRE = 3.0  # the middle of the 1..5 answer scale
MODALITIES = ("gaze", "text", "personality")


# --------------------------------------------------------------------------- losses


def _as_sets(x: torch.Tensor) -> torch.Tensor:
    """(B, D) -> (B, 1, D); (B, K, D) unchanged."""
    if x.dim() == 2:
        return x.unsqueeze(1)
    if x.dim() != 3:
        raise ValueError(f"expected (B, K, D) or (B, D) embeddings, got shape {tuple(x.shape)}")
    return x


def _safe_sqrt(squared: torch.Tensor) -> torch.Tensor:
    """``sqrt`` of a non-negative tensor whose gradient is 0 (not NaN) where it is 0.

    Used for Euclidean and Frobenius norms. The gradient of a norm is a unit vector
    everywhere except at zero, where it is undefined and ``sqrt`` backpropagates
    ``0 * inf = NaN``. The double ``where`` keeps the value exact (0 stays 0; no epsilon
    shifts the kernel or the diversity loss) and picks the subgradient 0 there, the same
    choice ``torch.linalg.vector_norm`` makes. A clamp at a small epsilon would also avoid
    the NaN but would move every zero distance to sqrt(epsilon).
    """
    import torch

    positive = squared > 0
    safe = torch.where(positive, squared, torch.ones_like(squared))
    return torch.where(positive, safe.sqrt(), torch.zeros_like(squared))


def similarity_matrix(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``S[i, j] = max_{k, l} <x[i, k], y[j, l]>`` for x (B_x, K, D) and y (B_y, L, D).

    (B, D) inputs count as K = 1. Returns (B_x, B_y). With L2-normalised embeddings this
    is the PVSE score: the cosine similarity of the best-matching pair of embeddings.
    """
    import torch

    x, y = _as_sets(x), _as_sets(y)
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(f"embedding sizes differ: {x.shape[-1]} and {y.shape[-1]}")
    pairs = torch.einsum("ikd,jld->ijkl", x, y)
    return pairs.flatten(start_dim=2).amax(dim=2)


def mil_ranking_loss(
    x: torch.Tensor, y: torch.Tensor, margin: float, max_violation: bool = True
) -> torch.Tensor:
    """MIL ranking loss on B matched pairs (x[i], y[i]): a scalar tensor.

    x (B, K, D) and y (B, L, D) are L2-normalised. With S = :func:`similarity_matrix`,
    ``c_s[i, j] = [margin + S[i, j] - S[i, i]]+`` (negatives y[j] of the query x[i]) and
    ``c_im[i, j] = [margin + S[i, j] - S[j, j]]+`` (negatives x[i] of the query y[j]),
    both with a zero diagonal. ``max_violation`` (hardest negative, VSE++):
    ``mean_i max_j c_s[i, j] + mean_j max_i c_im[i, j]``; otherwise
    ``mean(c_s) + mean(c_im)`` over all B x B entries, the zeroed diagonal included.
    """
    import torch

    s = similarity_matrix(x, y)
    if s.shape[0] != s.shape[1]:
        raise ValueError(f"x and y must hold the same number of pairs, got {tuple(s.shape)}")
    positive = s.diagonal()
    eye = torch.eye(s.shape[0], dtype=torch.bool, device=s.device)
    c_s = (margin + s - positive[:, None]).clamp_min(0).masked_fill(eye, 0.0)
    c_im = (margin + s - positive[None, :]).clamp_min(0).masked_fill(eye, 0.0)
    if max_violation:
        return c_s.amax(dim=1).mean() + c_im.amax(dim=0).mean()
    return c_s.mean() + c_im.mean()


def diversity_loss(residuals: torch.Tensor) -> torch.Tensor:
    """Redundancy among each sample's K residuals (B, K, D): a scalar tensor.

    Each residual vector is L2-normalised, ``G = r r^T`` (K x K per sample) has its
    diagonal (always 1) set to 0, and the loss is ``||G||_F / K^2`` (Frobenius norm, not
    squared) averaged over the batch. It is 0 when the K residuals are orthogonal, and
    always 0 for K = 1 (with a zero, not NaN, gradient).
    """
    import torch
    import torch.nn.functional as F

    if residuals.dim() != 3:
        raise ValueError(f"expected (B, K, D) residuals, got shape {tuple(residuals.shape)}")
    k = residuals.shape[1]
    r = F.normalize(residuals, dim=-1)
    gram = r @ r.transpose(1, 2)
    eye = torch.eye(k, dtype=torch.bool, device=gram.device)
    off_diagonal = gram.masked_fill(eye, 0.0)
    frobenius = _safe_sqrt(off_diagonal.pow(2).sum(dim=(1, 2)))
    return (frobenius / k**2).mean()


def _kernel_mean(a: torch.Tensor, b: torch.Tensor, gamma: float) -> torch.Tensor:
    """Mean of ``exp(-gamma ||a_i - b_j||)`` over all (i, j), the distance not squared.

    Distances come from ``|a|^2 + |b|^2 - 2 a.b`` (one matrix product: forming the
    N x M x D differences cost 90% of a PVSE training step). That expansion turns the
    exact zeros of identical vectors into rounding noise of about 1e-7 whose square root
    (3e-4) has an arbitrary gradient; the zeros that matter, the i = i' pairs of
    ``k(x, x')``, are therefore set to exactly 0 when ``a`` is ``b``, and
    :func:`_safe_sqrt` gives them the subgradient 0.
    """
    import torch

    squared = (a * a).sum(dim=1)[:, None] + (b * b).sum(dim=1)[None, :] - 2 * a @ b.T
    squared = squared.clamp_min(0)
    if a is b:
        same = torch.eye(len(a), dtype=torch.bool, device=a.device)
        squared = squared.masked_fill(same, 0.0)
    return torch.exp(-gamma * _safe_sqrt(squared)).mean()


def mmd_loss(x: torch.Tensor, y: torch.Tensor, gamma: float = MMD_GAMMA) -> torch.Tensor:
    """Squared MMD between embeddings x (N, D) and y (M, D): a scalar tensor.

    Kernel ``k(a, b) = exp(-gamma * ||a - b||)`` with the Euclidean norm (not squared);
    biased estimate ``mean k(x, x') - 2 mean k(x, y) + mean k(y, y')`` over all pairs,
    i = i' included. The norm's gradient is undefined at a - b = 0 (every i = i' pair):
    it is taken as 0 there (see :func:`_safe_sqrt` and :func:`_kernel_mean`), so the
    gradient is finite and the value exact.
    """
    if x.dim() != 2 or y.dim() != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"expected (N, D) and (M, D), got {tuple(x.shape)}, {tuple(y.shape)}")
    return _kernel_mean(x, x, gamma) - 2 * _kernel_mean(x, y, gamma) + _kernel_mean(y, y, gamma)


def pvse_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    rx: torch.Tensor | None,
    ry: torch.Tensor | None,
    margin: float,
    diversity_weight: float,
    mmd_weight: float,
    max_violation: bool = True,
) -> dict[str, torch.Tensor]:
    """The PVSE objective on a batch of B matched pairs, with each of its parts.

    x (B, K, D), y (B, L, D): the two modalities' embeddings; rx, ry: their residuals
    (None for the global-only model). Returns ``{"mil", "diversity", "mmd", "total"}``
    with ``total = mil + diversity_weight * diversity + mmd_weight * mmd``, where
    ``diversity = div(rx) + div(ry)`` and ``mmd`` is taken between the embeddings
    flattened to (B*K, D) and (B*L, D). Both extra terms apply only when a modality has
    more than one embedding; otherwise they are reported as 0. A term whose weight is 0
    is still computed (without gradient) so that its curve can be logged.
    """
    import torch

    x, y = _as_sets(x), _as_sets(y)
    mil = mil_ranking_loss(x, y, margin, max_violation)
    diversity = mil.new_zeros(())
    mmd = mil.new_zeros(())
    if max(x.shape[1], y.shape[1]) > 1:
        if rx is None or ry is None:
            raise ValueError("residuals rx and ry are needed when K > 1")
        grad = torch.is_grad_enabled()
        with torch.set_grad_enabled(grad and diversity_weight != 0):
            diversity = diversity_loss(rx) + diversity_loss(ry)
        with torch.set_grad_enabled(grad and mmd_weight != 0):
            mmd = mmd_loss(x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1]))
    total = mil + diversity_weight * diversity + mmd_weight * mmd
    return {"mil": mil, "diversity": diversity, "mmd": mmd, "total": total}


# ---------------------------------------------------------------------- evaluation


def max_pair_similarity(queries: np.ndarray, candidates: np.ndarray, k: int) -> np.ndarray:
    """PVSE scores of each query against its own pool: (n, P), higher = closer.

    ``queries`` (n, K*D) and ``candidates`` (n, P, K*D) hold each sample's K embeddings
    flattened in order (``embeddings.reshape(n, K * D)``). The score of a query and a
    candidate is the largest dot product over their K x K pairs of embeddings.
    """
    q = np.asarray(queries)
    c = np.asarray(candidates)
    if q.ndim != 2 or c.ndim != 3 or c.shape[0] != q.shape[0] or c.shape[2] != q.shape[1]:
        raise ValueError(f"expected (n, K*D) and (n, P, K*D), got {q.shape} and {c.shape}")
    if k < 1 or q.shape[1] % k:
        raise ValueError(f"embedding width {q.shape[1]} is not a multiple of k={k}")
    n, p, d = q.shape[0], c.shape[1], q.shape[1] // k
    pairs = np.einsum("nkd,npld->npkl", q.reshape(n, k, d), c.reshape(n, p, k, d))
    return pairs.reshape(n, p, k * k).max(axis=2)


# --------------------------------------------------------------------- the method


@dataclass(frozen=True)
class PVSESettings(Settings):
    """The ``pvse`` section (defaults and meanings: the config schema)."""

    SECTION = "pvse"
    WORKFLOW_KEYS = ("ablations",)

    k: int
    steps: int
    margin: float
    max_violation: bool
    diversity_weight: float
    mmd_weight: float
    learning_rate: float
    grad_clip: float
    dropout: float
    global_only: bool


def inputs(spec: NetworkSpec, data) -> dict[str, np.ndarray]:
    """Per-annotation inputs of each modality, from the local-feature cache (one row each)."""
    cache = data.extras["locals"]
    if not np.array_equal(cache["annotation_id"], data.annotation_ids):
        raise ValueError("the local-feature cache lists other annotations than the features")
    grids = cache["grids"].reshape(len(cache["grids"]), -1)
    chosen = {
        "gaze": np.hstack([cache["map_row"][:, None].astype(np.float32), grids]),
        "text": cache["tokens"].astype(np.int64),
        "personality": data.features["personality"],
    }
    return {m: chosen[m] for m in spec.modalities}


def build(spec: NetworkSpec, data, settings, method_settings: PVSESettings):
    """PIE-Net encoders for the network's modalities; gradients clipped as the reference."""
    import torch

    from crossmod.methods.pie_net import PVSENetwork

    cache = data.extras["locals"]
    model = PVSENetwork(
        spec.modalities,
        settings.dim,
        method_settings.k,
        method_settings.dropout,
        method_settings.global_only,
        torch.from_numpy(np.ascontiguousarray(cache["cells"])),
        torch.from_numpy(np.ascontiguousarray(cache["vocabulary"])),
    )
    model.method_settings = method_settings
    model.grad_clip = method_settings.grad_clip
    return model


def loss(model, spec: NetworkSpec, outputs, keys, settings) -> dict:
    """The PVSE objective summed over the network's modality pairs, with its parts."""
    chosen: PVSESettings = model.method_settings
    total: dict = {}
    for x, y in combinations(spec.retrieval_modalities, 2):
        (ex, rx), (ey, ry) = outputs[x], outputs[y]
        parts = pvse_loss(
            ex,
            ey,
            rx,
            ry,
            chosen.margin,
            chosen.diversity_weight,
            chosen.mmd_weight,
            chosen.max_violation,
        )
        total = {k: total.get(k, 0) + v for k, v in parts.items()}
    return total


def similarity(model, spec, query, answer, queries, candidates) -> np.ndarray:
    """max over the K x K embedding pairs of the dot product (SPEC 9)."""
    return max_pair_similarity(queries, candidates, model.k)


def optimizer(model, settings):
    """Adam with AMSGrad, the reference's learning rate."""
    from crossmod.training import optimizers

    rate = model.method_settings.learning_rate
    return optimizers.Adam(model.parameters(), lr=rate, amsgrad=True)


METHOD = Method(
    name="pvse",
    label="PVSE",
    order=5,
    colour="#8c564b",
    networks=pair_networks("pvse"),
    build=build,
    loss=loss,
    similarity=similarity,
    optimizer=optimizer,
    inputs=inputs,
    settings=PVSESettings,
    needs=("locals",),
    in_paper_summary=False,
)
