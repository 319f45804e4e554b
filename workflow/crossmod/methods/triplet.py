"""One triplet engine for every method (SPEC 4).

A loss is a list of :class:`~crossmod.methods.terms.Term`. A term names the anchor
modality, the other modality, the grouping key that defines positives (``image``: same
image; ``user``: same user; ``user_image``: same user on the same image, i.e. the same
annotation) and how negatives are used (``all``: every negative; ``semihard``: TensorFlow's
semi-hard mining). For anchor i in the batch:

- positives p: samples with the same key as i; when anchor and other modality are
  the same, i itself is excluded ("another annotator's sample on image i");
- negatives n: samples with a different key.

A term contributes the mean of ``[d(a_i, o_p) - d(a_i, o_n) + margin]+`` over its valid
(i, p, n) triplets (``all``) or (i, p) pairs with the mined n (``semihard``), with
d the squared Euclidean distance. CONTENT (Eq. 1), STYLE (Eq. 2), BASE (Eq. 3), the
content subset used inside OURS and every JOINT loss are lists of such terms
(declared in ``crossmod.methods.base``, ``content`` and ``style``), not separate
hand-written losses.
"""

from __future__ import annotations

import torch

from crossmod.methods.terms import Term


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(n, d), (m, d) -> (n, m) squared Euclidean distances (clamped at 0 for rounding)."""
    a2 = (a * a).sum(dim=1, keepdim=True)
    b2 = (b * b).sum(dim=1, keepdim=True).T
    return (a2 + b2 - 2 * a @ b.T).clamp_min(0)


def masks(key: torch.Tensor, same_modality: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive and negative masks (B, B) from one integer key per sample."""
    same = key[:, None] == key[None, :]
    positive = same.clone()
    if same_modality:
        positive.fill_diagonal_(False)
    return positive, ~same


def _positive_pairs(positive: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    anchor, pos = positive.nonzero(as_tuple=True)
    return anchor, pos


def hinge_all(
    d: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    margin: float,
    pairs: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum and count of hinge losses over every valid (i, p, n).

    Positives are sparse (a few per anchor), so the (anchor, positive) pairs are
    gathered first: the work is (pairs x B), not B^3.
    """
    anchor, pos = pairs if pairs is not None else _positive_pairs(positive)
    neg_mask = negative[anchor]  # (M, B)
    hinge = torch.relu(d[..., anchor, pos][..., None] - d[..., anchor, :] + margin)
    return (hinge * neg_mask).sum(dim=(-2, -1)), neg_mask.sum()


def semihard_negatives(
    d: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    pairs: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each valid (anchor, positive) pair: its indices and the mined negative's distance.

    Semi-hard (as TensorFlow's ``triplet_semihard_loss``): the negative with the
    smallest d(i, n) among those with d(i, n) > d(i, p); if there is none, the
    negative with the largest d(i, n). Anchors without any negative are skipped.
    """
    anchor, pos = pairs if pairs is not None else _positive_pairs(positive)
    has_negative = negative[anchor].any(dim=1)
    anchor, pos = anchor[has_negative], pos[has_negative]
    d_pos = d[..., anchor, pos][..., None]  # (..., M, 1)
    d_neg = d[..., anchor, :]  # (..., M, B)
    neg_mask = negative[anchor]
    farther = neg_mask & (d_neg > d_pos)
    inf = torch.tensor(float("inf"), dtype=d.dtype, device=d.device)
    semihard = torch.where(farther, d_neg, inf).amin(dim=-1)
    hardest = torch.where(neg_mask, d_neg, -inf).amax(dim=-1)
    chosen = torch.where(farther.any(dim=-1), semihard, hardest)
    return anchor, pos, chosen


def hinge_semihard(
    d: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    margin: float,
    pairs: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    anchor, pos, chosen = semihard_negatives(d, positive, negative, pairs)
    hinge = torch.relu(d[..., anchor, pos] - chosen + margin)
    return hinge.sum(dim=-1), torch.tensor(len(anchor))


class _BatchCache:
    """What several terms of one loss share: distance matrices, masks, positive pairs.

    d(y, x) is d(x, y) transposed, and every term with the same key and the same
    "within one modality" flag has the same masks, so each is computed once per batch.
    """

    def __init__(self, embeddings: dict[str, torch.Tensor], keys: dict[str, torch.Tensor]):
        self.embeddings, self.keys = embeddings, keys
        self._distances: dict[tuple[str, str], torch.Tensor] = {}
        self._masks: dict[tuple[str, bool], tuple] = {}

    def distances(self, anchor: str, other: str) -> torch.Tensor:
        if (anchor, other) not in self._distances:
            if (other, anchor) in self._distances:
                return self._distances[(other, anchor)].T
            self._distances[(anchor, other)] = squared_distances(
                self.embeddings[anchor], self.embeddings[other]
            )
        return self._distances[(anchor, other)]

    def masks(self, key: str, same_modality: bool) -> tuple:
        if (key, same_modality) not in self._masks:
            positive, negative = masks(self.keys[key], same_modality)
            self._masks[(key, same_modality)] = (positive, negative, _positive_pairs(positive))
        return self._masks[(key, same_modality)]


def _group_losses(terms: list[Term], cache: _BatchCache, margin: float) -> torch.Tensor:
    """Mean hinges of terms sharing key, modality flag and mining, as one stacked computation.

    Such terms share their masks and positive pairs; stacking their distance matrices
    into (T, B, B) makes one pass of small tensor operations instead of T.
    """
    first = terms[0]
    d = torch.stack([cache.distances(t.anchor, t.other) for t in terms])
    positive, negative, pairs = cache.masks(first.key, first.anchor == first.other)
    hinge = hinge_all if first.mining == "all" else hinge_semihard
    totals, count = hinge(d, positive, negative, margin, pairs)
    return totals / count.clamp_min(1)


def term_loss(
    term: Term,
    embeddings: dict[str, torch.Tensor],
    keys: dict[str, torch.Tensor],
    margin: float,
) -> torch.Tensor:
    """Mean hinge of one term over its valid triplets (0 when the batch has none)."""
    return _group_losses([term], _BatchCache(embeddings, keys), margin)[0]


def triplet_loss(
    terms: list[Term] | tuple[Term, ...],
    embeddings: dict[str, torch.Tensor],
    keys: dict[str, torch.Tensor],
    margin: float = 0.2,
) -> torch.Tensor:
    """The sum of the terms' mean hinges: the loss of any triplet method."""
    cache = _BatchCache(embeddings, keys)
    groups: dict[tuple[str, bool, str], list[Term]] = {}
    for term in terms:
        groups.setdefault((term.key, term.anchor == term.other, term.mining), []).append(term)
    return torch.cat([_group_losses(group, cache, margin) for group in groups.values()]).sum()
