"""GraphSpec -> LangGraph ``StateGraph``, after the static checks a spec must pass.

The checks (agents, models, edges, reachability, route labels, cycles) return Problems keyed by
spec path, so the loader can give each a file:line:col and a Python-built spec a path.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Coroutine, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langgraph.graph import END as LG_END
from langgraph.graph import START, StateGraph
from pydantic import ValidationError

from shoal.agents.base import Agent, AgentConfig, agent_names, get_agent
from shoal.errors import ShoalError
from shoal.extras import missing
from shoal.graphs.node import NodeRunner
from shoal.graphs.spec import END, ChainEdge, GraphSpec, PluginModelSpec, RouteEdge
from shoal.graphs.state import RunState
from shoal.graphs.steps import StepRunner, step_node, steps_router
from shoal.models.base import Generator
from shoal.models.kinds import (
    MODEL_KINDS,
    ModelKind,
    get_kind,
    is_remote,
    kind_load_error,
    kind_name_of,
    kind_names,
    kinds_serving,
)
from shoal.models.router import load_router
from shoal.models.specs import boundary_of, egress_of
from shoal.policies.audit import AuditWriter, audit_log
from shoal.policies.escalation import UNMASKABLE_AGENTS, RemoteGuard, resolve_rules
from shoal.policies.privacy import builtin_pack_names
from shoal.yaml_source import Loc, Problem, validation_problems


def _did_you_mean(name: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; known: {', '.join(sorted(options))}" if options else ""


@dataclass
class _Topology:
    """Outgoing edges per node, as the compiler and the checks both need them."""

    plain: dict[str, list[str]] = field(default_factory=dict)
    joins: list[tuple[list[str], str]] = field(default_factory=list)
    routes: dict[str, RouteEdge] = field(default_factory=dict)

    def successors(self, node: str) -> list[str]:
        out = list(self.plain.get(node, []))
        out += [dst for srcs, dst in self.joins if node in srcs]
        if node in self.routes:
            edge = self.routes[node]
            out += list(edge.route.values())
            if edge.steps is not None:
                out.append(edge.steps.join)
        return [n for n in out if n != END]

    def chain(self, start: str, outputs: Sequence[str]) -> list[str] | None:
        """The nodes from ``start`` along plain single edges to the first ``outputs`` node,
        both included; None when a route, a fan-out, a join or the end comes first."""
        chain = [start]
        while chain[-1] not in outputs:
            nxt = self.plain.get(chain[-1], [])
            if (len(nxt) != 1 or chain[-1] in self.routes or nxt[0] == END
                    or any(chain[-1] in srcs for srcs, _ in self.joins) or nxt[0] in chain):
                return None
            chain.append(nxt[0])
        return chain


def _topology(spec: GraphSpec) -> _Topology:
    topo = _Topology()
    for edge in spec.edges:
        if isinstance(edge, ChainEdge):
            for srcs, dsts in edge.pairs():
                for dst in dsts:
                    if len(srcs) > 1:
                        topo.joins.append((srcs, dst))
                    else:
                        topo.plain.setdefault(srcs[0], []).append(dst)
        else:
            topo.routes[edge.source] = edge
    return topo


def check(
    spec: GraphSpec,
    *,
    base_dir: Path | None = None,
    broken_nodes: frozenset[str] = frozenset(),
    skip_topology: bool = False,
) -> list[Problem]:
    """Every static mistake in ``spec``; an empty list means it compiles.

    ``broken_nodes`` and ``skip_topology`` come from a spec that already failed validation:
    those parts were reported and would only produce echoes here.
    """
    problems: list[Problem] = []
    nodes = spec.nodes
    agent_classes: dict[str, type[Agent]] = {}
    configs: dict[str, AgentConfig] = {}
    known_agents: list[str] | None = None

    model_kinds: dict[str, ModelKind[Any]] = {}
    for name, model in spec.models.items():
        kind, found = _check_model(name, model)
        problems += found
        if kind is not None:
            model_kinds[name] = kind

    for name, node in nodes.items():
        cls = get_agent(node.agent) if node.agent else None
        if not node.agent:
            pass
        elif cls is None:
            known_agents = known_agents or agent_names()
            problems.append(Problem(("nodes", name, "agent"),
                                    f"unknown agent {node.agent!r}"
                                    f"{_did_you_mean(node.agent, known_agents)}"))
        elif cls.extra is not None and (absent := missing(cls.extra)) is not None:
            problems.append(Problem(("nodes", name, "agent"), f"agent {node.agent!r} {absent}"))
        elif name not in broken_nodes:
            agent_classes[name] = cls
            try:
                configs[name] = cls.Config.model_validate(node.agent_config)
            except ValidationError as exc:
                for p in validation_problems(exc, ("nodes", name)):
                    message = p.message
                    if message.startswith("unknown key"):
                        allowed = ["agent", "model", "escalate_below", "timeout_s",
                                   "description", *cls.Config.model_fields]
                        message = (f"{message} for agent {node.agent!r}"
                                   f"{_did_you_mean(str(p.loc[-1]), allowed)}")
                    problems.append(Problem(p.loc, message, p.at_key))
            if cls.needs_model() and node.model is None:
                problems.append(Problem(("nodes", name),
                                        f"agent {node.agent!r} needs a 'model'"))
        if node.model is not None and node.model not in spec.models:
            problems.append(Problem(("nodes", name, "model"),
                                    f"unknown model {node.model!r}"
                                    f"{_did_you_mean(node.model, list(spec.models))}"))
        elif node.model is not None and cls is not None and cls.model_protocols:
            problems += _check_model_fits(name, node.agent, cls, node.model,
                                          model_kinds.get(node.model))

    if spec.escalation is not None and spec.escalation.planner not in spec.models:
        problems.append(Problem(("escalation", "planner"),
                                f"unknown model {spec.escalation.planner!r}"
                                f"{_did_you_mean(spec.escalation.planner, list(spec.models))}"))

    problems += _check_packs(spec, base_dir)
    problems += _check_escalation(spec, base_dir, agent_classes, model_kinds,
                                  skip_topology=skip_topology)
    problems += _check_edges(spec, agent_classes, configs, skip_topology=skip_topology)
    return problems


def _check_model(name: str, model: object) -> tuple[ModelKind[Any] | None, list[Problem]]:
    """A ``models:`` entry's kind: registered, its extra installed, and (for a plugin's kind,
    which the graph spec only collects) its keys valid for the kind's own spec."""
    kind_name = kind_name_of(model)
    if kind_name is None:
        return None, []  # no kind, or not a string: the spec's validation said so
    where: Loc = ("models", name, "kind")
    kind = get_kind(kind_name)
    if kind is None:
        broken = kind_load_error(kind_name)
        if broken is not None:
            return None, [Problem(where, f"model kind {kind_name!r} failed to load from its "
                                         f"'shoal.models' entry point: {broken}")]
        return None, [Problem(where, f"unknown model kind {kind_name!r}"
                                     f"{_did_you_mean(kind_name, kind_names())}")]
    problems = []
    if kind.extra is not None and (absent := missing(kind.extra)) is not None:
        problems.append(Problem(where, f"model kind {kind_name!r} {absent}"))
    # A built-in kind's entry was validated with the graph spec, also when it failed there
    # (then it is still raw data here); a plugin's entry is validated against its kind now.
    if not isinstance(model, kind.spec) and kind_name not in MODEL_KINDS:
        raw = model.config if isinstance(model, PluginModelSpec) else model
        try:
            kind.spec.model_validate(raw)
        except ValidationError as exc:
            for p in validation_problems(exc, ("models", name)):
                message = p.message
                if message.startswith("unknown key"):
                    message = (f"{message} for model kind {kind_name!r}"
                               f"{_did_you_mean(str(p.loc[-1]), list(kind.spec.model_fields))}")
                problems.append(Problem(p.loc, message, p.at_key))
    return kind, problems


def _check_model_fits(
    node: str, agent: str, cls: type[Agent], model_name: str, kind: ModelKind[Any] | None
) -> list[Problem]:
    if kind is None:
        return []  # an unknown kind is reported at the model
    if any(kind.serves(p) for p in cls.model_protocols):
        return []
    wanted = " or ".join(p.__name__ for p in cls.model_protocols)
    has = " and ".join(p.__name__ for p in kind.protocols)
    return [Problem(("nodes", node, "model"),
                    f"agent {agent!r} needs a {wanted} model; {model_name!r} ({kind.name}) "
                    f"serves {has}")]


def _check_packs(spec: GraphSpec, base_dir: Path | None) -> list[Problem]:
    problems = []
    packs: list[str] | None = None
    for i, pack in enumerate(spec.packs):
        if pack.endswith((".yaml", ".yml")):
            path = Path(pack) if base_dir is None else base_dir / pack
            if not path.is_file():
                problems.append(Problem(("packs", i), f"pack file {pack!r} not found"))
        else:
            packs = packs if packs is not None else builtin_pack_names()
            if pack not in packs:
                problems.append(Problem(("packs", i), f"unknown identifier pack {pack!r}"
                                                      f"{_did_you_mean(pack, packs)}"))
    return problems


def _check_escalation(
    spec: GraphSpec,
    base_dir: Path | None,
    agents: dict[str, type[Agent]],
    kinds: dict[str, ModelKind[Any]],
    *,
    skip_topology: bool = False,
) -> list[Problem]:
    """Policy files, budget keys that need prices, and the privacy boundary: no path from an
    entry may reach a remote model, directly or by escalation, without passing a masker."""
    rules = resolve_rules(spec.nodes, spec.escalation, base_dir)
    problems = [Problem(("escalation", "policies", i), message) for i, message in rules.problems]
    for name, rule in rules.nodes.items():
        if rule is not None and rule.router is not None:
            try:
                load_router(rule.router.model)
            except ShoalError as exc:
                problems.append(Problem(("nodes", name), f"its escalation router: {exc.message}"))
    esc = spec.escalation
    planner = spec.models.get(esc.planner) if esc is not None else None
    if esc is not None and planner is not None:
        kind = kinds.get(esc.planner)
        if kind is not None and not kind.serves(Generator):
            problems.append(Problem(("escalation", "planner"),
                                    f"the planner {esc.planner!r} must be a Generator model "
                                    f"(kind {' or '.join(kinds_serving(Generator))}); "
                                    f"{kind.name} serves "
                                    f"{' and '.join(p.__name__ for p in kind.protocols)}"))
        if rules.budget.uses_money and getattr(planner, "price", None) is None:
            problems.append(Problem(("escalation",), "a USD budget needs a 'price' on the "
                                                     f"planner model {esc.planner!r}"))
    if skip_topology:
        return problems
    # A model inside the organisation's trust boundary (``boundary: inside``) may be sent
    # unmasked text: only the ones outside it need a masker on the way.
    remote = {name for name, model in spec.models.items()
              if is_remote(model) and boundary_of(model) != "inside"}
    planner_remote = esc is not None and esc.planner in remote
    topo = _topology(spec)
    # Walk from the entries without stepping past a masker; `via` keeps one path for the message.
    via: dict[str, list[str]] = {}
    todo = [e for e in spec.entries if e in spec.nodes]
    for e in todo:
        via[e] = [e]
    while todo:
        name = todo.pop()
        if spec.nodes[name].agent in UNMASKABLE_AGENTS:
            continue
        for nxt in topo.successors(name):
            if nxt in spec.nodes and nxt not in via:
                via[nxt] = [*via[name], nxt]
                todo.append(nxt)
    for name, path in via.items():
        node = spec.nodes[name]
        route = " -> ".join(path)
        if node.model in remote:
            problems.append(Problem(
                ("nodes", name, "model"),
                f"node {name!r} sends its input to the remote model {node.model!r}, but the "
                f"path {route} passes no privacy_masker; put a masker before it, or mark the "
                "model 'boundary: inside' if it runs inside your organisation's trust boundary"))
            continue
        rule = rules.nodes.get(name)
        if planner_remote and rule is not None and rule.active and name in agents:
            where: Loc = (("nodes", name, "escalate_below")
                          if node.escalate_below is not None else ("nodes", name))
            problems.append(Problem(
                where,
                f"node {name!r} can escalate to the remote planner {esc.planner!r}, but the "  # type: ignore[union-attr]
                f"path {route} passes no privacy_masker; put a masker before it, give it "
                "'{below: null, on_flag: false}' in an escalation policy, or mark the planner "
                "'boundary: inside' if it runs inside your organisation's trust boundary"))
    return problems


def _check_edges(
    spec: GraphSpec,
    agents: dict[str, type[Agent]],
    configs: dict[str, AgentConfig],
    *,
    skip_topology: bool = False,
) -> list[Problem]:
    problems: list[Problem] = []
    nodes = spec.nodes

    def missing(name: str, loc: Loc, *, target: bool) -> bool:
        if name in nodes or (target and name == END):
            return False
        problems.append(Problem(loc, f"edge to a missing node {name!r}"
                                     f"{_did_you_mean(name, list(nodes))}"))
        return True

    seen_pairs: set[tuple[str, str]] = set()
    route_sources: dict[str, int] = {}
    plain_sources: dict[str, int] = {}
    for i, edge in enumerate(spec.edges):
        if isinstance(edge, ChainEdge):
            for j, step in enumerate(edge.steps):
                for name in step:
                    if name == END and j < len(edge.steps) - 1:
                        problems.append(Problem(("edges", i), "END can only be the last step"))
                    else:
                        missing(name, ("edges", i), target=j > 0)
            for srcs, dsts in edge.pairs():
                for src in srcs:
                    plain_sources.setdefault(src, i)
                    for dst in dsts:
                        if (src, dst) in seen_pairs:
                            problems.append(Problem(("edges", i),
                                                    f"edge {src} -> {dst} is declared twice"))
                        seen_pairs.add((src, dst))
        else:
            src = edge.source
            if not missing(src, ("edges", i, "from"), target=False):
                if src in route_sources:
                    problems.append(Problem(("edges", i, "from"),
                                            f"node {src!r} already has a route "
                                            f"(edge {route_sources[src]})"))
                route_sources[src] = i
                problems += _check_route_labels(spec, i, edge, agents, configs)
            for label, dst in edge.route.items():
                missing(dst, ("edges", i, "route", label), target=True)
            if edge.steps is not None and not missing(
                    edge.steps.join, ("edges", i, "steps", "join"), target=False):
                problems += _check_steps(spec, i, edge, agents, configs)
    for src, i in route_sources.items():
        if src in plain_sources:
            problems.append(Problem(("edges", i, "from"),
                                    f"node {src!r} has both a route and a plain edge "
                                    f"(edge {plain_sources[src]}); a routed node goes one way"))

    entries = spec.entries
    for entry in entries:
        if entry not in nodes:
            problems.append(Problem(("entry",), f"entry node {entry!r} does not exist"
                                                f"{_did_you_mean(entry, list(nodes))}"))
    outputs = spec.outputs
    for name in outputs:
        if name not in nodes:
            problems.append(Problem(("output",), f"output node {name!r} does not exist"
                                                 f"{_did_you_mean(name, list(nodes))}"))
    if problems or skip_topology:
        return problems  # reachability over broken edges would only repeat them

    topo = _topology(spec)
    for i, edge in enumerate(spec.edges):
        if isinstance(edge, RouteEdge) and edge.steps is not None:
            for dst in sorted(set(edge.route.values()) - {END}):
                if topo.chain(dst, outputs) is None:
                    problems.append(Problem(
                        ("edges", i, "steps"),
                        f"step target {dst!r} does not reach an output node ({', '.join(outputs)})"
                        " by plain edges: a step runs from its target to an output node"))
    reached: set[str] = set()
    stack = [e for e in entries if e in nodes]
    while stack:
        node = stack.pop()
        if node not in reached:
            reached.add(node)
            stack.extend(topo.successors(node))
    for name in nodes:
        if name not in reached:
            problems.append(Problem(("nodes", name),
                                    f"node {name!r} is unreachable from the entry "
                                    f"({', '.join(entries)})", at_key=True))
    cycle = _find_cycle(list(nodes), topo)
    if cycle:
        problems.append(Problem(("edges",), "cycle: " + " -> ".join(cycle)
                                + " (graphs must be acyclic)"))
    return problems


def _check_steps(
    spec: GraphSpec, index: int, edge: RouteEdge,
    agents: dict[str, type[Agent]], configs: dict[str, AgentConfig],
) -> list[Problem]:
    """A route with ``steps``: its source makes steps, its targets agree with the route, and
    the graph says which nodes are outputs (where each step's chain ends)."""
    problems = []
    loc = ("edges", index, "steps")
    if spec.output is None:
        problems.append(Problem(loc, "a route with steps needs the graph's 'output' list: each "
                                     "step runs from its target to an output node"))
    cls, config = agents.get(edge.source), configs.get(edge.source)
    if cls is None or config is None:
        return problems
    targets = cls.step_targets(config)
    if targets is None:
        problems.append(Problem(loc, f"node {edge.source!r} (agent "
                                     f"{spec.nodes[edge.source].agent!r}) makes no steps; an "
                                     "intent_splitter does"))
        return problems
    for target, labels in targets.items():
        for label in sorted(labels):
            routed = edge.route.get(label, edge.default)
            if routed != target:
                problems.append(Problem(
                    ("nodes", edge.source, "targets", target),
                    f"target {target!r} lists label {label!r}, but the route from "
                    f"{edge.source!r} sends {label!r} to {routed!r}"))
    return problems


def _check_route_labels(
    spec: GraphSpec, index: int, edge: RouteEdge,
    agents: dict[str, type[Agent]], configs: dict[str, AgentConfig],
) -> list[Problem]:
    cls, config = agents.get(edge.source), configs.get(edge.source)
    if cls is None or config is None:
        return []
    produces = cls.labels(config)
    if produces is None:
        return []
    problems = []
    for label in edge.labelled:
        if label not in produces:
            problems.append(Problem(
                ("edges", index, "route", label),
                f"node {edge.source!r} (agent {spec.nodes[edge.source].agent!r}) cannot produce "
                f"label {label!r}; it produces: {', '.join(sorted(produces))}",
                at_key=True))
    return problems


def _find_cycle(names: list[str], topo: _Topology) -> list[str] | None:
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(names, white)
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = grey
        path.append(node)
        for nxt in topo.successors(node):
            if colour.get(nxt) == grey:
                return [*path[path.index(nxt):], nxt]
            if colour.get(nxt) == white:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        colour[node] = black
        return None

    for name in names:
        if colour[name] == white:
            found = visit(name)
            if found:
                return found
    return None


# --- compilation --------------------------------------------------------------------------------


def _to_lg(name: str) -> str:
    return LG_END if name == END else name


def _label_router(
    node: str, edge: RouteEdge
) -> Callable[[RunState], Coroutine[Any, Any, Hashable]]:
    table = {label: _to_lg(dst) for label, dst in edge.labelled.items()}
    fallback = _to_lg(edge.default) if edge.default is not None else LG_END

    # async on purpose: LangGraph runs a sync path function in its thread pool, a hop per step.
    async def route(state: RunState) -> Hashable:
        if state.get("halt"):
            return LG_END
        label = state["results"][node].label
        return table.get(label, fallback) if label is not None else fallback

    return route


@dataclass(frozen=True)
class Compiled:
    graph: Any  # CompiledStateGraph; typed loosely because its generics add nothing here
    runners: dict[str, NodeRunner]


AUDIT_ENV = "SHOAL_AUDIT_LOG"
"""The audit log of a graph whose compliance checker names none (as the checker reads it)."""


def _audit_path(spec: GraphSpec) -> Path | None:
    """The graph's audit log: its compliance checker's ``audit_log``, else ``$SHOAL_AUDIT_LOG``,
    else none."""
    for node in spec.nodes.values():
        configured = node.agent_config.get("audit_log")
        if node.agent == "compliance_checker" and isinstance(configured, str) and configured:
            return Path(configured)
    found = os.environ.get(AUDIT_ENV)
    return Path(found) if found else None


def bind_guards(spec: GraphSpec, runners: Mapping[str, NodeRunner]) -> list[RemoteGuard]:
    """Give every remote model's guard its ``models:`` entry's ``boundary`` and ``egress``
    settings (the runtime builds the guards before the runners; the spec is the one source of
    both). A guard of a model inside the boundary gets the graph's audit log, opened now so that
    a damaged file stops the graph from starting. Returns the guards bound."""
    guards: dict[int, RemoteGuard] = {}
    for runner in runners.values():
        escalator = runner.escalator
        for model in (escalator.planner if escalator is not None else None,
                      getattr(runner.agent, "model", None)):
            if isinstance(model, RemoteGuard) and model.model in spec.models:
                guards[id(model)] = model
    audit: AuditWriter | None = None
    for guard in guards.values():
        entry = spec.models[guard.model]
        boundary = boundary_of(entry)
        if boundary == "inside" and audit is None and (path := _audit_path(spec)) is not None:
            audit = audit_log(path)
        guard.configure(boundary=boundary, egress=egress_of(entry),
                        audit=audit if boundary == "inside" else None)
    return list(guards.values())


def compile_spec(spec: GraphSpec, runner_factory: Callable[[str], NodeRunner]) -> Compiled:
    """Build and compile the LangGraph for a checked spec; one NodeRunner per node, and the
    remote models' guards bound to their entries' settings (:func:`bind_guards`)."""
    builder: StateGraph[RunState, Any, RunState, RunState] = StateGraph(RunState)
    runners = {name: runner_factory(name) for name in spec.nodes}
    bind_guards(spec, runners)
    for name, runner in runners.items():
        builder.add_node(name, runner)
    topo = _topology(spec)
    outputs = spec.outputs
    for entry in spec.entries:
        builder.add_edge(START, entry)
    for name in spec.nodes:
        if name in topo.routes:
            edge = topo.routes[name]
            path_map = sorted({_to_lg(d) for d in edge.route.values()} | {LG_END})
            if edge.steps is None:
                builder.add_conditional_edges(name, _label_router(name, edge), path_map)
                continue
            chains = {dst: [runners[n] for n in chain]
                      for dst in set(edge.route.values()) - {END}
                      if (chain := topo.chain(dst, outputs)) is not None}
            of = getattr(runners[name].agent.config, "of", name)
            builder.add_node(step_node(name), StepRunner(name, of, chains))
            builder.add_edge(step_node(name), edge.steps.join)
            table = {label: _to_lg(dst) for label, dst in edge.labelled.items()}
            fallback = _to_lg(edge.default) if edge.default is not None else LG_END
            builder.add_conditional_edges(name, steps_router(name, table, fallback),
                                          [*path_map, step_node(name)])
        elif name in topo.plain:
            # Plain edges, not a router that checks for a halt: LangGraph's branches cost far
            # more per step than its edges, and a halted run is rare. After a halt the
            # remaining nodes are skipped by NodeRunner instead.
            for target in dict.fromkeys(topo.plain[name]):
                builder.add_edge(name, _to_lg(target))
        elif not any(name in srcs for srcs, _ in topo.joins):
            builder.add_edge(name, LG_END)
    for srcs, dst in topo.joins:
        builder.add_edge(list(srcs), _to_lg(dst))
    return Compiled(graph=builder.compile(name=spec.name), runners=runners)
