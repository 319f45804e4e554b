"""``python -m crossmod.training.train``: train one network on user splits, evaluate it.

One job trains a network on every split it is given: a stackable method's splits at
once (``crossmod.training.stacked``), any other's one after another. Each split is
seeded on its own (``crossmod.training.loop.network_seed``), so its numbers are those
of training it alone; one process pays start-up, imports and data loading once.

Outputs, per split: the best checkpoint, the embeddings of every annotation (Parquet, one column
per modality), and ``metrics.json`` with validation and test metrics per task plus the
record ``crossmod.tracking.track`` logs to MLflow (params, tags, curves, final
metrics). Training jobs do not import MLflow: its import alone costs seconds.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict

import numpy as np
import pandas as pd
import torch

from crossmod.cli import ensure_parent, setup_logging
from crossmod.data.arrays import write_table
from crossmod.evaluation.ranking import metrics
from crossmod.evaluation.scoring import embed_all, pool_ranks
from crossmod.methods.registry import NetworkSpec, registry
from crossmod.tracking.live import LiveRun
from crossmod.tracking.track import network_run_name
from crossmod.training.data import SplitData, load_splits
from crossmod.training.devices import DeviceError, resolve_device
from crossmod.training.loop import TrainResult, TrainSettings, method_schedule, train_network
from crossmod.training.stacked import train_stacked

log = logging.getLogger("crossmod.training")
METRICS = ("top1", "top3", "rank")


def flat_series(
    loss_series: dict[str, list[tuple[int, float]]], val_series: list[tuple[int, dict]]
) -> dict[str, list[tuple[int, float]]]:
    """The MLflow step series of a training: loss parts and validation metrics per task."""
    series: dict[str, list[tuple[int, float]]] = {"train_loss": loss_series.get("total", [])}
    for part, points in loss_series.items():
        if part != "total":
            series[f"train_{part}"] = points
    for step, per_task in val_series:
        for metric in METRICS:
            series.setdefault(f"val_{metric}", []).append(
                (step, float(np.mean([v[metric] for v in per_task.values()])))
            )
            for task, values in per_task.items():
                series.setdefault(f"val_{task}_{metric}", []).append((step, values[metric]))
    return series


def run_record(
    spec: NetworkSpec,
    settings: TrainSettings,
    result: TrainResult,
    val: dict,
    test: dict,
    dataset: str,
    split: int,
    threads: int,
    method_settings=None,
    variant: str | None = None,
) -> dict:
    """Everything MLflow gets about this run (``crossmod.tracking.track`` logs it)."""
    tags = {
        "dataset": dataset,
        "split": str(split),
        "setup": spec.setup,
        "method": spec.method,
        "pair": spec.pair,
        "network": spec.name,
    }
    # The schedule that actually ran: a method section may restate training keys.
    schedule = method_schedule(settings, method_settings)
    params = {f"train.{k}": v for k, v in asdict(schedule).items()}
    if method_settings is not None:
        params |= {f"{spec.method}.{k}": v for k, v in asdict(method_settings).items()}
    if variant:
        tags = tags | {"variant": variant}
    params |= tags | {"split": split, "threads": threads}
    params |= {
        "modalities": ",".join(spec.modalities),
        "content_subset": spec.content_subset,
        "terms": "; ".join(map(str, spec.terms)) or f"{spec.method} loss",
    }
    final = {f"test_{t}_{m}": test[t][m] for t in spec.tasks for m in METRICS}
    final |= {f"best_val_{t}_top1": val[t]["top1"] for t in spec.tasks}
    final |= {"best_step": result.best_step, "train_seconds": result.seconds}
    series = flat_series(result.loss_series, result.val_series)
    return {"params": params, "tags": tags, "series": series, "final": final}


def write_outputs(
    spec: NetworkSpec,
    data: SplitData,
    result: TrainResult,
    settings: TrainSettings,
    method_settings,
    args: argparse.Namespace,
    split: int,
    paths: dict[str, str],
    live: LiveRun | None,
) -> None:
    """Evaluate one split's trained network; write its checkpoint, embeddings, metrics."""
    result.model.cpu()
    embeddings = embed_all(result.model, spec, data)  # every row: they are saved
    val, test = (
        {
            task: metrics(rank)
            for task, rank in pool_ranks(
                result.model, spec, data, data.pools[part], embeddings
            ).items()
        }
        for part in ("val", "test")
    )
    log.info(
        "split %d: trained %d steps in %.1f s (%.1f steps/s), best at step %d%s",
        split,
        result.steps_run,
        result.seconds,
        result.steps_run / max(result.seconds, 1e-9),
        result.best_step,
        " (stopped early)" if result.stopped_early else "",
    )
    for task in spec.tasks:
        log.info("  %s val %s | test %s", task, val[task], test[task])
    checkpoint = {
        "network": spec.name,
        "settings": asdict(method_schedule(settings, method_settings)),
        "input_dims": {m: int(data.features[m].shape[1]) for m in spec.modalities},
        "state_dict": result.model.state_dict(),
    }
    torch.save(checkpoint, ensure_parent(paths["checkpoint"]))
    write_table(
        pd.DataFrame({"annotation_id": data.annotation_ids}), embeddings, paths["embeddings"]
    )
    # Per-query test ranks under every pool protocol: the intervals and paired tests of
    # the tables (crossmod.reporting.summary) and the protocol comparison come from these.
    test_ranks = {
        protocol: pool_ranks(result.model, spec, data, pools, embeddings)
        for protocol, pools in data.test_pools.items()
    }
    report = {
        "dataset": args.dataset,
        "split": split,
        "network": spec.name,
        "method": spec.method,
        "setup": spec.setup,
        "pair": spec.pair,
        "content_subset": spec.content_subset,
        "tasks": list(spec.tasks),
        "variant": args.variant,
        "method_settings": asdict(method_settings) if method_settings else {},
        "best_step": result.best_step,
        "steps_run": result.steps_run,
        "stopped_early": result.stopped_early,
        "train_seconds": result.seconds,
        "eval_seconds": result.eval_seconds,
        "val": val,
        "test": test,
        "protocols": {
            protocol: {task: metrics(rank) for task, rank in per_task.items()}
            for protocol, per_task in test_ranks.items()
        },
        "test_queries": data.pools["test"][:, 0].tolist(),
        "test_ranks": {
            protocol: {task: rank.tolist() for task, rank in per_task.items()}
            for protocol, per_task in test_ranks.items()
        },
        "run": run_record(
            spec,
            settings,
            result,
            val,
            test,
            args.dataset,
            split,
            args.threads,
            method_settings,
            args.variant,
        ),
    }
    if live is not None:
        live.send(report["run"]["series"])  # what came after the last evaluation
        report["run"] |= live.record()
    ensure_parent(paths["metrics"]).write_text(json.dumps(report, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--features", required=True)
    parser.add_argument("--splits", required=True)
    parser.add_argument("--pools", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument(
        "--split",
        type=int,
        nargs="+",
        required=True,
        help="the splits to train (stacked for a stackable method, else one by one)",
    )
    parser.add_argument("--network", required=True, choices=sorted(registry().networks()))
    parser.add_argument("--settings", required=True, help="the training section (JSON)")
    parser.add_argument(
        "--method-settings", required=True, help="the method's own section (JSON; {} if none)"
    )
    parser.add_argument(
        "--extra", nargs="*", default=[], help="NAME=PATH: feature caches the method needs"
    )
    parser.add_argument("--variant", default=None, help="an ablation's name (PVSE)")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--checkpoint", nargs="+", required=True, help="one per split")
    parser.add_argument("--embeddings", nargs="+", required=True, help="one per split")
    parser.add_argument("--metrics", nargs="+", required=True, help="one per split")
    parser.add_argument(
        "--experiments",
        help="experiments.json: with a tracking server, curves go to MLflow while training",
    )
    args = parser.parse_args(argv)
    setup_logging()
    torch.set_num_threads(args.threads)
    outputs = (args.checkpoint, args.embeddings, args.metrics)
    if any(len(paths) != len(args.split) for paths in outputs):
        parser.error("--checkpoint, --embeddings and --metrics need one path per --split")

    settings = TrainSettings.from_json(args.settings)
    try:
        device = resolve_device(settings.device)
    except DeviceError as err:
        raise SystemExit(f"error: {err}") from None
    spec = registry().network(args.network)
    method = registry().method(spec.method)
    method_settings = method.settings.from_json(args.method_settings) if method.settings else None
    extras = dict(item.split("=", 1) for item in args.extra)
    datas = load_splits(args.features, args.splits, args.pools, args.split, extras)
    log.info(
        "%s split(s) %s: %s on %s training annotations, %s; terms: %s",
        args.dataset,
        ", ".join(map(str, args.split)),
        spec.name,
        "/".join(str(len(d.train_rows)) for d in datas.values()),
        device,
        ", ".join(map(str, spec.terms)) or f"{spec.method} loss",
    )
    lives: dict[int, LiveRun] = {}

    def on_evaluation(split: int):
        """Live curves for ``split``'s MLflow run (with a tracking server), started now."""
        live = LiveRun.start(
            args.experiments,
            args.dataset,
            network_run_name(args.dataset, split, spec.name),
            {"dataset": args.dataset, "split": str(split), "network": spec.name},
        )
        if live is None:
            return None
        lives[split] = live
        return lambda losses, val: live.send(flat_series(losses, val))

    def write(split: int, result: TrainResult) -> None:
        index = args.split.index(split)
        paths = {
            name: getattr(args, name)[index] for name in ("checkpoint", "embeddings", "metrics")
        }
        write_outputs(
            spec,
            datas[split],
            result,
            settings,
            method_settings,
            args,
            split,
            paths,
            lives.get(split),
        )

    if method.stackable:
        senders = {split: on_evaluation(split) for split in args.split}
        results = train_stacked(
            spec,
            datas,
            settings,
            device,
            method_settings,
            on_evaluation={split: send for split, send in senders.items() if send},
        )
        for split in args.split:
            write(split, results[split])
    else:
        # One after another; each split's MLflow run starts when its training does.
        for split in args.split:
            result = train_network(
                spec, datas[split], settings, split, device, method_settings, on_evaluation(split)
            )
            write(split, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
