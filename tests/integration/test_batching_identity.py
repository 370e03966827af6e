"""Micro-batching changes no result: the healthcare cascade's local path (guard -> mask ->
triage) over test messages, many at once with batching on (the default) and with it off, gives
the same verdicts, masks, labels and escalations; probabilities agree to 1e-4 (the embedder's
float arithmetic differs in the last bits with its batch's shape)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import shoal
from shoal.policies import privacy
from shoal.testing import split_numbers
from tests.conftest import REPO

pytest.importorskip("presidio_analyzer")

HEALTH = REPO / "examples" / "healthcare"
N = 96


def _graph(tmp: Path, batched: bool) -> shoal.Graph:
    off = "" if batched else ", batch: {max_size: 1}"
    path = tmp / f"local-{batched}.yaml"
    path.write_text(
        "shoal: 1\nname: local-path\nmodels:\n"
        f"  guard: {{kind: onnx-classifier, path: {HEALTH / 'models' / 'guard.onnx'}{off}}}\n"
        f"  triage: {{kind: onnx-classifier, path: {HEALTH / 'models' / 'triage.onnx'}{off}}}\n"
        "nodes:\n"
        "  guard: {agent: input_guard, model: guard}\n"
        f"  mask: {{agent: privacy_masker, pack: hipaa_safe_harbor{off}}}\n"
        "  triage: {agent: classifier, model: triage}\n"
        "edges: [guard -> mask -> triage]\n")
    return shoal.Graph.from_yaml(path)


def test_batched_and_unbatched_runs_give_the_same_results(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in (HEALTH / "data" / "test.jsonl").read_text()
            .splitlines()[:N]]
    records = [{"id": r["id"], "text": r["text"]} for r in rows]
    alone = asyncio.run(_graph(tmp_path, False).abatch(records, concurrency=32))
    batcher = privacy.detector("hipaa_safe_harbor").batcher  # the batched masker's
    calls, rows_before = batcher.batches, batcher.rows
    together = asyncio.run(_graph(tmp_path, True).abatch(records, concurrency=32))
    # Batching happened: the masker saw every message the guard let through, in fewer calls.
    masked = sum(1 for r in together if any(n.node == "mask" for n in r.nodes))
    assert masked > N / 2 and batcher.rows - rows_before == masked
    assert batcher.batches - calls < masked / 2
    assert [r.id for r in together] == [r.id for r in alone]
    for a, b in zip(alone, together, strict=True):
        assert a.status == b.status, a.id
        assert [n.node for n in a.nodes] == [n.node for n in b.nodes], a.id
        for x, y in zip(a.nodes, b.nodes, strict=True):
            assert (x.label, x.escalated) == (y.label, y.escalated), (a.id, x.node)
            shape_x, floats_x = split_numbers(x.output)
            shape_y, floats_y = split_numbers(y.output)
            assert shape_x == shape_y, (a.id, x.node)  # masked text, entities, verdicts
            assert floats_x == pytest.approx(floats_y, abs=1e-4), (a.id, x.node)
