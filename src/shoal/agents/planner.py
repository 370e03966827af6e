"""``planner``: ask the large planner model, with the masked input, the node's task and the small
model's draft, for a structured answer.

The request is built by :func:`shoal.policies.escalation.ask_planner`, the same one escalation
uses. The payload holds only the working text, which is masked once a ``privacy_masker`` ran
before this node; the compiler's privacy check keeps it that way.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from shoal.agents.base import Agent, AgentConfig, AgentContext, AgentResult, register
from shoal.errors import BudgetExhausted, EgressBlocked
from shoal.models.base import Generator
from shoal.policies.escalation.planner_call import ask_planner
from shoal.policies.escalation.rules import DEFAULT_SYSTEM


class PlannerConfig(AgentConfig):
    task: str = "Answer the message helpfully and safely."
    system: str = DEFAULT_SYSTEM
    """The planner's system prompt."""
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
            reply = await ask_planner(self.model, system=self.config.system,
                                      task=self.config.task, text=ctx.text, draft=draft,
                                      labels=self.config.labels,
                                      max_tokens=self.config.max_tokens,
                                      timeout_s=self.config.timeout_s)
        except (EgressBlocked, BudgetExhausted) as exc:
            # Nothing left the machine: fall back to the local draft, with no confidence in it.
            return AgentResult(output=draft, confidence=0.0, reason=f"{exc.code}: nothing sent, "
                               "local draft kept")
        return AgentResult(output=reply.output(), label=reply.label,
                           confidence=reply.confidence, reason="planner answer")


register(PlannerAgent.name, PlannerAgent)
