"""Every split of one linear network trained at once, as one stack of independent networks.

The paper's networks are one linear layer per modality on fixed features, so a step is
a few small GEMMs and many small tensor operations; on a CPU the per-operation cost of
PyTorch and Python, not arithmetic, set the pace of one network on one split. Trained
side by side, the S splits of a network share every operation: the encoders'
weights are stacked (S, dim, d) and applied with one batched matrix product, the
triplet engine evaluates the S batches in one pass (``crossmod.methods.triplet``
takes a leading split dimension), and one Adagrad step updates all of them (Adagrad
and weight decay are elementwise, so each split's update is exactly its own).

Nothing is shared between splits but the operations: each split keeps its own
initialisation (seeded as in :func:`crossmod.training.loop.train_network`), its own
batch sampler and seed, its own validation, best snapshot and early stopping. A split
that stops early leaves the stack (its parameters and optimiser state are sliced out),
so the others do not carry it. The result per split equals training it alone with
``train_network`` (``tests/test_stacked.py``: to 1e-5). Inputs are standardised once,
up front (the same arithmetic the per-network model does every step).

Methods opt in with ``Method.stackable``: their ``build`` returns a
:class:`~crossmod.methods.encoders.Embedder` and their ``loss`` accepts (S, B, D)
embeddings and (S, B) keys and returns the (S,) losses.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from crossmod.evaluation.ranking import metrics
from crossmod.evaluation.scoring import pool_ranks, pool_rows, selection_key
from crossmod.methods.encoders import Embedder
from crossmod.methods.registry import NetworkSpec, registry
from crossmod.progress import Progress
from crossmod.settings import Settings
from crossmod.training.data import SplitData
from crossmod.training.loop import (
    TrainResult,
    TrainSettings,
    adagrad,
    method_schedule,
    network_seed,
)
from crossmod.training.sampler import GroupBatchSampler
from crossmod.training.snapshots import BestSnapshot, LossCurves

log = logging.getLogger("crossmod.training.stacked")


class _StackedLinear(torch.autograd.Function):
    """``x @ W^T + b`` per member, inputs without gradient (fixed features).

    Autograd's own backward of a batched product forms the weight gradient as
    x^T g (S, d, D) and copies it transposed into W's (S, D, d) layout; with d = 1280
    that strided copy cost as much as the GEMM. Here the gradient is g^T x, formed in
    W's layout directly, and no input gradient is formed at all.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return torch.baddbmm(bias[:, None, :], x, weight.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        return None, torch.bmm(grad.transpose(1, 2), x), grad.sum(dim=1)


class StackedEmbedder(nn.Module):
    """S :class:`Embedder` s of the same shape as stacked parameters (S first)."""

    def __init__(self, members: list[Embedder]) -> None:
        super().__init__()
        first = members[0]
        self.modalities, self.normalize = first.modalities, first.normalize
        self.bilinear = first.W is not None
        self.weight = nn.ParameterDict(
            {
                m: torch.stack([e.encoders[m].weight.detach() for e in members])
                for m in self.modalities
            }
        )
        self.bias = nn.ParameterDict(
            {
                m: torch.stack([e.encoders[m].bias.detach() for e in members])
                for m in self.modalities
            }
        )
        self.W = (
            nn.Parameter(torch.stack([e.W.detach() for e in members])) if self.bilinear else None
        )
        for m in self.modalities:
            self.register_buffer(
                f"mean_{m}", torch.stack([getattr(e, f"mean_{m}") for e in members])
            )
            self.register_buffer(f"std_{m}", torch.stack([getattr(e, f"std_{m}") for e in members]))

    def standardize(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """(S, n, d) raw features -> standardised with each split's training statistics."""
        mean, std = getattr(self, f"mean_{modality}"), getattr(self, f"std_{modality}")
        return (x - mean[:, None, :]) / std[:, None, :]

    def project(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """(S, n, d) standardised features -> (S, n, dim) embeddings."""
        out = _StackedLinear.apply(x, self.weight[modality], self.bias[modality])
        return F.normalize(out, dim=-1) if self.normalize else out

    def member_state(self, index: int) -> dict[str, torch.Tensor]:
        """The state dict of member ``index`` as an :class:`Embedder` (views, not copies)."""
        state = {}
        for m in self.modalities:
            state[f"encoders.{m}.weight"] = self.weight[m][index]
            state[f"encoders.{m}.bias"] = self.bias[m][index]
            state[f"mean_{m}"] = getattr(self, f"mean_{m}")[index]
            state[f"std_{m}"] = getattr(self, f"std_{m}")[index]
        if self.bilinear:
            state["W"] = self.W[index]
        return state

    def keep(self, rows: list[int]) -> None:
        """Keep only the members at ``rows`` (the others stopped training)."""
        with torch.no_grad():
            for group in (self.weight, self.bias):
                for m in self.modalities:
                    group[m] = nn.Parameter(group[m][rows].clone())
            if self.bilinear:
                self.W = nn.Parameter(self.W[rows].clone())
            for m in self.modalities:
                for name in (f"mean_{m}", f"std_{m}"):
                    setattr(self, name, getattr(self, name)[rows].clone())


def _member(model: StackedEmbedder, index: int) -> SimpleNamespace:
    """What a method's ``similarity`` reads of a model (VEIT: its W) for one member."""
    return SimpleNamespace(W=model.W[index].detach() if model.bilinear else None)


def _slice_optimizer(
    optimizer: torch.optim.Optimizer,
    old: list[torch.Tensor],
    model: StackedEmbedder,
    rows: list[int],
    factory: Callable,
    settings: TrainSettings,
) -> torch.optim.Optimizer:
    """A new optimiser over the sliced parameters, carrying each kept member's state."""
    fresh = factory(model, settings)
    for before, after in zip(old, model.parameters(), strict=True):
        state = optimizer.state.get(before, {})
        fresh.state[after] = {
            k: (v[rows].clone() if torch.is_tensor(v) and v.shape == before.shape else v)
            for k, v in state.items()
        }
    return fresh


def train_stacked(
    spec: NetworkSpec,
    datas: dict[int, SplitData],
    settings: TrainSettings,
    device: str = "cpu",
    method_settings: Settings | None = None,
    on_evaluation: dict[int, Callable[[dict, list], None]] | None = None,
) -> dict[int, TrainResult]:
    """Train ``spec`` on every split of ``datas`` at once; a :class:`TrainResult` per split.

    Splits whose batches differ in size (a training part smaller than the batch) are
    stacked in separate groups.
    """
    by_size: dict[int, list[int]] = {}
    for split, data in sorted(datas.items()):
        by_size.setdefault(min(settings.batch_size, len(data.train_rows)), []).append(split)
    results: dict[int, TrainResult] = {}
    for splits in by_size.values():
        results |= _train_group(
            spec,
            {s: datas[s] for s in splits},
            settings,
            device,
            method_settings,
            on_evaluation or {},
        )
    return results


def _padded(arrays: list[np.ndarray], device: str) -> torch.Tensor:
    """Rows of each split padded to the longest: (S, n_max, ...)."""
    n = max(len(a) for a in arrays)
    out = np.zeros((len(arrays), n, *arrays[0].shape[1:]), dtype=arrays[0].dtype)
    for i, a in enumerate(arrays):
        out[i, : len(a)] = a
    return torch.from_numpy(out).to(device)


def _train_group(
    spec: NetworkSpec,
    datas: dict[int, SplitData],
    settings: TrainSettings,
    device: str,
    method_settings: Settings | None,
    on_evaluation: dict[int, Callable[[dict, list], None]],
) -> dict[int, TrainResult]:
    method = registry().method(spec.method)
    if not method.stackable:
        raise ValueError(f"{spec.name}: method {spec.method!r} is not stackable")
    settings = method_schedule(settings, method_settings)
    splits = list(datas)
    members, samplers = [], []
    for split in splits:
        data = datas[split]
        torch_seed, sampler_seed = network_seed(settings, spec, split).spawn(2)
        torch.manual_seed(int(torch_seed.generate_state(1)[0]))
        members.append(method.build(spec, data, settings, method_settings))
        rows = data.train_rows
        samplers.append(
            GroupBatchSampler(
                {k: v[rows] for k, v in data.keys.items()},
                spec.keys,
                settings.batch_size,
                settings.samples_per_group,
                np.random.default_rng(sampler_seed),
            )
        )
    model = StackedEmbedder(members).to(device)
    factory = method.optimizer or adagrad
    optimizer = factory(model, settings)
    with torch.no_grad():
        # Training rows standardised once (S, n_max, d).
        train_x = {
            m: model.standardize(
                m, _padded([datas[s].features[m][datas[s].train_rows] for s in splits], device)
            )
            for m in spec.modalities
        }
        # Validation reads only the rows of its pools: (S, n_val_max, d), a map per split.
        val_rows = {s: pool_rows(datas[s].position, datas[s].pools["val"]) for s in splits}
        val_x = {
            m: model.standardize(
                m, _padded([datas[s].features[m][val_rows[s][0]] for s in splits], device)
            )
            for m in spec.modalities
        }
    train_keys = {
        k: _padded([datas[s].keys[k][datas[s].train_rows] for s in splits], device)
        for k in datas[splits[0]].keys
    }

    active = list(range(len(splits)))  # stack position -> index into splits
    snapshots = [BestSnapshot(settings.patience) for _ in splits]
    curves = [LossCurves() for _ in splits]
    val_series: list[list[tuple[int, dict]]] = [[] for _ in splits]
    steps_run = [0] * len(splits)
    progress = Progress(
        f"{spec.name} ({len(splits)} splits) step",
        settings.steps,
        log,
        upper_bound=settings.patience > 0,
    )
    start, eval_seconds = time.perf_counter(), 0.0
    for step in range(1, settings.steps + 1):
        model.train()
        batch = torch.from_numpy(np.stack([samplers[i]() for i in active])).to(device)
        stack = torch.arange(len(active), device=device)[:, None]
        embeddings = {m: model.project(m, x[stack, batch]) for m, x in train_x.items()}
        keys = {k: v[stack, batch] for k, v in train_keys.items()}
        losses = method.loss(model, spec, embeddings, keys, settings)
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        optimizer.step()
        for position, value in enumerate(losses.detach().cpu().tolist()):
            curves[active[position]].add({"total": value})
            steps_run[active[position]] = step
        progress.update(step)
        if step % settings.eval_every and step != settings.steps:
            continue
        model.eval()
        evaluating = time.perf_counter()
        stopped = []
        with torch.no_grad():
            projected = {m: model.project(m, x) for m, x in val_x.items()}
        for position, i in enumerate(active):
            data = datas[splits[i]]
            curves[i].flush(step)
            emb = {m: e[position].cpu().numpy() for m, e in projected.items()}
            val = {
                task: metrics(rank)
                for task, rank in pool_ranks(
                    _member(model, position),
                    spec,
                    data,
                    data.pools["val"],
                    emb,
                    val_rows[splits[i]][1],
                ).items()
            }
            val_series[i].append((step, val))
            if splits[i] in on_evaluation:
                on_evaluation[splits[i]](curves[i].series, val_series[i])
            if snapshots[i].offer(model.member_state(position), step, selection_key(val)):
                stopped.append(position)
        eval_seconds += time.perf_counter() - evaluating
        if stopped:
            rows = [p for p in range(len(active)) if p not in stopped]
            for p in stopped:
                log.info("split %d stopped early at step %d", splits[active[p]], step)
            if not rows:
                break
            old = list(model.parameters())
            model.keep(rows)
            optimizer = _slice_optimizer(optimizer, old, model, rows, factory, settings)
            active = [active[p] for p in rows]
            for m in val_x:
                val_x[m] = val_x[m][rows]
                train_x[m] = train_x[m][rows]
            train_keys = {k: v[rows] for k, v in train_keys.items()}
    seconds = time.perf_counter() - start
    results = {}
    last_state = {i: model.member_state(p) for p, i in enumerate(active)}
    for i, split in enumerate(splits):
        snapshot = snapshots[i]
        state = snapshot.state if snapshot.state is not None else last_state[i]
        best_step = snapshot.best_step if snapshot.state is not None else steps_run[i]
        single = Embedder(
            {m: datas[split].features[m].shape[1] for m in spec.modalities},
            dim=settings.dim,
            normalize=settings.normalize,
            bilinear=model.bilinear,
        )
        single.load_state_dict({k: v.detach().cpu() for k, v in state.items()})
        single.eval()
        results[split] = TrainResult(
            single,
            best_step,
            steps_run[i],
            snapshot.stopped_early,
            curves[i].series,
            val_series[i],
            seconds / len(splits),
            eval_seconds / len(splits),
        )
    return results
