"""Ranks and retrieval metrics (SPEC 5).

Methods score candidates by similarity (higher = closer; a distance enters negated).
Rank of the positive = 1 + the number of negatives scored >= the positive: ties count
against the method, so a constant scorer gets the worst rank, not the best.
"""

from __future__ import annotations

import numpy as np

TASKS: tuple[str, ...] = ("g2p", "t2p", "p2g", "t2g", "g2t", "p2t")
MODALITY = {"g": "gaze", "t": "text", "p": "personality", "v": "image"}


def task_modalities(task: str) -> tuple[str, str]:
    """'t2g' -> ('text', 'gaze'): query modality, answer modality."""
    query, answer = task.split("2")
    return MODALITY[query], MODALITY[answer]


def ranks(similarities: np.ndarray) -> np.ndarray:
    """Rank of column 0 (the positive) in each row of an (n, pool) similarity matrix."""
    similarities = np.asarray(similarities)
    return 1 + (similarities[:, 1:] >= similarities[:, :1]).sum(axis=1)


def metrics(rank: np.ndarray) -> dict[str, float]:
    rank = np.asarray(rank)
    return {
        "top1": float((rank == 1).mean()),
        "top3": float((rank <= 3).mean()),
        "rank": float(rank.mean()),
        "n_queries": len(rank),
    }


def pool_vectors(
    queries: np.ndarray, answers: np.ndarray, position: np.ndarray, pools: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Query vectors (n, d) and their candidates' vectors (n, 15, d) for a pool matrix.

    ``queries`` and ``answers`` hold one row per annotation (``position`` maps an
    annotation id to its row); ``pools`` holds annotation ids, column 0 the query.
    """
    return queries[position[pools[:, 0]]], answers[position[pools]]
