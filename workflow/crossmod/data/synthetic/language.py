"""Caption wording: the style lexicons and the caption grammar.

A caption names the objects the annotator looked at, in the order looked at, with
the annotator's habitual words. Each lexicon is tied to one Big Five trait (SPEC
section 2): extraversion chooses active verbs over quiet ones, agreeableness brings
family and friends, neuroticism self-focused phrasing, openness aesthetic adjectives
and conscientiousness practical, analytical words. Every word is lower-case and in
the GloVe 6B vocabulary (a test checks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from crossmod.data.synthetic.people import User

from crossmod.data.synthetic.photos import CATEGORIES


@dataclass(frozen=True)
class Lexicon:
    trait: str
    sign: int  # +1: high trait -> used more often
    base: float  # logit of the population rate of use
    words: tuple[str, ...]
    template: str  # "{word}" is replaced by a chosen word


LEXICONS: dict[str, Lexicon] = {
    "active": Lexicon(
        "E",
        +1,
        0.0,
        ("party", "dance", "celebrate", "explore", "play", "compete"),
        "it makes me want to {word}",
    ),
    "quiet": Lexicon(
        "E",
        -1,
        0.0,
        ("calm", "quiet", "peaceful", "relaxing", "gentle", "simple"),
        "it feels {word}",
    ),
    "social": Lexicon(
        "A",
        +1,
        -0.3,
        ("family", "friends", "kids", "children", "parents", "neighbors"),
        "for my {word}",
    ),
    "self": Lexicon(
        "N",
        +1,
        -0.3,
        ("worry", "fear", "need", "doubt", "stress", "panic"),
        "i {word} about myself",
    ),
    "aesthetic": Lexicon(
        "O",
        +1,
        -0.3,
        ("beautiful", "elegant", "artistic", "colorful", "stunning", "vivid"),
        "{word}",
    ),
    "practical": Lexicon(
        "C",
        +1,
        -0.3,
        ("practical", "useful", "efficient", "reliable", "affordable", "sensible"),
        "it is {word}",
    ),
}

TOPICS: dict[str, tuple[str, str]] = {
    # topic: (action, what the ad sells)
    "alcohol": ("drink", "beer"),
    "travel": ("visit", "place"),
    "beauty": ("buy", "product"),
    "animal rights": ("support", "cause"),
}


def _pick(weights: np.ndarray, noise: float, rng: np.random.Generator) -> int:
    """An index drawn from the user's habits, or uniformly with probability ``noise``."""
    if rng.random() < noise:
        return int(rng.integers(len(weights)))
    return int(rng.choice(len(weights), p=weights / weights.sum()))


def _uses(user: User, name: str, noise: float, rng: np.random.Generator) -> bool:
    rate = user.lexicon_use[name]
    if rng.random() < noise:
        rate = 0.5
    return bool(rng.random() < rate)


def _phrase(user: User, name: str, noise: float, rng: np.random.Generator) -> str:
    lex = LEXICONS[name]
    word = lex.words[_pick(user.word_weights[name], noise, rng)]
    return lex.template.format(word=word)


def caption(
    user: User,
    looked_at: list[int],
    kind: str,
    topic: str | None,
    noise: float,
    rng: np.random.Generator,
) -> str:
    """One caption for the categories ``looked_at`` (in gaze order), in the user's words."""
    n_mention = 1
    while n_mention < min(len(looked_at), 3) and rng.random() < user.verbosity:
        n_mention += 1
    objects = []
    for c in looked_at[:n_mention]:
        noun = CATEGORIES[c].words[_pick(user.word_weights[f"category:{c}"], noise, rng)]
        if _uses(user, "aesthetic", noise, rng):
            noun = f"{_phrase(user, 'aesthetic', noise, rng)} {noun}"
        objects.append(noun)
    article = "the" if kind == "ads" else "a"
    named = f" and {article} ".join(objects)
    mood = "active" if _uses(user, "active", noise, rng) else "quiet"
    extras = [_phrase(user, mood, noise, rng)]
    for name in ("social", "self", "practical"):
        if _uses(user, name, noise, rng):
            extras.append(_phrase(user, name, noise, rng))
    rest = " and ".join(extras)
    if kind == "ads":
        assert topic is not None
        action, thing = TOPICS[topic]
        return f"i should {action} this {thing} because of the {named} and {rest}"
    return f"a {named} where {rest}"
