"""``python -m crossmod.training.subjects``: train DEPER's subject encoder on one split.

Subject-disjoint protocol (SPEC 10, issue "DEPER"): the split's training users are
the seen subjects (the classifier's classes, the SupCon labels); its validation users
choose the snapshot by their own few-shot identification; its test users are the
unseen subjects, identified few-shot from the saved z_s and never seen in training.

One job trains one encoder variant (DEPER itself, a baseline such as caption-only,
or an ablation): the variant is only a change of settings. ``steps: 0`` is the
untrained "random encoder" baseline. Outputs: the checkpoint, z_s of every sample
(Parquet), and metrics.json with the few-shot identification of the unseen subjects
per S, the BFI probe and the MLflow record (``crossmod.tracking.track`` logs it).
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
from crossmod.evaluation.fewshot import (
    identification,
    identify,
    protocol_embeddings,
    ridge_probe,
    validation_draws,
)
from crossmod.features.bfi import COLUMNS as BFI_COLUMNS
from crossmod.features.bfi import TRAITS, trait_scores
from crossmod.methods.deper import (
    MAX_STEPS,
    DeperSettings,
    SubjectMemoryBank,
    centre_by_group,
    supcon_with_bank,
    trajectory_loss,
)
from crossmod.methods.deper_net import DeperConfig, DeperNetwork
from crossmod.progress import Progress
from crossmod.tracking.live import LiveRun
from crossmod.tracking.track import network_run_name
from crossmod.training import optimizers
from crossmod.training.sampler import GroupBatchSampler
from crossmod.training.snapshots import BestSnapshot, LossCurves

log = logging.getLogger("crossmod.training.subjects")

VALIDATION_SHOTS = 3
"""S of the validation users' identification, which picks the snapshot."""
VALIDATION_DRAWS = 5


@dataclass
class SubjectData:
    """Every annotation's DEPER inputs (numpy, one row each), in feature-table order."""

    annotation_id: np.ndarray
    user: np.ndarray  # (N,) user names
    image_name: np.ndarray  # (N,) the annotated image (the few-shot protocol centres on it)
    part: np.ndarray  # (N,) train | val | test in this split
    image: np.ndarray  # (n_images, 49, P) projected conv cells
    map_row: np.ndarray  # (N,) row of ``image``
    weights: np.ndarray  # (N, T, 49) cell weights of each trajectory step
    positions: np.ndarray  # (N, T, 2)
    valid: np.ndarray  # (N, T) bool
    words: np.ndarray  # (N, L) int64, -1 padded
    vocabulary: np.ndarray  # (V, d_w)
    traits: np.ndarray  # (N, 5) BFI trait scores of the annotator


def load_subject_data(
    annotations_path: str, locals_path: str, trajectories_path: str, splits_path: str, split: int
) -> SubjectData:
    """Join the caches on annotation_id; any disagreement is an error naming the files."""
    annotations = pd.read_parquet(annotations_path)
    cache = np.load(locals_path)
    walks = np.load(trajectories_path)
    ids = annotations["annotation_id"].to_numpy(np.int64)
    for path, other in ((locals_path, cache), (trajectories_path, walks)):
        if not np.array_equal(other["annotation_id"], ids):
            raise ValueError(f"{path} lists other annotations than {annotations_path}")
    users = pd.read_csv(splits_path)
    users = users[users["split"] == split]
    if users.empty:
        raise ValueError(f"{splits_path}: no split {split}")
    part = annotations["user"].map(dict(zip(users["user"], users["part"], strict=True)))
    if part.isna().any():
        missing = sorted(annotations.loc[part.isna(), "user"].unique())[:5]
        raise ValueError(f"{splits_path}: split {split} does not place user(s) {missing}")
    answers = annotations[list(BFI_COLUMNS)].to_numpy(dtype=np.int64)
    traits = np.array([[trait_scores(a)[t] for t in TRAITS] for a in answers.tolist()])
    return SubjectData(
        annotation_id=ids,
        user=annotations["user"].to_numpy(str),
        image_name=annotations["image"].to_numpy(str),
        part=part.to_numpy(str),
        image=cache["cells"].astype(np.float32),
        map_row=walks["map_row"].astype(np.int64),
        weights=walks["weights"].astype(np.float32),
        positions=walks["positions"].astype(np.float32),
        valid=walks["valid"].astype(bool),
        words=cache["tokens"].astype(np.int64),
        vocabulary=cache["vocabulary"].astype(np.float32),
        traits=traits,
    )


class Batches:
    """Tensors of the inputs, and the network's inputs for any set of rows."""

    def __init__(self, data: SubjectData, device: str) -> None:
        self.image = torch.from_numpy(data.image).to(device)
        self.map_row = torch.from_numpy(data.map_row).to(device)
        self.weights = torch.from_numpy(data.weights).to(device)
        self.positions = torch.from_numpy(data.positions).to(device)
        self.valid = torch.from_numpy(data.valid).to(device)
        self.words = torch.from_numpy(data.words).to(device)

    def inputs(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """The network's inputs for ``rows``, every word and click shown."""
        image = self.image[self.map_row[rows]]
        # A step's token: its bubble's cell weights times the image's cells.
        trajectory = torch.bmm(self.weights[rows], image)
        return {
            "image": image,
            "trajectory": trajectory,
            "positions": self.positions[rows],
            "valid": self.valid[rows],
            "words": self.words[rows],
        }


def network_config(settings: DeperSettings) -> DeperConfig:
    return DeperConfig(
        dim=settings.dim,
        heads=settings.heads,
        layers=settings.layers,
        dropout=settings.dropout,
        max_steps=MAX_STEPS,
        streams=settings.streams,
        order_code=settings.order_code,
        classifier_scale=settings.classifier_scale,
        summary_path=settings.summary_path,
    )


def hide_inputs(
    inputs: dict[str, torch.Tensor], word_dropout: float, click_dropout: float
) -> dict[str, torch.Tensor]:
    """The inputs with words and clicks hidden at random (training's input dropout).

    A hidden word becomes padding (-1) and a hidden click an invalid step, so the
    encoder never sees them; everything else, and the dict given, is left as it was
    (the trajectory decoder's targets stay the whole trajectory). Draws come from
    torch's generator, which training seeds.
    """
    hidden = dict(inputs)
    if word_dropout > 0:
        words = inputs["words"]
        drop = torch.rand(words.shape, device=words.device) < word_dropout
        hidden["words"] = words.masked_fill(drop, -1)
    if click_dropout > 0:
        valid = inputs["valid"]
        hidden["valid"] = valid & (torch.rand(valid.shape, device=valid.device) >= click_dropout)
    return hidden


ANNOTATORS_PER_IMAGE = 3
"""Samples of one image in a ``centre: image`` batch (the release's sets have three)."""


def training_sampler(
    data: SubjectData, train_rows: np.ndarray, settings: DeperSettings, rng: np.random.Generator
) -> GroupBatchSampler:
    """Batches of ``batch_subjects * samples_per_subject`` training samples.

    ``centre: none``: ``batch_subjects`` subjects with ``samples_per_subject`` samples
    each (SPEC 10's P x K, every anchor has an in-batch positive). ``centre: image``:
    whole images, up to three seen annotators of each, because the classifier then
    reads each embedding centred on its image within the batch, which needs the
    image's other annotators beside it; SupCon's positives come from the bank.
    """
    size = settings.batch_subjects * settings.samples_per_subject
    if settings.centre == "image":
        images = np.unique(data.image_name[train_rows], return_inverse=True)[1]
        return GroupBatchSampler({"image": images}, ("image",), size, ANNOTATORS_PER_IMAGE, rng)
    users = np.unique(data.user[train_rows], return_inverse=True)[1]
    return GroupBatchSampler({"user": users}, ("user",), size, settings.samples_per_subject, rng)


def validation_rows(data: SubjectData) -> tuple[np.ndarray, np.ndarray]:
    """Rows to embed for validation, and the validation users' rows among them.

    Centring on images needs every annotation of the validation users' images, not
    only theirs; embedding just those (about a third of a dataset) keeps validation
    cheap.
    """
    val = data.part == "val"
    needed = np.flatnonzero(np.isin(data.image_name, data.image_name[val]))
    return needed, np.flatnonzero(val[needed])


def parameter_groups(model: DeperNetwork, settings: DeperSettings) -> list[dict]:
    """AdamW's groups: the summary path at its own rate, everything else at the common one.

    The summary path is one Linear map; at the network's rate it is still far from
    trained when validation stops the whole (the streams fit the seen subjects within
    a few hundred steps), so it learns at ``summary_learning_rate``.
    """
    if model.summary is None:
        return [{"params": list(model.parameters())}]
    summary = list(model.summary.parameters())
    own = {id(p) for p in summary}
    rest = [p for p in model.parameters() if id(p) not in own]
    return [{"params": rest}, {"params": summary, "lr": settings.summary_learning_rate}]


def _in_chunks(encode: Callable, batches: Batches, rows: np.ndarray, size: int) -> list:
    """``encode(**inputs)`` of the rows, ``size`` at a time (bounded memory)."""
    index = torch.from_numpy(np.asarray(rows, dtype=np.int64)).to(batches.image.device)
    return [encode(**batches.inputs(index[i : i + size])) for i in range(0, len(index), size)]


@torch.no_grad()
def embed(model: DeperNetwork, batches: Batches, rows: np.ndarray, size: int = 256) -> np.ndarray:
    """z_s of the given samples (eval mode), (len(rows), D)."""
    model.eval()
    chunks = _in_chunks(model.encode, batches, rows, size)
    return np.concatenate([c.cpu().numpy() for c in chunks]).astype(np.float32)


@torch.no_grad()
def embed_parts(
    model: DeperNetwork, batches: Batches, rows: np.ndarray, size: int = 256
) -> dict[str, np.ndarray]:
    """z_s's addends apart (:meth:`DeperNetwork.encode_parts`), each (len(rows), D)."""
    model.eval()
    chunks = _in_chunks(model.encode_parts, batches, rows, size)
    return {
        name: np.concatenate([c[name].cpu().numpy() for c in chunks]).astype(np.float32)
        for name in chunks[0]
    }


@dataclass
class SubjectTraining:
    model: DeperNetwork
    best_step: int
    stopped_early: bool
    seconds: float
    series: dict[str, list[tuple[int, float]]]


def train_subjects(
    data: SubjectData,
    settings: DeperSettings,
    split: int,
    device: str = "cpu",
    validate: bool = True,
    on_evaluation: Callable[[dict], None] | None = None,
) -> SubjectTraining:
    """Train on the seen subjects; ``validate=False`` (benchmarks) keeps the last step.

    ``on_evaluation(series)`` gets the curves so far after each evaluation (live curves
    on a tracking server, ``crossmod.tracking.live``).
    """
    seed = np.random.SeedSequence([settings.seed, split, 0xDE9E2])
    torch_seed, sampler_seed = seed.spawn(2)
    torch.manual_seed(int(torch_seed.generate_state(1)[0]))
    train_rows = np.flatnonzero(data.part == "train")
    seen = np.unique(data.user[train_rows])
    label_of = {u: i for i, u in enumerate(seen)}
    labels = torch.tensor([label_of[u] for u in data.user[train_rows]], device=device)
    model = DeperNetwork(
        network_config(settings), data.image.shape[-1], torch.from_numpy(data.vocabulary), len(seen)
    ).to(device)
    batches = Batches(data, device)
    train_index = torch.from_numpy(train_rows).to(device)
    if model.summary is not None:  # standardised on the seen samples
        model.summary.fit(
            model.summary_features(
                batches.positions[train_index],
                batches.valid[train_index],
                batches.words[train_index],
            )
        )
    start = time.perf_counter()
    series: dict[str, list[tuple[int, float]]] = {}
    if settings.steps == 0:
        return SubjectTraining(model, 0, False, 0.0, series)
    optimizer = optimizers.AdamW(
        parameter_groups(model, settings),
        lr=settings.learning_rate,
        weight_decay=settings.weight_decay,
        fused=True,  # one kernel for all parameters: 5 of about 110 ms a CPU step
    )
    sampler = training_sampler(data, train_rows, settings, np.random.default_rng(sampler_seed))
    image_codes = torch.from_numpy(np.unique(data.image_name, return_inverse=True)[1]).to(device)
    embed_rows, among = validation_rows(data)
    val_rows = embed_rows[among]
    val_draws = (
        validation_draws(
            data.user[val_rows], VALIDATION_SHOTS, VALIDATION_DRAWS, settings.seed, split
        )
        if validate
        else []
    )
    bank = SubjectMemoryBank(settings.bank_size)
    snapshot = BestSnapshot(settings.patience)
    curves = LossCurves(prefix="train_")
    val_series: list[tuple[int, float]] = []
    step = 0
    what = f"subject encoder ({settings.streams} streams) step"
    progress = Progress(what, settings.steps, log, upper_bound=True)
    for step in range(1, settings.steps + 1):
        model.train()
        picked = torch.from_numpy(sampler()).to(device)
        inputs = batches.inputs(train_index[picked])
        out = model(**hide_inputs(inputs, settings.word_dropout, settings.click_dropout))
        z = out.z
        if settings.centre == "image":
            z = centre_by_group(z, image_codes[train_index[picked]])
        parts = {
            "subject": torch.nn.functional.cross_entropy(model.classifier(z), labels[picked]),
            "trajectory": trajectory_loss(
                out.positions, out.validity, inputs["positions"], inputs["valid"]
            ),
            "supcon": supcon_with_bank(bank, z, labels[picked], settings.temperature),
        }
        loss = (
            settings.subject_weight * parts["subject"]
            + settings.trajectory_weight * parts["trajectory"]
            + settings.supcon_weight * parts["supcon"]
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        curves.add({"loss": loss, **parts})
        progress.update(step)
        if step % settings.eval_every == 0 or step == settings.steps:
            curves.flush(step)
            if not val_draws:  # nothing to choose by: the last step is kept
                continue
            z = embed(model, batches, embed_rows)
            z = protocol_embeddings(z, data.image_name[embed_rows], settings.centre)[among]
            top1 = float(np.mean([(identify(z, d) < 1).mean() for d in val_draws]))
            val_series.append((step, top1))
            log.info("step %d val top-1 %.3f", step, top1)
            if on_evaluation is not None:
                on_evaluation(curves.series | {"val_top1": val_series})
            if snapshot.offer(model, step, top1):
                break
    snapshot.restore(model, step)
    series = curves.series | ({"val_top1": val_series} if val_series else {})
    return SubjectTraining(
        model, snapshot.best_step, snapshot.stopped_early, time.perf_counter() - start, series
    )


def personality_probe(data: SubjectData, z: np.ndarray) -> dict[str, float]:
    """R^2 of each BFI trait from a subject's mean z (seen subjects fit, unseen scored)."""

    def per_subject(part: str) -> tuple[np.ndarray, np.ndarray]:
        rows = np.flatnonzero(data.part == part)
        frame = pd.DataFrame(z[rows]).groupby(data.user[rows]).mean()
        traits = pd.DataFrame(data.traits[rows]).groupby(data.user[rows]).first()
        return frame.to_numpy(), traits.loc[frame.index].to_numpy()

    r2 = ridge_probe(*per_subject("train"), *per_subject("test"))
    scores = {f"r2_{t}": float(v) for t, v in zip(TRAITS, r2, strict=True)}
    return scores | {"r2_mean": float(np.nanmean(r2))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--annotations", required=True, help="data/annotations.parquet")
    parser.add_argument("--locals", required=True, help="features/locals.npz")
    parser.add_argument("--trajectories", required=True, help="features/trajectories.npz")
    parser.add_argument("--splits", required=True, help="splits/users.csv")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--split", type=int, required=True)
    parser.add_argument("--variant", required=True, help="DEPER, or a baseline/ablation name")
    parser.add_argument("--settings", required=True, help="the deper section (JSON)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--embeddings", required=True, help="subjects.parquet to write")
    parser.add_argument("--metrics", required=True)
    parser.add_argument(
        "--experiments",
        help="experiments.json: with a tracking server, curves go to MLflow while training",
    )
    args = parser.parse_args(argv)
    setup_logging()
    torch.set_num_threads(args.threads)
    settings = DeperSettings.from_json(args.settings)
    network = "deper" if args.variant == "deper" else f"deper_{args.variant}"
    try:
        data = load_subject_data(
            args.annotations, args.locals, args.trajectories, args.splits, args.split
        )
    except ValueError as err:
        raise SystemExit(str(err)) from None
    live = LiveRun.start(
        args.experiments,
        args.dataset,
        network_run_name(args.dataset, args.split, network),
        {"dataset": args.dataset, "split": str(args.split), "network": network},
    )
    result = train_subjects(
        data, settings, args.split, on_evaluation=live.send if live is not None else None
    )
    everything = np.arange(len(data.user))
    # With the summary path, z_s's addends apart (what each tells alone, below); their
    # sum is z_s exactly as :func:`embed` gives it, so one encoder pass serves both.
    batches = Batches(data, "cpu")
    if result.model.summary is not None:
        addends = embed_parts(result.model, batches, everything)
        z = sum(addends.values())
    else:
        addends, z = {}, embed(result.model, batches, everything)
    test = data.part == "test"

    def unseen(embedding: np.ndarray) -> list[dict]:
        """Few-shot identification of the test users (the protocol's draws)."""
        return identification(
            protocol_embeddings(embedding, data.image_name, settings.centre)[test],
            data.user[test],
            np.unique(data.user[test]),
            tuple(settings.shots),
            settings.draws,
            settings.seed,
            args.split,
        )

    rows = unseen(z)
    probe = personality_probe(data, z)
    # With the summary path, what each addend of z_s tells alone (same draws).
    parts = {}
    for name, part in addends.items():
        parts[name] = unseen(part)
        best = parts[name][-1]
        log.info("%s alone: S=%d top-1 %.3f", name, best["shots"], best["top1"])
    for row in rows:
        log.info(
            "unseen, S=%d: top-1 %.3f top-5 %.3f (chance %.3f)",
            *(row[k] for k in ("shots", "top1", "top5", "chance_top1")),
        )
    log.info("BFI probe R^2: %s", probe)

    torch.save(
        {"settings": asdict(settings), "state_dict": result.model.state_dict()},
        ensure_parent(args.checkpoint),
    )
    frame = pd.DataFrame(
        {"annotation_id": data.annotation_id, "user": data.user, "part": data.part}
    )
    frame["z"] = list(z)
    frame.to_parquet(ensure_parent(args.embeddings), index=False)
    tags = {
        "dataset": args.dataset,
        "split": str(args.split),
        "method": "DEPER",
        "variant": args.variant,
        "network": network,
    }
    final = {f"test_S{r['shots']}_{k}": r[k] for r in rows for k in ("top1", "top5")}
    final |= probe | {"best_step": result.best_step, "train_seconds": result.seconds}
    report = {
        "dataset": args.dataset,
        "split": args.split,
        "network": network,
        "variant": args.variant,
        "centre": settings.centre,
        "identification": rows,
        "probe": probe,
        "parts": parts,
        "best_step": result.best_step,
        "stopped_early": result.stopped_early,
        "train_seconds": result.seconds,
        "run": {
            "params": {f"deper.{k}": v for k, v in asdict(settings).items()}
            | tags
            | {"threads": args.threads},
            "tags": tags,
            "series": result.series,
            "final": final,
        },
    }
    if live is not None:
        live.send(result.series)  # what came after the last evaluation
        report["run"] |= live.record()
    ensure_parent(args.metrics).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
