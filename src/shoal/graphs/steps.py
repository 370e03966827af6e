"""Steps: the requests of one message, each answered on its own branch.

A route with ``steps: {join: ...}`` (:class:`~shoal.graphs.spec.StepsSpec`) reads the steps its
source node (an ``intent_splitter``) put in its output. One step or none: the route switches on
the label as always. Several: the route sends one LangGraph ``Send`` per step to the step node
(``SOURCE[steps]``), which LangGraph runs concurrently; each runs the chain of nodes from the
step's target along plain edges to an ``output`` node, on the step's excerpt of the (masked)
text, with the step's label in place of the message's (a responder's ``label_from`` then picks
the step's template). Their traces come back as ``node[i]`` (``NodeTrace.step`` is ``i``), and
the ``join`` node runs once after all of them.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Hashable, Mapping, Sequence
from typing import Any, TypedDict

from langgraph.graph import END as LG_END
from langgraph.types import Send

from shoal.agents.plans import Step, step_key, steps_of
from shoal.graphs.node import NodeRunner
from shoal.graphs.results import NodeTrace
from shoal.graphs.state import Halt, RunMeta, RunState

__all__ = ["Step", "StepRunner", "step_key", "step_node", "steps_router"]


class StepState(TypedDict):
    meta: RunMeta
    results: dict[str, NodeTrace]
    step: Step


def step_node(source: str) -> str:
    """The LangGraph node that runs ``source``'s steps; no spec node can have this name."""
    return f"{source}[steps]"


def steps_router(
    source: str, table: Mapping[str, str], fallback: str,
) -> Callable[[RunState], Coroutine[Any, Any, Hashable | list[Send]]]:
    """The route function of a route with ``steps``: ``Send`` per step when there are several,
    else the label's destination (``table``, then ``fallback``)."""
    target = step_node(source)

    async def route(state: RunState) -> Hashable | list[Send]:
        if state.get("halt"):
            return LG_END
        trace = state["results"][source]
        steps = steps_of(trace)
        if len(steps) > 1:
            return [Send(target, {"meta": state["meta"], "results": state["results"],
                                  "step": step}) for step in steps]
        label = trace.label
        return table.get(label, fallback) if label is not None else fallback

    return route


class StepRunner:
    """The LangGraph node that runs one step: its target's chain, on its excerpt."""

    def __init__(self, source: str, of: str, chains: Mapping[str, Sequence[NodeRunner]]) -> None:
        self.source = source
        self.of = of
        """The classifier node whose label the step's label stands in for."""
        self.chains = chains

    async def __call__(self, state: StepState) -> dict[str, Any]:
        step = state["step"]
        index = step["index"]
        results = dict(state["results"])
        for name in (self.of, self.source):
            if name in results:
                results[name] = results[name].model_copy(update={"label": step["label"]})
        local: RunState = {"meta": state["meta"], "text": step["text"], "results": results}
        traces: dict[str, NodeTrace] = {}
        for runner in self.chains[step["target"]]:
            update = await runner(local)
            for name, trace in update.get("results", {}).items():
                stepped = trace.model_copy(update={"step": index})
                traces[step_key(name, index)] = stepped
                local["results"] = {**local["results"], name: stepped}
            if "text" in update:
                local["text"] = update["text"]
            halt: Halt | None = update.get("halt")
            if halt:
                return {"results": traces, "halt": halt}
        return {"results": traces}
