"""OURS (Eq. 4): weighted combinations of the base, content and style embeddings, grid-searched.

Writing D_k = x_query,k - x_candidate,k for network k (base, content, style), two
readings of Eq. 4 are offered (``combine.mode``):

- ``concat`` (default): x = (b_b x_base, b_c x_content, b_s x_style), each network's
  embedding in its own coordinates, so ||x_q - x_c||^2 = sum_k b_k^2 ||D_k||^2;
- ``sum``: x = b_b x_base + b_c x_content + b_s x_style literally, so the distance also
  has the cross terms 2 b_k b_l <D_k, D_l>.

The three networks are trained separately, each up to an arbitrary rotation of its
space, so the cross terms of ``sum`` are noise added to every distance: on the default
synthetic sets they cost OURS 0.5-4 points of top-1 and top-3 on t2g/g2t and leave it
below its best part (README, "Choices"). Both modes are one (n, 15, 3, 3) Gram tensor
per task (``concat`` keeps its diagonal), which scores all 5^3 - 1 weight vectors at once.

The weights, b in {0, .25, .5, .75, 1} (not all zero; no content for personality
tasks, which have no content embedding), are chosen per dataset, setup, split and task
on the validation pools by top-1, ties by top-3, then by mean rank, then by grid
order; the chosen weights are applied to the test pools. Validation metrics are
averaged over several draws of each validation pool (``combine.validation_draws``,
the saved draw plus fresh ones): 8-14 validation users leave one draw's top-1 too
noisy to rank 124 weight vectors (README, "Choices").

Which networks serve as the parts follows the method registry
(``crossmod.methods.ours.parts_for``): per-task setup, the parts' per-task networks
(for personality tasks the ones trained with the content subset); joint setup, the
joint base and style networks with ``content_tg`` for t2g/g2t.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from crossmod.evaluation.ranking import metrics, pool_vectors, ranks, task_modalities
from crossmod.methods.ours import PARTS, parts_for
from crossmod.methods.registry import SETUPS
from crossmod.settings import Settings

LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class CombineSettings(Settings):
    """The ``combine`` section (defaults and meanings: the config schema)."""

    SECTION = "combine"

    mode: str
    validation_draws: int


def weight_grid(parts: list[str], levels: tuple[float, ...] = LEVELS) -> np.ndarray:
    """(W, 3) weights over (base, content, style); parts not combined stay 0; never all 0."""
    index = [PARTS.index(p) for p in parts]
    rows = []
    for values in itertools.product(levels, repeat=len(index)):
        if not any(values):
            continue
        row = np.zeros(len(PARTS))
        row[index] = values
        rows.append(row)
    return np.array(rows)


MODES = ("concat", "sum")


def pool_gram(
    embeddings: dict[str, dict[str, np.ndarray]],
    task: str,
    position: np.ndarray,
    pools: np.ndarray,
    mode: str,
) -> np.ndarray:
    """(n, 15, 3, 3) inner products of the per-part query-candidate differences.

    ``embeddings[part][modality]`` holds each part's embeddings of every annotation;
    a missing part contributes zeros. In ``concat`` mode only the diagonal is kept.
    """
    if mode not in MODES:
        raise ValueError(f"unknown combine mode {mode!r}; use one of {MODES}")
    query_m, answer_m = task_modalities(task)
    deltas = []
    for part in PARTS:
        if part in embeddings:
            q, c = pool_vectors(
                embeddings[part][query_m], embeddings[part][answer_m], position, pools
            )
            deltas.append(c - q[:, None, :])
        else:
            deltas.append(None)
    shape = next(d for d in deltas if d is not None).shape
    zero = np.zeros(shape, dtype=np.float32)
    stacked = np.stack([zero if d is None else d for d in deltas], axis=2)  # (n, 15, 3, d)
    gram = np.einsum("nckd,ncld->nckl", stacked, stacked, optimize=True)
    return gram * np.eye(len(PARTS), dtype=gram.dtype) if mode == "concat" else gram


def grid_ranks(gram: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(W, n) rank of the positive under every weight vector."""
    distances = np.einsum("nckl,wk,wl->wnc", gram, weights, weights, optimize=True)
    return 1 + (distances[:, :, 1:] <= distances[:, :, :1]).sum(axis=2)


def grid_metrics(gram: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    r = grid_ranks(gram, weights)
    return {
        "top1": (r == 1).mean(axis=1),
        "top3": (r <= 3).mean(axis=1),
        "rank": r.mean(axis=1),
    }


def select(val: dict[str, np.ndarray]) -> int:
    """Best weight vector: top-1, then top-3, then lower mean rank, then grid order."""
    order = np.lexsort((np.arange(len(val["top1"])), val["rank"], -val["top3"], -val["top1"]))
    return int(order[0])


def search(
    embeddings: dict[str, dict[str, np.ndarray]],
    task: str,
    parts: list[str],
    position: np.ndarray,
    val_pools: np.ndarray,
    test_pools: np.ndarray,
    mode: str,
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray], int]:
    """Weights grid, validation and test metrics of every weight vector, chosen index."""
    weights = weight_grid(parts)
    val = grid_metrics(pool_gram(embeddings, task, position, val_pools, mode), weights)
    test = grid_metrics(pool_gram(embeddings, task, position, test_pools, mode), weights)
    return weights, val, test, select(val)


def combined_metrics(
    embeddings: dict[str, dict[str, np.ndarray]],
    task: str,
    weights: np.ndarray,
    position: np.ndarray,
    pools: np.ndarray,
    mode: str,
) -> dict[str, float]:
    """Metrics of one weight vector, from the combined embeddings themselves.

    The direct reading of Eq. 4 (a check on the Gram route): a weighted sum, or a
    concatenation of the weighted parts.
    """
    query_m, answer_m = task_modalities(task)
    used = [(w, p) for w, p in zip(weights, PARTS, strict=True) if p in embeddings]
    if mode == "sum":
        q = sum(w * embeddings[p][query_m] for w, p in used)
        a = sum(w * embeddings[p][answer_m] for w, p in used)
    else:
        q = np.hstack([w * embeddings[p][query_m] for w, p in used])
        a = np.hstack([w * embeddings[p][answer_m] for w, p in used])
    q_vectors, c_vectors = pool_vectors(q, a, position, pools)
    return metrics(ranks(-((c_vectors - q_vectors[:, None, :]) ** 2).sum(axis=-1)))


def _load_embeddings(paths: dict[str, str]) -> tuple[dict[str, dict[str, np.ndarray]], np.ndarray]:
    from crossmod.data.arrays import read_table

    loaded: dict[str, dict[str, np.ndarray]] = {}
    ids = None
    for name, path in paths.items():
        meta, arrays = read_table(path)
        if ids is None:
            ids = meta["annotation_id"].to_numpy()
        elif not np.array_equal(ids, meta["annotation_id"].to_numpy()):
            raise ValueError(f"{path}: annotations differ from the other networks'")
        loaded[name] = arrays
    assert ids is not None
    position = np.full(ids.max() + 1, -1, dtype=np.int64)
    position[ids] = np.arange(len(ids))
    return loaded, position


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json
    from pathlib import Path

    import pandas as pd

    from crossmod.cli import ensure_parent, setup_logging
    from crossmod.data.pools import pool_matrix
    from crossmod.evaluation.ranking import TASKS
    from crossmod.tracking.store import code_commit, log_run

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--embeddings", nargs="+", required=True, help="network=path ...")
    parser.add_argument("--pools", required=True)
    parser.add_argument("--experiments", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--split", type=int, required=True)
    parser.add_argument("--out", required=True, help="combine.json")
    parser.add_argument("--grid", required=True, help="grid.csv: every weight vector's metrics")
    parser.add_argument("--settings", required=True, help="the combine section (JSON)")
    parser.add_argument(
        "--validation-pools",
        required=True,
        help="further draws of the validation pools (crossmod.data.pools --validation-draws)",
    )
    args = parser.parse_args(argv)
    log = setup_logging()
    settings = CombineSettings.from_json(args.settings)

    paths = dict(item.split("=", 1) for item in args.embeddings)
    networks, position = _load_embeddings(paths)
    pool_table = pd.read_parquet(args.pools)
    val_pools = pool_matrix(pool_table, args.split, "val")[1]
    n_val_queries = len(val_pools)
    extra = pool_matrix(pd.read_parquet(args.validation_pools), args.split, "val")[1]
    if len(extra):
        val_pools = np.vstack([val_pools, extra.astype(val_pools.dtype)])
    val_draws = len(val_pools) // max(n_val_queries, 1)
    test_queries, test_pools = pool_matrix(pool_table, args.split, "test")
    # The test pools under every protocol the pools file holds (pools.candidates).
    protocol_pools = {
        protocol: pool_matrix(pool_table, args.split, "test", protocol)[1]
        for protocol in pool_table.loc[pool_table["part"] == "test", "candidates"].unique()
    }
    experiments = json.loads(Path(args.experiments).read_text())
    uri = experiments["tracking_uri"]  # resolved once, by the experiments job
    experiment_id = experiments["experiments"][args.dataset]
    commit = code_commit()

    results, grid_rows = [], []
    for setup in SETUPS:
        for task in TASKS:
            wanted = parts_for(setup, task)
            if not all(name in networks for name in wanted.values()):
                log.info("%s %s: networks %s not all trained; skipped", setup, task, wanted)
                continue
            embeddings = {part: networks[name] for part, name in wanted.items()}
            weights, val, test, best = search(
                embeddings, task, list(wanted), position, val_pools, test_pools, settings.mode
            )
            grid = pd.DataFrame(weights, columns=[f"b_{p}" for p in PARTS])
            for part_name, table in (("val", val), ("test", test)):
                for key, values in table.items():
                    grid[f"{part_name}_{key}"] = values
            grid["chosen"] = np.arange(len(grid)) == best
            chosen = dict(zip((f"b_{p}" for p in PARTS), map(float, weights[best]), strict=True))
            outcome = {
                "setup": setup,
                "task": task,
                "networks": wanted,
                **chosen,
                "val": {k: float(v[best]) for k, v in val.items()},
                "test": {k: float(v[best]) for k, v in test.items()},
                "n_queries": {"val": n_val_queries, "test": len(test_pools)},
                "val_draws": val_draws,
            }
            chosen_ranks = {
                protocol: grid_ranks(
                    pool_gram(embeddings, task, position, pools, settings.mode),
                    weights[best : best + 1],
                )[0]
                for protocol, pools in protocol_pools.items()
            }
            outcome["protocols"] = {p: metrics(r) for p, r in chosen_ranks.items()}
            outcome["test_ranks"] = {p: r.tolist() for p, r in chosen_ranks.items()}
            run_id = log_run(
                uri,
                experiment_id,
                f"{args.dataset}/split{args.split}/ours/{setup}/{task}",
                params={
                    **chosen,
                    "setup": setup,
                    "task": task,
                    "split": args.split,
                    "mode": settings.mode,
                    "validation_draws": val_draws,
                    "grid_levels": ",".join(map(str, LEVELS)),
                    **{f"network_{p}": n for p, n in wanted.items()},
                },
                tags={
                    "dataset": args.dataset,
                    "split": str(args.split),
                    "setup": setup,
                    "method": "ours",
                    "task": task,
                    "git_commit": commit,
                },
                series={},
                final={
                    **{f"val_{k}": v for k, v in outcome["val"].items()},
                    **{f"test_{k}": v for k, v in outcome["test"].items()},
                },
                artifacts=[],
                tables={"grid.json": grid},
            )
            outcome["run_id"] = run_id
            results.append(outcome)
            grid_rows.append(grid.assign(setup=setup, task=task, split=args.split))
            log.info(
                "%s %s: weights %s; val top1 %.3f; test top1 %.3f top3 %.3f",
                setup,
                task,
                chosen,
                outcome["val"]["top1"],
                outcome["test"]["top1"],
                outcome["test"]["top3"],
            )
    content = {
        "dataset": args.dataset,
        "split": args.split,
        "mode": settings.mode,
        "test_queries": test_queries.tolist(),
        "results": results,
    }
    ensure_parent(args.out).write_text(json.dumps(content, indent=2) + "\n")
    grids = pd.concat(grid_rows, ignore_index=True) if grid_rows else pd.DataFrame()
    grids.to_csv(ensure_parent(args.grid), index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
