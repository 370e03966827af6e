"""``classifier``: label a message with any Classifier or LabelScorer model from the YAML.

Confidence is the top label's probability; the node's ``escalate_below`` decides escalation.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from shoal.agents.base import Agent, AgentConfig, AgentContext, AgentResult, register
from shoal.errors import AgentError
from shoal.models.base import Classifier, LabelScorer, SignalClassifier, Signals

DEFAULT_PROMPT = (
    "Classify the message into one of these categories: {labels}.\n"
    "Message: {text}\n"
    "Category:"
)


class ClassifierConfig(AgentConfig):
    labels: list[str] | None = Field(default=None, min_length=2)
    """Required for a LabelScorer model (a base LLM scores these); for a trained Classifier,
    optional: if given, it must equal the model's labels, so routes can be checked statically."""
    prompt: str = DEFAULT_PROMPT
    """LabelScorer prompt; ``{labels}`` and ``{text}`` are filled in."""
    timeout_s: float | None = Field(default=None, gt=0)
    max_chars: int = Field(default=4000, ge=100)
    """Only so much of the text goes into a LabelScorer prompt (small context windows); the
    classifier sees all of it."""


class ClassifierAgent(Agent):
    """Labels text with a trained Classifier or a LabelScorer base model."""

    name = "classifier"
    Config = ClassifierConfig
    config: ClassifierConfig
    model_protocols = (Classifier, LabelScorer)

    def __init__(self, config: AgentConfig, *, node: str, model: Any = None) -> None:
        super().__init__(config, node=node, model=model)
        if isinstance(model, Classifier):
            wanted = self.config.labels
            if wanted is not None and sorted(wanted) != sorted(model.labels):
                raise AgentError(f"config labels {sorted(wanted)} differ from the model's "
                                 f"{sorted(model.labels)}", node=node, agent=self.name)
        elif self.config.labels is None:
            raise AgentError("a LabelScorer model needs 'labels' in the node config",
                             node=node, agent=self.name)

    @classmethod
    def labels(cls, config: AgentConfig) -> frozenset[str] | None:
        assert isinstance(config, ClassifierConfig)
        return frozenset(config.labels) if config.labels else None

    async def run(self, ctx: AgentContext) -> AgentResult:
        timeout = self.config.timeout_s
        signals: Signals | None = None
        if isinstance(self.model, SignalClassifier):
            # The same one model call, keeping what a learned router reads (members,
            # embedding) next to the probabilities.
            signals = await self.model.classify_signals([ctx.text], timeout_s=timeout)
            probs = dict(zip(self.model.labels, map(float, signals.probabilities[0]),
                             strict=True))
        elif isinstance(self.model, Classifier):
            [probs] = await self.model.classify([ctx.text], timeout_s=timeout)
        else:
            labels = self.config.labels or []
            prompt = self.config.prompt.format(labels=", ".join(labels),
                                               text=ctx.text[: self.config.max_chars])
            probs = await self.model.score_labels(prompt, labels, timeout_s=timeout)
        best = max(sorted(probs), key=lambda label: probs[label])
        ranked = dict(sorted(probs.items(), key=lambda kv: -kv[1]))
        return AgentResult(output={"label": best, "probabilities": ranked}, label=best,
                           confidence=min(1.0, max(0.0, probs[best])), signals=signals)


register(ClassifierAgent.name, ClassifierAgent)
