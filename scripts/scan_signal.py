"""How much the planted scan habit tells about a person, from the generator's own record.

``python scripts/scan_signal.py``

The generator's ``scan_habit`` orders the clicks on each object along the user's own
direction. This script draws the default synthetic-coco world (no images, no CNN) at
several habit strengths, summarises each annotation by DEPER's mean scan direction
(``crossmod.methods.deper_net.scan_direction``, on its first 30 clicks, as the
trajectories keep), and identifies 16 random users few-shot with the workflow's own
protocol (centred on images, nearest centroid, S = 5, top-1; 20 draws). It sets the
schema's ``scan_habit`` default; it is a measurement script, not part of the workflow.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from crossmod.data.synthetic.generate import draw_world
from crossmod.data.synthetic.settings import GeneratorSettings
from crossmod.evaluation.fewshot import centre_on_images, identification
from crossmod.features.trajectories import MAX_STEPS
from crossmod.methods.deper_net import scan_direction

COCO = dict(kind="coco", seed=2, n_users=79, n_images=363, n_sets=30)


def directions(settings: GeneratorSettings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per annotation: the mean scan direction, the user and the image."""
    world = draw_world(settings)
    size = np.array([settings.image_width, settings.image_height], dtype=np.float32)
    positions = np.zeros((len(world.annotations), MAX_STEPS, 2), dtype=np.float32)
    valid = np.zeros((len(world.annotations), MAX_STEPS), dtype=bool)
    for row, record in enumerate(world.annotations):
        xy = record.clicks[:MAX_STEPS, :2] / size
        positions[row, : len(xy)] = xy
        valid[row, : len(xy)] = True
    z = scan_direction(torch.from_numpy(positions), torch.from_numpy(valid)).numpy()
    users = np.array([record.task.user for record in world.annotations])
    images = np.array([record.image_index for record in world.annotations])
    return z, users, images


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--habits", type=float, nargs="+", default=[0.0, 0.8, 1.0])
    parser.add_argument("--subjects", type=int, default=16)
    args = parser.parse_args(argv)
    for habit in args.habits:
        z, users, images = directions(GeneratorSettings.from_config(scan_habit=habit, **COCO))
        chosen = np.random.default_rng(0).choice(np.unique(users), args.subjects, replace=False)
        keep = np.isin(users, chosen)
        compared = centre_on_images(z, images)[keep]
        row = identification(compared, users[keep], chosen, (5,), 20, 0, 0)[0]
        print(f"scan_habit {habit}: S=5 top-1 {row['top1']:.3f} (chance {row['chance_top1']:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
