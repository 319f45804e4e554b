"""STYLE (SPEC 4, Eq. 2): positives share the user, negatives do not.

Networks: ``style_{tg,gp,tp}`` (per task), ``style_sub_{gp,tp}`` (with the content
subset: OURS's style part for personality tasks) and ``joint_style`` (every pair; a
term shared by two pairs, such as gaze->gaze, counts once).
"""

from __future__ import annotations

from crossmod.methods import linear
from crossmod.methods.content import subset_networks
from crossmod.methods.registry import Method, pair_networks
from crossmod.methods.terms import Term


def terms(x: str, y: str) -> list[Term]:
    return [Term(x, y, "user"), Term(y, x, "user"), Term(x, x, "user"), Term(y, y, "user")]


METHOD = Method(
    name="style",
    label="STYLE",
    order=3,
    colour="#d62728",
    networks=pair_networks("style", terms, subset_networks("style", terms)),
    build=linear.build,
    loss=linear.triplet_loss,
    similarity=linear.negative_squared_distance,
    stackable=True,
)
