"""DEPER's networks (SPEC 10), as ``torch.nn`` modules.

:mod:`crossmod.methods.deper` (imported while Snakemake parses, so torch-free at its top)
holds the losses, the memory bank and the CLS metric; the modules live here:
:class:`DeperNetwork` embeds the (image, caption, trajectory) triplet as tokens, encodes
them with the dual-context encoder (:mod:`crossmod.methods.deper_encoder`), pools a
subject embedding z_s (:class:`SubjectExtractor`), classifies it over the training
subjects and decodes a trajectory from it (:class:`TrajectoryDecoder`, conditioned by
:class:`FiLM`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from crossmod.methods.deper_encoder import (
    STREAMS,
    Attention,
    Block,
    DualContextEncoder,
    grid_positions,
    position_code,
)

__all__ = [
    "CosineClassifier",
    "DeperConfig",
    "DeperNetwork",
    "DeperOutput",
    "FiLM",
    "SubjectExtractor",
    "SummaryPath",
    "TrajectoryDecoder",
    "position_code",
    "scan_direction",
    "summary_features",
    "trajectory_statistics",
]

DECODER_LAYERS = 2
"""Layers of the trajectory decoder (SPEC 10 leaves it open; as many as a stream has)."""


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


@dataclass(frozen=True)
class DeperConfig:
    """The network's shape (SPEC 10; defaults are this project's, D = 128).

    ``streams``: "both", or one stream alone ("caption", "trajectory": the one-encoder
    baselines). ``order_code`` False drops the learned order embedding of the steps,
    which leaves the trajectory a set of clicks (the "without order codes" ablation).
    ``classifier_scale``: the :class:`CosineClassifier`'s scale (0: a plain linear one).
    """

    dim: int = 128
    heads: int = 4
    layers: int = 2
    dropout: float = 0.1
    max_steps: int = 30
    streams: str = "both"
    order_code: bool = True
    classifier_scale: float = 16.0
    summary_path: bool = False

    def __post_init__(self) -> None:
        if self.streams not in STREAMS:
            raise ValueError(f"streams must be one of {sorted(STREAMS)}, got {self.streams!r}")
        if self.dim < 4 or self.dim % 4 or self.dim % self.heads:
            raise ValueError(
                f"dim ({self.dim}) must be a multiple of 4 (the position code) and of "
                f"heads ({self.heads})"
            )
        if self.layers < 1 or self.max_steps < 1:
            raise ValueError(f"layers and max_steps must be >= 1: {self.layers}, {self.max_steps}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.classifier_scale < 0:
            raise ValueError(f"classifier_scale must be >= 0, got {self.classifier_scale}")


@dataclass
class DeperOutput:
    """What :meth:`DeperNetwork.forward` gives, B samples, T steps.

    ``z`` (B, D) the subject embedding (not normalised); ``logits`` (B, n_subjects) the
    classifier's; ``positions`` (B, T, 2) the decoded clicks in [0, 1]; ``validity``
    (B, T) the decoded steps' validity logits.
    """

    z: torch.Tensor
    logits: torch.Tensor
    positions: torch.Tensor
    validity: torch.Tensor


def _normal(*shape: int) -> nn.Parameter:
    """A learned token, small (std 0.02) so that it starts as a mild offset."""
    return nn.Parameter(nn.init.trunc_normal_(torch.empty(*shape), std=0.02))


class SubjectExtractor(nn.Module):
    """z_s: one learned query attends over the encoded streams, beside their mean, then an MLP.

    ``z = MLP(LN(q + Attention(q, streams) + mean(streams)))`` with a two-layer GELU MLP
    (D -> D -> D); the mean is over the real tokens of both streams. SPEC 10 has the
    query alone. The mean is this project's addition, measured: a person's style is
    spread over many tokens (which synonyms, which objects first), and one softmax query
    settles on a few of them. On synthetic-coco split 0 (1000 steps at 5e-4, input
    dropout, S = 5, uncentred) the query alone reached top-1 .28, query + mean .35.
    The streams' start tokens are among the keys, so even a sample with no click and no
    known word has something to attend to and a defined mean.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.query = _normal(1, 1, dim)
        self.attention = Attention(dim, heads)
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, states: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        query = self.query.expand(states.shape[0], -1, -1)
        pooled = self.attention(query, states, keep)
        weights = keep.to(states.dtype)[..., None]
        mean = (states * weights).sum(dim=1, keepdim=True) / weights.sum(dim=1, keepdim=True)
        return self.mlp(self.norm(query + pooled + mean))[:, 0]


TRAJECTORY_STATISTICS = 5
"""Per trajectory: clicks / max_steps, max and min distance between clicks, spread in x and y."""


def trajectory_statistics(
    positions: torch.Tensor, valid: torch.Tensor, max_steps: int
) -> torch.Tensor:
    """(B, 5): how many clicks, how far apart, how spread, from (B, T, 2) positions in [0, 1].

    The twin of the handcrafted gaze statistics (``crossmod.features.gaze``: revealed
    area, max and min distance between bubbles, their number), computed from the
    trajectory itself: the click count over ``max_steps``; the largest and smallest
    distance between two clicks over the unit square's diagonal (0 with fewer than two
    clicks); the standard deviation of x and of y over the clicks (0 with none).
    """
    weights = valid.to(positions.dtype)
    count = weights.sum(dim=1)
    safe = count.clamp_min(1.0)[:, None]
    mean = (positions * weights[..., None]).sum(dim=1) / safe
    spread = (((positions - mean[:, None]) ** 2 * weights[..., None]).sum(dim=1) / safe).sqrt()
    pair = valid[:, :, None] & valid[:, None, :]
    pair = pair & ~torch.eye(valid.shape[1], dtype=torch.bool, device=valid.device)
    distance = torch.cdist(positions, positions) / 2**0.5
    has_pair = pair.flatten(1).any(dim=1)
    largest = distance.masked_fill(~pair, 0.0).flatten(1).amax(dim=1)
    smallest = distance.masked_fill(~pair, 2.0).flatten(1).amin(dim=1)
    smallest = torch.where(has_pair, smallest, torch.zeros_like(smallest))
    return torch.cat(
        [(count / max_steps)[:, None], largest[:, None], smallest[:, None], spread], dim=1
    )


SCAN_DIRECTION = 2
"""Per trajectory: the mean direction (x, y) of its steps from one click to the next."""


def scan_direction(positions: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(B, 2): the mean unit vector from each click to the next, over consecutive real clicks.

    The one summary that needs the clicks' order: a person who works around an object
    left to right steps mostly in +x. Steps are pairs (t, t + 1) with both clicks real
    (a click hidden by training's click dropout drops its two steps, which leaves the
    mean unbiased); a step of zero length, or a trajectory with no step, adds zero.
    """
    step = positions[:, 1:] - positions[:, :-1]
    pair = (valid[:, 1:] & valid[:, :-1]).to(positions.dtype)[..., None]
    length = step.norm(dim=-1, keepdim=True)
    unit = torch.where(length > 0, step / length.clamp_min(1e-12), torch.zeros_like(step))
    return (unit * pair).sum(dim=1) / pair.sum(dim=1).clamp_min(1.0)


def summary_features(
    word_vectors: torch.Tensor,
    words: torch.Tensor,
    positions: torch.Tensor,
    valid: torch.Tensor,
    max_steps: int,
    streams: tuple[str, ...] = STREAMS["both"],
    ordered: bool = True,
) -> torch.Tensor:
    """(B, F) a sample's summary: the mean vector of its caption's known words (zero
    without one; caption stream), then :func:`trajectory_statistics` and, when the
    order counts (``ordered``, the network's ``order_code``), :func:`scan_direction`
    (trajectory stream). Without it the summary is the same for any order of the clicks."""
    parts = []
    if "caption" in streams:
        known = (words >= 0).to(word_vectors.dtype)[..., None]
        total = (word_vectors[words.clamp_min(0)] * known).sum(dim=1)
        parts.append(total / known.sum(dim=1).clamp_min(1.0))
    if "trajectory" in streams:
        parts.append(trajectory_statistics(positions, valid, max_steps))
        if ordered:
            parts.append(scan_direction(positions, valid))
    return torch.cat(parts, dim=1)


class SummaryPath(nn.Module):
    """A linear read of what a sample holds on the whole, added to z_s.

    Features: the mean frozen word vector of the caption's known words (caption stream)
    and :func:`trajectory_statistics` with, when ``ordered`` (the network's order code),
    :func:`scan_direction` (trajectory stream), standardised with the
    training samples' mean and deviation (:meth:`fit`, kept as buffers so that a saved
    model standardises as it did in training), then one Linear map to D.

    Why: the encoder's streams learn the training subjects' samples faster than a
    metric that carries over to new people, while a linear map of these same summaries,
    trained with the same image-centred subject loss, generalises (README "DEPER", with
    the measurement). The Linear map has PyTorch's default initialisation: a zero one
    was tried, and its output stayed near zero (the cosine classifier reads only z_s's
    direction, so nothing pulls a small part's length up) and added nothing.
    """

    def __init__(
        self,
        word_dim: int,
        dim: int,
        max_steps: int,
        streams: tuple[str, ...],
        ordered: bool = True,
    ) -> None:
        super().__init__()
        self.streams = streams
        self.max_steps = max_steps
        self.ordered = ordered
        trajectory = TRAJECTORY_STATISTICS + (SCAN_DIRECTION if ordered else 0)
        width = (word_dim if "caption" in streams else 0) + (
            trajectory if "trajectory" in streams else 0
        )
        self.register_buffer("shift", torch.zeros(width))
        self.register_buffer("scale", torch.ones(width))
        self.linear = nn.Linear(width, dim)

    def features(
        self,
        word_vectors: torch.Tensor,
        words: torch.Tensor,
        positions: torch.Tensor,
        valid: torch.Tensor,
    ) -> torch.Tensor:
        """(B, F) raw summaries of this path's streams (:func:`summary_features`)."""
        return summary_features(
            word_vectors, words, positions, valid, self.max_steps, self.streams, self.ordered
        )

    @torch.no_grad()
    def fit(self, features: torch.Tensor) -> None:
        """Standardise with these (training) samples' mean and deviation (constant: 1)."""
        self.shift.copy_(features.mean(dim=0))
        deviation = features.std(dim=0)
        self.scale.copy_(torch.where(deviation > 0, deviation, torch.ones_like(deviation)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear((features - self.shift) / self.scale)


class CosineClassifier(nn.Module):
    """Logits ``scale * cos(z, w_k)``: the subject classifier that reads z_s.

    A linear classifier over the training subjects (SPEC 10) with its rows and z
    normalised, so that subjects are told apart by the direction of z, which is what
    the few-shot rule compares (cosine to centroids), and not by its length. The fixed
    scale sets how peaked the softmax can get (16: a cosine margin of 0.3 is a factor
    of about 100). Measured on synthetic-ads split 0 (800 steps, S = 5): top-1 .21 with
    the plain linear layer, .25-.28 with this one. ``scale`` 0 gives the plain
    ``nn.Linear`` logits instead.
    """

    def __init__(self, dim: int, n_subjects: int, scale: float) -> None:
        super().__init__()
        self.scale = float(scale)
        self.linear = nn.Linear(dim, n_subjects, bias=self.scale <= 0)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.scale <= 0:
            return self.linear(z)
        weight = nn.functional.normalize(self.linear.weight, dim=1)
        return self.scale * nn.functional.normalize(z, dim=1) @ weight.T


class TrajectoryDecoder(nn.Module):
    """Non-autoregressive: learned step queries, FiLM-modulated by z, read the encoder.

    Before each of its :class:`Block` s (self-attention among the steps, cross-attention
    to the memory, FFN) the step states are modulated by their own :class:`FiLM` of z,
    the one place where the decoder sees z: fresh FiLMs are the identity, so a new
    decoder's output does not depend on z and the conditioning is learned. Heads: a
    sigmoid position (x, y) and a validity logit per step. ``steps`` decodes the first
    ``steps`` queries (at most ``max_steps``), to match the inputs' padding length.
    """

    def __init__(self, dim: int, heads: int, dropout: float, max_steps: int) -> None:
        super().__init__()
        # Unit-scale queries (as DETR's): small ones would make the steps alike at first.
        self.queries = nn.Parameter(torch.randn(max_steps, dim))
        self.films = nn.ModuleList(FiLM(dim, dim) for _ in range(DECODER_LAYERS))
        self.blocks = nn.ModuleList(Block(dim, heads, dropout) for _ in range(DECODER_LAYERS))
        self.position = nn.Linear(dim, 2)
        self.validity = nn.Linear(dim, 1)

    def forward(
        self, memory: torch.Tensor, keep: torch.Tensor, z: torch.Tensor, steps: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Memory (B, S, D) with keep (B, S), z (B, D) -> positions (B, T, 2), logits (B, T)."""
        if not 1 <= steps <= len(self.queries):
            raise ValueError(f"steps must be in 1..{len(self.queries)}, got {steps}")
        h = self.queries[:steps].expand(memory.shape[0], -1, -1)
        for film, block in zip(self.films, self.blocks, strict=True):
            h = block(film(h, z), None, memory, keep)
        return torch.sigmoid(self.position(h)), self.validity(h).squeeze(-1)


class DeperNetwork(nn.Module):
    """The whole of SPEC 10's network: tokens, encoder, z_s, classifier, decoder.

    Inputs (B samples): ``image`` (B, N, P) the conv map's N cells (a square grid,
    row-major), projected to P dims; ``trajectory`` (B, T, P) per step the cells under
    the bubble, ``positions`` (B, T, 2) its (x, y) in [0, 1], ``valid`` (B, T) True at real
    steps (T <= max_steps); ``words`` (B, L) rows of ``word_vectors``, negative = padding.

    Tokens (all D wide):

    - image cell = Linear(cell) + Linear_pos(position code of the cell's centre). SPEC 10
      has no code here, but the reference's image tokens are a ViT's, which carry their
      place; without it a cell would not say where it is (the decoder could not place a
      click from the image alone), and sharing Linear_pos with the steps puts a step and
      the cell under it in one coordinate system;
    - trajectory step = Linear(content) + Linear_pos(position code) + order embedding of
      the step index (``order_code``), after a learned start token;
    - caption word = Linear(frozen word vector), after a learned start token.

    The start tokens are always real, so no attention ever has only padded keys (a NaN)
    and a sample with no click or no known word still gets a finite z. The decoder's
    memory is the image tokens and the encoded streams.
    """

    def __init__(
        self, config: DeperConfig, image_dim: int, word_vectors: torch.Tensor, n_subjects: int
    ) -> None:
        super().__init__()
        if word_vectors.ndim != 2:
            raise ValueError(f"word_vectors must be (V, d_w), got {tuple(word_vectors.shape)}")
        self.config = config
        dim = config.dim
        self.names = STREAMS[config.streams]
        # A buffer, not a parameter: frozen GloVe rows, no gradient, saved with the model.
        self.register_buffer("word_vectors", word_vectors.detach().to(torch.float32).clone())
        self.image_in = nn.Linear(image_dim, dim)
        self.position_in = nn.Linear(dim, dim)
        self.start = nn.ParameterDict({name: _normal(dim) for name in self.names})
        if "trajectory" in self.names:
            self.trajectory_in = nn.Linear(image_dim, dim)
            self.order = _normal(config.max_steps, dim) if config.order_code else None
        if "caption" in self.names:
            self.word_in = nn.Linear(word_vectors.shape[1], dim)
        self.token_dropout = nn.Dropout(config.dropout)
        self.encoder = DualContextEncoder(
            dim, config.heads, config.layers, config.dropout, config.streams
        )
        self.extractor = SubjectExtractor(dim, config.heads)
        self.summary = (
            SummaryPath(word_vectors.shape[1], dim, config.max_steps, self.names, config.order_code)
            if config.summary_path
            else None
        )
        self.classifier = CosineClassifier(dim, n_subjects, config.classifier_scale)
        self.decoder = TrajectoryDecoder(dim, config.heads, config.dropout, config.max_steps)

    def _stream(
        self, name: str, tokens: torch.Tensor, keep: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prepend the stream's start token (always real) to its tokens and mask."""
        b = tokens.shape[0]
        start = self.start[name].expand(b, 1, -1)
        always = torch.ones(b, 1, dtype=torch.bool, device=keep.device)
        return torch.cat([start, tokens], dim=1), torch.cat([always, keep], dim=1)

    def _encoded(
        self,
        image: torch.Tensor,
        trajectory: torch.Tensor,
        positions: torch.Tensor,
        valid: torch.Tensor,
        words: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Image tokens (B, N, D), the encoded streams (B, S, D) and their keep (B, S)."""
        b, steps = valid.shape
        if (
            image.shape[0] != b
            or words.shape[0] != b
            or trajectory.shape[:2] != (b, steps)
            or positions.shape != (b, steps, 2)
        ):
            raise ValueError(
                f"inputs disagree: image {tuple(image.shape)}, trajectory "
                f"{tuple(trajectory.shape)}, positions {tuple(positions.shape)}, valid "
                f"{tuple(valid.shape)}, words {tuple(words.shape)}"
            )
        if steps > self.config.max_steps:
            raise ValueError(f"{steps} steps, more than max_steps ({self.config.max_steps})")
        dim = self.config.dim
        cells = grid_positions(image.shape[1], image.device).to(image.dtype)
        image_tokens = self.image_in(image) + self.position_in(position_code(cells, dim))
        image_tokens = self.token_dropout(image_tokens)
        tokens, keep = {}, {}
        if "trajectory" in self.names:
            x = self.trajectory_in(trajectory) + self.position_in(position_code(positions, dim))
            if self.order is not None:
                x = x + self.order[:steps]
            tokens["trajectory"], keep["trajectory"] = self._stream(
                "trajectory", self.token_dropout(x), valid.to(torch.bool)
            )
        if "caption" in self.names:
            known = words >= 0
            x = self.word_in(self.word_vectors[words.clamp_min(0)])
            tokens["caption"], keep["caption"] = self._stream(
                "caption", self.token_dropout(x), known
            )
        states = self.encoder(image_tokens, tokens, keep)
        streams = torch.cat([states[name] for name in self.names], dim=1)
        return image_tokens, streams, torch.cat([keep[name] for name in self.names], dim=1)

    def encode(
        self,
        image: torch.Tensor,
        trajectory: torch.Tensor,
        positions: torch.Tensor,
        valid: torch.Tensor,
        words: torch.Tensor,
    ) -> torch.Tensor:
        """z_s (B, D) alone (the few-shot embedding; no classifier, no decoder)."""
        _, streams, keep = self._encoded(image, trajectory, positions, valid, words)
        return self._subject(streams, keep, positions, valid, words)

    def encode_parts(
        self,
        image: torch.Tensor,
        trajectory: torch.Tensor,
        positions: torch.Tensor,
        valid: torch.Tensor,
        words: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """z_s's two addends apart: "streams" (the extractor's) and "summary" (the path's).

        What each part alone tells about a person (README "DEPER"); needs the summary path.
        """
        if self.summary is None:
            raise ValueError("this network has no summary path (summary_path is False)")
        _, streams, keep = self._encoded(image, trajectory, positions, valid, words)
        return self._parts(streams, keep, positions, valid, words)

    def summary_features(
        self, positions: torch.Tensor, valid: torch.Tensor, words: torch.Tensor
    ) -> torch.Tensor:
        """The :class:`SummaryPath`'s raw features of these samples (it must exist)."""
        if self.summary is None:
            raise ValueError("this network has no summary path (summary_path is False)")
        return self.summary.features(self.word_vectors, words, positions, valid)

    def _parts(
        self,
        streams: torch.Tensor,
        keep: torch.Tensor,
        positions: torch.Tensor,
        valid: torch.Tensor,
        words: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """z_s's addends: the extractor's, and the summary path's where there is one."""
        parts = {"streams": self.extractor(streams, keep)}
        if self.summary is not None:
            parts["summary"] = self.summary(self.summary_features(positions, valid, words))
        return parts

    def _subject(self, *encoded: torch.Tensor) -> torch.Tensor:
        """z_s: the sum of :meth:`_parts` (same arguments)."""
        return sum(self._parts(*encoded).values())

    def forward(
        self,
        image: torch.Tensor,
        trajectory: torch.Tensor,
        positions: torch.Tensor,
        valid: torch.Tensor,
        words: torch.Tensor,
    ) -> DeperOutput:
        image_tokens, streams, keep = self._encoded(image, trajectory, positions, valid, words)
        z = self._subject(streams, keep, positions, valid, words)
        image_keep = torch.ones(image_tokens.shape[:2], dtype=torch.bool, device=keep.device)
        memory = torch.cat([image_tokens, streams], dim=1)
        xy, validity = self.decoder(
            memory, torch.cat([image_keep, keep], dim=1), z, positions.shape[1]
        )
        return DeperOutput(z=z, logits=self.classifier(z), positions=xy, validity=validity)
