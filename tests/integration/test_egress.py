"""The canary egress test: notes full of identifiers go through mask -> triage with the triage node
escalating to a real planner (llama_cpp.server on 127.0.0.1) behind a recording proxy; no canary
value may ever reach it. Also: the budget cap holds against the real planner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import shoal
from tests.conftest import REPO
from tests.integration.recording_proxy import RecordingProxy
from tests.unit.test_masker import NOTES

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TRIAGE_MODEL = REPO / "examples" / "healthcare" / "models" / "triage.onnx"
LABELS = ["appointment", "billing", "emergency", "injection", "off_topic",
          "prescription_refill", "symptom_report"]

SHORT: list[dict[str, Any]] = [
    {"id": "m1", "text": "Hi, Rosalind Featherstonehaugh here (DOB 02/29/1956). I need to move "
                         "my Tuesday appointment. Call 415-555-0182.",
     "canaries": ["Featherstonehaugh", "02/29/1956", "415-555-0182"]},
    {"id": "m2", "text": "Refill lisinopril 10 mg for Bartholomew Quayle-Ngata, MRN 55810327, "
                         "email b.quayle.ngata@canarymail.org",
     "canaries": ["Quayle-Ngata", "55810327", "b.quayle.ngata@canarymail.org"]},
    {"id": "m3", "text": "My bill for account 4471-2290-118 is wrong. I live at 1840 Wexford "
                         "Crescent, Duluth MN 55811. - Ottoline Marchbanks",
     "canaries": ["4471-2290-118", "1840 Wexford", "Marchbanks"]},
    {"id": "m4", "text": "Since yesterday my chest feels tight and my left arm is numb. "
                         "This is Cuthbert Abernethy-Lowe, SSN 219-09-9999.",
     "canaries": ["Abernethy-Lowe", "219-09-9999"]},
]


def messages() -> list[dict[str, Any]]:
    long = [{"id": n["id"], "text": n["text"], "canaries": [c for _, c in n["canaries"]]}
            for n in NOTES]
    return [*SHORT, *long]


def write_graph(tmp_path: Path, proxy: RecordingProxy, model_id: str, **esc: Any) -> Path:
    budget = "".join(f"\n  {k}: {v}" for k, v in esc.items())
    path = tmp_path / "graph.yaml"
    path.write_text(f"""
shoal: 1
name: egress
models:
  triage: {{kind: onnx-classifier, path: {TRIAGE_MODEL}}}
  planner:
    kind: openai
    base_url: {proxy.base_url}
    model: {model_id}
    timeout_s: 120
    price: {{input_per_mtok: 2.5, output_per_mtok: 10}}
nodes:
  mask: {{agent: privacy_masker}}
  triage: {{agent: classifier, model: triage, labels: {json.dumps(LABELS)},
            escalate_below: 0.99}}
edges:
  - mask -> triage
escalation:
  planner: planner
  max_tokens: 48{budget}
""")
    return path


async def test_no_canary_reaches_the_planner(tmp_path: Path, planner_server: Any) -> None:
    batch = messages()
    with RecordingProxy(planner_server.base_url) as proxy:
        graph = shoal.load_graph(write_graph(tmp_path, proxy, planner_server.model_id))
        results = await graph.abatch([(m["id"], m["text"]) for m in batch], concurrency=2)
    sent = proxy.recorded()
    posts = [b for b in proxy.bodies if b]
    assert len(posts) >= len(batch) - 1, "the planner was (almost) never called"
    for m in batch:
        for canary in m["canaries"]:
            assert canary.encode() not in sent, f"{m['id']}: a canary reached the planner"
            assert json.dumps(canary)[1:-1].encode() not in sent
    assert all(r.status in ("ok", "escalated") for r in results), [r.error for r in results]
    escalated = [r for r in results if r.status == "escalated"]
    assert escalated, [r.nodes[-1].reason for r in results]
    for r in escalated:
        triage = r.nodes[-1]
        assert triage.escalated and triage.label in LABELS
        assert r.output["local"]["label"] in LABELS  # the local answer stays on record
        assert r.cost is not None and r.cost.planner_calls == 1 and r.cost.planner_tokens > 0
    # The planner saw pseudonyms where the names were.
    assert b"[NAME_" in sent


async def test_share_budget_holds_against_the_real_planner(tmp_path: Path,
                                                           planner_server: Any) -> None:
    batch = SHORT * 2
    with RecordingProxy(planner_server.base_url) as proxy:
        graph = shoal.load_graph(write_graph(tmp_path, proxy, planner_server.model_id,
                                             max_share=0.25, window=8))
        results = [await graph.arun(m["text"], id=f"{m['id']}-{i}")
                   for i, m in enumerate(batch)]
    # floor(0.25 * 8) = 2 escalations reached the planner (llama_cpp.server refuses the first
    # json_schema request, so the backend may post the same messages twice: count messages).
    asked = {json.dumps(json.loads(b)["messages"]) for b in proxy.bodies if b}
    assert len(asked) == 2
    triage = [r.nodes[-1] for r in results]
    refused = [t for t in triage if t.reason and t.reason.startswith("budget_exhausted")]
    assert len(refused) == len(batch) - 2, [t.reason for t in triage]
    admitted = [t for t in triage if t not in refused]
    # The stand-in planner may still fail to answer in JSON; then the local answer stays.
    assert all(t.escalated or "planner failed" in (t.reason or "") for t in admitted)
    assert all(r.status in ("ok", "escalated") for r in results)
    estimate = sum(r.cost.all_planner_usd_estimate for r in results if r.cost is not None)
    spent = sum(r.cost.planner_usd for r in results if r.cost is not None)
    assert estimate > 0 and spent < estimate
