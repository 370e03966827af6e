"""The reply checker: is a drafted reply fit to send to the patient it answers?

:func:`check_reply` runs every check on one reply (after unmasking) and returns a
:class:`ReplyVerdict` listing each failure with a check name, a code and a short reason. Reasons
name the check and counts or kinds only, never a word of the reply: a reply can hold personal data
and verdicts go to traces and audit logs.

Checks, in order:

``placeholder``
    Any bracketed pseudonym shape left in the reply. ``placeholder_left``: a pseudonym the run's
    vault made (``vault_pseudonyms``) that was not reversed. ``made_up_pseudonym``: a pseudonym
    shape the vault never made (``[DOCUMENT_1]``) or a near miss the model invented (``[NAME]``,
    ``[Name_1]``, ``{NAME_1}``, ``<NAME_1>``, ``[Your Name]``, ``{{name}}``).
``scaffolding``
    Pipeline or prompt text leaking into the reply (``SCAFFOLDING``: the responder's "The message
    was classified as:" and "Patient message:" lines, the system prompts' wording, role tags,
    "As an AI", JSON keys). Code ``scaffolding``.
``length``
    ``too_short`` (fewer than ``min_words`` words), ``too_long`` (more than ``max_chars``
    characters), ``cut_off`` (no sentence-final punctuation at the end, as when generation stops
    at ``max_tokens``; only when ``ReplyLimits.require_final_punctuation``).
``repetition``
    A loop: the same sentence (of ``min_sentence_words`` words or more) twice, or one word
    ``ngram`` occurring more than ``max_ngram_repeats`` times.
``forbidden_claim``
    A :class:`ClaimsPack` pattern (discounts, orders, shipping, prices, refunds, diagnoses, dose
    changes, ...) that is not negated; the reason lists the claim names.
``pointer``
    ``pointer_missing``: ``needs_emergency`` (or a label in ``ReplyLimits.emergency_labels``)
    and no 911 / emergency department / emergency room; ``needs_crisis`` and no 988 or no 911.

More checks (on topic by MiniLM similarity, the medical validator) plug in through ``extra``: any
callable taking a :class:`ReplyContext` and returning failures; a failing extra check is listed
like the built-in ones.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shoal.policies.patterns import Negation, PatternEntry, PatternMatcher, load_once
from shoal.resources import REPLY_CLAIM_PACKS, builtin_names, builtin_or_file
from shoal.yaml_source import load_yaml_model

__all__ = [
    "CHECKS",
    "CODES",
    "ClaimMatcher",
    "ClaimNegation",
    "ClaimsPack",
    "DEFAULT_CLAIMS",
    "ExtraCheck",
    "ForbiddenClaim",
    "ReplyContext",
    "ReplyFailure",
    "ReplyLimits",
    "ReplyVerdict",
    "SCAFFOLDING",
    "builtin_claims_names",
    "check_reply",
    "claims_matcher",
    "claims_path",
    "find_placeholders",
    "load_claims",
]

CHECKS = ("placeholder", "scaffolding", "length", "repetition", "forbidden_claim", "pointer")
"""The built-in checks, in the order :func:`check_reply` runs them."""

CODES = ("placeholder_left", "made_up_pseudonym", "scaffolding", "too_short", "too_long",
         "cut_off", "repetition", "forbidden_claim", "pointer_missing")
"""Every code a built-in check can give."""

DEFAULT_CLAIMS = "forbidden_claims"
"""The built-in claims pack :func:`check_reply` uses when it is given none."""


# --------------------------------------------------------------------------------- placeholders

_STRICT = re.compile(r"\[([A-Z][A-Z0-9_]*?)(?:_\d+|:[0-9a-f]{8})\]")
"""What a vault writes: ``[NAME_1]``, ``[NAME:1a2b3c4d]``."""
_NEAR_MISS = re.compile(
    r"\[\s*([A-Za-z][A-Za-z0-9_ .'-]{0,40}?)\s*\]"         # [NAME], [Name_1], [Your Name], [Date]
    r"|\{\{?\s*([A-Za-z][A-Za-z0-9_ ]{0,40}?)\s*\}\}?"     # {NAME_1}, {{name}}
    r"|<\s*([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*)\s*>"            # <NAME_1>, <NAME>
    r"|<\s*([A-Za-z]+_\d+)\s*>"                            # <Name_1>
)
_KNOWN_KINDS = frozenset({
    "ACCOUNT", "ADDRESS", "AGE", "BIOMETRIC_ID", "CITY", "DATE", "DEVICE_ID", "DOB", "DOCUMENT",
    "EMAIL", "FAX", "HEALTH_PLAN_ID", "ID", "IP_ADDRESS", "LICENSE", "LOCATION", "MRN", "NAME",
    "PATIENT_NAME", "PERSON", "PHONE", "PHOTO", "SSN", "TIME", "URL", "VEHICLE_ID", "YOUR_NAME",
    "ZIP",
})
"""Kinds a reason may name; any other bracketed word is reported as ``other`` (it is reply text)."""


def _kind(inner: str) -> str:
    word = re.sub(r"[^A-Z0-9]+", "_", inner.upper()).strip("_")
    word = re.sub(r"_\d+$", "", word)
    return word if word in _KNOWN_KINDS else "other"


def find_placeholders(reply: str) -> list[tuple[str, str, bool]]:
    """Every placeholder shape in ``reply`` as (token, kind, strict): ``strict`` when it has the
    exact shape a vault writes. ``kind`` is a known label (``NAME``, ``DATE``...) or ``other``."""
    found: list[tuple[str, str, bool]] = []
    taken: list[tuple[int, int]] = []
    for m in _STRICT.finditer(reply):
        found.append((m.group(0), _kind(m.group(1)), True))
        taken.append(m.span())
    for m in _NEAR_MISS.finditer(reply):
        if any(s <= m.start() < e for s, e in taken):
            continue
        inner = next(g for g in m.groups() if g is not None)
        if not re.search(r"[A-Za-z]", inner):
            continue
        found.append((m.group(0), _kind(inner), False))
    return found


def _kinds(kinds: Iterable[str]) -> str:
    return ", ".join(sorted(set(kinds)))


def _check_placeholders(reply: str, vault: Collection[str]) -> list[ReplyFailure]:
    left: list[str] = []
    made_up: list[str] = []
    near = 0
    for token, kind, strict in find_placeholders(reply):
        if strict and token in vault:
            left.append(kind)
        else:
            made_up.append(kind)
            near += not strict
    out: list[ReplyFailure] = []
    if left:
        out.append(ReplyFailure("placeholder", "placeholder_left",
                                f"{len(left)} pseudonym(s) of the run's vault left unreversed "
                                f"({_kinds(left)})", tuple(sorted(set(left)))))
    if made_up:
        out.append(ReplyFailure("placeholder", "made_up_pseudonym",
                                f"{len(made_up)} placeholder(s) not made by the run's vault "
                                f"({near} near miss(es); {_kinds(made_up)})",
                                tuple(sorted(set(made_up)))))
    return out


# ---------------------------------------------------------------------------------- scaffolding

SCAFFOLDING: tuple[tuple[str, str], ...] = (
    # The responder's user message: "The message was classified as: {label}.\nPatient message:\n"
    ("classified_as", r"\bclassified as\b"),
    ("patient_message_header",
     r"\bpatient(?:'s)? message(?:\s+(?:was|is))?\s*:|\bthe patient'?s message (?:was|is)\b"),
    ("category_header", r"(?:^|\n)\s*(?:category|label|class|confidence|triage)\s*:"),
    ("clinic_will_header", r"\bthe clinic will (?:respond with|do next|reply with)\s*:"),
    ("reply_header", r"(?:^|\n)\s*(?:reply|response|answer|draft)\s*:"),
    # The system prompts (src/shoal/agents/responder.py, examples/healthcare/cascade.yaml, the
    # planner's), echoed.
    ("system_prompt",
     r"\byou are (?:a|the) (?:clinic'?s|planner)\b|patient[- ]message assistant"
     r"|\breply to the patient\b|\bwrite a short,? kind reply\b|\bkeep (?:the )?placeholders\b"
     r"|\bpersonal data (?:in the message )?has been replaced\b|\bdo not diagnose or prescribe\b"
     r"|\bin two or three short sentences\b|\backnowledge the request and say\b"
     r"|\bhonest confidence\b|\bin the json format\b|\bpipeline of small models\b"),
    ("third_person_patient", r"\bthe patient'?s (?:request|message)\b"),
    ("role_tag",
     r"(?:^|\n)\s*(?:system|user|assistant)\s*:|<\|[a-z_]+\|>|\[/?inst\]|</?s>"
     r"|<<\s*/?sys\s*>>|###\s*(?:instruction|response)"),
    ("as_an_ai", r"\bas an? (?:ai|artificial intelligence|language model|large language model)\b"
                 r"|\bi(?:'m| am) (?:just )?an? (?:ai|language model)\b"),
    ("json", r"\{\s*\"[A-Za-z_]+\"\s*:|\"(?:label|confidence|reply|answer|verdict|output)\"\s*:"),
)
"""Named patterns of pipeline and prompt text (case-insensitive, on the reply as written)."""

_SCAFFOLDING = [(name, re.compile(rx, re.IGNORECASE)) for name, rx in SCAFFOLDING]


def _check_scaffolding(reply: str) -> list[ReplyFailure]:
    text = reply.replace("\u2019", "'")
    hits = [name for name, rx in _SCAFFOLDING if rx.search(text)]
    if not hits:
        return []
    return [ReplyFailure("scaffolding", "scaffolding",
                         f"pipeline or prompt text in the reply ({len(hits)} kind(s): "
                         f"{', '.join(hits)})", tuple(hits))]


# ------------------------------------------------------------------------- length, repetition


@dataclass(frozen=True, slots=True)
class ReplyLimits:
    """Bounds for the length and repetition checks, and which labels call for 911."""

    min_words: int = 5
    max_chars: int = 600
    require_final_punctuation: bool = True
    ngram: int = 4
    max_ngram_repeats: int = 2
    """A word ``ngram`` seen more often than this is a loop."""
    min_sentence_words: int = 4
    """A sentence this long seen twice is a loop."""
    emergency_labels: frozenset[str] = frozenset({"emergency"})
    """A reply to a message with one of these labels needs the emergency pointer."""


_WORD = re.compile(r"[\w'$%.-]*\w|\[[^\]\s]+\]")
_SENTENCE = re.compile(r"[.!?\n]+")
_FINAL = re.compile(r"[.!?)\"'\u201d]\s*$")


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _check_length(reply: str, limits: ReplyLimits) -> list[ReplyFailure]:
    out: list[ReplyFailure] = []
    n_words = len(_words(reply))
    if n_words < limits.min_words:
        out.append(ReplyFailure("length", "too_short",
                                f"{n_words} word(s), fewer than {limits.min_words}"))
    if len(reply) > limits.max_chars:
        out.append(ReplyFailure("length", "too_long",
                                f"{len(reply)} characters, more than {limits.max_chars}"))
    if limits.require_final_punctuation and reply.strip() and not _FINAL.search(reply):
        out.append(ReplyFailure("length", "cut_off", "does not end a sentence (cut off?)"))
    return out


def _check_repetition(reply: str, limits: ReplyLimits) -> list[ReplyFailure]:
    sentences = Counter(
        " ".join(words) for s in _SENTENCE.split(reply)
        if len(words := _words(s)) >= limits.min_sentence_words)
    twice = sum(1 for c in sentences.values() if c > 1)
    words = _words(reply)
    n = limits.ngram
    grams = Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    most = max(grams.values(), default=0)
    if not twice and most <= limits.max_ngram_repeats:
        return []
    parts = []
    if twice:
        parts.append(f"{twice} sentence(s) repeated")
    if most > limits.max_ngram_repeats:
        parts.append(f"a {n}-word sequence {most} times")
    return [ReplyFailure("repetition", "repetition", "repetition loop: " + "; ".join(parts))]


# ------------------------------------------------------------------------------ claims pack


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class ForbiddenClaim(PatternEntry):
    """One forbidden claim: a name the verdict shows and a regular expression."""


ClaimNegation = Negation
"""When a match does not count ("we cannot offer a discount")."""


class ClaimsPack(_Strict):
    """A forbidden-claims pack file (``forbidden_claims: 1``)."""

    forbidden_claims: Literal[1]
    name: str = Field(min_length=1)
    description: str | None = None
    claims: list[ForbiddenClaim] = Field(min_length=1)
    negation: ClaimNegation = Field(default_factory=ClaimNegation)

    @model_validator(mode="after")
    def _unique(self) -> ClaimsPack:
        seen: set[str] = set()
        for claim in self.claims:
            if claim.name in seen:
                raise ValueError(f"claim {claim.name!r} is defined twice")
            seen.add(claim.name)
        return self


def _refuse(data: dict[str, object]) -> str | None:
    if "forbidden_claims" not in data and ("red_flags" in data or "flags" in data):
        return ("this is not a forbidden-claims pack (forbidden_claims: 1): red-flag packs go "
                "under an escalation policy's 'critical:' rule")
    return None


def builtin_claims_names() -> list[str]:
    """Forbidden-claims packs shipped with shoal."""
    return builtin_names(REPLY_CLAIM_PACKS)


def claims_path(entry: str, base_dir: Path | None = None) -> Path:
    """Where a claims pack is: a built-in name, or a path (relative to ``base_dir``). Raises
    SpecError for a name that is neither."""
    return builtin_or_file(REPLY_CLAIM_PACKS, entry, base_dir, "forbidden-claims pack")


def load_claims(path: Path, label: str | None = None) -> ClaimsPack:
    """Load and validate one forbidden-claims pack; SpecError with FILE:LINE:COL for every
    mistake."""
    return load_yaml_model(path, label or str(path), ClaimsPack, "forbidden-claims pack", _refuse)


def _normalise(text: str) -> str:
    return text.lower().replace("\u2019", "'")


class ClaimMatcher(PatternMatcher):
    """A compiled pack: :meth:`fired` names the claims a reply makes, negation applied."""

    def __init__(self, pack: ClaimsPack) -> None:
        super().__init__(pack.claims, pack.negation, normalise=_normalise)
        self.pack = pack


def claims_matcher(entry: str = DEFAULT_CLAIMS, base_dir: Path | None = None) -> ClaimMatcher:
    """The compiled pack ``entry`` names (loaded once per file); SpecError when it is missing or
    wrong."""
    where = claims_path(entry, base_dir)
    path = where.resolve()
    return load_once("forbidden_claims", path,
                     lambda: ClaimMatcher(load_claims(path, str(where))))


def _check_claims(reply: str, claims: ClaimMatcher) -> list[ReplyFailure]:
    fired = claims.fired(reply)
    if not fired:
        return []
    return [ReplyFailure("forbidden_claim", "forbidden_claim",
                         f"{len(fired)} forbidden claim(s): {', '.join(fired)}", tuple(fired))]


# ---------------------------------------------------------------------------------- pointers

_EMERGENCY = re.compile(r"\b9-?1-?1\b|\bemergency (?:department|room)\b", re.IGNORECASE)
_N911 = re.compile(r"\b9-?1-?1\b")
_N988 = re.compile(r"\b9-?8-?8\b")


def _check_pointers(reply: str, needs_emergency: bool, needs_crisis: bool) -> list[ReplyFailure]:
    missing: list[str] = []
    if needs_crisis:
        if not _N988.search(reply):
            missing.append("988")
        if not _N911.search(reply):
            missing.append("911")
    elif needs_emergency and not _EMERGENCY.search(reply):
        missing.append("911")
    if not missing:
        return []
    why = "crisis" if needs_crisis else "emergency"
    return [ReplyFailure("pointer", "pointer_missing",
                         f"{why} reply without {' and '.join(missing)}", tuple(missing))]


# ------------------------------------------------------------------------------------ verdict


@dataclass(frozen=True, slots=True)
class ReplyFailure:
    """One failed check: the check, a code (one of :data:`CODES` for a built-in check), a reason
    naming counts and kinds only, and those kinds."""

    check: str
    code: str
    reason: str
    kinds: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ReplyContext:
    """What a check is given: the reply and what is known about the run."""

    reply: str
    label: str | None
    vault_pseudonyms: Collection[str]
    needs_emergency: bool
    needs_crisis: bool
    limits: ReplyLimits


ExtraCheck = Callable[[ReplyContext], Sequence[ReplyFailure]]
"""A check beyond the built-in ones (on topic, the medical validator): its failures join the
verdict."""


@dataclass(frozen=True, slots=True)
class ReplyVerdict:
    """Every failed check of one reply; ``ok`` when there is none."""

    failures: tuple[ReplyFailure, ...] = ()
    checks: tuple[str, ...] = field(default=CHECKS)
    """The checks that ran."""

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def codes(self) -> tuple[str, ...]:
        """The failure codes, in check order, each once."""
        return tuple(dict.fromkeys(f.code for f in self.failures))

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(f"{f.code}: {f.reason}" for f in self.failures)


def check_reply(reply: str, *, label: str | None = None,
                vault_pseudonyms: Collection[str] = (), needs_emergency: bool = False,
                needs_crisis: bool = False, limits: ReplyLimits | None = None,
                claims: ClaimMatcher | ClaimsPack | str = DEFAULT_CLAIMS,
                extra: Sequence[tuple[str, ExtraCheck]] = ()) -> ReplyVerdict:
    """Run every check on ``reply`` (the text the patient would receive, after unmasking).

    ``vault_pseudonyms``: the run's pseudonyms (none should remain after unmasking);
    ``needs_emergency`` / ``needs_crisis``: the label or a red flag calls for the 911 / 988
    pointer; ``claims``: a matcher, a pack or a pack name or path; ``extra``: (name, check)
    pairs run after the built-in checks.
    """
    limits = limits if limits is not None else ReplyLimits()
    if isinstance(claims, str):
        matcher = claims_matcher(claims)
    elif isinstance(claims, ClaimsPack):
        matcher = ClaimMatcher(claims)
    else:
        matcher = claims
    emergency = needs_emergency or (label is not None and label in limits.emergency_labels)
    failures = [
        *_check_placeholders(reply, vault_pseudonyms),
        *_check_scaffolding(reply),
        *_check_length(reply, limits),
        *_check_repetition(reply, limits),
        *_check_claims(reply, matcher),
        *_check_pointers(reply, emergency, needs_crisis),
    ]
    ctx = ReplyContext(reply, label, vault_pseudonyms, emergency, needs_crisis, limits)
    for _name, check in extra:
        failures.extend(check(ctx))
    return ReplyVerdict(tuple(failures), CHECKS + tuple(name for name, _ in extra))
