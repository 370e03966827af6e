"""The agent protocol: what a specialist receives, what it returns, and how it is found by name."""

from __future__ import annotations

import importlib
import inspect
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field

from shoal.errors import AgentError
from shoal.models.base import Backend
from shoal.policies.scope import RunScope

if TYPE_CHECKING:
    from shoal.policies.escalation import Escalator

ENTRY_POINT_GROUP = "shoal.agents"


class AgentResult(BaseModel):
    """What one agent says about one input.

    ``confidence`` is the agent's honest probability that ``output`` is right; the runtime compares
    it with the node's ``escalate_below``. ``label`` is what route edges switch on. ``text``, when
    set, replaces the working text every later node sees (the masker uses it). ``refuse`` stops the
    run with status ``refused``: nothing after this node, and no model, sees the input.
    """

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    output: Any = None
    confidence: float = Field(default=1.0, ge=0.0, le=1.0)
    escalate: bool = False
    reason: str | None = None
    label: str | None = None
    text: str | None = None
    refuse: bool = False
    signals: Any = Field(default=None, exclude=True, repr=False)
    """A classifier's :class:`~shoal.models.base.Signals` for this input, for the node's
    learned router; never serialized."""


class AgentConfig(BaseModel):
    """Base of every agent's config: the node keys the engine does not own. Unknown keys fail."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


@dataclass(frozen=True, slots=True)
class AgentContext:
    """What a node's agent sees: the working text (masked once a masker ran), earlier nodes'
    results, and the run's scope (its pseudonym vault; see :class:`shoal.policies.scope.RunScope`).

    The runtime passes the run's scope; a context built by hand (in a test) gets a fresh one.
    """

    node: str
    run_id: str
    record_id: str
    text: str
    results: Mapping[str, AgentResult] = field(default_factory=dict)
    scope: RunScope = None  # type: ignore[assignment]  # filled in by __post_init__

    def __post_init__(self) -> None:
        if cast("RunScope | None", self.scope) is None:
            object.__setattr__(self, "scope", RunScope(self.run_id, self.record_id))


class Agent:
    """Base class of specialists. Subclasses set ``Config`` and implement :meth:`run`.

    One instance serves every run of its node, concurrently: keep per-run data in locals.
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type[AgentConfig]] = AgentConfig
    model_protocols: ClassVar[tuple[type, ...]] = ()
    """The model protocols (shoal.models) this agent can run on; non-empty means a node of it
    must name a model, and the model must implement one of them."""
    extra: ClassVar[str | None] = None
    """The optional extra (``shoal[privacy]``) this agent needs; the compiler names it when it is
    not installed."""

    def __init__(self, config: AgentConfig, *, node: str, model: Backend | None = None) -> None:
        self.config = config
        self.node = node
        self.model: Any = model
        """The node's backend (a Generator, LabelScorer, Classifier or Embedder), or None.
        Checked below against ``model_protocols``, so a subclass may use it as the protocol it
        asked for (typed loosely: the check is at run time, per subclass)."""
        wanted = type(self).model_protocols
        if wanted and not isinstance(model, wanted):
            names = " or ".join(p.__name__ for p in wanted)
            raise AgentError(f"model must be a {names}, got {type(model).__name__}",
                             node=node, agent=self.name)

    @classmethod
    def labels(cls, config: AgentConfig) -> frozenset[str] | None:
        """The labels this agent can put in ``AgentResult.label`` with ``config``; None if open."""
        return None

    @classmethod
    def step_targets(cls, config: AgentConfig) -> dict[str, frozenset[str]] | None:
        """For an agent that splits a message into steps (``intent_splitter``): each step
        target node and the labels it answers, as the compiler checks them against the route;
        None for every other agent."""
        return None

    @classmethod
    def asks_planner(cls, config: AgentConfig) -> bool:
        """Whether a node of this agent with ``config`` calls the graph's planner itself, not
        through an escalation rule (a splitter in plan mode): diagrams show it."""
        return False

    def bind_escalator(self, escalator: Escalator | None) -> None:
        """Called once by the runtime with the graph's escalator (its planner behind the
        privacy boundary, budget and breaker, and its ledger). An agent that asks the planner
        itself (plan mode) keeps it; the others have no use for it."""

    @classmethod
    def needs_model(cls) -> bool:
        """Whether a node of this agent must name a model."""
        return bool(cls.model_protocols)

    async def run(self, ctx: AgentContext) -> AgentResult:
        raise NotImplementedError


AgentFunction = Callable[..., Awaitable[AgentResult]]
T = TypeVar("T", bound=type[Agent] | AgentFunction)

_registry: dict[str, type[Agent]] = {}
_lock = threading.Lock()
_builtins_loaded = False
_entry_points_loaded = False


class _FunctionAgent(Agent):
    """Adapts ``async def f(ctx) -> AgentResult`` (optionally ``f(ctx, config)``) to an Agent."""

    func: ClassVar[AgentFunction]
    wants_config: ClassVar[bool]
    fixed_labels: ClassVar[frozenset[str] | None]

    @classmethod
    def labels(cls, config: AgentConfig) -> frozenset[str] | None:
        return cls.fixed_labels

    async def run(self, ctx: AgentContext) -> AgentResult:
        if self.wants_config:
            return await type(self).func(ctx, self.config)
        return await type(self).func(ctx)


def register(name: str, agent: type[Agent], *, replace: bool = False) -> None:
    """Register an Agent subclass under ``name``. Re-registering the same class is a no-op."""
    if not name.isidentifier():
        raise ValueError(f"agent name {name!r} must be an identifier")
    with _lock:
        existing = _registry.get(name)
        if existing is not None and existing is not agent and not replace:
            raise ValueError(f"agent {name!r} is already registered ({existing.__qualname__})")
        _registry[name] = agent


def agent(
    name: str,
    *,
    config: type[AgentConfig] = AgentConfig,
    labels: frozenset[str] | set[str] | None = None,
) -> Callable[[T], T]:
    """Register a user agent: an :class:`Agent` subclass, or an ``async def`` taking the context.

    ``@shoal.agent("echo")`` over ``async def echo(ctx) -> AgentResult`` makes ``agent: echo``
    usable in graph YAML. A function with a second parameter receives its node's validated
    ``config`` (an instance of the ``config`` model).
    """

    def decorate(target: T) -> T:
        func: Any = target  # checked as Any so ``target`` is returned exactly as given
        if isinstance(func, type) and issubclass(func, Agent):
            func.name = name
            register(name, func)
            return target
        if not inspect.iscoroutinefunction(func):
            raise TypeError(
                f"@shoal.agent({name!r}) needs an Agent subclass or an async function, "
                f"got {target!r}"
            )
        params = inspect.signature(func).parameters
        cls = type(
            f"FunctionAgent_{name}",
            (_FunctionAgent,),
            {
                "name": name,
                "Config": config,
                "func": staticmethod(func),
                "wants_config": len(params) >= 2,
                "fixed_labels": frozenset(labels) if labels is not None else None,
                "__module__": getattr(target, "__module__", __name__),
            },
        )
        register(name, cls)
        return target

    return decorate


BUILTIN_MODULES = (
    "shoal.agents.builtin",
    "shoal.agents.masker",
    "shoal.agents.input_guard",
    "shoal.agents.classifier",
    "shoal.agents.validator",
    "shoal.agents.compliance",
    "shoal.agents.planner",
    "shoal.agents.responder",
    "shoal.agents.splitter",
    "shoal.agents.join",
)
"""Each registers its agents on import; none imports a model library at import time."""


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        for module in BUILTIN_MODULES:
            importlib.import_module(module)


def _load_entry_points() -> None:
    """Plugins declare ``[project.entry-points."shoal.agents"] name = "pkg.mod:Thing"``."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _registry:
            continue
        target = ep.load()
        if isinstance(target, type) and issubclass(target, Agent):
            register(ep.name, target)
        elif ep.name not in _registry:
            # A decorated function registered itself on import under its own name; a plain one
            # is adapted here under the entry point's name.
            agent(ep.name)(target)


def get_agent(name: str) -> type[Agent] | None:
    """The Agent class registered as ``name``, looking at built-ins, then plugins."""
    _load_builtins()
    found = _registry.get(name)
    if found is None:
        _load_entry_points()
        found = _registry.get(name)
    return found


def reset_plugin_cache() -> None:
    """Look at the ``shoal.agents`` entry points again on the next miss (after installs)."""
    global _entry_points_loaded
    _entry_points_loaded = False


def agent_names() -> list[str]:
    """Every registered agent name, plugins included, sorted."""
    _load_builtins()
    _load_entry_points()
    return sorted(_registry)
