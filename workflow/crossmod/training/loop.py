"""The training loop every method shares (SPEC 4).

The network's method (``crossmod.methods``) builds the model and computes the loss;
the loop draws P x K batches, steps the optimiser (Adagrad with TensorFlow's initial
accumulator 0.1, as the paper's code; a method may bring its own), evaluates on the
validation pools every ``eval_every`` steps and keeps the snapshot with the best
validation top-1 (averaged over the network's tasks; ties by top-3, then mean rank).
With ``patience`` > 0 it stops after that many evaluations without improvement. A
method's own config section may restate a training key (PVSE: ``steps``, its
``learning_rate``); its value then holds for that method's networks.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from crossmod.evaluation.scoring import evaluate, selection_key
from crossmod.methods.registry import NetworkSpec, registry
from crossmod.progress import Progress
from crossmod.settings import Settings
from crossmod.training import optimizers
from crossmod.training.data import SplitData
from crossmod.training.sampler import GroupBatchSampler
from crossmod.training.snapshots import BestSnapshot, LossCurves

log = logging.getLogger("crossmod.training.loop")


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
    loss_series: dict[str, list[tuple[int, float]]]  # "total" and each named loss part
    val_series: list[tuple[int, dict[str, dict[str, float]]]]
    seconds: float
    eval_seconds: float = 0.0  # of ``seconds``, spent on validation (make bench)


def network_seed(settings: TrainSettings, spec: NetworkSpec, split: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([settings.seed, split, zlib.crc32(spec.name.encode())])


def adagrad(model: torch.nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    # fused: one pass over each parameter (the multi-pass version cost more than the
    # network's GEMMs on the stacked (splits, 200, 1280) encoders; make bench).
    return optimizers.Adagrad(
        model.parameters(),
        lr=settings.learning_rate,
        weight_decay=settings.weight_decay,
        initial_accumulator_value=settings.initial_accumulator,
        fused=next(model.parameters()).device.type == "cpu",
    )


def method_schedule(settings: TrainSettings, method_settings: Settings | None) -> TrainSettings:
    """The training settings with those the method's own section restates (PVSE: steps)."""
    if method_settings is None:
        return settings
    shared = {f.name for f in fields(settings)} & {f.name for f in fields(method_settings)}
    return replace(settings, **{name: getattr(method_settings, name) for name in shared})


def model_inputs(spec: NetworkSpec, data: SplitData) -> dict[str, np.ndarray]:
    """What the network's model reads per annotation: its method's inputs, or the vectors."""
    method = registry().method(spec.method)
    if method.inputs is not None:
        return method.inputs(spec, data)
    return {m: data.features[m] for m in spec.modalities}


def train_network(
    spec: NetworkSpec,
    data: SplitData,
    settings: TrainSettings,
    split: int,
    device: str = "cpu",
    method_settings: Settings | None = None,
    on_evaluation: Callable[[dict, list], None] | None = None,
) -> TrainResult:
    """Train one network; ``on_evaluation(loss_series, val_series)`` after each evaluation
    (live curves on a tracking server, ``crossmod.tracking.live``)."""
    method = registry().method(spec.method)
    if method.settings is not None and method_settings is None:
        method_settings = method.settings.from_config()
    settings = method_schedule(settings, method_settings)
    seed = network_seed(settings, spec, split)
    torch_seed, sampler_seed = seed.spawn(2)
    torch.manual_seed(int(torch_seed.generate_state(1)[0]))
    rows = data.train_rows
    model = method.build(spec, data, settings, method_settings)
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
        m: torch.from_numpy(np.ascontiguousarray(x[rows])).to(device)
        for m, x in model_inputs(spec, data).items()
    }
    clip = getattr(model, "grad_clip", None)
    train_keys = {k: torch.from_numpy(v[rows]).to(device) for k, v in data.keys.items()}

    start = time.perf_counter()
    eval_seconds = 0.0
    snapshot = BestSnapshot(settings.patience)
    curves = LossCurves()
    val_series: list[tuple[int, dict]] = []
    progress = Progress(f"{spec.name} step", settings.steps, log, upper_bound=settings.patience > 0)
    step = 0
    for step in range(1, settings.steps + 1):
        model.train()
        batch = torch.from_numpy(sampler()).to(device)
        embeddings = model({m: x[batch] for m, x in train_features.items()})
        keys = {k: v[batch] for k, v in train_keys.items()}
        out = method.loss(model, spec, embeddings, keys, settings)
        parts = out if isinstance(out, dict) else {"total": out}
        optimizer.zero_grad(set_to_none=True)
        parts["total"].backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        curves.add(parts)
        progress.update(step)
        if step % settings.eval_every == 0 or step == settings.steps:
            curves.flush(step)
            model.eval()
            evaluating = time.perf_counter()
            val = evaluate(model, spec, data, "val")
            eval_seconds += time.perf_counter() - evaluating
            val_series.append((step, val))
            if on_evaluation is not None:
                on_evaluation(curves.series, val_series)
            if snapshot.offer(model, step, selection_key(val)):
                break
    assert snapshot.state is not None
    if snapshot.stopped_early:
        log.info("%s", progress.line(step) + f"; stopped early, best step {snapshot.best_step}")
    snapshot.restore(model, step)
    model.eval()
    seconds = time.perf_counter() - start
    return TrainResult(
        model,
        snapshot.best_step,
        step,
        snapshot.stopped_early,
        curves.series,
        val_series,
        seconds,
        eval_seconds,
    )
