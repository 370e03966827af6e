"""The planner as one low-concurrency stage of a Ray batch.

Every worker of a Ray batch runs the whole graph (so a node after an escalated one reads the
planner's answer, exactly as locally), but none of them talks to the planner itself: each holds
a :class:`PlannerProxy` in the planner's place, and every proxy hands its calls to one
:class:`PlannerStage` actor that makes them, at most ``max_concurrency`` at a time for the whole
cluster. A planner sized for a few concurrent requests is not flooded by N workers.

The privacy boundary stays in the workers: the proxy sits *inside* the worker's
:class:`~shoal.policies.escalation.guard.RemoteGuard`, so the egress scan, the budget, the circuit
breaker and the metering run before anything reaches the stage, and the stage only ever sees
what would have gone to the planner anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from shoal.errors import BackendError, ShoalError
from shoal.graphs.spec import GraphSpec
from shoal.models.base import Generation, Generator, JsonGeneration, JsonSchema, Message
from shoal.models.kinds import build_model, validate_spec

__all__ = ["PlannerProxy", "PlannerStage"]

G = TypeVar("G", bound=Generation)


class PlannerStage:
    """Holds the graph's planner backend and makes its calls (a Ray actor; async methods, so one
    actor serves ``max_concurrency`` calls at once on its event loop).

    Errors come back as values, not exceptions: Ray would wrap a raised one in its own task
    error, and the worker's escalator must see the same :class:`~shoal.errors.BackendError` it
    sees locally to queue the escalation in the outbox or open the breaker.
    """

    def __init__(self, spec: GraphSpec, base_dir: str) -> None:
        if spec.escalation is None:
            raise ValueError("a planner stage needs a graph with an escalation planner")
        name = spec.escalation.planner
        self.model_name = name
        model = build_model(validate_spec(spec.models[name]), Path(base_dir))
        if not isinstance(model, Generator):
            raise BackendError(f"the planner {name!r} is not a Generator", backend=name)
        self._model: Any = model

    async def generate(self, messages: Sequence[Message], kwargs: dict[str, Any]
                       ) -> Generation | ShoalError:
        try:
            out: Generation = await self._model.generate(messages, **kwargs)
        except ShoalError as exc:
            return exc
        return out

    async def generate_json(self, messages: Sequence[Message], schema: JsonSchema,
                            kwargs: dict[str, Any]) -> JsonGeneration | ShoalError:
        try:
            out: JsonGeneration = await self._model.generate_json(messages, schema, **kwargs)
        except ShoalError as exc:
            return exc
        return out


class PlannerProxy:
    """A :class:`~shoal.models.base.Generator` that forwards to the :class:`PlannerStage`
    actor ``stage`` (a Ray actor handle)."""

    def __init__(self, stage: Any, name: str) -> None:
        self.stage = stage
        self.name = name

    async def generate(self, messages: Sequence[Message], *, max_tokens: int = 256,
                       temperature: float = 0.0, timeout_s: float | None = None) -> Generation:
        out = await self.stage.generate.remote(
            list(messages), {"max_tokens": max_tokens, "temperature": temperature,
                             "timeout_s": timeout_s})
        return _answer(out, Generation, self.name)

    async def generate_json(self, messages: Sequence[Message], schema: JsonSchema, *,
                            max_tokens: int = 512, timeout_s: float | None = None
                            ) -> JsonGeneration:
        out = await self.stage.generate_json.remote(
            list(messages), schema, {"max_tokens": max_tokens, "timeout_s": timeout_s})
        return _answer(out, JsonGeneration, self.name)


def _answer(out: object, kind: type[G], name: str) -> G:
    if isinstance(out, ShoalError):
        raise out
    if not isinstance(out, kind):
        raise BackendError(f"the planner stage answered {type(out).__name__}", backend=name)
    return out
