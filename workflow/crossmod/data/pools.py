"""``python -m crossmod.data.pools``: the 15-answer retrieval pools, drawn once per split.

For each validation and test annotation (user a, image i) the pool holds annotation ids
whose answer-modality samples are ranked (SPEC 5):

- column 0: the positive, the annotation itself (its sample in the answer modality);
- columns 1-2: two other annotators' annotations on image i (users b != a);
- columns 3-14: 12 annotations on 12 distinct other images, by users other than a.

Candidates may come from any part of the split (``pools.candidates: any``, the default:
an image rarely has two annotators in the test part), or only from the query's own part
(``same_part``: no training user's sample among a test query's negatives; a slot the
part cannot fill falls back to any part, and the ``fallbacks`` column counts those per
pool). Validation pools follow the configured protocol; test pools are drawn under both,
so every network is also scored under the other one (the report's protocol table). The
query's own user never appears among the negatives. One pool per
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
CANDIDATES = ("any", "same_part")
"""``pools.candidates``: where a pool's candidates may come from (any part of the split,
or only the query's own part, falling back to any part slot by slot where it has too few)."""


def draw_pools(
    annotations: pd.DataFrame,
    query_ids: np.ndarray,
    rng: np.random.Generator,
    parts: np.ndarray | None = None,
) -> np.ndarray:
    """(n_queries, 15) annotation ids; column 0 is the positive (see :func:`draw_pools_counted`)."""
    return draw_pools_counted(annotations, query_ids, rng, parts)[0]


def draw_pools_counted(
    annotations: pd.DataFrame,
    query_ids: np.ndarray,
    rng: np.random.Generator,
    parts: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pools and, per pool, how many candidates fell back to another part of the split.

    ``parts`` (one label per annotation row) restricts each query's candidates to its
    own part (``same_part``); where that part has fewer than two other annotators of the
    image, or too few other images, the missing slots are drawn as with ``parts=None``
    (``any``), and counted. With ``parts=None`` the draws are exactly those of the
    ``any`` protocol (same random stream), and no slot falls back.
    """
    ids = annotations["annotation_id"].to_numpy()
    users = annotations["user"].to_numpy()
    images = annotations["image"].to_numpy()
    position = {int(a): i for i, a in enumerate(ids)}
    by_image: dict[str, np.ndarray] = {
        image: np.flatnonzero(images == image) for image in np.unique(images)
    }
    pools = np.empty((len(query_ids), POOL_SIZE), dtype=np.int64)
    fallbacks = np.zeros(len(query_ids), dtype=np.int64)
    for row, query in enumerate(query_ids):
        q = position[int(query)]
        home = None if parts is None else parts[q]

        def preferred(rows: list[int], home=home) -> list[int]:
            return rows if home is None else [j for j in rows if parts[j] == home]

        same_all = [j for j in by_image[images[q]] if users[j] != users[q]]
        same = preferred(same_all)
        chosen_same = list(rng.choice(same, size=min(SAME_IMAGE, len(same)), replace=False))
        if home is not None and len(chosen_same) < SAME_IMAGE:
            rest = [j for j in same_all if j not in chosen_same]
            extra = list(
                rng.choice(rest, size=min(SAME_IMAGE - len(chosen_same), len(rest)), replace=False)
            )
            chosen_same += extra
            fallbacks[row] += len(extra)
        n_other = POOL_SIZE - 1 - len(chosen_same)
        # Distinct other images, then one annotation (not by the query's user) on each.
        others: list[int] = []
        for image in rng.permutation(list(by_image)):
            if image == images[q]:
                continue
            eligible = preferred([j for j in by_image[image] if users[j] != users[q]])
            if eligible:
                others.append(int(eligible[rng.integers(len(eligible))]))
                if len(others) == n_other:
                    break
        if home is not None and len(others) < n_other:
            used = {images[j] for j in others} | {images[q]}
            for image in rng.permutation(list(by_image)):
                eligible = [j for j in by_image[image] if users[j] != users[q]]
                if image in used or not eligible:
                    continue
                others.append(int(eligible[rng.integers(len(eligible))]))
                fallbacks[row] += 1
                if len(others) == n_other:
                    break
        if len(others) < n_other:
            raise ValueError(
                f"annotation {query}: only {len(others)} other images by other users "
                f"for {n_other} pool slots"
            )
        pools[row] = ids[[q, *chosen_same, *others]]
    return pools, fallbacks


def _queries(annotations: pd.DataFrame, table: pd.DataFrame, part: str) -> np.ndarray:
    """Annotation ids of one part (val/test) of one split's user table."""
    return annotations.loc[_parts(annotations, table) == part, "annotation_id"].to_numpy()


def _parts(annotations: pd.DataFrame, table: pd.DataFrame) -> np.ndarray:
    """The split part (train/val/test) of every annotation's user."""
    part_of = dict(zip(table["user"], table["part"], strict=True))
    return annotations["user"].map(part_of).to_numpy()


def _frame(pools: np.ndarray, query_ids: np.ndarray, **columns: object) -> pd.DataFrame:
    """Pool matrix as a table: the given leading columns, then query, c0..c14."""
    frame = pd.DataFrame(pools, columns=[f"c{k}" for k in range(POOL_SIZE)])
    frame.insert(0, "query", query_ids)
    for position, (name, value) in enumerate(columns.items()):
        frame.insert(position, name, value)
    return frame


def _draw(
    annotations: pd.DataFrame,
    table: pd.DataFrame,
    query_ids: np.ndarray,
    rng: np.random.Generator,
    candidates: str,
) -> tuple[np.ndarray, np.ndarray]:
    if candidates not in CANDIDATES:
        raise ValueError(f"pools.candidates: unknown value {candidates!r}; use one of {CANDIDATES}")
    parts = _parts(annotations, table) if candidates == "same_part" else None
    return draw_pools_counted(annotations, query_ids, rng, parts)


def make_pools(
    annotations: pd.DataFrame, splits: pd.DataFrame, seed: int, candidates: str = "any"
) -> pd.DataFrame:
    """Pools of every split: validation under ``candidates``, test under every protocol.

    Validation pools (which choose snapshots and OURS's weights) follow the configured
    protocol; test pools are drawn under each of :data:`CANDIDATES`, so the report can
    show what the protocol changes on the very same trained networks. The ``any`` draws
    use the seeds they always had: its pools do not depend on this option.
    """
    frames = []
    for split, table in splits.groupby("split"):
        for part in ("val", "test"):
            query_ids = _queries(annotations, table, part)
            protocols = (candidates,) if part == "val" else CANDIDATES
            for protocol in protocols:
                stream = [seed, int(split), 0 if part == "val" else 1]
                if protocol == "same_part":
                    stream.append(1)
                rng = np.random.default_rng(stream)
                pools, fallbacks = _draw(annotations, table, query_ids, rng, protocol)
                frames.append(
                    _frame(
                        pools, query_ids, split=int(split), part=part, candidates=protocol
                    ).assign(fallbacks=fallbacks)
                )
    return pd.concat(frames, ignore_index=True)


def validation_draws(
    annotations: pd.DataFrame,
    splits: pd.DataFrame,
    seed: int,
    draws: int,
    candidates: str = "any",
) -> pd.DataFrame:
    """Draws 1 .. draws-1 of every validation pool of every split (draw 0 is in the pools)."""
    frames = []
    for split, table in splits.groupby("split"):
        query_ids = _queries(annotations, table, "val")
        for draw in range(1, draws):
            stream = [seed, int(split), 2, draw] + ([1] if candidates == "same_part" else [])
            pools, _ = _draw(
                annotations, table, query_ids, np.random.default_rng(stream), candidates
            )
            frames.append(
                _frame(
                    pools, query_ids, split=int(split), part="val", draw=draw, candidates=candidates
                )
            )
    columns = ["split", "part", "draw", "candidates", "query", *(f"c{k}" for k in range(POOL_SIZE))]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def pool_matrix(
    pools: pd.DataFrame, split: int, part: str, candidates: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Query ids and the (n, 15) candidate ids of one split and part.

    Test pools exist under every protocol: ``candidates`` picks one (None: the protocol
    of the validation pools, i.e. the configured one).
    """
    chosen = pools[(pools["split"] == split) & (pools["part"] == part)]
    if "candidates" in pools.columns:
        protocol = candidates or configured_candidates(pools)
        chosen = chosen[chosen["candidates"] == protocol]
    return chosen["query"].to_numpy(), chosen[[f"c{k}" for k in range(POOL_SIZE)]].to_numpy()


def configured_candidates(pools: pd.DataFrame) -> str:
    """The protocol the pools file was drawn under (that of its validation pools)."""
    values = pools.loc[pools["part"] == "val", "candidates"].unique()
    if len(values) != 1:
        raise ValueError(f"validation pools drawn under {sorted(values)}: expected one protocol")
    return str(values[0])


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
    parser.add_argument(
        "--candidates", required=True, choices=CANDIDATES, help="pools.candidates (config)"
    )
    args = parser.parse_args(argv)
    log = setup_logging()
    annotations = pd.read_parquet(args.annotations, columns=["annotation_id", "user", "image"])
    splits = pd.read_csv(args.splits, dtype={"user": str})
    if args.validation_draws:
        pools = validation_draws(
            annotations, splits, args.seed, args.validation_draws, args.candidates
        )
    else:
        pools = make_pools(annotations, splits, args.seed, args.candidates)
    pools.to_parquet(ensure_parent(args.out), index=False)
    log.info("%s", pools.groupby(["split", "part", "candidates"]).size().to_dict())
    if "fallbacks" in pools.columns:
        counted = pools.groupby(["split", "part", "candidates"])["fallbacks"]
        log.info(
            "candidates drawn outside the query's part (same_part fell back to any): %s",
            counted.sum().to_dict(),
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
