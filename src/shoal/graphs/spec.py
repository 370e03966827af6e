"""The graph spec (``shoal: 1``) as pydantic models: what a graph YAML may say, and nothing else.

Structure only: whether agents, models and edges fit together is checked in ``compiler.check``,
so that a spec built in Python gets the same checks as one loaded from a file.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from shoal.models.kinds import MODEL_KINDS, MODEL_SPEC_TAGS, ModelSpec, is_remote
from shoal.models.specs import (
    LlamaCppModelSpec,
    OnnxClassifierModelSpec,
    OnnxEmbedderModelSpec,
    OpenAIModelSpec,
    PluginModelSpec,
    Price,
)
from shoal.policies.escalation.rules import EscalationSpec

__all__ = [
    "END",
    "MODEL_KINDS",
    "ChainEdge",
    "EscalationSpec",
    "GraphSpec",
    "LlamaCppModelSpec",
    "ModelSpec",
    "NodeSpec",
    "OnnxClassifierModelSpec",
    "OnnxEmbedderModelSpec",
    "OpenAIModelSpec",
    "PluginModelSpec",
    "Price",
    "RouteEdge",
    "StepsSpec",
    "is_remote",
]

SPEC_VERSION: Literal[1] = 1
END = "END"
RESERVED_NODE_NAMES = frozenset({END, "START", "__start__", "__end__"})
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


def _check_name(kind: str, name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"{kind} name {name!r} must be letters, digits, '_' or '-'")
    if name in RESERVED_NODE_NAMES:
        raise ValueError(f"{kind} name {name!r} is reserved")
    return name


# --- nodes --------------------------------------------------------------------------------------


class LearnSpec(_Strict):
    """``learn:`` of a classifier node: the data ``shoal learn`` retrains it on and the frozen
    split ``shoal promote`` judges every version on. Paths are relative to the graph file."""

    train: str | list[str]
    """Labelled JSONL (``id``, ``text``, ``label``) the node's model was trained on: raw
    messages, run through the graph up to the node as at run time. A list when the model was
    trained on several files (for example its data plus hand-written hard cases): a retrain
    must see all of them, or the candidate is judged against a champion that saw more."""
    eval: str
    """Labelled JSONL never trained on: the frozen evaluation split of the promotion gate. Its
    hash goes into every version's lineage; a promotion refuses when it has changed."""
    group_key: str | None = "family"
    """Field that keeps near-duplicate training records in one fold of a router's training
    (records without it are their own group)."""
    min_shadow: int = Field(default=20, ge=1)
    """Shadow records with a planner's or a person's label a candidate needs before the gate
    compares it with the champion on live traffic."""
    accuracy_tolerance: float = Field(default=0.0, ge=0.0, le=0.05)
    """How much lower than the champion's the candidate's accuracy on the frozen split may be
    (critical-label recall has no tolerance)."""
    ledger_weight: int = Field(default=1, ge=1, le=50)
    """How many times each ledger row counts in training: the deployment's own traffic, a few
    hundred rows beside thousands of base rows, barely moves the model at 1."""
    target_accuracy: float | None = Field(default=None, ge=0.0, le=1.0)
    """The node's cascade accuracy target on the frozen split (local answers, with an
    always-right planner for what escalates): a candidate must reach it. None: the champion's."""


class NodeSpec(BaseModel):
    """A node: its agent, optionally its model and escalation threshold, and the agent's config.

    Keys the engine does not own (for example a classifier's ``labels``) are the agent's config
    and are checked against that agent's config model.
    """

    model_config = ConfigDict(extra="allow", frozen=True, hide_input_in_errors=True)

    agent: str
    model: str | None = None
    escalate_below: float | None = Field(default=None, ge=0.0, le=1.0)
    """Escalate this node when the agent's confidence falls below this."""
    timeout_s: float | None = Field(default=None, gt=0)
    description: str | None = None
    learn: LearnSpec | None = None
    """Where ``shoal learn`` finds the node's base data and frozen evaluation split."""

    @property
    def agent_config(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


# --- edges --------------------------------------------------------------------------------------


class ChainEdge(_Strict):
    """``a -> b -> c``; a step in brackets fans out (``a -> [b, c]``) and the next step joins."""

    steps: list[list[str]] = Field(min_length=2)

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"steps": parse_chain(value)}
        return value

    @classmethod
    def parse(cls, text: str) -> ChainEdge:
        """``ChainEdge.parse("a -> [b, c] -> d")``, for specs built in Python."""
        return cls.model_validate(text)

    def pairs(self) -> list[tuple[list[str], list[str]]]:
        return list(zip(self.steps, self.steps[1:], strict=False))

    def __str__(self) -> str:
        return " -> ".join(s[0] if len(s) == 1 else f"[{', '.join(s)}]" for s in self.steps)


def parse_chain(text: str) -> list[list[str]]:
    parts = [p.strip() for p in text.split("->")]
    if len(parts) < 2:
        raise ValueError(f"an edge needs at least two steps joined by '->', got {text!r}")
    steps: list[list[str]] = []
    for part in parts:
        if part.startswith("[") and part.endswith("]"):
            names = [n.strip() for n in part[1:-1].split(",")]
        else:
            names = [part]
        for name in names:
            if not name:
                raise ValueError(f"empty step in edge {text!r}")
            if not _NAME.match(name) and name != END:
                raise ValueError(f"bad node name {name!r} in edge {text!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"a node is named twice in one step of edge {text!r}")
        steps.append(names)
    return steps


class StepsSpec(_Strict):
    """``steps: {join: reply}`` on a route: when the source node (an ``intent_splitter``) finds
    several requests in one message, each runs as its own branch, concurrently (LangGraph's
    ``Send``): from the node its label routes to, along plain edges to an ``output`` node. Then
    ``join`` runs once and makes one reply of theirs. A message with one request takes the
    route as it would without ``steps``."""

    join: str


class RouteEdge(_Strict):
    """``{from: triage, route: {emergency: comply, default: validate}}``: switch on a label."""

    model_config = ConfigDict(populate_by_name=True)

    source: str = Field(alias="from")
    route: dict[str, str] = Field(min_length=1)
    steps: StepsSpec | None = None
    """Multi-request messages: one branch per request, then ``join`` (see :class:`StepsSpec`)."""

    @property
    def default(self) -> str | None:
        return self.route.get("default")

    @property
    def labelled(self) -> dict[str, str]:
        return {k: v for k, v in self.route.items() if k != "default"}


def _edge_kind(value: Any) -> str:
    return "chain" if isinstance(value, str | ChainEdge) else "route"


Edge = Annotated[
    Annotated[ChainEdge, Tag("chain")] | Annotated[RouteEdge, Tag("route")],
    Discriminator(_edge_kind),
]
SPEC_TAGS = frozenset({"chain", "route", *MODEL_SPEC_TAGS})
"""Pydantic puts union tags into error locations; they are not keys of the source."""


# --- graph --------------------------------------------------------------------------------------


class GraphSpec(_Strict):
    """A whole graph. Build one in Python or load one with :func:`shoal.load_graph`."""

    shoal: Literal[1] = SPEC_VERSION
    name: str = Field(min_length=1)
    description: str | None = None
    models: dict[str, ModelSpec] = Field(default_factory=dict)
    """Model entries by name; ``kind`` picks the spec (a plugin's kind: see
    :mod:`shoal.models.kinds`)."""
    packs: list[str] = Field(default_factory=list)
    """Identifier packs (built-in names or .yaml paths): the first is the one the egress scan
    uses; default: the first masker's pack, else ``hipaa_safe_harbor``."""
    nodes: dict[str, NodeSpec] = Field(min_length=1)
    edges: list[Edge] = Field(default_factory=list)
    entry: str | list[str] | None = None
    """Where runs start; default: the first node listed."""
    output: str | list[str] | None = None
    """Whose output is the run's output: a node, or a list of nodes (the first of them that
    ran, for graphs whose branches end in different nodes); default: the last node that ran."""
    escalation: EscalationSpec | None = None

    @field_validator("nodes")
    @classmethod
    def _node_names(cls, value: dict[str, NodeSpec]) -> dict[str, NodeSpec]:
        for name in value:
            _check_name("node", name)
        return value

    @field_validator("models")
    @classmethod
    def _model_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            _check_name("model", name)
        return value

    @property
    def entries(self) -> list[str]:
        if self.entry is None:
            return [next(iter(self.nodes))]
        return [self.entry] if isinstance(self.entry, str) else list(self.entry)

    @property
    def outputs(self) -> list[str]:
        """The ``output`` nodes as a list; empty when the graph names none."""
        if self.output is None:
            return []
        return [self.output] if isinstance(self.output, str) else list(self.output)
