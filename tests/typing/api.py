"""Type-checked (not run) public usage: `mypy tests/typing` fails if the SDK's types drift."""

from __future__ import annotations

import shoal


async def usage() -> None:
    graph: shoal.Graph = shoal.load_graph("graph.yaml")
    result: shoal.RunResult = await graph.arun("text", id="1")
    status: str = result.status
    traces: list[shoal.NodeTrace] = result.nodes
    async for event in graph.astream("text"):
        if isinstance(event, shoal.NodeEvent):
            confidence: float = event.confidence
    batch: list[shoal.RunResult] = await graph.abatch([("1", "a"), shoal.Record(id="2", text="b")])
    spec = shoal.GraphSpec(name="g", nodes={"a": shoal.NodeSpec(agent="noop")},
                           edges=[shoal.ChainEdge.parse("a -> END")])
    shoal.Graph(spec)
    del status, traces, confidence, batch


@shoal.agent("typed_echo")
async def echo(ctx: shoal.AgentContext) -> shoal.AgentResult:
    return shoal.AgentResult(output=ctx.text, confidence=1.0)


@shoal.agent("typed_class")
class Typed(shoal.Agent):
    async def run(self, ctx: shoal.AgentContext) -> shoal.AgentResult:
        return shoal.AgentResult(label="x")
