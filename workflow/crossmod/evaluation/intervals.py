"""Intervals and paired tests for the retrieval tables, from per-query ranks.

A table cell is a mean over user splits of a per-split metric (top-1, top-3 or mean
rank over that split's test queries). Its uncertainty comes from which queries were
drawn, so:

- **Interval**: a stratified percentile bootstrap. Each resample draws, within every
  split, as many queries as the split has, with replacement; the statistic is the mean
  over splits of the per-split metric, exactly as the cell. The same resampled queries
  serve every method of a (dataset, setup, task), so the bootstrap is paired across
  methods (the summary ranks of tables 1 and 5 get intervals from the same draws).
- **Paired test** of a method against the baseline on the same queries: a sign-flip
  permutation test. Under the null the two methods' per-query values are exchangeable,
  so each query's difference keeps or flips its sign at random (within its split: the
  test is blocked by split); the statistic is the mean over splits of the per-split mean
  difference; p is two-sided with the observed statistic counted among the
  permutations, so p >= 1 / (resamples + 1).
- **Holm** correction across the tasks of a table (one method in one setup).

Bootstrap counts are drawn as multinomial weights and signs as a matrix, so a resample
of every method is one matrix product.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from crossmod.settings import Settings

METRICS = ("top1", "top3", "rank")
HIGHER_IS_BETTER = {"top1": True, "top3": True, "rank": False}


@dataclass(frozen=True)
class IntervalSettings(Settings):
    """The ``intervals`` section (defaults and meanings: the config schema)."""

    SECTION = "intervals"

    resamples: int
    level: float
    alpha: float


def per_query(rank: np.ndarray, metric: str) -> np.ndarray:
    """The per-query value whose mean is the metric: hit at 1, hit at 3, or the rank."""
    rank = np.asarray(rank)
    if metric == "top1":
        return (rank == 1).astype(np.float64)
    if metric == "top3":
        return (rank <= 3).astype(np.float64)
    if metric == "rank":
        return rank.astype(np.float64)
    raise ValueError(f"unknown metric {metric!r}; use one of {METRICS}")


def stream(seed: int, *names: object) -> np.random.Generator:
    """A generator seeded by the config's seed and a name (dataset, setup, task, ...)."""
    label = "/".join(map(str, names))
    return np.random.default_rng([seed, zlib.crc32(label.encode())])


def bootstrap_weights(
    sizes: Sequence[int], resamples: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Per split, (resamples, n_s) counts of each query in each resample (rows sum to n_s)."""
    return [rng.multinomial(n, np.full(n, 1.0 / n), size=resamples) for n in sizes]


def bootstrap_means(values: Sequence[np.ndarray], weights: Sequence[np.ndarray]) -> np.ndarray:
    """(resamples, ...) mean over splits of each split's resampled mean.

    ``values[s]`` is (n_s,) or (n_s, k) (k methods at once); ``weights`` from
    :func:`bootstrap_weights`.
    """
    per_split = [w @ v / len(v) for v, w in zip(values, weights, strict=True)]
    return np.mean(per_split, axis=0)


def percentile_interval(samples: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper percentile of bootstrap samples (axis 0) at the given coverage."""
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail], axis=0)
    return low, high


def paired_p(
    differences: Sequence[np.ndarray], resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """Two-sided sign-flip permutation p of mean-over-splits differences (blocked by split).

    ``differences[s]`` is (n_s,) or (n_s, k): method minus baseline per query of split s.
    Returns a p per column (a float for 1-D input). Differences that are all zero give 1.
    """
    columns = [np.atleast_1d(np.asarray(d, dtype=np.float64)) for d in differences]
    columns = [d[:, None] if d.ndim == 1 else d for d in columns]
    observed = np.mean([d.mean(axis=0) for d in columns], axis=0)
    null = np.zeros((resamples, columns[0].shape[1]))
    for d in columns:
        signs = rng.integers(0, 2, size=(resamples, len(d))) * 2.0 - 1.0
        null += signs @ d / len(d)
    null /= len(columns)
    tolerance = 1e-12 * np.maximum(1.0, np.abs(observed))
    extreme = (np.abs(null) >= np.abs(observed) - tolerance).sum(axis=0)
    p = (1 + extreme) / (resamples + 1)
    p = np.where(np.all([np.all(d == 0, axis=0) for d in columns], axis=0), 1.0, p)
    return p if np.ndim(differences[0]) > 1 else float(p[0])


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN entries are left out and stay NaN)."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full_like(p, np.nan)
    present = np.flatnonzero(~np.isnan(p))
    order = present[np.argsort(p[present], kind="stable")]
    m = len(order)
    running = 0.0
    for i, index in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[index]))
        out[index] = running
    return out


def t_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t interval of independent values (one per split or fold)."""
    from scipy import stats

    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return mean, mean - half, mean + half
