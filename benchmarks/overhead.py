"""Per-invoke overhead of shoal over a hand-written LangGraph graph doing the same work.

Both sides run the same 5-node linear graph (n1 -> ... -> n5) of no-op async nodes on one short
text, in one process and event loop, without a checkpointer:

* shoal: ``Graph(GraphSpec(...))`` of five ``noop`` agents, ``await graph.arun(text, id=...)``:
  everything shoal adds per run (input check, PHI guard, agent context and call, thresholds,
  trace records, one ``node_finished`` log event per node, its state and edges, the RunResult).
* raw: a TypedDict ``StateGraph`` whose nodes append ``{"node", "confidence"}`` to a list channel
  with an ``operator.add`` reducer, the least a fair hand-written graph does to keep a trace.

Fair because the agents do no work, so the difference is framework cost alone, and because the
variants take turns in rounds (order rotating) so machine noise hits all alike; the median
per-invoke wall time is compared. shoal logs go to os.devnull at "info" (the production path,
rendering included: ``ratio``) and at "warning", node events filtered (``ratio_quiet``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import json
import operator
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any, TextIO, TypedDict

from langgraph.graph import END, START, StateGraph

import shoal
from shoal.observability import configure_logging

NODES = ("n1", "n2", "n3", "n4", "n5")
TEXT = "Can I move my appointment to Friday afternoon?"
TARGET = 1.3
RESULTS = Path(__file__).resolve().parent / "results" / "overhead.json"

Invoke = Callable[[int], Awaitable[Any]]


class RawState(TypedDict, total=False):
    text: str
    trace: Annotated[list[dict[str, Any]], operator.add]


def _raw_node(name: str) -> Any:  # Any: LangGraph's node protocols are overloaded
    async def node(state: RawState) -> dict[str, Any]:
        return {"trace": [{"node": name, "confidence": 1.0}]}

    return node


def build_raw() -> Invoke:
    builder: StateGraph[RawState, Any, RawState, RawState] = StateGraph(RawState)
    for name in NODES:
        builder.add_node(name, _raw_node(name))
    builder.add_edge(START, NODES[0])
    for a, b in itertools.pairwise(NODES):
        builder.add_edge(a, b)
    builder.add_edge(NODES[-1], END)
    compiled = builder.compile()

    async def invoke(i: int) -> Any:
        return await compiled.ainvoke({"text": TEXT, "trace": []})

    return invoke


def build_shoal() -> Invoke:
    spec = shoal.GraphSpec.model_validate({  # as GraphSpec(...), with the edge as text
        "name": "overhead",
        "nodes": {name: shoal.NodeSpec(agent="noop") for name in NODES},
        "edges": [" -> ".join(NODES)],  # "n1 -> n2 -> n3 -> n4 -> n5"
    })
    graph = shoal.Graph(spec)

    async def invoke(i: int) -> Any:
        return await graph.arun(TEXT, id=f"r{i}")

    return invoke


def summary(samples: list[float]) -> tuple[float, float]:
    """Median and p95, in ms."""
    return statistics.median(samples) * 1e3, statistics.quantiles(samples, n=20)[18] * 1e3


async def measure(n: int, rounds: int, warmup: int, sink: TextIO) -> dict[str, list[float]]:
    invokes = {"shoal": build_shoal(), "langgraph": build_raw(), "shoal_quiet": build_shoal()}
    levels = {"shoal": "info", "langgraph": "info", "shoal_quiet": "warning"}
    configure_logging("info", stream=sink)
    result = await invokes["shoal"](0)
    raw = await invokes["langgraph"](0)
    if [t.node for t in result.nodes] != list(NODES) or result.status != "ok":
        raise RuntimeError(f"shoal graph did not run as expected: {result!r}")
    if [t["node"] for t in raw["trace"]] != list(NODES):
        raise RuntimeError(f"raw graph did not run as expected: {raw!r}")
    samples: dict[str, list[float]] = {name: [] for name in invokes}
    names = list(invokes)
    per_block = max(1, n // rounds)
    for r in range(rounds + 1):  # round 0 is the warm-up
        block = warmup if r == 0 else per_block
        for name in names[r % 3:] + names[:r % 3]:
            configure_logging(levels[name], stream=sink)
            invoke = invokes[name]
            for i in range(block):
                t0 = time.perf_counter()
                await invoke(i)
                if r:
                    samples[name].append(time.perf_counter() - t0)
    configure_logging("info")
    return samples


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="measured invokes per variant")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds")
    parser.add_argument("--warmup", type=int, default=200, help="warm-up invokes per variant")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args(argv)
    with Path(os.devnull).open("w") as sink:
        samples = asyncio.run(measure(args.n, args.rounds, args.warmup, sink))
    stats = {name: summary(s) for name, s in samples.items()}
    raw_ms = stats["langgraph"][0]
    print(f"{'variant':<22}{'median ms':>10}{'p95 ms':>10}{'ratio':>8}")
    for name, label in (("langgraph", "langgraph (raw)"), ("shoal", "shoal, log=info"),
                        ("shoal_quiet", "shoal, log=warning")):
        median, p95 = stats[name]
        print(f"{label:<22}{median:>10.3f}{p95:>10.3f}{median / raw_ms:>8.2f}")
    (shoal_ms, shoal_p95), (quiet_ms, quiet_p95) = stats["shoal"], stats["shoal_quiet"]
    ratio, ratio_quiet = shoal_ms / raw_ms, quiet_ms / raw_ms
    met = ratio <= TARGET
    print(f"ratio shoal/raw (median, info) = {ratio:.2f}; target <= {TARGET}: "
          f"{'met' if met else 'NOT met'} (quiet: {ratio_quiet:.2f})")
    figures = {"ratio": ratio, "shoal_ms": shoal_ms, "langgraph_ms": raw_ms,
               "ratio_quiet": ratio_quiet, "shoal_ms_quiet": quiet_ms, "shoal_p95_ms": shoal_p95,
               "langgraph_p95_ms": stats["langgraph"][1], "shoal_p95_ms_quiet": quiet_p95}
    report = {k: round(v, 4) for k, v in figures.items()} | {
        "target": TARGET, "target_met": met, "n": len(samples["shoal"]), "rounds": args.rounds,
        "warmup": args.warmup, "nodes": len(NODES), "python": platform.python_version(),
        "langgraph": version("langgraph"), "shoal": shoal.__version__,
        "platform": platform.platform(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
