"""Scenes: a textured background with a few photographed objects in a 2 x 3 layout."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from crossmod.data.synthetic.language import TOPICS
from crossmod.data.synthetic.photos import CATEGORIES, TEXTURES, crop_resize, photo, texture
from crossmod.data.synthetic.settings import GeneratorSettings

GRID_ROWS, GRID_COLS = 2, 3


@dataclass(frozen=True)
class SceneObject:
    category: int
    box: tuple[int, int, int, int]  # top, left, bottom, right (pixels, exclusive end)

    @property
    def centre(self) -> tuple[float, float]:
        top, left, bottom, right = self.box
        return (top + bottom) / 2, (left + right) / 2

    @property
    def half_size(self) -> tuple[float, float]:
        top, left, bottom, right = self.box
        return (bottom - top) / 2, (right - left) / 2


@dataclass(frozen=True)
class Scene:
    index: int
    objects: tuple[SceneObject, ...]
    topic: str | None  # ads only
    background: int
    tint: tuple[float, float, float]


def make_scenes(settings: GeneratorSettings, rng: np.random.Generator) -> list[Scene]:
    height, width = settings.image_height, settings.image_width
    cell_h, cell_w = height / GRID_ROWS, width / GRID_COLS
    topics = list(TOPICS)
    scenes = []
    for index in range(settings.n_images):
        n_objects = int(rng.integers(settings.min_objects, settings.max_objects + 1))
        categories = rng.choice(len(CATEGORIES), size=n_objects, replace=False)
        cells = rng.choice(GRID_ROWS * GRID_COLS, size=n_objects, replace=False)
        objects = []
        for category, cell in zip(categories, cells, strict=True):
            row, col = divmod(int(cell), GRID_COLS)
            box_h = int(cell_h * rng.uniform(0.6, 0.92))
            box_w = int(cell_w * rng.uniform(0.6, 0.92))
            top = int(row * cell_h + rng.integers(0, int(cell_h) - box_h + 1))
            left = int(col * cell_w + rng.integers(0, int(cell_w) - box_w + 1))
            objects.append(SceneObject(int(category), (top, left, top + box_h, left + box_w)))
        scenes.append(
            Scene(
                index=index,
                objects=tuple(objects),
                topic=topics[int(rng.integers(len(topics)))] if settings.kind == "ads" else None,
                background=int(rng.integers(len(TEXTURES))),
                tint=tuple(float(v) for v in rng.uniform(0.5, 1.0, size=3)),
            )
        )
    return scenes


def render(scene: Scene, settings: GeneratorSettings, rng: np.random.Generator) -> Image.Image:
    """The scene's pixels: tinted texture, then each object's photo crop in its box."""
    height, width = settings.image_height, settings.image_width
    background = Image.fromarray(texture(scene.background)).resize(
        (width, height), Image.Resampling.BILINEAR
    )
    canvas = np.asarray(background, dtype=np.float32) * np.asarray(scene.tint, dtype=np.float32)
    canvas = canvas.astype(np.uint8)
    for obj in scene.objects:
        top, left, bottom, right = obj.box
        canvas[top:bottom, left:right] = crop_resize(
            photo(obj.category), bottom - top, right - left, rng
        )
    return Image.fromarray(canvas)
