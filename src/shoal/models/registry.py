"""Spec -> backend instance. Backends import their libraries lazily, so a graph that uses only
rule-based agents never loads llama.cpp or ONNX Runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shoal.graphs.spec import (
    LlamaCppModelSpec,
    OnnxClassifierModelSpec,
    OnnxEmbedderModelSpec,
    OpenAIModelSpec,
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


def resolve_path(path: str, base_dir: Path | None) -> Path:
    """A model path from the YAML is relative to the YAML file, like every other path in it."""
    p = Path(path).expanduser()
    if not p.is_absolute() and base_dir is not None:
        p = base_dir / p
    return p


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
