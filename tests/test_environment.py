"""The conda environment (for --sdm conda) pins exactly what requirements.txt pins."""

from __future__ import annotations

import yaml

from conftest import REPO


def _requirements() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


def _conda_pins() -> dict[str, str]:
    env = yaml.safe_load((REPO / "envs" / "crossmod.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return {name.lower(): version for name, version in (p.split("==") for p in pip)}


def test_every_requirement_is_pinned_exactly():
    pins = _requirements()
    assert pins["torch"] == "2.13.0"
    assert all(version for version in pins.values())


def test_conda_env_matches_requirements():
    assert _conda_pins() == _requirements()


def test_torchvision_and_timm_are_not_dependencies():
    assert not {"torchvision", "timm"} & set(_requirements())
