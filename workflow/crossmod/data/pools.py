"""``python -m crossmod.data.pools``: the 15-answer retrieval pools, drawn once per split.

For each validation and test annotation (user a, image i) the pool holds annotation ids
whose answer-modality samples are ranked (SPEC 5):

- column 0: the positive, the annotation itself (its sample in the answer modality);
- columns 1-2: two other annotators' annotations on image i (users b != a);
- columns 3-14: 12 annotations on 12 distinct other images, by users other than a.

Candidates may come from any part of the split (an image rarely has two annotators in
the test part); the query's own user never appears among the negatives. One pool per
query serves all six tasks (t2g, g2p, ...): the task only picks which modality of the
candidates is compared, so every method and task is scored on the very same draws.
If an image has fewer than two other annotators, the missing same-image slots are
filled with further other-image negatives, so every pool has 15 answers.

``--validation-draws R`` instead writes R - 1 further draws of every validation pool
(drawn the same way, from their own seeds), for OURS's grid search: with 8-14
validation users, top-1 on a single draw is too noisy to choose among 124 weight
vectors, and the single draw is also the one every network's snapshot was chosen on
(README, "Choices"). Training and test pools are never affected.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from crossmod.cli import ensure_parent, setup_logging

POOL_SIZE = 15
SAME_IMAGE = 2


def draw_pools(
    annotations: pd.DataFrame, query_ids: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """(n_queries, 15) annotation ids; column 0 is the positive."""
    ids = annotations["annotation_id"].to_numpy()
    users = annotations["user"].to_numpy()
    images = annotations["image"].to_numpy()
    position = {int(a): i for i, a in enumerate(ids)}
    by_image: dict[str, np.ndarray] = {
        image: np.flatnonzero(images == image) for image in np.unique(images)
    }
    pools = np.empty((len(query_ids), POOL_SIZE), dtype=np.int64)
    for row, query in enumerate(query_ids):
        q = position[int(query)]
        same = [j for j in by_image[images[q]] if users[j] != users[q]]
        chosen_same = list(rng.choice(same, size=min(SAME_IMAGE, len(same)), replace=False))
        n_other = POOL_SIZE - 1 - len(chosen_same)
        # Distinct other images, then one annotation (not by the query's user) on each.
        others: list[int] = []
        for image in rng.permutation(list(by_image)):
            if image == images[q]:
                continue
            eligible = [j for j in by_image[image] if users[j] != users[q]]
            if eligible:
                others.append(int(eligible[rng.integers(len(eligible))]))
                if len(others) == n_other:
                    break
        if len(others) < n_other:
            raise ValueError(
                f"annotation {query}: only {len(others)} other images by other users "
                f"for {n_other} pool slots"
            )
        pools[row] = ids[[q, *chosen_same, *others]]
    return pools


def _queries(annotations: pd.DataFrame, table: pd.DataFrame, part: str) -> np.ndarray:
    """Annotation ids of one part (val/test) of one split's user table."""
    part_of = dict(zip(table["user"], table["part"], strict=True))
    return annotations.loc[annotations["user"].map(part_of) == part, "annotation_id"].to_numpy()


def _frame(pools: np.ndarray, query_ids: np.ndarray, **columns: object) -> pd.DataFrame:
    """Pool matrix as a table: the given leading columns, then query, c0..c14."""
    frame = pd.DataFrame(pools, columns=[f"c{k}" for k in range(POOL_SIZE)])
    frame.insert(0, "query", query_ids)
    for position, (name, value) in enumerate(columns.items()):
        frame.insert(position, name, value)
    return frame


def make_pools(annotations: pd.DataFrame, splits: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Pools of every validation and test annotation of every split."""
    frames = []
    for split, table in splits.groupby("split"):
        for part in ("val", "test"):
            query_ids = _queries(annotations, table, part)
            rng = np.random.default_rng([seed, int(split), 0 if part == "val" else 1])
            pools = draw_pools(annotations, query_ids, rng)
            frames.append(_frame(pools, query_ids, split=int(split), part=part))
    return pd.concat(frames, ignore_index=True)


def validation_draws(
    annotations: pd.DataFrame, splits: pd.DataFrame, seed: int, draws: int
) -> pd.DataFrame:
    """Draws 1 .. draws-1 of every validation pool of every split (draw 0 is in the pools)."""
    frames = []
    for split, table in splits.groupby("split"):
        query_ids = _queries(annotations, table, "val")
        for draw in range(1, draws):
            rng = np.random.default_rng([seed, int(split), 2, draw])
            pools = draw_pools(annotations, query_ids, rng)
            frames.append(_frame(pools, query_ids, split=int(split), part="val", draw=draw))
    columns = ["split", "part", "draw", "query", *(f"c{k}" for k in range(POOL_SIZE))]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def pool_matrix(pools: pd.DataFrame, split: int, part: str) -> tuple[np.ndarray, np.ndarray]:
    """Query ids and the (n, 15) candidate ids of one split and part."""
    chosen = pools[(pools["split"] == split) & (pools["part"] == part)]
    return chosen["query"].to_numpy(), chosen[[f"c{k}" for k in range(POOL_SIZE)]].to_numpy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--annotations", required=True)
    parser.add_argument("--splits", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument(
        "--validation-draws",
        type=int,
        default=0,
        help="write draws 1..R-1 of the validation pools instead of the pools",
    )
    args = parser.parse_args(argv)
    log = setup_logging()
    annotations = pd.read_parquet(args.annotations, columns=["annotation_id", "user", "image"])
    splits = pd.read_csv(args.splits, dtype={"user": str})
    if args.validation_draws:
        pools = validation_draws(annotations, splits, args.seed, args.validation_draws)
    else:
        pools = make_pools(annotations, splits, args.seed)
    pools.to_parquet(ensure_parent(args.out), index=False)
    log.info("%s", pools.groupby(["split", "part"]).size().to_dict())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
