"""One ``backend`` fixture, parametrized by backend name (as LangGraph's checkpointer suites do).

Each factory returns a real backend on the embedded models, except ``fake``, which is the fault-
injection double users get from ``shoal.testing`` and is checked against the same contract.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shoal.models.specs import LlamaCppModelSpec, OnnxEmbedderModelSpec, OpenAIModelSpec

TRAIN_LINES = [
    *({"text": t, "label": "billing"} for t in (
        "question about my bill", "I was charged twice", "invoice looks wrong",
        "insurance did not pay the charge", "how do I pay my balance", "refund for a payment",
        "my statement has an error", "billing office phone number", "copay amount is wrong",
        "why is there a late fee on my account")),
    *({"text": t, "label": "appointment"} for t in (
        "move my appointment to friday", "cancel my visit tomorrow", "book a checkup",
        "reschedule with dr lee", "is there an opening next week", "I need to see the doctor",
        "change my appointment time", "schedule a follow up visit", "can I come in monday",
        "confirm my appointment please")),
    *({"text": t, "label": "refill"} for t in (
        "refill my lisinopril", "I am out of my inhaler", "renew my prescription",
        "send the refill to my pharmacy", "need more metformin", "prescription ran out",
        "pharmacy says no refills left", "please renew my medication", "refill request",
        "can you call in my prescription")),
]


def _llamacpp() -> Any:
    from shoal.models.llamacpp import LlamaCppModel

    return LlamaCppModel.from_spec(
        LlamaCppModelSpec(kind="llamacpp", model="smollm2-135m-instruct"), None)


def _llamacpp_gemma() -> Any:
    from shoal.models.llamacpp import LlamaCppModel

    return LlamaCppModel.from_spec(LlamaCppModelSpec(kind="llamacpp", model="gemma3-270m"), None)


def _onnx_embedder() -> Any:
    from shoal.models.onnx import OnnxEmbedder

    return OnnxEmbedder.from_spec(OnnxEmbedderModelSpec(kind="onnx-embedder",
                                                        model="minilm-l6-int8"), None)


@pytest.fixture(scope="session")
def trained_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from shoal.models.train import train_text_classifier

    root = tmp_path_factory.mktemp("clf")
    data = root / "train.jsonl"
    data.write_text("\n".join(json.dumps(line) for line in TRAIN_LINES) + "\n")
    out = root / "triage.onnx"
    train_text_classifier(data, out, seed=0)
    return out


BACKENDS = ["fake", "llamacpp", "llamacpp_gemma", "onnx_classifier", "onnx_embedder",
            "openai_compat"]
MARKS = {name: [pytest.mark.integration, pytest.mark.slow] for name in BACKENDS if name != "fake"}


@pytest.fixture(params=[pytest.param(n, marks=MARKS.get(n, [])) for n in BACKENDS])
def backend(request: pytest.FixtureRequest) -> Any:
    name: str = request.param
    factories: dict[str, Callable[[], Any]] = {
        "fake": _fake,
        "llamacpp": _llamacpp,
        "llamacpp_gemma": _llamacpp_gemma,
        "onnx_embedder": _onnx_embedder,
        "onnx_classifier": lambda: _onnx_classifier(request.getfixturevalue("trained_classifier")),
        "openai_compat": lambda: _openai(request.getfixturevalue("planner_server")),
    }
    return factories[name]()


def _fake() -> Any:
    from shoal.testing import FakeBackend

    return FakeBackend(handler=lambda messages: '{"answer": "yes", "score": 1, "ok": true}',
                       labels=("billing", "appointment", "refill"), delay_s=0.001)


def _onnx_classifier(path: Path) -> Any:
    from shoal.models.onnx import load_classifier

    return load_classifier(path)


def _openai(server: Any) -> Any:
    from shoal.models.openai_compat import OpenAICompatModel

    return OpenAICompatModel.from_spec(OpenAIModelSpec(
        kind="openai", base_url=server.base_url, model=server.model_id, timeout_s=60,
        max_retries=1))
