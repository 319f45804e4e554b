"""Shared fixtures: tiny synthetic settings and a hand-built release-format folder."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from crossmod.data.synthetic import GeneratorSettings

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def run_snakemake(
    workdir: Path, *args: str, check: bool = True, env: dict | None = None
) -> subprocess.CompletedProcess:
    """The real Snakemake on this repository's Snakefile, in ``workdir``, jobs on this venv."""
    env = dict(env or os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    result = subprocess.run(
        [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=workdir,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


@dataclass(frozen=True)
class TinyRun:
    """A finished default-target run of the committed tiny config (.test/config.yaml)."""

    workdir: Path
    result: subprocess.CompletedProcess


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    """Run the tiny workflow once per session (8 parallel jobs, the default SQLite store).

    Shared by the end-to-end checks and the browser/UI tests, which only read it; a
    test that changes results works on its own copy or its own run.
    """
    workdir = tmp_path_factory.mktemp("tiny_run")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    result = run_snakemake(
        workdir, "--configfile", str(REPO / ".test/config.yaml"), "--cores", "8", env=env
    )
    return TinyRun(workdir, result)


def tiny_settings(**overrides) -> GeneratorSettings:
    """A small but structurally complete set: 24 users, 8 sets of 15 images, 3 annotators."""
    values = dict(
        kind="ads",
        seed=7,
        n_users=24,
        n_images=60,
        n_sets=8,
        image_height=96,
        image_width=128,
        bubble_radius=8.0,
        map_blur=1.5,
    )
    values.update(overrides)
    return GeneratorSettings.from_config(**values)


@pytest.fixture
def tiny() -> GeneratorSettings:
    return tiny_settings()


def no_weights_or_identity() -> tuple:
    """Empty weights.csv and identity.csv frames, for tables built from metrics alone."""
    import pandas as pd

    from crossmod.reporting.collect import WEIGHT_COLUMNS

    identity = [
        "dataset",
        "features",
        "kernel",
        "params",
        "accuracy_mean",
        "accuracy_std",
        "n_users",
        "chance",
        "folds",
    ]
    return pd.DataFrame(columns=list(WEIGHT_COLUMNS)), pd.DataFrame(columns=identity)


def write_image(path: Path, height: int, width: int, value: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), value, dtype=np.uint8)).save(path)


def write_map(path: Path, hm: np.ndarray, clicks: np.ndarray | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    content = {"hm": hm}
    if clicks is not None:
        content["clicks"] = clicks
    scipy.io.savemat(path, content)


def make_release(root: Path, rows: list[dict], csv_name: str = "data.csv") -> Path:
    """A release-format folder: one 20x30 image and map per distinct row (unless told not to).

    Each row dict has task_id, image, ad_msg, personality, mturker_id; optional keys
    ``no_image``, ``no_map`` and ``map_shape`` corrupt that row's files.
    """
    for row in rows:
        image = root / "ims" / row["image"]
        stem = Path(row["image"])
        mat = root / "bv" / stem.parent / f"{stem.stem}_{row['task_id']}.mat"
        if not row.get("no_image"):
            write_image(image, 20, 30)
        if not row.get("no_map"):
            write_map(mat, np.zeros(row.get("map_shape", (20, 30)), dtype=np.float32))
    path = root / csv_name
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["task_id", "image", "ad_msg", "personality", "mturker_id"])
        for row in rows:
            writer.writerow(
                [row["task_id"], row["image"], row["ad_msg"], row["personality"], row["mturker_id"]]
            )
    return path


def good_row(i: int, **overrides) -> dict:
    row = dict(
        task_id=str(100 + i),
        image=f"{i % 3}/img_{i:03d}.jpg",
        ad_msg=f"i should buy this because of the cat number {i}",
        personality="[2 4 3 1 5 4 2 5 1 4]",
        mturker_id=f"U{i % 4}",
    )
    row.update(overrides)
    return row


def looked_at(settings: GeneratorSettings) -> tuple:
    """The generator's own record of each annotation, before any image or CNN.

    Features per annotation: +1 for each category looked at, -1 for each category in the
    scene but not looked at, and the number of clicks; with the annotator's BFI answers,
    user and image index, and the annotation table the pools are drawn from.
    """
    import pandas as pd

    from crossmod.data.synthetic.generate import draw_world
    from crossmod.data.synthetic.photos import CATEGORIES

    world = draw_world(settings)
    features, answers, users, images = [], [], [], []
    for record in world.annotations:
        scene = world.scenes[record.image_index]
        x = np.zeros(len(CATEGORIES) + 1)
        for obj in scene.objects:
            x[obj.category] = -1.0
        for i in record.visited:
            x[scene.objects[i].category] = 1.0
        x[-1] = len(record.clicks)
        features.append(x)
        answers.append(world.users[record.task.user].answers)
        users.append(record.task.user)
        images.append(record.image_index)
    X, P, U = np.array(features), np.array(answers, dtype=float), np.array(users)
    table = pd.DataFrame({"annotation_id": np.arange(len(X)), "user": U, "image": images})
    return X, P, U, table


@dataclass(frozen=True)
class Extracted:
    """A generated release read back and through the pretrained CNN, as the workflow does."""

    annotations: object  # pandas.DataFrame: the strict reader's annotation table
    images: object  # pandas.DataFrame: one row per image
    maps: np.ndarray  # conv maps of the images
    meta: object  # per-annotation feature metadata (crossmod.features.annotations)
    arrays: dict  # per-annotation feature arrays


def known_answer_release(root: Path, **generator) -> Extracted:
    """A small known-answer set (120 x 160 images): generator -> reader -> CNN -> features.

    The known-answer tests plant (or withhold, ``style_strength=0``) structure in the
    generator and check that training finds it; ``generator`` holds their sizes and seed.
    """
    import torch

    from crossmod.data.release import read_release
    from crossmod.data.synthetic import generate
    from crossmod.features.annotations import compute_features
    from crossmod.features.backbones import build_backbone
    from crossmod.features.images import extract, unique_images
    from crossmod.features.settings import FeatureSettings

    settings = GeneratorSettings.from_config(
        image_height=120, image_width=160, bubble_radius=10.0, map_blur=2.0, **generator
    )
    generate(settings, root)
    annotations = read_release(root).annotations
    images = unique_images(annotations)
    torch.set_num_threads(2)
    maps, _ = extract(build_backbone("efficientnet-lite0"), images["image_path"].tolist())
    meta, arrays, _ = compute_features(annotations, maps, images, FeatureSettings.from_config())
    return Extracted(annotations, images, maps, meta, arrays)
