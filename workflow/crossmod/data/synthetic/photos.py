"""Object categories cut from real photographs that ship inside installed packages.

Each category has a source photograph (scikit-image, scikit-learn or matplotlib
sample data: nothing is downloaded), the GloVe words a caption may use for it, a
bottom-up salience and its loadings on the Big Five traits (E, A, C, N, O), which set
how much a user with those traits prefers to look at it (see ``people.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image


def _skimage(name: str) -> Path:
    import skimage.data

    return Path(skimage.data.__file__).parent / name


def _sklearn(name: str) -> Path:
    import sklearn.datasets

    return Path(sklearn.datasets.__file__).parent / "images" / name


def _matplotlib(name: str) -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / name


@dataclass(frozen=True)
class Category:
    name: str
    source: tuple[str, str]  # (package, file)
    words: tuple[str, ...]  # synonyms a caption may use (all in GloVe)
    salience: float
    loadings: tuple[float, float, float, float, float]  # E, A, C, N, O


CATEGORIES: tuple[Category, ...] = (
    Category("cat", ("skimage", "chelsea.png"), ("cat", "kitten"), 1.3, (0, 0.8, 0, 0, 0.3)),
    Category("horse", ("skimage", "horse.png"), ("horse", "pony"), 1.0, (0.3, 0.6, 0, 0, 0)),
    Category(
        "astronaut", ("skimage", "astronaut.png"), ("astronaut", "woman"), 1.4, (0.8, 0, 0, 0, 0)
    ),
    Category(
        "officer",
        ("matplotlib", "grace_hopper.jpg"),
        ("officer", "lady"),
        1.3,
        (0.6, 0, 0.3, 0, 0),
    ),
    Category("coffee", ("skimage", "coffee.png"), ("coffee", "cup"), 0.9, (0, 0, 0.6, 0.3, 0)),
    Category("rocket", ("skimage", "rocket.jpg"), ("rocket", "launch"), 1.1, (0.5, 0, 0, 0, 0.4)),
    Category(
        "motorcycle",
        ("skimage", "motorcycle_left.png"),
        ("motorcycle", "bike"),
        1.1,
        (0.7, 0, -0.3, 0, 0),
    ),
    Category("coins", ("skimage", "coins.png"), ("coins", "money"), 0.8, (0, 0, 0.8, 0, 0)),
    Category(
        "camera", ("skimage", "camera.png"), ("photographer", "camera"), 1.0, (0, 0, 0, 0, 0.6)
    ),
    Category("moon", ("skimage", "moon.png"), ("moon", "crater"), 0.8, (0, 0, 0, 0.4, 0.5)),
    Category(
        "galaxy", ("skimage", "hubble_deep_field.jpg"), ("galaxy", "stars"), 0.9, (0, 0, 0, 0, 0.8)
    ),
    Category(
        "clock", ("skimage", "clock_motion.png"), ("clock", "watch"), 0.8, (0, 0, 0.6, 0.4, 0)
    ),
    Category("temple", ("sklearn", "china.jpg"), ("temple", "pagoda"), 1.0, (0, 0, 0, 0, 0.6)),
    Category("flower", ("sklearn", "flower.jpg"), ("flower", "blossom"), 1.1, (0, 0.4, 0, 0, 0.5)),
    Category(
        "gift",
        ("matplotlib", "Minduka_Present_Blue_Pack.png"),
        ("gift", "present"),
        1.0,
        (0, 0.7, 0, -0.2, 0),
    ),
)
TEXTURES: tuple[str, ...] = ("brick.png", "grass.png", "gravel.png")

_LOCATORS = {"skimage": _skimage, "sklearn": _sklearn, "matplotlib": _matplotlib}


def source_path(category: Category) -> Path:
    package, name = category.source
    return _LOCATORS[package](name)


def _as_rgb(image: Image.Image) -> np.ndarray:
    """RGB uint8; transparent parts (RGBA sources) composited on white."""
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


@cache
def photo(category_index: int) -> np.ndarray:
    """The source photograph of a category (H x W x 3 uint8), loaded once per process."""
    with Image.open(source_path(CATEGORIES[category_index])) as image:
        return _as_rgb(image)


@cache
def texture(index: int) -> np.ndarray:
    with Image.open(_skimage(TEXTURES[index])) as image:
        return _as_rgb(image)


def crop_resize(
    source: np.ndarray, height: int, width: int, rng: np.random.Generator
) -> np.ndarray:
    """A random crop of ``source`` with the box's aspect ratio, resized to the box.

    The crop keeps 75-100% of the limiting side, so the object stays recognisable.
    """
    src_h, src_w = source.shape[:2]
    aspect = width / height
    full_h, full_w = (src_h, src_h * aspect) if src_w / src_h > aspect else (src_w / aspect, src_w)
    scale = rng.uniform(0.75, 1.0)
    crop_h, crop_w = max(1, int(full_h * scale)), max(1, int(full_w * scale))
    top = int(rng.integers(0, src_h - crop_h + 1))
    left = int(rng.integers(0, src_w - crop_w + 1))
    crop = Image.fromarray(source[top : top + crop_h, left : left + crop_w])
    return np.asarray(crop.resize((width, height), Image.Resampling.BILINEAR), dtype=np.uint8)
