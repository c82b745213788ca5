"""The rule for "many events vanished at once": then nothing is cancelled and staff are asked."""

from __future__ import annotations

import pytest

from scheduling.calendar_sync import is_mass


@pytest.mark.parametrize(
    ("vanished", "watched", "mass"),
    [
        (1, 1, False),  # the specialist deleted their only visit
        (1, 3, False),
        (2, 40, False),
        (2, 10, True),  # 20 % of the calendar
        (3, 100, True),
        (0, 5, False),
    ],
)
def test_one_deletion_is_the_specialist_many_at_once_are_a_question(vanished: int, watched: int, mass: bool) -> None:
    assert is_mass(vanished, watched) is mass
