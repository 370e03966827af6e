"""Comparing two runs' outputs where only float arithmetic may differ.

Batching, a different thread count or another machine can change a probability in its last bits
(an embedder's sums depend on its batch's shape) while every label, mask and verdict stays the
same. :func:`split_numbers` separates the two, so a test asserts the words exactly and the
numbers to a tolerance.
"""

from __future__ import annotations

from typing import Any

__all__ = ["NUMBER", "split_numbers"]

NUMBER = "<number>"
"""What :func:`split_numbers` puts where a float was."""


def split_numbers(value: Any) -> tuple[Any, list[float]]:
    """``value`` (nested dicts, lists, tuples) with every float replaced by :data:`NUMBER`, and
    the floats in the order they were met."""
    numbers: list[float] = []

    def walk(v: Any) -> Any:
        if isinstance(v, float):
            numbers.append(v)
            return NUMBER
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [walk(x) for x in v]
        return v

    return walk(value), numbers
