"""What BASE, CONTENT and STYLE share: linear encoders, the triplet engine, distance ranking.

Each is one fully connected layer per modality into the shared space
(:class:`~crossmod.methods.encoders.Embedder`), trained on its network's triplet terms
and scored by squared Euclidean distance. The functions import torch when they run,
so the methods that use them stay importable while Snakemake parses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crossmod.methods.registry import NetworkSpec

if TYPE_CHECKING:
    import numpy as np
    import torch

    from crossmod.training.loop import TrainSettings


def build(spec: NetworkSpec, data, settings: TrainSettings, method_settings=None, **options):
    """One linear encoder per modality, inputs standardised on the split's training rows."""
    from crossmod.methods.encoders import Embedder

    dims = {m: data.features[m].shape[1] for m in spec.modalities}
    model = Embedder(dims, dim=settings.dim, normalize=settings.normalize, **options)
    model.set_standardization({m: data.features[m][data.train_rows] for m in spec.modalities})
    return model


def triplet_loss(
    model,
    spec: NetworkSpec,
    embeddings: dict[str, torch.Tensor],
    keys: dict[str, torch.Tensor],
    settings: TrainSettings,
) -> torch.Tensor:
    """The sum of the network's triplet terms (SPEC 4) on one batch."""
    from crossmod.methods import triplet

    return triplet.triplet_loss(spec.terms, embeddings, keys, settings.margin)


def negative_squared_distance(
    model, spec: NetworkSpec, query: str, answer: str, queries: np.ndarray, candidates: np.ndarray
) -> np.ndarray:
    """(n, pool) minus the squared Euclidean distance from each query to its candidates."""
    return -((candidates - queries[:, None, :]) ** 2).sum(axis=-1)
