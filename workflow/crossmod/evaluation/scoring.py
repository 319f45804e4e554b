"""Scoring a trained network on the saved pools, whatever its method.

Each network embeds every annotation; for a task, the query's embedding and its
pool's candidate embeddings go to the method's ``similarity`` function, and the
positive's rank follows from the similarities (``ranking.ranks``). So a method with
several embeddings per sample, or a bilinear score, is ranked by the same code on the
same pools as every other method.
"""

from __future__ import annotations

import numpy as np
import torch

from crossmod.evaluation.ranking import metrics, pool_vectors, ranks, task_modalities
from crossmod.methods.registry import NetworkSpec, registry
from crossmod.training.data import SplitData


def embed_all(
    model: torch.nn.Module, spec: NetworkSpec, data: SplitData, rows: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Every annotation's embedding (n, width) in each of the network's modalities.

    ``rows`` embeds those rows only, in that order (what a part's pools read).
    """
    from crossmod.training.loop import model_inputs

    device = next(model.parameters()).device
    inputs = model_inputs(spec, data)
    if rows is not None:
        inputs = {m: x[rows] for m, x in inputs.items()}
    with torch.no_grad():
        return {
            m: model.embed(m, torch.from_numpy(np.ascontiguousarray(x)).to(device)).cpu().numpy()
            for m, x in inputs.items()
        }


def pool_rows(position: np.ndarray, pools: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows a pool matrix reads (sorted), and the annotation id -> index among them.

    A part's queries are its own users' annotations, but their negatives come from
    everyone, so on the synthetic sets the validation pools read about three quarters
    of the rows (2,000 of 2,700 on synthetic-ads); embedding only those cut validation's
    time by a fifth (CONTENT {t,g}, 5 stacked splits). Ids outside the pools map to -1.
    """
    rows = np.unique(position[pools])
    inverse = np.full(int(position.max()) + 1, -1, dtype=np.int64)
    inverse[rows] = np.arange(len(rows))
    return rows, np.where(position >= 0, inverse[np.maximum(position, 0)], -1)


def task_similarities(
    model: torch.nn.Module,
    spec: NetworkSpec,
    embeddings: dict[str, np.ndarray],
    task: str,
    position: np.ndarray,
    pools: np.ndarray,
) -> np.ndarray:
    """(n, 15) similarity of each query to its pool's candidates, by the network's method."""
    query_m, answer_m = task_modalities(task)
    q, c = pool_vectors(embeddings[query_m], embeddings[answer_m], position, pools)
    return registry().method(spec.method).similarity(model, spec, query_m, answer_m, q, c)


def pool_ranks(
    model: torch.nn.Module,
    spec: NetworkSpec,
    data: SplitData,
    pools: np.ndarray,
    embeddings: dict[str, np.ndarray] | None = None,
    position: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The positive's rank in each pool (rows of ``pools``), per task of the network.

    ``embeddings``: one row per annotation (``data.position`` maps ids to rows), or one
    per row of ``position``'s map when given (as :func:`pool_rows` returns). Without
    them, only the rows the pools read are embedded.
    """
    if embeddings is None:
        rows, position = pool_rows(data.position, pools)
        embeddings = embed_all(model, spec, data, rows)
    if position is None:
        position = data.position
    return {
        task: ranks(task_similarities(model, spec, embeddings, task, position, pools))
        for task in spec.tasks
    }


def evaluate(
    model: torch.nn.Module, spec: NetworkSpec, data: SplitData, part: str
) -> dict[str, dict[str, float]]:
    """Top-1, top-3, mean rank and query count per task on one part's pools."""
    return {
        task: metrics(rank)
        for task, rank in pool_ranks(model, spec, data, data.pools[part]).items()
    }


def selection_key(per_task: dict[str, dict[str, float]]) -> tuple[float, float, float]:
    """Mean top-1 over tasks; ties broken by top-3, then by (lower) mean rank."""
    values = list(per_task.values())
    return (
        float(np.mean([v["top1"] for v in values])),
        float(np.mean([v["top3"] for v in values])),
        -float(np.mean([v["rank"] for v in values])),
    )
