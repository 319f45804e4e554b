"""OURS (SPEC 4, Eq. 4): a weighted combination of the base, content and style embeddings.

It trains nothing itself; ``crossmod.evaluation.combine`` grid-searches its weights on
the validation pools. Which network serves as each part, for a setup and task
(:func:`parts_for`), follows one rule over the registry:

- per-task setup: the part's per-task network for the task's pair; for personality
  tasks, its network trained with the content subset (personality has no content
  embedding, so CONTENT has none and OURS combines base and style only);
- joint setup: the parts' joint networks, then, for a part without one (CONTENT
  involves only t, g and v), its per-task network for the pair.

The order of the parts is the order of the weight grid (its last tie-break).
"""

from __future__ import annotations

from crossmod.methods.registry import PAIRS, Method, registry

PARTS = ("base", "content", "style")
PERSONALITY_TASKS = ("g2p", "t2p", "p2g", "p2t")


def task_pair(task: str) -> str:
    """'g2t' -> 'tg': the key of the task's modality pair in PAIRS."""
    letters = set(task.split("2"))
    return next(pair for pair in PAIRS if set(pair) == letters)


def parts_for(setup: str, task: str) -> dict[str, str]:
    """Network name of each part (base, content, style) that OURS combines for a task."""
    if setup not in METHOD.combination_setups:
        raise ValueError(f"unknown setup {setup!r}")
    methods = registry()
    pair = task_pair(task)
    if setup == "per-task":
        found = {
            p: methods.find(p, setup, pair, task in PERSONALITY_TASKS) for p in METHOD.combines
        }
    else:  # joint networks first, then per-task networks of parts that have no joint one
        found = {p: methods.find(p, "joint", pair) for p in METHOD.combines}
        found = {p: s for p, s in found.items() if s is not None} | {
            p: methods.find(p, "per-task", pair) for p in METHOD.combines if found[p] is None
        }
    return {part: spec.name for part, spec in found.items() if spec is not None}


METHOD = Method(
    name="ours",
    label="OURS",
    order=4,
    colour="#9467bd",
    combines=PARTS,
    combination_setups=("per-task", "joint"),
)
