"""BASE (SPEC 4, Eq. 3: VSE++ as adapted to ads).

Positives are the same user's other-modality sample on the same image (key
user+image); negatives are the other samples in the batch, mined semi-hard as
TensorFlow does. Networks: ``base_{tg,gp,tp}`` (per task), ``base_sub_{gp,tp}`` (with
the content subset on the non-personality modality: OURS's base part for personality
tasks) and ``joint_base`` (every pair of gaze, text and personality in one space).
"""

from __future__ import annotations

from crossmod.methods import linear
from crossmod.methods.content import subset_networks
from crossmod.methods.registry import Method, pair_networks
from crossmod.methods.terms import Term


def terms(x: str, y: str) -> list[Term]:
    return [Term(x, y, "user_image", "semihard"), Term(y, x, "user_image", "semihard")]


METHOD = Method(
    name="base",
    label="BASE",
    order=1,
    colour="#ff7f0e",
    networks=pair_networks("base", terms, subset_networks("base", terms)),
    build=linear.build,
    loss=linear.triplet_loss,
    similarity=linear.negative_squared_distance,
    stackable=True,
)
