"""The GEMM floor of a training schedule, and what a run spent beyond it (``make bench``).

The paper's networks are linear encoders on fixed features: a training step is, per
encoder, one forward GEMM (B x d) @ (d x D) and one weight-gradient GEMM (D x B) @
(B x d) (the inputs need no gradient). The floor of a schedule is the FLOPs of those
GEMMs over every network, step and split, divided by the bare rate of GEMMs of the
same shapes on this machine, measured in the same run with all cores. Nothing else a
step does (sampling, the loss, the optimiser, evaluation, starting processes) is in
the floor, so wall / floor says how much of the machine the schedule wastes.

The job figures come from what a finished run leaves behind: Snakemake's benchmark
files (each job's wall time) and the ``metrics.json`` of every training (its loop's
seconds and, of those, its validation's).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from crossmod.methods.registry import NetworkSpec


def encoder_flops(spec: NetworkSpec, input_dims: dict[str, int], batch: int, dim: int) -> dict:
    """FLOPs of one step's encoder GEMMs per input width: 2 GEMMs of 2 B d D each."""
    flops: dict[int, float] = {}
    for modality in spec.modalities:
        d = input_dims[modality]
        flops[d] = flops.get(d, 0.0) + 2 * (2.0 * batch * d * dim)
    return flops


def bare_gemm_rates(
    widths: Iterable[int], batch: int, dim: int, seconds: float = 0.5, stack: int = 5
) -> dict[int, float]:
    """FLOP/s of the bare forward + weight-gradient GEMMs per input width (all threads).

    The best of one (B x d) matrix at a time and a stack of ``stack`` of them (a
    batched product): whichever this machine runs faster is the rate the floor uses.
    """
    import torch

    rates = {}
    for d in sorted(set(widths)):
        best = 0.0
        for s in (None, stack):
            shape = (batch, d) if s is None else (s, batch, d)
            x = torch.randn(*shape)
            w = torch.randn(*shape[:-2], dim, d)
            g = torch.randn(*shape[:-2], batch, dim)
            flops_per = 2 * (2.0 * batch * d * dim) * (s or 1)
            for _ in range(3):  # warm-up
                (x @ w.transpose(-1, -2), g.transpose(-1, -2) @ x)
            count, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                x @ w.transpose(-1, -2)
                g.transpose(-1, -2) @ x
                count += 1
            best = max(best, count * flops_per / (time.perf_counter() - start))
        rates[d] = best
    return rates


def schedule_floor(
    networks: list[NetworkSpec],
    input_dims: dict[str, int],
    steps: int,
    runs: int,
    batch: int,
    dim: int,
    rates: dict[int, float],
) -> float:
    """Seconds of bare GEMMs for ``steps`` steps of every network, ``runs`` times each."""
    total = 0.0
    for spec in networks:
        for d, flops in encoder_flops(spec, input_dims, batch, dim).items():
            total += flops / rates[d]
    return total * steps * runs


def job_figures(results: Path, networks: Iterable[str]) -> dict | None:
    """Per-job overhead and validation share of a finished run's training jobs.

    A training job's overhead is its wall time (Snakemake's benchmark) less the seconds
    its training loops ran (``train_seconds`` of its metrics.json files): interpreter
    and imports, data loading, writing outputs. The split's tracking job (MLflow) is
    overhead too. ``eval_fraction`` is validation's share of the loops' seconds.
    """
    import pandas as pd

    names = set(networks)
    bench = results / "benchmarks"
    walls: dict[str, float] = {}
    for path in bench.glob("*/*.tsv"):  # train_stacked: results/benchmarks/{dataset}/{network}
        if path.stem in names:
            walls[f"{path.parent.name}/{path.stem}"] = float(
                pd.read_csv(path, sep="\t")["s"].iloc[0]
            )
    for path in bench.glob("*/split*/*.tsv"):  # train: .../{dataset}/split{k}/{network}
        if path.stem in names:
            key = f"{path.parent.parent.name}/{path.parent.name}/{path.stem}"
            walls[key] = float(pd.read_csv(path, sep="\t")["s"].iloc[0])
    if not walls:
        return None
    loops = evaluation = 0.0
    for path in results.glob("*/split*/*/metrics.json"):
        if path.parent.name not in names:
            continue
        report = json.loads(path.read_text())
        loops += float(report.get("train_seconds", 0.0))
        evaluation += float(report.get("eval_seconds", 0.0))
    tracking = [
        float(pd.read_csv(p, sep="\t")["s"].iloc[0]) for p in bench.glob("*/split*/track_runs.tsv")
    ]
    training_wall = float(np.sum(list(walls.values())))
    overhead = training_wall - loops
    return {
        "training_jobs": len(walls),
        "training_job_wall_s": training_wall,
        "training_loop_s": loops,
        "eval_s": evaluation,
        "tracking_job_wall_s": float(np.sum(tracking)),
        "job_overhead_fraction": (overhead + float(np.sum(tracking)))
        / (training_wall + float(np.sum(tracking))),
        "job_overhead_fraction_without_mlflow": overhead / training_wall,
        "eval_fraction": evaluation / loops if loops else None,
    }
