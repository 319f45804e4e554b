"""``python -m crossmod.features.images``: the backbone's conv map of every unique image.

Each image goes through the CNN exactly once per run, however many annotators saw it
(the per-annotation gaze masking happens later, on these maps). Images are decoded and
resized in a background thread while the CNN works on the previous batch, so the
pipeline runs at close to the bare forward rate (``make bench`` measures both).

Outputs: ``maps.npy`` (n_images x C x h x w, float32, in the order of ``images.parquet``)
and ``images.parquet`` (image, image_path, row index into the maps).
"""

from __future__ import annotations

import argparse
import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from PIL import Image

from crossmod.cli import ensure_parent, setup_logging
from crossmod.features.backbones import Backbone, build_backbone
from crossmod.features.settings import FeatureSettings
from crossmod.progress import Progress

log = logging.getLogger("crossmod.features.images")


@dataclass(frozen=True)
class ExtractionStats:
    n_images: int
    seconds: float
    forward_seconds: float

    @property
    def images_per_second(self) -> float:
        return self.n_images / self.seconds if self.seconds else float("nan")


def unique_images(annotations: pd.DataFrame) -> pd.DataFrame:
    """One row per distinct image, in first-seen order, with its row in the map array."""
    images = annotations.drop_duplicates("image")[["image", "image_path"]].reset_index(drop=True)
    images["map_row"] = np.arange(len(images), dtype=np.int64)
    return images


def _batches(
    backbone: Backbone, paths: list[str], batch_size: int
) -> Iterator[tuple[int, np.ndarray]]:
    for start in range(0, len(paths), batch_size):
        arrays = []
        for path in paths[start : start + batch_size]:
            with Image.open(path) as image:
                arrays.append(backbone.preprocess(image))
        yield start, np.stack(arrays)


def _prefetch(iterator: Iterator, depth: int = 2) -> Iterator:
    """Run ``iterator`` in a thread, ``depth`` items ahead (image decoding releases the GIL)."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def work() -> None:
        try:
            for item in iterator:
                slots.put(item)
        except BaseException as err:  # re-raised in the consumer
            slots.put(err)
        slots.put(done)

    threading.Thread(target=work, daemon=True).start()
    while (item := slots.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item


def extract(
    backbone: Backbone, paths: list[str], batch_size: int = 32
) -> tuple[np.ndarray, ExtractionStats]:
    """Conv maps of ``paths`` (in order), computed in batches with prefetching."""
    maps: np.ndarray | None = None
    start_time = time.perf_counter()
    forward = 0.0
    progress = Progress("images", len(paths), log)
    for start, batch in _prefetch(_batches(backbone, paths, batch_size)):
        tick = time.perf_counter()
        out = backbone.conv_maps(torch.from_numpy(batch)).float().numpy()
        forward += time.perf_counter() - tick
        if maps is None:
            maps = np.empty((len(paths), *out.shape[1:]), dtype=np.float32)
        maps[start : start + len(out)] = out
        progress.update(start + len(out))
    if maps is None:
        maps = np.zeros((0, backbone.channels, 0, 0), dtype=np.float32)
    stats = ExtractionStats(len(paths), time.perf_counter() - start_time, forward)
    return maps, stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--annotations", required=True)
    parser.add_argument("--maps", required=True, help="maps.npy to write")
    parser.add_argument("--index", required=True, help="images.parquet to write")
    parser.add_argument("--settings", required=True, help="the features section (JSON)")
    parser.add_argument("--threads", type=int, required=True)
    args = parser.parse_args(argv)
    settings = FeatureSettings.from_json(args.settings)
    setup_logging()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    annotations = pd.read_parquet(args.annotations, columns=["image", "image_path"])
    images = unique_images(annotations)
    log.info(
        "%d annotations, %d unique images; backbone %s",
        len(annotations),
        len(images),
        settings.backbone,
    )
    backbone = build_backbone(settings.backbone, settings.backbone_weights or None)
    maps, stats = extract(backbone, images["image_path"].tolist(), settings.batch_size)
    np.save(ensure_parent(args.maps), maps)
    images.to_parquet(ensure_parent(args.index), index=False)
    log.info(
        "%d images in %.1f s (%.2f img/s; forward %.1f s); maps %s",
        stats.n_images,
        stats.seconds,
        stats.images_per_second,
        stats.forward_seconds,
        maps.shape,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
