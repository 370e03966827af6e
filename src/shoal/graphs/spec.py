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

from shoal.policies.budget import BudgetSpec

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


# --- models -------------------------------------------------------------------------------------


class Price(_Strict):
    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)


class LlamaCppModelSpec(_Strict):
    """A GGUF model run in-process by llama.cpp: a file path, or an embedded catalog name."""

    kind: Literal["llamacpp"]
    path: str | None = None
    model: str | None = None
    n_ctx: int = Field(default=2048, ge=128)
    threads: int | None = Field(default=None, ge=1)
    chat_format: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> LlamaCppModelSpec:
        if (self.path is None) == (self.model is None):
            raise ValueError("give exactly one of 'path' (a GGUF file) or 'model' (catalog name)")
        return self


class OnnxClassifierModelSpec(_Strict):
    """A text classifier exported to ONNX, with its sidecar JSON of labels next to it."""

    kind: Literal["onnx-classifier"]
    path: str


class OnnxEmbedderModelSpec(_Strict):
    """A sentence embedder in ONNX: a file path, or an embedded catalog name."""

    kind: Literal["onnx-embedder"]
    path: str | None = None
    model: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> OnnxEmbedderModelSpec:
        if (self.path is None) == (self.model is None):
            raise ValueError("give exactly one of 'path' (an ONNX file) or 'model' (catalog name)")
        return self


class OpenAIModelSpec(_Strict):
    """A model behind an OpenAI-compatible HTTP API. The only kind that leaves the machine."""

    kind: Literal["openai"]
    base_url: str
    model: str
    api_key_env: str | None = None
    """Name of the environment variable holding the key (never the key itself)."""
    timeout_s: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=3, ge=0)
    price: Price | None = None
    circuit_failures: int = Field(default=5, ge=1)
    """Consecutive failed calls (unreachable, timeout, 5xx) that open the circuit breaker."""
    circuit_cooldown_s: float = Field(default=30.0, gt=0)
    """How long an open circuit fails calls at once before one probe call is let through."""

    @field_validator("base_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return value


ModelSpec = Annotated[
    LlamaCppModelSpec | OnnxClassifierModelSpec | OnnxEmbedderModelSpec | OpenAIModelSpec,
    Field(discriminator="kind"),
]
MODEL_KINDS = ("llamacpp", "onnx-classifier", "onnx-embedder", "openai")


def is_remote(model: BaseModel) -> bool:
    """Whether a model sends what it is given off this machine."""
    return isinstance(model, OpenAIModelSpec)


# --- nodes --------------------------------------------------------------------------------------


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


class RouteEdge(_Strict):
    """``{from: triage, route: {emergency: comply, default: validate}}``: switch on a label."""

    model_config = ConfigDict(populate_by_name=True)

    source: str = Field(alias="from")
    route: dict[str, str] = Field(min_length=1)

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
SPEC_TAGS = frozenset({"chain", "route", *MODEL_KINDS})
"""Pydantic puts union tags into error locations; they are not keys of the source."""


# --- graph --------------------------------------------------------------------------------------


class EscalationSpec(BudgetSpec):
    """Where escalated nodes go, how much may go there (the budget keys), and how long and how
    much the planner may answer. Escalation policy files can override the budget keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    planner: str
    max_tokens: int = Field(default=256, ge=16)
    """Cap on the planner's answer per escalation."""
    timeout_s: float | None = Field(default=None, gt=0)
    """Per escalation; default: the planner model's own timeout."""
    outbox: str | None = None
    """SQLite file for escalations the planner could not take (relative to the graph file);
    default: ``$SHOAL_OUTBOX``, else ``.shoal/outbox.sqlite`` under the working directory."""

    @property
    def budget(self) -> BudgetSpec:
        return BudgetSpec.model_validate(self.model_dump(include=set(BudgetSpec.model_fields),
                                                         exclude_unset=True))


class GraphSpec(_Strict):
    """A whole graph. Build one in Python or load one with :func:`shoal.load_graph`."""

    shoal: Literal[1] = SPEC_VERSION
    name: str = Field(min_length=1)
    description: str | None = None
    models: dict[str, ModelSpec] = Field(default_factory=dict)
    policies: list[str] = Field(default_factory=list)
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
