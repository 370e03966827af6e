"""Replacing what a detector found, and telling pseudonyms from identifiers in the clear.

No model here: these functions work on spans, so the masker, the compliance re-scan and the egress
scan share them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from shoal.policies.privacy.packs import Pack
from shoal.policies.privacy.vault import Vault

if TYPE_CHECKING:
    from shoal.policies.privacy.detector import Entity

__all__ = [
    "MODES",
    "MaskResult",
    "MaskedEntity",
    "Mode",
    "apply_mask",
    "outside_pseudonyms",
    "pseudonym_pattern",
]

Mode = Literal["pseudonymize", "redact", "hash"]
MODES: tuple[Mode, ...] = ("pseudonymize", "redact", "hash")


MaskedEntity = dict[str, Any]
"""``{type, entity, kind, start, end, replacement, score}``: ``type`` is the replacement label
(NAME, SSN...), ``entity`` the detector's finer type; offsets point into the ORIGINAL text."""


@dataclass(frozen=True, slots=True)
class MaskResult:
    """A masked text and what was replaced (never the replaced values themselves)."""

    masked: str
    entities: list[dict[str, Any]] = field(default_factory=list)


def apply_mask(text: str, entities: Sequence[Entity], *, mode: Mode = "pseudonymize",
               vault: Vault | None = None) -> MaskResult:
    """Replace ``entities`` (sorted, non-overlapping, as :meth:`Detector.scan` returns them)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    vault = vault if vault is not None else Vault()
    parts: list[str] = []
    out: list[MaskedEntity] = []
    cursor = 0
    for e in entities:
        value = text[e.start:e.end]
        if mode == "pseudonymize":
            replacement = vault.pseudonym(e.label, value, avoid=text)
        elif mode == "hash":
            replacement = vault.hashed(e.label, value)
        else:
            replacement = f"[{e.label}]"
        parts.append(text[cursor:e.start])
        parts.append(replacement)
        cursor = e.end
        out.append({"type": e.label, "entity": e.type, "kind": e.kind, "start": e.start,
                    "end": e.end, "replacement": replacement, "score": e.score})
    parts.append(text[cursor:])
    return MaskResult(masked="".join(parts), entities=out)


def pseudonym_pattern(pack: Pack) -> re.Pattern[str]:
    """What this pack's masker writes in place of a value: ``[NAME_1]``, ``[NAME:1a2b3c4d]``,
    ``[NAME]``."""
    labels = sorted({kind.label for kind in pack.kinds}, key=len, reverse=True)
    return re.compile(r"\[(?:" + "|".join(map(re.escape, labels)) + r")(?:_\d+|:[0-9a-f]{8})?\]")


class Span(Protocol):
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...


SpanT = TypeVar("SpanT", bound=Span)


def outside_pseudonyms(text: str, found: Sequence[SpanT], pack: Pack) -> list[SpanT]:
    """The hits of a re-scan that are real identifiers in the clear.

    A masked text is scanned again before it leaves; the detector may tag a pseudonym itself, or
    a pseudonym with its field label ("Dr [NAME_1]"), and those are not leaks. Everything else is.
    """
    tokens = [(m.start(), m.end()) for m in pseudonym_pattern(pack).finditer(text)]
    if not tokens:
        return list(found)
    label_words = frozenset(w.casefold().strip(".:#") for w in pack.ner.label_words)
    blanked = list(text)
    for s, e in tokens:
        blanked[s:e] = " " * (e - s)
    rest_text = "".join(blanked)
    out = []
    for hit in found:
        if not any(s < hit.end and hit.start < e for s, e in tokens):
            out.append(hit)  # touches no pseudonym: whatever it is, it is in the clear
            continue
        words = re.findall(r"\w+", rest_text[hit.start:hit.end])
        if any(w.casefold() not in label_words for w in words):
            out.append(hit)
    return out


