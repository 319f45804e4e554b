"""``make bench``: measured throughput of the heavy stages, in one run each.

Feature extraction: the pipeline (JPEG decode + resize + normalise in a prefetch thread,
CNN forward, copy out) against the backbone's bare forward on pre-made tensors of the
same batch size, on the same images, interleaved so that both see the same machine.

Results go to stdout and to ``results/bench/bench.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from crossmod.backbones import build_backbone
from crossmod.image_features import extract
from crossmod.synthetic import GeneratorSettings, generate


def _images(n_images: int) -> list[str]:
    """Images of the default synthetic-ads set if generated, else a fresh small set."""
    release = Path("results/synthetic-ads/release/ims")
    paths = sorted(str(p) for p in release.rglob("*.jpg")) if release.exists() else []
    if len(paths) < n_images:
        root = Path(tempfile.mkdtemp(prefix="crossmod-bench-"))
        settings = GeneratorSettings(n_users=30, n_images=max(n_images, 15), n_sets=10)
        generate(settings, root)
        paths = sorted(str(p) for p in (root / "ims").rglob("*.jpg"))
    return paths[:n_images]


def bench_features(n_images: int, batch_size: int, repeats: int) -> dict:
    backbone = build_backbone("efficientnet-lite0")
    paths = _images(n_images)
    tensors = []
    for start in range(0, len(paths), batch_size):
        batch = []
        for path in paths[start : start + batch_size]:
            with Image.open(path) as image:
                batch.append(backbone.preprocess(image))
        tensors.append(torch.from_numpy(np.stack(batch)))
    backbone.conv_maps(tensors[0])  # warm-up

    bare_rates, pipeline_rates = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        for batch in tensors:
            backbone.conv_maps(batch).float().numpy()
        bare_rates.append(len(paths) / (time.perf_counter() - start))
        _, stats = extract(backbone, paths, batch_size)
        pipeline_rates.append(stats.images_per_second)
    bare, pipeline = float(np.median(bare_rates)), float(np.median(pipeline_rates))
    return {
        "images": len(paths),
        "batch_size": batch_size,
        "repeats": repeats,
        "bare_forward_images_per_s": bare,
        "pipeline_images_per_s": pipeline,
        "pipeline_over_bare": pipeline / bare,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", default="results/bench/bench.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "features": bench_features(args.images, args.batch_size, args.repeats),
    }
    f = report["features"]
    print(
        f"feature extraction, {f['images']} images, batch {f['batch_size']}, "
        f"median of {f['repeats']}:\n"
        f"  bare forward   {f['bare_forward_images_per_s']:7.1f} images/s\n"
        f"  pipeline       {f['pipeline_images_per_s']:7.1f} images/s"
        f"  ({100 * f['pipeline_over_bare']:.0f}% of bare)"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
