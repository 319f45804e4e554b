"""``python -m crossmod.data.splits``: seeded 70/10/20 user splits (train/validation/test).

Users, not annotations, are split (the key is ``mturker_id``), so nobody's samples sit
in two parts of one split. Split k shuffles the sorted user list with the seed
``(seed, k)``; the part sizes are round(0.7 n) and round(0.1 n) (at least one user
each), the rest is test.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from crossmod.cli import ensure_parent, setup_logging

PARTS = ("train", "val", "test")


def make_splits(
    users: list[str], n_splits: int, seed: int, fractions: tuple[float, float] = (0.7, 0.1)
) -> pd.DataFrame:
    """One row per (split, user) with the user's part."""
    ordered = sorted(set(users))
    n = len(ordered)
    n_train = max(1, round(fractions[0] * n))
    n_val = max(1, round(fractions[1] * n))
    if n_train + n_val >= n:
        raise ValueError(f"{n} users are too few for a train/validation/test split")
    rows = []
    for split in range(n_splits):
        order = np.random.default_rng([seed, split]).permutation(n)
        for rank, index in enumerate(order):
            part = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
            rows.append((split, ordered[index], part))
    return pd.DataFrame(rows, columns=["split", "user", "part"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--annotations", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--splits", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    args = parser.parse_args(argv)
    log = setup_logging()
    users = pd.read_parquet(args.annotations, columns=["user"])["user"].tolist()
    table = make_splits(users, args.splits, args.seed)
    table.to_csv(ensure_parent(args.out), index=False)
    sizes = table[table["split"] == 0]["part"].value_counts().to_dict()
    log.info("%d splits of %d users: %s", args.splits, len(set(users)), sizes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
