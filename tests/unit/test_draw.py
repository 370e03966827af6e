"""`shoal draw`: Mermaid text, SVG and PNG of a graph from its spec and escalation rules, without
loading a model; a bad graph file exits 2 with FILE:LINE:COL."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shoal.cli import app
from shoal.graphs.draw import (
    END_ID,
    PLANNER_ID,
    START_ID,
    CriticalMark,
    Diagram,
    DiagramEdge,
    DiagramNode,
    _layout,
    build_diagram,
    layers,
    to_mermaid,
)
from shoal.graphs.loader import load_spec
from shoal.graphs.runtime import Graph
from tests.conftest import REPO

CASCADE = REPO / "examples" / "healthcare" / "cascade.yaml"
TRIAGE = REPO / "examples" / "healthcare" / "triage.yaml"
QUICKSTART = REPO / "examples" / "quickstart" / "graph.yaml"
runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_models(monkeypatch: pytest.MonkeyPatch) -> None:
    # Drawing reads the spec and the rules; building a Graph (which loads every model) is a bug.
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("shoal draw built a Graph")

    monkeypatch.setattr(Graph, "__init__", refuse)


def _mermaid(path: Path) -> str:
    result = runner.invoke(app, ["draw", str(path)])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_cascade_mermaid_has_routes_dotted_planner_edges_and_the_critical_floor():
    text = _mermaid(CASCADE)
    assert text.splitlines()[3] == "flowchart TB"
    # Route edges carry their labels; two labels to one node share an arrow.
    assert "n_triage --> n_split" in text
    assert 'n_split -->|"emergency"| n_urgent' in text
    assert 'n_split -->|"injection / off_topic"| n_decline' in text
    assert 'n_split -->|"default"| n_validate' in text
    assert "n_validate --> n_answer" in text and "n_urgent --> n_comply" in text
    # Several requests: a thick arrow from the splitter to the join of its steps.
    assert 'n_split ==>|"several requests"| n_reply' in text
    assert "n_reply --> n_comply" in text
    # Dotted edges to the planner from every node that may escalate, saying when; none from
    # the masker (never escalates) nor from guard and comply (on_flag: false in the policy).
    dotted = re.findall(r"^  (\S+) -\.->\|\"([^\"]*)\"\| " + PLANNER_ID + "$", text, re.M)
    assert {node for node, _ in dotted} == {"n_triage", "n_split", "n_urgent", "n_decline",
                                             "n_validate", "n_answer"}
    # The splitter asks the planner in plan mode only (on_flag: false in the policy).
    assert dict(dotted)["n_split"] == "unsure split: plan mode"
    # The calibrated threshold (triage-calibrated.yaml, listed last) wins over 0.5.
    assert dict(dotted)["n_triage"] == "confidence #lt; 0.4858, agent's flag, critical"
    assert f'{PLANNER_ID}[["<b>planner</b><br/>model: planner (openai: ' in text
    # The critical floor in triage's box, and triage outlined as critical.
    assert "⚠ critical: emergency P ≥ 0.1336 or red flags" in text
    assert "class n_triage critical" in text
    # Agent and model in the box.
    assert ("n_triage[\"<b>triage</b><br/>agent: classifier<br/>model: triage "
            "(onnx-classifier: triage.onnx)") in text


def test_a_graph_without_planner_has_no_dotted_edges_but_says_what_it_flags():
    text = _mermaid(QUICKSTART)
    assert "-.->" not in text and PLANNER_ID not in text
    assert "flags (no planner in the graph): confidence #lt; 0.4, agent's flag" in text
    assert 'n_triage -->|"emergency"| n_urgent' in text


def test_mmd_file_is_the_same_mermaid(tmp_path: Path):
    out = tmp_path / "triage.mmd"
    result = runner.invoke(app, ["draw", str(TRIAGE), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8") == _mermaid(TRIAGE)
    assert f"wrote {out}" in result.stderr


def test_png_is_written_and_not_trivial(tmp_path: Path):
    out = tmp_path / "cascade.png"
    result = runner.invoke(app, ["draw", str(CASCADE), "-o", str(out)])
    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 800 and height > 800  # eight boxes, six layers and the planner rail
    assert len(data) > 20_000


def test_svg_is_written_and_parses_as_xml(tmp_path: Path):
    out = tmp_path / "cascade.svg"
    result = runner.invoke(app, ["draw", str(CASCADE), "-o", str(out)])
    assert result.exit_code == 0, result.output
    root = ET.parse(out).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert sum(1 for _ in root.iter()) > 200
    again = tmp_path / "again.svg"
    assert runner.invoke(app, ["draw", str(CASCADE), "-o", str(again)]).exit_code == 0
    assert again.read_bytes() == out.read_bytes()  # no date, fixed ids: diffable


def test_a_bad_graph_exits_2_with_file_line_col(write_yaml):
    path = write_yaml("""
        shoal: 1
        name: broken
        nodes:
          triage: {agent: keyword_clasifier}
        edges:
          - triage -> nowhere
        """)
    result = runner.invoke(app, ["draw", str(path), "-o", str(path.with_suffix(".png"))])
    assert result.exit_code == 2
    assert re.search(rf"^{re.escape(str(path))}:4:19: unknown agent 'keyword_clasifier'",
                     result.stderr, re.M), result.stderr
    assert re.search(rf"^{re.escape(str(path))}:6:5: edge to a missing node 'nowhere'",
                     result.stderr, re.M), result.stderr
    assert "2 error(s)" in result.stderr
    assert not path.with_suffix(".png").exists()


def test_an_unknown_suffix_exits_2(tmp_path: Path):
    result = runner.invoke(app, ["draw", str(TRIAGE), "-o", str(tmp_path / "g.jpg")])
    assert result.exit_code == 2
    assert "unknown format '.jpg'" in result.stderr


def test_mermaid_escapes_the_authors_text():
    node = DiagramNode("n_x", "x", 'agent"><img src=x>', None,
                       critical=(CriticalMark('a"b', 0.5, False, "route"),))
    diagram = Diagram("g<1>", [node], [DiagramEdge(START_ID, "n_x", kind="start"),
                                       DiagramEdge("n_x", END_ID, 'lab"el|x', "route")],
                      has_end=True)
    text = to_mermaid(diagram)
    assert "<img" not in text and 'agent"' not in text and 'lab"el' not in text
    assert "agent#quot;#gt;#lt;img src=x#gt;" in text
    assert "critical: a#quot;b P ≥ 0.5 (routed, no planner)" in text
    assert "title: g#lt;1#gt;" in text
    assert f"n_x -->|\"lab#quot;el|x\"| {END_ID}" in text


def test_layers_follow_the_longest_path_and_survive_a_loop():
    spec, _ = load_spec(CASCADE)
    diagram = build_diagram(spec, CASCADE.parent)
    assert layers(diagram) == [[START_ID], ["n_guard"], ["n_mask"], ["n_triage"], ["n_split"],
                               ["n_reply", "n_urgent", "n_decline", "n_validate"], ["n_answer"],
                               ["n_comply"]]
    looped = Diagram("loop", [DiagramNode("n_a", "a", "x", None),
                              DiagramNode("n_b", "b", "x", None)],
                     [DiagramEdge(START_ID, "n_a", kind="start"), DiagramEdge("n_a", "n_b"),
                      DiagramEdge("n_b", "n_a", "again", "route")])
    assert layers(looped) == [[START_ID], ["n_a"], ["n_b"]]


def test_an_edge_that_skips_a_layer_bends_around_the_box_in_between():
    # a -> b -> c and a -> c: the long edge gets a bend point in b's layer, beside b's box.
    diagram = Diagram("skip", [DiagramNode(f"n_{n}", n, "x", None) for n in "abc"],
                      [DiagramEdge(START_ID, "n_a", kind="start"), DiagramEdge("n_a", "n_b"),
                       DiagramEdge("n_b", "n_c"), DiagramEdge("n_a", "n_c", "y", "route")])
    boxes = {i: (2.0, 0.6) for i in (START_ID, "n_a", "n_b", "n_c")}
    layout = _layout(diagram, boxes)
    [bend] = layout.bends[3]
    (bx, by), (x, y) = layout.pos[bend], layout.pos["n_b"]
    assert by == y and abs(bx - x) > boxes["n_b"][0] / 2
    assert layout.bends.keys() == {3}


def test_plan_mode_mark_comes_from_the_agent_class_not_its_name(monkeypatch: pytest.MonkeyPatch):
    from shoal.agents import base
    from shoal.agents.splitter import IntentSplitter
    from shoal.graphs.draw import _asks_planner

    split = load_spec(CASCADE)[0].nodes["split"].agent_config
    assert split.get("plan") is not None and _asks_planner("intent_splitter", split)
    no_plan = {k: v for k, v in split.items() if k != "plan"}
    assert not _asks_planner("intent_splitter", no_plan)
    # A plugin splitter under another name that plans is drawn as one; an unknown agent is not.
    monkeypatch.setitem(base._registry, "my_splitter", IntentSplitter)
    assert _asks_planner("my_splitter", split)
    assert not _asks_planner("no_such_agent", split)
