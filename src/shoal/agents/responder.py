"""``responder``: the reply to the patient, from a reviewed template or the local model.

With ``templates`` (a reply-templates pack) the reply is the class's reviewed wording, filled
from what local specialists found: the sender's own name (from a self-introduction or a sign-off)
and a date for an appointment, both as the run's pseudonyms (the output stays masked; the reply
that goes back to the sender gets the values back), the drug and dose from the validator. A
message on which a crisis red flag fires gets the crisis reply (988, 911) whatever its class.
With ``personalise: model`` the local model may write the one sentence a template leaves for the
specifics; the sentence goes in only if it passes the reply checker
(:func:`shoal.policies.replies.check_reply`), the sentence rules (one sentence in the clinic's
voice, every content word grounded in the message, no number the patient did not write, no
clinical advice) and, with ``on_topic``, the MiniLM on-topic floor. Otherwise it is dropped
(the template alone is sent) or, with ``on_personal_fail: planner``, the node asks the planner
to draft. The output is then a mapping:
``answer`` (the reply, masked), ``template``, ``version``, ``personal`` (the sentence used, or
None) and ``personal_dropped`` (the failure codes of a sentence that was not used).

Without ``templates`` the model writes the whole reply as plain text (a 135M model asked for JSON
tends to run its string to the token limit). Confidence rests on checks we can see (length, cut
off at the limit, labels that need clinical judgement): a heuristic, not a calibrated
probability; calibration against labelled data belongs to the escalation policy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cached_property
from typing import Any, Literal

from pydantic import Field

from shoal.agents.base import Agent, AgentConfig, AgentContext, AgentResult, register
from shoal.agents.compliance import DEFAULT_ADVICE_PATTERNS
from shoal.agents.reply_templates import FilledReply, ReplyFillError, templates_for
from shoal.models.base import Generator, Message
from shoal.policies.escalation.red_flags import CRISIS_FLAGS, crisis_fired, matcher_for
from shoal.policies.replies import (
    OnTopic,
    OnTopicSpec,
    ReplyLimits,
    check_reply,
    claims_matcher,
)

SYSTEM = (
    "You are a clinic's patient-message assistant. Write a short, kind reply to the patient. "
    "Personal data has been replaced by placeholders such as [NAME_1]; keep them as written. "
    "Do not diagnose or prescribe."
)


PERSONAL_SYSTEM = (
    "Restate the patient's request in one short sentence that starts with 'We understand that "
    "you'.")
PERSONAL_EXAMPLES: tuple[tuple[str, str], ...] = (
    # Few-shot pairs: a 135M model follows a shown shape far better than an instruction.
    ("Hi, can I move my physical from Tuesday to later in the week? [NAME_1]",
     "We understand that you would like to move your physical to later in the week."),
    ("My pharmacy says my metformin refill needs approval, I have 2 days left.",
     "We understand that you need approval for your metformin refill soon."),
    ("I got a bill for my lab work but I thought insurance covered it",
     "We understand that you have a question about a bill for lab work."),
)
PERSONAL_PREFIX = "We understand that you"

_NAME_TOKEN = r"\[(?:NAME|PERSON|PATIENT_NAME)(?:_\d+|:[0-9a-f]{8})\]"
_SELF_NAMED = re.compile(
    # "this is [NAME_1]", "my name is [NAME_1]", "[NAME_1] here", a sign-off on the last line.
    rf"(?i:\b(?:this is|my name is|my name's|i am|i'm|it's)\s+)({_NAME_TOKEN})"
    rf"|^\s*({_NAME_TOKEN})\s+here\b"
    rf"|(?i:\b(?:thanks|thank you|thx|regards|best|sincerely|cheers|love))[,.!]?\s*"
    rf"({_NAME_TOKEN})\W*$"
    rf"|\n\s*[-\u2013\u2014]?\s*({_NAME_TOKEN})[^\n]*$"
    rf"|[-\u2013\u2014]\s*({_NAME_TOKEN})\W*$",
    re.MULTILINE)
_TITLED = re.compile(rf"(?i:\b(?:dr|doctor|nurse|mr|mrs|ms|mx|prof)\.?\s+)({_NAME_TOKEN})")
_DATE_TOKEN = re.compile(
    r"(?i:\b(on|for|this|next|at|until|by|the)\s+)(\[DATE(?:_\d+|:[0-9a-f]{8})\])")
_WEEKDAY = re.compile(
    r"\b(?i:on|for|this|next)\s+((?i:next\s+)?(?:Monday|Tuesday|Wednesday|Thursday|Friday|"
    r"Saturday|Sunday))\b")
_BIRTH = re.compile(r"(?i:\b(?:dob|d\.o\.b|born|birth|birthday|bday)\b)")
_OFF_VOICE = re.compile(
    # The clinic speaks as "we"; a sentence in the model's own voice, apologising, refusing or
    # talking about itself is not an acknowledgement of the patient's request.
    r"(?i:\bI\b|\bI'm\b|\bI've\b|\bmy\b|\bsorry\b|\bapolog|\bunable\b|\bnot able\b"
    r"|\bcan(?:no|')t\b|\bdon't have\b|\bAI\b|\bassistant\b|\bappreciate\b|\bgenerosity\b)")
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_WORD = re.compile(r"[a-z][a-z'-]+")
_GENERIC = frozenset((
    # Words an acknowledgement may use without the patient having written them.
    "we", "understand", "that", "you", "your", "you're", "have", "has", "need", "needs", "want",
    "wants", "would", "like", "question", "questions", "about", "help", "request", "requested",
    "requesting", "asking", "ask", "asked", "know", "with", "from", "this", "been", "some",
    "more", "soon", "also", "please", "get", "make", "made", "next", "time", "today", "again",
    "medication", "medications", "medicine", "appointment", "experiencing",
    # Function words.
    "were", "will", "what", "when", "where", "they", "them", "their", "there", "which", "into",
    "over", "then", "than", "just", "very", "still", "since", "being", "does", "doing", "done",
    "these", "those", "each", "other", "only", "such", "could", "should", "might", "must",
    "much", "many", "most", "both", "either", "after", "before", "while", "because", "through",
    "during", "without", "within", "ever", "even", "well", "back", "here",
))


def _ungrounded(sentence: str, message: str) -> list[str]:
    """Content words of ``sentence`` (four letters or more, not generic) whose first five
    letters appear in no word of ``message``."""
    stems = {w[:5] for w in _WORD.findall(message.lower())}
    return [w for w in _WORD.findall(sentence.lower())
            if len(w) >= 4 and w not in _GENERIC and w[:5] not in stems]

_ADVICE = re.compile("|".join(f"(?:{p})" for p in DEFAULT_ADVICE_PATTERNS), re.IGNORECASE)
"""The compliance checker's advice cues: a sentence with one would need the disclaimer."""


def personal_prompt(text: str) -> list[Message]:
    """What the model is asked for the one sentence a template leaves to it: the instruction,
    the worked examples, then the (masked) message."""
    messages: list[Message] = [{"role": "system", "content": PERSONAL_SYSTEM}]
    for question, answer in PERSONAL_EXAMPLES:
        messages += [{"role": "user", "content": question},
                     {"role": "assistant", "content": answer}]
    messages.append({"role": "user", "content": text})
    return messages


class ResponderConfig(AgentConfig):
    system: str = SYSTEM
    label_from: str | None = None
    """Node whose label (for example the triage class) is given to the model; default: the
    latest earlier node with a label."""
    max_tokens: int = Field(default=160, ge=16)
    timeout_s: float | None = Field(default=None, gt=0)
    min_reply_chars: int = Field(default=20, ge=0)
    uncertain_labels: list[str] = Field(default_factory=lambda: ["symptom_report"])
    """Labels whose replies need judgement a small model lacks: confidence is capped."""
    base_confidence: float = Field(default=0.8, ge=0.0, le=1.0)
    templates: str | None = None
    """A reply-templates pack (``clinic_replies``): the reply is the class's reviewed template,
    filled from local specialists (the drug and dose the validator found), not model text. A
    message on which a crisis red flag fires gets the crisis reply (988, 911) whatever its
    class. None: the model writes the reply."""
    red_flags: str = "clinical_red_flags"
    """The red-flag pack whose ``crisis_flags`` call for the crisis reply."""
    crisis_flags: list[str] = Field(default_factory=lambda: list(CRISIS_FLAGS))
    personalise: Literal["off", "model"] = "off"
    """With templates: ``model`` lets the local model write the one sentence a template leaves
    for the specifics; it goes in only when it passes every check."""
    personal_max_tokens: int = Field(default=40, ge=8)
    personal_max_words: int = Field(default=28, ge=5)
    on_topic: OnTopicSpec | None = None
    """The model's sentence must reach this MiniLM similarity to the message."""
    claims: str = "forbidden_claims"
    """The forbidden-claims pack the model's sentence is checked against."""
    escalate: bool = False
    """Flag every reply of this node for the planner: with an escalation rule ``attach: true``
    the reply still goes out and the planner's answer (a clinician hand-off) is attached."""
    on_personal_fail: Literal["template", "planner"] = "template"
    """A sentence that fails: ``template`` sends the template alone; ``planner`` asks the
    planner to draft the reply (the compliance checker checks that draft like any other)."""


class Responder(Agent):
    """The reply: a filled template (with one checked model sentence), or the model's draft."""

    name = "responder"
    Config = ResponderConfig
    config: ResponderConfig
    model_protocols = (Generator,)

    def __init__(self, config: AgentConfig, *, node: str, model: Any = None) -> None:
        super().__init__(config, node=node, model=model)
        if self.config.templates is not None:
            # Loaded now: a missing or broken pack stops the graph when it is built, not on
            # the first patient's message.
            templates_for(self.config.templates)
            matcher_for(self.config.red_flags)
            if self.config.personalise == "model":
                claims_matcher(self.config.claims)

    def _label(self, ctx: AgentContext) -> str | None:
        if self.config.label_from is not None:
            source = ctx.results.get(self.config.label_from)
            return source.label if source is not None else None
        for result in reversed(list(ctx.results.values())):
            if result.label is not None:
                return result.label
        return None

    def _slots(self, ctx: AgentContext) -> dict[str, str | None]:
        """Template slots from earlier specialists: the one drug and the one dose the
        validator found (several are left out: the template then reads without them)."""
        slots: dict[str, str | None] = {}
        for result in ctx.results.values():
            out = result.output
            if isinstance(out, Mapping) and "medications" in out and "doses" in out:
                meds: list[Any] = list(out.get("medications") or [])
                doses: list[Any] = list(out.get("doses") or [])
                if len(meds) == 1 and isinstance(meds[0], Mapping):
                    slots["drug"] = str(meds[0].get("name") or "") or None
                if len(doses) == 1 and isinstance(doses[0], Mapping):
                    value, unit = doses[0].get("value"), doses[0].get("unit")
                    if isinstance(value, int | float) and isinstance(unit, str):
                        slots["dose"] = f"{value:g} {unit}"
        return slots

    @staticmethod
    def _sender_name(text: str) -> str | None:
        """The pseudonym of the sender's own name: one named in a self-introduction or a
        sign-off, never one after a title (Dr [NAME_2] is someone else). None when unsure."""
        titled = set(_TITLED.findall(text))
        found = {g for m in _SELF_NAMED.finditer(text) for g in m.groups() if g} - titled
        return found.pop() if len(found) == 1 else None

    @staticmethod
    def _when(text: str) -> str | None:
        """The one date (a pseudonym) or weekday the message asks about; None when there is
        none, several, or it looks like a birth date."""
        dates = {m.group(2) for m in _DATE_TOKEN.finditer(text)
                 if not _BIRTH.search(text[max(0, m.start() - 24):m.start()])}
        days = {m.group(1) for m in _WEEKDAY.finditer(text)}
        found = dates | days
        return found.pop() if len(found) == 1 else None

    @cached_property
    def _on_topic(self) -> OnTopic | None:
        spec = self.config.on_topic
        return None if spec is None else spec.build()

    async def _personal(self, ctx: AgentContext, label: str) -> tuple[str | None, list[str]]:
        """The model's sentence and no failure, or None and why it was dropped (codes)."""
        out = await self.model.generate(personal_prompt(ctx.text),
                                        max_tokens=self.config.personal_max_tokens,
                                        timeout_s=self.config.timeout_s)
        sentence = " ".join(out.text.split())
        codes: list[str] = []
        if out.finish_reason == "length":
            codes.append("cut_off")
        if not sentence.startswith(PERSONAL_PREFIX):
            codes.append("not_an_acknowledgement")
        if len(_SENTENCE_END.findall(sentence.rstrip(".!?") + " ")) > 0:
            codes.append("more_than_one_sentence")
        if len(sentence.split()) > self.config.personal_max_words:
            codes.append("too_long")
        if _OFF_VOICE.search(sentence):
            codes.append("off_voice")
        if any(sentence == answer for _q, answer in PERSONAL_EXAMPLES):
            codes.append("copied_example")
        if _ungrounded(sentence, ctx.text):
            # A word the message never used (by its first five letters): the model filled the
            # shape of an example with another request ("a bill for lab work" for a refill).
            codes.append("ungrounded")
        if _ADVICE.search(sentence):
            # Doses and instructions are for a clinician; reviewed wording carries none.
            codes.append("clinical_advice")
        if set(_NUMBER.findall(sentence)) - set(_NUMBER.findall(ctx.text)):
            # A dose, date, price or count the patient never wrote is made up.
            codes.append("invented_number")
        extra = []
        if self._on_topic is not None:
            score = await self._on_topic.score(sentence, [ctx.text],
                                               timeout_s=self.config.timeout_s)
            extra.append(("on_topic", self._on_topic.check(score)))
        verdict = check_reply(sentence, label=label, claims=self.config.claims,
                              limits=ReplyLimits(min_words=5, max_chars=240,
                                                 require_final_punctuation=False,
                                                 emergency_labels=frozenset()),
                              extra=extra)
        codes += [c for c in verdict.codes if c not in codes]
        return (None, codes) if codes else (sentence, [])

    async def _templated(self, ctx: AgentContext, label: str | None) -> AgentResult:
        assert self.config.templates is not None
        pack = templates_for(self.config.templates)
        crisis = crisis_fired(self.config.red_flags, self.config.crisis_flags, ctx.text)
        key = label if label in pack.labels else None
        if key is None and not crisis:
            return AgentResult(output="", label=label, confidence=0.0,
                               reason=f"no template for label {label!r}")
        slots = self._slots(ctx)
        slots["name"] = self._sender_name(ctx.text)
        if key == "appointment":
            slots["when"] = self._when(ctx.text)
        pseudonyms = ctx.scope.vault.pseudonyms()
        personal: str | None = None
        dropped: list[str] = []
        template = pack.replies.get(key or "")
        if (self.config.personalise == "model" and not crisis and key is not None
                and template is not None and template.personalise):
            personal, dropped = await self._personal(ctx, key)
        filled: FilledReply | None = None
        attempts: list[tuple[dict[str, str | None], str | None]] = [
            (slots, personal), (slots, None), ({}, None)]
        for values, sentence in attempts:
            try:
                filled = pack.fill(key or "", values, crisis=crisis, personal=sentence,
                                   pseudonyms=pseudonyms)
                break
            except ReplyFillError:
                # A value the pack refuses (odd characters from the validator, a sentence with
                # brackets): the template reads without it.
                if sentence is not None:
                    dropped.append("refused_by_template")
        assert filled is not None  # the last attempt has no slot that could be refused
        why = f"template {filled.template_id} v{filled.version}"
        if crisis:
            why += " (crisis red flag)"
        if filled.personalised:
            why += " + the model's sentence"
        elif dropped:
            why += f"; the model's sentence dropped ({', '.join(dropped)})"
        output = {"answer": filled.text, "template": filled.template_id,
                  "version": filled.version, "closing": filled.closing,
                  "personal": personal if filled.personalised else None,
                  "personal_dropped": dropped}
        if dropped and self.config.on_personal_fail == "planner":
            return AgentResult(output=output, label=label, confidence=0.0, escalate=True,
                               reason=why)
        if self.config.escalate:
            return AgentResult(output=output, label=label, confidence=1.0, escalate=True,
                               reason=f"{why}; this reply is always escalated")
        return AgentResult(output=output, label=label, confidence=1.0, reason=why)

    async def run(self, ctx: AgentContext) -> AgentResult:
        label = self._label(ctx)
        if self.config.templates is not None:
            return await self._templated(ctx, label)
        topic = f"The message was classified as: {label}.\n" if label else ""
        messages: list[Message] = [
            {"role": "system", "content": self.config.system},
            {"role": "user", "content": f"{topic}Patient message:\n{ctx.text}"},
        ]
        out = await self.model.generate(messages, max_tokens=self.config.max_tokens,
                                        timeout_s=self.config.timeout_s)
        reply = out.text.strip()
        confidence = self.config.base_confidence
        reasons: list[str] = []
        if len(reply) < self.config.min_reply_chars:
            confidence = min(confidence, 0.2)
            reasons.append("reply too short")
        if out.finish_reason == "length":
            confidence = min(confidence, 0.5)
            reasons.append("reply cut off at max_tokens")
        if label in self.config.uncertain_labels:
            confidence = min(confidence, 0.4)
            reasons.append(f"label {label} needs judgement")
        return AgentResult(output=reply, label=label, confidence=confidence,
                           reason="; ".join(reasons) or None)


register(Responder.name, Responder)
