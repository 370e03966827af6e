"""Reply templates: the reviewed wording a patient receives for each triage class, with slots.

A pack is a YAML file (``templates: 1``), built in (``clinic_replies``) or a path relative to the
file that names it::

    templates: 1
    name: clinic_replies
    version: "1.0"
    reviewed: who reviewed the wording, and when (or that nobody has yet)
    greeting: {text: "Hello {name},", requires: [name], fallback: [{text: "Hello,"}]}
    footer: {text: "If this is a medical emergency, call 911."}
    replies:
      prescription_refill:
        personalise: true               # one model-written sentence may go in {personal}
        sentences:
          - text: "Thank you for your request to refill {drug} {dose}."
            requires: [drug, dose]
            fallback:
              - {text: "Thank you for your request to refill {drug}.", requires: [drug]}
              - {text: "Thank you for your prescription refill request."}
          - {text: "{personal}", requires: [personal], optional: true}
      emergency: {...}                  # required: the fixed emergency reply
      crisis: {...}                     # required: the self-harm reply (988, 911)

Slots are :data:`SLOTS` and nothing else; a sentence names the slots its text uses under
``requires`` (checked at load). Filling picks, for each sentence, the first variant whose slots
all have a value; a chain ends in a variant without slots unless the sentence is ``optional``, so
a template reads whole with any subset of slots missing. The reply is the greeting, the sentences
and the footer (each template may turn the greeting or footer off).

Slot values are the *unmasked* values (the patient's own first name, the validator's drug and
dose, a date from the message); :meth:`ReplyPack.fill` refuses a value that still looks like a
pseudonym or a placeholder (``[NAME_1]``, ``[DATE]``, ``{name}``), so a masked value never reaches
a patient. Values are put in as they are, never parsed as templates themselves.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shoal.errors import ShoalError
from shoal.policies.patterns import load_once
from shoal.policies.privacy.vault import TOKEN
from shoal.resources import builtin_names, builtin_or_file
from shoal.yaml_source import load_yaml_model

__all__ = [
    "CRISIS",
    "EMERGENCY",
    "REPLY_TEMPLATE_PACKS",
    "SLOTS",
    "FilledReply",
    "ReplyFillError",
    "ReplyPack",
    "ReplyTemplate",
    "Sentence",
    "Variant",
    "builtin_reply_template_names",
    "load_reply_templates",
    "reply_templates_path",
    "templates_for",
]

REPLY_TEMPLATE_PACKS = ("shoal.agents.data", "reply_templates")
"""Built-in reply-template packs (``clinic_replies``)."""

SLOTS = frozenset({"name", "drug", "dose", "when", "personal"})
"""The slots a template may use. ``personal`` is the model's sentence, passed as ``personal=``."""

EMERGENCY = "emergency"
"""The template for an emergency: fixed wording (call 911 now)."""
CRISIS = "crisis"
"""The template for self-harm, whatever the class: 988 Suicide & Crisis Lifeline, and 911."""

_MAX_CHARS = {"name": 60, "drug": 80, "dose": 40, "when": 80, "personal": 300}
"""Longest value accepted for each slot (after whitespace is collapsed)."""

_MASKED_SLOTS = frozenset({"name", "when"})
"""Slots whose value may be the run's own pseudonym (the sender's name, a date they wrote)."""
_SLOT = re.compile(r"\{([^{}]*)\}")
_BRACES = re.compile(r"[{}]")
_PLACEHOLDER = re.compile(r"\[[^\[\]]*\]|[\[\]{}]")
"""Anything bracketed or a lone bracket or brace: no name, drug, dose or date has one, and every
pseudonym shape (``[NAME_1]``, ``[NAME:1a2b3c4d]``, ``[NAME]``, ``[name_1]``) does."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _slots_in(text: str) -> list[str]:
    return _SLOT.findall(text)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class Variant(_Strict):
    """One wording of a sentence and the slots it needs."""

    text: str = Field(min_length=1)
    requires: list[str] = Field(default_factory=list)
    """Every slot the text uses, and no other."""

    @model_validator(mode="after")
    def _check(self) -> Variant:
        allowed = ", ".join(sorted(SLOTS))
        used = _slots_in(self.text)
        for slot in [*used, *self.requires]:
            if slot not in SLOTS:
                raise ValueError(f"unknown slot {{{slot}}} (allowed: {allowed})")
        if _BRACES.search(_SLOT.sub("", self.text)):
            raise ValueError("a lone '{' or '}' in the text: slots are written {name}")
        if "[" in self.text or "]" in self.text:
            raise ValueError("the text holds square brackets, the shape of a pseudonym or "
                             "placeholder ([NAME_1]): write a slot or plain words")
        if len(set(self.requires)) != len(self.requires):
            raise ValueError("requires lists a slot twice")
        missing = [s for s in dict.fromkeys(used) if s not in self.requires]
        if missing:
            raise ValueError(f"the text uses {{{missing[0]}}} but requires does not list it")
        unused = [s for s in self.requires if s not in used]
        if unused:
            raise ValueError(f"requires lists {unused[0]!r} but the text has no {{{unused[0]}}}")
        return self


class Sentence(Variant):
    """A sentence: its wording, then fallbacks tried in order when a slot it needs is missing."""

    fallback: list[Variant] = Field(default_factory=list)
    optional: bool = False
    """Left out when no variant fits; otherwise the last variant must use no slot."""

    @model_validator(mode="after")
    def _chain(self) -> Sentence:
        last = self.fallback[-1] if self.fallback else self
        if last.requires and not self.optional:
            raise ValueError(
                f"the last variant needs {', '.join(last.requires)}: add a fallback without "
                "slots, or mark the sentence optional: true")
        return self

    def variants(self) -> list[Variant]:
        return [self, *self.fallback]


class ReplyTemplate(_Strict):
    """The reply for one class."""

    personalise: bool = False
    """Whether one model-written sentence may go in the ``{personal}`` slot."""
    greeting: bool = True
    """Start with the pack's greeting."""
    footer: bool = True
    """End with the pack's footer."""
    sentences: list[Sentence] = Field(min_length=1)

    @model_validator(mode="after")
    def _personal(self) -> ReplyTemplate:
        has = any("personal" in v.requires for s in self.sentences for v in s.variants())
        if self.personalise and not has:
            raise ValueError("personalise: true needs a sentence with the {personal} slot")
        if has and not self.personalise:
            raise ValueError("the {personal} slot is only allowed with personalise: true")
        return self


@dataclass(frozen=True, slots=True)
class FilledReply:
    """A reply ready to send: the text and where it came from."""

    text: str
    template_id: str
    """``pack/class``, for example ``clinic_replies/prescription_refill``."""
    version: str
    """The pack's version."""
    used_slots: tuple[str, ...]
    """The slots whose values are in the text, sorted (``personal`` when the model's sentence is
    in)."""
    closing: str = ""
    """The pack's footer as it ends the text ("" when the template has none): a reply joined
    from several says it once, at the end (``reply_join``)."""

    @property
    def personalised(self) -> bool:
        return "personal" in self.used_slots


class ReplyFillError(ShoalError, ValueError):
    """A reply could not be filled: an unknown class, or a slot value that must not be sent."""


class ReplyPack(_Strict):
    """A reply-template pack file (``templates: 1``)."""

    templates: Literal[1]
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    version: str = Field(min_length=1)
    reviewed: str = Field(min_length=1)
    """Who reviewed the wording and when, or that it is not reviewed yet."""
    description: str | None = None
    greeting: Sentence | None = None
    footer: Sentence | None = None
    replies: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")], ReplyTemplate]
    """Templates by class (a triage label), plus ``emergency`` and ``crisis``."""

    @field_validator("replies")
    @classmethod
    def _safety_replies(cls, replies: dict[str, ReplyTemplate]) -> dict[str, ReplyTemplate]:
        missing = [k for k in (EMERGENCY, CRISIS) if k not in replies]
        if missing:
            raise ValueError(f"replies needs {' and '.join(map(repr, missing))}: every pack "
                             "carries the fixed emergency reply and the crisis reply")
        for key in (EMERGENCY, CRISIS):
            if replies[key].personalise:
                raise ValueError(f"{key!r} is fixed wording: personalise must be false")
        return replies

    @field_validator("greeting", "footer")
    @classmethod
    def _no_personal(cls, sentence: Sentence | None) -> Sentence | None:
        if sentence is not None and any("personal" in v.requires for v in sentence.variants()):
            raise ValueError("the greeting and footer cannot use the {personal} slot")
        return sentence

    @property
    def labels(self) -> list[str]:
        """The classes with a template, in pack order."""
        return list(self.replies)

    def missing(self, labels: Iterable[str]) -> list[str]:
        """The labels of ``labels`` that have no template (for a graph's static checks)."""
        return [label for label in labels if label not in self.replies]

    def fill(self, label: str, slots: Mapping[str, str | None], *, crisis: bool = False,
             personal: str | None = None,
             pseudonyms: Collection[str] = ()) -> FilledReply:
        """The reply for ``label`` with ``slots`` filled; the crisis reply when ``crisis``.

        ``slots`` maps slot names (not ``personal``) to unmasked values; ``None`` or blank means
        missing; whitespace and line breaks in a value are collapsed. ``personal`` is the
        model's one sentence, used only where the template allows it (elsewhere it is ignored,
        and ``personalised`` is False). Raises :class:`ReplyFillError` for an unknown label or
        slot, or a value (``personal`` included) that looks like a pseudonym or placeholder or is
        too long: the caller then fills again without it.

        ``pseudonyms``: the run vault's tokens. A ``name`` or ``when`` value that is exactly one
        of them is kept as the token, so the filled text stays masked like every other output;
        the reply that goes back to the sender gets the value put back on the way out
        (:attr:`shoal.RunResult.reply`). Any other pseudonym shape is still refused.
        """
        key = CRISIS if crisis else label
        template = self.replies.get(key)
        if template is None:
            raise ReplyFillError(f"no reply template for class {label!r} in pack {self.name!r} "
                                 f"(known: {', '.join(self.labels)})")
        values: dict[str, str] = {}
        for slot, raw in slots.items():
            if slot not in SLOTS or slot == "personal":
                hint = " (pass the model's sentence as personal=)" if slot == "personal" else ""
                allowed = ", ".join(sorted(SLOTS - {"personal"}))
                raise ReplyFillError(f"unknown slot {slot!r}{hint} (allowed: {allowed})")
            if slot in _MASKED_SLOTS and isinstance(raw, str) and raw.strip() in pseudonyms:
                values[slot] = raw.strip()
                continue
            value = _clean(slot, raw)
            if value is not None:
                values[slot] = value
        if template.personalise:
            sentence = _clean("personal", personal)
            if sentence is not None:
                values["personal"] = sentence
        used: set[str] = set()

        def render(sentence: Sentence | None) -> str:
            if sentence is None:
                return ""
            for variant in sentence.variants():
                if all(s in values for s in variant.requires):
                    used.update(variant.requires)
                    return _SLOT.sub(lambda m: values[m.group(1)], variant.text).strip()
            return ""

        greeting = render(self.greeting if template.greeting else None)
        body = " ".join(p for p in map(render, template.sentences) if p)
        closing = render(self.footer if template.footer else None)
        text = "\n\n".join(p for p in (greeting, body, closing) if p)
        masked = {values[s] for s in _MASKED_SLOTS if s in values and values[s] in pseudonyms}
        left = TOKEN.sub(lambda m: "" if m.group(0) in masked else m.group(0), text)
        if _SLOT.search(text) or TOKEN.search(left):  # cannot happen: values and texts are checked
            raise ReplyFillError(f"the reply for {key!r} still holds a slot or pseudonym")
        return FilledReply(text=text, template_id=f"{self.name}/{key}", version=self.version,
                           used_slots=tuple(sorted(used)), closing=closing)


def _clean(slot: str, raw: str | None) -> str | None:
    """A slot value made one line, or None when blank; ReplyFillError when it must not be sent."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ReplyFillError(f"slot {slot!r}: expected text, got {type(raw).__name__}")
    value = " ".join(_CONTROL.sub(" ", raw).split())
    if not value:
        return None
    if _PLACEHOLDER.search(value):
        raise ReplyFillError(f"slot {slot!r}: the value looks like a pseudonym or placeholder "
                             "(brackets or braces); pass the unmasked value, or none")
    if len(value) > _MAX_CHARS[slot]:
        raise ReplyFillError(f"slot {slot!r}: the value is over {_MAX_CHARS[slot]} characters")
    if slot == "personal" and not value.endswith((".", "!", "?")):
        value += "."  # it sits between two sentences
    return value


def _refuse(data: dict[str, object]) -> str | None:
    if "templates" not in data and ({"red_flags", "pack", "escalation"} & data.keys()):
        return ("this is not a reply-templates pack (templates: 1): red-flag packs, identifier "
                "packs and escalation policies are named elsewhere")
    return None


def builtin_reply_template_names() -> list[str]:
    """Reply-template packs shipped with shoal, usable by name."""
    return builtin_names(REPLY_TEMPLATE_PACKS)


def reply_templates_path(entry: str, base_dir: Path | None) -> Path:
    """Where a templates entry is: a built-in name, or a path relative to ``base_dir`` (the file
    that names it). Raises SpecError for a name that is neither."""
    return builtin_or_file(REPLY_TEMPLATE_PACKS, entry, base_dir, "reply-template pack")


def load_reply_templates(path: Path, label: str | None = None) -> ReplyPack:
    """Load and validate one reply-template pack; SpecError with FILE:LINE:COL for every
    mistake."""
    return load_yaml_model(path, label or str(path), ReplyPack, "reply-template pack", _refuse)


def templates_for(entry: str = "clinic_replies", base_dir: Path | None = None) -> ReplyPack:
    """The pack ``entry`` names (loaded once per file); SpecError when it is missing or wrong."""
    where = reply_templates_path(entry, base_dir)
    path = where.resolve()
    return load_once("reply_templates", path, lambda: load_reply_templates(path, str(where)))
