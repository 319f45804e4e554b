"""``make bench``: measured throughput of the heavy stages, in one run each.

Feature extraction: the pipeline (JPEG decode + resize + normalise in a prefetch thread,
CNN forward, copy out) against the backbone's bare forward on pre-made tensors of the
same batch size, on the same images, interleaved so that both see the same machine.

Training: steps per second of the CONTENT {t,g} network (sampler, forward, the six
loss terms, backward, Adagrad step) against the bare forward and backward passes of
the same linear layers on batches of the same size without the loss, interleaved.

Methods: network-steps per second of BASE and PVSE networks trained by the shared loop
on the same split, in one run.

Default run: the wall and CPU time of every training job of the last ``make run``,
read from Snakemake's benchmark files.

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

from crossmod.data.synthetic import GeneratorSettings, generate
from crossmod.features.backbones import build_backbone
from crossmod.features.images import extract
from crossmod.methods.registry import registry
from crossmod.training.floor import job_figures


def _images(n_images: int) -> list[str]:
    """Images of the default synthetic-ads set if generated, else a fresh small set."""
    release = Path("results/synthetic-ads/release/ims")
    paths = sorted(str(p) for p in release.rglob("*.jpg")) if release.exists() else []
    if len(paths) < n_images:
        root = Path(tempfile.mkdtemp(prefix="crossmod-bench-"))
        settings = GeneratorSettings.from_config(n_users=30, n_images=max(n_images, 15), n_sets=10)
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


def _content_data():
    """Split 0 of the default synthetic-ads features (run ``make run`` first for them)."""
    from crossmod.training.data import load_split

    root = Path("results/synthetic-ads")
    needed = [
        root / "features/annotations.parquet",
        root / "splits/users.csv",
        root / "splits/pools.parquet",
    ]
    if not all(p.exists() for p in needed):
        raise SystemExit("training bench needs the default run's features: run `make run` first")
    return load_split(*map(str, needed), split=0)


def bench_training(steps: int, repeats: int) -> dict:
    from crossmod.methods.encoders import Embedder
    from crossmod.training.loop import TrainSettings, train_network

    data = _content_data()
    spec = registry().network("content_tg")
    settings = TrainSettings.from_config(steps=steps, eval_every=10 * steps, patience=0)
    rows = data.train_rows
    model = Embedder({m: data.features[m].shape[1] for m in spec.modalities})
    optimizer = torch.optim.Adagrad(model.parameters(), lr=2.0, initial_accumulator_value=0.1)
    rng = np.random.default_rng(0)
    inputs = {m: torch.from_numpy(data.features[m][rows]) for m in spec.modalities}

    def bare() -> float:
        start = time.perf_counter()
        for _ in range(steps):
            batch = torch.from_numpy(rng.choice(len(rows), size=settings.batch_size))
            out = model({m: x[batch] for m, x in inputs.items()})
            loss = sum(o.sum() for o in out.values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return steps / (time.perf_counter() - start)

    bare()  # warm-up
    bare_rates, full_rates = [], []
    for _ in range(repeats):
        bare_rates.append(bare())
        result = train_network(spec, data, settings, split=0)
        # train_network evaluates once at the last step; count it in, as a real run does
        full_rates.append(result.steps_run / result.seconds)
    bare_rate, full_rate = float(np.median(bare_rates)), float(np.median(full_rates))
    return {
        "network": spec.name,
        "steps": steps,
        "repeats": repeats,
        "bare_linear_steps_per_s": bare_rate,
        "training_steps_per_s": full_rate,
        "training_over_bare": full_rate / bare_rate,
    }


def bench_methods(steps: int, repeats: int, networks: tuple[str, ...]) -> dict:
    """Network-steps per second of whole training runs (loop, loss, optimiser), per network.

    On split 0 of the default synthetic-ads features, one thread, evaluation only at the
    last step; the networks are timed in turn, ``repeats`` times, and the median kept.
    """
    from crossmod.methods.registry import registry
    from crossmod.training.data import load_split
    from crossmod.training.loop import TrainSettings, train_network

    root = Path("results/synthetic-ads")
    paths = [
        root / "features/annotations.parquet",
        root / "splits/users.csv",
        root / "splits/pools.parquet",
    ]
    extras = {"locals": str(root / "features/locals.npz")}
    if not all(p.exists() for p in [*paths, Path(extras["locals"])]):
        raise SystemExit("the method bench needs the default run's features: run `make run` first")
    data = load_split(*map(str, paths), split=0, extras=extras)
    settings = TrainSettings.from_config(steps=steps, eval_every=10 * steps, patience=0)
    rates: dict[str, list[float]] = {name: [] for name in networks}
    for _ in range(repeats):
        for name in networks:
            spec = registry().network(name)
            method = registry().method(spec.method)
            chosen = method.settings.from_config(steps=steps) if method.settings else None
            result = train_network(spec, data, settings, split=0, method_settings=chosen)
            rates[name].append(result.steps_run / result.seconds)
    return {
        "steps": steps,
        "repeats": repeats,
        "steps_per_s": {name: float(np.median(r)) for name, r in rates.items()},
    }


def bench_deper(steps: int, repeats: int, dims: tuple[int, ...]) -> dict:
    """DEPER training samples per second (split 0 of synthetic-coco, 1 thread), per D.

    Whole training steps as the job runs them (batch sampling, token building, encoder,
    decoder, the three losses, AdamW), validation left out; median over ``repeats``.
    """
    from crossmod.methods.deper import DeperSettings
    from crossmod.training.subjects import load_subject_data, train_subjects

    root = Path("results/synthetic-coco")
    paths = [
        root / "data/annotations.parquet",
        root / "features/locals.npz",
        root / "features/trajectories.npz",
        root / "splits/users.csv",
    ]
    if not all(p.exists() for p in paths):
        raise SystemExit("the DEPER bench needs the default run's features: run `make run` first")
    data = load_subject_data(*map(str, paths), split=0)
    rates: dict[int, list[float]] = {d: [] for d in dims}
    for _ in range(repeats):
        for dim in dims:
            settings = DeperSettings.from_config(dim=dim, steps=steps, eval_every=10 * steps)
            result = train_subjects(data, settings, split=0, validate=False)
            batch = settings.batch_subjects * settings.samples_per_subject
            rates[dim].append(steps * batch / result.seconds)
    return {
        "steps": steps,
        "repeats": repeats,
        "samples_per_s": {str(d): float(np.median(r)) for d, r in rates.items()},
    }


def _paper_training():
    """The paper profile's training section over the schema's defaults."""
    import yaml

    from crossmod.training.loop import TrainSettings

    schedule = yaml.safe_load(Path("profiles/paper/schedule.yaml").read_text())
    return TrainSettings.from_config(schedule["training"])


def bench_schedule(steps: int, threads: int) -> dict:
    """The paper schedule's GEMM floor, its estimated wall time, and the stacked step's
    rate against the bare rate of the same layers (issue: within 1.25x of the floor).

    The floor and the estimate cover the paper's 17 networks (every stackable method's
    networks: linear encoders on fixed features), both datasets, every split. The
    estimate trains each network on all splits of synthetic-ads at once for ``steps``
    steps with the paper's evaluation cadence, one thread, and scales to its steps; jobs
    run one per core.
    """
    from crossmod.methods.encoders import Embedder
    from crossmod.training.data import load_splits
    from crossmod.training.floor import bare_gemm_rates, schedule_floor
    from crossmod.training.stacked import StackedEmbedder, train_stacked

    root = Path("results/synthetic-ads")
    paths = [
        root / "features/annotations.parquet",
        root / "splits/users.csv",
        root / "splits/pools.parquet",
    ]
    if not all(p.exists() for p in paths):
        raise SystemExit(
            "the schedule bench needs the default run's features: run `make run` first"
        )
    n_splits = len(__import__("pandas").read_csv(paths[1])["split"].unique())
    datas = load_splits(*map(str, paths), list(range(n_splits)))
    first = datas[0]
    dims = {m: int(x.shape[1]) for m, x in first.features.items()}
    paper = _paper_training()
    methods = registry()
    networks = [s for s in methods.networks().values() if methods.method(s.method).stackable]
    widths = {dims[m] for spec in networks for m in spec.modalities}
    torch.set_num_threads(threads)
    rates = bare_gemm_rates(widths, paper.batch_size, paper.dim)
    datasets = 2
    floor = schedule_floor(
        networks, dims, paper.steps, n_splits * datasets, paper.batch_size, paper.dim, rates
    )
    torch.set_num_threads(1)
    short = paper.__class__.from_config(
        {**{k: getattr(paper, k) for k in ("eval_every", "patience")}, "steps": steps}
    )
    per_network = {}
    for spec in networks:
        start = time.perf_counter()
        train_stacked(spec, datas, short)
        per_network[spec.name] = time.perf_counter() - start
    cpu = sum(per_network.values()) * paper.steps / steps * datasets
    estimate = cpu / (os.cpu_count() or 1)

    # CONTENT {t,g}: stacked training against the bare stacked layers (fwd, bwd, Adagrad).
    spec = methods.network("content_tg")
    members = [Embedder({m: dims[m] for m in spec.modalities}) for _ in range(n_splits)]
    bare_model = StackedEmbedder(members)
    optimizer = torch.optim.Adagrad(bare_model.parameters(), lr=2.0, initial_accumulator_value=0.1)
    rng = np.random.default_rng(0)
    inputs = {
        m: torch.from_numpy(
            np.stack([datas[s].features[m][datas[s].train_rows][:600] for s in datas])
        )
        for m in spec.modalities
    }

    def bare(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            batch = torch.from_numpy(rng.integers(0, 600, size=(n_splits, paper.batch_size)))
            stack = torch.arange(n_splits)[:, None]
            out = [bare_model.project(m, x[stack, batch]) for m, x in inputs.items()]
            loss = sum(o.sum() for o in out)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return n * n_splits / (time.perf_counter() - start)

    bare(20)
    no_eval = paper.__class__.from_config({"steps": steps, "eval_every": 10 * steps, "patience": 0})
    bare_rates, stacked_rates = [], []
    for _ in range(3):
        bare_rates.append(bare(steps))
        start = time.perf_counter()
        train_stacked(spec, datas, no_eval)
        stacked_rates.append(steps * n_splits / (time.perf_counter() - start))
    return {
        "gemm_rates_gflops": {str(d): r / 1e9 for d, r in rates.items()},
        "gemm_threads": threads,
        "networks": len(networks),
        "splits": n_splits,
        "datasets": datasets,
        "paper_steps": paper.steps,
        "paper_schedule_floor_s": floor,
        "paper_schedule_wall_estimate_s": estimate,
        "estimate_steps": steps,
        "per_network_s": per_network,
        "content_stacked_network_steps_per_s": float(np.median(stacked_rates)),
        "content_bare_network_steps_per_s": float(np.median(bare_rates)),
        "training_ratio_to_bare": float(np.median(stacked_rates) / np.median(bare_rates)),
    }


def default_run_training() -> dict | None:
    """Wall and CPU seconds of every training job of the last default run."""
    import pandas as pd

    networks = registry().networks()
    files = sorted(
        f
        for pattern in ("*/*.tsv", "*/split*/*.tsv")  # train (every split); older runs: per split
        for f in Path("results/benchmarks").glob(pattern)
        if f.stem in networks
    )
    if not files:
        return None
    table = pd.concat([pd.read_csv(f, sep="\t") for f in files], ignore_index=True)
    return {
        "jobs": len(files),
        "sum_job_wall_s": float(table["s"].sum()),
        "sum_job_cpu_s": float(table["cpu_time"].sum()),
        "mean_job_wall_s": float(table["s"].mean()),
    }


def _throughput(args: argparse.Namespace, report: dict) -> None:
    torch.set_num_threads(1)  # training jobs run single-threaded, two at a time
    report["training"] = t = bench_training(args.train_steps, args.repeats)
    print(
        f"training {t['network']}, {t['steps']} steps, 1 thread, median of {t['repeats']}:\n"
        f"  bare linear fwd+bwd  {t['bare_linear_steps_per_s']:7.1f} steps/s\n"
        f"  training step        {t['training_steps_per_s']:7.1f} steps/s"
        f"  ({100 * t['training_over_bare']:.0f}% of bare)"
    )
    networks = ("base_tg", "pvse_tg", "pvse_gp", "joint_pvse")
    report["methods"] = m = bench_methods(args.method_steps, args.repeats, networks)
    print(f"network-steps per second, {m['steps']} steps, 1 thread, median of {m['repeats']}:")
    for name, rate in m["steps_per_s"].items():
        print(f"  {name:12s} {rate:7.1f} steps/s")
    report["deper"] = dp = bench_deper(args.method_steps, args.repeats, (64, 128))
    print(f"DEPER training, {dp['steps']} steps, 1 thread, median of {dp['repeats']}:")
    for dim, rate in dp["samples_per_s"].items():
        print(f"  D = {dim:4s} {rate:7.1f} samples/s")
    report["default_run"] = d = default_run_training()
    if d:
        print(
            f"last default run: {d['jobs']} training jobs, {d['sum_job_wall_s']:.0f} s of job "
            f"wall time ({d['sum_job_cpu_s']:.0f} s CPU; mean {d['mean_job_wall_s']:.1f} s a job)"
        )


def _measured(path: str) -> dict | None:
    file = Path(path)
    return json.loads(file.read_text()) if file.exists() else None


def write_summary(report: dict, schedule: dict, jobs: dict | None) -> dict:
    """results/bench/summary.json: the issue's figures, each with where it came from."""
    default_run = _measured("results/bench/default_run.json")
    paper_run = _measured("results/bench/paper_run.json")
    summary = {
        "cores": os.cpu_count(),
        "paper_schedule_floor_s": schedule["paper_schedule_floor_s"],
        "paper_schedule_wall_s": paper_run["wall_s"] if paper_run else None,
        "paper_schedule_wall_estimate_s": schedule["paper_schedule_wall_estimate_s"],
        "training_ratio_to_bare": schedule["training_ratio_to_bare"],
        "job_overhead_fraction": jobs["job_overhead_fraction"] if jobs else None,
        "eval_fraction": jobs["eval_fraction"] if jobs else None,
        "default_run_wall_s": default_run["wall_s"] if default_run else None,
        "sources": {
            "paper_schedule_wall_s": "results/bench/paper_run.json (make bench-paper)",
            "default_run_wall_s": "results/bench/default_run.json (make run)",
            "job_overhead_fraction": "the last run's benchmarks/ and metrics.json files",
        },
        "default_run_from_empty_results": default_run.get("from_empty_results")
        if default_run
        else None,
    }
    out = Path("results/bench/summary.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


GOALS = {
    "paper_schedule_wall_s": "<= 1.25 x floor",
    "training_ratio_to_bare": ">= 0.85",
    "job_overhead_fraction": "<= 0.05",
    "eval_fraction": "<= 0.05",
    "default_run_wall_s": "<= 900 s",
}


def print_summary(summary: dict) -> None:
    floor = summary["paper_schedule_floor_s"]
    print(f"\nsummary ({summary['cores']} cores), results/bench/summary.json:")
    for key, value in summary.items():
        if key in ("sources", "cores", "default_run_from_empty_results"):
            continue
        text = "not measured" if value is None else f"{value:10.3f}"
        if key.startswith("paper_schedule_wall") and value is not None:
            text += f"  ({value / floor:.2f} x floor)"
        print(f"  {key:32s} {text:28s} goal {GOALS.get(key, '')}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--method-steps", type=int, default=100)
    parser.add_argument("--skip-features", action="store_true")
    parser.add_argument(
        "--schedule-steps", type=int, default=200, help="steps per network of the estimate"
    )
    parser.add_argument(
        "--only-schedule", action="store_true", help="just the floor, estimate and summary"
    )
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
    }
    if not (args.skip_features or args.only_schedule):
        report["features"] = f = bench_features(args.images, args.batch_size, args.repeats)
        print(
            f"feature extraction, {f['images']} images, batch {f['batch_size']}, "
            f"median of {f['repeats']}:\n"
            f"  bare forward   {f['bare_forward_images_per_s']:7.1f} images/s\n"
            f"  pipeline       {f['pipeline_images_per_s']:7.1f} images/s"
            f"  ({100 * f['pipeline_over_bare']:.0f}% of bare)"
        )
    if not args.only_schedule:
        _throughput(args, report)
    report["schedule"] = sc = bench_schedule(args.schedule_steps, args.threads)
    print(
        f"paper schedule ({sc['networks']} networks x {sc['splits']} splits x "
        f"{sc['datasets']} datasets x {sc['paper_steps']} steps):\n"
        f"  bare GEMM rate ({sc['gemm_threads']} threads): "
        + ", ".join(f"d={d}: {r:.1f} GFLOP/s" for d, r in sc["gemm_rates_gflops"].items())
        + f"\n  floor {sc['paper_schedule_floor_s']:.0f} s; estimate from {sc['estimate_steps']} "
        f"steps per network {sc['paper_schedule_wall_estimate_s']:.0f} s\n"
        f"  CONTENT {{t,g}} stacked: {sc['content_stacked_network_steps_per_s']:.0f} "
        f"network-steps/s, bare layers {sc['content_bare_network_steps_per_s']:.0f} "
        f"({100 * sc['training_ratio_to_bare']:.0f}%)"
    )
    report["jobs"] = jobs = job_figures(Path("results"), registry().networks())
    summary = write_summary(report, sc, jobs)
    print_summary(summary)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
