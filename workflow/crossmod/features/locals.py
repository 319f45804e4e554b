"""``python -m crossmod.features.locals``: the local features PVSE attends over (SPEC 9).

PVSE needs, per annotation, a set of local features rather than one vector: the 49
cells of the image's conv map weighted by the annotation's BubbleView map, and the
caption's word vectors (its personality tokens come from the ten answers, already in
the feature table). This job caches what those need, so no PVSE training job reruns
the CNN or re-reads a map:

- ``cells`` (n_images, 49, P): each image's conv-map cells, projected on the first P
  principal components of all images' cells (``features.local_dim``; 0 keeps all C
  channels). Why: PIE-Net's attention is a d/2 x d matrix over every cell of every
  sample in a batch; with d = 1280 a step costs ~5 GMAC, too slow for the default run
  on 2 CPU cores. The projection is fitted on the images only (no labels, no users), and
  scaled so that a component has unit variance on average.
- ``map_row`` (N,) and ``grids`` (N, 7, 7): each annotation's image row and its map
  area-averaged onto the conv grid (the weights of its cells);
- ``tokens`` (N, L) int32, -1 padded, and ``vocabulary`` (V, d): each caption's known
  words as rows of the (GloVe) vectors of the words the captions use, and ``words``
  (V,), those words, for decoders that write captions (DEPER).
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import pandas as pd

from crossmod.cli import ensure_parent, setup_logging
from crossmod.data.release import load_map
from crossmod.features.gaze import resize_map
from crossmod.features.glove import load_vectors, tokenize
from crossmod.features.settings import FeatureSettings

log = logging.getLogger("crossmod.features.locals")


def project_cells(maps: np.ndarray, dim: int) -> np.ndarray:
    """(n_images, C, h, w) conv maps -> (n_images, h*w, dim) cells on their top principal axes."""
    n, channels, height, width = maps.shape
    cells = maps.reshape(n, channels, height * width).transpose(0, 2, 1).astype(np.float64)
    flat = cells.reshape(-1, channels)
    centred = flat - flat.mean(axis=0)
    if not dim or dim >= channels:
        projected = centred
    else:
        # Principal axes from the C x C covariance (C = 1280: cheap, deterministic).
        covariance = centred.T @ centred / max(len(centred) - 1, 1)
        values, vectors = np.linalg.eigh(covariance)
        top = vectors[:, np.argsort(values)[::-1][:dim]]
        top *= np.sign(top[np.abs(top).argmax(axis=0), np.arange(top.shape[1])])  # fixed sign
        projected = centred @ top
    scale = projected.std(axis=0).mean() or 1.0
    return (projected / scale).reshape(n, height * width, -1).astype(np.float32)


def token_ids(
    captions: list[str], glove_path: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, L) int32 rows into a (V, d) vocabulary of the known words; -1 pads (and no word).

    Also the (V,) words themselves, which DEPER's caption decoder writes out.
    """
    tokenized = [tokenize(c) for c in captions]
    vectors = load_vectors(glove_path, {t for tokens in tokenized for t in tokens})
    words = sorted({t for tokens in tokenized for t in tokens if t in vectors})
    row = {word: i for i, word in enumerate(words)}
    length = max((sum(t in row for t in tokens) for tokens in tokenized), default=1) or 1
    ids = np.full((len(captions), length), -1, dtype=np.int32)
    for i, tokens in enumerate(tokenized):
        known = [row[t] for t in tokens if t in row]
        ids[i, : len(known)] = known
    index = vectors.index
    vocabulary = np.asarray(vectors.vectors[[index[w] for w in words]], dtype=np.float32)
    return ids, vocabulary.reshape(len(words), vectors.dim), np.array(words, dtype=str)


def map_rows(annotations: pd.DataFrame, images: pd.DataFrame) -> pd.Series:
    """Each annotation's row in the CNN job's map array (images.parquet's ``map_row``)."""
    lookup = dict(zip(images["image"], images["map_row"], strict=True))
    map_row = annotations["image"].map(lookup)
    if map_row.isna().any():
        missing = sorted(annotations.loc[map_row.isna(), "image"].unique())[:5]
        raise ValueError(f"no conv map for image(s) {missing}")
    return map_row


def local_features(
    annotations: pd.DataFrame, maps: np.ndarray, images: pd.DataFrame, settings: FeatureSettings
) -> dict[str, np.ndarray]:
    map_row = map_rows(annotations, images)
    grid_h, grid_w = maps.shape[2:]
    grids = np.stack(
        [resize_map(load_map(path)[0], grid_h, grid_w) for path in annotations["map_path"]]
    ).astype(np.float32)
    tokens, vocabulary, words = token_ids(
        annotations["caption"].tolist(), settings.glove_path or None
    )
    return {
        "annotation_id": annotations["annotation_id"].to_numpy(np.int64),
        "map_row": map_row.to_numpy(np.int64),
        "grids": grids,
        "cells": project_cells(maps, settings.local_dim),
        "tokens": tokens,
        "vocabulary": vocabulary,
        "words": words,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--annotations", required=True)
    parser.add_argument("--maps", required=True, help="image_maps.npy from the CNN job")
    parser.add_argument("--index", required=True, help="images.parquet from the CNN job")
    parser.add_argument("--settings", required=True, help="the features section (JSON)")
    parser.add_argument("--out", required=True, help="locals.npz to write")
    args = parser.parse_args(argv)
    setup_logging()
    settings = FeatureSettings.from_json(args.settings)
    annotations = pd.read_parquet(args.annotations)
    try:
        arrays = local_features(
            annotations, np.load(args.maps), pd.read_parquet(args.index), settings
        )
    except ValueError as err:
        raise SystemExit(f"{args.index}: {err}") from None
    np.savez(ensure_parent(args.out), **arrays)
    log.info("%s", {name: value.shape for name, value in arrays.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
