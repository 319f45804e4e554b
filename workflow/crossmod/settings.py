"""Settings stated once: the config schema holds every default and its documentation.

``workflow/schemas/config.schema.yaml`` is the only place a default is written. Snakemake
validates the whole config against it; each job receives its section of the config as
one JSON argument, and :meth:`Settings.from_config` fills the schema's defaults,
validates the result against the same schema and builds a frozen dataclass. The
dataclasses therefore declare fields and types but no defaults, and argparse never
repeats one. ``tests/test_settings.py`` fails if a key exists in the schema and not in
its dataclass, or the other way round.

This module imports no ML library: the Snakefile uses it while parsing.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Self

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"


class SettingsError(ValueError):
    """A setting is unknown, missing or out of its range; the message names the key."""


@cache
def _schema() -> dict:
    import yaml

    return yaml.safe_load(SCHEMA.read_text())


def section_schema(section: str) -> dict:
    """The schema of a config section: ``training``, or a definition: ``$defs/generator``."""
    node = _schema()
    for part in section.split("/"):
        node = node["properties"][part] if part in node.get("properties", {}) else node[part]
    return node


def defaults(section: str) -> dict[str, Any]:
    """Every default the schema states for the section's keys."""
    properties = section_schema(section).get("properties", {})
    return {k: copy.deepcopy(v["default"]) for k, v in properties.items() if "default" in v}


def complete(section: str, values: dict[str, Any] | None) -> dict[str, Any]:
    """The section with the schema's defaults filled in, validated against the schema."""
    from jsonschema import Draft202012Validator

    merged = defaults(section) | dict(values or {})
    schema = dict(section_schema(section), **{"$defs": _schema().get("$defs", {})})
    errors = sorted(Draft202012Validator(schema).iter_errors(merged), key=lambda e: list(e.path))
    if errors:
        where = section.removeprefix("$defs/")
        lines = [f"{'.'.join([where, *map(str, e.path)])}: {e.message}" for e in errors]
        raise SettingsError("invalid settings:\n  " + "\n  ".join(lines))
    return merged


def settings_json(section: str, values: dict[str, Any] | None, drop: tuple[str, ...] = ()) -> str:
    """The completed section as the one JSON argument a job receives (keys in ``drop`` left out)."""
    done = {k: v for k, v in complete(section, values).items() if k not in drop}
    return json.dumps(done, sort_keys=True)


@dataclass(frozen=True)
class Settings:
    """Base of every settings dataclass: a config section, read with the schema's defaults.

    ``SECTION`` names the schema section; ``WORKFLOW_KEYS`` are keys of that section
    that the workflow itself consumes (which networks to train, threads per job) and
    that therefore never reach the job.
    """

    SECTION: ClassVar[str]
    WORKFLOW_KEYS: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_config(cls, values: dict[str, Any] | None = None, **overrides: Any) -> Self:
        merged = complete(cls.SECTION, dict(values or {}) | overrides)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(merged) - known - set(cls.WORKFLOW_KEYS))
        if unknown:  # in the schema but not in the dataclass: a bug, not a user error
            raise SettingsError(f"{cls.__name__} has no field for {cls.SECTION}: {unknown}")
        chosen = {}
        for f in fields(cls):
            value = merged[f.name]
            chosen[f.name] = tuple(value) if isinstance(value, list) else value
        return cls(**chosen)

    @classmethod
    def from_json(cls, text: str) -> Self:
        value = json.loads(text)
        if not isinstance(value, dict):
            raise SettingsError(f"{cls.SECTION}: expected a JSON object, got {text[:80]!r}")
        return cls.from_config(value)
