"""Batches of P groups x K samples, so that every anchor has a positive in the batch.

A network whose terms group by image and by user gets half of each batch from image
groups and half from user groups; a network whose positives are the sample itself
(BASE: key user+image) gets uniformly random batches.
"""

from __future__ import annotations

import numpy as np

GROUPED_KEYS = ("image", "user")


class GroupBatchSampler:
    def __init__(
        self,
        keys: dict[str, np.ndarray],
        needed: tuple[str, ...],
        batch_size: int,
        per_group: int,
        rng: np.random.Generator,
    ) -> None:
        self.n = len(next(iter(keys.values())))
        self.batch_size = min(batch_size, self.n)
        self.per_group = max(2, per_group)
        self.rng = rng
        # Per key: the groups of two or more samples as rows of a -1-padded matrix.
        self.groups: dict[str, np.ndarray] = {}
        for key in needed:
            if key not in GROUPED_KEYS:
                continue
            labels = keys[key]
            order = np.argsort(labels, kind="stable")
            bounds = np.flatnonzero(np.diff(labels[order])) + 1
            members = [g for g in np.split(order, bounds) if len(g) >= 2]
            if not members:
                raise ValueError(f"no {key} has two or more training samples")
            padded = np.full((len(members), max(map(len, members))), -1, dtype=np.int64)
            for row, group in enumerate(members):
                padded[row, : len(group)] = group
            self.groups[key] = padded

    def __call__(self) -> np.ndarray:
        chosen: list[np.ndarray] = []
        if self.groups:
            share = self.batch_size // len(self.groups)
            for padded in self.groups.values():
                n_groups = min(len(padded), max(1, share // self.per_group))
                rows = padded[self.rng.choice(len(padded), size=n_groups, replace=False)]
                # K members per group without replacement: random order, padding last.
                order = np.argsort(np.where(rows >= 0, self.rng.random(rows.shape), 2.0), axis=1)[
                    :, : self.per_group
                ]
                members = np.take_along_axis(rows, order, axis=1)
                chosen.append(members[members >= 0])
        picked = np.unique(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
        missing = self.batch_size - len(picked)
        if missing > 0:
            # Fill with random other samples: over-draw, drop what is taken, keep order.
            taken = np.zeros(self.n, dtype=bool)
            taken[picked] = True
            extra: list[np.ndarray] = []
            while missing > 0:
                draw = np.unique(self.rng.integers(0, self.n, size=2 * missing + 8))
                draw = self.rng.permutation(draw[~taken[draw]])[:missing]
                taken[draw] = True
                extra.append(draw)
                missing -= len(draw)
            picked = np.concatenate([picked, *extra])
        return picked
