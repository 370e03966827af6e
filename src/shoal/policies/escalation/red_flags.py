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
from collections.abc import Collection
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shoal.policies.patterns import Negation, PatternEntry, PatternMatcher, load_once
from shoal.resources import RED_FLAG_PACKS, builtin_names, builtin_or_file
from shoal.yaml_source import load_yaml_model

__all__ = [
    "CRISIS_FLAGS",
    "Negation",
    "RedFlag",
    "RedFlagMatcher",
    "RedFlagPack",
    "builtin_red_flag_names",
    "crisis_fired",
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


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class RedFlag(PatternEntry):
    """One red flag: a name the trace shows and a regular expression."""


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


class RedFlagMatcher(PatternMatcher):
    """A compiled pack: :meth:`fired` names the flags that match a text, negation applied."""

    def __init__(self, pack: RedFlagPack) -> None:
        super().__init__(pack.flags, pack.negation, compile=_compile, normalise=normalise)
        self.pack = pack


CRISIS_FLAGS: Final = ("suicidal", "means_plan")
"""The clinical pack's flags that call for the crisis reply and its pointers (988, 911)."""


def crisis_fired(entry: str, crisis_flags: Collection[str], text: str) -> bool:
    """Whether any of ``crisis_flags`` of the red-flag pack ``entry`` fires on ``text``: the
    one test the responder (which reply to send) and the compliance checker (which pointers the
    reply needs) both apply, so that they can never disagree about a crisis."""
    return any(flag in crisis_flags for flag in matcher_for(entry).fired(text))


def matcher_for(entry: str, base_dir: Path | None = None) -> RedFlagMatcher:
    """The compiled pack ``entry`` names (loaded once per file); SpecError when it is missing or
    wrong."""
    where = red_flags_path(entry, base_dir)
    path = where.resolve()
    return load_once("red_flags", path,
                     lambda: RedFlagMatcher(load_red_flags(path, str(where))))
