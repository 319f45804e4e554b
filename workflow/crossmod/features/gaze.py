"""Gaze features: the gaze-masked CNN vector and the gaze statistics.

g (SPEC 3): the image's conv map multiplied by the annotation's BubbleView map resized
to the conv map's grid, then average-pooled. Two poolings are offered:

- ``mean`` (default): sum(F * m) / (h * w), the paper's literal "multiply, then
  average-pool"; it equals ``masked`` times the revealed fraction of the grid, so g also
  carries how much the person explored (a style the generator plants, and which
  measurably helps STYLE: README, "Choices");
- ``masked``: sum(F * m) / sum(m), the mean feature of the region the person revealed;
  a map that reveals one quadrant gives exactly that quadrant's pooled features,
  whatever its size.

The map is resized by area averaging (each grid cell gets the mean of the map over the
pixels it covers), since the CNN sees the whole image resized, not cropped.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy.ndimage import distance_transform_edt
from scipy.spatial.distance import pdist
from skimage.feature import peak_local_max

POOLINGS = ("masked", "mean")


def resize_map(hm: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area-average ``hm`` onto a ``height`` x ``width`` grid."""
    image = Image.fromarray(np.asarray(hm, dtype=np.float32), mode="F")
    return np.asarray(image.resize((width, height), Image.Resampling.BOX), dtype=np.float32)


def masked_pool(conv_map: np.ndarray, grid_mask: np.ndarray, pooling: str = "mean") -> np.ndarray:
    """Pool a C x h x w conv map under an h x w mask (see the module docstring)."""
    weighted = np.einsum("chw,hw->c", conv_map, grid_mask, dtype=np.float64)
    if pooling == "masked":
        mass = float(grid_mask.sum())
        return (weighted / mass if mass > 0 else np.zeros_like(weighted)).astype(np.float32)
    if pooling == "mean":
        return (weighted / grid_mask.size).astype(np.float32)
    raise ValueError(f"unknown pooling {pooling!r}; use one of {POOLINGS}")


def bubble_centres(hm: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Bubble centres (x, y) recovered from a map when no clicks are stored.

    The revealed region (hm > threshold) is a union of discs of about one radius; the
    centres are the peaks of its distance transform that reach at least half the
    largest inscribed radius, at least half a radius apart. They come strongest first
    (the most completely revealed disc), ties top-to-bottom then left-to-right: a map
    does not record the click order (``crossmod.features.trajectories`` says why this
    order).
    """
    revealed = hm > threshold
    if not revealed.any():
        return np.zeros((0, 2))
    distance = distance_transform_edt(revealed)
    radius = float(distance.max())
    peaks = peak_local_max(
        distance,
        min_distance=max(1, int(radius / 2)),
        threshold_abs=max(radius / 2, 1.0),
        exclude_border=False,
    )
    rows, cols = peaks[:, 0], peaks[:, 1]
    order = np.lexsort((cols, rows, -distance[rows, cols]))  # the last key is the primary one
    return np.stack([cols[order], rows[order]], axis=1).astype(np.float64)  # (x, y)


def gaze_statistics(
    hm: np.ndarray, clicks: np.ndarray | None, threshold: float = 0.5
) -> dict[str, float]:
    """Fraction of the image revealed and the max/min distance between bubble centres.

    Distances are divided by the image diagonal, so images of different sizes compare;
    with fewer than two bubbles both distances are 0.
    """
    height, width = hm.shape
    centres = clicks[:, :2] if clicks is not None and len(clicks) else bubble_centres(hm, threshold)
    diagonal = float(np.hypot(height, width))
    distances = pdist(centres) / diagonal if len(centres) >= 2 else np.zeros(1)
    return {
        "revealed": float((hm > threshold).mean()),
        "max_distance": float(distances.max()),
        "min_distance": float(distances.min()),
        "n_bubbles": float(len(centres)),
    }
