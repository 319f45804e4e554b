"""Knobs of the synthetic generator (every one is a config key, see config.yaml)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from crossmod.cli import dataclass_from_dict


@dataclass(frozen=True)
class GeneratorSettings:
    """What the generator makes and how strongly personality shapes behaviour.

    The defaults give the paper's ads sizes; ``kind: coco`` with 79 users, 363 images
    and 30 sets gives the coco sizes.
    """

    kind: str = "ads"  # "ads" (captions "i should ... because ...") or "coco" (descriptions)
    seed: int = 1
    n_users: int = 139
    n_images: int = 543
    n_sets: int = 60  # image sets of `images_per_set`; each set is one task per annotator
    images_per_set: int = 15
    annotators_per_set: int = 3
    image_height: int = 240
    image_width: int = 320
    min_objects: int = 3  # objects per scene, drawn uniformly in [min_objects, max_objects]
    max_objects: int = 5
    # 0 makes users interchangeable (the null set); 1 is the documented default model.
    style_strength: float = 1.0
    # Weight of each user's idiosyncratic part relative to the trait-driven part.
    idiosyncrasy: float = 0.7
    answer_noise: float = 0.6  # sd of the noise on each BFI-10 answer (1..5 scale)
    gaze_noise: float = 0.6  # scale of the Gumbel noise on which objects get looked at
    word_noise: float = 0.15  # chance that a style slot ignores the user's habits
    clicks_per_object: float = 4.0  # mean clicks on a visited object (before style)
    background_clicks: float = 1.0  # mean clicks off every object
    bubble_radius: float = 18.0  # BubbleView bubble radius, pixels
    map_blur: float = 3.0  # sd of the Gaussian blur of the revealed-disc map, pixels
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        if self.kind not in ("ads", "coco"):
            raise ValueError(f"kind must be 'ads' or 'coco', got {self.kind!r}")
        slots = self.n_sets * self.annotators_per_set
        if self.n_users > slots:
            raise ValueError(f"{self.n_users} users cannot all annotate: only {slots} tasks")
        if self.n_images > self.n_sets * self.images_per_set:
            raise ValueError(
                f"{self.n_images} images do not fit in {self.n_sets} sets of {self.images_per_set}"
            )
        if not 1 <= self.min_objects <= self.max_objects <= 6:
            raise ValueError("need 1 <= min_objects <= max_objects <= 6 (a 2 x 3 layout)")
        if self.style_strength < 0:
            raise ValueError("style_strength must be >= 0")

    @classmethod
    def from_dict(cls, values: dict) -> GeneratorSettings:
        return dataclass_from_dict(cls, values, "generator")

    def to_dict(self) -> dict:
        return asdict(self)
