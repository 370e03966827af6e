"""The published schema (docs/graph-schema.json) describes graph files as people write them: the
project's own graphs pass it, typical mistakes fail it at a useful path, and it agrees with the
loader wherever a file alone can decide."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from shoal.errors import SpecError
from shoal.graphs.loader import load_spec
from shoal.graphs.schema import _VAR_PATTERN
from shoal.yaml_source import _ENV
from tests.conftest import REPO

SCHEMA_FILE = REPO / "docs" / "graph-schema.json"
SCHEMA: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
VALIDATOR = Draft202012Validator(SCHEMA)  # no format_checker: formats are not checked


def _graph_files() -> list[Path]:
    found = []
    for path in sorted((REPO / "examples").rglob("*.y*ml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and "shoal" in data:
            found.append(path)
    return found


def _doc_snippets() -> list[tuple[str, str]]:
    """Every ```yaml block of README.md and docs/*.md that is a graph file (top-level shoal:)."""
    found = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"^```ya?ml[^\n]*\n(.*?)^```", text, re.M | re.S):
            data = yaml.safe_load(match.group(1))
            if isinstance(data, dict) and "shoal" in data:
                line = text[:match.start()].count("\n") + 1
                found.append((f"{path.name}:{line}", match.group(1)))
    return found


GRAPH_FILES = _graph_files()
SNIPPETS = _doc_snippets()


def _errors(text: str) -> list[ValidationError]:
    return list(VALIDATOR.iter_errors(yaml.safe_load(textwrap.dedent(text))))


def _best(text: str) -> ValidationError:
    errors = _errors(text)
    assert errors, "the schema accepted it"
    found = best_match(errors)
    assert found is not None
    return found


def test_the_schema_is_valid_draft_2020_12():
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_examples_and_docs_hold_graphs():
    names = {p.relative_to(REPO).as_posix() for p in GRAPH_FILES}
    assert {"examples/healthcare/cascade.yaml", "examples/healthcare/triage.yaml",
            "examples/quickstart/graph.yaml"} <= names
    assert any(where.startswith("README.md") for where, _ in SNIPPETS)


@pytest.mark.parametrize("path", GRAPH_FILES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_example_graphs_validate(path: Path):
    errors = list(VALIDATOR.iter_errors(yaml.safe_load(path.read_text(encoding="utf-8"))))
    assert not errors, [f"{e.json_path}: {e.message}" for e in errors]


@pytest.mark.parametrize("path", GRAPH_FILES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_example_graphs_name_the_schema_for_editors(path: Path):
    first = path.read_text(encoding="utf-8").splitlines()[0]
    prefix = "# yaml-language-server: $schema="
    assert first.startswith(prefix)
    assert (path.parent / first.removeprefix(prefix)).resolve() == SCHEMA_FILE.resolve()


@pytest.mark.parametrize(("where", "text"), SNIPPETS, ids=[w for w, _ in SNIPPETS])
def test_graph_snippets_in_the_docs_validate(where: str, text: str):
    errors = list(VALIDATOR.iter_errors(yaml.safe_load(text)))
    assert not errors, [f"{e.json_path}: {e.message}" for e in errors]


# --- mistakes -----------------------------------------------------------------------------------

BASE = """\
shoal: 1
name: t
models:
  clf: {kind: onnx-classifier, path: clf.onnx}
nodes:
  triage: {agent: keyword_classifier, labels: {billing: [bill]}, escalate_below: 0.4}
  reply: {agent: template_reply, default: "Thanks."}
edges:
  - triage -> reply
"""


def test_the_base_graph_is_valid():
    assert not _errors(BASE)


def test_a_typo_in_a_top_level_key_is_flagged():
    error = _best(BASE.replace("nodes:", "nodse:"))
    assert error.json_path == "$"
    assert "nodse" in error.message
    assert any("'nodes' is a required property" in e.message for e in _errors(
        BASE.replace("nodes:", "nodse:")))


def test_an_unknown_node_key_is_flagged_at_the_node():
    error = _best(BASE.replace('default: "Thanks."', 'default: "Thanks.", tone: warm'))
    assert error.json_path == "$.nodes.reply"
    assert "'tone' was unexpected" in error.message


def test_a_key_of_another_agent_is_flagged():
    # `labels` is a keyword_classifier's key, not a template_reply's.
    error = _best(BASE.replace('default: "Thanks."', 'default: "Thanks.", labels: {a: [b]}'))
    assert error.json_path == "$.nodes.reply"
    assert "'labels' was unexpected" in error.message


def test_a_model_of_the_wrong_kind_is_flagged():
    # An openai entry with an onnx-classifier's keys.
    error = _best(BASE.replace("kind: onnx-classifier", "kind: openai"))
    assert error.json_path == "$.models.clf"
    assert "'path' was unexpected" in error.message
    error = _best(BASE.replace("kind: onnx-classifier", "kind: 7"))
    assert error.json_path == "$.models.clf.kind"


def test_an_edge_without_an_arrow_is_flagged():
    error = _best(BASE.replace("triage -> reply", "triage reply"))
    assert error.json_path == "$.edges[0]"
    assert "does not match" in error.message


@pytest.mark.parametrize("edge", ["triage ->", "-> reply", "triage -> [reply,]",
                                  "triage -> [reply", "triage => reply", "tri age -> reply"])
def test_malformed_chains_are_flagged(edge: str):
    assert _best(BASE.replace("triage -> reply", json.dumps(edge))).json_path == "$.edges[0]"


@pytest.mark.parametrize("edge", ["triage -> reply", "triage->reply", "a -> [b, c] -> d",
                                  "a -> END", "a-1 -> b_2", "a -> ${NEXT:-b}"])
def test_chains_in_their_yaml_forms_pass(edge: str):
    assert not _errors(BASE.replace("triage -> reply", json.dumps(edge)))


def test_a_classifier_config_of_the_wrong_type_is_flagged():
    error = _best(BASE.replace("labels: {billing: [bill]}", "labels: [billing, refill]"))
    assert error.json_path == "$.nodes.triage.labels"
    assert "is not of type 'object'" in error.message
    error = _best(BASE.replace('reply: {agent: template_reply, default: "Thanks."}',
                               "reply: {agent: classifier, model: clf, max_chars: lots}"))
    assert error.json_path == "$.nodes.reply.max_chars"


def test_a_node_whose_agent_needs_a_model_must_name_one():
    error = _best(BASE.replace('reply: {agent: template_reply, default: "Thanks."}',
                               "reply: {agent: classifier}"))
    assert error.json_path == "$.nodes.reply"
    assert "'model' is a required property" in error.message


def test_a_missing_agent_or_kind_is_one_error_at_its_entry():
    errors = _errors(BASE.replace("agent: template_reply, ", ""))
    assert [(e.json_path, e.message) for e in errors] == [
        ("$.nodes.reply", "'agent' is a required property")]
    errors = _errors(BASE.replace("kind: onnx-classifier, ", ""))
    assert [(e.json_path, e.message) for e in errors] == [
        ("$.models.clf", "'kind' is a required property")]


def test_out_of_range_values_and_reserved_names_are_flagged():
    assert _best(BASE.replace("escalate_below: 0.4", "escalate_below: 2")).json_path == \
        "$.nodes.triage.escalate_below"
    assert _best(BASE.replace("  reply: {", "  END: {")).json_path == "$.nodes"


# --- what the file form allows ------------------------------------------------------------------


@pytest.mark.parametrize(("old", "new"), [
    ("escalate_below: 0.4", "escalate_below: '${TRIAGE_BELOW:-0.4}'"),
    ("escalate_below: 0.4", "escalate_below: 0.4, timeout_s: '${NODE_TIMEOUT}'"),
    ("path: clf.onnx", "path: '${CLF_PATH}', threads: '${CLF_THREADS:-2}'"),
    ("  - triage -> reply", "  - {from: triage, route: {billing: reply, default: END}}"),
    ("  - triage -> reply", "  - {source: triage, route: {default: reply}}"),
])
def test_substitutions_and_route_forms_pass(old: str, new: str):
    text = BASE.replace(old, new)
    assert text != BASE
    assert not _errors(text)


def test_plugin_agents_and_kinds_are_allowed_loosely():
    text = BASE.replace('reply: {agent: template_reply, default: "Thanks."}',
                        "reply: {agent: my_plugin_agent, anything: [1, 2]}")
    text = text.replace("kind: onnx-classifier, path: clf.onnx", "kind: my-kind, url: x")
    assert not _errors(text)
    # Still, a node's own keys keep their types for a plugin's agent.
    error = _best(text.replace("anything: [1, 2]", "escalate_below: high"))
    assert error.json_path == "$.nodes.reply.escalate_below"


def test_the_substitution_pattern_is_the_loaders():
    samples = ["${A}", "${A_1:-x}", "${A:-}", "${_a:-http://h:1/v1}", "${1A}", "${A-B}",
               "${A:x}", "$A", "${}", "${A:-b}c}"]
    for sample in samples:
        assert bool(re.fullmatch(_VAR_PATTERN, sample)) == bool(
            (m := _ENV.fullmatch(sample)) and m.group(0) != "$$"), sample


# --- agreement with the loader ------------------------------------------------------------------


@pytest.mark.parametrize(("case", "old", "new"), [
    ("valid", "", ""),
    ("valid, substituted", "escalate_below: 0.4", "escalate_below: '${T_BELOW:-0.4}'"),
    ("valid, route", "  - triage -> reply",
     "  - {from: triage, route: {billing: reply, default: END}}"),
    ("valid, packs", "edges:", "packs: [hipaa_safe_harbor]\nedges:"),
    ("typo'd key", "nodes:", "nodse:"),
    ("unknown node key", 'default: "Thanks."', 'default: "Thanks.", tone: warm'),
    ("wrong kind", "kind: onnx-classifier", "kind: openai"),
    ("chain without arrow", "triage -> reply", "triage reply"),
    ("config of the wrong type", "labels: {billing: [bill]}", "labels: [billing, refill]"),
    ("out of range", "escalate_below: 0.4", "escalate_below: 1.5"),
    ("missing version", "shoal: 1\n", ""),
    ("old policies key", "edges:", "policies: [hipaa_safe_harbor]\nedges:"),
    ("unknown pack", "edges:", "packs: [hipaa]\nedges:"),
    ("llamacpp with two sources", "kind: onnx-classifier, path: clf.onnx",
     "kind: llamacpp, path: m.gguf, model: smollm2-135m-instruct"),
])
def test_schema_and_loader_agree(case: str, old: str, new: str, write_yaml):
    text = BASE.replace(old, new) if old else BASE
    assert text != BASE or not old, case
    path = write_yaml(text)
    try:
        load_spec(path, env={})
        loader_ok = True
    except SpecError:
        loader_ok = False
    schema_ok = not _errors(text)
    assert schema_ok == loader_ok, (case, schema_ok, loader_ok)
    assert schema_ok == case.startswith("valid"), case
