"""Settings are stated once: the schema holds every default; dataclasses mirror it exactly."""

from __future__ import annotations

import dataclasses
import re

import pytest
import yaml

from conftest import REPO
from crossmod.data.synthetic.settings import GeneratorSettings
from crossmod.evaluation.combine import CombineSettings
from crossmod.evaluation.identity import IdentitySettings
from crossmod.features.settings import ANNOTATION_KEYS, IMAGE_KEYS, LOCAL_KEYS, FeatureSettings
from crossmod.methods.deper import DeperSettings
from crossmod.methods.pvse import PVSESettings
from crossmod.settings import SettingsError, defaults, section_schema, settings_json
from crossmod.training.captions import CaptionSettings
from crossmod.training.loop import TrainSettings

SETTINGS = (
    TrainSettings,
    FeatureSettings,
    CombineSettings,
    IdentitySettings,
    GeneratorSettings,
    PVSESettings,
    DeperSettings,
    CaptionSettings,
)
RULES = "\n".join(p.read_text() for p in sorted((REPO / "rules").glob("*.smk")))


@pytest.mark.parametrize("cls", SETTINGS, ids=lambda c: c.__name__)
def test_every_schema_key_has_a_field_and_every_field_a_schema_key(cls):
    schema_keys = set(section_schema(cls.SECTION)["properties"])
    field_names = {f.name for f in dataclasses.fields(cls)}
    assert field_names | set(cls.WORKFLOW_KEYS) == schema_keys
    assert not field_names & set(cls.WORKFLOW_KEYS)
    # The keys the workflow consumes itself are read by the rules.
    for key in cls.WORKFLOW_KEYS:
        assert re.search(rf'\["{key}"\]', RULES), key


@pytest.mark.parametrize("cls", SETTINGS, ids=lambda c: c.__name__)
def test_defaults_are_written_in_the_schema_only(cls):
    for f in dataclasses.fields(cls):
        assert f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        assert "default" in section_schema(cls.SECTION)["properties"][f.name], f.name
        assert section_schema(cls.SECTION)["properties"][f.name].get("description") or (
            f.name
            in (
                "batch_size",
                "folds",
                "images_per_set",
                "annotators_per_set",
                "image_height",
                "image_width",
                "jpeg_quality",
                "max_objects",
            )
        ), f"{cls.SECTION}.{f.name} has no description"
    built = dataclasses.asdict(cls.from_config())
    expected = {k: v for k, v in defaults(cls.SECTION).items() if k not in cls.WORKFLOW_KEYS}
    assert built == {k: tuple(v) if isinstance(v, list) else v for k, v in expected.items()}


def test_bad_values_name_the_key():
    with pytest.raises(SettingsError, match=r"training.steps: -3 is less than the minimum of 1"):
        TrainSettings.from_config(steps=-3)
    with pytest.raises(SettingsError, match=r"training: Additional properties .*'stpes'"):
        TrainSettings.from_config({"stpes": 10})
    with pytest.raises(SettingsError, match=r"training.device: 'gpu' is not one of"):
        TrainSettings.from_config(device="gpu")
    with pytest.raises(SettingsError, match=r"combine.mode"):
        CombineSettings.from_json('{"mode": "product"}')


def test_jobs_get_exactly_their_keys():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    assert '"networks"' not in settings_json("training", {}, drop=("networks", "threads"))
    assert set(IMAGE_KEYS) | set(ANNOTATION_KEYS) | set(LOCAL_KEYS) | {"threads"} == set(
        section_schema("features")["properties"]
    )
    generator = config["datasets"]["synthetic-coco"]["generator"]
    coco = GeneratorSettings.from_json(settings_json("$defs/generator", generator))
    assert (coco.kind, coco.n_users, coco.n_images, coco.n_sets) == ("coco", 79, 363, 30)
    assert coco.images_per_set == 15  # the schema's default
