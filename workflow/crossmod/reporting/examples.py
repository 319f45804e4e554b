"""``python -m crossmod.reporting.examples``: a figure of a few annotations, like the release's own.

One row per annotation: the image; the image with its BubbleView map laid over it
and the clicks numbered in order; the caption and the ten BFI answers. The rows show
several annotators on the same image first, so a reader sees how people differ.
"""

from __future__ import annotations

import argparse
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from PIL import Image

from crossmod.cli import ensure_parent, setup_logging
from crossmod.data.release import load_map
from crossmod.features.bfi import COLUMNS as BFI_COLUMNS
from crossmod.features.bfi import ITEM_NAMES


def pick_examples(annotations: pd.DataFrame, n_rows: int, seed: int) -> pd.DataFrame:
    """All annotators of one image (chosen with ``seed``), then others, ``n_rows`` in all."""
    rng = np.random.default_rng(seed)
    counts = annotations.groupby("image")["user"].nunique()
    shared = counts[counts >= 2].index.to_numpy()
    chosen = []
    if len(shared):
        image = shared[rng.integers(len(shared))]
        chosen.extend(annotations.index[annotations["image"] == image][: n_rows - 1].tolist())
    rest = annotations.index.difference(chosen).to_numpy()
    extra = rng.choice(rest, size=min(n_rows - len(chosen), len(rest)), replace=False)
    chosen.extend(int(i) for i in extra)
    return annotations.loc[chosen]


def plot_examples(annotations: pd.DataFrame, out: str, title: str, n_rows: int, seed: int) -> None:
    rows = pick_examples(annotations, n_rows, seed)
    fig, axes = plt.subplots(len(rows), 3, figsize=(13, 3.1 * len(rows)), squeeze=False)
    for ax_row, (_, ann) in zip(axes, rows.iterrows(), strict=True):
        with Image.open(ann["image_path"]) as image:
            pixels = np.asarray(image.convert("RGB"))
        hm, click_array = load_map(ann["map_path"])
        ax_row[0].imshow(pixels)
        ax_row[0].set_title(ann["image"], fontsize=8)
        ax_row[1].imshow(pixels)
        ax_row[1].imshow(hm, cmap="magma", alpha=0.55, vmin=0, vmax=1)
        if click_array is not None:
            for x, y, order in click_array:
                ax_row[1].text(x, y, str(int(order)), color="cyan", fontsize=6, ha="center")
        ax_row[1].set_title(f"gaze of {ann['user']} (task {ann['task_id']})", fontsize=8)
        answers = " ".join(
            f"{name}={int(ann[col])}" for name, col in zip(ITEM_NAMES, BFI_COLUMNS, strict=True)
        )
        text = "\n".join(textwrap.wrap(ann["caption"], 60))
        text += "\n\nBFI-10: " + "\n".join(textwrap.wrap(answers, 60))
        ax_row[2].text(0, 0.5, text, fontsize=8, va="center", family="monospace")
        for ax in ax_row:
            ax.set_axis_off()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(ensure_parent(out), dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--annotations", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--title", required=True)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    args = parser.parse_args(argv)
    log = setup_logging()
    annotations = pd.read_parquet(args.annotations)
    plot_examples(annotations, args.out, args.title, args.rows, args.seed)
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
