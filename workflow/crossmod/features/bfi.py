"""The BFI-10 personality survey as the cross_mod release stores it.

The release keeps the ten answers (1 = disagree strongly ... 5 = agree strongly) in
a fixed item order. Each item measures one Big Five trait, half of them reversed;
the keying below is the standard BFI-10 scoring (Rammstedt & John, 2007).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TRAITS: tuple[str, ...] = ("E", "A", "C", "N", "O")
"""Big Five traits: extraversion, agreeableness, conscientiousness, neuroticism, openness."""


@dataclass(frozen=True)
class Item:
    name: str
    trait: str
    sign: int  # +1: agreeing means high on the trait; -1: reversed item


ITEMS: tuple[Item, ...] = (
    Item("reserved", "E", -1),
    Item("trusting", "A", +1),
    Item("lazy", "C", -1),
    Item("relaxed", "N", -1),
    Item("artistic", "O", -1),  # "has few artistic interests"
    Item("outgoing", "E", +1),
    Item("fault", "A", -1),  # "tends to find fault with others"
    Item("job", "C", +1),  # "does a thorough job"
    Item("nervous", "N", +1),
    Item("imagination", "O", +1),
)
ITEM_NAMES: tuple[str, ...] = tuple(item.name for item in ITEMS)
COLUMNS: tuple[str, ...] = tuple(f"bfi_{name}" for name in ITEM_NAMES)

_SEPARATORS = re.compile(r"[\s,;]+")


class PersonalityFormatError(ValueError):
    """A personality string that is not ten integers in 1..5."""


def parse_personality(text: str) -> tuple[int, ...]:
    """Parse a release personality string such as ``"[2 4 3 1 5 4 2 5 1 4]"``.

    Commas and extra spaces are accepted; anything else raises
    :class:`PersonalityFormatError` with a message a person can act on.
    """
    body = text.strip()
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1]
    tokens = [tok for tok in _SEPARATORS.split(body.strip()) if tok]
    if len(tokens) != len(ITEMS):
        raise PersonalityFormatError(
            f"personality {text!r} has {len(tokens)} answers, expected {len(ITEMS)}"
        )
    answers = []
    for tok in tokens:
        if not re.fullmatch(r"[+-]?\d+", tok):
            raise PersonalityFormatError(f"personality {text!r}: {tok!r} is not an integer")
        value = int(tok)
        if not 1 <= value <= 5:
            raise PersonalityFormatError(f"personality {text!r}: {value} is outside 1..5")
        answers.append(value)
    return tuple(answers)


def format_personality(answers: tuple[int, ...] | list[int]) -> str:
    """The release's own spelling: ``[a b c ...]``."""
    return "[" + " ".join(str(int(a)) for a in answers) + "]"


def trait_scores(answers: tuple[int, ...] | list[int]) -> dict[str, float]:
    """Mean keyed score per trait on the 1..5 scale (reversed items as 6 - answer)."""
    per_trait: dict[str, list[int]] = {t: [] for t in TRAITS}
    for item, answer in zip(ITEMS, answers, strict=True):
        per_trait[item.trait].append(answer if item.sign > 0 else 6 - answer)
    return {t: sum(v) / len(v) for t, v in per_trait.items()}
