"""One fully connected layer per modality into a shared space (BASE, CONTENT, STYLE, VEIT).

Inputs are standardised with the training users' mean and standard deviation (kept in
the checkpoint as buffers), since CNN activations, GloVe values and 1..5 answers live
on very different scales. Outputs are L2-normalised unless ``normalize`` is off. The
bilinear VEIT baseline adds a full ``dim x dim`` interaction matrix ``W``:
``s(x, y) = f(x)^T W g(y)``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class Embedder(nn.Module):
    def __init__(
        self,
        input_dims: dict[str, int],
        dim: int = 200,
        normalize: bool = True,
        bilinear: bool = False,
    ) -> None:
        super().__init__()
        self.modalities = tuple(input_dims)
        self.normalize = normalize
        self.encoders = nn.ModuleDict({m: nn.Linear(d, dim) for m, d in input_dims.items()})
        for m, d in input_dims.items():
            self.register_buffer(f"mean_{m}", torch.zeros(d))
            self.register_buffer(f"std_{m}", torch.ones(d))
        self.W = nn.Parameter(torch.eye(dim)) if bilinear else None

    def set_standardization(self, features: dict[str, np.ndarray]) -> None:
        """Mean and standard deviation per input dimension, from the training rows."""
        for m in self.modalities:
            x = torch.as_tensor(np.asarray(features[m], dtype=np.float32))
            getattr(self, f"mean_{m}").copy_(x.mean(dim=0))
            getattr(self, f"std_{m}").copy_(x.std(dim=0).clamp_min(1e-6))

    def embed(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        x = (x - getattr(self, f"mean_{modality}")) / getattr(self, f"std_{modality}")
        out = self.encoders[modality](x)
        return F.normalize(out, dim=1) if self.normalize else out

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {m: self.embed(m, features[m]) for m in self.modalities}
