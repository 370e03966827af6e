"""Small rule-based agents that need no model: a pass-through, a keyword router, a template reply.

They are useful on their own (routing on a few keywords is often enough) and make graphs testable
without weights. The model-backed specialists live in their own modules.
"""

from __future__ import annotations

import re
from functools import cached_property

from pydantic import Field, field_validator

from shoal.agents.base import Agent, AgentConfig, AgentContext, AgentResult, register


class NoopAgent(Agent):
    """Passes the working text through untouched with full confidence."""

    name = "noop"
    _RESULT = AgentResult(output=None, confidence=1.0)  # frozen, so one instance serves all

    async def run(self, ctx: AgentContext) -> AgentResult:
        return self._RESULT


class KeywordClassifierConfig(AgentConfig):
    labels: dict[str, list[str]] = Field(min_length=1)
    """Label -> case-insensitive patterns (regular expressions, matched on word boundaries)."""
    default: str = "other"
    """The label when no pattern matches."""

    @field_validator("labels")
    @classmethod
    def _patterns_compile(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for label, patterns in value.items():
            if not patterns:
                raise ValueError(f"label {label!r} needs at least one pattern")
            for pattern in patterns:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(f"label {label!r}: bad pattern {pattern!r}: {exc}") from None
        return value


class KeywordClassifier(Agent):
    """Labels text by counting pattern hits per label.

    Confidence is the top label's share of add-half-smoothed hit counts over all candidate labels,
    so one hit among four candidates gives 0.5 and no hit gives the default a low score: a node's
    ``escalate_below`` then sends unmatched text onwards rather than pretending to know.
    """

    name = "keyword_classifier"
    Config = KeywordClassifierConfig
    config: KeywordClassifierConfig

    @classmethod
    def labels(cls, config: AgentConfig) -> frozenset[str] | None:
        assert isinstance(config, KeywordClassifierConfig)
        return frozenset(config.labels) | {config.default}

    @cached_property
    def _compiled(self) -> dict[str, re.Pattern[str]]:
        return {
            label: re.compile(r"\b(?:" + "|".join(patterns) + r")\b", re.IGNORECASE)
            for label, patterns in self.config.labels.items()
        }

    async def run(self, ctx: AgentContext) -> AgentResult:
        hits = {label: len(rx.findall(ctx.text)) for label, rx in self._compiled.items()}
        candidates = set(hits) | {self.config.default}
        scores = {label: hits.get(label, 0) + 0.5 for label in candidates}
        total = sum(scores.values())
        best = max(sorted(scores), key=lambda label: scores[label])
        if hits.get(best, 0) == 0:
            best = self.config.default
        matched = sum(hits.values())
        return AgentResult(
            output=best,
            label=best,
            confidence=scores[best] / total,
            reason=f"{hits.get(best, 0)} of {matched} pattern hits",
        )


class TemplateReplyConfig(AgentConfig):
    templates: dict[str, str] = Field(default_factory=dict)
    """Label -> reply text."""
    default: str
    """The reply when the label has no template."""
    from_node: str | None = None
    """Whose label picks the template; default: the latest earlier node that set a label."""
    escalate: bool = False
    """Flag every reply of this node for the planner (with an escalation rule ``attach: true``
    the fixed reply still goes out and the planner's answer is attached)."""


class TemplateReply(Agent):
    """Answers with a fixed reply chosen by an earlier node's label."""

    name = "template_reply"
    Config = TemplateReplyConfig
    config: TemplateReplyConfig

    async def run(self, ctx: AgentContext) -> AgentResult:
        label: str | None = None
        if self.config.from_node is not None:
            source = ctx.results.get(self.config.from_node)
            label = source.label if source is not None else None
        else:
            for result in reversed(list(ctx.results.values())):
                if result.label is not None:
                    label = result.label
                    break
        flag = self.config.escalate
        why = "this reply is always escalated" if flag else None
        if label is not None and label in self.config.templates:
            return AgentResult(output=self.config.templates[label], label=label, confidence=1.0,
                               escalate=flag, reason=why)
        return AgentResult(
            output=self.config.default,
            label=label,
            confidence=0.5,
            escalate=flag,
            reason=why or f"no template for label {label!r}",
        )


for _agent in (NoopAgent, KeywordClassifier, TemplateReply):
    register(_agent.name, _agent)
