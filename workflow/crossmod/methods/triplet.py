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
    """(..., n, d), (..., m, d) -> (..., n, m) squared Euclidean distances (clamped at 0)."""
    a2 = (a * a).sum(dim=-1, keepdim=True)
    b2 = (b * b).sum(dim=-1).unsqueeze(-2)
    return (a2 + b2 - 2 * a @ b.transpose(-1, -2)).clamp_min(0)


def masks(key: torch.Tensor, same_modality: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive and negative masks (..., B, B) from one integer key per sample (..., B)."""
    same = key[..., :, None] == key[..., None, :]
    positive = same.clone()
    if same_modality:
        positive &= ~torch.eye(key.shape[-1], dtype=torch.bool, device=key.device)
    return positive, ~same


# Internally every batch is a stack of S independent batches (S = 1 for one network on
# one split; S = the splits of a network trained at once, crossmod.training.stacked):
# distances (T, S, B, B) for T stacked terms, masks (S, B, B), and the positive pairs
# as flat index triples (s, anchor, positive).
Pairs = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _positive_pairs(positive: torch.Tensor) -> Pairs:
    return positive.nonzero(as_tuple=True)


def _stacked_hinge_all(
    d: torch.Tensor, negative: torch.Tensor, margin: float, pairs: Pairs
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per split: sum (T, S) and count (S,) of hinges over every valid (i, p, n).

    Positives are sparse (a few per anchor), so the (anchor, positive) pairs are
    gathered first: the work is (pairs x B), not B^3.
    """
    s, anchor, pos = pairs
    neg_mask = negative[s, anchor]  # (M, B)
    hinge = torch.relu(d[:, s, anchor, pos][..., None] - d[:, s, anchor, :] + margin)
    per_pair = (hinge * neg_mask).sum(dim=-1)  # (T, M)
    splits = negative.shape[0]
    totals = d.new_zeros(d.shape[0], splits).index_add_(1, s, per_pair)
    counts = d.new_zeros(splits).index_add_(0, s, neg_mask.sum(dim=-1).to(d.dtype))
    return totals, counts


def _stacked_semihard(
    d: torch.Tensor, negative: torch.Tensor, pairs: Pairs
) -> tuple[Pairs, torch.Tensor]:
    """The valid (s, anchor, positive) pairs and each one's mined negative distance (T, M).

    Semi-hard (as TensorFlow's ``triplet_semihard_loss``): the negative with the
    smallest d(i, n) among those with d(i, n) > d(i, p); if there is none, the
    negative with the largest d(i, n). Anchors without any negative are skipped.
    """
    s, anchor, pos = pairs
    has_negative = negative[s, anchor].any(dim=1)
    s, anchor, pos = s[has_negative], anchor[has_negative], pos[has_negative]
    d_pos = d[:, s, anchor, pos][..., None]  # (T, M, 1)
    d_neg = d[:, s, anchor, :]  # (T, M, B)
    neg_mask = negative[s, anchor]
    farther = neg_mask & (d_neg > d_pos)
    inf = torch.tensor(float("inf"), dtype=d.dtype, device=d.device)
    semihard = torch.where(farther, d_neg, inf).amin(dim=-1)
    hardest = torch.where(neg_mask, d_neg, -inf).amax(dim=-1)
    return (s, anchor, pos), torch.where(farther.any(dim=-1), semihard, hardest)


def _stacked_hinge_semihard(
    d: torch.Tensor, negative: torch.Tensor, margin: float, pairs: Pairs
) -> tuple[torch.Tensor, torch.Tensor]:
    (s, anchor, pos), chosen = _stacked_semihard(d, negative, pairs)
    hinge = torch.relu(d[:, s, anchor, pos] - chosen + margin)  # (T, M)
    splits = negative.shape[0]
    totals = d.new_zeros(d.shape[0], splits).index_add_(1, s, hinge)
    counts = d.new_zeros(splits).index_add_(0, s, torch.ones_like(s, dtype=d.dtype))
    return totals, counts


def _one(d: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor):
    """A single (B, B) batch as a stack of one."""
    return d[None, None], positive[None], negative[None]


def hinge_all(
    d: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum and count of hinge losses over every valid (i, p, n) of one (B, B) batch."""
    d, positive, negative = _one(d, positive, negative)
    totals, counts = _stacked_hinge_all(d, negative, margin, _positive_pairs(positive))
    return totals[0, 0], counts[0]


def semihard_negatives(
    d: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each valid (anchor, positive) pair of one batch: its indices and the mined d."""
    d, positive, negative = _one(d, positive, negative)
    (_, anchor, pos), chosen = _stacked_semihard(d, negative, _positive_pairs(positive))
    return anchor, pos, chosen[0]


def hinge_semihard(
    d: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float
) -> tuple[torch.Tensor, torch.Tensor]:
    d, positive, negative = _one(d, positive, negative)
    totals, counts = _stacked_hinge_semihard(d, negative, margin, _positive_pairs(positive))
    return totals[0, 0], counts[0]


class _BatchCache:
    """What several terms of one loss share: distance matrices, masks, positive pairs.

    d(y, x) is d(x, y) transposed, and every term with the same key and the same
    "within one modality" flag has the same masks, so each is computed once per batch.
    Embeddings are (S, B, D), keys (S, B).
    """

    def __init__(self, embeddings: dict[str, torch.Tensor], keys: dict[str, torch.Tensor]):
        self.embeddings, self.keys = embeddings, keys
        self._distances: dict[tuple[str, str], torch.Tensor] = {}
        self._masks: dict[tuple[str, bool], tuple] = {}

    def distances(self, anchor: str, other: str) -> torch.Tensor:
        if (anchor, other) not in self._distances:
            if (other, anchor) in self._distances:
                return self._distances[(other, anchor)].transpose(-1, -2)
            self._distances[(anchor, other)] = squared_distances(
                self.embeddings[anchor], self.embeddings[other]
            )
        return self._distances[(anchor, other)]

    def masks(self, key: str, same_modality: bool) -> tuple:
        if (key, same_modality) not in self._masks:
            positive, negative = masks(self.keys[key], same_modality)
            self._masks[(key, same_modality)] = (negative, _positive_pairs(positive))
        return self._masks[(key, same_modality)]


def _group_losses(terms: list[Term], cache: _BatchCache, margin: float) -> torch.Tensor:
    """(T, S) mean hinges of terms sharing key, modality flag and mining, stacked.

    Such terms share their masks and positive pairs; stacking their distance matrices
    into (T, S, B, B) makes one pass of small tensor operations instead of T.
    """
    first = terms[0]
    d = torch.stack([cache.distances(t.anchor, t.other) for t in terms])
    negative, pairs = cache.masks(first.key, first.anchor == first.other)
    hinge = _stacked_hinge_all if first.mining == "all" else _stacked_hinge_semihard
    totals, counts = hinge(d, negative, margin, pairs)
    return totals / counts.clamp_min(1)


def _stack(
    embeddings: dict[str, torch.Tensor], keys: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], bool]:
    """Give one batch (B, D) a leading stack dimension; True if it was added."""
    single = next(iter(embeddings.values())).dim() == 2
    if not single:
        return embeddings, keys, False
    return {m: e[None] for m, e in embeddings.items()}, {k: v[None] for k, v in keys.items()}, True


def term_loss(
    term: Term,
    embeddings: dict[str, torch.Tensor],
    keys: dict[str, torch.Tensor],
    margin: float,
) -> torch.Tensor:
    """Mean hinge of one term over its valid triplets (0 when the batch has none)."""
    embeddings, keys, single = _stack(embeddings, keys)
    loss = _group_losses([term], _BatchCache(embeddings, keys), margin)[0]
    return loss[0] if single else loss


def triplet_loss(
    terms: list[Term] | tuple[Term, ...],
    embeddings: dict[str, torch.Tensor],
    keys: dict[str, torch.Tensor],
    margin: float = 0.2,
) -> torch.Tensor:
    """The sum of the terms' mean hinges: the loss of any triplet method.

    One batch ((B, D) embeddings, (B,) keys) gives a scalar; a stack of S independent
    batches ((S, B, D), (S, B)) gives the (S,) losses, each exactly the loss of its own
    batch (the splits of one network trained at once).
    """
    embeddings, keys, single = _stack(embeddings, keys)
    cache = _BatchCache(embeddings, keys)
    groups: dict[tuple[str, bool, str], list[Term]] = {}
    for term in terms:
        groups.setdefault((term.key, term.anchor == term.other, term.mining), []).append(term)
    losses = torch.cat([_group_losses(group, cache, margin) for group in groups.values()]).sum(0)
    return losses[0] if single else losses
