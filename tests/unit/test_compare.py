"""split_numbers: two runs' outputs compared word for word and number by number."""

from __future__ import annotations

from shoal.testing import split_numbers
from shoal.testing.compare import NUMBER


def test_floats_are_taken_out_in_order_and_everything_else_stays() -> None:
    output = {"label": "urgent", "probs": {"urgent": 0.75, "routine": 0.25},
              "entities": [("PERSON", 3, 8, 0.85)], "count": 2, "ok": True}
    shape, numbers = split_numbers(output)
    assert numbers == [0.75, 0.25, 0.85]
    assert shape == {"label": "urgent", "probs": {"urgent": NUMBER, "routine": NUMBER},
                     "entities": [["PERSON", 3, 8, NUMBER]], "count": 2, "ok": True}


def test_a_changed_word_shows_in_the_shape_a_changed_number_does_not() -> None:
    a, _ = split_numbers({"masked": "Hi [NAME]", "p": 0.5})
    b, _ = split_numbers({"masked": "Hi [NAME]", "p": 0.5000001})
    c, _ = split_numbers({"masked": "Hi Maria", "p": 0.5})
    assert a == b and a != c
