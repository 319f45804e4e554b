"""Everything one split's training and evaluation need, as arrays."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from crossmod.data.arrays import read_table
from crossmod.data.pools import CANDIDATES, pool_matrix


@dataclass
class SplitData:
    annotation_ids: np.ndarray  # (N,)
    features: dict[str, np.ndarray]  # modality -> (N, d)
    keys: dict[str, np.ndarray]  # image / user / user_image -> (N,) integer codes
    train_rows: np.ndarray
    position: np.ndarray  # annotation id -> row
    pools: dict[str, np.ndarray]  # part -> (n, 15) annotation ids (configured protocol)
    # pools.candidates protocol -> the test pools drawn under it (same queries, same order)
    test_pools: dict[str, np.ndarray] = field(default_factory=dict)
    extras: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # feature caches


def split_data(
    meta: pd.DataFrame,
    arrays: dict[str, np.ndarray],
    splits: pd.DataFrame,
    pools: pd.DataFrame,
    split: int,
) -> SplitData:
    """Arrays of one split from the feature table, the user splits and the pools."""
    part_of = splits[splits["split"] == split].set_index("user")["part"]
    parts = meta["user"].astype(str).map(part_of)
    if parts.isna().any():
        missing = sorted(meta.loc[parts.isna(), "user"].astype(str).unique())[:5]
        raise ValueError(f"split {split} does not place user(s) {missing}")
    ids = meta["annotation_id"].to_numpy()
    position = np.full(ids.max() + 1, -1, dtype=np.int64)
    position[ids] = np.arange(len(ids))
    keys = {
        "image": pd.factorize(meta["image_name"])[0],
        "user": pd.factorize(meta["user"])[0],
        "user_image": pd.factorize(meta["user"].astype(str) + "\x00" + meta["image_name"])[0],
    }
    return SplitData(
        annotation_ids=ids,
        features={m: np.asarray(x, dtype=np.float32) for m, x in arrays.items()},
        keys={k: v.astype(np.int64) for k, v in keys.items()},
        train_rows=np.flatnonzero((parts == "train").to_numpy()),
        position=position,
        pools={part: pool_matrix(pools, split, part)[1] for part in ("val", "test")},
        test_pools=_test_pools(pools, split),
    )


def _test_pools(pools: pd.DataFrame, split: int) -> dict[str, np.ndarray]:
    """The split's test pools under every protocol the pools file holds."""
    if "candidates" not in pools:
        return {"any": pool_matrix(pools, split, "test")[1]}
    drawn = [p for p in CANDIDATES if (pools["candidates"] == p).any()]
    return {p: pool_matrix(pools, split, "test", p)[1] for p in drawn}


def load_split(
    features_path: str,
    splits_path: str,
    pools_path: str,
    split: int,
    extras: dict[str, str] | None = None,
) -> SplitData:
    """A split's arrays; ``extras`` names further feature caches (.npz) a method needs."""
    return load_splits(features_path, splits_path, pools_path, [split], extras)[split]


def load_splits(
    features_path: str,
    splits_path: str,
    pools_path: str,
    splits: list[int],
    extras: dict[str, str] | None = None,
) -> dict[int, SplitData]:
    """Several splits' arrays from one read of each file (the feature arrays are shared)."""
    meta, arrays = read_table(features_path)
    arrays = {m: np.asarray(x, dtype=np.float32) for m, x in arrays.items()}
    table = pd.read_csv(splits_path, dtype={"user": str})
    pools = pd.read_parquet(pools_path)
    caches = {}
    for name, path in (extras or {}).items():
        with np.load(Path(path)) as cache:
            caches[name] = {key: cache[key] for key in cache.files}
    out = {}
    for split in splits:
        out[split] = split_data(meta, arrays, table, pools, split)
        out[split].extras.update(caches)
    return out
