"""DEPER's attention trajectory (SPEC 10): one annotation's BubbleView clicks as tokens.

DEPER reads a trajectory, not a map: the order in which a person revealed the image is
part of what it learns about them. Per annotation this module gives, for at most
``max_steps`` (30) steps,

- the bubble centres in viewing order: the stored clicks sorted by their ``order``
  column (:func:`click_sequence`) or, for a release without clicks, centres recovered
  from the map ``hm`` (:func:`centres_from_map`, whose order is a documented guess);
- per step the image content under the bubble: the mean of the conv-map cells the
  bubble's disc covers, weighted by how many of its pixels fall in each cell
  (:func:`trajectory_tokens`);
- per step the centre's position normalised to [0, 1] and a validity mask, padded to
  ``max_steps`` so that annotations stack into one batch;
- a 2-D sinusoidal code of the positions (:func:`sinusoidal_position_code`).

The learned parts of a trajectory token (order embedding, the Linear to D) belong to
the network in ``crossmod.methods.deper_net``; everything here is numpy, so the feature
step needs no torch.

``python -m crossmod.features.trajectories`` caches, per annotation, the cell weights
of every step (:func:`trajectory_weights`), the positions, the validity mask and where
the order came from (``results/{dataset}/features/trajectories.npz``), so training
jobs build the tokens from the projected cells of ``locals.npz`` without re-reading a
map or rerunning the CNN.

Coordinates. Clicks are pixel coordinates as the release stores them: x the column,
y the row, measured from the top left, pixel ``i`` centred at ``i`` (so a click on
pixel (x, y) = (3, 5) is at (3, 5)). A pixel covers the unit square around its centre;
the CNN sees the whole image resized, so conv cell (r, c) of an ``h x w`` grid covers
rows ``[r H / h, (r + 1) H / h)`` and columns ``[c W / w, (c + 1) W / w)`` of the
continuous image ``[0, W] x [0, H]``, in which pixel ``i`` has its centre at ``i + 0.5``.
That is the same convention as the area-averaged resize of ``crossmod.features.gaze``.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.ndimage import distance_transform_edt

from crossmod.cli import ensure_parent, setup_logging
from crossmod.data.release import load_map
from crossmod.features.gaze import bubble_centres
from crossmod.features.locals import map_rows
from crossmod.methods.deper import MAX_STEPS

log = logging.getLogger("crossmod.features.trajectories")


@dataclass(frozen=True)
class Trajectory:
    """One annotation's trajectory, padded to ``max_steps`` rows.

    ``tokens`` (max_steps, C) float32: the conv features under each bubble, zero on
    padding; ``positions`` (max_steps, 2) float32: (x / width, y / height) in [0, 1], zero
    on padding; ``valid`` (max_steps,) bool: True for real steps, which come first.
    ``from_clicks`` says whether the order is the recorded one (False: centres recovered
    from the map, order unknown; see :func:`centres_from_map`).
    """

    tokens: np.ndarray
    positions: np.ndarray
    valid: np.ndarray
    from_clicks: bool = True

    @property
    def length(self) -> int:
        """The number of real (unpadded) steps."""
        return int(self.valid.sum())


def click_sequence(clicks: np.ndarray | None) -> np.ndarray:
    """The clicks' (x, y) in the order they were made, as a (T, 2) float64 array.

    ``clicks`` is the release's N x 3 array (x, y, order). The rows are sorted by the
    order column (a stable sort, so equal orders keep their stored order) because the
    stored row order is not guaranteed to be the click order. ``None`` or an empty
    array gives an empty (0, 2) sequence.
    """
    if clicks is None:
        return np.zeros((0, 2))
    array = np.asarray(clicks, dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, 2))
    if array.ndim == 1 and array.size == 3:  # a single click read with squeezing
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != 3:
        raise ValueError(f"clicks must be N x 3 (x, y, order), got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("clicks contain non-finite values")
    order = np.argsort(array[:, 2], kind="stable")
    return array[order, :2]


def centres_from_map(hm: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Bubble centres (x, y) recovered from the map when no clicks are stored, (T, 2).

    The revealed region (``hm > threshold``) is a union of discs of about one bubble
    radius. A disc's centre is where the region's distance transform (the radius of the
    largest revealed disc around a point) peaks, so the centres are the local maxima of
    that transform that reach at least half its largest value (smaller maxima are ridges
    where discs overlap), at least half a radius apart. The largest value estimates the
    bubble radius, which assumes one radius per map, as BubbleView uses. Outside the
    image counts as unknown, not as hidden, so a bubble cut by the border keeps its
    centre near where it was.

    Order: the true click order cannot be read from a map, so the order returned is
    NOT gaze order. Centres come by descending peak strength (the distance-transform
    value: the most completely revealed disc first), ties broken top-to-bottom then
    left-to-right so the result is deterministic. Strength is chosen because it is a
    property of each bubble alone (not of where it sits, as a reading order would be),
    and because when a trajectory is cut to ``max_steps`` it keeps the centres that
    are surely bubbles and drops the weakest, the likeliest artefacts of overlap.
    """
    centres = bubble_centres(hm, threshold)
    revealed = np.asarray(hm) > threshold
    if len(centres) == 0 and revealed.any():  # thinner than two pixels: its deepest point
        distance = distance_transform_edt(revealed)
        row, col = np.argwhere(distance == distance.max())[0]
        centres = np.array([[col, row]], dtype=np.float64)
    return centres


def bubble_cell_weights(
    x: float, y: float, radius: float, height: int, width: int, grid: tuple[int, int]
) -> np.ndarray:
    """Weights (grid_h, grid_w) of the conv cells under a bubble, summing to 1.

    The bubble is the disc of ``radius`` pixels around (x, y): the pixels whose centres
    lie within ``radius`` of the point (the way BubbleView reveals them). Each cell's
    weight is the share of those pixels that falls in it, i.e. the area overlap measured
    at pixel resolution, so a cell the bubble barely grazes counts little. A bubble too
    small to cover any pixel centre (radius < 0.5, or 0) falls back to the one cell
    containing the point, so every step has content.
    """
    grid_h, grid_w = grid
    weights = np.zeros((grid_h, grid_w))
    r = max(float(radius), 0.0)
    top, bottom = max(int(np.floor(y - r)), 0), min(int(np.ceil(y + r)), height - 1)
    left, right = max(int(np.floor(x - r)), 0), min(int(np.ceil(x + r)), width - 1)
    if top <= bottom and left <= right:
        rows = np.arange(top, bottom + 1)
        cols = np.arange(left, right + 1)
        inside = (rows[:, None] - y) ** 2 + (cols[None, :] - x) ** 2 <= r**2
        row_cell = _cell_index(rows, height, grid_h)
        col_cell = _cell_index(cols, width, grid_w)
        hit_rows, hit_cols = np.nonzero(inside)
        np.add.at(weights, (row_cell[hit_rows], col_cell[hit_cols]), 1.0)
    total = weights.sum()
    if total == 0:
        row = _cell_index(np.array([y]), height, grid_h)[0]
        col = _cell_index(np.array([x]), width, grid_w)[0]
        weights[row, col] = 1.0
        return weights
    return weights / total


def _cell_index(pixel: np.ndarray, size: int, cells: int) -> np.ndarray:
    """The grid cell of pixel coordinates (pixel ``i`` centred at ``i + 0.5``), clipped."""
    index = np.floor((np.asarray(pixel, dtype=np.float64) + 0.5) * cells / size).astype(int)
    return np.clip(index, 0, cells - 1)


def trajectory_weights(
    points_xy: np.ndarray,
    height: int,
    width: int,
    radius: float,
    grid: tuple[int, int] = (7, 7),
    max_steps: int = MAX_STEPS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per step the weights of the conv cells under the bubble, and its position.

    Returns ``weights`` (max_steps, grid_h * grid_w) float32 (each real step's row sums
    to 1, :func:`bubble_cell_weights`), ``positions`` (max_steps, 2) float32 (x / width,
    y / height) and ``valid`` (max_steps,) bool; padding is zero. A step's token is
    ``weights @ cells`` for the image's cells, which is why the feature job stores the
    weights: any projection of the cells (the PCA of ``crossmod.features.locals``) gives
    its tokens without touching the CNN again. Points are clipped into the image first
    (a click on the border can be stored a fraction outside); only the first
    ``max_steps`` are kept, as the reference truncates.
    """
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height} x {width}")
    if max_steps < 1:
        raise ValueError(f"max_steps must be at least 1, got {max_steps}")
    points = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)[:max_steps]
    weights = np.zeros((max_steps, grid[0] * grid[1]), dtype=np.float32)
    positions = np.zeros((max_steps, 2), dtype=np.float32)
    valid = np.zeros(max_steps, dtype=bool)
    for step, (x, y) in enumerate(points):
        x = float(np.clip(x, 0.0, width - 1))
        y = float(np.clip(y, 0.0, height - 1))
        weights[step] = bubble_cell_weights(x, y, radius, height, width, grid).ravel()
        positions[step] = (min(x / width, 1.0), min(y / height, 1.0))
        valid[step] = True
    return weights, positions, valid


def trajectory_tokens(
    points_xy: np.ndarray,
    conv_map: np.ndarray,
    height: int,
    width: int,
    radius: float,
    max_steps: int = MAX_STEPS,
) -> Trajectory:
    """The trajectory of bubble centres ``points_xy`` (T, 2) over the image's conv map.

    ``conv_map`` is the image's C x h x w map (7 x 7 for the default backbones), computed
    for the whole image of ``height`` x ``width`` pixels. Step t's token is the mean of
    the cells under its bubble weighted by :func:`bubble_cell_weights` (area overlap at
    pixel resolution); see :func:`trajectory_weights`.
    """
    conv = np.asarray(conv_map, dtype=np.float32)
    if conv.ndim != 3:
        raise ValueError(f"conv_map must be C x h x w, got shape {conv.shape}")
    channels, grid_h, grid_w = conv.shape
    weights, positions, valid = trajectory_weights(
        points_xy, height, width, radius, (grid_h, grid_w), max_steps
    )
    cells = conv.reshape(channels, grid_h * grid_w).astype(np.float64)
    tokens = (weights.astype(np.float64) @ cells.T).astype(np.float32)
    return Trajectory(tokens=tokens, positions=positions, valid=valid)


def annotation_trajectory(
    clicks: np.ndarray | None,
    hm: np.ndarray,
    conv_map: np.ndarray,
    radius: float,
    max_steps: int = MAX_STEPS,
    threshold: float = 0.5,
) -> Trajectory:
    """One annotation's trajectory: from its clicks when stored, else from its map.

    The image's height and width are the map's (the release stores maps at image
    size). ``from_clicks`` on the result records which source was used, so that an
    analysis can tell recorded orders from the strength order of recovered centres.
    """
    height, width = np.asarray(hm).shape
    points = click_sequence(clicks)
    from_clicks = len(points) > 0
    if not from_clicks:
        points = centres_from_map(hm, threshold)
    built = trajectory_tokens(points, conv_map, height, width, radius, max_steps)
    return Trajectory(built.tokens, built.positions, built.valid, from_clicks=from_clicks)


def sinusoidal_position_code(
    positions: np.ndarray, dim: int, scale: float = 100.0, base: float = 10000.0
) -> np.ndarray:
    """A 2-D sinusoidal code (T, dim) of positions (T, 2) = (x, y) in [0, 1].

    The first half of the dimensions codes x, the second half y, each the transformer's
    code of one coordinate: interleaved ``sin(u f_k), cos(u f_k)`` with geometric
    frequencies ``f_k = base ** (-2k / (dim / 2))``, k = 0 .. dim / 4 - 1, the layout of
    the reference's 2-D encoding. The reference codes integer grid cells; positions here
    are fractions of the image, so they are first multiplied by ``scale`` (default 100:
    the position in percent of the image), which lets the fastest frequency resolve
    about one percent while the slowest does not wrap around within the image.
    ``dim`` must be a multiple of 4 (sin and cos for each of x and y).
    """
    if dim < 4 or dim % 4:
        raise ValueError(f"dim must be a positive multiple of 4, got {dim}")
    points = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    half = dim // 2
    frequencies = base ** (-np.arange(0, half, 2) / half)  # (dim / 4,)
    code = np.empty((len(points), dim), dtype=np.float64)
    for axis in range(2):
        angles = points[:, axis : axis + 1] * scale * frequencies[None, :]
        block = code[:, axis * half : (axis + 1) * half]
        block[:, 0::2] = np.sin(angles)
        block[:, 1::2] = np.cos(angles)
    return code.astype(np.float32)


def estimate_radius(hm: np.ndarray, centres: np.ndarray, threshold: float = 0.5) -> float:
    """The bubble radius of a map, in pixels, from its centres (BubbleView uses one).

    The release stores no radius. At a bubble's centre the revealed region reaches at
    least one radius in every direction, and exactly one radius where the disc borders
    hidden pixels, which some disc of every map does; so the estimate is the smallest
    distance-transform value over the centres. Outside the image counts as revealed (a
    bubble cut by the border still has its full radius). 0 when there are no centres.
    """
    points = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    if len(points) == 0:
        return 0.0
    revealed = np.pad(np.asarray(hm) > threshold, 1, constant_values=True)
    distance = distance_transform_edt(revealed)[1:-1, 1:-1]
    height, width = distance.shape
    rows = np.clip(np.rint(points[:, 1]).astype(int), 0, height - 1)
    cols = np.clip(np.rint(points[:, 0]).astype(int), 0, width - 1)
    return float(distance[rows, cols].min())


def annotation_steps(
    hm: np.ndarray,
    clicks: np.ndarray | None,
    grid: tuple[int, int],
    max_steps: int = MAX_STEPS,
    threshold: float = 0.5,
) -> dict[str, np.ndarray | float | bool]:
    """One annotation's cached trajectory: weights, positions, valid, radius, from_clicks."""
    height, width = np.asarray(hm).shape
    points = click_sequence(clicks)
    from_clicks = len(points) > 0
    if not from_clicks:
        points = centres_from_map(hm, threshold)
    radius = estimate_radius(hm, points, threshold)
    weights, positions, valid = trajectory_weights(points, height, width, radius, grid, max_steps)
    return {
        "weights": weights,
        "positions": positions,
        "valid": valid,
        "radius": radius,
        "from_clicks": from_clicks,
    }


def trajectory_table(
    annotations: pd.DataFrame, images: pd.DataFrame, grid: tuple[int, int]
) -> dict[str, np.ndarray]:
    """Every annotation's trajectory, stacked in the order of ``annotations``."""
    map_row = map_rows(annotations, images)
    steps = []
    for path in annotations["map_path"]:
        hm, clicks = load_map(path)
        try:
            steps.append(annotation_steps(hm, clicks, grid))
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
    return {
        "annotation_id": annotations["annotation_id"].to_numpy(np.int64),
        "map_row": map_row.to_numpy(np.int64),
        "weights": np.stack([s["weights"] for s in steps]),
        "positions": np.stack([s["positions"] for s in steps]),
        "valid": np.stack([s["valid"] for s in steps]),
        "radius": np.array([s["radius"] for s in steps], dtype=np.float32),
        "from_clicks": np.array([s["from_clicks"] for s in steps], dtype=bool),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--annotations", required=True)
    parser.add_argument("--maps", required=True, help="image_maps.npy (only its grid is read)")
    parser.add_argument("--index", required=True, help="images.parquet from the CNN job")
    parser.add_argument("--out", required=True, help="trajectories.npz to write")
    args = parser.parse_args(argv)
    setup_logging()
    grid = tuple(np.load(args.maps, mmap_mode="r").shape[2:])
    try:
        arrays = trajectory_table(
            pd.read_parquet(args.annotations), pd.read_parquet(args.index), grid
        )
    except ValueError as err:
        raise SystemExit(f"{args.annotations}: {err}") from None
    np.savez(ensure_parent(args.out), **arrays)
    lengths = arrays["valid"].sum(axis=1)
    log.info(
        "%d trajectories, %d from clicks, steps median %d (max %d), radius median %.1f px",
        len(lengths),
        int(arrays["from_clicks"].sum()),
        int(np.median(lengths)),
        int(lengths.max()),
        float(np.median(arrays["radius"])),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
