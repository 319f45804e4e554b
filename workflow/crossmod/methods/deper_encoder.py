"""DEPER's dual-context encoder (SPEC 10) and the attention it is built from.

Two token streams, the attention trajectory and the caption, are encoded side by side:
each layer of a stream attends to itself, then to the image's cells together with the
other stream as it left the previous layer, then goes through a feed-forward layer.
The modules here know nothing of where the tokens come from (that is
:class:`crossmod.methods.deper_net.DeperNetwork`), only of which ones are padding.

Masks are ``keep`` tensors, True at real tokens. A query whose keys are all padding
would get a softmax over nothing (NaN), so every key set handed to :class:`Attention`
must hold at least one real token: the network gives each stream an always-present
start token, and the image's cells are always among the cross-attention's keys.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

STREAMS = {
    "both": ("trajectory", "caption"),
    "caption": ("caption",),
    "trajectory": ("trajectory",),
}
"""The streams each ``streams`` setting encodes (the one-stream settings are baselines)."""


def position_code(
    positions: torch.Tensor, dim: int, scale: float = 100.0, base: float = 10000.0
) -> torch.Tensor:
    """The 2-D sinusoidal code (..., dim) of positions (..., 2) = (x, y) in [0, 1].

    The torch twin of :func:`crossmod.features.trajectories.sinusoidal_position_code`
    (same layout, scale and frequencies; see there), so that the code can be computed on
    the device from the cached positions. The angles reach ``scale`` radians, where
    float32 would lose about 1e-5, so they are computed in float64 as numpy does and
    only the result is cast (to the positions' dtype, or float32 for integer input).
    """
    if dim < 4 or dim % 4:
        raise ValueError(f"dim must be a positive multiple of 4, got {dim}")
    if positions.shape[-1] != 2:
        raise ValueError(f"positions must end in (x, y), got shape {tuple(positions.shape)}")
    half = dim // 2
    steps = torch.arange(0, half, 2, dtype=torch.float64, device=positions.device)
    frequencies = base ** (-steps / half)  # (dim / 4,)
    angles = positions.to(torch.float64)[..., None] * scale * frequencies  # (..., 2, dim / 4)
    # (..., 2, dim / 4, 2) -> x block then y block, each sin, cos interleaved.
    code = torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(start_dim=-3)
    dtype = positions.dtype if positions.is_floating_point() else torch.float32
    return code.to(dtype)


def grid_positions(cells: int, device: torch.device | None = None) -> torch.Tensor:
    """The centres (cells, 2) = (x, y) in [0, 1] of a square grid's cells, row-major.

    The conv map's cells are stored row-major (``crossmod.features.locals``), cell
    (r, c) of an n x n grid covering ``[c / n, (c + 1) / n)`` of the image's width and
    ``[r / n, (r + 1) / n)`` of its height, so its centre is ((c + 0.5) / n, (r + 0.5) / n),
    in the same normalised coordinates as the trajectory's positions.
    """
    side = math.isqrt(cells)
    if side * side != cells:
        raise ValueError(f"image tokens must be the cells of a square grid, got {cells}")
    centres = (torch.arange(side, dtype=torch.float32, device=device) + 0.5) / side
    rows, cols = torch.meshgrid(centres, centres, indexing="ij")
    return torch.stack((cols.flatten(), rows.flatten()), dim=-1)


class Attention(nn.Module):
    """Multi-head attention of queries (B, T, D) over keys (B, S, D), padding masked.

    ``keep`` (B, S) is True at real keys; padded keys get exactly zero weight, so
    whatever a padded token holds cannot reach a real one. None means all keys are real.
    Every row of ``keep`` must have a True (see the module's docstring). Written on
    :func:`torch.nn.functional.scaled_dot_product_attention` (fused kernels on CPU and
    GPU) rather than ``nn.MultiheadAttention``, whose inference fast path behaves
    differently with masks. No dropout on the attention weights: on a CPU it forces the
    unfused kernel and costs a fifth of a training step; the blocks drop out elsewhere.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be a multiple of heads ({heads})")
        self.heads = heads
        self.query = nn.Linear(dim, dim)
        self.key_value = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        b, t, d = x.shape
        s, h = context.shape[1], self.heads
        query = self.query(x).view(b, t, h, d // h).transpose(1, 2)
        key, value = self.key_value(context).view(b, s, 2, h, d // h).permute(2, 0, 3, 1, 4)
        mask = None if keep is None else keep[:, None, None, :]
        y = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    """Self-attention, cross-attention to a context, feed-forward; residuals + LayerNorm.

    Post-norm, as the original transformer and SPEC 10's "residuals and LayerNorm":
    ``x = LN(x + SA(x))``, ``x = LN(x + CA(x, context))``, ``x = LN(x + FFN(x))``, the
    FFN 4 D wide with GELU. Dropout on each sublayer's output and on the FFN's hidden
    layer. Both a stream's encoder layer and a decoder layer.
    """

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.self_attention = Attention(dim, heads)
        self.cross_attention = Attention(dim, heads)
        self.feed_forward = nn.Sequential(
            nn.Linear(dim, 4 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * dim, dim)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(3))
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        keep: torch.Tensor | None,
        context: torch.Tensor,
        context_keep: torch.Tensor | None,
    ) -> torch.Tensor:
        x = self.norms[0](x + self.dropout(self.self_attention(x, x, keep)))
        x = self.norms[1](x + self.dropout(self.cross_attention(x, context, context_keep)))
        return self.norms[2](x + self.dropout(self.feed_forward(x)))


class DualContextEncoder(nn.Module):
    """``layers`` :class:`Block` s per stream; each stream's context is [image; the others].

    Layer l of a stream cross-attends to the image tokens and to the other stream's
    tokens as layer l - 1 left them (its input tokens at l = 0), so the streams
    exchange information in step. With one stream the context is the image alone.
    """

    def __init__(self, dim: int, heads: int, layers: int, dropout: float, streams: str) -> None:
        super().__init__()
        if streams not in STREAMS:
            raise ValueError(f"streams must be one of {sorted(STREAMS)}, got {streams!r}")
        self.names = STREAMS[streams]
        self.blocks = nn.ModuleDict(
            {
                name: nn.ModuleList(Block(dim, heads, dropout) for _ in range(layers))
                for name in self.names
            }
        )

    def forward(
        self,
        image: torch.Tensor,
        tokens: dict[str, torch.Tensor],
        keep: dict[str, torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        """Image tokens (B, N, D) (all real), each stream's tokens (B, S, D) and keep (B, S)."""
        image_keep = torch.ones(image.shape[:2], dtype=torch.bool, device=image.device)
        states = {name: tokens[name] for name in self.names}
        for layer in range(len(self.blocks[self.names[0]])):
            updated = {}
            for name in self.names:
                others = [other for other in self.names if other != name]
                context = torch.cat([image] + [states[o] for o in others], dim=1)
                context_keep = torch.cat([image_keep] + [keep[o] for o in others], dim=1)
                block = self.blocks[name][layer]
                updated[name] = block(states[name], keep[name], context, context_keep)
            states = updated
        return states
