import pytest

from crossmod.features.bfi import (
    ITEM_NAMES,
    PersonalityFormatError,
    format_personality,
    parse_personality,
    trait_scores,
)


def test_item_order_is_the_release_order():
    assert ITEM_NAMES == (
        "reserved",
        "trusting",
        "lazy",
        "relaxed",
        "artistic",
        "outgoing",
        "fault",
        "job",
        "nervous",
        "imagination",
    )


def test_parse_release_string_and_commas():
    assert parse_personality("[2 4 3 1 5 4 2 5 1 4]") == (2, 4, 3, 1, 5, 4, 2, 5, 1, 4)
    assert parse_personality(" [1, 1, 1, 1, 1, 5, 5, 5, 5, 5] ") == (1,) * 5 + (5,) * 5
    assert format_personality((2, 4, 3, 1, 5, 4, 2, 5, 1, 4)) == "[2 4 3 1 5 4 2 5 1 4]"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("[1 2 3]", "has 3 answers"),
        ("[1 2 3 4 5 1 2 3 4 6]", "6 is outside 1..5"),
        ("[1 2 3 4 5 1 2 3 4 x]", "'x' is not an integer"),
        ("", "has 0 answers"),
    ],
)
def test_bad_personality_strings(text, fragment):
    with pytest.raises(PersonalityFormatError, match=fragment):
        parse_personality(text)


def test_trait_scores_use_reversed_keying():
    # reserved=1 (reversed E -> 5), outgoing=5 -> E = 5; trusting=5, fault=1 -> A = 5
    answers = (1, 5, 3, 3, 3, 5, 1, 3, 3, 3)
    scores = trait_scores(answers)
    assert scores["E"] == 5.0
    assert scores["A"] == 5.0
    assert scores["C"] == 3.0
    # lazy=5 (reversed -> 1), job=1 -> C = 1
    assert trait_scores((3, 3, 5, 3, 3, 3, 3, 1, 3, 3))["C"] == 1.0
