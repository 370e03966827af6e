"""The loader: every mistake reported as FILE:LINE:COL, pointing at the offending key."""

from __future__ import annotations

from pathlib import Path

import pytest

import shoal
from shoal.graphs.loader import MAX_SPEC_BYTES, load_spec

GOOD = """
shoal: 1
name: g
nodes:
  triage:
    agent: keyword_classifier
    labels: {billing: [bill], emergency: [bleeding]}
  urgent: {agent: template_reply, default: call 911}
  reply: {agent: template_reply, default: thanks}
edges:
  - from: triage
    route: {emergency: urgent, default: reply}
"""


def errors_of(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(shoal.SpecError) as info:
        load_spec(path, env=env or {})
    return [str(issue) for issue in info.value.issues]


def test_good_spec_loads(write_yaml):
    path = write_yaml(GOOD)
    spec, source = load_spec(path, env={})
    assert list(spec.nodes) == ["triage", "urgent", "reply"]
    assert spec.nodes["triage"].agent_config["labels"]["billing"] == ["bill"]
    assert source.locate(("nodes", "urgent", "default")).line == 7


def test_unknown_key_points_at_the_key(write_yaml):
    path = write_yaml(GOOD.replace("name: g", "name: g\nnodse: {}"))
    assert errors_of(path) == [f"{path}:3:1: unknown key 'nodse' (nodse)"]


def test_unknown_agent_config_key_names_the_agent(write_yaml):
    path = write_yaml(GOOD.replace("default: thanks", "default: thanks, colour: red"))
    [error] = errors_of(path)
    assert error.startswith(f"{path}:8:51: unknown key 'colour' for agent 'template_reply'")


def test_wrong_type_points_at_the_value(write_yaml):
    path = write_yaml(GOOD.replace("agent: keyword_classifier",
                                   "agent: keyword_classifier\n    escalate_below: high"))
    [error] = errors_of(path)
    assert error.startswith(f"{path}:6:21: Input should be a valid number")
    assert "(nodes.triage.escalate_below)" in error


def test_unknown_agent_suggests_a_close_name(write_yaml):
    path = write_yaml(GOOD.replace("agent: keyword_classifier", "agent: keyword_clasifier"))
    [error] = errors_of(path)
    assert error.startswith(f"{path}:5:12: unknown agent 'keyword_clasifier'; "
                            "did you mean 'keyword_classifier'?")


def test_unknown_model(write_yaml):
    path = write_yaml(GOOD.replace("default: thanks}", "default: thanks, model: slm}"))
    [error] = errors_of(path)
    assert error.startswith(f"{path}:8:58: unknown model 'slm'")


def test_edge_to_missing_node(write_yaml):
    path = write_yaml(GOOD.replace("default: reply}", "default: replay}"))
    [error] = errors_of(path)
    assert error.startswith(f"{path}:11:41: edge to a missing node 'replay'; did you mean 'reply'?")


def test_unreachable_node(write_yaml):
    path = write_yaml(GOOD.replace("  reply:", "  orphan: {agent: noop}\n  reply:"))
    [error] = errors_of(path)
    assert error.startswith(f"{path}:8:3: node 'orphan' is unreachable from the entry (triage)")


def test_route_label_the_node_cannot_produce(write_yaml):
    path = write_yaml(GOOD.replace("{emergency: urgent,", "{emergncy: urgent,"))
    [error] = errors_of(path)
    assert error.startswith(f"{path}:11:13: node 'triage' (agent 'keyword_classifier') cannot "
                            "produce label 'emergncy'")


def test_missing_env_var_and_defaults(write_yaml):
    text = GOOD.replace("name: g", "name: ${GRAPH_NAME}").replace("call 911", "'${MSG:-call 112}'")
    path = write_yaml(text)
    [error] = errors_of(path)
    assert error.startswith(f"{path}:2:7: environment variable GRAPH_NAME is not set")
    spec, _ = load_spec(path, env={"GRAPH_NAME": "from-env"})
    assert spec.name == "from-env"
    assert spec.nodes["urgent"].agent_config["default"] == "call 112"
    spec, _ = load_spec(path, env={"GRAPH_NAME": "x", "MSG": "dial"})
    assert spec.nodes["urgent"].agent_config["default"] == "dial"


def test_dollar_dollar_escapes(write_yaml):
    path = write_yaml(GOOD.replace("call 911", "'costs $$5 not ${X:-none}'"))
    spec, _ = load_spec(path, env={})
    assert spec.nodes["urgent"].agent_config["default"] == "costs $5 not none"


def test_duplicate_key_points_at_the_second(write_yaml):
    path = write_yaml(GOOD.replace("  reply:", "  urgent: {agent: noop}\n  reply:"))
    errors = errors_of(path)
    assert f"{path}:8:3: duplicate key 'urgent' (first at line 7) (nodes.urgent)" in errors


def test_invalid_yaml_has_a_position(write_yaml):
    path = write_yaml("shoal: 1\nname: [unclosed\nnodes: {}\n")
    [error] = errors_of(path)
    assert error.startswith(f"{path}:3:")
    assert "invalid YAML" in error


def test_tabs_are_invalid_yaml_with_position(write_yaml):
    path = write_yaml("shoal: 1\nname: g\nnodes:\n\ta: {agent: noop}\n")
    [error] = errors_of(path)
    assert error.startswith(f"{path}:4:1: invalid YAML")


def test_every_mistake_is_reported_not_only_the_first(write_yaml):
    path = write_yaml("""
        shoal: 1
        name: g
        nodes:
          triage: {agent: keyword_classifier, labels: {a: [x]}, escalate_below: 2}
          reply: {agent: template_reply, default: hi, model: nope}
          other: {agent: noop}
        edges:
          - triage -> reply -> ghost
        """)
    errors = errors_of(path)
    assert len(errors) == 3, errors
    assert errors[0].startswith(f"{path}:4:73: Input should be less than or equal to 1")
    assert errors[1].startswith(f"{path}:5:54: unknown model 'nope'")
    assert errors[2].startswith(f"{path}:8:5: edge to a missing node 'ghost'")


def test_merge_keys_are_refused(write_yaml):
    path = write_yaml("""
        shoal: 1
        name: g
        base: &base {agent: noop}
        nodes:
          a: {<<: *base}
        """)
    errors = errors_of(path)
    assert any("merge keys ('<<') are not supported" in e for e in errors)


def test_alias_bomb_is_refused(write_yaml):
    lines = ["shoal: 1", "name: g", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 8):
        refs = ", ".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    path = write_yaml("\n".join(lines) + "\nnodes: {a: {agent: noop}}\n")
    [error] = errors_of(path)
    assert "expands to over" in error


def test_huge_file_is_refused(write_yaml):
    path = write_yaml("# " + "x" * (MAX_SPEC_BYTES + 10) + "\n")
    [error] = errors_of(path)
    assert error.startswith(f"{path}: ") and "at most" in error


def test_missing_file(tmp_path: Path):
    [error] = errors_of(tmp_path / "nope.yaml")
    assert "cannot read" in error


def test_not_utf8(tmp_path: Path):
    path = tmp_path / "g.yaml"
    path.write_bytes(b"shoal: 1\nname: \xff\n")
    [error] = errors_of(path)
    assert error == f"{path}:2:1: the file is not valid UTF-8"


def test_spec_version_required(write_yaml):
    path = write_yaml("name: g\nnodes: {a: {agent: noop}}\n")
    [error] = errors_of(path)
    assert "missing 'shoal: 1'" in error
    path = write_yaml("shoal: 2\nname: g\nnodes: {a: {agent: noop}}\n")
    [error] = errors_of(path)
    assert error.startswith(f"{path}:1:8: Input should be 1")


def test_cycle_is_refused(write_yaml):
    path = write_yaml("""
        shoal: 1
        name: g
        nodes: {a: {agent: noop}, b: {agent: noop}, c: {agent: noop}}
        edges: [a -> b -> c, c -> b]
        """)
    [error] = errors_of(path)
    assert "cycle: b -> c -> b" in error


def test_python_built_spec_gets_the_same_checks():
    spec = shoal.GraphSpec(name="py", nodes={"a": shoal.NodeSpec(agent="nope")})
    with pytest.raises(shoal.SpecError) as info:
        shoal.Graph(spec)
    assert str(info.value).startswith("<graph py>: nodes.a.agent: unknown agent 'nope'")


def test_packs_are_checked(write_yaml, tmp_path: Path):
    (tmp_path / "mine.yaml").write_text("pack: 1\n")
    path = write_yaml(GOOD.replace("nodes:", "packs: [mine.yaml, other.yaml, no_such_pack]\n"
                                              "nodes:"))
    errors = errors_of(path)
    assert len(errors) == 2
    assert errors[0].startswith(f"{path}:3:20: pack file 'other.yaml' not found")
    assert errors[1].startswith(f"{path}:3:32: unknown identifier pack 'no_such_pack'")


def test_the_old_policies_key_shows_the_new_spelling(write_yaml):
    path = write_yaml(GOOD.replace("nodes:", "policies: [hipaa_safe_harbor, p.yaml]\nnodes:"))
    [error] = errors_of(path)
    assert error.startswith(f"{path}:3:1: 'policies:' is no longer a graph key")
    assert ("write packs: [hipaa_safe_harbor] and escalation: {policies: [p.yaml]}"
            in error)


def test_a_model_that_cannot_serve_the_agent_is_a_spec_error(write_yaml):
    path = write_yaml("""
        shoal: 1
        name: g
        models:
          planner: {kind: openai, base_url: "http://127.0.0.1:9/v1", model: m}
        nodes:
          triage: {agent: classifier, model: planner, labels: [a, b]}
        """)
    [error] = errors_of(path)
    assert error.startswith(f"{path}:6:38: agent 'classifier' needs a Classifier or LabelScorer "
                            "model; 'planner' (openai) serves Generator")
