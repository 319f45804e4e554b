"""``python -m crossmod.train``: train one network on one user split, evaluate, log to MLflow.

Training (SPEC 4): Adagrad (initial accumulator 0.1, as TensorFlow's, which the
paper's code used; PyTorch's default of 0 makes the first steps as large as the
learning rate), batch 128 from the P x K sampler, learning rate 2.0, L2 1e-6, margin
0.2. Every ``eval_every`` steps the model is scored on the validation pools; the
snapshot with the best validation top-1 (averaged over the network's tasks; ties by
top-3, then mean rank) is kept. With ``patience`` > 0, training stops after that many
evaluations without improvement.

Outputs: the best checkpoint, the embeddings of every annotation (Parquet, one column
per modality), and ``metrics.json`` with validation and test metrics per task and the
MLflow run id.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import zlib
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch

from crossmod.arrays import read_table, write_table
from crossmod.cli import dataclass_from_dict, ensure_parent, parse_json, setup_logging
from crossmod.models import Embedder, veit_loss
from crossmod.networks import NETWORKS, NetworkSpec
from crossmod.pools import pool_matrix
from crossmod.ranking import metrics, pool_vectors, ranks, task_modalities
from crossmod.sampler import GroupBatchSampler
from crossmod.triplet import triplet_loss

log = logging.getLogger("crossmod.train")


@dataclass(frozen=True)
class TrainSettings:
    dim: int = 200
    normalize: bool = True
    margin: float = 0.2
    learning_rate: float = 2.0
    weight_decay: float = 1e-6
    initial_accumulator: float = 0.1
    batch_size: int = 128
    samples_per_group: int = 4
    steps: int = 10_000
    eval_every: int = 100
    patience: int = 0
    seed: int = 0

    @classmethod
    def from_dict(cls, values: dict) -> TrainSettings:
        return dataclass_from_dict(cls, values, "training")


@dataclass
class SplitData:
    """Everything one split's training and evaluation need, as arrays."""

    annotation_ids: np.ndarray  # (N,)
    features: dict[str, np.ndarray]  # modality -> (N, d)
    keys: dict[str, np.ndarray]  # image / user / user_image -> (N,) integer codes
    train_rows: np.ndarray
    position: np.ndarray  # annotation id -> row
    pools: dict[str, np.ndarray]  # part -> (n, 15) annotation ids


def split_data(
    meta: pd.DataFrame,
    arrays: dict[str, np.ndarray],
    splits: pd.DataFrame,
    pools: pd.DataFrame,
    split: int,
) -> SplitData:
    """Arrays of one split from the feature table, the user splits and the pools."""
    part_of = splits[splits["split"] == split].set_index("user")["part"]
    parts = meta["user"].astype(str).map(part_of)
    if parts.isna().any():
        missing = sorted(meta.loc[parts.isna(), "user"].astype(str).unique())[:5]
        raise ValueError(f"split {split} does not place user(s) {missing}")
    ids = meta["annotation_id"].to_numpy()
    position = np.full(ids.max() + 1, -1, dtype=np.int64)
    position[ids] = np.arange(len(ids))
    keys = {
        "image": pd.factorize(meta["image_name"])[0],
        "user": pd.factorize(meta["user"])[0],
        "user_image": pd.factorize(meta["user"].astype(str) + "\x00" + meta["image_name"])[0],
    }
    return SplitData(
        annotation_ids=ids,
        features={m: np.array(x, dtype=np.float32) for m, x in arrays.items()},
        keys={k: v.astype(np.int64) for k, v in keys.items()},
        train_rows=np.flatnonzero((parts == "train").to_numpy()),
        position=position,
        pools={part: pool_matrix(pools, split, part)[1] for part in ("val", "test")},
    )


def load_split(features_path: str, splits_path: str, pools_path: str, split: int) -> SplitData:
    meta, arrays = read_table(features_path)
    splits = pd.read_csv(splits_path, dtype={"user": str})
    return split_data(meta, arrays, splits, pd.read_parquet(pools_path), split)


def embed_all(model: Embedder, data: SplitData) -> dict[str, np.ndarray]:
    device = next(model.parameters()).device
    with torch.no_grad():
        return {
            m: model.embed(m, torch.from_numpy(data.features[m]).to(device)).cpu().numpy()
            for m in model.modalities
        }


def task_distances(
    embeddings: dict[str, np.ndarray],
    W: np.ndarray | None,
    spec: NetworkSpec,
    task: str,
    position: np.ndarray,
    pools: np.ndarray,
) -> np.ndarray:
    """(n, 15) distances for one task: squared Euclidean, or minus the bilinear score."""
    query_m, answer_m = task_modalities(task)
    q, c = pool_vectors(embeddings[query_m], embeddings[answer_m], position, pools)
    if W is None:
        return ((c - q[:, None, :]) ** 2).sum(axis=-1)
    # s(x, y) = f(x)^T W f(y) with x the modality listed first in the network.
    order = spec.modalities
    if order.index(query_m) < order.index(answer_m):
        return -np.einsum("nd,nkd->nk", q @ W, c)
    return -np.einsum("nkd,nd->nk", c @ W, q)


def evaluate(
    model: Embedder, spec: NetworkSpec, data: SplitData, part: str
) -> dict[str, dict[str, float]]:
    embeddings = embed_all(model, data)
    W = model.W.detach().cpu().numpy() if model.W is not None else None
    return {
        task: metrics(
            ranks(task_distances(embeddings, W, spec, task, data.position, data.pools[part]))
        )
        for task in spec.tasks
    }


def selection_key(per_task: dict[str, dict[str, float]]) -> tuple[float, float, float]:
    """Mean top-1 over tasks; ties broken by top-3, then by (lower) mean rank."""
    values = list(per_task.values())
    return (
        float(np.mean([v["top1"] for v in values])),
        float(np.mean([v["top3"] for v in values])),
        -float(np.mean([v["rank"] for v in values])),
    )


@dataclass
class TrainResult:
    model: Embedder
    best_step: int
    steps_run: int
    stopped_early: bool
    loss_series: list[tuple[int, float]]
    val_series: list[tuple[int, dict[str, dict[str, float]]]]
    seconds: float


def network_seed(settings: TrainSettings, spec: NetworkSpec, split: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([settings.seed, split, zlib.crc32(spec.name.encode())])


def train_network(
    spec: NetworkSpec, data: SplitData, settings: TrainSettings, split: int, device: str = "cpu"
) -> TrainResult:
    seed = network_seed(settings, spec, split)
    torch_seed, sampler_seed = seed.spawn(2)
    torch.manual_seed(int(torch_seed.generate_state(1)[0]))
    rows = data.train_rows
    model = Embedder(
        {m: data.features[m].shape[1] for m in spec.modalities},
        dim=settings.dim,
        normalize=settings.normalize,
        bilinear=spec.bilinear,
    )
    model.set_standardization({m: data.features[m][rows] for m in spec.modalities})
    model.to(device)
    optimizer = torch.optim.Adagrad(
        model.parameters(),
        lr=settings.learning_rate,
        weight_decay=settings.weight_decay,
        initial_accumulator_value=settings.initial_accumulator,
    )
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
    pairs = [(x, y) for i, x in enumerate(spec.retrieval_modalities)
             for y in spec.retrieval_modalities[i + 1 :]]  # fmt: skip

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
        if spec.bilinear:
            loss = veit_loss(embeddings, model.W, pairs)
        else:
            keys = {k: v[batch] for k, v in train_keys.items()}
            loss = triplet_loss(spec.terms, embeddings, keys, settings.margin)
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
    return TrainResult(
        model, best_step, step, stopped_early, loss_series, val_series,
        time.perf_counter() - start,
    )  # fmt: skip


def _flat_series(result: TrainResult) -> dict[str, list[tuple[int, float]]]:
    series: dict[str, list[tuple[int, float]]] = {"train_loss": result.loss_series}
    for step, per_task in result.val_series:
        for metric in ("top1", "top3", "rank"):
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
) -> dict:
    """Everything MLflow gets about this run (``crossmod.track`` logs it)."""
    params = {f"train.{k}": v for k, v in asdict(settings).items()}
    params.update(
        {
            "network": spec.name, "method": spec.method, "setup": spec.setup, "pair": spec.pair,
            "modalities": ",".join(spec.modalities), "content_subset": spec.content_subset,
            "terms": "; ".join(map(str, spec.terms)) or "bilinear softmax",
            "dataset": dataset, "split": split, "threads": threads,
        }
    )  # fmt: skip
    tags = {
        "dataset": dataset, "split": str(split), "setup": spec.setup, "method": spec.method,
        "pair": spec.pair, "network": spec.name,
    }  # fmt: skip
    final = {f"test_{t}_{m}": test[t][m] for t in spec.tasks for m in ("top1", "top3", "rank")}
    final.update({f"best_val_{t}_top1": val[t]["top1"] for t in spec.tasks})
    final.update({"best_step": result.best_step, "train_seconds": result.seconds})
    return {"params": params, "tags": tags, "series": _flat_series(result), "final": final}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--features", required=True)
    parser.add_argument("--splits", required=True)
    parser.add_argument("--pools", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--split", type=int, required=True)
    parser.add_argument("--network", required=True, choices=sorted(NETWORKS))
    parser.add_argument("--settings", default="{}", help="training settings as JSON")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--gpus", type=int, default=0, help="GPUs allotted: >0 trains on CUDA")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--embeddings", required=True)
    parser.add_argument("--metrics", required=True)
    args = parser.parse_args(argv)
    setup_logging()
    torch.set_num_threads(args.threads)

    settings = TrainSettings.from_dict(parse_json(args.settings))
    spec = NETWORKS[args.network]
    data = load_split(args.features, args.splits, args.pools, args.split)
    log.info(
        "%s split %d: %s on %d training annotations; terms: %s",
        args.dataset, args.split, spec.name, len(data.train_rows),
        ", ".join(map(str, spec.terms)) or "bilinear softmax",
    )  # fmt: skip
    device = "cuda" if args.gpus > 0 else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--gpus {args.gpus}: no CUDA device is visible to this job")
    result = train_network(spec, data, settings, args.split, device)
    result.model.cpu()
    val = evaluate(result.model, spec, data, "val")
    test = evaluate(result.model, spec, data, "test")
    log.info(
        "trained %d steps in %.1f s (%.1f steps/s), best at step %d%s",
        result.steps_run, result.seconds, result.steps_run / result.seconds, result.best_step,
        " (stopped early)" if result.stopped_early else "",
    )  # fmt: skip
    for task in spec.tasks:
        log.info("  %s val %s | test %s", task, val[task], test[task])

    torch.save(
        {
            "network": spec.name,
            "settings": asdict(settings),
            "input_dims": {m: int(data.features[m].shape[1]) for m in spec.modalities},
            "state_dict": result.model.state_dict(),
        },
        ensure_parent(args.checkpoint),
    )
    embeddings = embed_all(result.model, data)
    write_table(pd.DataFrame({"annotation_id": data.annotation_ids}), embeddings, args.embeddings)
    report = {
        "dataset": args.dataset, "split": args.split, "network": spec.name,
        "method": spec.method, "setup": spec.setup, "pair": spec.pair,
        "content_subset": spec.content_subset, "tasks": list(spec.tasks),
        "best_step": result.best_step, "steps_run": result.steps_run,
        "stopped_early": result.stopped_early, "train_seconds": result.seconds,
        "val": val, "test": test,
        "run": run_record(spec, settings, result, val, test, args.dataset, args.split,
                          args.threads),
    }  # fmt: skip
    ensure_parent(args.metrics).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
