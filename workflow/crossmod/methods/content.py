"""CONTENT (SPEC 4, Eq. 1), and the "subset of content constraints" OURS adds elsewhere.

CONTENT links text and gaze through the image: positives share the image (any
annotator), negatives do not, with the image anchor v in two of its six terms. Its one
network is ``content_tg``; CONTENT involves only t, g and v, so the joint OURS uses it
too. Personality has no content embedding: for the personality pairs, OURS's base and
style parts are BASE and STYLE trained with :func:`subset_terms` added on the
non-personality modality (:func:`subset_networks`).
"""

from __future__ import annotations

from collections.abc import Callable

from crossmod.methods import linear
from crossmod.methods.registry import PAIRS, Method, NetworkSpec
from crossmod.methods.terms import Term


def terms(x: str, y: str) -> list[Term]:
    return [
        Term(x, y, "image"),
        Term(y, x, "image"),
        Term(x, x, "image"),
        Term(y, y, "image"),
        Term("image", x, "image"),
        Term("image", y, "image"),
    ]


def subset_terms(x: str) -> list[Term]:
    """``[d(x*_i, x*_i) - d(x*_i, x*_j) + a]+ + [d(v_i, x*_i) - d(v_i, x*_j) + a]+``."""
    return [Term(x, x, "image"), Term("image", x, "image")]


def subset_networks(
    method: str, method_terms: Callable[[str, str], list[Term]]
) -> list[NetworkSpec]:
    """``{method}_sub_{gp,tp}``: the method's terms plus the content subset on x."""
    networks = []
    for pair, (x, y) in PAIRS.items():
        if "personality" not in (x, y):
            continue
        other = next(m for m in (x, y) if m != "personality")
        networks.append(
            NetworkSpec(
                f"{method}_sub_{pair}",
                method,
                "per-task",
                (x, y, "image"),
                pair,
                tuple(method_terms(x, y) + subset_terms(other)),
                content_subset=True,
            )
        )
    return networks


METHOD = Method(
    name="content",
    label="CONTENT",
    order=2,
    colour="#2ca02c",
    networks=(
        NetworkSpec(
            "content_tg",
            "content",
            "per-task",
            ("text", "gaze", "image"),
            "tg",
            tuple(terms("text", "gaze")),
        ),
    ),
    build=linear.build,
    loss=linear.triplet_loss,
    similarity=linear.negative_squared_distance,
    stackable=True,
)
