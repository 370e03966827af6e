"""The run state that flows between LangGraph nodes.

Few channels, and no checkpointer: a run lives in one process from start to end. Node results are
:class:`~shoal.graphs.results.NodeTrace` objects, the run's scope travels in ``meta``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypedDict

# Imported at run time, not only for type checking: LangGraph reads these hints to make channels.
from shoal.graphs.results import NodeTrace
from shoal.policies.scope import RunScope


def merge_results(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    return {**left, **right}


def last_value(left: Any, right: Any) -> Any:
    # Fan-out branches may both rewrite the working text in one step; the later write wins
    # instead of LangGraph's InvalidUpdateError for concurrent writes to a plain channel.
    return right


class ErrorRecord(TypedDict):
    code: str
    message: str
    node: str | None


class RunMeta(TypedDict):
    run_id: str
    record_id: str
    input: str
    """The raw input. Agents never see it (they get ``text``); it arms the log PHI filter."""
    scope: RunScope
    """The run's own state (vault, spending), closed by the runtime when the run ends."""


class Halt(TypedDict):
    """Set when a run stops early; later nodes are skipped."""

    status: Literal["refused", "error"]
    error: ErrorRecord | None


class RunState(TypedDict, total=False):
    """Few channels on purpose: LangGraph's per-step cost grows with the number of channels."""

    meta: RunMeta
    text: Annotated[str, last_value]
    """The working text; a masker replaces it for every later node."""
    results: Annotated[dict[str, NodeTrace], merge_results]
    """Per node, in the order the nodes finished (dict insertion order)."""
    halt: Annotated[Halt, last_value]
    """Empty ({}) until a node halts the run: LangGraph starts reducer channels at ``type()``."""
