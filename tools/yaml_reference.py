"""Write the docs site's graph YAML reference (``docs/reference/graph-yaml.md``) from the
published JSON schema (``docs/graph-schema.json``).

The schema is the single source: every top-level key, model kind, built-in agent and nested
block, with its keys' types, defaults and descriptions. ``tests/unit/test_docs_site.py`` keeps the
committed page equal to what this writes. Regenerate with::

    .venv/bin/python tools/yaml_reference.py

``--check`` exits 1 (writing nothing) when the committed page is out of date.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SCHEMA = REPO / "docs" / "graph-schema.json"
PAGE = REPO / "docs" / "reference" / "graph-yaml.md"

# Nested blocks that get a section of their own (a key of this type links to it).
BLOCKS = {
    "EscalationSpec": ("escalation", "`escalation:`"),
    "EgressSpec": ("egress", "`egress:` (of an `openai` model)"),
    "Price": ("price", "`price:` (of an `openai` model)"),
    "BatchSettings": ("batch", "`batch:`"),
    "LearnSpec": ("learn", "`learn:` (of a node)"),
    "OnTopicSpec": ("on-topic", "`on_topic:`"),
    "ReplyFitConfig": ("reply-fit", "`reply_fit:`"),
}
SUBSTITUTION = "#/$defs/Substitution"
# Unions that a section of the page describes.
SECTIONS = {"Edge": "edges", "Model": "models", "Node": "nodes"}


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _cell(text: str) -> str:
    """Text safe inside one Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _bounds(frag: dict[str, Any]) -> str:
    lo, hi = frag.get("minimum"), frag.get("maximum")
    xlo = frag.get("exclusiveMinimum")
    if lo is not None and hi is not None:
        return f" {lo}–{hi}"
    if lo is not None:
        return f" ≥ {lo}"
    if xlo is not None:
        return f" > {xlo}"
    if hi is not None:
        return f" ≤ {hi}"
    return ""


def type_of(frag: dict[str, Any], defs: dict[str, Any]) -> str:
    """A short human-readable type for a schema fragment (``${VAR}`` alternatives left out)."""
    if "$ref" in frag:
        name = _ref_name(frag["$ref"])
        if name in BLOCKS:
            anchor, _ = BLOCKS[name]
            return f"[{anchor}](#{anchor})"
        if name in SECTIONS:
            return f"[{name}](#{SECTIONS[name]})"
        return defs.get(name, {}).get("title", name)
    if "anyOf" in frag:
        parts = [type_of(f, defs) for f in frag["anyOf"] if f.get("$ref") != SUBSTITUTION]
        nullable = "null" in parts
        parts = [p for p in parts if p != "null"]
        text = " or ".join(dict.fromkeys(parts))
        return f"{text} (optional)" if nullable else text
    if "const" in frag:
        return f"`{json.dumps(frag['const'])}`"
    if "enum" in frag:
        return "one of " + ", ".join(f"`{v}`" for v in frag["enum"])
    kind = frag.get("type")
    if kind == "array":
        items = frag.get("items")
        return f"list of {type_of(items, defs)}" if items else "list"
    if kind == "object":
        extra = frag.get("additionalProperties")
        if isinstance(extra, dict):
            return f"mapping of name → {type_of(extra, defs)}"
        return "mapping"
    if kind == "string" and "pattern" in frag:
        return "string (pattern)"
    if kind in ("integer", "number"):
        return f"{kind}{_bounds(frag)}"
    if isinstance(kind, str):
        return kind
    return "any"


def _default(prop: dict[str, Any], required: bool) -> str:
    if required:
        return "required"
    if "default" not in prop:
        return "—"
    value = prop["default"]
    if value is None:
        return "none"
    return f"`{json.dumps(value)}`"


def _description(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    text = prop.get("description")
    if text is None and "$ref" in prop:
        text = defs.get(_ref_name(prop["$ref"]), {}).get("description")
    if text is None:
        for alt in prop.get("anyOf", []):
            if "$ref" in alt and alt["$ref"] != SUBSTITUTION:
                text = defs.get(_ref_name(alt["$ref"]), {}).get("description")
    return _cell(text or "")


def key_table(obj: dict[str, Any], defs: dict[str, Any], skip: set[str] = frozenset()) -> str:
    props = obj.get("properties", {})
    required = set(obj.get("required", []))
    rows = ["| Key | Type | Default | Description |", "| --- | --- | --- | --- |"]
    for key in sorted(props):
        if key in skip:
            continue
        prop = props[key]
        rows.append(f"| `{key}` | {_cell(type_of(prop, defs))} | "
                    f"{_default(prop, key in required)} | {_description(prop, defs)} |")
    if len(rows) == 2:
        return "No keys of its own."
    return "\n".join(rows)


def _dispatch(union: dict[str, Any], field: str) -> list[tuple[str, str]]:
    """(value, definition name) for each built-in value of a ``kind``/``agent`` if-then union."""
    out = []
    for branch in union["allOf"]:
        cond = branch["if"]["properties"][field]
        if "const" in cond:
            out.append((cond["const"], _ref_name(branch["then"]["$ref"])))
    return out


def _para(text: str | None) -> str:
    return " ".join((text or "").split())


def render(schema: dict[str, Any]) -> str:
    defs = schema["$defs"]
    out: list[str] = []
    add = out.append
    add("# Graph YAML reference")
    add("")
    add("<!-- Generated by tools/yaml_reference.py from docs/graph-schema.json: do not edit by "
        "hand. Regenerate with `.venv/bin/python tools/yaml_reference.py`. -->")
    add("")
    add("Every key of a graph file, generated from the published JSON schema "
        "([`graph-schema.json`](../graph-schema.json), itself generated by "
        "`python -m shoal.graphs.schema`). `shoal validate graph.yaml` checks a file against "
        "the same models and also what a schema cannot (edges to missing nodes, files, "
        "installed plugins).")
    add("")
    add("!!! note \"`${VAR}` anywhere\"")
    add("    Any value may be written as `${VAR}` or `${VAR:-default}`: it is replaced from the "
        "environment when the graph is loaded, before validation, so a number, a boolean or an "
        "enumerated value may be written as one. `$$` is a literal `$`. The types below leave "
        "that alternative out.")
    add("")
    add("## Top-level keys")
    add("")
    add(_para(schema.get("description")))
    add("")
    add(key_table(schema, defs))
    add("")

    # Edges
    add("## Edges")
    add("")
    add(_para(schema["properties"]["edges"].get("description")))
    add("")
    chain = defs["ChainEdge"]
    add("### Chain edge")
    add("")
    add(_para(chain.get("description")))
    add("")
    add("```yaml")
    add("edges:")
    for example in chain.get("examples", []):
        add(f"  - {example}")
    add("```")
    add("")
    route = defs["RouteEdge"]
    add("### Route edge")
    add("")
    add(_para(route.get("description")) + " Give `from` (or `source`) and `route`.")
    add("")
    add(key_table(route, defs))
    add("")

    # Models
    model = defs["Model"]
    kinds = _dispatch(model, "kind")
    add("## Models")
    add("")
    add(_para(model.get("description")) + " Under the top-level `models:` key, by name.")
    add("")
    add("| Kind | What it is |")
    add("| --- | --- |")
    for kind, name in kinds:
        add(f"| [`{kind}`](#model-{kind}) | {_cell(defs[name].get('description', ''))} |")
    add("")
    for kind, name in kinds:
        spec = defs[name]
        add(f"### `{kind}` {{#model-{kind}}}")
        add("")
        add(_para(spec.get("description")))
        if "oneOf" in spec:
            alts = [" or ".join(f"`{k}`" for k in alt["required"]) for alt in spec["oneOf"]]
            add("")
            add("Exactly one of " + ", ".join(alts) + " is required.")
        add("")
        add(key_table(spec, defs, skip={"kind"}))
        add("")
    plugin_model = defs["PluginModelSpec"]
    add("### A plugin's kind {#model-plugin}")
    add("")
    add(_para(plugin_model.get("description")))
    add("")

    # Nodes
    node = defs["Node"]
    agents = _dispatch(node, "agent")
    plugin_node = defs["PluginNode"]
    common = set(plugin_node["properties"])
    add("## Nodes")
    add("")
    add(_para(schema["properties"]["nodes"].get("description")) + " "
        + _para(node.get("description")))
    add("")
    add("### Keys of every node {#node-keys}")
    add("")
    add("The engine's own keys, accepted on a node of any agent:")
    add("")
    add(key_table(plugin_node, defs))
    add("")
    add("### Built-in agents {#agents}")
    add("")
    add("| Agent | What it does |")
    add("| --- | --- |")
    for agent, name in agents:
        add(f"| [`{agent}`](#agent-{agent}) | {_cell(defs[name].get('description', ''))} |")
    add("")
    add("A node of a plugin's agent (entry-point group `shoal.agents`) accepts any keys here; "
        "they are checked against that agent's config model when the graph is loaded.")
    add("")
    for agent, name in agents:
        spec = defs[name]
        add(f"### `{agent}` {{#agent-{agent}}}")
        add("")
        add(_para(spec.get("description")))
        add("")
        add("Config keys, besides [every node's](#node-keys):")
        add("")
        add(key_table(spec, defs, skip=common))
        add("")

    # Nested blocks
    add("## Nested blocks")
    add("")
    for name, (anchor, title) in BLOCKS.items():
        spec = defs[name]
        add(f"### {title} {{#{anchor}}}")
        add("")
        if spec.get("description"):
            add(_para(spec["description"]))
            add("")
        add(key_table(spec, defs))
        add("")
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the committed page differs; write nothing")
    args = parser.parse_args(argv)
    text = render(json.loads(SCHEMA.read_text(encoding="utf-8")))
    if args.check:
        current = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
        if current != text:
            print(f"{PAGE.relative_to(REPO)} is out of date: run "
                  ".venv/bin/python tools/yaml_reference.py", file=sys.stderr)
            return 1
        return 0
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
