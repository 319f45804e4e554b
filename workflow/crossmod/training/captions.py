"""``python -m crossmod.training.captions``: DEPER's personalised captions on one split.

Captions written the way a given person would, without a VLM (SPEC 10): a small
decoder (``crossmod.methods.captioner``) reads the image's conv cells and a subject
embedding z_s (a prefix token through a linear adapter). z_s comes frozen from the
split's DEPER encoder (``subjects.parquet``):

- training: the split's seen subjects, each with its z_s = the mean of its
  L2-normalised sample embeddings; the snapshot is chosen by the caption loss of the
  validation users, each conditioned on its few-shot z_s;
- test: each unseen subject's z_s is the mean of S support samples (the first draw of
  ``crossmod.evaluation.fewshot``, the same rule as identification); each of its other
  samples is captioned three ways: with its own z_s (``own``), with the mean z_s of the
  seen subjects (``mean``: no personalisation) and with the next unseen subject's z_s
  (``other``), and scored against the subject's own caption (BLEU-1..4, ROUGE-L, CIDEr;
  METEOR when Java runs) and by CLS (does each annotator's reference pick out the
  caption generated for them, on images with two or more unseen annotators?).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch

from crossmod.cli import ensure_parent, setup_logging
from crossmod.evaluation.captions import METRICS, caption_metrics, cls_scores, java_available
from crossmod.evaluation.fewshot import draws_for, normalise, validation_draws
from crossmod.methods.captioner import CaptionDecoder, CaptionerConfig, caption_loss
from crossmod.progress import Progress
from crossmod.settings import Settings
from crossmod.tracking.live import LiveRun
from crossmod.tracking.track import network_run_name
from crossmod.training import optimizers
from crossmod.training.snapshots import BestSnapshot, LossCurves

log = logging.getLogger("crossmod.training.captions")

CONDITIONS = ("own", "mean", "other")


@dataclass(frozen=True)
class CaptionSettings(Settings):
    """The ``captions`` section (defaults and meanings: the config schema)."""

    SECTION = "captions"

    dim: int
    heads: int
    layers: int
    dropout: float
    max_length: int
    steps: int
    batch_size: int
    learning_rate: float
    eval_every: int
    patience: int
    shots: int
    beam: int
    meteor: bool
    seed: int


@dataclass
class CaptionData:
    annotation_id: np.ndarray
    user: np.ndarray
    image_name: np.ndarray
    part: np.ndarray
    caption: np.ndarray  # the reference text
    cells: np.ndarray  # (n_images, 49, P)
    map_row: np.ndarray
    words: np.ndarray  # (N, L) ids, -1 padded
    vocabulary: np.ndarray  # (V, d_w)
    vocabulary_words: np.ndarray  # (V,) str
    z: np.ndarray  # (N, D) DEPER's sample embeddings, L2-normalised


def load_caption_data(annotations_path: str, locals_path: str, subjects_path: str) -> CaptionData:
    annotations = pd.read_parquet(annotations_path)
    cache = np.load(locals_path)
    if "words" not in cache.files:
        raise ValueError(
            f"{locals_path} predates the caption decoder (no 'words'); rebuild it with "
            "`snakemake --forcerun local_features`"
        )
    subjects = pd.read_parquet(subjects_path)
    ids = annotations["annotation_id"].to_numpy(np.int64)
    for path, other in (
        (locals_path, cache["annotation_id"]),
        (subjects_path, subjects["annotation_id"]),
    ):
        if not np.array_equal(np.asarray(other), ids):
            raise ValueError(f"{path} lists other annotations than {annotations_path}")
    return CaptionData(
        annotation_id=ids,
        user=annotations["user"].to_numpy(str),
        image_name=annotations["image"].to_numpy(str),
        part=subjects["part"].to_numpy(str),
        caption=annotations["caption"].to_numpy(str),
        cells=cache["cells"].astype(np.float32),
        map_row=cache["map_row"].astype(np.int64),
        words=cache["tokens"].astype(np.int64),
        vocabulary=cache["vocabulary"].astype(np.float32),
        vocabulary_words=cache["words"].astype(str),
        z=normalise(np.stack(subjects["z"].to_numpy())).astype(np.float32),
    )


def subject_means(data: CaptionData, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Each subject's z_s: the mean of its (normalised) sample embeddings among ``rows``."""
    return {u: data.z[rows[data.user[rows] == u]].mean(axis=0) for u in np.unique(data.user[rows])}


def few_shot(
    data: CaptionData, part: str, settings: CaptionSettings, split: int, validation: bool = False
) -> tuple[dict[str, np.ndarray], np.ndarray] | None:
    """Few-shot z_s of a part's subjects (first draw) and the rows that are queries.

    ``validation``: None where the part's subjects cannot be drawn (a tiny split), so
    that training keeps its last step; for the test part that is an error.
    """
    rows = np.flatnonzero(data.part == part)
    labels = data.user[rows]
    if validation:
        draws = validation_draws(labels, settings.shots, 1, settings.seed, split)
    else:
        draws = draws_for(labels, np.unique(labels), settings.shots, 1, settings.seed, split)
    if not draws:
        return None
    draw = draws[0]
    z = {
        subject: data.z[rows[support]].mean(axis=0)
        for subject, support in zip(draw.subjects, draw.support, strict=True)
    }
    return z, rows[draw.queries]


def _tensors(data: CaptionData, rows: np.ndarray, subject: np.ndarray) -> tuple:
    image = torch.from_numpy(data.cells[data.map_row[rows]])
    words = torch.from_numpy(data.words[rows])
    length = int((words >= 0).sum(dim=1).max()) if len(rows) else 0
    return image, torch.from_numpy(subject.astype(np.float32)), words[:, : max(length, 1)]


@torch.no_grad()
def validation_loss(
    model: CaptionDecoder, data: CaptionData, rows: np.ndarray, subject: np.ndarray
) -> float:
    model.eval()
    losses = []
    for start in range(0, len(rows), 256):
        chunk = slice(start, start + 256)
        image, z, words = _tensors(data, rows[chunk], subject[chunk])
        losses.append(float(caption_loss(model(image, z, words), words)) * len(words))
    return sum(losses) / max(len(rows), 1)


def train_captioner(
    data: CaptionData,
    settings: CaptionSettings,
    split: int,
    on_evaluation: Callable[[dict], None] | None = None,
) -> tuple[CaptionDecoder, dict[str, list[tuple[int, float]]], int, float]:
    """Train the decoder on seen subjects; ``on_evaluation(series)`` after each evaluation."""
    seed = np.random.SeedSequence([settings.seed, split, 0xCA9])
    torch_seed, batch_seed = seed.spawn(2)
    torch.manual_seed(int(torch_seed.generate_state(1)[0]))
    rng = np.random.default_rng(batch_seed)
    config = CaptionerConfig(
        dim=settings.dim,
        layers=settings.layers,
        heads=settings.heads,
        dropout=settings.dropout,
        # Positions for the longest training caption; generation stops at max_length.
        max_length=max(settings.max_length, data.words.shape[1]),
    )
    model = CaptionDecoder(
        config, torch.from_numpy(data.vocabulary), data.cells.shape[-1], data.z.shape[1]
    )
    optimizer = optimizers.AdamW(model.parameters(), lr=settings.learning_rate)
    train_rows = np.flatnonzero(data.part == "train")
    seen = subject_means(data, train_rows)
    train_z = np.stack([seen[u] for u in data.user[train_rows]])
    validation = few_shot(data, "val", settings, split, validation=True)
    if validation is not None:
        val_z, val_rows = validation
        val_subject = np.stack([val_z[u] for u in data.user[val_rows]])
    snapshot = BestSnapshot(settings.patience)
    curves = LossCurves(prefix="train_")
    val_series: list[tuple[int, float]] = []
    start, step = time.perf_counter(), 0
    progress = Progress("captioner step", settings.steps, log, upper_bound=True)
    for step in range(1, settings.steps + 1):
        model.train()
        picked = rng.choice(
            len(train_rows), size=min(settings.batch_size, len(train_rows)), replace=False
        )
        image, z, words = _tensors(data, train_rows[picked], train_z[picked])
        loss = caption_loss(model(image, z, words), words)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        curves.add({"loss": loss})
        progress.update(step)
        if step % settings.eval_every == 0 or step == settings.steps:
            curves.flush(step)
            if validation is None:  # nothing to choose by: the last step is kept
                continue
            val = validation_loss(model, data, val_rows, val_subject)
            val_series.append((step, val))
            log.info("step %d val loss %.3f", step, val)
            if on_evaluation is not None:
                on_evaluation(curves.series | {"val_loss": val_series})
            if snapshot.offer(model, step, -val):
                break
    snapshot.restore(model, step)
    series = curves.series | ({"val_loss": val_series} if val_series else {})
    return model, series, snapshot.best_step, time.perf_counter() - start


def conditioned_on(condition: str, user: str, other_of: dict[str, str]) -> str:
    """Whose z_s a caption was generated with."""
    return {"own": user, "other": other_of[user], "mean": "seen subjects' mean"}[condition]


@torch.no_grad()
def generate(
    model: CaptionDecoder,
    data: CaptionData,
    rows: np.ndarray,
    subject: np.ndarray,
    beam: int,
    max_length: int,
) -> list[str]:
    captions = []
    for start in range(0, len(rows), 128):
        chunk = slice(start, start + 128)
        image = torch.from_numpy(data.cells[data.map_row[rows[chunk]]])
        z = torch.from_numpy(subject[chunk].astype(np.float32))
        for ids in model.generate(image, z, beam=beam, max_length=max_length):
            captions.append(" ".join(data.vocabulary_words[ids]))
    return captions


def caption_test(
    model: CaptionDecoder, data: CaptionData, settings: CaptionSettings, split: int
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Generated captions and their scores per condition; CLS per condition."""
    unseen, queries = few_shot(data, "test", settings, split)
    subjects = sorted(unseen)
    other_of = {s: subjects[(i + 1) % len(subjects)] for i, s in enumerate(subjects)}
    seen = subject_means(data, np.flatnonzero(data.part == "train"))
    mean_z = np.mean(list(seen.values()), axis=0)
    users = data.user[queries]
    conditioning = {
        "own": np.stack([unseen[u] for u in users]),
        "mean": np.repeat(mean_z[None], len(queries), axis=0),
        "other": np.stack([unseen[other_of[u]] for u in users]),
    }
    references = data.caption[queries].tolist()
    meteor = settings.meteor and java_available()
    if settings.meteor and not meteor:
        log.info("no Java runtime runs here: METEOR is not scored (the other metrics are)")
    frames, cls = [], {}
    for condition in CONDITIONS:
        generated = generate(
            model, data, queries, conditioning[condition], settings.beam, settings.max_length
        )
        scores = caption_metrics(references, generated, meteor=meteor)
        frame = pd.DataFrame(
            {
                "annotation_id": data.annotation_id[queries],
                "user": users,
                "image": data.image_name[queries],
                "condition": condition,
                "conditioned_on": [conditioned_on(condition, u, other_of) for u in users],
                "reference": references,
                "caption": generated,
                **scores,
            }
        )
        frames.append(frame)
        if condition != "mean":  # one caption per image: CLS is chance by construction
            groups = [
                (g["reference"].tolist(), g["caption"].tolist())
                for _, g in frame.groupby("image")
                if len(g) >= 2
            ]
            if groups:
                for metric, value in cls_scores(groups).items():
                    cls[f"{condition}_CLS_{metric}"] = float(value)
    return pd.concat(frames, ignore_index=True), cls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--annotations", required=True, help="data/annotations.parquet")
    parser.add_argument("--locals", required=True, help="features/locals.npz")
    parser.add_argument("--subjects", required=True, help="DEPER's subjects.parquet")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--split", type=int, required=True)
    parser.add_argument("--settings", required=True, help="the captions section (JSON)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--generated", required=True, help="generated.parquet to write")
    parser.add_argument("--metrics", required=True)
    parser.add_argument(
        "--experiments",
        help="experiments.json: with a tracking server, curves go to MLflow while training",
    )
    args = parser.parse_args(argv)
    setup_logging()
    torch.set_num_threads(args.threads)
    settings = CaptionSettings.from_json(args.settings)
    try:
        data = load_caption_data(args.annotations, args.locals, args.subjects)
    except ValueError as err:
        raise SystemExit(str(err)) from None
    live = LiveRun.start(
        args.experiments,
        args.dataset,
        network_run_name(args.dataset, args.split, "deper_captions"),
        {"dataset": args.dataset, "split": str(args.split), "network": "deper_captions"},
    )
    model, series, best_step, seconds = train_captioner(
        data, settings, args.split, live.send if live is not None else None
    )
    generated, cls = caption_test(model, data, settings, args.split)
    metric_names = [m for m in (*METRICS, "METEOR") if m in generated.columns]
    summary = generated.groupby("condition")[metric_names].mean()
    log.info("test captions (mean per condition):\n%s", summary.round(3))
    log.info("CLS: %s", cls)
    torch.save(
        {"settings": asdict(settings), "state_dict": model.state_dict()},
        ensure_parent(args.checkpoint),
    )
    generated.to_parquet(ensure_parent(args.generated), index=False)
    tags = {
        "dataset": args.dataset,
        "split": str(args.split),
        "method": "DEPER",
        "network": "deper_captions",
    }
    final = {f"test_{c}_{m}": float(summary.loc[c, m]) for c in CONDITIONS for m in metric_names}
    final |= cls | {"best_step": best_step, "train_seconds": seconds}
    report = {
        "dataset": args.dataset,
        "split": args.split,
        "network": "deper_captions",
        "metrics": metric_names,
        "meteor": "METEOR" in metric_names,
        "cls": cls,
        "run": {
            "params": {f"captions.{k}": v for k, v in asdict(settings).items()} | tags,
            "tags": tags,
            "series": series,
            "final": final,
        },
    }
    if live is not None:
        live.send(series)  # what came after the last evaluation
        report["run"] |= live.record()
    ensure_parent(args.metrics).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
