"""`shoal serve` and a model's queue: a request that finds the model's queue full is answered
429 with Retry-After at once (the model itself is real: the embedded SmolLM2 writing a reply);
the others are served."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import shoal
from shoal.graphs.loader import load_spec
from shoal.service import create_app

pytestmark = pytest.mark.integration

GRAPH_YAML = """\
shoal: 1
name: quota
models:
  slm: {kind: llamacpp, model: smollm2-135m-instruct, max_queue: 0}
nodes:
  answer: {agent: responder, model: slm, max_tokens: 48}
edges: []
"""


def test_a_full_model_queue_is_429_with_retry_after_and_the_rest_are_served(
        tmp_path: Path) -> None:
    graph_file = tmp_path / "graph.yaml"
    graph_file.write_text(GRAPH_YAML)
    spec, source = load_spec(graph_file)
    graph = shoal.Graph(spec, base_dir=tmp_path, source=source, checked=True)
    app = create_app(graph, keys=None, base_dir=tmp_path, warmup=False)
    with TestClient(app) as client:
        # Load the model first, so the race below is about the queue, not the load.
        assert client.post("/v1/runs", json={"text": "Hello"}).status_code == 200
        texts = [f"Please tell me about my appointment number {i} next week." for i in range(4)]
        with ThreadPoolExecutor(max_workers=4) as pool:
            answers = list(pool.map(
                lambda t: client.post("/v1/runs", json={"text": t}), texts))
    statuses = sorted(a.status_code for a in answers)
    assert 200 in statuses and 429 in statuses, statuses
    for refused in (a for a in answers if a.status_code == 429):
        assert int(refused.headers["retry-after"]) >= 1
        error = refused.json()["error"]
        assert error["code"] == "rate_limit_exceeded" and error["type"] == "rate_limit_error"
        assert "appointment" not in error["message"]  # never the input
