"""``responder``: draft the reply with the local instruct model from the run's state.

The reply is plain text: a 135M model asked for JSON tends to run its string to the token limit.
Confidence rests on checks we can see (length, cut off at the limit, labels that need clinical
judgement). It is a heuristic, not a calibrated probability: calibration against labelled data
belongs to the escalation policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from shoal.agents.base import Agent, AgentConfig, AgentContext, AgentResult, register
from shoal.agents.reply_templates import ReplyFillError, templates_for
from shoal.models.base import Generator, Message
from shoal.policies.escalation.red_flags import matcher_for

SYSTEM = (
    "You are a clinic's patient-message assistant. Write a short, kind reply to the patient. "
    "Personal data has been replaced by placeholders such as [NAME_1]; keep them as written. "
    "Do not diagnose or prescribe."
)


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
    crisis_flags: list[str] = Field(default_factory=lambda: ["suicidal", "means_plan"])


class Responder(Agent):
    """Drafts the reply with the local instruct model; low confidence escalates."""

    name = "responder"
    Config = ResponderConfig
    config: ResponderConfig
    model_protocols = (Generator,)


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

    def _templated(self, ctx: AgentContext, label: str | None) -> AgentResult:
        assert self.config.templates is not None
        pack = templates_for(self.config.templates)
        fired = matcher_for(self.config.red_flags).fired(ctx.text)
        crisis = any(flag in self.config.crisis_flags for flag in fired)
        key = label if label in pack.labels else None
        if key is None and not crisis:
            return AgentResult(output="", label=label, confidence=0.0,
                               reason=f"no template for label {label!r}")
        slots = self._slots(ctx)
        try:
            filled = pack.fill(key or "", slots, crisis=crisis)
        except ReplyFillError:
            # A slot value the pack refuses (odd characters from the validator): the template
            # reads without slots.
            filled = pack.fill(key or "", {}, crisis=crisis)
        why = f"template {filled.template_id} v{filled.version}"
        return AgentResult(output=filled.text, label=label, confidence=1.0,
                           reason=f"{why} (crisis red flag)" if crisis else why)

    async def run(self, ctx: AgentContext) -> AgentResult:
        label = self._label(ctx)
        if self.config.templates is not None:
            return self._templated(ctx, label)
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
