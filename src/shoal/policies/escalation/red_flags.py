"""Red-flag packs: phrases that make a message critical whatever a classifier says, with negation.

A pack is a YAML file (``red_flags: 1``), built in (``clinical_red_flags``) or a path::

    red_flags: 1
    name: clinical_red_flags
    flags:
      - {name: chest_pain, pattern: '\\bchest (?:pain|pressure)'}
    negation:
      before_words: 4                     # a cue among the 4 words before a match negates it
      before: '\\b(?:no|not|denies)\\b'
      after: '\\b(?:is gone|went away)\\b' # ... or one in the rest of its clause
      clause_split: '[.;!?\\n]|\\bbut\\b'

Matching (:meth:`RedFlagMatcher.fired`): the text is lower-cased and runs of one repeated letter
are collapsed ("woont" -> "wont"), in the text and in the patterns (a letter after a backslash is
left alone); a match counts unless a ``before`` cue is among the ``before_words`` words before it
in its clause, or an ``after`` cue is in the rest of its clause. Patterns run on the node's
working text, which a masker has already masked.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shoal.resources import RED_FLAG_PACKS, builtin_names, builtin_or_file
from shoal.yaml_source import load_yaml_model

__all__ = [
    "Negation",
    "RedFlag",
    "RedFlagMatcher",
    "RedFlagPack",
    "builtin_red_flag_names",
    "load_red_flags",
    "matcher_for",
    "normalise",
    "red_flags_path",
]

_REPEAT_TEXT = re.compile(r"([a-z])\1+")
_REPEAT_PATTERN = re.compile(r"(?<!\\)([a-z])\1+")


def normalise(text: str) -> str:
    """Lower-case, typographic apostrophes made plain, runs of one repeated letter collapsed."""
    return _REPEAT_TEXT.sub(r"\1", text.lower().replace("\u2019", "'"))


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(_REPEAT_PATTERN.sub(r"\1", pattern), re.IGNORECASE)


def _valid_regex(value: str | None) -> str | None:
    if value is not None:
        try:
            _compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class RedFlag(_Strict):
    """One red flag: a name the trace shows and a regular expression."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    pattern: str = Field(min_length=1)

    _check = field_validator("pattern")(_valid_regex)


class Negation(_Strict):
    """When a match does not count."""

    before_words: int = Field(default=4, ge=0)
    before: str | None = None
    """Cues that negate a match among the ``before_words`` words before it in its clause."""
    after: str | None = None
    """Cues that negate a match in the rest of its clause ("is gone", "went away")."""
    clause_split: str | None = None
    """Where a clause ends; default: the whole text is one clause."""

    _check = field_validator("before", "after", "clause_split")(_valid_regex)


class RedFlagPack(_Strict):
    """A red-flag pack file (``red_flags: 1``)."""

    red_flags: Literal[1]
    name: str = Field(min_length=1)
    description: str | None = None
    flags: list[RedFlag] = Field(min_length=1)
    negation: Negation = Field(default_factory=Negation)

    @model_validator(mode="after")
    def _unique(self) -> RedFlagPack:
        seen: set[str] = set()
        for flag in self.flags:
            if flag.name in seen:
                raise ValueError(f"red flag {flag.name!r} is defined twice")
            seen.add(flag.name)
        return self


def _refuse(data: dict[str, object]) -> str | None:
    if "red_flags" not in data and ("escalation" in data or "pack" in data):
        return ("this is not a red-flag pack (red_flags: 1): list escalation policies under "
                "'escalation.policies' and identifier packs under 'packs:'")
    return None


def builtin_red_flag_names() -> list[str]:
    """Red-flag packs shipped with shoal, usable by name in a ``critical:`` rule."""
    return builtin_names(RED_FLAG_PACKS)


def red_flags_path(entry: str, base_dir: Path | None) -> Path:
    """Where a ``red_flags:`` entry is: a built-in name, or a path relative to ``base_dir`` (the
    file that names it). Raises SpecError for a name that is neither."""
    return builtin_or_file(RED_FLAG_PACKS, entry, base_dir, "red-flag pack")


def load_red_flags(path: Path, label: str | None = None) -> RedFlagPack:
    """Load and validate one red-flag pack; SpecError with FILE:LINE:COL for every mistake."""
    return load_yaml_model(path, label or str(path), RedFlagPack, "red-flag pack", _refuse)


class RedFlagMatcher:
    """A compiled pack: :meth:`fired` names the flags that match a text, negation applied."""

    def __init__(self, pack: RedFlagPack) -> None:
        self.pack = pack
        self._flags = [(f.name, _compile(f.pattern)) for f in pack.flags]
        neg = pack.negation
        self._before_words = neg.before_words
        self._before = _compile(neg.before) if neg.before else None
        self._after = _compile(neg.after) if neg.after else None
        self._split = re.compile(neg.clause_split, re.IGNORECASE) if neg.clause_split else None

    def _clause_before(self, text: str) -> str:
        return self._split.split(text)[-1] if self._split is not None else text

    def _clause_after(self, text: str) -> str:
        return self._split.split(text)[0] if self._split is not None else text

    def _negated(self, text: str, start: int, end: int) -> bool:
        if self._before is not None and self._before_words:
            words = self._clause_before(text[:start]).split()[-self._before_words:]
            if self._before.search(" ".join(words)):
                return True
        return self._after is not None and bool(
            self._after.search(self._clause_after(text[end:])))

    def fired(self, text: str) -> list[str]:
        """Names of the flags with at least one match that is not negated, in pack order."""
        t = normalise(text)
        return [name for name, rx in self._flags
                if any(not self._negated(t, m.start(), m.end()) for m in rx.finditer(t))]


_cache: dict[Path, RedFlagMatcher] = {}
_cache_lock = threading.Lock()


def matcher_for(entry: str, base_dir: Path | None = None) -> RedFlagMatcher:
    """The compiled pack ``entry`` names (loaded once per file); SpecError when it is missing or
    wrong."""
    where = red_flags_path(entry, base_dir)
    path = where.resolve()
    with _cache_lock:
        found = _cache.get(path)
    if found is not None:
        return found
    matcher = RedFlagMatcher(load_red_flags(path, str(where)))
    with _cache_lock:
        return _cache.setdefault(path, matcher)
