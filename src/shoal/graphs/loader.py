"""YAML -> GraphSpec, with ``${ENV}`` interpolation and a file:line:col on every error.

The file is read by :mod:`shoal.yaml_source` (positions, duplicate keys, aliases); this module
validates it into a :class:`~shoal.graphs.spec.GraphSpec` and runs the compiler's checks, so that
all mistakes are collected and raised together in one :class:`SpecError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from shoal.errors import SourceLocation, SpecError, SpecIssue
from shoal.graphs.compiler import check
from shoal.graphs.spec import SPEC_TAGS, Edge, GraphSpec, NodeSpec
from shoal.policies.privacy import builtin_pack_names
from shoal.yaml_source import (
    Loc,
    Problem,
    SourceMap,
    parse_yaml,
    problems_to_issues,
    validation_problems,
)

_EDGE: TypeAdapter[Any] = TypeAdapter(Edge)

MAX_SPEC_BYTES = 2 * 1024 * 1024
"""A graph spec is a few kilobytes; anything this large is a mistake or an attack."""


def load_spec(
    path: str | Path, env: Mapping[str, str] | None = None
) -> tuple[GraphSpec, SourceMap]:
    """Read, interpolate, validate and check a graph YAML. Raises SpecError with every mistake."""
    path = Path(path)
    file = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_SPEC_BYTES:
            raise SpecError([SpecIssue(SourceLocation(file), "",
                                       f"the file is {size} bytes; a graph spec may have at most "
                                       f"{MAX_SPEC_BYTES}")])
        raw = path.read_bytes()
    except OSError as exc:
        issue = SpecIssue(SourceLocation(file), "", f"cannot read: {exc.strerror}")
        raise SpecError([issue]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError([SpecIssue(SourceLocation(file, line, 1), "",
                                   "the file is not valid UTF-8")]) from None
    data, source, problems = parse_yaml(text, file, env)
    if data is not None and not isinstance(data, dict):
        problems.append(Problem((), "a graph spec must be a mapping (shoal: 1, name, nodes, ...)"))
    spec: GraphSpec | None = None
    if isinstance(data, dict):
        parsed, more = spec_from_data(data)
        problems.extend(more)
        if isinstance(parsed, Partial):
            problems.extend(check(parsed.spec, base_dir=path.parent,
                                  broken_nodes=parsed.broken_nodes,
                                  skip_topology=parsed.skip_topology))
        elif parsed is not None:
            spec = parsed
            problems.extend(check(spec, base_dir=path.parent))
    if problems:
        name = data.get("name", path.stem) if isinstance(data, dict) else path.stem
        raise SpecError(spec_issues(_dedupe(problems), source, str(name)))
    assert spec is not None
    return spec, source


@dataclass
class Partial:
    """What a spec that failed validation still lets us check, so every mistake is reported."""

    spec: GraphSpec
    broken_nodes: frozenset[str]
    skip_topology: bool


def spec_from_data(data: Mapping[str, Any]) -> tuple[GraphSpec | Partial | None, list[Problem]]:
    """Validate plain data into a GraphSpec. On failure, return the problems and, where the
    nodes section is usable, a Partial spec so the graph checks can still run."""
    if "shoal" not in data:
        return None, [Problem((), "missing 'shoal: 1' (the spec version) at the top")]
    moved: list[Problem] = []
    if "policies" in data:
        moved.append(_old_policies(data["policies"]))
        data = {k: v for k, v in data.items() if k != "policies"}
    try:
        spec = GraphSpec.model_validate(dict(data))
    except ValidationError as exc:
        problems = moved + validation_problems(exc)
        return _partial(data, problems), problems
    return (spec if not moved else Partial(spec, frozenset(), False)), moved


def _old_policies(entries: Any) -> Problem:
    """The top-level ``policies:`` of spec version 1 before 0.2 mixed identifier packs and
    escalation policy files; say how to write it now."""
    listed = [str(e) for e in entries] if isinstance(entries, list) else []
    known = set(builtin_pack_names())
    packs = [e for e in listed if e in known]
    policies = [e for e in listed if e not in known]
    spelled = []
    if packs or not listed:
        spelled.append(f"packs: [{', '.join(packs) or 'hipaa_safe_harbor'}]")
    if policies or not listed:
        spelled.append(f"escalation: {{policies: [{', '.join(policies) or 'my-policy.yaml'}]}}")
    return Problem(("policies",), "'policies:' is no longer a graph key: identifier packs go "
                                  "under 'packs:' and escalation policy files under "
                                  f"'escalation: policies:'; write {' and '.join(spelled)}",
                   at_key=True)


def _partial(data: Mapping[str, Any], problems: list[Problem]) -> Partial | None:
    bad_sections = {p.loc[0] for p in problems if p.loc}
    nodes_raw = data.get("nodes")
    if not isinstance(nodes_raw, dict) or not nodes_raw:
        return None
    broken = {str(p.loc[1]) for p in problems if len(p.loc) > 1 and p.loc[0] == "nodes"}
    nodes: dict[str, NodeSpec] = {}
    for name, raw in nodes_raw.items():
        agent = raw.get("agent") if isinstance(raw, dict) else None
        if str(name) in broken or not isinstance(agent, str):
            broken.add(str(name))
            nodes[str(name)] = NodeSpec.model_construct(agent=agent if isinstance(agent, str)
                                                        else "", model=None)
        else:
            nodes[str(name)] = NodeSpec.model_validate(raw)
    models = data.get("models") if isinstance(data.get("models"), dict) else {}
    edges: list[Any] = []
    edge_errors = "edges" in bad_sections
    for raw in data.get("edges") or []:
        try:
            edges.append(_EDGE.validate_python(raw))
        except ValidationError:
            edge_errors = True
    fields: dict[str, Any] = {
        "shoal": 1, "name": str(data.get("name") or "graph"), "nodes": nodes,
        "models": dict(models or {}), "packs": [], "edges": edges,
        "entry": data.get("entry") if "entry" not in bad_sections else None,
        "output": data.get("output") if "output" not in bad_sections else None,
        "escalation": None,
    }
    if isinstance(data.get("packs"), list) and "packs" not in bad_sections:
        fields["packs"] = data["packs"]
    spec = GraphSpec.model_construct(**fields)
    return Partial(spec, frozenset(broken), edge_errors or "entry" in bad_sections)


def _dedupe(problems: list[Problem]) -> list[Problem]:
    """One problem per place: a later one at the same path is an echo of the first (an unset
    variable leaves an empty string that then also fails validation)."""
    seen: set[Loc] = set()
    out = []
    for p in problems:
        if p.loc not in seen:
            seen.add(p.loc)
            out.append(p)
    return out




def spec_issues(problems: list[Problem], source: SourceMap | None, name: str) -> list[SpecIssue]:
    """Problems of a graph spec as issues at FILE:LINE:COL (or at a spec path for a spec built
    in Python), with pydantic's union tags left out of the paths."""
    return problems_to_issues(problems, source, name, SPEC_TAGS)
