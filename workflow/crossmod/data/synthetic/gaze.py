"""BubbleView gaze: which objects a user explores, where the clicks land, and the map.

Objects are visited in the order of ``log(salience) + v (preference + Gumbel noise)``,
v the ``view_disagreement`` knob (how much annotators of one image differ in what they
look at; 1 by default);
the user's thoroughness sets how many are visited and how many clicks each gets, and
their spread sets how tightly the clicks sit on the object; their scan habit sets the
order of an object's clicks (along the user's own direction, or at random). The map ``hm`` is the
union of the revealed discs (radius ``bubble_radius``), lightly blurred, in [0, 1].
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from crossmod.data.synthetic.people import User
from crossmod.data.synthetic.photos import CATEGORIES
from crossmod.data.synthetic.scenes import Scene
from crossmod.data.synthetic.settings import GeneratorSettings

_LOG_SALIENCE = np.log([c.salience for c in CATEGORIES])


def visit_order(
    user: User, scene: Scene, settings: GeneratorSettings, rng: np.random.Generator
) -> list[int]:
    """Indices into ``scene.objects`` of the objects explored, first look first."""
    categories = np.array([obj.category for obj in scene.objects])
    # view_disagreement scales everything personal in the choice (preference and noise):
    # 0 makes every annotator follow the image's salience; 1 is the documented model.
    spread = settings.view_disagreement
    score = _LOG_SALIENCE[categories] + spread * user.category_preference[categories]
    score = score + spread * settings.gaze_noise * rng.gumbel(size=len(categories))
    n_visit = int(np.clip(rng.poisson(user.objects_visited - 1) + 1, 1, len(categories)))
    return [int(i) for i in np.argsort(-score, kind="stable")[:n_visit]]


def clicks(
    user: User,
    scene: Scene,
    visited: list[int],
    settings: GeneratorSettings,
    rng: np.random.Generator,
    scan_rng: np.random.Generator,
) -> np.ndarray:
    """Clicks as an N x 3 array of (x, y, order), order 1..N, pixels from the top left.

    The clicks on one object are drawn independently; with probability
    ``user.scan_habit`` (a draw from ``scan_rng`` per object, so that ``rng``'s stream and
    hence every position are the same with any habit) they are then put in the order of
    their projection on the user's scan direction. Only the order changes.
    """
    height, width = settings.image_height, settings.image_width
    direction = np.array([np.cos(user.scan_direction), np.sin(user.scan_direction)])
    points: list[tuple[float, float]] = []
    for i in visited:
        obj = scene.objects[i]
        (cy, cx), (hy, hx) = obj.centre, obj.half_size
        on_object = []
        for _ in range(1 + int(rng.poisson(max(user.clicks_per_object - 1, 0.0)))):
            y = cy + rng.normal(0, user.click_spread * hy)
            x = cx + rng.normal(0, user.click_spread * hx)
            on_object.append((x, y))
        if user.scan_habit > 0 and scan_rng.random() < user.scan_habit:
            on_object.sort(key=lambda p: p[0] * direction[0] + p[1] * direction[1])
        points.extend(on_object)
    # Off-object clicks are inserted at random positions of the sequence.
    for _ in range(int(rng.poisson(settings.background_clicks))):
        position = int(rng.integers(len(points) + 1))
        points.insert(position, (rng.uniform(0, width), rng.uniform(0, height)))
    xy = np.array(points, dtype=np.float64).reshape(-1, 2)
    xy[:, 0] = np.clip(np.round(xy[:, 0], 1), 0, width - 1)
    xy[:, 1] = np.clip(np.round(xy[:, 1], 1), 0, height - 1)
    order = np.arange(1, len(xy) + 1, dtype=np.float64)[:, None]
    return np.hstack([xy, order])


def bubble_map(
    click_xy: np.ndarray, height: int, width: int, radius: float, blur: float
) -> np.ndarray:
    """Union of discs of ``radius`` around each click, blurred by ``blur``, in [0, 1]."""
    revealed = np.zeros((height, width), dtype=np.float32)
    r = int(np.ceil(radius))
    for x, y in click_xy[:, :2]:
        top, bottom = max(int(y) - r, 0), min(int(y) + r + 1, height)
        left, right = max(int(x) - r, 0), min(int(x) + r + 1, width)
        yy, xx = np.ogrid[top:bottom, left:right]
        disc = (yy - y) ** 2 + (xx - x) ** 2 <= radius**2
        revealed[top:bottom, left:right] = np.maximum(revealed[top:bottom, left:right], disc)
    if blur > 0:
        revealed = gaussian_filter(revealed, sigma=blur)
    peak = revealed.max()
    return revealed / peak if peak > 0 else revealed
