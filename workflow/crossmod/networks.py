"""Every network the workflow trains, as data: its encoders and its loss terms.

Per-task networks (one pair of modalities each):

- ``base_{pair}``   BASE, Eq. 3 (VSE++ as adapted to ads): semi-hard, key user+image;
- ``style_{pair}``  STYLE, Eq. 2: key user;
- ``content_tg``    CONTENT, Eq. 1, on {text, gaze} with the image anchor v: key image;
- ``veit_{pair}``   the bilinear baseline (our adaptation of Veit et al. 2018);
- ``base_sub_{pair}``, ``style_sub_{pair}`` for the personality pairs {g,p}, {t,p}: BASE
  or STYLE plus the "subset of content constraints" on the non-personality modality x,
  ``[d(x*_i, x*_i) - d(x*_i, x*_j) + a]+ + [d(v_i, x*_i) - d(v_i, x*_j) + a]+``; they
  are the base and style parts of OURS for personality tasks.

Joint networks (encoders for gaze, text and personality in one space, trained on every
pair): ``joint_base``, ``joint_style``, ``joint_veit``. The joint OURS combines them with
``content_tg`` (CONTENT involves only t, g and v, so a joint content network would be
the same network).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

from crossmod.triplet import Term

PAIRS: dict[str, tuple[str, str]] = {
    "tg": ("text", "gaze"),
    "gp": ("gaze", "personality"),
    "tp": ("text", "personality"),
}
SHORT = {"gaze": "g", "text": "t", "personality": "p", "image": "v"}
RETRIEVAL_MODALITIES = ("gaze", "text", "personality")


def base_terms(x: str, y: str) -> list[Term]:
    return [Term(x, y, "user_image", "semihard"), Term(y, x, "user_image", "semihard")]


def style_terms(x: str, y: str) -> list[Term]:
    return [Term(x, y, "user"), Term(y, x, "user"), Term(x, x, "user"), Term(y, y, "user")]


def content_terms(x: str, y: str) -> list[Term]:
    return [
        Term(x, y, "image"),
        Term(y, x, "image"),
        Term(x, x, "image"),
        Term(y, y, "image"),
        Term("image", x, "image"),
        Term("image", y, "image"),
    ]


def content_subset_terms(x: str) -> list[Term]:
    return [Term(x, x, "image"), Term("image", x, "image")]


@dataclass(frozen=True)
class NetworkSpec:
    name: str
    method: str  # base, style, content, veit (what the tables call it)
    setup: str  # per-task or joint
    modalities: tuple[str, ...]  # encoders (retrieval modalities first)
    terms: tuple[Term, ...]  # empty for the bilinear VEIT
    pair: str  # tg, gp, tp, or "all"
    content_subset: bool = False

    @property
    def bilinear(self) -> bool:
        return self.method == "veit"

    @property
    def retrieval_modalities(self) -> tuple[str, ...]:
        return tuple(m for m in self.modalities if m in RETRIEVAL_MODALITIES)

    @property
    def tasks(self) -> tuple[str, ...]:
        """Tasks this network answers: both directions of each of its retrieval pairs."""
        out = []
        for x, y in combinations(self.retrieval_modalities, 2):
            out += [f"{SHORT[x]}2{SHORT[y]}", f"{SHORT[y]}2{SHORT[x]}"]
        return tuple(out)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(sorted({t.key for t in self.terms})) or ("user_image",)


def _non_personality(pair: tuple[str, str]) -> str:
    return next(m for m in pair if m != "personality")


def build_networks() -> dict[str, NetworkSpec]:
    nets: dict[str, NetworkSpec] = {}

    def add(spec: NetworkSpec) -> None:
        nets[spec.name] = spec

    for pair, (x, y) in PAIRS.items():
        add(NetworkSpec(f"base_{pair}", "base", "per-task", (x, y), tuple(base_terms(x, y)), pair))
        add(
            NetworkSpec(
                f"style_{pair}", "style", "per-task", (x, y), tuple(style_terms(x, y)), pair
            )
        )
        add(NetworkSpec(f"veit_{pair}", "veit", "per-task", (x, y), (), pair))
        if "personality" in (x, y):
            sub = content_subset_terms(_non_personality((x, y)))
            for method, terms in (("base", base_terms(x, y)), ("style", style_terms(x, y))):
                add(
                    NetworkSpec(
                        f"{method}_sub_{pair}",
                        method,
                        "per-task",
                        (x, y, "image"),
                        tuple(terms + sub),
                        pair,
                        content_subset=True,
                    )
                )
    add(
        NetworkSpec(
            "content_tg",
            "content",
            "per-task",
            ("text", "gaze", "image"),
            tuple(content_terms("text", "gaze")),
            "tg",
        )
    )
    pairs = list(PAIRS.values())
    add(
        NetworkSpec(
            "joint_base",
            "base",
            "joint",
            RETRIEVAL_MODALITIES,
            tuple(t for x, y in pairs for t in base_terms(x, y)),
            "all",
        )
    )
    add(
        NetworkSpec(
            "joint_style",
            "style",
            "joint",
            RETRIEVAL_MODALITIES,
            tuple(dict.fromkeys(t for x, y in pairs for t in style_terms(x, y))),
            "all",
        )
    )
    add(NetworkSpec("joint_veit", "veit", "joint", RETRIEVAL_MODALITIES, (), "all"))
    return nets


NETWORKS: dict[str, NetworkSpec] = build_networks()
