"""DEPER's networks (SPEC 10), as ``torch.nn`` modules.

:mod:`crossmod.methods.deper` (imported while Snakemake parses, so torch-free at its top)
holds the losses, the memory bank and the CLS metric; the modules live here.
"""

from __future__ import annotations

import torch
from torch import nn


class FiLM(nn.Module):
    """Feature-wise linear modulation: ``h -> gamma(z) * h + beta(z)``.

    The trajectory decoder's step states ``h`` (B, ..., features) are modulated by
    the subject embedding ``z`` (B, condition), so that the same step queries decode
    a different viewing order for each subject. ``gamma`` and ``beta`` are Linear
    maps of z. Initialisation: both weights are zero, gamma's bias is one and
    beta's zero, so a fresh layer is exactly the identity (gamma = 1, beta = 0) and
    training starts from the unconditioned decoder; the weights still receive
    gradients (d gamma / d W = z), so the conditioning is learned from there. The
    reference bounds the modulation (``h (1 + tanh g) + tanh b``); SPEC 10's plain
    affine form is used here.
    """

    def __init__(self, features: int, condition: int) -> None:
        super().__init__()
        self.gamma = nn.Linear(condition, features)
        self.beta = nn.Linear(condition, features)
        nn.init.zeros_(self.gamma.weight)
        nn.init.ones_(self.gamma.bias)
        nn.init.zeros_(self.beta.weight)
        nn.init.zeros_(self.beta.bias)

    def forward(self, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if h.shape[0] != z.shape[0]:
            raise ValueError(f"batch sizes differ: h {tuple(h.shape)}, z {tuple(z.shape)}")
        # (B, F) -> (B, 1, ..., 1, F): one gamma/beta per sample, shared by its steps.
        shape = (z.shape[0],) + (1,) * (h.ndim - 2) + (h.shape[-1],)
        return self.gamma(z).reshape(shape) * h + self.beta(z).reshape(shape)
