"""classifier, planner and responder agents on the real embedded models (no fakes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import shoal
from shoal.graphs.spec import LlamaCppModelSpec, OpenAIModelSpec

pytestmark = [pytest.mark.slow]

ROWS = [
    ("my bill is wrong", "billing"), ("charged twice for one visit", "billing"),
    ("invoice error on my statement", "billing"), ("refund my copay please", "billing"),
    ("insurance did not pay the charge", "billing"), ("late fee on my account", "billing"),
    ("move my appointment to friday", "appointment"), ("book a checkup", "appointment"),
    ("cancel my visit tomorrow", "appointment"), ("reschedule with dr lee", "appointment"),
    ("is there an opening next week", "appointment"), ("change my appointment time", "appointment"),
]


@pytest.fixture(scope="module")
def triage_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from shoal.models.train import train_text_classifier

    root = tmp_path_factory.mktemp("triage")
    data = root / "train.jsonl"
    data.write_text("\n".join(json.dumps({"text": t, "label": lab}) for t, lab in ROWS) + "\n")
    out = root / "triage.onnx"
    train_text_classifier(data, out, test_size=0.34)
    return out


def write_graph(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "graph.yaml"
    path.write_text(text)
    return path


def test_classifier_on_a_trained_onnx_model_routes_by_label(tmp_path: Path, triage_model: Path):
    path = write_graph(tmp_path, f"""
shoal: 1
name: triage
models:
  triage: {{kind: onnx-classifier, path: {triage_model}}}
nodes:
  triage: {{agent: classifier, model: triage, labels: [appointment, billing],
            escalate_below: 0.99}}
  bill: {{agent: template_reply, default: billing office}}
  appt: {{agent: template_reply, default: front desk}}
edges:
  - from: triage
    route: {{billing: bill, appointment: appt}}
""")
    graph = shoal.load_graph(path)
    result = graph.run("there is a wrong charge on my bill")
    assert [n.node for n in result.nodes] == ["triage", "bill"]
    triage = result.nodes[0]
    assert triage.label == "billing" and 0.5 < triage.confidence < 1.0
    assert triage.escalate  # below 0.99: the node asks for the planner


def test_classifier_labels_must_match_the_model(tmp_path: Path, triage_model: Path):
    path = write_graph(tmp_path, f"""
shoal: 1
name: triage
models: {{triage: {{kind: onnx-classifier, path: {triage_model}}}}}
nodes: {{triage: {{agent: classifier, model: triage, labels: [billing, refill]}}}}
""")
    with pytest.raises(shoal.AgentError, match="differ from the model's"):
        shoal.load_graph(path)


def test_classifier_with_a_label_scorer_base_model():
    spec = shoal.GraphSpec(
        name="score",
        models={"gemma": LlamaCppModelSpec(kind="llamacpp", model="gemma3-270m")},
        nodes={"ask": shoal.NodeSpec(agent="classifier", model="gemma", labels=["hot", "cold"],
                                     prompt="Q: Is {text} hot or cold?\nA: It is")},
    )
    result = shoal.Graph(spec).run("fire")
    assert result.output["label"] == "hot"
    assert abs(sum(result.output["probabilities"].values()) - 1.0) < 1e-6
    assert result.nodes[0].confidence == max(result.output["probabilities"].values())


def test_classifier_without_labels_on_a_label_scorer_is_refused():
    spec = shoal.GraphSpec(
        name="score",
        models={"gemma": LlamaCppModelSpec(kind="llamacpp", model="gemma3-270m")},
        nodes={"ask": shoal.NodeSpec(agent="classifier", model="gemma")},
    )
    with pytest.raises(shoal.AgentError, match="needs 'labels'"):
        shoal.Graph(spec)


@shoal.agent("t_symptom_label", labels={"symptom_report"})
async def symptom_label(ctx: shoal.AgentContext) -> shoal.AgentResult:
    return shoal.AgentResult(output="symptom_report", label="symptom_report", confidence=0.9)


def test_responder_drafts_with_the_local_model_and_caps_confidence_on_hard_labels():
    spec = shoal.GraphSpec(
        name="reply",
        models={"slm": LlamaCppModelSpec(kind="llamacpp", model="smollm2-135m-instruct")},
        nodes={"label": shoal.NodeSpec(agent="t_symptom_label"),
               "answer": shoal.NodeSpec(agent="responder", model="slm", escalate_below=0.5)},
        edges=[shoal.ChainEdge.parse("label -> answer")],
    )
    result = shoal.Graph(spec).run("I have had a headache and a fever for three days.")
    assert result.status == "ok", result.error
    assert isinstance(result.output, str) and result.output
    answer = result.nodes[1]
    assert answer.confidence <= 0.4 and answer.escalate
    assert answer.reason is not None and "symptom_report" in answer.reason


def test_planner_node_answers_under_its_schema(planner_server: Any):
    spec = shoal.GraphSpec(
        name="plan",
        models={"planner": OpenAIModelSpec(kind="openai", base_url=planner_server.base_url,
                                           model=planner_server.model_id, timeout_s=120)},
        nodes={"mask": shoal.NodeSpec(agent="privacy_masker"),
               "plan": shoal.NodeSpec(agent="planner", model="planner",
                                      task="Classify the message.",
                                      labels=["billing", "appointment"])},
        edges=[shoal.ChainEdge.parse("mask -> plan")],
    )
    result = shoal.Graph(spec).run("Ann Whitlock asks why the invoice shows two charges.")
    assert result.status == "ok", result.error
    assert result.nodes[-1].node == "plan"
    assert result.output["label"] in {"billing", "appointment"}
    assert isinstance(result.output["answer"], str)
    # The planner's cost is measured once, by the remote model's guard, into the run's cost.
    assert result.cost is not None and result.cost.planner_calls == 1
    assert result.cost.planner_tokens > 0
    assert "usage" not in result.output
    assert 0.0 <= result.nodes[-1].confidence <= 1.0
