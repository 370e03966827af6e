"""``planner``: ask the large planner model, with the masked input, the node's task and the small
model's draft, for a structured answer.

``ask_planner`` is the one place that builds the planner payload, so the escalation policy and
the ``planner`` node send the same thing. The payload holds only the working text, which is
masked once a ``privacy_masker`` ran before this node; the compiler's privacy check (escalation
issue) keeps it that way.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from shoal.agents.base import Agent, AgentConfig, AgentContext, AgentResult, register
from shoal.errors import BudgetExhausted, EgressBlocked
from shoal.models.base import Generator, Message

SYSTEM = (
    "You are the planner of a clinical message pipeline. Personal data in the message has been "
    "replaced by placeholders such as [NAME_1]; keep placeholders exactly as written and never "
    "guess what they stand for. Do the task and answer in the JSON format requested, with your "
    "honest confidence between 0 and 1."
)


class PlannerAnswer(BaseModel):
    """What the planner returns for one node."""

    model_config = ConfigDict(frozen=True)

    answer: str
    label: str | None = None
    confidence: float = Field(ge=0.0, le=1.0)


def answer_schema(labels: list[str] | None) -> type[BaseModel]:
    """PlannerAnswer, with ``label`` restricted to ``labels`` when the node has a label set."""
    if not labels:
        return PlannerAnswer
    from enum import Enum

    choice = Enum("Label", {f"l{i}": label for i, label in enumerate(labels)})  # type: ignore[misc]
    model: type[BaseModel] = create_model(
        "PlannerLabelledAnswer", __base__=PlannerAnswer, label=(choice, ...))
    return model


def planner_messages(task: str, text: str, draft: Any) -> list[Message]:
    draft_text = draft if isinstance(draft, str) else json.dumps(draft, default=str)
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Task: {task}\n\nMessage:\n{text}\n\n"
                                    f"Draft from the local model:\n{draft_text}"},
    ]


async def ask_planner(
    model: Generator,
    *,
    task: str,
    text: str,
    draft: Any,
    labels: list[str] | None = None,
    max_tokens: int = 512,
    timeout_s: float | None = None,
) -> AgentResult:
    """One planner call; the answer as an AgentResult (label, confidence, output)."""
    schema = answer_schema(labels)
    out = await model.generate_json(planner_messages(task, text, draft), schema,
                                    max_tokens=max_tokens, timeout_s=timeout_s)
    data = out.data
    label = getattr(data, "label", None)
    label_value = getattr(label, "value", label)
    return AgentResult(
        output={"answer": data.answer, "label": label_value, "model": out.model,
                "usage": out.usage.model_dump(), "cost_usd": out.cost_usd},
        label=label_value,
        confidence=float(data.confidence),
        reason="planner answer",
    )


class PlannerConfig(AgentConfig):
    task: str = "Answer the patient's message helpfully and safely."
    labels: list[str] | None = None
    """If set, the planner must pick one of these as its label (routes can switch on it)."""
    from_node: str | None = None
    """Whose output is the draft; default: the last earlier node's."""
    max_tokens: int = Field(default=512, ge=16)
    timeout_s: float | None = Field(default=None, gt=0)


class PlannerAgent(Agent):
    """Asks the planner model for a structured answer to the node's task."""

    name = "planner"
    Config = PlannerConfig
    config: PlannerConfig
    model_protocols = (Generator,)


    @classmethod
    def labels(cls, config: AgentConfig) -> frozenset[str] | None:
        assert isinstance(config, PlannerConfig)
        return frozenset(config.labels) if config.labels else None

    async def run(self, ctx: AgentContext) -> AgentResult:
        draft: Any = None
        if self.config.from_node is not None:
            source = ctx.results.get(self.config.from_node)
            draft = source.output if source is not None else None
        elif ctx.results:
            draft = ctx.results[list(ctx.results)[-1]].output
        try:
            return await ask_planner(self.model, task=self.config.task, text=ctx.text,
                                     draft=draft, labels=self.config.labels,
                                     max_tokens=self.config.max_tokens,
                                     timeout_s=self.config.timeout_s)
        except (EgressBlocked, BudgetExhausted) as exc:
            # Nothing left the machine: fall back to the local draft, with no confidence in it.
            return AgentResult(output=draft, confidence=0.0, reason=f"{exc.code}: nothing sent, "
                               "local draft kept")


register(PlannerAgent.name, PlannerAgent)
