"""``compliance_checker``: the last look at a text before it leaves, with an audit record per look.

It checks one text (config ``target``: the working text by default, or an earlier node's output,
for example a responder's reply) against a policy pack, with four checks run in order:

``no_identifiers``
    The pack's :class:`~shoal.policies.privacy.Detector` re-scans the text; any identifier it
    finds outside a pseudonym (``[NAME_1]``, ``[NAME]``, ``[NAME:1a2b3c4d]`` with one of the
    pack's labels) fails. A hit that only touches a pseudonym plus field-label words ("Dr
    [NAME_1]") is the pseudonym, not a leak.
``max_identifiers``
    Distinct pseudonyms plus distinct unmasked identifiers must not exceed ``max_identifiers``
    (default: the pack's ``max_identifiers`` if it has one, else unlimited).
``disclaimer``
    When the text gives clinical advice (any of ``advice_patterns``, regular expressions matched
    case-insensitively: "take", "dose", "200 mg", "you should", "stop taking"...), it must contain
    ``disclaimer`` (compared case- and whitespace-insensitively) or match a
    ``disclaimer_patterns`` entry.
``emergency_routed``
    When an earlier node labelled the message ``emergency_label`` (``emergency_from``: that node
    only; default: any earlier node), the text must contain ``emergency_instruction`` (or match an
    ``emergency_patterns`` entry).
``reply_fit`` (opt in: name it in ``checks``)
    Is the reply fit to send to the patient? The text with the run's own pseudonyms reversed (in
    memory only: the sender's reply) goes through
    :func:`shoal.policies.replies.check_reply`: no placeholder left, no made-up pseudonym, no
    scaffolding, length, loops, forbidden claims (``reply.claims``), and 911 / 988 when the
    label is an emergency or a crisis red flag (``reply.red_flags``, ``reply.crisis_flags``)
    fires on the message; with ``reply.on_topic`` also the MiniLM similarity to the message and
    the class's template (``reply.templates``). The detail and the audit name the failure codes.

A reply filled from a reviewed template (the responder's mapping output with ``template``) is
reviewed wording: ``disclaimer`` then looks for advice only in the model's own sentence
(``personal``). Every audit record of a reply also carries ``reply_source`` with one kind,
``TEMPLATE``, ``PERSONALISED``, ``PLANNER`` or ``MODEL``, so held and sent replies can be traced
to where their words came from; ``reply_fit``'s kinds are its failure codes, upper-case. When the
responder left the model's sentence out, ``personal_sentence`` (failed) names why.

When ``target`` names a node that has not run, or whose output holds no text, the only check
reported is ``target``, failed: what cannot be read cannot be let out.

The verdict is the label ``pass`` or ``fail``; the output is ``{"verdict", "checks": [{"name",
"passed", "detail"}]}``. On ``fail`` the result asks for escalation with confidence
``fail_confidence`` (default 0.0) and a reason listing the failed check names; ``on_fail: refuse``
also stops the run, and ``on_fail: raise`` fails the node with a
:class:`~shoal.errors.PolicyViolation`. Details hold counts and entity types, never the text.

Audit: every decision appends one record (run id, record id, node, verdict, per check its name,
pass flag, count and entity types) to the hash-chained log of :mod:`shoal.policies.audit` at
``audit_log``, or, when that is unset, at the path in the environment variable
``SHOAL_AUDIT_LOG`` read when the graph is built; with neither, nothing is written. A decision
that cannot be written fails the node: an unrecorded decision must not let text out.

presidio and spaCy are imported (through :mod:`shoal.policies.privacy`) on the first scan, never
when this module is imported. Tests and embedders may pass their own ``scan`` to the constructor.
"""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shoal.agents.base import Agent, AgentConfig, AgentContext, AgentResult, register
from shoal.agents.reply_templates import templates_for
from shoal.errors import PolicyViolation
from shoal.policies import privacy
from shoal.policies.audit import AuditCheck, AuditWriter, audit_log
from shoal.policies.escalation.red_flags import CRISIS_FLAGS, crisis_fired, matcher_for
from shoal.policies.privacy import (
    builtin_pack_names,
    load_pack,
    outside_pseudonyms,
    pseudonym_pattern,
)
from shoal.policies.replies import OnTopic, OnTopicSpec, ReplyLimits, ReplyVerdict, check_reply

__all__ = [
    "AUDIT_ENV",
    "CHECKS",
    "CheckResult",
    "ComplianceChecker",
    "ComplianceConfig",
    "Found",
    "ReplyFitConfig",
    "ScanFn",
]

AUDIT_ENV = "SHOAL_AUDIT_LOG"
PASS, FAIL = "pass", "fail"
CheckName = Literal["no_identifiers", "max_identifiers", "disclaimer", "emergency_routed",
                    "reply_fit"]
CHECKS: tuple[CheckName, ...] = ("no_identifiers", "max_identifiers", "disclaimer",
                                 "emergency_routed")
"""The checks that run when ``checks`` is not set (``reply_fit`` is opt in)."""

DEFAULT_DISCLAIMER = (
    "This is general information, not medical advice. Talk to your doctor or pharmacist before "
    "starting, stopping or changing any medication."
)
DEFAULT_EMERGENCY = (
    "If this is an emergency, call 911 or your local emergency services now."
)
DEFAULT_ADVICE_PATTERNS: tuple[str, ...] = (
    # Recall first: a disclaimer on a reply that did not need one costs a sentence; a missing one
    # on a dosing answer is the failure this check exists for.
    r"\btak(?:e|es|ing)\b",
    r"\bdos(?:e|es|age|ing)\b",
    r"\b\d+(?:\.\d+)?\s*(?:mg|mcg|ml|units?|iu)\b",
    r"\bmg\b",
    r"\byou should\b",
    r"\b(?:stop|start|keep|continue) taking\b",
    r"\b(?:once|twice|three times|\d+ times) (?:a|per) day\b",
    r"\b(?:increase|decrease|double|skip|halve)\b.{0,30}?\b(?:dose|medication|pills?|tablets?)\b",
)
_TARGET_KEYS = ("reply", "text", "answer", "output")
"""Keys tried, in order, when the target node's output is a mapping and no ``target_key`` is set."""


class Found(Protocol):
    """What a scan reports per identifier (:class:`shoal.policies.privacy.Entity` fits)."""

    @property
    def type(self) -> str: ...
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...


ScanFn = Callable[[str], Awaitable[Sequence[Found]]]
"""An async scan of a text for identifiers: offsets into the text, types, no values needed."""


def _compiles(patterns: list[str]) -> list[str]:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"bad pattern {pattern!r}: {exc}") from None
    return patterns


class ReplyFitConfig(BaseModel):
    """What ``reply_fit`` checks a reply against."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    claims: str = "forbidden_claims"
    """A forbidden-claims pack: built-in name or path."""
    red_flags: str = "clinical_red_flags"
    crisis_flags: list[str] = Field(default_factory=lambda: list(CRISIS_FLAGS))
    """Red flags that call for the crisis pointers (988 and 911)."""
    label_from: str | None = None
    """The node whose label is the message's class (default: ``emergency_from``)."""
    min_words: int = Field(default=5, ge=1)
    max_chars: int = Field(default=700, ge=40)
    templates: str | None = None
    """A reply-templates pack: the class's template is an on-topic reference."""
    on_topic: OnTopicSpec | None = None


class ComplianceConfig(AgentConfig):
    pack: str = "hipaa_safe_harbor"
    """A built-in pack name or a path to a pack YAML (its detector and pseudonym labels)."""
    target: str | list[str] | None = None
    """The earlier node whose output is checked (several: the first of them that ran, as with
    a graph's ``output``); default: the working text."""
    target_key: str | None = None
    """When the target's output is a mapping: the key holding the text (default: the first of
    reply, text, answer, output)."""
    checks: list[CheckName] = Field(default_factory=lambda: list(CHECKS), min_length=1)
    """Which checks run, in this order."""
    score_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    """Detector scores below this are ignored; default: the pack's."""
    max_identifiers: int | None = Field(default=None, ge=0)
    disclaimer: str = Field(default=DEFAULT_DISCLAIMER, min_length=1)
    disclaimer_patterns: list[str] = Field(default_factory=list)
    advice_patterns: list[str] = Field(default_factory=lambda: list(DEFAULT_ADVICE_PATTERNS))
    emergency_from: str | None = None
    emergency_label: str = "emergency"
    emergency_instruction: str = Field(default=DEFAULT_EMERGENCY, min_length=1)
    emergency_patterns: list[str] = Field(default_factory=list)
    reply: ReplyFitConfig = Field(default_factory=ReplyFitConfig)
    """Settings of the ``reply_fit`` check."""
    allow_sender_identifiers: bool = False
    """For a reply going back to the person who wrote the message: identifiers that the run's
    own input held (its vault has them) may appear, others may not. Never set it on a check of
    a payload to a remote model."""
    on_fail: Literal["escalate", "refuse", "raise"] = "escalate"
    fail_confidence: float = Field(default=0.0, ge=0.0, le=1.0)
    audit_log: str | None = None
    """Path of the audit JSONL; default: ``$SHOAL_AUDIT_LOG`` when set, else no audit file."""
    audit_fsync: bool = True
    timeout_s: float | None = Field(default=None, gt=0)
    """Limit on one scan (the node's own ``timeout_s`` bounds the whole check)."""

    @field_validator("disclaimer_patterns", "advice_patterns", "emergency_patterns")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        return _compiles(value)

    @field_validator("pack")
    @classmethod
    def _pack(cls, value: str) -> str:
        if value.endswith((".yaml", ".yml")) or value in builtin_pack_names():
            return value
        raise ValueError(f"unknown pack {value!r} (built-in: {', '.join(builtin_pack_names())})")


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's outcome. ``detail`` is for people and holds counts and types only."""

    name: str
    passed: bool
    detail: str
    count: int | None = None
    kinds: tuple[str, ...] = ()

    def as_output(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}

    def as_audit(self) -> AuditCheck:
        return AuditCheck(self.name, self.passed, count=self.count, kinds=self.kinds)


@dataclass(frozen=True, slots=True)
class _Subject:
    """The state the checks run over: the text and what the scan and earlier nodes said."""

    text: str
    unmasked: list[Found] = field(default_factory=list)
    pseudonyms: frozenset[str] = frozenset()
    emergency: bool = False
    emergency_source: str = ""
    advice_text: str | None = None
    """Where to look for advice (None: the text); a template's model sentence, or nothing."""
    fit: ReplyVerdict | None = None


def _normalise(text: str) -> str:
    return " ".join(text.casefold().split())


def _contains(text: str, phrase: str, patterns: Sequence[re.Pattern[str]]) -> bool:
    needle = _normalise(phrase).rstrip(".!")
    return needle in _normalise(text) or any(p.search(text) for p in patterns)


class ComplianceChecker(Agent):
    """Checks the text about to leave against a pack; one audit record per decision."""

    name = "compliance_checker"
    Config = ComplianceConfig
    config: ComplianceConfig
    extra = "privacy"

    def __init__(self, config: AgentConfig, *, node: str, model: Any = None,
                 scan: ScanFn | None = None) -> None:
        super().__init__(config, node=node, model=model)
        # The pack is YAML only (no presidio): loading it here reports a broken pack when the
        # graph is built, not on the first message.
        self._pack = load_pack(self.config.pack)
        self._scan_fn = scan
        path = self.config.audit_log or os.environ.get(AUDIT_ENV) or None
        # Opened now so that a damaged audit file stops the graph from starting at all.
        self._audit: AuditWriter | None = (
            audit_log(Path(path), fsync=self.config.audit_fsync) if path else None)
        limit = self.config.max_identifiers
        if limit is None:
            limit = getattr(self._pack, "max_identifiers", None)  # packs may set one later
        self._max_identifiers: int | None = limit
        self._checks: dict[str, Callable[[_Subject], CheckResult]] = {
            "no_identifiers": self._no_identifiers,
            "max_identifiers": self._max_identifiers_check,
            "disclaimer": self._disclaimer,
            "emergency_routed": self._emergency_routed,
            "reply_fit": self._reply_fit,
        }
        if "reply_fit" in self.config.checks:
            # Loaded now: a missing pack stops the graph at build time, not on a message.
            matcher_for(self.config.reply.red_flags)
            if self.config.reply.templates is not None:
                templates_for(self.config.reply.templates)

    @classmethod
    def labels(cls, config: AgentConfig) -> frozenset[str] | None:
        return frozenset({PASS, FAIL})

    @property
    def audit(self) -> AuditWriter | None:
        """The audit log this node writes to, if any."""
        return self._audit

    # -- compiled config -----------------------------------------------------------------------

    @cached_property
    def _pseudonym(self) -> re.Pattern[str]:
        return pseudonym_pattern(self._pack)

    @cached_property
    def _advice(self) -> re.Pattern[str] | None:
        if not self.config.advice_patterns:
            return None
        return re.compile("|".join(f"(?:{p})" for p in self.config.advice_patterns),
                          re.IGNORECASE)

    @cached_property
    def _disclaimer_patterns(self) -> list[re.Pattern[str]]:
        return [re.compile(p, re.IGNORECASE) for p in self.config.disclaimer_patterns]

    @cached_property
    def _emergency_patterns(self) -> list[re.Pattern[str]]:
        return [re.compile(p, re.IGNORECASE) for p in self.config.emergency_patterns]

    @cached_property
    def _on_topic(self) -> OnTopic | None:
        spec = self.config.reply.on_topic
        return None if spec is None else spec.build()

    # -- the run ---------------------------------------------------------------------------------

    async def run(self, ctx: AgentContext) -> AgentResult:
        # The target node's result, looked up once: the text, its source, the responder's
        # dropped sentence and the advice to check all come from it.
        found = self._target_result(ctx)
        target = found[1]
        text, problem = self._target(ctx, found)
        if text is None:
            results = [CheckResult("target", False, problem)]
        else:
            subject = await self._subject(ctx, text, target)
            results = [self._checks[name](subject) for name in self.config.checks]
        failed = [r.name for r in results if not r.passed]
        verdict = FAIL if failed else PASS
        audited = [r.as_audit() for r in results]
        source = self._source(target)
        if source is not None:
            # Audit kinds are upper-case names (the log refuses anything that could be text).
            audited.append(AuditCheck("reply_source", True, kinds=(source.upper(),)))
        dropped = self._dropped(target)
        if dropped:
            # The responder's own decision: the model's sentence failed and was left out.
            audited.append(AuditCheck("personal_sentence", False, count=len(dropped),
                                      kinds=tuple(c.upper() for c in dropped)))
        if self._audit is not None:
            try:
                await self._audit.aappend(
                    run_id=ctx.run_id, record_id=ctx.record_id, node=ctx.node, agent=self.name,
                    decision=verdict, checks=audited)
            except OSError as exc:
                raise PolicyViolation(f"cannot write the audit log ({exc.strerror or 'I/O error'})"
                                      "; the decision is not released", policy="audit",
                                      node=ctx.node) from exc
        output = {"verdict": verdict, "checks": [r.as_output() for r in results]}
        if not failed:
            return AgentResult(output=output, label=PASS, confidence=1.0,
                               reason=f"{len(results)} check(s) passed")
        reason = f"failed: {', '.join(failed)}"
        if self.config.on_fail == "raise":
            raise PolicyViolation(reason, policy=self._pack.name, node=ctx.node)
        return AgentResult(output=output, label=FAIL, confidence=self.config.fail_confidence,
                           escalate=True, reason=reason, refuse=self.config.on_fail == "refuse")

    @property
    def _targets(self) -> list[str]:
        target = self.config.target
        return [] if target is None else [target] if isinstance(target, str) else target

    def _target_result(self, ctx: AgentContext) -> tuple[str | None, AgentResult | None]:
        for name in self._targets:
            if name in ctx.results:
                return name, ctx.results[name]
        return None, None

    @staticmethod
    def _source(result: AgentResult | None) -> str | None:
        """Where the checked reply's words came from, for the audit record."""
        if result is None:
            return None
        out = result.output
        if isinstance(out, Mapping) and "local" in out:
            return "planner"
        if isinstance(out, Mapping) and "template" in out:
            return "personalised" if out.get("personal") else "template"
        return "model" if isinstance(out, str) else None

    @staticmethod
    def _dropped(result: AgentResult | None) -> list[str]:
        out = result.output if result is not None else None
        codes = out.get("personal_dropped") if isinstance(out, Mapping) else None
        return [str(c) for c in codes] if isinstance(codes, list) else []

    def _target(self, ctx: AgentContext, found: tuple[str | None, AgentResult | None]
                ) -> tuple[str | None, str]:
        """The text to check, or None and why (naming nodes and types, never content)."""
        if self.config.target is None:
            return ctx.text, ""
        source, result = found
        if source is None or result is None:
            names = " or ".join(repr(n) for n in self._targets)
            return None, f"target node {names} has no result in this run"
        output = result.output
        if isinstance(output, str):
            return output, ""
        if isinstance(output, Mapping):
            keys = [self.config.target_key] if self.config.target_key else list(_TARGET_KEYS)
            for key in keys:
                if isinstance(output.get(key), str):
                    return output[key], ""
        return None, f"output of node {source!r} ({type(output).__name__}) holds no text"

    async def _subject(self, ctx: AgentContext, text: str,
                       target: AgentResult | None) -> _Subject:
        unmasked: list[Found] = []
        pseudonyms: set[str] = set()
        if {"no_identifiers", "max_identifiers"} & set(self.config.checks):
            tokens = [(m.start(), m.end()) for m in self._pseudonym.finditer(text)]
            pseudonyms = {text[s:e] for s, e in tokens}
            found = await self._scan(text) if text.strip() else []
            unmasked = outside_pseudonyms(text, found, self._pack)
            if self.config.allow_sender_identifiers and unmasked:
                vault = ctx.scope.vault
                unmasked = [h for h in unmasked if not vault.holds(text[h.start:h.end])]
        emergency, source = False, ""
        if "emergency_routed" in self.config.checks:
            if self.config.emergency_from is not None:
                candidates: Mapping[str, AgentResult] = {
                    k: v for k, v in ctx.results.items() if k == self.config.emergency_from}
            else:
                candidates = ctx.results
            for name, result in candidates.items():
                if result.label == self.config.emergency_label:
                    emergency, source = True, name
                    break
        advice_text = None
        if (target is not None and isinstance(target.output, Mapping)
                and "template" in target.output and "local" not in target.output):
            # Reviewed wording needs no disclaimer of its own; the model's sentence might.
            personal = target.output.get("personal")
            advice_text = personal if isinstance(personal, str) else ""
        fit = None
        if "reply_fit" in self.config.checks:
            fit = await self._fit(ctx, text, emergency, target)
        return _Subject(text=text, unmasked=unmasked, pseudonyms=frozenset(pseudonyms),
                        emergency=emergency, emergency_source=source, advice_text=advice_text,
                        fit=fit)

    async def _fit(self, ctx: AgentContext, text: str, emergency: bool,
                   target: AgentResult | None = None) -> ReplyVerdict:
        cfg = self.config.reply
        vault = ctx.scope.vault
        label_node = cfg.label_from or self.config.emergency_from
        label_result = ctx.results.get(label_node) if label_node else None
        label = label_result.label if label_result is not None else None
        crisis = crisis_fired(cfg.red_flags, cfg.crisis_flags, ctx.text)
        parts = _joined_parts(target)
        if not parts:
            # The sender's reply, as they would read it; it stays in this function.
            return await self._fit_one(ctx, vault.unmask(text), label, emergency, crisis)
        # A reply joined from the replies of several requests (reply_join): each part is held
        # to a reply's own length, loop and topic checks against its own label; the whole only
        # to what concerns all of it (placeholders, claims, the 911 and 988 pointers), at the
        # parts' length together.
        whole = await self._fit_one(ctx, vault.unmask(text), label, emergency, crisis,
                                    max_chars=cfg.max_chars * len(parts), loops=False,
                                    topic=False)
        failures = list(whole.failures)
        for part in parts:
            one = await self._fit_one(ctx, vault.unmask(part["answer"]), part.get("label"),
                                      False, False)
            failures += [replace(f, reason=f"step {part.get('index')}: {f.reason}")
                         for f in one.failures]
        return ReplyVerdict(failures=tuple(failures), checks=whole.checks)

    async def _fit_one(self, ctx: AgentContext, reply: str, label: str | None, emergency: bool,
                       crisis: bool, *, max_chars: int | None = None, loops: bool = True,
                       topic: bool = True) -> ReplyVerdict:
        cfg = self.config.reply
        extra = []
        if self._on_topic is not None and topic:
            references = [ctx.text]
            if cfg.templates is not None:
                pack = templates_for(cfg.templates)
                if crisis or (label is not None and label in pack.labels):
                    references.append(pack.fill(label or "", {}, crisis=crisis).text)
            score = await self._on_topic.score(reply, references,
                                               timeout_s=self.config.timeout_s)
            extra.append(("on_topic", self._on_topic.check(score)))
        limits = ReplyLimits(min_words=cfg.min_words, max_chars=max_chars or cfg.max_chars,
                             emergency_labels=frozenset({self.config.emergency_label}))
        if not loops:
            limits = replace(limits, max_ngram_repeats=_NO_LIMIT, min_sentence_words=_NO_LIMIT)
        return check_reply(reply, label=label, vault_pseudonyms=ctx.scope.vault.pseudonyms(),
                           needs_emergency=emergency, needs_crisis=crisis, limits=limits,
                           claims=cfg.claims, extra=extra)

    async def _scan(self, text: str) -> Sequence[Found]:
        if self._scan_fn is not None:
            return await self._scan_fn(text)
        # The pack name (not the object) keys the process's detector, so the masker's is reused.
        detector = await privacy.adetector(self.config.pack,
                                           score_threshold=self.config.score_threshold)
        return await detector.ascan(text, timeout_s=self.config.timeout_s)

    # -- the checks (each a pure function of the subject) -------------------------------------

    def _no_identifiers(self, s: _Subject) -> CheckResult:
        kinds = tuple(sorted({hit.type for hit in s.unmasked}))
        if not s.unmasked:
            return CheckResult("no_identifiers", True, "no unmasked identifier", count=0)
        return CheckResult("no_identifiers", False,
                           f"{len(s.unmasked)} unmasked identifier(s): {', '.join(kinds)}",
                           count=len(s.unmasked), kinds=kinds)

    def _max_identifiers_check(self, s: _Subject) -> CheckResult:
        # Distinct values: "[NAME_1]" three times is one person. Values are compared in memory
        # only and never leave this function.
        clear = {(hit.type, s.text[hit.start:hit.end]) for hit in s.unmasked}
        count = len(s.pseudonyms) + len(clear)
        limit = self._max_identifiers
        if limit is None:
            return CheckResult("max_identifiers", True, f"{count} identifier(s), no limit",
                               count=count)
        passed = count <= limit
        return CheckResult("max_identifiers", passed,
                           f"{count} identifier(s), limit {limit}", count=count)

    def _disclaimer(self, s: _Subject) -> CheckResult:
        where = s.text if s.advice_text is None else s.advice_text
        cues = len(self._advice.findall(where)) if self._advice is not None else 0
        if cues == 0:
            return CheckResult("disclaimer", True, "no clinical advice", count=0)
        if _contains(s.text, self.config.disclaimer, self._disclaimer_patterns):
            return CheckResult("disclaimer", True,
                               f"clinical advice ({cues} cue(s)), disclaimer present", count=cues)
        return CheckResult("disclaimer", False,
                           f"clinical advice ({cues} cue(s)), disclaimer missing", count=cues)

    def _emergency_routed(self, s: _Subject) -> CheckResult:
        if not s.emergency:
            return CheckResult("emergency_routed", True, "not labelled emergency")
        if _contains(s.text, self.config.emergency_instruction, self._emergency_patterns):
            return CheckResult("emergency_routed", True,
                               f"labelled emergency by {s.emergency_source!r}, instruction present")
        return CheckResult("emergency_routed", False,
                           f"labelled emergency by {s.emergency_source!r}, instruction missing")

    def _reply_fit(self, s: _Subject) -> CheckResult:
        verdict = s.fit
        if verdict is None:  # cannot happen: _subject measures it when the check is on
            return CheckResult("reply_fit", False, "not measured")
        if verdict.ok:
            return CheckResult("reply_fit", True, "fit to send", count=0)
        codes = verdict.codes
        return CheckResult("reply_fit", False, "; ".join(verdict.reasons),
                           count=len(verdict.failures), kinds=tuple(c.upper() for c in codes))


_NO_LIMIT = 1 << 30


def _joined_parts(target: AgentResult | None) -> list[Mapping[str, Any]]:
    """The parts of a joined reply (``reply_join``'s ``parts``), or [] for any other reply."""
    output = target.output if target is not None else None
    parts = output.get("parts") if isinstance(output, Mapping) else None
    if not isinstance(parts, list):
        return []
    return [p for p in parts if isinstance(p, Mapping) and isinstance(p.get("answer"), str)]


register(ComplianceChecker.name, ComplianceChecker)
