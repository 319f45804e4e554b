"""Known answers for DEPER: planted people are told apart, and the null set sits at chance.

Two small synthetic coco-like sets (40 users, 120 images; planted style and
``style_strength: 0``) go through the real pipeline in memory: generator -> strict
reader -> pretrained CNN -> DEPER's caches (conv cells, GloVe tokens, click
trajectories) -> user splits -> a short DEPER training per split -> few-shot
identification of the unseen test users, beside the untrained encoder and the
handcrafted features on the same draws (SPEC 10, ``crossmod.evaluation.fewshot``).

The null set is where the protocol is tested: its users behave identically, so any
identification above chance would be the encoder recognising images, not people
(README, DEPER: the image-set confound that ``centre: image`` removes).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from conftest import known_answer_release
from crossmod.data.splits import make_splits
from crossmod.evaluation.fewshot import identification, protocol_embeddings, t_interval
from crossmod.evaluation.identity import feature_sets
from crossmod.evaluation.subjects import handcrafted_rows
from crossmod.features.locals import local_features
from crossmod.features.settings import FeatureSettings
from crossmod.features.trajectories import trajectory_table
from crossmod.methods.deper import DeperSettings
from crossmod.training.subjects import Batches, embed, load_subject_data, train_subjects

# Its own target (`make test-subjects`, run by CI): it keeps `make test` under 15 minutes.
pytestmark = [pytest.mark.slow, pytest.mark.subjects]
N_SPLITS = 3
SHOTS = 3
SETTINGS = DeperSettings.from_config(steps=300, eval_every=100, shots=[SHOTS], draws=10)


def _dataset(tmp_path_factory, style_strength: float) -> dict:
    root = tmp_path_factory.mktemp(f"subjects{style_strength}")
    release = known_answer_release(
        root / "release",
        kind="coco",
        seed=5,
        n_users=40,
        n_images=120,
        n_sets=14,
        style_strength=style_strength,
    )
    annotations, images, maps = release.annotations, release.images, release.maps
    meta, arrays = release.meta, release.arrays
    features = FeatureSettings.from_config()
    names = {
        "annotations": "annotations.parquet",
        "locals": "locals.npz",
        "trajectories": "trajectories.npz",
        "splits": "users.csv",
    }
    paths = {key: root / name for key, name in names.items()}
    annotations.to_parquet(paths["annotations"])
    np.savez(paths["locals"], **local_features(annotations, maps, images, features))
    np.savez(paths["trajectories"], **trajectory_table(annotations, images, maps.shape[2:]))
    splits = make_splits(annotations["user"].tolist(), N_SPLITS, seed=0)
    splits.to_csv(paths["splits"], index=False)
    return {"paths": paths, "meta": meta, "arrays": arrays, "splits": splits}


def _top1(bundle: dict) -> dict[str, list[float]]:
    """S-shot top-1 per split of DEPER, the untrained encoder and the handcrafted features."""
    paths = {k: str(v) for k, v in bundle["paths"].items()}
    scores: dict[str, list[float]] = {"DEPER": [], "random": [], "handcrafted": []}
    for split in range(N_SPLITS):
        data = load_subject_data(
            paths["annotations"], paths["locals"], paths["trajectories"], paths["splits"], split
        )
        test = data.part == "test"
        for name, settings in (("DEPER", SETTINGS), ("random", replace(SETTINGS, steps=0))):
            model = train_subjects(data, settings, split).model
            z = embed(model, Batches(data, "cpu"), np.arange(len(data.user)))
            compared = protocol_embeddings(z, data.image_name, settings.centre)[test]
            row = identification(
                compared, data.user[test], np.unique(data.user[test]), (SHOTS,), 10, 0, split
            )[0]
            scores[name].append(row["top1"])
    features = feature_sets(bundle["meta"], bundle["arrays"])["both"]
    hand = handcrafted_rows(bundle["meta"], features, bundle["splits"], SETTINGS)
    scores["handcrafted"] = [r["top1"] for r in hand]
    scores["chance"] = [row["chance_top1"]]
    return scores


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return _top1(_dataset(tmp_path_factory, 1.0))


@pytest.fixture(scope="module")
def null(tmp_path_factory):
    return _top1(_dataset(tmp_path_factory, 0.0))


def test_deper_tells_planted_people_apart(planted):
    print("planted", planted)
    chance = planted["chance"][0]
    deper = np.array(planted["DEPER"])
    assert deper.mean() > 2.5 * chance, planted
    # Training adds to what an untrained encoder's embedding already separates.
    assert (deper > np.array(planted["random"])).all(), planted


@pytest.mark.parametrize("method", ["DEPER", "random", "handcrafted"])
def test_null_set_sits_at_chance(null, method):
    print("null", null)
    chance = null["chance"][0]
    values = np.array(null[method])
    mean, low, high = t_interval(values)
    # Chance inside the 95% interval over splits, and no split far from it.
    assert low <= chance <= high or abs(mean - chance) < 0.03, (method, null)
    assert np.abs(values - chance).max() < 0.08, (method, null)
