"""The ``features`` section of the config (defaults and meanings: the config schema).

Three jobs read it: ``crossmod.features.images`` (the CNN: backbone, weights, batch
size), ``crossmod.features.annotations`` (masking, text) and ``crossmod.features.locals``
(PVSE's local features). Each receives only the keys it uses, so changing the gaze
pooling redoes the masking and not the CNN pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from crossmod.settings import Settings

IMAGE_KEYS = ("backbone", "backbone_weights", "batch_size")
ANNOTATION_KEYS = ("gaze_pooling", "reveal_threshold", "text_encoder", "glove_path")
LOCAL_KEYS = ("local_dim", "glove_path")  # crossmod.features.locals (PVSE's cache)


@dataclass(frozen=True)
class FeatureSettings(Settings):
    SECTION = "features"
    WORKFLOW_KEYS = ("threads",)

    backbone: str
    backbone_weights: str
    batch_size: int
    gaze_pooling: str
    reveal_threshold: float
    text_encoder: str
    glove_path: str
    local_dim: int
