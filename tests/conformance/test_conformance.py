"""The contract every backend keeps, run against each one through the ``backend`` fixture.

A backend implements at least one protocol; a protocol it does not implement is skipped for it,
and a protocol it claims is held to every check below.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from pydantic import BaseModel

from shoal import BackendTimeout
from shoal.models import Classifier, Embedder, Generator, LabelScorer

PROTOCOLS = (Generator, LabelScorer, Classifier, Embedder)
MESSAGES: list[Any] = [{"role": "user", "content": "Answer yes or no: is water wet?"}]


class Answer(BaseModel):
    answer: str
    score: int


def needs(backend: Any, protocol: type) -> None:
    if not isinstance(backend, protocol):
        pytest.skip(f"{type(backend).__name__} does not implement {protocol.__name__}")


async def call_any(backend: Any, timeout_s: float | None, *, heavy: bool = False) -> Any:
    """One call through whichever protocol the backend implements. ``heavy`` makes it take
    far longer than a microsecond, so a time-out cannot lose the race to a finished result."""
    n = 2000 if heavy else 1
    if isinstance(backend, Generator):
        return await backend.generate(MESSAGES, max_tokens=64 if heavy else 8,
                                      timeout_s=timeout_s)
    if isinstance(backend, Classifier):
        return await backend.classify(["my bill is wrong"] * n, timeout_s=timeout_s)
    if isinstance(backend, Embedder):
        return await backend.embed(["hello world"] * min(n, 64), timeout_s=timeout_s)
    return await backend.score_labels("It is", ["hot", "cold"], timeout_s=timeout_s)


def test_implements_at_least_one_protocol(backend: Any):
    assert any(isinstance(backend, p) for p in PROTOCOLS)
    assert isinstance(backend.name, str) and backend.name


async def test_text_comes_back(backend: Any):
    needs(backend, Generator)
    out = await backend.generate(MESSAGES, max_tokens=16, timeout_s=120)
    assert isinstance(out.text, str) and out.text.strip()
    assert out.usage.prompt_tokens > 0


async def test_json_validates_against_the_schema(backend: Any):
    needs(backend, Generator)
    out = await backend.generate_json(
        [{"role": "user", "content": "Reply with JSON: answer 'yes', score 1."}], Answer,
        max_tokens=64, timeout_s=120)
    assert isinstance(out.data, Answer)
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    raw = await backend.generate_json(
        [{"role": "user", "content": 'Reply with JSON {"ok": true}.'}], schema,
        max_tokens=32, timeout_s=120)
    if not isinstance(raw.data, dict) or "ok" not in raw.data:
        pytest.fail(f"schema dict not honoured: {type(raw.data).__name__}")


async def test_label_scores_sum_to_one(backend: Any):
    needs(backend, LabelScorer)
    scores = await backend.score_labels("Q: Is fire hot or cold?\nA: It is",
                                        ["hot", "cold", "blue"], timeout_s=120)
    assert set(scores) == {"hot", "cold", "blue"}
    assert math.isclose(sum(scores.values()), 1.0, abs_tol=1e-6)
    assert all(0.0 <= v <= 1.0 for v in scores.values())


async def test_classifier_probabilities_sum_to_one(backend: Any):
    needs(backend, Classifier)
    out = await backend.classify(["my bill is wrong", "refill my inhaler"], timeout_s=60)
    assert len(out) == 2
    for probs in out:
        assert set(probs) == set(backend.labels)
        assert math.isclose(sum(probs.values()), 1.0, abs_tol=1e-5)


async def test_embeddings_are_unit_vectors_of_dim(backend: Any):
    needs(backend, Embedder)
    vectors = await backend.embed(["hello", "a longer sentence about appointments"],
                                  timeout_s=60)
    assert len(vectors) == 2
    for v in vectors:
        assert len(v) == backend.dim
        assert math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, abs_tol=1e-3)


async def test_timeout_raises_the_documented_error(backend: Any):
    with pytest.raises(BackendTimeout) as info:
        await call_any(backend, timeout_s=1e-6, heavy=True)
    assert isinstance(info.value, TimeoutError)
    # the backend is still usable after a time-out
    assert await call_any(backend, timeout_s=120) is not None


async def test_twenty_concurrent_calls_are_safe(backend: Any):
    results = await asyncio.gather(*(call_any(backend, timeout_s=300) for _ in range(20)))
    assert len(results) == 20
    assert all(r is not None for r in results)
