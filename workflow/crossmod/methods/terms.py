"""A triplet term, as data: what the engine in ``crossmod.methods.triplet`` evaluates.

A term names the anchor modality, the other modality, the grouping key that defines
positives (``image``, ``user`` or ``user_image``) and how negatives are used (``all``
or ``semihard``). Methods declare their losses as tuples of terms; this module imports
no ML library, so the registry (read while Snakemake parses) can hold them.
"""

from __future__ import annotations

from dataclasses import dataclass

KEYS = ("image", "user", "user_image")
MININGS = ("all", "semihard")


@dataclass(frozen=True)
class Term:
    anchor: str
    other: str
    key: str
    mining: str = "all"

    def __post_init__(self) -> None:
        if self.key not in KEYS:
            raise ValueError(f"unknown key {self.key!r}; use one of {KEYS}")
        if self.mining not in MININGS:
            raise ValueError(f"unknown mining {self.mining!r}; use one of {MININGS}")

    def __str__(self) -> str:
        return f"{self.anchor}->{self.other}|{self.key}|{self.mining}"
