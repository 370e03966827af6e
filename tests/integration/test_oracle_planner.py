"""The oracle planner (benchmarks/oracle_planner.py), the test double behind the triage acceptance
run: on the real healthcare triage graph (real masker, real ONNX triage, the real OpenAI-compatible
backend over loopback) it is asked about the masked text and answers the gold label, found by an
exact match on that text, never by a guess."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from benchmarks.oracle_planner import (
    PSEUDONYM,
    LabelledRecord,
    OracleServer,
    read_records,
    serve_oracle,
)

from shoal.graphs.loader import load_spec
from shoal.graphs.runtime import Graph
from shoal.policies.escalation import BudgetSpec, NodeRule
from tests.conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # spaCy and the triage ONNX model

HEALTH = REPO / "examples" / "healthcare"
TEST_SPLIT = HEALTH / "data" / "test.jsonl"
PER_CLASS = 3
"""Records per gold label in the sample: 21 over 7 labels, three of them emergencies."""


def _rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in TEST_SPLIT.read_text(encoding="utf-8").splitlines()
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
    # The whole test split, so the lookup has to pick each record out of 635, as in the run.
    with serve_oracle(read_records(TEST_SPLIT)) as server:
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
