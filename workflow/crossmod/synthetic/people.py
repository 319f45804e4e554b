"""Synthetic annotators: Big Five traits, BFI-10 answers and the style they imply.

Every behavioural parameter of a user is ``population value + style_strength *
(trait part + idiosyncrasy * user-specific noise)``. With ``style_strength = 0`` all
users behave identically (their survey answers still differ, but carry no
information about how they look or write): the null set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crossmod.bfi import ITEMS, TRAITS
from crossmod.synthetic.language import LEXICONS
from crossmod.synthetic.photos import CATEGORIES
from crossmod.synthetic.settings import GeneratorSettings

T = {trait: i for i, trait in enumerate(TRAITS)}


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


def bfi_answers(traits: np.ndarray, noise: float, rng: np.random.Generator) -> tuple[int, ...]:
    """Standard BFI-10 keying: 3 + sign * trait + noise, rounded and clipped to 1..5."""
    raw = [3 + item.sign * 1.1 * traits[T[item.trait]] + rng.normal(0, noise) for item in ITEMS]
    return tuple(int(np.clip(np.rint(value), 1, 5)) for value in raw)


def _sigmoid(x: float) -> float:
    return float(1 / (1 + np.exp(-x)))


def make_users(settings: GeneratorSettings, rng: np.random.Generator) -> list[User]:
    s, idio = settings.style_strength, settings.idiosyncrasy
    loadings = np.array([c.loadings for c in CATEGORIES], dtype=float)  # (n_cat, 5)
    users = []
    for index in range(settings.n_users):
        z = rng.normal(size=len(TRAITS))
        answers = bfi_answers(z, settings.answer_noise, rng)
        preference = s * 1.5 * (loadings @ z + idio * rng.normal(size=len(CATEGORIES)))
        thorough = s * (0.6 * z[T["C"]] + 0.4 * z[T["O"]] + idio * rng.normal())
        spread = s * (0.5 * z[T["E"]] - 0.5 * z[T["C"]] + idio * rng.normal())
        wordy = s * (0.8 * z[T["O"]] + 0.4 * z[T["E"]] + idio * rng.normal())
        lexicon_use = {
            name: _sigmoid(lex.base + s * (lex.sign * 1.6 * z[T[lex.trait]] + idio * rng.normal()))
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
            )
        )
    return users
