"""Spec -> backend instance. Backends import their libraries lazily, so a graph that uses only
rule-based agents never loads llama.cpp or ONNX Runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shoal.models.specs import (
    LlamaCppModelSpec,
    OnnxClassifierModelSpec,
    OnnxEmbedderModelSpec,
    OpenAIModelSpec,
    resolve_path,
)


def kind_protocols() -> dict[str, tuple[type, ...]]:
    """What each model kind can serve, so the compiler can check a node's model statically."""
    from shoal.models.base import Classifier, Embedder, Generator, LabelScorer

    return {
        "llamacpp": (Generator, LabelScorer),
        "onnx-classifier": (Classifier,),
        "onnx-embedder": (Embedder,),
        "openai": (Generator,),
    }


def build_model(spec: Any, base_dir: Path | None) -> Any:
    """The backend for one ``models:`` entry."""
    if isinstance(spec, LlamaCppModelSpec):
        from shoal.models.llamacpp import LlamaCppModel

        return LlamaCppModel.from_spec(spec, base_dir)
    if isinstance(spec, OnnxClassifierModelSpec):
        from shoal.models.onnx import load_classifier

        return load_classifier(resolve_path(spec.path, base_dir))
    if isinstance(spec, OnnxEmbedderModelSpec):
        from shoal.models.onnx import OnnxEmbedder

        return OnnxEmbedder.from_spec(spec, base_dir)
    if isinstance(spec, OpenAIModelSpec):
        from shoal.models.openai_compat import OpenAICompatModel

        return OpenAICompatModel.from_spec(spec)
    raise TypeError(f"no backend for model spec {type(spec).__name__}")
