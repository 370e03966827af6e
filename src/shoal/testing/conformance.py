"""The contract every model backend keeps, as checks a plugin's own tests can call.

Each ``check_*`` is a coroutine that returns when the backend keeps that part of the contract
and raises :class:`ConformanceError` (an ``AssertionError``, so pytest shows it as a failed
assertion) when it does not. :func:`validate` runs every check that applies: the ones of each
protocol the backend implements, then the time-out and concurrency checks every backend owes.
shoal's own backends are held to the same checks (``tests/conformance``)::

    from shoal.testing import conformance

    async def test_my_backend_conforms():
        ran = await conformance.validate(MyBackend(...))
        assert "classifier" in ran

Or one test per check, to see which part fails::

    async def test_classifier(backend):
        await conformance.check_classifier(backend)

The checks call the backend for real; give them a small model. A backend that needs a warm-up
(loading a file) should be built before the call, not inside it: the time-out check allows a
micro-second.
"""

from __future__ import annotations

import asyncio
import math

from pydantic import BaseModel

from shoal.errors import BackendTimeout
from shoal.models.base import (
    PROTOCOLS,
    Backend,
    Classifier,
    Embedder,
    Generation,
    Generator,
    LabelScorer,
    Message,
)

__all__ = [
    "PROTOCOLS",
    "Answer",
    "ConformanceError",
    "MESSAGES",
    "call_any",
    "check_classifier",
    "check_concurrency",
    "check_embedder",
    "check_generate",
    "check_generate_json",
    "check_generator",
    "check_label_scorer",
    "check_protocols",
    "check_timeout",
    "implemented",
    "validate",
]

MESSAGES: list[Message] = [{"role": "user", "content": "Answer yes or no: is water wet?"}]
"""What the Generator checks ask: short, so a tiny model answers it quickly."""

DEFAULT_TIMEOUT_S = 120.0
"""Per call: generous, since the checks run on CPU on whatever machine runs the tests."""


class ConformanceError(AssertionError):
    """A backend broke its protocol's contract; the message says which part."""


class Answer(BaseModel):
    """The pydantic schema the JSON check asks for."""

    answer: str
    score: int


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise ConformanceError(message)


def _name(backend: object) -> str:
    return type(backend).__name__


def implemented(backend: object) -> list[type]:
    """The protocols of :mod:`shoal.models` that ``backend`` implements, in their usual order."""
    return [p for p in PROTOCOLS if isinstance(backend, p)]


async def check_protocols(backend: object) -> Backend:
    """It implements at least one protocol and has a non-empty ``name``. Returns the backend,
    typed as one."""
    if not isinstance(backend, Generator | LabelScorer | Classifier | Embedder):
        raise ConformanceError(f"{_name(backend)} implements none of "
                               f"{', '.join(p.__name__ for p in PROTOCOLS)}")
    name = getattr(backend, "name", None)
    _expect(isinstance(name, str) and bool(name),
            f"{_name(backend)}.name must be a non-empty string, got {name!r}")
    return backend


async def check_generate(backend: Generator, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """``generate`` returns non-empty text and counts the prompt's tokens."""
    out = await backend.generate(MESSAGES, max_tokens=16, timeout_s=timeout_s)
    _expect(isinstance(out, Generation), f"generate returned {type(out).__name__}, "
                                         "not Generation")
    _expect(isinstance(out.text, str) and bool(out.text.strip()),
            "generate returned empty text")
    _expect(out.usage.prompt_tokens > 0, "generate reported no prompt tokens")


async def check_generate_json(
    backend: Generator, *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> None:
    """``generate_json`` validates into a pydantic model's instance, and honours a JSON schema
    given as a dict."""
    out = await backend.generate_json(
        [{"role": "user", "content": "Reply with JSON: answer 'yes', score 1."}], Answer,
        max_tokens=64, timeout_s=timeout_s)
    _expect(isinstance(out.data, Answer),
            f"generate_json with a pydantic model gave {type(out.data).__name__}, not Answer")
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    raw = await backend.generate_json(
        [{"role": "user", "content": 'Reply with JSON {"ok": true}.'}], schema,
        max_tokens=32, timeout_s=timeout_s)
    _expect(isinstance(raw.data, dict) and "ok" in raw.data,
            f"schema dict not honoured: {type(raw.data).__name__}")


async def check_generator(backend: Generator, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Both Generator checks: :func:`check_generate` and :func:`check_generate_json`."""
    await check_generate(backend, timeout_s=timeout_s)
    await check_generate_json(backend, timeout_s=timeout_s)


async def check_label_scorer(
    backend: LabelScorer, *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> None:
    """``score_labels`` gives every label asked for a probability, and they sum to 1."""
    labels = ["hot", "cold", "blue"]
    scores = await backend.score_labels("Q: Is fire hot or cold?\nA: It is", labels,
                                        timeout_s=timeout_s)
    _expect(set(scores) == set(labels), f"scored {sorted(scores)}, asked for {sorted(labels)}")
    _expect(math.isclose(sum(scores.values()), 1.0, abs_tol=1e-6),
            f"label scores sum to {sum(scores.values())}, not 1")
    _expect(all(0.0 <= v <= 1.0 for v in scores.values()), "a label score is outside [0, 1]")


async def check_classifier(backend: Classifier, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """``classify`` answers once per text, over exactly :attr:`labels`, summing to 1."""
    out = await backend.classify(["my bill is wrong", "refill my inhaler"], timeout_s=timeout_s)
    _expect(len(out) == 2, f"classify answered {len(out)} times for 2 texts")
    labels = set(backend.labels)
    _expect(bool(labels), "labels is empty")
    for probs in out:
        _expect(set(probs) == labels,
                f"classify gave labels {sorted(probs)}, the backend's are {sorted(labels)}")
        _expect(math.isclose(sum(probs.values()), 1.0, abs_tol=1e-5),
                f"class probabilities sum to {sum(probs.values())}, not 1")


async def check_embedder(backend: Embedder, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """``embed`` answers once per text with unit vectors of length :attr:`dim`."""
    vectors = await backend.embed(["hello", "a longer sentence about appointments"],
                                  timeout_s=timeout_s)
    _expect(len(vectors) == 2, f"embed answered {len(vectors)} times for 2 texts")
    for v in vectors:
        _expect(len(v) == backend.dim, f"a vector has length {len(v)}, dim is {backend.dim}")
        norm = math.sqrt(sum(x * x for x in v))
        _expect(math.isclose(norm, 1.0, abs_tol=1e-3), f"a vector has norm {norm}, not 1")


async def call_any(backend: Backend, timeout_s: float | None, *, heavy: bool = False) -> object:
    """One call through whichever protocol the backend implements (Generator first). ``heavy``
    makes it take far longer than a micro-second, so a time-out cannot lose the race to a
    finished result."""
    n = 2000 if heavy else 1
    if isinstance(backend, Generator):
        return await backend.generate(MESSAGES, max_tokens=64 if heavy else 8,
                                      timeout_s=timeout_s)
    if isinstance(backend, Classifier):
        return await backend.classify(["my bill is wrong"] * n, timeout_s=timeout_s)
    if isinstance(backend, Embedder):
        return await backend.embed(["hello world"] * min(n, 64), timeout_s=timeout_s)
    return await backend.score_labels("It is", ["hot", "cold"], timeout_s=timeout_s)


async def check_timeout(backend: Backend, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """A call that cannot finish in time raises :class:`shoal.BackendTimeout` (also a
    ``TimeoutError``), and the backend still answers afterwards."""
    try:
        await call_any(backend, timeout_s=1e-6, heavy=True)
    except BackendTimeout as exc:
        _expect(isinstance(exc, TimeoutError), "BackendTimeout is not a TimeoutError")
    else:
        raise ConformanceError("a call with a 1 µs time-out finished instead of raising "
                               "BackendTimeout")
    _expect(await call_any(backend, timeout_s=timeout_s) is not None,
            "no answer after a time-out")


async def check_concurrency(
    backend: Backend, *, calls: int = 20, timeout_s: float = 300.0
) -> None:
    """``calls`` concurrent calls all answer (one instance serves every run of its node)."""
    results = await asyncio.gather(*(call_any(backend, timeout_s=timeout_s)
                                     for _ in range(calls)))
    _expect(len(results) == calls and all(r is not None for r in results),
            f"{sum(r is None for r in results)} of {calls} concurrent calls gave no answer")


async def validate(backend: object, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[str]:
    """Run every check that applies to ``backend``; returns the names of the checks that ran.

    A protocol the backend does not implement is skipped; one it implements is held to all of
    its checks. Raises :class:`ConformanceError` at the first broken check.
    """
    typed = await check_protocols(backend)
    ran = ["protocols"]
    if isinstance(typed, Generator):
        await check_generator(typed, timeout_s=timeout_s)
        ran.append("generator")
    if isinstance(typed, LabelScorer):
        await check_label_scorer(typed, timeout_s=timeout_s)
        ran.append("label_scorer")
    if isinstance(typed, Classifier):
        await check_classifier(typed, timeout_s=timeout_s)
        ran.append("classifier")
    if isinstance(typed, Embedder):
        await check_embedder(typed, timeout_s=timeout_s)
        ran.append("embedder")
    await check_timeout(typed, timeout_s=timeout_s)
    ran.append("timeout")
    await check_concurrency(typed)
    ran.append("concurrency")
    return ran
