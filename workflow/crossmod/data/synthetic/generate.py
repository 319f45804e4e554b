"""Assemble and write a synthetic dataset in the ``cross_mod`` release format.

Structure, as in the paper: images are grouped into sets of 15; each set is shown to
3 annotators, one crowd task each; every user does at least one task and some do
several (never the same image twice). Randomness comes from one seed, split into
independent streams per part (users, scenes, tasks, each image, each annotation, and
the scan habits that order the clicks), so
that the same settings give byte-identical files.

Besides the release files the generator writes ``_truth/`` (users' latent traits,
each scene's objects, each annotation's looked-at objects): not part of the release
format, ignored by the reader, and used only by tests and documentation.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io

from crossmod.data.synthetic.gaze import bubble_map, clicks, visit_order
from crossmod.data.synthetic.language import caption
from crossmod.data.synthetic.people import User, make_users
from crossmod.data.synthetic.photos import CATEGORIES
from crossmod.data.synthetic.scenes import Scene, make_scenes, render
from crossmod.data.synthetic.settings import GeneratorSettings
from crossmod.features.bfi import TRAITS, format_personality

MAT_HEADER = b"MATLAB 5.0 MAT-file, written by the crossmod synthetic generator"


@dataclass(frozen=True)
class Task:
    task_id: int
    image_set: int
    user: int


def image_name(settings: GeneratorSettings, index: int) -> str:
    """Release-style relative image path ``<prefix>/<name>.jpg``."""
    prefix = index % 11 if settings.kind == "ads" else index % 10
    return f"{prefix}/{settings.kind}_{index:05d}.jpg"


def make_image_sets(settings: GeneratorSettings, rng: np.random.Generator) -> list[list[int]]:
    """Sets of distinct images that together cover every image at least once."""
    cover = np.array_split(rng.permutation(settings.n_images), settings.n_sets)
    sets = []
    for chunk in cover:
        members = [int(i) for i in chunk]
        others = np.setdiff1d(np.arange(settings.n_images), members)
        extra = rng.choice(others, size=settings.images_per_set - len(members), replace=False)
        members.extend(int(i) for i in extra)
        sets.append([members[i] for i in rng.permutation(len(members))])
    return sets


def assign_tasks(
    settings: GeneratorSettings, image_sets: list[list[int]], rng: np.random.Generator
) -> list[Task]:
    """One task per (set, annotator slot); every user gets at least one task.

    Extra tasks go to users with the fewest tasks so far who have not seen any of the
    set's images (relaxed to "not this set" only if no such user is left).
    """
    slots = [(s, k) for s in range(settings.n_sets) for k in range(settings.annotators_per_set)]
    order = rng.permutation(len(slots))
    owner: dict[int, int] = {}
    seen: list[set[int]] = [set() for _ in range(settings.n_users)]
    members: list[set[int]] = [set() for _ in range(settings.n_sets)]
    load = np.zeros(settings.n_users, dtype=int)
    first_round = rng.permutation(settings.n_users)
    for position, slot_index in enumerate(order):
        image_set = slots[slot_index][0]
        images = set(image_sets[image_set])
        if position < settings.n_users:
            user = int(first_round[position])
            if user in members[image_set]:  # cannot happen: each user once in this round
                raise RuntimeError("user assigned twice to one set")
        else:
            fresh = [u for u in range(settings.n_users) if u not in members[image_set]]
            unseen = [u for u in fresh if not (seen[u] & images)]
            pool = unseen or fresh
            least = min(load[u] for u in pool)
            candidates = [u for u in pool if load[u] == least]
            user = int(candidates[int(rng.integers(len(candidates)))])
        owner[slot_index] = user
        members[image_set].add(user)
        seen[user] |= images
        load[user] += 1
    return [Task(task_id=i + 1, image_set=slots[i][0], user=owner[i]) for i in range(len(slots))]


def mat_bytes(hm: np.ndarray, click_array: np.ndarray) -> bytes:
    """A compressed MAT-5 file with a fixed header text (scipy writes a timestamp there)."""
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"hm": hm, "clicks": click_array}, do_compression=True)
    data = bytearray(buffer.getvalue())
    data[:116] = MAT_HEADER.ljust(116, b" ")
    return bytes(data)


def _write_truth(
    root: Path,
    settings: GeneratorSettings,
    users: list[User],
    scenes: list[Scene],
    looked: list[dict],
) -> None:
    truth = root / "_truth"
    truth.mkdir(parents=True, exist_ok=True)
    (truth / "settings.json").write_text(json.dumps(settings.to_dict(), indent=2) + "\n")
    with open(truth / "users.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["mturker_id", *TRAITS])
        for user in users:
            writer.writerow([user.user_id, *(f"{v:.6f}" for v in user.traits)])
    with open(truth / "scenes.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "topic", "category", "top", "left", "bottom", "right"])
        for scene in scenes:
            for obj in scene.objects:
                writer.writerow(
                    [
                        image_name(settings, scene.index),
                        scene.topic or "",
                        CATEGORIES[obj.category].name,
                        *obj.box,
                    ]
                )
    with open(truth / "annotations.csv", "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["task_id", "image", "looked_at"])
        for row in looked:
            writer.writerow([row["task_id"], row["image"], " ".join(row["looked_at"])])


@dataclass(frozen=True)
class Annotation:
    """One annotator's record of one image, before it is written out."""

    task: Task
    image_index: int
    visited: list[int]  # indices into the scene's objects, first look first
    clicks: np.ndarray  # N x 3: x, y, order
    caption: str


@dataclass(frozen=True)
class World:
    """Everything the generator draws, before rendering and writing."""

    users: list[User]
    scenes: list[Scene]
    image_sets: list[list[int]]
    tasks: list[Task]
    annotations: list[Annotation]


STREAMS = ("users", "scenes", "tasks", "render", "annotations", "scan")
"""Seed streams, one per part; a new part goes last, so the others keep their numbers."""


def seed_streams(settings: GeneratorSettings) -> dict[str, np.random.SeedSequence]:
    """One independent seed per part of the generator, all from ``settings.seed``."""
    return dict(
        zip(STREAMS, np.random.SeedSequence(settings.seed).spawn(len(STREAMS)), strict=True)
    )


def draw_world(settings: GeneratorSettings) -> World:
    """Users, scenes, tasks and every annotation's clicks and caption (no pixels).

    Tests use it directly to check what the generative model plants (for instance that
    gaze carries the traits) without rendering a single image.
    """
    seeds = seed_streams(settings)
    user_scan, annotation_scan = seeds["scan"].spawn(2)
    users = make_users(
        settings, np.random.default_rng(seeds["users"]), np.random.default_rng(user_scan)
    )
    scenes = make_scenes(settings, np.random.default_rng(seeds["scenes"]))
    task_rng = np.random.default_rng(seeds["tasks"])
    image_sets = make_image_sets(settings, task_rng)
    tasks = assign_tasks(settings, image_sets, task_rng)
    annotations = []
    n_annotations = len(tasks) * settings.images_per_set
    streams = iter(seeds["annotations"].spawn(n_annotations))
    scan_streams = iter(annotation_scan.spawn(n_annotations))
    for task in tasks:
        user = users[task.user]
        for image_index in image_sets[task.image_set]:
            rng = np.random.default_rng(next(streams))
            scan_rng = np.random.default_rng(next(scan_streams))
            scene = scenes[image_index]
            visited = visit_order(user, scene, settings, rng)
            click_array = clicks(user, scene, visited, settings, rng, scan_rng)
            categories = [scene.objects[i].category for i in visited]
            text = caption(user, categories, settings.kind, scene.topic, settings.word_noise, rng)
            annotations.append(Annotation(task, image_index, visited, click_array, text))
    return World(users, scenes, image_sets, tasks, annotations)


def generate(settings: GeneratorSettings, root: str | Path) -> Path:
    """Write the dataset under ``root`` and return the path of its ``data.csv``."""
    root = Path(root)
    world = draw_world(settings)
    render_streams = seed_streams(settings)["render"].spawn(len(world.scenes))
    for scene, stream in zip(world.scenes, render_streams, strict=True):
        path = root / "ims" / image_name(settings, scene.index)
        path.parent.mkdir(parents=True, exist_ok=True)
        render(scene, settings, np.random.default_rng(stream)).save(
            path, format="JPEG", quality=settings.jpeg_quality
        )

    rows: list[list[str]] = []
    looked: list[dict] = []
    for record in world.annotations:
        task, user = record.task, world.users[record.task.user]
        scene = world.scenes[record.image_index]
        hm = bubble_map(
            record.clicks,
            settings.image_height,
            settings.image_width,
            settings.bubble_radius,
            settings.map_blur,
        )
        name = image_name(settings, record.image_index)
        stem = Path(name)
        map_file = root / "bv" / stem.parent / f"{stem.stem}_{task.task_id}.mat"
        map_file.parent.mkdir(parents=True, exist_ok=True)
        map_file.write_bytes(mat_bytes(hm, record.clicks))
        rows.append(
            [
                str(task.task_id),
                name,
                record.caption,
                format_personality(user.answers),
                user.user_id,
            ]
        )
        looked.append(
            {
                "task_id": task.task_id,
                "image": name,
                "looked_at": [CATEGORIES[scene.objects[i].category].name for i in record.visited],
            }
        )

    csv_path = root / "data.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["task_id", "image", "ad_msg", "personality", "mturker_id"])
        writer.writerows(rows)
    _write_truth(root, settings, world.users, world.scenes, looked)
    return csv_path
