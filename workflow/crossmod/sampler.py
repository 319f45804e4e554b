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
        self.groups: dict[str, list[np.ndarray]] = {}
        for key in needed:
            if key not in GROUPED_KEYS:
                continue
            labels = keys[key]
            order = np.argsort(labels, kind="stable")
            bounds = np.flatnonzero(np.diff(labels[order])) + 1
            members = [g for g in np.split(order, bounds) if len(g) >= 2]
            if not members:
                raise ValueError(f"no {key} has two or more training samples")
            self.groups[key] = members

    def __call__(self) -> np.ndarray:
        chosen: list[np.ndarray] = []
        if self.groups:
            share = self.batch_size // len(self.groups)
            for members in self.groups.values():
                n_groups = min(len(members), max(1, share // self.per_group))
                for g in self.rng.choice(len(members), size=n_groups, replace=False):
                    group = members[g]
                    take = min(self.per_group, len(group))
                    chosen.append(self.rng.choice(group, size=take, replace=False))
        picked = np.unique(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
        missing = self.batch_size - len(picked)
        if missing > 0:
            rest = np.setdiff1d(np.arange(self.n), picked, assume_unique=False)
            picked = np.concatenate([picked, self.rng.choice(rest, size=missing, replace=False)])
        return picked
