"""``responder``: draft the reply with the local instruct model from the run's state.

The reply is plain text: a 135M model asked for JSON tends to run its string to the token limit.
Confidence rests on checks we can see (length, cut off at the limit, labels that need clinical
judgement). It is a heuristic, not a calibrated probability: calibration against labelled data
belongs to the escalation policy.
"""

from __future__ import annotations

from pydantic import Field

from shoal.agents.base import Agent, AgentConfig, AgentContext, AgentResult, register
from shoal.models.base import Generator, Message

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

    async def run(self, ctx: AgentContext) -> AgentResult:
        label = self._label(ctx)
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
