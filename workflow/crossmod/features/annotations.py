"""``python -m crossmod.features.annotations``: every modality's vector per annotation.

Per annotation: ``gaze`` (the image's conv map under the annotation's BubbleView map,
pooled), ``image`` (the unmasked pooled map: the anchor v), ``text`` (the caption's
encoding), ``personality`` (the ten BFI answers) and the gaze statistics (fraction
revealed, max and min distance between bubble centres, number of bubbles). The conv
maps come from ``image_features`` (one CNN pass per image); here only the cheap
per-annotation masking happens.
"""

from __future__ import annotations

import argparse
import json
import logging

import numpy as np
import pandas as pd

from crossmod.cli import ensure_parent, setup_logging
from crossmod.data.arrays import write_table
from crossmod.data.release import load_map
from crossmod.features.bfi import COLUMNS as BFI_COLUMNS
from crossmod.features.gaze import gaze_statistics, masked_pool, resize_map
from crossmod.features.settings import FeatureSettings
from crossmod.features.text import TextCoverage, encode

log = logging.getLogger("crossmod.features.annotations")

# The image's file name is `image_name` here: `image` is the image modality's vectors.
META_COLUMNS = ("annotation_id", "task_id", "user", "image")
STAT_COLUMNS = ("revealed", "max_distance", "min_distance", "n_bubbles")


def gaze_and_image_vectors(
    annotations: pd.DataFrame,
    maps: np.ndarray,
    map_rows: np.ndarray,
    pooling: str,
    threshold: float,
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """g, v and the gaze statistics for every annotation (maps indexed by ``map_rows``)."""
    n, channels, grid_h, grid_w = len(annotations), *maps.shape[1:]
    image_vectors = maps.mean(axis=(2, 3))  # v: once per image
    gaze = np.zeros((n, channels), dtype=np.float32)
    stats = []
    empty = 0
    for i, (path, row) in enumerate(zip(annotations["map_path"], map_rows, strict=True)):
        hm, clicks = load_map(path)
        grid = resize_map(hm, grid_h, grid_w)
        if grid.sum() <= 0:
            empty += 1
        gaze[i] = masked_pool(maps[row], grid, pooling)
        stats.append(gaze_statistics(hm, clicks, threshold))
    if empty:
        log.warning("%d annotation(s) reveal nothing: their gaze vector is zero", empty)
    return gaze, image_vectors[map_rows], pd.DataFrame(stats, columns=list(STAT_COLUMNS))


def compute_features(
    annotations: pd.DataFrame,
    maps: np.ndarray,
    images: pd.DataFrame,
    settings: FeatureSettings,
) -> tuple[pd.DataFrame, dict[str, np.ndarray], TextCoverage]:
    """Metadata, per-modality matrices and text coverage for every annotation."""
    lookup = dict(zip(images["image"], images["map_row"], strict=True))
    missing = sorted(set(annotations["image"]) - set(lookup))
    if missing:
        raise ValueError(f"no conv map for {len(missing)} image(s): {missing[:5]}")
    map_rows = annotations["image"].map(lookup).to_numpy()
    gaze, image, stats = gaze_and_image_vectors(
        annotations, maps, map_rows, settings.gaze_pooling, settings.reveal_threshold
    )
    text, unknown, coverage = encode(
        annotations["caption"].tolist(), settings.text_encoder, settings.glove_path or None
    )
    personality = annotations[list(BFI_COLUMNS)].to_numpy(dtype=np.float32)
    meta = annotations[list(META_COLUMNS)].rename(columns={"image": "image_name"})
    meta = meta.reset_index(drop=True)
    meta["unknown_words"] = unknown
    meta = pd.concat([meta, stats], axis=1)
    arrays = {"gaze": gaze, "image": image, "text": text, "personality": personality}
    return meta, arrays, coverage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--annotations", required=True)
    parser.add_argument("--maps", required=True, help="maps.npy from image_features")
    parser.add_argument("--index", required=True, help="images.parquet from image_features")
    parser.add_argument("--out", required=True, help="features.parquet to write")
    parser.add_argument("--coverage", required=True, help="text_coverage.json to write")
    parser.add_argument("--settings", required=True, help="the features section (JSON)")
    args = parser.parse_args(argv)
    settings = FeatureSettings.from_json(args.settings)
    setup_logging()

    annotations = pd.read_parquet(args.annotations)
    try:
        meta, arrays, coverage = compute_features(
            annotations,
            np.load(args.maps),
            pd.read_parquet(args.index),
            settings,
        )
    except ValueError as err:
        raise SystemExit(f"{args.index}: {err}") from None
    write_table(meta, arrays, ensure_parent(args.out))
    report = {"text_encoder": settings.text_encoder, "glove": settings.glove_path or "glove-6b-50d"}
    report.update(coverage.to_dict())
    ensure_parent(args.coverage).write_text(json.dumps(report, indent=2) + "\n")
    shapes = ", ".join(f"{m} {x.shape}" for m, x in arrays.items())
    log.info(
        "%d annotations: %s; unknown words %d/%d (%.2f%%)",
        len(meta),
        shapes,
        coverage.n_unknown,
        coverage.n_words,
        100 * coverage.unknown_rate,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
