"""PIE-Net and one encoder per modality for PVSE (SPEC 9), as ``torch.nn`` modules.

PIE-Net turns a sample's global feature and its local features (image cells, words,
questionnaire items) into K embeddings: K attention maps over the locals give K
residuals, each added to the mapped global feature, layer-normalised and L2-normalised.
The losses and the scoring live in :mod:`crossmod.methods.pvse`, which Snakemake imports
while parsing and which therefore imports this torch module only when a model is built.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from crossmod.methods.pvse import ANSWER_CENTRE, MODALITIES, N_ITEMS, NUM_EMBEDDINGS


class LocalFeatures(NamedTuple):
    """What an encoder hands to its PIE-Net.

    ``global_feature`` (B, d_global) goes through PIE-Net's ``g_fc``; ``local_features``
    (B, L, d_local) are attended over; ``mask`` (B, L) is a bool tensor, True at real
    positions and False at padding.
    """

    global_feature: Any
    local_features: Any
    mask: Any


def all_valid(features: torch.Tensor) -> torch.Tensor:
    return torch.ones(features.shape[:2], dtype=torch.bool, device=features.device)


def masked_mean(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.to(features.dtype)
    total = (features * weights[..., None]).sum(dim=1)
    return total / weights.sum(dim=1, keepdim=True).clamp_min(1.0)


class MultiHeadSelfAttention(nn.Module):
    """K attention maps over L positions: ``A = softmax_L(w2 tanh(w1 x^T))``.

    w1 (d_hidden x d_local, d_hidden = d_local / 2 by default) and w2 (K x d_hidden)
    have no bias and are Xavier-initialised. Padded positions get -inf before the
    softmax, so their weight is exactly 0; a sample with no real position at all
    gets an all-zero map (instead of the NaN of a softmax over nothing).
    """

    def __init__(self, d_local: int, k: int, d_hidden: int | None = None) -> None:
        super().__init__()
        d_hidden = d_hidden or max(1, d_local // 2)
        self.k = k
        self.w1 = nn.Linear(d_local, d_hidden, bias=False)
        self.w2 = nn.Linear(d_hidden, k, bias=False)
        nn.init.xavier_uniform_(self.w1.weight)
        nn.init.xavier_uniform_(self.w2.weight)

    def forward(
        self, local_features: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, L, d_local), mask (B, L) True at real positions -> A (B, K, L)."""
        logits = self.w2(torch.tanh(self.w1(local_features))).transpose(1, 2)
        if mask is None:
            return logits.softmax(dim=-1)
        keep = mask[:, None, :]
        logits = logits.masked_fill(~keep, float("-inf"))
        empty = ~mask.any(dim=1)
        logits = logits.masked_fill(empty[:, None, None], 0.0)
        return logits.softmax(dim=-1) * keep.to(logits.dtype)


class PIENet(nn.Module):
    """Polysemous instance embedding: K embeddings from a global and local features.

    ``phi = g_fc(g)``, ``r = dropout(sigmoid(fc(A x)))`` (K x D residuals),
    ``e_k = LayerNorm(phi + r_k)``, each ``e_k`` L2-normalised. ``global_only``
    (the ablation) has no attention and no residual: K = 1 and
    ``e = LayerNorm(phi)``, normalised.
    """

    def __init__(
        self,
        d_local: int,
        d_global: int,
        d_embed: int,
        k: int | None = None,
        dropout: float = 0.0,
        global_only: bool = False,
        d_hidden: int | None = None,
    ) -> None:
        super().__init__()
        if k is None:
            k = 1 if global_only else NUM_EMBEDDINGS
        if global_only and k != 1:
            raise ValueError(f"the global-only model has K = 1, not {k}")
        if k < 1:
            raise ValueError(f"K must be at least 1, got {k}")
        self.k = k
        self.global_only = global_only
        self.g_fc = nn.Linear(d_global, d_embed)
        self.layer_norm = nn.LayerNorm(d_embed)
        self.attention = None if global_only else MultiHeadSelfAttention(d_local, k, d_hidden)
        self.fc = None if global_only else nn.Linear(d_local, d_embed)
        self.dropout = nn.Dropout(dropout)
        for layer in (self.g_fc, self.fc):
            if layer is not None:
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)

    def forward(
        self,
        global_feature: torch.Tensor,
        local_features: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        return_attention: bool = False,
    ) -> tuple[torch.Tensor, ...]:
        """Embeddings (B, K, D) and residuals (B, K, D) (None when global-only).

        ``mask`` (B, L) is True at real positions. With ``return_attention`` a third
        element, the attention maps (B, K, L) (None when global-only), follows.
        """
        phi = self.g_fc(global_feature)[:, None, :]
        if self.global_only:
            residual = attention = None
            embeddings = F.normalize(self.layer_norm(phi), dim=-1)
        else:
            if local_features is None:
                raise ValueError("PIE-Net needs local features unless global_only")
            attention = self.attention(local_features, mask)
            pooled = attention @ local_features
            residual = self.dropout(torch.sigmoid(self.fc(pooled)))
            embeddings = F.normalize(self.layer_norm(phi + residual), dim=-1)
        if return_attention:
            return embeddings, residual, attention
        return embeddings, residual


class _Encoder(nn.Module):
    """A modality's inputs -> :class:`LocalFeatures` -> its own PIE-Net."""

    pie_net: PIENet

    def local_features(self, *inputs: Any) -> LocalFeatures:
        raise NotImplementedError

    def forward(self, *inputs: Any, return_attention: bool = False) -> tuple[Any, ...]:
        """Embeddings (B, K, D), residuals (B, K, D) [, attention (B, K, L)]."""
        features = self.local_features(*inputs)
        return self.pie_net(*features, return_attention=return_attention)


class GazeEncoder(_Encoder):
    """Gaze: the conv map's cells weighted by the annotation's map on the same grid.

    Inputs: ``conv_maps`` (B, C, h, w) (7 x 7 for the default backbone) and
    ``grid_maps`` (B, h, w), the BubbleView map already area-resized to the grid
    (``crossmod.features.gaze.resize_map``). Locals: the h*w weighted cells (C each),
    all real; global: their mean (SPEC 3's ``mean``-pooled gaze vector), which
    PIE-Net's ``g_fc`` maps to D.
    """

    def __init__(self, channels: int, d_embed: int, **pie_options: Any) -> None:
        super().__init__()
        self.channels = channels
        self.pie_net = PIENet(channels, channels, d_embed, **pie_options)

    def local_features(self, conv_maps: torch.Tensor, grid_maps: torch.Tensor) -> LocalFeatures:
        b, c, h, w = conv_maps.shape
        if c != self.channels or tuple(grid_maps.shape) != (b, h, w):
            raise ValueError(
                f"expected conv maps (B, {self.channels}, h, w) and grid maps (B, h, w), "
                f"got {tuple(conv_maps.shape)} and {tuple(grid_maps.shape)}"
            )
        cells = conv_maps.flatten(start_dim=2).transpose(1, 2)  # (B, h*w, C)
        local = cells * grid_maps.reshape(b, h * w, 1).to(cells.dtype)
        mask = all_valid(local)
        return LocalFeatures(masked_mean(local, mask), local, mask)


class TextEncoder(_Encoder):
    """Text: a caption's word vectors, padded, with their lengths.

    Inputs: ``words`` (B, L, d_word) and ``lengths`` (B,) (each >= 1). Locals: the
    word vectors, padding masked; global: a bidirectional GRU (``hidden`` units per
    direction, d_embed / 2 by default) over the real words only, its two final hidden
    states concatenated (forward after the last word, backward after the first),
    mapped to D by PIE-Net's ``g_fc``.

    The two directions are two GRUs over padded batches: the forward one reads the
    words, the backward one each caption's words reversed (padding kept at the end), and
    each state is read at the caption's last word. That is exactly a bidirectional GRU
    over packed sequences, at a third of its cost on a CPU (packing runs one small step
    per time step and batch size).
    """

    def __init__(
        self, d_word: int, d_embed: int, hidden: int | None = None, **pie_options: Any
    ) -> None:
        super().__init__()
        hidden = hidden or max(1, d_embed // 2)
        self.forward_gru = nn.GRU(d_word, hidden, batch_first=True)
        self.backward_gru = nn.GRU(d_word, hidden, batch_first=True)
        self.pie_net = PIENet(d_word, 2 * hidden, d_embed, **pie_options)

    def local_features(self, words: torch.Tensor, lengths: Any) -> LocalFeatures:
        lengths = torch.as_tensor(lengths, dtype=torch.long, device=words.device)
        if lengths.shape != words.shape[:1]:
            raise ValueError(f"need one length per caption, got {tuple(lengths.shape)}")
        if lengths.numel() and (lengths.min() < 1 or lengths.max() > words.shape[1]):
            raise ValueError(f"lengths must lie in 1..{words.shape[1]}")
        positions = torch.arange(words.shape[1], device=words.device)
        mask = positions[None, :] < lengths[:, None]
        longest = int(lengths.max()) if lengths.numel() else 1
        real = words[:, :longest]
        order = positions[None, :longest].expand(len(words), -1)
        reverse = torch.where(mask[:, :longest], lengths[:, None] - 1 - order, order)
        backwards = real.gather(1, reverse[..., None].expand(-1, -1, real.shape[2]))
        rows, last = torch.arange(len(words), device=words.device), lengths - 1
        forward_states = self.forward_gru(real)[0][rows, last]
        backward_states = self.backward_gru(backwards)[0][rows, last]
        global_feature = torch.cat([forward_states, backward_states], dim=1)
        return LocalFeatures(global_feature, words, mask)


class PersonalityEncoder(_Encoder):
    """Personality: the ten BFI-10 answers (B, 10), 1..5, as ten item tokens.

    Token i = a learned embedding of item i + (answer_i - 3) times a learned vector
    (d_token each); global: the ten centred answers, mapped to D by PIE-Net's ``g_fc``
    (an FC of the answers: centring only moves its bias).
    """

    def __init__(self, d_embed: int, d_token: int = 32, **pie_options: Any) -> None:
        super().__init__()
        self.items = nn.Embedding(N_ITEMS, d_token)
        self.answer_direction = nn.Parameter(torch.randn(d_token))
        self.pie_net = PIENet(d_token, N_ITEMS, d_embed, **pie_options)

    def local_features(self, answers: torch.Tensor) -> LocalFeatures:
        answers = torch.as_tensor(answers, device=self.items.weight.device)
        if answers.dim() != 2 or answers.shape[1] != N_ITEMS:
            raise ValueError(f"expected (B, {N_ITEMS}) answers, got {tuple(answers.shape)}")
        centred = answers.to(self.items.weight.dtype) - ANSWER_CENTRE
        tokens = self.items.weight[None, :, :] + centred[..., None] * self.answer_direction
        return LocalFeatures(centred, tokens, all_valid(tokens))


def build_pie_net(
    d_local: int,
    d_global: int,
    d_embed: int,
    k: int | None = None,
    dropout: float = 0.0,
    global_only: bool = False,
    d_hidden: int | None = None,
) -> nn.Module:
    """A PIE-Net: ``forward(global (B, d_global), locals (B, L, d_local), mask (B, L))``.

    K defaults to 2 (SPEC 9), or 1 for the global-only ablation; ``d_hidden`` (the
    attention's hidden size) to d_local / 2.
    """
    return PIENet(d_local, d_global, d_embed, k, dropout, global_only, d_hidden)


def build_gaze_encoder(
    channels: int,
    d_embed: int,
    k: int | None = None,
    dropout: float = 0.0,
    global_only: bool = False,
) -> nn.Module:
    """Gaze encoder + PIE-Net: ``forward(conv_maps (B, C, h, w), grid_maps (B, h, w))``."""
    return GazeEncoder(channels, d_embed, k=k, dropout=dropout, global_only=global_only)


def build_text_encoder(
    d_word: int,
    d_embed: int,
    k: int | None = None,
    dropout: float = 0.0,
    global_only: bool = False,
    hidden: int | None = None,
) -> nn.Module:
    """Text encoder + PIE-Net: ``forward(words (B, L, d_word), lengths (B,))``."""
    return TextEncoder(
        d_word, d_embed, hidden=hidden, k=k, dropout=dropout, global_only=global_only
    )


def build_personality_encoder(
    d_embed: int,
    k: int | None = None,
    dropout: float = 0.0,
    global_only: bool = False,
    d_token: int = 32,
) -> nn.Module:
    """Personality encoder + PIE-Net: ``forward(answers (B, 10))``, answers in 1..5."""
    return PersonalityEncoder(
        d_embed, d_token=d_token, k=k, dropout=dropout, global_only=global_only
    )


def build_encoder(modality: str, input_dim: int, d_embed: int, **options: Any) -> nn.Module:
    """The encoder of ``modality`` (one of :data:`MODALITIES`).

    ``input_dim``: the conv map's channels (gaze), the word-vector size (text), or the
    number of answers (personality, must be 10). ``options`` go to the builder.
    """
    if modality == "gaze":
        return build_gaze_encoder(input_dim, d_embed, **options)
    if modality == "text":
        return build_text_encoder(input_dim, d_embed, **options)
    if modality == "personality":
        if input_dim != N_ITEMS:
            raise ValueError(f"personality has {N_ITEMS} answers, not {input_dim}")
        return build_personality_encoder(d_embed, **options)
    raise ValueError(f"unknown modality {modality!r}; use one of {MODALITIES}")


class PVSENetwork(nn.Module):
    """One PIE-Net encoder per modality of a PVSE network, over the cached local features.

    Per-annotation inputs (``crossmod.methods.pvse.inputs``), one tensor per modality so
    that the shared training loop can index batches: gaze = (image row, the map's h*w
    grid weights), text = word rows into the vocabulary (-1 pads), personality = the ten
    answers. The images' projected conv cells and the word vectors are buffers that are
    not saved with the weights (they are features, rebuilt from the cache).
    """

    def __init__(
        self,
        modalities: tuple[str, ...],
        d_embed: int,
        k: int,
        dropout: float,
        global_only: bool,
        cells: torch.Tensor,
        vocabulary: torch.Tensor,
    ) -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        self.k = 1 if global_only else k
        self.register_buffer("cells", cells, persistent=False)  # (n_images, h*w, P)
        self.register_buffer("vocabulary", vocabulary, persistent=False)  # (V, d_word)
        options = {"k": self.k, "dropout": dropout, "global_only": global_only}
        builders = {
            "gaze": lambda: GazeEncoder(cells.shape[2], d_embed, **options),
            "text": lambda: TextEncoder(vocabulary.shape[1], d_embed, **options),
            "personality": lambda: PersonalityEncoder(d_embed, **options),
        }
        self.encoders = nn.ModuleDict({m: builders[m]() for m in self.modalities})

    def _inputs(self, modality: str, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if modality == "gaze":
            cells = self.cells[x[:, 0].long()]  # (B, h*w, P)
            side = round(cells.shape[1] ** 0.5)
            conv_maps = cells.transpose(1, 2).reshape(len(x), -1, side, side)
            return conv_maps, x[:, 1:].reshape(len(x), side, side)
        if modality == "text":
            ids = x.long()
            real = ids >= 0
            words = self.vocabulary[ids.clamp_min(0)] * real[..., None]
            # A caption without one known word reads as a single zero vector.
            return words, real.sum(dim=1).clamp_min(1)
        return (x,)

    def encode(self, modality: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Embeddings (B, K, D) and residuals (B, K, D) (None for the global-only model)."""
        return self.encoders[modality](*self._inputs(modality, x))

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, tuple]:
        return {m: self.encode(m, batch[m]) for m in self.modalities}

    def embed(self, modality: str, x: torch.Tensor, chunk: int = 512) -> torch.Tensor:
        """(n, K*D): each sample's K embeddings side by side (what the pools are scored on)."""
        parts = [self.encode(modality, x[i : i + chunk])[0] for i in range(0, len(x), chunk)]
        return torch.cat(parts).flatten(start_dim=1)
