"""The published JSON schema of a graph file (``docs/graph-schema.json``): the YAML as people
write it, for editors (``# yaml-language-server: $schema=...``) and other tools.

:class:`~shoal.graphs.spec.GraphSpec` is the *parsed* form; a graph file differs from it in a
few ways the loader takes care of, and the schema describes the file:

- an edge is a chain string (``a -> [b, c] -> d``) or a route mapping
  (``{from: triage, route: {...}}``);
- any string value may hold ``${VAR}`` or ``${VAR:-default}`` (:mod:`shoal.yaml_source` replaces
  them before validation), so a number, a boolean or an enumerated value may be written as one;
- a node's keys beyond the engine's own are its agent's config: a node of a built-in agent
  gets that agent's config keys (and no others), a node of a plugin's agent any keys;
- a ``models:`` entry of a built-in kind gets that kind's keys, one of a plugin's kind any keys.

Built from the pydantic models (their field docstrings become descriptions, so editors show
them on hover) plus the transforms here; ``python -m shoal.graphs.schema >
docs/graph-schema.json`` writes it, and a unit test keeps the committed file equal to it.
"""

from __future__ import annotations

import ast
import copy
import importlib
import inspect
import itertools
import json
import re
import sys
import textwrap
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema

from shoal.agents.base import BUILTIN_MODULES, Agent, get_agent
from shoal.graphs.spec import (
    _NAME,
    RESERVED_NODE_NAMES,
    SPEC_VERSION,
    ChainEdge,
    GraphSpec,
    NodeSpec,
    RouteEdge,
)
from shoal.models.kinds import _KIND_NAME, BUILTIN_KINDS, PluginModelSpec
from shoal.models.specs import LlamaCppModelSpec, OnnxEmbedderModelSpec, OpenAIModelSpec
from shoal.policies.escalation import builtin_policy_names
from shoal.policies.privacy import MODES as MASKING_MODES
from shoal.policies.privacy import builtin_pack_names

__all__ = ["DIALECT", "SCHEMA_ID", "graph_schema", "render_schema"]

DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = f"urn:shoal:graph-spec:{SPEC_VERSION}"
"""The schema's ``$id``: it names the spec version, not a place; editors find the file by the
path in a graph file's ``# yaml-language-server: $schema=`` line."""

_REF = "#/$defs/{model}"
_SUBSTITUTION = "Substitution"
_ANNOTATIONS = ("title", "description", "default", "examples", "deprecated")
_SUBSTITUTABLE_TYPES = frozenset({"integer", "number", "boolean"})
_ONE_SOURCE: dict[type[BaseModel], tuple[str, str]] = {
    LlamaCppModelSpec: ("path", "model"),
    OnnxEmbedderModelSpec: ("path", "model"),
}
"""Kinds whose validator wants exactly one of two keys set."""
_LINE_BREAK = re.compile(r"(?<!\n)\n(?!\n)")
_REST_ROLE = re.compile(r":[a-z]+:`")


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


# --- descriptions from field docstrings ----------------------------------------------------------


def _attribute_docs(cls: type) -> dict[str, str]:
    """The docstrings written under fields (``x: int`` then ``\"\"\"...\"\"\"``) of ``cls`` and
    of the pydantic models it inherits from; a subclass's win."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is BaseModel or not (isinstance(klass, type) and issubclass(klass, BaseModel)):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        tree = ast.parse(source)
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for stmt, after in itertools.pairwise(body):
            if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                docs[stmt.target.id] = inspect.cleandoc(after.value.value)
    return docs


class _WithFieldDocs(GenerateJsonSchema):
    """Pydantic's generator, with each field's docstring as its description."""

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        json_schema = super().model_schema(schema)
        cls: type[BaseModel] = schema["cls"]
        docs = _attribute_docs(cls)
        properties = json_schema.get("properties", {})
        for name, info in cls.model_fields.items():
            key = info.alias or name
            if key in properties and name in docs and "description" not in properties[key]:
                properties[key]["description"] = docs[name]
        return json_schema


def _doc(cls: type) -> str:
    return inspect.cleandoc(cls.__doc__ or "")


# --- ${VAR} -------------------------------------------------------------------------------------


def _substitutable(schema: dict[str, Any]) -> bool:
    """Whether a ``${VAR}`` string could stand for a value of ``schema`` (after substitution the
    loader's lax validation turns ``"5"`` into 5 and ``"true"`` into True; a string enum gets its
    value; an integer constant such as ``shoal: 1`` takes no string)."""
    values = schema.get("enum", [schema["const"]] if "const" in schema else None)
    if values is not None:
        return all(isinstance(v, str) for v in values)
    if schema.get("type") in _SUBSTITUTABLE_TYPES:
        return True
    return schema.get("type") == "string" and "pattern" in schema


def _allow_substitution(schema: Any) -> None:
    """Let every value that is not a plain string (numbers, booleans, enumerations, patterns)
    be written as a ``${VAR}`` string too, in place."""
    if isinstance(schema, list):
        for item in schema:
            _allow_substitution(item)
        return
    if not isinstance(schema, dict):
        return
    if "anyOf" in schema:
        branches = schema["anyOf"]
        for branch in branches:
            _allow_substitution_below(branch)
        if any(_substitutable(b) for b in branches) and _ref(_SUBSTITUTION) not in branches:
            branches.append(_ref(_SUBSTITUTION))
    elif _substitutable(schema):
        branch = {k: v for k, v in schema.items() if k not in _ANNOTATIONS}
        for key in branch:
            del schema[key]
        schema["anyOf"] = [branch, _ref(_SUBSTITUTION)]
    else:
        _allow_substitution_below(schema)


def _allow_substitution_below(schema: dict[str, Any]) -> None:
    """:func:`_allow_substitution` for the values inside ``schema``, not for ``schema``."""
    if "anyOf" in schema:
        _allow_substitution(schema)
        return
    for sub in schema.get("properties", {}).values():
        _allow_substitution(sub)
    for key in ("items", "additionalProperties", "allOf", "oneOf", "prefixItems"):
        _allow_substitution(schema.get(key))


def _or_substitution(schema: dict[str, Any], **annotations: Any) -> dict[str, Any]:
    return {**annotations, "anyOf": [schema, _ref(_SUBSTITUTION)]}


# --- the pieces of a graph file ------------------------------------------------------------------

_NAME_PATTERN = _NAME.pattern
_VAR_PATTERN = r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\}"
"""``${VAR}`` or ``${VAR:-default}``: what :mod:`shoal.yaml_source` replaces (a test keeps the
two patterns in step)."""
_STEP_NAME = rf"(?:[A-Za-z_][A-Za-z0-9_-]*|{_VAR_PATTERN})"
_STEP = rf"\s*(?:{_STEP_NAME}|\[\s*{_STEP_NAME}(?:\s*,\s*{_STEP_NAME})*\s*\])\s*"
_CHAIN_PATTERN = rf"^{_STEP}(?:->{_STEP})+$"
"""What :func:`shoal.graphs.spec.parse_chain` accepts (but a node named twice in one step), a
step's name possibly a ``${VAR}``."""
_CHAIN_ERROR = ("a chain is two or more node names joined by '->' (a -> b -> c); a step in "
                "brackets fans out and the next joins (a -> [b, c] -> d)")
"""``patternErrorMessage``: what yaml-language-server says instead of the regular expression."""


def _names(what: str) -> dict[str, Any]:
    """``propertyNames`` of ``nodes:`` and ``models:``."""
    return {"pattern": _NAME_PATTERN, "not": {"enum": sorted(RESERVED_NODE_NAMES)},
            "patternErrorMessage": f"a {what} name is letters, digits, '_' or '-', starting "
                                   "with a letter or '_'",
            "description": f"A {what} name: letters, digits, '_' or '-', not starting with a "
                           f"digit or '-'; not one of {', '.join(sorted(RESERVED_NODE_NAMES))}."}


def _chain_edge() -> dict[str, Any]:
    return {"type": "string", "pattern": _CHAIN_PATTERN, "title": "Chain edge",
            "patternErrorMessage": _CHAIN_ERROR,
            "description": _doc(ChainEdge) + " ``END`` ends a path.",
            "examples": ["guard -> mask -> triage", "a -> [b, c] -> d", "answer -> END"]}


def _route_edge(defs: dict[str, Any]) -> dict[str, Any]:
    route: dict[str, Any] = copy.deepcopy(defs["RouteEdge"])
    source = route["properties"]["from"]
    source["description"] = "The node whose label the route switches on."
    route["properties"]["source"] = {**source, "title": "Source",
                                     "description": "Another spelling of ``from``."}
    route["properties"]["route"]["description"] = (
        "Label -> the node that runs next (``END`` ends the path); ``default``: any other "
        "label.")
    route["required"] = ["route"]
    route["oneOf"] = [{"required": ["from"]}, {"required": ["source"]}]
    route["title"] = "Route edge"
    return route


def _when(key: str, value: dict[str, Any]) -> dict[str, Any]:
    """The ``if`` of a branch on ``key`` (absent: no branch applies; "required" says so)."""
    return {"properties": {key: value}, "required": [key]}


def _model_entry(defs: dict[str, Any]) -> dict[str, Any]:
    kinds = [k.name for k in BUILTIN_KINDS]
    branches: list[dict[str, Any]] = []
    for kind in BUILTIN_KINDS:
        name = kind.spec.__name__
        spec = defs[name]
        spec["properties"]["kind"] = {"const": kind.name, "title": "Kind",
                                      "description": _doc(kind.spec).split("\n\n")[0]}
        if kind.spec in _ONE_SOURCE:
            first, second = _ONE_SOURCE[kind.spec]
            spec["oneOf"] = [{"required": [key], "properties": {key: {"type": "string"}}}
                             for key in (first, second)]
        if kind.spec is OpenAIModelSpec:
            spec["properties"]["base_url"] = _or_substitution(
                {"type": "string", "pattern": "^https?://"},
                **{k: v for k, v in spec["properties"]["base_url"].items() if k != "type"})
        branches.append({"if": _when("kind", {"const": kind.name}), "then": _ref(name)})
    plugin = copy.deepcopy(defs[PluginModelSpec.__name__])
    plugin["properties"]["kind"] = {"type": "string", "pattern": _KIND_NAME.pattern,
                                    "title": "Kind"}
    plugin["title"] = "Plugin model"
    defs["PluginModelSpec"] = plugin
    branches.append({"if": _when("kind", {"not": {"enum": kinds}}),
                     "then": _ref("PluginModelSpec")})
    return {
        "type": "object", "title": "Model", "required": ["kind"],
        "description": "A model entry; ``kind`` picks its keys. A kind that is not built in is "
                       "a plugin's (entry-point group ``shoal.models``): its keys are checked "
                       "when the graph is loaded.",
        "properties": {"kind": {
            "title": "Kind", "description": f"Built in: {', '.join(kinds)}; or a plugin's kind.",
            "anyOf": [{"enum": kinds}, {"type": "string", "pattern": _KIND_NAME.pattern}]}},
        "allOf": branches,
    }


def _builtin_agents() -> list[tuple[str, type[Agent]]]:
    """The agents shoal ships, by name (plugins' entry points are not loaded: the schema is the
    same wherever it is generated)."""
    found: dict[str, type[Agent]] = {}
    for module in BUILTIN_MODULES:
        for value in vars(importlib.import_module(module)).values():
            if (isinstance(value, type) and issubclass(value, Agent) and value.name
                    and value.__module__ == module and get_agent(value.name) is value):
                found[value.name] = value
    return sorted(found.items())


def _agent_node(name: str, cls: type[Agent], node: dict[str, Any],
                config: dict[str, Any]) -> dict[str, Any]:
    """A node of a built-in agent: the engine's keys, then the agent's config keys (a key both
    have is the engine's: the loader never passes it to the agent)."""
    properties = copy.deepcopy(node["properties"])
    properties["agent"] = {"const": name, "title": "Agent",
                           "description": properties["agent"].get("description", "")}
    required = ["agent"]
    if cls.needs_model():
        properties["model"] = {**properties["model"], "type": "string"}
        properties["model"].pop("anyOf", None)
        properties["model"].pop("default", None)
        required.append("model")
    for key, value in config.get("properties", {}).items():
        properties.setdefault(key, value)
    required += [key for key in config.get("required", []) if key not in required]
    return {"type": "object", "title": f"{name} node", "description": _doc(cls),
            "properties": properties, "required": required, "additionalProperties": False}


def _node(defs: dict[str, Any], configs: dict[str, dict[str, Any]],
          agents: list[tuple[str, type[Agent]]]) -> dict[str, Any]:
    node = defs["NodeSpec"]
    node["properties"]["agent"]["description"] = (
        "The node's specialist: a built-in agent, or a plugin's (entry-point group "
        "``shoal.agents``). Keys the engine does not own are the agent's config.")
    names = [name for name, _ in agents]
    branches: list[dict[str, Any]] = []
    for name, cls in agents:
        key = f"Node_{name}"
        defs[key] = _agent_node(name, cls, node, configs[cls.Config.__name__])
        branches.append({"if": _when("agent", {"const": name}), "then": _ref(key)})
    plugin = copy.deepcopy(node)
    plugin["title"] = "Plugin agent node"
    plugin["properties"]["agent"] = {**plugin["properties"]["agent"], "minLength": 1}
    plugin["additionalProperties"] = True
    defs["PluginNode"] = plugin
    branches.append({"if": _when("agent", {"not": {"enum": names}}),
                     "then": _ref("PluginNode")})
    return {
        "type": "object", "title": "Node", "description": _doc(NodeSpec), "required": ["agent"],
        "properties": {"agent": {
            "title": "Agent", "description": node["properties"]["agent"]["description"],
            "anyOf": [{"enum": names}, {"type": "string", "minLength": 1}]}},
        "allOf": branches,
    }


def _file_or_builtin(builtin: list[str], what: str, *, slash: bool) -> dict[str, Any]:
    path = r"(\.ya?ml$|/)" if slash else r"\.ya?ml$"
    return {"description": f"A built-in {what} ({', '.join(builtin)}) or a .yaml file "
                           "relative to the graph file.",
            "anyOf": [{"enum": builtin}, {"type": "string", "pattern": path},
                      _ref(_SUBSTITUTION)]}


def _unwrap(schema: Any) -> None:
    """Descriptions for an editor's hover, which shows them as plain text: paragraphs (a
    docstring's line breaks inside one would show as paragraph breaks), and single backticks
    for reST's double ones and its roles (``:func:``)."""
    if isinstance(schema, list):
        for item in schema:
            _unwrap(item)
    elif isinstance(schema, dict):
        for key, value in schema.items():
            if key == "description" and isinstance(value, str):
                text = _LINE_BREAK.sub(" ", value).replace("``", "`")
                schema[key] = _REST_ROLE.sub("`", text)
            else:
                _unwrap(value)


def _prune(schema: dict[str, Any]) -> None:
    """Drop the definitions nothing refers to any more (agents' configs, folded into nodes)."""
    defs = schema["$defs"]
    reachable: set[str] = set()
    todo: list[Any] = [{k: v for k, v in schema.items() if k != "$defs"}]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                name = ref.removeprefix("#/$defs/")
                if name not in reachable:
                    reachable.add(name)
                    todo.append(defs[name])
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    for name in list(defs):
        if name not in reachable:
            del defs[name]


def graph_schema() -> dict[str, Any]:
    """The JSON schema (Draft 2020-12) of a graph file as written."""
    agents = _builtin_agents()
    configs = list(dict.fromkeys(cls.Config for _, cls in agents))
    classes: list[type[BaseModel]] = [GraphSpec, NodeSpec, RouteEdge, PluginModelSpec,
                                      *(k.spec for k in BUILTIN_KINDS), *configs]
    _, generated = models_json_schema([(c, "validation") for c in classes], by_alias=True,
                                      ref_template=_REF, schema_generator=_WithFieldDocs)
    defs: dict[str, Any] = generated["$defs"]
    _allow_substitution(list(defs.values()))
    # No title or description: an editor would show them on hover instead of the field's own.
    defs[_SUBSTITUTION] = {
        "type": "string", "pattern": _VAR_PATTERN,
        "$comment": "${VAR} or ${VAR:-default}, replaced from the environment when the graph "
                    "is loaded; a value of any type may be written as one.",
        "patternErrorMessage": "not a ${VAR} or ${VAR:-default} string"}
    config_defs = {c.__name__: defs[c.__name__] for c in configs}

    top = defs.pop("GraphSpec")
    props = top["properties"]
    props["shoal"]["description"] = f"The spec version: {SPEC_VERSION}."
    props["name"].setdefault("description", "The graph's name (in traces, metrics and reports).")
    props["models"] = {**props["models"], "additionalProperties": _ref("Model"),
                       "propertyNames": _names("model")}
    props["nodes"] = {**props["nodes"], "additionalProperties": _ref("Node"),
                      "propertyNames": _names("node"),
                      "description": "The nodes by name, in order: the first is the default "
                                     "entry."}
    props["edges"] = {**props["edges"], "items": _ref("Edge"),
                      "description": "Chains (``a -> b -> c``, ``a -> [b, c] -> d``) and routes "
                                     "(``{from: n, route: {label: node, default: node}}``)."}
    props["packs"]["items"] = _file_or_builtin(builtin_pack_names(), "identifier pack",
                                               slash=False)
    esc = defs["EscalationSpec"]["properties"]["policies"]
    esc["items"] = _file_or_builtin(builtin_policy_names(), "escalation policy", slash=True)
    compliance_pack = config_defs.get("ComplianceConfig", {}).get("properties", {}).get("pack")
    if compliance_pack is not None:
        compliance_pack["anyOf"] = _file_or_builtin(builtin_pack_names(), "identifier pack",
                                                    slash=False)["anyOf"]
        compliance_pack.pop("type", None)
    masker_mode = config_defs.get("MaskerConfig", {}).get("properties", {}).get("mode")
    if masker_mode is not None:
        masker_mode["anyOf"] = [{"enum": list(MASKING_MODES)}, _ref(_SUBSTITUTION)]
        masker_mode.pop("type", None)

    defs["Model"] = _model_entry(defs)
    defs["Node"] = _node(defs, config_defs, agents)
    defs["ChainEdge"] = _chain_edge()
    defs["RouteEdge"] = _route_edge(defs)
    defs["Edge"] = {"title": "Edge", "description": "A chain string or a route mapping.",
                    "if": {"type": "string"}, "then": _ref("ChainEdge"),
                    "else": _ref("RouteEdge")}
    schema: dict[str, Any] = {
        "$schema": DIALECT, "$id": SCHEMA_ID, **top,
        "title": f"shoal graph (spec version {SPEC_VERSION})",
        "required": ["shoal", *[k for k in top.get("required", []) if k != "shoal"]],
        "$defs": defs,
    }
    _prune(schema)
    _unwrap(schema)
    return schema


def render_schema() -> str:
    """``docs/graph-schema.json`` as it must read, byte for byte."""
    return json.dumps(graph_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_schema())
