"""Knobs of the synthetic generator: ``$defs/generator`` in the config schema.

Their defaults (the paper's ads sizes) and meanings are written in the schema only;
``GeneratorSettings.from_config`` fills them in. ``kind: coco`` with 79 users, 363
images and 30 sets gives the coco sizes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from crossmod.settings import Settings


@dataclass(frozen=True)
class GeneratorSettings(Settings):
    """What the generator makes and how strongly personality shapes behaviour."""

    SECTION = "$defs/generator"

    kind: str
    seed: int
    n_users: int
    n_images: int
    n_sets: int
    images_per_set: int
    annotators_per_set: int
    image_height: int
    image_width: int
    min_objects: int
    max_objects: int
    style_strength: float
    idiosyncrasy: float
    answer_noise: float
    gaze_noise: float
    view_disagreement: float
    word_noise: float
    clicks_per_object: float
    scan_habit: float
    background_clicks: float
    bubble_radius: float
    map_blur: float
    jpeg_quality: int

    def __post_init__(self) -> None:
        slots = self.n_sets * self.annotators_per_set
        if self.n_users > slots:
            raise ValueError(f"{self.n_users} users cannot all annotate: only {slots} tasks")
        if self.n_images > self.n_sets * self.images_per_set:
            raise ValueError(
                f"{self.n_images} images do not fit in {self.n_sets} sets of {self.images_per_set}"
            )
        if self.min_objects > self.max_objects:
            raise ValueError("need min_objects <= max_objects")

    def to_dict(self) -> dict:
        return asdict(self)
