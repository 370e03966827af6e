"""Named regular expressions with negation: what red-flag packs and forbidden-claims packs share.

A pack lists ``{name, pattern}`` entries and one ``negation`` block; :class:`PatternMatcher`
names the entries with at least one match that is not negated. A match is negated when a
``before`` cue is among the ``before_words`` words before it in its clause, or an ``after`` cue
is in the rest of its clause (``clause_split`` says where clauses end; default: the whole text
is one). Each kind of pack chooses how its text and patterns are normalised.

:func:`load_once` keeps one compiled pack per file for the process.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["Negation", "PatternEntry", "PatternMatcher", "load_once", "valid_regex"]

T = TypeVar("T")


def valid_regex(value: str | None) -> str | None:
    """A pydantic validator body: ``value`` unchanged if it compiles."""
    if value is not None:
        try:
            re.compile(value, re.IGNORECASE)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class PatternEntry(_Strict):
    """One entry: a name the verdict or trace shows and a regular expression."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    pattern: str = Field(min_length=1)

    _check = field_validator("pattern")(valid_regex)


class Negation(_Strict):
    """When a match does not count."""

    before_words: int = Field(default=4, ge=0)
    before: str | None = None
    """Cues that negate a match among the ``before_words`` words before it in its clause."""
    after: str | None = None
    """Cues that negate a match in the rest of its clause ("is gone", "went away")."""
    clause_split: str | None = None
    """Where a clause ends; default: the whole text is one clause."""

    _check = field_validator("before", "after", "clause_split")(valid_regex)


def _plain(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


class PatternMatcher:
    """Compiled entries and negation: :meth:`fired` names the entries a text matches.

    ``compile`` turns an entry's or a cue's pattern into a regex and ``normalise`` prepares the
    text (both default to case-insensitive and as is)."""

    def __init__(self, entries: Sequence[PatternEntry], negation: Negation, *,
                 compile: Callable[[str], re.Pattern[str]] = _plain,
                 normalise: Callable[[str], str] = str.lower) -> None:
        self._entries = [(e.name, compile(e.pattern)) for e in entries]
        self._normalise = normalise
        self._before_words = negation.before_words
        self._before = compile(negation.before) if negation.before else None
        self._after = compile(negation.after) if negation.after else None
        self._split = (re.compile(negation.clause_split, re.IGNORECASE)
                       if negation.clause_split else None)

    def _negated(self, text: str, start: int, end: int) -> bool:
        if self._before is not None and self._before_words:
            clause = self._split.split(text[:start])[-1] if self._split else text[:start]
            if self._before.search(" ".join(clause.split()[-self._before_words:])):
                return True
        if self._after is None:
            return False
        rest = self._split.split(text[end:])[0] if self._split else text[end:]
        return bool(self._after.search(rest))

    def fired(self, text: str) -> list[str]:
        """Names of the entries with at least one match that is not negated, in pack order."""
        t = self._normalise(text)
        return [name for name, rx in self._entries
                if any(not self._negated(t, m.start(), m.end()) for m in rx.finditer(t))]


_loaded: dict[tuple[str, Hashable], Any] = {}
_lock = threading.Lock()


def load_once(kind: str, key: Hashable, build: Callable[[], T]) -> T:
    """The one ``build()`` result for ``(kind, key)`` in this process (a compiled pack per
    file). Two threads asking at once may both build; the first one stored wins."""
    with _lock:
        found = _loaded.get((kind, key))
    if found is not None:
        return found  # type: ignore[no-any-return]
    made = build()
    with _lock:
        return _loaded.setdefault((kind, key), made)  # type: ignore[no-any-return]
