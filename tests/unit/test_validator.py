"""medical_validator on the real drug dictionary, ICD-10-CM tree and dose table (no mocks)."""

from __future__ import annotations

import time
from typing import Any

import pytest

import shoal
from shoal import AgentContext, AgentResult, ChainEdge, GraphSpec, NodeSpec
from shoal.agents import get_agent
from shoal.agents.validator import (
    MedicalValidator,
    MedicalValidatorConfig,
    confidence_for,
    dose_table,
)


async def validate(text: str, **config: Any) -> AgentResult:
    agent = MedicalValidator(MedicalValidatorConfig(**config), node="check")
    return await agent.run(AgentContext(node="check", run_id="r", record_id="x", text=text))


def checks(result: AgentResult) -> list[tuple[str, str]]:
    return [(f["check"], f["severity"]) for f in result.output["findings"]]


def test_registered_with_fixed_labels() -> None:
    assert get_agent("medical_validator") is MedicalValidator
    assert MedicalValidator.labels(MedicalValidatorConfig()) == {"ok", "flagged"}


async def test_finds_drugs_doses_and_frequency() -> None:
    r = await validate("Take lisinopril 10 mg daily and metformin 500 mg twice daily.")
    meds = r.output["medications"]
    assert [(m["name"], m["drugbank_id"], m["in_table"]) for m in meds] == [
        ("lisinopril", "DB00722", True), ("metformin", "DB00331", True)]
    doses = [(d["drug"], d["value"], d["unit"], d["per_day"], d["daily"])
             for d in r.output["doses"]]
    assert doses == [("lisinopril", 10, "mg", 1, 10), ("metformin", 500, "mg", 2, 1000)]
    assert r.output["ok"] and r.label == "ok" and r.confidence == 1.0 and not r.escalate
    assert r.output["findings"] == []


@pytest.mark.parametrize("text", ["Metformin 500mg BID", "METFORMIN 500 MG b.i.d.",
                                  "Glucophage 500 mg twice a day"])
async def test_case_brand_and_spacing_variants(text: str) -> None:
    r = await validate(text)
    assert r.output["doses"][0]["drug"] == "metformin"
    assert r.output["doses"][0]["per_day"] == 2
    assert r.output["ok"]


async def test_upper_case_and_typo() -> None:
    r = await validate("LISINOPRIL 20 mg; metforman 500 mg")
    meds = {m["name"]: m["match"] for m in r.output["medications"]}
    assert meds == {"lisinopril": "exact", "metformin": "fuzzy"}
    assert checks(r) == [("drug_fuzzy", "info")]
    assert r.output["ok"] and r.confidence == pytest.approx(0.95)


async def test_dose_above_max_is_an_error_and_escalates() -> None:
    r = await validate("metformin 5000 mg once daily")
    assert checks(r) == [("dose_max", "error")]
    finding = r.output["findings"][0]
    assert finding["span"] == [10, 17]  # "5000 mg"
    assert r.label == "flagged" and not r.output["ok"]
    assert r.confidence <= 0.3
    assert r.escalate and r.reason is not None and "dose_max" in r.reason


async def test_implausible_unit_is_an_error() -> None:
    r = await validate("lisinopril 10 units")
    assert checks(r) == [("dose_unit", "error")]
    assert r.escalate and r.confidence <= 0.3


async def test_frequency_pushes_daily_dose_over_max() -> None:
    r = await validate("acetaminophen 1,000 mg q4h")
    assert r.output["doses"][0]["daily"] == 6000
    assert checks(r) == [("daily_max", "error")]


async def test_mcg_mg_slip_and_warning_band() -> None:
    r = await validate("levothyroxine 50 mg")
    assert checks(r) == [("dose_max", "error")]
    r = await validate("sertraline 300 mg")  # above the single maximum, not the daily one...
    assert checks(r) == [("dose_max", "error")]
    r = await validate("metoprolol 300 mg")  # ...while this is only above the typical single
    assert checks(r) == [("dose_high", "warning")]
    assert not r.escalate and r.confidence == pytest.approx(0.6) and r.label == "flagged"


async def test_codes_valid_invalid_and_lookalikes() -> None:
    r = await validate("Dx E11.9 and I10; also E11.99Z and Q99.999. Vitamin B12 level ok, A1C 7.")
    codes = {c["code"]: c for c in r.output["codes"]}
    assert codes["E11.9"]["description"] == "Type 2 diabetes mellitus without complications"
    assert codes["I10"]["description"] == "Essential (primary) hypertension"
    assert codes["E11.9"]["valid"] and codes["I10"]["billable"]
    assert not codes["E11.99Z"]["valid"] and not codes["Q99.999"]["valid"]
    assert "B12" not in codes and "A1C" not in codes
    assert checks(r) == [("code_invalid", "error"), ("code_invalid", "error")]
    assert r.escalate and r.confidence == pytest.approx(0.25)


async def test_category_code_is_info_only() -> None:
    r = await validate("ICD-10: E11")
    assert checks(r) == [("code_category", "info")]
    assert r.output["ok"]


async def test_text_without_medications_is_ok() -> None:
    r = await validate("Slept well, walked the dog, appointment moved to Friday.")
    assert r.output == {"medications": [], "doses": [], "codes": [], "findings": [], "ok": True,
                        "source": "text"}
    assert r.confidence == 1.0 and r.label == "ok"


async def test_dose_without_drug_and_lab_values() -> None:
    r = await validate("glucose 180 mg/dL this morning. Took 2 tablets.")
    assert [d["unit"] for d in r.output["doses"]] == ["tablet"]  # mg/dL is not a dose
    assert checks(r) == [("dose_no_drug", "info")]
    assert r.output["ok"]


async def test_messages_do_not_quote_the_text() -> None:
    r = await validate("Jane Roe MRN 4471 takes metformin 5000 mg")
    for finding in r.output["findings"]:
        assert "Jane" not in finding["message"] and "5000" not in finding["message"]
    assert r.reason is not None and "metformin" not in r.reason


def test_every_table_drug_is_found_by_the_dictionary() -> None:
    from shoal.agents.validator import analyse

    for key, entry in dose_table().items():
        found = analyse(f"{key} 1 {entry.units[0]}").medications
        assert [m["name"] for m in found] == [entry.name], key


def test_confidence_rule() -> None:
    def f(severity: str) -> Any:
        return {"check": "x", "severity": severity, "message": "", "span": [0, 0]}

    assert confidence_for([]) == 1.0
    assert confidence_for([f("info")] * 10) == 0.8
    assert confidence_for([f("warning"), f("warning")]) == pytest.approx(0.55)
    assert confidence_for([f("info"), f("warning"), f("error")]) == pytest.approx(0.3)


class DraftCfg(shoal.AgentConfig):
    shape: str = "dict"


@shoal.agent("t_med_draft", config=DraftCfg)
async def med_draft(ctx: AgentContext, cfg: DraftCfg) -> AgentResult:
    """Stands in for a drafting model: a reply text, or a structured medication list."""
    if cfg.shape == "items":
        items = [{"drug": "metformin", "dose": 5000, "unit": "mg", "frequency": "daily"},
                 {"drug": "lisinopril", "dose": 10, "unit": "mg"},
                 {"drug": "zorblatex", "dose": 5, "unit": "mg"}]
        return AgentResult(output=items, confidence=0.9)
    return AgentResult(output={"text": "Continue lisinopril 10 mg daily. Code I10."},
                       confidence=0.9)


def two_node_graph(shape: str) -> shoal.Graph:
    spec = GraphSpec(
        name="t",
        nodes={"draft": NodeSpec(agent="t_med_draft", shape=shape),
               "check": NodeSpec(agent="medical_validator", from_node="draft",
                                 escalate_below=0.5)},
        edges=[ChainEdge.parse("draft -> check")],
    )
    return shoal.Graph(spec)


async def test_validates_a_dict_draft_from_an_earlier_node() -> None:
    # The user text mentions an overdose; the draft does not: the draft is what is checked.
    r = await two_node_graph("dict").arun("I took metformin 5000 mg")
    out = r.output
    assert out["source"] == "draft:text"
    assert [m["name"] for m in out["medications"]] == ["lisinopril"]
    assert [c["code"] for c in out["codes"]] == ["I10"]
    assert out["ok"] and r.nodes[1].label == "ok" and not r.nodes[1].escalate


async def test_validates_an_item_list_and_escalates_in_the_trace() -> None:
    r = await two_node_graph("items").arun("anything")
    out = r.output
    assert out["source"] == "draft:items"
    assert [(c, s) for c, s in ((f["check"], f["severity"]) for f in out["findings"])] == [
        ("dose_max", "error"), ("drug_unknown", "warning"), ("dose_no_drug", "info")]
    trace = r.nodes[1]
    assert trace.node == "check" and trace.label == "flagged"
    assert trace.escalate and trace.reason is not None and "dose_max" in trace.reason
    assert trace.confidence <= 0.3


async def test_missing_from_node_fails_the_record() -> None:
    spec = GraphSpec(name="t", nodes={"check": NodeSpec(agent="medical_validator",
                                                        from_node="nowhere")}, edges=[])
    r = await shoal.Graph(spec).arun("x")
    assert r.status == "error" and r.error is not None and "nowhere" in r.error.message


async def test_a_50_kb_note_completes() -> None:
    await validate("warm up metformin 500 mg")  # the dictionaries load once per process
    chunk = ("Pt seen for follow-up. Continue lisinopril 10 mg daily, metformin 1000 mg BID, "
             "atorvastatin 40 mg at bedtime. BP stable. Dx I10, E11.9. Glucose 140 mg/dL. ")
    text = chunk * (50_000 // len(chunk) + 1)
    start = time.perf_counter()
    r = await validate(text)
    elapsed = time.perf_counter() - start
    assert len(text) >= 50_000
    assert len(r.output["doses"]) == 3 * (50_000 // len(chunk) + 1)
    assert r.output["ok"]
    assert elapsed < 5.0
