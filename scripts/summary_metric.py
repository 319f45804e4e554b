"""How far a linear metric on DEPER's summary features goes (README "DEPER").

``python scripts/summary_metric.py --results results --dataset synthetic-coco``

DEPER's summary path (``crossmod.methods.deper_net.SummaryPath``) reads a sample's mean
caption word vector and its trajectory statistics through one Linear map. This script
trains that map alone: full batch (every seen sample at every step), the same
image-centred cosine-classifier cross-entropy as DEPER's subject loss, AdamW at 1e-3
for a fixed number of steps, no validation; then it scores the unseen subjects with
the workflow's few-shot protocol and draws (S = 5, top-1), beside the same features
standardised but untrained. It asks whether DEPER's attention streams add anything to
what a learned linear metric of these summaries already tells; it is a measurement
script, not a method of the workflow.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from crossmod.evaluation.fewshot import centre_on_images, identification
from crossmod.methods.deper import centre_by_group
from crossmod.methods.deper_net import summary_features
from crossmod.training.subjects import Batches, load_subject_data

SHOTS = 5
DRAWS = 20
SCALE = 16.0  # the cosine classifier's, as deper.classifier_scale


def summaries(data) -> np.ndarray:
    """Per sample: DEPER's summary of both streams (``deper_net.summary_features``)."""
    batches = Batches(data, "cpu")
    vocabulary = torch.from_numpy(data.vocabulary)
    steps = data.valid.shape[1]
    x = summary_features(vocabulary, batches.words, batches.positions, batches.valid, steps)
    return x.double().numpy()


def linear_metric(x: np.ndarray, data, dim: int, steps: int, seed: int) -> np.ndarray:
    """The trained map's embeddings of every sample, centred on their image."""
    train = data.part == "train"
    _, image = np.unique(data.image_name, return_inverse=True)
    _, label = np.unique(data.user[train], return_inverse=True)
    torch.manual_seed(seed)
    linear = torch.nn.Linear(x.shape[1], dim)
    weights = torch.nn.Parameter(torch.randn(label.max() + 1, dim) * 0.01)
    optimizer = torch.optim.AdamW([*linear.parameters(), weights], lr=1e-3, weight_decay=0.01)
    inputs, image = torch.tensor(x, dtype=torch.float32), torch.from_numpy(image)
    rows, targets = torch.from_numpy(np.flatnonzero(train)), torch.from_numpy(label)

    def centred() -> torch.Tensor:  # as DEPER's training centres a batch (all samples here)
        return centre_by_group(linear(inputs), image)

    for _ in range(steps):
        logits = SCALE * F.normalize(centred()[rows], dim=1) @ F.normalize(weights, dim=1).T
        loss = F.cross_entropy(logits, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return centred().numpy()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", default="results")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = f"{args.results}/{args.dataset}"
    rows = []
    for split in range(args.splits):
        data = load_subject_data(
            f"{root}/data/annotations.parquet",
            f"{root}/features/locals.npz",
            f"{root}/features/trajectories.npz",
            f"{root}/splits/users.csv",
            split,
        )
        x = summaries(data)
        train, test = data.part == "train", data.part == "test"
        scale = x[train].std(axis=0)
        x = (x - x[train].mean(axis=0)) / np.where(scale > 0, scale, 1.0)
        users = data.user[test]
        for name, z in (
            ("standardised", centre_on_images(x, data.image_name)),
            ("linear metric", linear_metric(x, data, args.dim, args.steps, args.seed)),
        ):
            (row,) = identification(
                z[test], users, np.unique(users), (SHOTS,), DRAWS, args.seed, split
            )
            rows.append({"split": split, "features": name, "top1": row["top1"]})
    table = pd.DataFrame(rows).pivot(index="split", columns="features", values="top1")
    print(table.round(3).to_string())
    print(table.mean().round(3).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
