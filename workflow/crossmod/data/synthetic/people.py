"""Synthetic annotators: Big Five traits, BFI-10 answers and the style they imply.

Every behavioural parameter of a user is ``population value + style_strength *
(TRAIT_GAIN * trait part + idiosyncrasy * user-specific noise)``, where the trait part
is a fixed combination of the standard-normal traits scaled to unit variance. Gaze
(category preferences, thoroughness, click spread) and wording (lexicons, verbosity)
therefore carry their traits equally strongly relative to each user's own habits.
The scan habit (the direction a user clicks around an object in) is a habit alone,
unrelated to the traits, and shows only in the order of the clicks.
(An earlier version scaled the gaze parts by their raw loadings, about half the
wording's trait-to-habit ratio: the planted gaze-personality link was then too weak to
detect at the coco size even from the generator's own record of what each annotator
looked at; README, "Choices".) With ``style_strength = 0`` all users behave
identically (their survey answers still differ, but carry no information about how
they look or write): the null set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crossmod.data.synthetic.language import LEXICONS
from crossmod.data.synthetic.photos import CATEGORIES
from crossmod.data.synthetic.settings import GeneratorSettings
from crossmod.features.bfi import ITEMS, TRAITS

T = {trait: i for i, trait in enumerate(TRAITS)}
TRAIT_GAIN = 1.6  # sd of every trait part; the habit noise beside it has sd `idiosyncrasy`


def trait_part(weights: dict[str, float], z: np.ndarray) -> float:
    """``TRAIT_GAIN * w.z / |w|``: a unit-variance mix of the traits, times the gain."""
    w = np.array([weights.get(trait, 0.0) for trait in TRAITS])
    return float(TRAIT_GAIN * w @ z / np.linalg.norm(w))


@dataclass(frozen=True)
class User:
    user_id: str
    traits: np.ndarray  # (5,) latent E, A, C, N, O, standard normal
    answers: tuple[int, ...]  # BFI-10, 1..5
    category_preference: np.ndarray  # (n_categories,) added to the log-salience
    objects_visited: float  # mean number of objects explored per image
    clicks_per_object: float  # mean clicks on a visited object
    click_spread: float  # sd of clicks around an object's centre, in box half-sizes
    verbosity: float  # probability of mentioning one more looked-at object
    lexicon_use: dict[str, float]  # per style lexicon: probability a caption uses it
    word_weights: dict[str, np.ndarray]  # per lexicon and per category synonym list: habits
    scan_direction: float = 0.0  # radians: the direction this user clicks around an object in
    scan_habit: float = 0.0  # probability that an object's clicks follow scan_direction


def bfi_answers(traits: np.ndarray, noise: float, rng: np.random.Generator) -> tuple[int, ...]:
    """Standard BFI-10 keying: 3 + sign * trait + noise, rounded and clipped to 1..5."""
    raw = [3 + item.sign * 1.1 * traits[T[item.trait]] + rng.normal(0, noise) for item in ITEMS]
    return tuple(int(np.clip(np.rint(value), 1, 5)) for value in raw)


def _sigmoid(x: float) -> float:
    return float(1 / (1 + np.exp(-x)))


def make_users(
    settings: GeneratorSettings, rng: np.random.Generator, scan_rng: np.random.Generator
) -> list[User]:
    """The users; ``scan_rng`` draws their scan directions (the generator's "scan" stream,
    apart from ``rng`` so that the scan habit leaves every other draw as it was)."""
    s, idio = settings.style_strength, settings.idiosyncrasy
    loadings = np.array([c.loadings for c in CATEGORIES], dtype=float)  # (n_cat, 5)
    # Each category's trait part at unit variance: the loadings set its direction only.
    loadings = TRAIT_GAIN * loadings / np.linalg.norm(loadings, axis=1, keepdims=True)
    users = []
    for index in range(settings.n_users):
        z = rng.normal(size=len(TRAITS))
        answers = bfi_answers(z, settings.answer_noise, rng)
        preference = s * (loadings @ z + idio * rng.normal(size=len(CATEGORIES)))
        thorough = s * (trait_part({"C": 0.6, "O": 0.4}, z) + idio * rng.normal())
        spread = s * (trait_part({"E": 0.5, "C": -0.5}, z) + idio * rng.normal())
        wordy = s * (trait_part({"O": 0.8, "E": 0.4}, z) + idio * rng.normal())
        lexicon_use = {
            name: _sigmoid(
                lex.base + s * (trait_part({lex.trait: lex.sign}, z) + idio * rng.normal())
            )
            for name, lex in LEXICONS.items()
        }
        word_weights = {
            name: np.exp(s * 2.0 * rng.normal(size=len(lex.words)))
            for name, lex in LEXICONS.items()
        }
        for c, category in enumerate(CATEGORIES):
            word_weights[f"category:{c}"] = np.exp(s * 2.0 * rng.normal(size=len(category.words)))
        users.append(
            User(
                user_id=f"W{index:04d}",
                traits=z,
                answers=answers,
                category_preference=preference,
                objects_visited=float(np.clip(2.4 + 0.9 * thorough, 1.0, 6.0)),
                clicks_per_object=float(settings.clicks_per_object * np.exp(0.35 * thorough)),
                click_spread=float(np.clip(0.3 * np.exp(0.35 * spread), 0.15, 0.6)),
                verbosity=_sigmoid(0.3 + wordy),
                lexicon_use=lexicon_use,
                word_weights=word_weights,
                scan_direction=float(scan_rng.uniform(0.0, 2 * np.pi)),
                scan_habit=float(min(1.0, s * settings.scan_habit)),
            )
        )
    return users
