"""DEPER's personalised captioner (SPEC 10, "Captions"), as a ``torch.nn`` module.

The paper maps z_s with a linear adapter into one token of a frozen VLM's prompt; SPEC 10
replaces the VLM with a small decoder trained from scratch that keeps that interface: z_s
goes through a linear adapter into a prefix token, so the caption of an image can only
differ between annotators through that one token. CLS (:mod:`crossmod.methods.deper`,
scored by :mod:`crossmod.evaluation.captions`) then asks whether it does.

The decoder is a causal transformer rather than a GRU: teacher forcing is one parallel
pass, every word can attend to the subject token directly (a GRU would have to carry it
through its state), and cross-attention to the 49 conv cells is the same mechanism as
DEPER's dual-context encoder. Captions are short (<= 40 words), so generation simply
re-runs the decoder on the growing prefix instead of keeping a key/value cache.

Vocabulary: the caption vocabulary's V frozen word vectors (GloVe rows) are the input
embeddings, through a trained Linear; the output layer scores V words plus <eos> (id V);
<bos> is a learned input vector and is never predicted. Word-id tensors use -1 as
padding, real words first.

Snakemake never imports this module while parsing (it imports torch at the top); the
training code imports it when a model is built.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

IMAGE_CELLS = 49
"""The image tokens: the cells of the 7 x 7 conv map (SPEC 10)."""
PAD = -1
"""The word id of padding in word-id tensors (never a real word or <eos>)."""


@dataclass(frozen=True)
class CaptionerConfig:
    """Size of the caption decoder: model width, layers, heads, dropout, caption length.

    ``max_length`` bounds the words of a caption (without <eos>): the learned position
    table has ``max_length + 2`` rows (subject prefix, <bos>, words), and generation
    stops after ``max_length`` words.
    """

    dim: int = 128
    layers: int = 2
    heads: int = 4
    dropout: float = 0.1
    max_length: int = 40


def _real_word_counts(words: torch.Tensor) -> torch.Tensor:
    """(B,) number of real words per row; raises unless padding is a suffix of each row."""
    if words.ndim != 2:
        raise ValueError(f"words must be (B, L), got shape {tuple(words.shape)}")
    real = words != PAD
    if bool((real[:, 1:] & ~real[:, :-1]).any()):
        raise ValueError("word rows must hold their real words first, then -1 padding")
    return real.sum(dim=1)


class CaptionDecoder(nn.Module):
    """Caption decoder conditioned on the image cells and the subject embedding z_s.

    Input sequence: ``[adapter(z_s), <bos>, w_1 .. w_L]`` plus learned positions, through
    ``layers`` pre-norm transformer decoder layers (causal self-attention, cross-attention
    to the projected image cells, FFN of width 4 * dim). The output at <bos> predicts
    w_1, the output at w_t predicts w_{t+1}, and the output at the last real word
    predicts <eos>; the output at the prefix is not used (there is nothing before <bos>
    to predict).
    """

    def __init__(
        self,
        config: CaptionerConfig,
        word_vectors: torch.Tensor,
        image_dim: int,
        subject_dim: int,
    ) -> None:
        super().__init__()
        if word_vectors.ndim != 2 or len(word_vectors) == 0:
            raise ValueError(f"word_vectors must be (V, d_w), got {tuple(word_vectors.shape)}")
        if config.dim % config.heads:
            raise ValueError(f"dim {config.dim} is not divisible by heads {config.heads}")
        self.config = config
        self.vocabulary_size = len(word_vectors)
        self.eos = self.vocabulary_size
        # A buffer: saved with the model (the vocabulary is part of it), never trained.
        self.register_buffer("word_vectors", word_vectors.detach().clone().float())
        dim = config.dim
        self.word_in = nn.Linear(word_vectors.shape[1], dim)
        self.bos = nn.Parameter(torch.randn(dim) * 0.02)
        self.adapter = nn.Linear(subject_dim, dim)  # SPEC 10's "linear adapter"
        self.positions = nn.Embedding(config.max_length + 2, dim)
        self.image_in = nn.Sequential(nn.Linear(image_dim, dim), nn.LayerNorm(dim))
        self.image_positions = nn.Embedding(IMAGE_CELLS, dim)
        self.dropout = nn.Dropout(config.dropout)
        layer = nn.TransformerDecoderLayer(
            dim,
            config.heads,
            dim_feedforward=4 * dim,
            dropout=config.dropout,
            batch_first=True,
            norm_first=True,
        )
        self.layers = nn.TransformerDecoder(layer, config.layers, norm=nn.LayerNorm(dim))
        self.head = nn.Linear(dim, self.vocabulary_size + 1)

    def _memory(self, image: torch.Tensor) -> torch.Tensor:
        """Image cells (B, C, P) -> cross-attention memory (B, C, dim) with cell positions."""
        if image.ndim != 3 or image.shape[1] > IMAGE_CELLS:
            raise ValueError(f"image must be (B, <= {IMAGE_CELLS}, P), got {tuple(image.shape)}")
        cells = torch.arange(image.shape[1], device=image.device)
        return self.image_in(image) + self.image_positions(cells)

    def forward(
        self, image: torch.Tensor, subject: torch.Tensor, words: torch.Tensor
    ) -> torch.Tensor:
        """Teacher-forced logits (B, L + 1, V + 1); position t predicts word t, then <eos>.

        ``image`` (B, 49, P), ``subject`` (B, D) z_s, ``words`` (B, L) int64 ids with -1
        padding after the real words. Padding needs no attention mask: the causal mask
        already hides it from every real position, and the logits at padded positions
        are ignored by :func:`caption_loss`.
        """
        _real_word_counts(words)
        batch, length = words.shape
        if length > self.config.max_length:
            raise ValueError(f"{length} words exceed max_length {self.config.max_length}")
        if image.shape[0] != batch or subject.shape[0] != batch:
            raise ValueError(
                f"batch sizes differ: image {image.shape[0]}, subject {subject.shape[0]}, "
                f"words {batch}"
            )
        real = (words != PAD).unsqueeze(-1)
        vectors = self.word_vectors[words.clamp_min(0)]
        tokens = self.word_in(vectors) * real
        prefix = self.adapter(subject).unsqueeze(1)
        bos = self.bos.expand(batch, 1, -1)
        sequence = torch.cat([prefix, bos, tokens], dim=1)
        steps = sequence.shape[1]
        sequence = self.dropout(sequence + self.positions(torch.arange(steps, device=words.device)))
        causal = nn.Transformer.generate_square_subsequent_mask(steps, device=words.device)
        hidden = self.layers(sequence, self._memory(image), tgt_mask=causal, tgt_is_causal=True)
        return self.head(hidden[:, 1:])

    def _check_generation(self, image: torch.Tensor, max_length: int | None) -> int:
        length = self.config.max_length if max_length is None else int(max_length)
        if not 0 < length <= self.config.max_length:
            raise ValueError(f"max_length must be in 1..{self.config.max_length}, got {length}")
        if image.ndim != 3:
            raise ValueError(f"image must be (B, cells, P), got {tuple(image.shape)}")
        return length

    @torch.no_grad()
    def generate(
        self,
        image: torch.Tensor,
        subject: torch.Tensor,
        beam: int = 1,
        max_length: int | None = None,
    ) -> list[list[int]]:
        """One caption per sample, as word ids without <eos>.

        ``beam == 1``: greedy (the argmax word at each step until <eos> or
        ``max_length`` words). ``beam > 1``: beam search ranked by length-normalised
        log-probability (see :meth:`score`); the greedy caption is always one of the
        final candidates, so beam search never returns a caption that scores lower than
        greedy's. Runs in eval mode (no dropout) and restores the mode afterwards, so the
        result is deterministic.
        """
        length = self._check_generation(image, max_length)
        if beam < 1:
            raise ValueError(f"beam must be >= 1, got {beam}")
        was_training = self.training
        self.eval()
        try:
            greedy = self._greedy(image, subject, length)
            if beam == 1:
                return greedy
            return [
                self._beam_search(image[i : i + 1], subject[i : i + 1], beam, length, greedy[i])
                for i in range(len(image))
            ]
        finally:
            self.train(was_training)

    def _greedy(self, image: torch.Tensor, subject: torch.Tensor, length: int) -> list[list[int]]:
        batch = len(image)
        words = torch.full((batch, 0), PAD, dtype=torch.long, device=image.device)
        done = torch.zeros(batch, dtype=torch.bool, device=image.device)
        for step in range(length):
            best = self(image, subject, words)[:, step].argmax(dim=-1)
            finished = done | (best == self.eos)
            words = torch.cat([words, torch.where(finished, PAD, best).unsqueeze(1)], dim=1)
            done = finished
            if bool(done.all()):
                break
        return [[w for w in row if w != PAD] for row in words.tolist()]

    def _beam_search(
        self,
        image: torch.Tensor,
        subject: torch.Tensor,
        beam: int,
        length: int,
        greedy: list[int],
    ) -> list[int]:
        """Beam search for one sample (image (1, C, P), subject (1, D)).

        Live hypotheses are ranked by their summed log-probability; one that predicts
        <eos> is set aside as finished; the search stops when ``beam`` have finished,
        none is live, or ``length`` words are reached. The best of the finished, the
        still-live (ended by the length limit) and the greedy caption by :meth:`score`
        is returned; ties go to the earlier-found candidate.
        """
        live: list[tuple[list[int], float]] = [([], 0.0)]
        finished: list[list[int]] = []
        for step in range(length):
            words = torch.tensor([seq for seq, _ in live], dtype=torch.long, device=image.device)
            words = words.reshape(len(live), step)
            logits = self(image.expand(len(live), -1, -1), subject.expand(len(live), -1), words)
            log_p = logits[:, step].log_softmax(dim=-1)
            so_far = torch.tensor([total for _, total in live], device=log_p.device)
            totals = log_p + so_far[:, None]
            top = totals.flatten().topk(min(beam, totals.numel()))
            next_live = []
            for value, index in zip(top.values.tolist(), top.indices.tolist(), strict=True):
                row, word = divmod(index, totals.shape[1])
                if word == self.eos:
                    finished.append(live[row][0])
                else:
                    next_live.append((live[row][0] + [word], value))
            live = next_live
            if len(finished) >= beam or not live:
                break
        candidates = finished + [seq for seq, _ in live] + [greedy]
        scores = self.score(
            image.expand(len(candidates), -1, -1),
            subject.expand(len(candidates), -1),
            candidates,
            max_length=length,
        )
        return candidates[int(scores.argmax())]

    @torch.no_grad()
    def score(
        self,
        image: torch.Tensor,
        subject: torch.Tensor,
        captions: list[list[int]],
        max_length: int | None = None,
    ) -> torch.Tensor:
        """(B,) length-normalised log-probability of each caption (word ids, no <eos>).

        The mean log-probability over the caption's words and its closing <eos>; a
        caption of ``max_length`` words is scored without the <eos> (generation stops
        there without predicting one). The criterion that beam search maximises. Uses
        the module's current mode (call ``eval()`` first for deterministic scores).
        """
        length = self._check_generation(image, max_length)
        if len(captions) != len(image):
            raise ValueError(f"{len(captions)} captions for {len(image)} images")
        width = max((len(c) for c in captions), default=0)
        words = torch.full((len(captions), width), PAD, dtype=torch.long, device=image.device)
        for row, caption in enumerate(captions):
            if len(caption) > length:
                raise ValueError(f"caption of {len(caption)} words exceeds max_length {length}")
            words[row, : len(caption)] = torch.tensor(caption, dtype=torch.long)
        log_p = self(image, subject, words).log_softmax(dim=-1)
        targets = _targets(words, self.eos)
        picked = log_p.gather(-1, targets.clamp_min(0).unsqueeze(-1)).squeeze(-1)
        counts = torch.tensor([len(c) for c in captions], device=image.device)
        keep = targets != PAD
        keep[torch.arange(len(captions)), counts] &= counts < length  # no <eos> at the limit
        keep = keep.to(picked.dtype)
        return (picked * keep).sum(dim=1) / keep.sum(dim=1).clamp_min(1.0)


def _targets(words: torch.Tensor, eos: int) -> torch.Tensor:
    """(B, L + 1) targets: the real words, <eos> right after them, -1 elsewhere."""
    counts = _real_word_counts(words)
    padding = torch.full((len(words), 1), PAD, dtype=words.dtype, device=words.device)
    targets = torch.cat([words, padding], dim=1)
    targets[torch.arange(len(words), device=words.device), counts] = eos
    return targets


def caption_loss(logits: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
    """Mean token cross-entropy of teacher-forced ``logits`` over real words and <eos>.

    ``logits`` (B, L + 1, V + 1) from :meth:`CaptionDecoder.forward`, ``words`` (B, L)
    with -1 padding. Every real word and each caption's closing <eos> (id V, the last
    logit) is one token; the mean is over all tokens of the batch, so a long caption
    weighs more than a short one (as in a language model's per-token loss), and
    padding is ignored.
    """
    if logits.ndim != 3 or logits.shape[:2] != (words.shape[0], words.shape[1] + 1):
        raise ValueError(
            f"logits {tuple(logits.shape)} must be (B, L + 1, V + 1) for words {tuple(words.shape)}"
        )
    targets = _targets(words, logits.shape[-1] - 1)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=PAD)
