"""The one place that builds a planner request and reads its answer, so the escalator and the
``planner`` agent send the same thing: the graph's system prompt, the task, the working (masked)
text and the local draft, answered under a JSON schema whose ``label`` is restricted to the
node's labels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from shoal.models.base import Generator, Message

__all__ = ["PlannerAnswer", "PlannerReply", "answer_schema", "ask_planner", "planner_messages"]


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
    choice = Enum("Label", {f"l{i}": label for i, label in enumerate(labels)})  # type: ignore[misc]
    model: type[BaseModel] = create_model(
        "PlannerLabelledAnswer", __base__=PlannerAnswer, label=(choice, ...))
    return model


def planner_messages(system: str, task: str, text: str, draft: Any) -> list[Message]:
    draft_text = draft if isinstance(draft, str) else json.dumps(draft, default=str)
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": f"Task: {task}\n\nMessage:\n{text}\n\n"
                                    f"Draft from the local model:\n{draft_text}"},
    ]


@dataclass(frozen=True, slots=True)
class PlannerReply:
    """The planner's answer. What it cost is measured by the remote model's guard, not here."""

    answer: str
    label: str | None
    confidence: float
    model: str

    def output(self) -> dict[str, Any]:
        """The node output an answer becomes: ``{answer, label, model}``."""
        return {"answer": self.answer, "label": self.label, "model": self.model}


async def ask_planner(
    model: Generator,
    *,
    system: str,
    task: str,
    text: str,
    draft: Any,
    labels: list[str] | None = None,
    max_tokens: int = 512,
    timeout_s: float | None = None,
) -> PlannerReply:
    """One planner call."""
    out = await model.generate_json(planner_messages(system, task, text, draft),
                                    answer_schema(labels), max_tokens=max_tokens,
                                    timeout_s=timeout_s)
    data = out.data
    label = getattr(data, "label", None)
    return PlannerReply(answer=data.answer, label=getattr(label, "value", label),
                        confidence=float(data.confidence), model=out.model)
