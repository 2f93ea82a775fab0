from __future__ import annotations

import pytest

from s2d_assets.config.tasks import CoinFlipSpec, LastLetterSpec
from s2d_assets.tasks import EVAL, TRAIN, build_task
from s2d_assets.tasks.last_letter import TEMPLATE, concatenate_last_letters

LAST_LETTER = LastLetterSpec(kind="last_letter", n_words=2, train_size=20, eval_size=10, seed=3)
COIN_FLIP = CoinFlipSpec(kind="coin_flip", n_people=3, train_size=20, eval_size=10, seed=3)


def test_last_letter_example_from_the_paper() -> None:
    assert (
        TEMPLATE.format(words="Elon Musk") == 'Take the last letters of the words in "Elon Musk" and concatenate them.'
    )
    assert concatenate_last_letters(["Elon", "Musk"]) == "nk"


@pytest.mark.parametrize("spec", [LAST_LETTER, COIN_FLIP])
def test_inputs_are_reproducible_and_splits_disjoint(spec) -> None:  # type: ignore[no-untyped-def]
    first, second = build_task(spec).build_inputs(), build_task(spec).build_inputs()
    assert first == second
    assert [i.split for i in first].count(TRAIN) == 20 and [i.split for i in first].count(EVAL) == 10
    assert len({i.prompt for i in first}) == 30
    other_seed = build_task(spec.model_copy(update={"seed": 4})).build_inputs()
    assert [i.prompt for i in other_seed] != [i.prompt for i in first]


def test_last_letter_references_match_the_words() -> None:
    for item in build_task(LAST_LETTER).build_inputs():
        words = item.meta["words"]
        assert f'"{" ".join(words)}"' in item.prompt
        assert item.reference == "".join(w[-1] for w in words).lower()


def test_coin_flip_reference_is_parity_of_flips() -> None:
    items = build_task(COIN_FLIP).build_inputs()
    for item in items:
        assert item.prompt.startswith("A coin is heads up.") and item.prompt.endswith("Is the coin still heads up?")
        flips = item.prompt.count(" flips the coin.")
        assert item.reference == ("yes" if flips % 2 == 0 else "no")
    assert {i.reference for i in items} == {"yes", "no"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nk", "nk"),
        ("NK.", "nk"),
        ('The last letters are "n" and "k", so the answer is "nk".', "nk"),
        ("Elon ends in n and Musk ends in k. The answer is nk.", "nk"),
        ("**Answer:** nk", "nk"),
        ("I cannot help with that.", None),
    ],
)
def test_last_letter_parsing(text: str, expected: str | None) -> None:
    task = build_task(LAST_LETTER)
    assert task.parse_answer(text, {"words": ["Elon", "Musk"], "n_words": 2}) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Yes", "yes"),
        ("No.", "no"),
        ("Ann flips it, so it is tails up; Bob flips it back. So yes, it is still heads up.", "yes"),
        ("The coin is not heads up.", "no"),
        ("The coin is still heads up.", "yes"),
        ("After two flips... the answer is no", "no"),
        ("I am not sure.", None),
    ],
)
def test_coin_flip_parsing(text: str, expected: str | None) -> None:
    assert build_task(COIN_FLIP).parse_answer(text, {}) == expected


def test_scoring_is_case_insensitive_and_rejects_missing() -> None:
    task = build_task(LAST_LETTER)
    assert task.is_correct("NK", "nk")
    assert not task.is_correct(None, "nk")
    assert not task.is_correct("kn", "nk")
