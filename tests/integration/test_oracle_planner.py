"""The oracle planner (benchmarks/oracle_planner.py), the test double behind the triage acceptance
run: on the real healthcare triage graph (real masker, real ONNX triage, the real OpenAI-compatible
backend over loopback) it is asked about the masked text and answers the gold label, found by an
exact match on that text, never by a guess. Asked for a plan (plan mode's request, as shoal's
splitter builds it), it answers the record's gold parts cut out of the masked message."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from benchmarks.oracle_planner import (
    HEALTHCARE_TARGETS,
    PSEUDONYM,
    LabelledRecord,
    OracleServer,
    message_text,
    read_records,
    serve_oracle,
)

from shoal.agents.plans import check_plan, plan_messages, plan_schema
from shoal.graphs.loader import load_spec
from shoal.graphs.runtime import Graph
from shoal.models.openai_compat import JsonMode, OpenAICompatModel
from shoal.policies.escalation import BudgetSpec, NodeRule
from tests.conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # spaCy and the triage ONNX model

HEALTH = REPO / "examples" / "healthcare"
TEST_SPLIT = HEALTH / "data" / "test.jsonl"
MULTI_TEST = HEALTH / "data" / "multi_test.jsonl"
PER_CLASS = 3
"""Records per gold label in the sample: 21 over 7 labels, three of them emergencies."""


def _rows(path: Path = TEST_SPLIT) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def _stratified(rows: list[dict[str, Any]], per_class: int) -> list[dict[str, Any]]:
    """The first ``per_class`` records of each label in file order, personal data first (the
    masker must have replaced something for the lookup to be tested on masked text)."""
    picked: list[dict[str, Any]] = []
    for label in sorted({r["label"] for r in rows}):
        of = sorted((r for r in rows if r["label"] == label), key=lambda r: not r["has_pii"])
        picked += of[:per_class]
    return picked


@pytest.fixture(scope="module")
def oracle() -> Iterator[OracleServer]:
    # The whole test split, so the lookup has to pick each record out of 635, as in the run, and
    # the multi-request test split (records with parts, for plan requests) beside it.
    with serve_oracle([*read_records(TEST_SPLIT), *read_records(MULTI_TEST)]) as server:
        yield server


def _graph(monkeypatch: pytest.MonkeyPatch, base_url: str,
           triage: NodeRule | None) -> Graph:
    """triage.yaml with its planner at ``base_url`` (``${SHOAL_PLANNER_URL}`` is read when the
    file is loaded) and ``triage`` as the triage node's escalation rule."""
    monkeypatch.setenv("SHOAL_PLANNER_URL", base_url)
    monkeypatch.setenv("SHOAL_PLANNER_MODEL", "oracle")
    path = HEALTH / "triage.yaml"
    spec, source = load_spec(path)
    assert spec.models["planner"].base_url == base_url  # type: ignore[union-attr]
    return Graph(spec, base_dir=path.parent, source=source, checked=True,
                 rules={"triage": triage}, budget=BudgetSpec())


async def test_every_escalated_record_gets_its_gold_label(
        oracle: OracleServer, monkeypatch: pytest.MonkeyPatch) -> None:
    sample = _stratified(_rows(), PER_CLASS)
    assert sum(r["label"] == "emergency" for r in sample) == PER_CLASS
    before = oracle.index.stats.to_dict()
    # A threshold above any confidence (as `shoal calibrate --planner live` does): every record
    # goes to the planner, so every final label below is the oracle's answer.
    always = NodeRule.model_construct(below=1.01, on_flag=True, task=None)
    graph = _graph(monkeypatch, oracle.base_url, always)
    try:
        results = await graph.abatch([(r["id"], r["text"]) for r in sample], concurrency=4)
    finally:
        # The planner's pooled connections belong to this test's event loop: close them here,
        # not at interpreter exit (an unclosed socket is a ResourceWarning, an error here).
        await graph.models["planner"].aclose()  # type: ignore[attr-defined]
    for row, result in zip(sample, results, strict=True):
        triage = next(n for n in result.nodes if n.node == "triage")
        assert triage.escalated, (row["id"], triage.reason)
        assert triage.label == row["label"], row["id"]
        assert result.output["model"] == "oracle"
        assert result.cost is not None and result.cost.planner_tokens > 0  # usage is counted
    after = oracle.index.stats.to_dict()
    assert after["requests"] - before["requests"] == len(sample)
    assert after["exact"] - before["exact"] == len(sample)
    assert after["fallback"] == before["fallback"]


async def test_masked_text_with_names_and_phones_is_found_exactly(
        oracle: OracleServer, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [r for r in _rows() if {"name", "phone"} <= set(r["pii"])][:8]
    assert len(rows) == 8
    # The masked text as the graph makes it (its masker node's output), not the oracle's own.
    graph = _graph(monkeypatch, oracle.base_url, None)
    results = await graph.abatch([(r["id"], r["text"]) for r in rows], concurrency=4)
    for row, result in zip(rows, results, strict=True):
        masked = next(n for n in result.nodes if n.node == "mask").output["masked"]
        assert masked != row["text"] and PSEUDONYM.search(masked), row["id"]
        match = oracle.index.lookup(masked)
        assert (match.kind, match.record.id) == ("exact", row["id"])
    # The other tiers are what a run must not lean on; they are counted apart.
    renumbered = re.sub(r"_(\d+)\]", lambda m: f"_{int(m[1]) + 10}]", masked)
    assert oracle.index.lookup(renumbered).kind == "normalised"
    assert oracle.index.lookup(masked + " thanks").kind == "fallback"


def test_answers_in_the_schema_it_is_sent(oracle: OracleServer) -> None:
    record: LabelledRecord = oracle.index.records[0]
    masked = oracle.index.masked[0]
    schema = {"type": "object", "additionalProperties": False,
              "properties": {"answer": {"type": "string"}, "label": {"$ref": "#/$defs/Label"},
                             "confidence": {"type": "number"}},
              "required": ["answer", "label", "confidence"],
              "$defs": {"Label": {"enum": ["billing", record.label, "zzz"]}}}
    body = {"model": "oracle", "max_tokens": 96, "messages": [
        {"role": "system", "content": "You are the planner."},
        {"role": "user", "content": f"Task: label it\n\nMessage:\n{masked}\n\n"
                                    "Draft from the local model:\n{\"label\": \"billing\"}"}],
        "response_format": {"type": "json_object", "schema": schema}}  # llama.cpp's form
    with httpx.Client(trust_env=False, timeout=10) as client:  # loopback: never via a proxy
        reply = client.post(f"{oracle.base_url}/chat/completions", json=body).json()
        models = client.get(f"{oracle.base_url}/models").json()
    content = json.loads(reply["choices"][0]["message"]["content"])
    assert content == {"answer": record.label, "label": record.label, "confidence": 1.0}
    assert reply["usage"]["prompt_tokens"] > 0 and reply["usage"]["completion_tokens"] > 0
    assert [m["id"] for m in models["data"]] == ["oracle"]


# --- plan requests ------------------------------------------------------------------------------


def _cascade_targets() -> dict[str, dict[str, Any]]:
    """The healthcare cascade's split targets: name -> {labels, does}."""
    spec = yaml.safe_load((HEALTH / "cascade.yaml").read_text(encoding="utf-8"))
    targets: dict[str, dict[str, Any]] = spec["nodes"]["split"]["targets"]
    return targets


async def _masked(monkeypatch: pytest.MonkeyPatch, base_url: str,
                  rows: list[dict[str, Any]]) -> list[str]:
    """The rows' texts as the triage graph's masker leaves them."""
    graph = _graph(monkeypatch, base_url, None)
    results = await graph.abatch([(r["id"], r["text"]) for r in rows], concurrency=4)
    return [next(n for n in result.nodes if n.node == "mask").output["masked"]
            for result in results]


async def _plan(base_url: str, json_mode: JsonMode, targets: dict[str, str], text: str,
                max_steps: int) -> list[Any]:
    """The oracle's plan for ``text``, asked as the splitter asks (``plan_messages`` under
    ``plan_schema``) and validated by shoal's backend against that schema."""
    async with OpenAICompatModel(base_url=base_url, model="oracle", json_mode=json_mode,
                                 max_retries=0) as planner:
        out = await planner.generate_json(
            plan_messages("You are the planner.", targets, text, max_steps),
            plan_schema(list(targets), max_steps), max_tokens=512, timeout_s=30)
    assert out.usage.prompt_tokens > 0 and out.usage.completion_tokens > 0
    return list(out.data.steps)


def test_the_default_targets_are_the_cascades() -> None:
    cascade = {label: name for name, target in _cascade_targets().items()
               for label in target["labels"]}
    assert dict(HEALTHCARE_TARGETS) == cascade


def test_a_plan_request_has_its_message_section_to_the_end() -> None:
    messages = plan_messages("sys", {"validate": "clinic"}, "Hi [NAME_1].\n\nRefill?", 4)
    assert message_text(messages) == ("Hi [NAME_1].\n\nRefill?", True)


def test_malformed_parts_are_an_error_naming_the_line(tmp_path: Path) -> None:
    good = {"id": "a", "text": "Refill please. Also a bill.", "label": "billing",
            "parts": [{"label": "prescription_refill", "text": "Refill please."},
                      {"label": "billing", "text": "Also a bill."}]}
    bad = {"id": "b", "text": "Secret Value here", "label": "billing",
           "parts": [{"label": "billing", "text": 3}]}
    path = tmp_path / "rows.jsonl"
    path.write_text(f"{json.dumps(good)}\n{json.dumps({**good, 'id': 'c', 'parts': None})}\n",
                    encoding="utf-8")
    first, second = read_records(path)
    assert first.parts == (("prescription_refill", "Refill please."), ("billing", "Also a bill."))
    assert second.parts == ()
    path.write_text(f"{json.dumps(good)}\n{json.dumps(bad)}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"rows\.jsonl:2: 'parts'") as caught:
        read_records(path)
    assert "Secret" not in str(caught.value)


@pytest.mark.parametrize("json_mode", ["json_schema", "json_object"])
async def test_a_plan_request_gets_the_gold_parts_of_the_masked_message(
        oracle: OracleServer, monkeypatch: pytest.MonkeyPatch, json_mode: JsonMode) -> None:
    # Records whose masking changes a part (a name or phone inside a request), so the steps can
    # only be found in the masked message, not by the raw parts.
    candidates = [r for r in _rows(MULTI_TEST) if {"name", "phone"} & set(r["pii"])][:24]
    masked_all = await _masked(monkeypatch, oracle.base_url, candidates)
    picked = [(row, masked) for row, masked in zip(candidates, masked_all, strict=True)
              if any(p["text"] not in masked for p in row["parts"])][:3]
    assert len(picked) == 3
    targets = {name: " ".join(t["does"].split()) for name, t in _cascade_targets().items()}
    before = oracle.index.stats.to_dict()
    for row, masked in picked:
        assert masked != row["text"] and PSEUDONYM.search(masked), row["id"]
        steps = await _plan(oracle.base_url, json_mode, targets, masked, 4)
        checked, problems = check_plan(steps, masked, list(targets), 4)
        assert problems == [], row["id"]
        assert all(c is not None for c in checked)
        starts = [masked.find(s.text) for s in steps]
        assert all(start >= 0 for start in starts) and starts == sorted(starts), row["id"]
        in_order = sorted(row["parts"], key=lambda p: row["text"].find(p["text"]))
        assert [s.why for s in steps] == [p["label"] for p in in_order], row["id"]
        assert [s.target.value for s in steps] == [HEALTHCARE_TARGETS[p["label"]]
                                                   for p in in_order], row["id"]
        # A masked request's excerpt carries the pseudonym, never the value it replaced.
        changed = [(s.text, p["text"]) for s, p in zip(steps, in_order, strict=True)
                   if p["text"] not in masked]
        assert changed and all(PSEUDONYM.search(text) and text != raw for text, raw in changed)
    after = oracle.index.stats.to_dict()
    parts = sum(len(row["parts"]) for row, _ in picked)
    assert after["plans"] - before["plans"] == len(picked)
    assert after["exact"] - before["exact"] == len(picked)  # each record found by its text
    assert after["parts_missing"] == before["parts_missing"]
    assert after["target_not_in_schema"] == before["target_not_in_schema"]
    assert sum(after[k] - before[k] for k in ("parts_exact", "parts_pattern", "parts_fallback")) \
        == parts


async def test_a_plan_keeps_to_max_steps_and_the_target_enum(oracle: OracleServer) -> None:
    position = next(i for i, r in enumerate(oracle.index.records)
                    if len(r.parts) == 3 and "emergency" in {label for label, _ in r.parts}
                    and r.parts[0][0] != "emergency")
    record, masked = oracle.index.records[position], oracle.index.masked[position]
    # No urgent target: the emergency part goes to the first target of the enum, and is counted.
    targets = {"decline": "not the clinic's", "validate": "a clinic request"}
    before = oracle.index.stats.to_dict()
    steps = await _plan(oracle.base_url, "json_schema", targets, masked, 2)
    after = oracle.index.stats.to_dict()
    order = sorted(record.parts, key=lambda p: record.text.find(p[1]))
    assert [s.why for s in steps] == [label for label, _ in order[:2]]
    assert [s.target.value for s in steps] == [
        "decline" if label == "emergency" else HEALTHCARE_TARGETS[label]
        for label, _ in order[:2]]
    assert after["target_not_in_schema"] - before["target_not_in_schema"] == sum(
        label == "emergency" for label, _ in order[:2])
    assert check_plan(steps, masked, list(targets), 2)[1] == []


async def test_a_record_without_parts_is_one_step(oracle: OracleServer) -> None:
    position = next(i for i, r in enumerate(oracle.index.records)
                    if not r.parts and r.label == "emergency"
                    and PSEUDONYM.search(oracle.index.masked[i]))
    masked = oracle.index.masked[position]
    targets = {name: " ".join(t["does"].split()) for name, t in _cascade_targets().items()}
    before = oracle.index.stats.to_dict()
    steps = await _plan(oracle.base_url, "json_object", targets, masked, 4)
    after = oracle.index.stats.to_dict()
    assert [(s.target.value, s.text, s.why) for s in steps] == [
        ("urgent", masked.strip(), "emergency")]
    assert check_plan(steps, masked, list(targets), 4)[1] == []
    assert after["plans"] - before["plans"] == 1
    assert after["exact"] - before["exact"] == 1
