"""The training loop every method shares (SPEC 4).

The network's method (``crossmod.methods``) builds the model and computes the loss;
the loop draws P x K batches, steps the optimiser (Adagrad with TensorFlow's initial
accumulator 0.1, as the paper's code; a method may bring its own), evaluates on the
validation pools every ``eval_every`` steps and keeps the snapshot with the best
validation top-1 (averaged over the network's tasks; ties by top-3, then mean rank).
With ``patience`` > 0 it stops after that many evaluations without improvement.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass

import numpy as np
import torch

from crossmod.evaluation.scoring import evaluate, selection_key
from crossmod.methods.registry import NetworkSpec, registry
from crossmod.settings import Settings
from crossmod.training.data import SplitData
from crossmod.training.sampler import GroupBatchSampler


@dataclass(frozen=True)
class TrainSettings(Settings):
    """The ``training`` section (defaults and meanings: the config schema)."""

    SECTION = "training"
    WORKFLOW_KEYS = ("networks", "threads")

    dim: int
    normalize: bool
    margin: float
    learning_rate: float
    weight_decay: float
    initial_accumulator: float
    batch_size: int
    samples_per_group: int
    steps: int
    eval_every: int
    patience: int
    seed: int
    device: str


@dataclass
class TrainResult:
    model: torch.nn.Module
    best_step: int
    steps_run: int
    stopped_early: bool
    loss_series: list[tuple[int, float]]
    val_series: list[tuple[int, dict[str, dict[str, float]]]]
    seconds: float


def network_seed(settings: TrainSettings, spec: NetworkSpec, split: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([settings.seed, split, zlib.crc32(spec.name.encode())])


def adagrad(model: torch.nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    return torch.optim.Adagrad(
        model.parameters(),
        lr=settings.learning_rate,
        weight_decay=settings.weight_decay,
        initial_accumulator_value=settings.initial_accumulator,
    )


def train_network(
    spec: NetworkSpec, data: SplitData, settings: TrainSettings, split: int, device: str = "cpu"
) -> TrainResult:
    method = registry().method(spec.method)
    seed = network_seed(settings, spec, split)
    torch_seed, sampler_seed = seed.spawn(2)
    torch.manual_seed(int(torch_seed.generate_state(1)[0]))
    rows = data.train_rows
    model = method.build(spec, {m: data.features[m].shape[1] for m in spec.modalities}, settings)
    model.set_standardization({m: data.features[m][rows] for m in spec.modalities})
    model.to(device)
    optimizer = (method.optimizer or adagrad)(model, settings)
    sampler = GroupBatchSampler(
        {k: v[rows] for k, v in data.keys.items()},
        spec.keys,
        settings.batch_size,
        settings.samples_per_group,
        np.random.default_rng(sampler_seed),
    )
    train_features = {
        m: torch.from_numpy(np.ascontiguousarray(data.features[m][rows])).to(device)
        for m in spec.modalities
    }
    train_keys = {k: torch.from_numpy(v[rows]).to(device) for k, v in data.keys.items()}

    start = time.perf_counter()
    best_key, best_state, best_step = None, None, 0
    since_best, stopped_early, step = 0, False, 0
    window: list[float] = []
    loss_series: list[tuple[int, float]] = []
    val_series: list[tuple[int, dict]] = []
    for step in range(1, settings.steps + 1):
        model.train()
        batch = torch.from_numpy(sampler()).to(device)
        embeddings = model({m: x[batch] for m, x in train_features.items()})
        keys = {k: v[batch] for k, v in train_keys.items()}
        loss = method.loss(model, spec, embeddings, keys, settings)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        window.append(float(loss.detach()))
        if step % settings.eval_every == 0 or step == settings.steps:
            loss_series.append((step, float(np.mean(window))))
            window = []
            model.eval()
            val = evaluate(model, spec, data, "val")
            val_series.append((step, val))
            key = selection_key(val)
            if best_key is None or key > best_key:
                best_key, best_step, since_best = key, step, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                since_best += 1
                if settings.patience and since_best >= settings.patience:
                    stopped_early = True
                    break
    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval()
    seconds = time.perf_counter() - start
    return TrainResult(model, best_step, step, stopped_early, loss_series, val_series, seconds)
