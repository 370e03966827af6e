"""The contract every backend keeps, run against each one through the ``backend`` fixture.

The checks themselves are :mod:`shoal.testing.conformance`, the suite plugin authors run on
their own backends. A backend implements at least one protocol; a protocol it does not
implement is skipped for it, and a protocol it claims is held to every check.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from shoal.models import Backend, Classifier, Embedder, Generator, LabelScorer
from shoal.testing import FakeBackend, conformance


def needs(backend: Backend, protocol: type) -> None:
    if not isinstance(backend, protocol):
        pytest.skip(f"{type(backend).__name__} does not implement {protocol.__name__}")


async def test_implements_at_least_one_protocol(backend: Backend):
    await conformance.check_protocols(backend)


async def test_text_comes_back(backend: Backend):
    needs(backend, Generator)
    assert isinstance(backend, Generator)
    await conformance.check_generate(backend)


async def test_json_validates_against_the_schema(backend: Backend):
    needs(backend, Generator)
    assert isinstance(backend, Generator)
    await conformance.check_generate_json(backend)


async def test_label_scores_sum_to_one(backend: Backend):
    needs(backend, LabelScorer)
    assert isinstance(backend, LabelScorer)
    await conformance.check_label_scorer(backend)


async def test_classifier_probabilities_sum_to_one(backend: Backend):
    needs(backend, Classifier)
    assert isinstance(backend, Classifier)
    await conformance.check_classifier(backend, timeout_s=60)


async def test_embeddings_are_unit_vectors_of_dim(backend: Backend):
    needs(backend, Embedder)
    assert isinstance(backend, Embedder)
    await conformance.check_embedder(backend, timeout_s=60)


async def test_timeout_raises_the_documented_error(backend: Backend):
    await conformance.check_timeout(backend)


async def test_twenty_concurrent_calls_are_safe(backend: Backend):
    await conformance.check_concurrency(backend, calls=20)


async def test_validate_runs_the_checks_of_each_protocol_it_implements():
    fake = FakeBackend(handler=lambda messages: '{"answer": "yes", "score": 1, "ok": true}',
                       delay_s=0.001)
    ran = await conformance.validate(fake)
    assert ran == ["protocols", "generator", "label_scorer", "classifier", "embedder",
                   "timeout", "concurrency"]


class _NoTimeout:
    """A Classifier that ignores its time-out."""

    name = "no-timeout"
    labels = ("a", "b")

    async def classify(
        self, texts: Sequence[str], *, timeout_s: float | None = None
    ) -> list[dict[str, float]]:
        return [{"a": 0.5, "b": 0.5} for _ in texts]


async def test_a_broken_backend_fails_naming_the_part_it_broke():
    with pytest.raises(conformance.ConformanceError, match="finished instead of raising"):
        await conformance.validate(_NoTimeout())
    with pytest.raises(conformance.ConformanceError, match="implements none"):
        await conformance.validate(object())
