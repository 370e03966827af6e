"""Model backends behind small protocols; agents depend on the protocols only.

Importing this package loads no model library: each backend imports llama.cpp, ONNX Runtime or
httpx's client only when a model is built. A ``models:`` entry's ``kind`` is looked up in
:mod:`shoal.models.kinds`, which plugins extend through the entry-point group ``shoal.models``.
"""

from shoal.models.base import (
    Backend,
    Classifier,
    Embedder,
    Generation,
    Generator,
    JsonGeneration,
    LabelScorer,
    Message,
    SignalClassifier,
    Signals,
    Usage,
)
from shoal.models.ensemble import EnsembleClassifier
from shoal.models.kinds import ModelKind, build_model, get_kind, kind_names, register_kind
from shoal.models.llamacpp import LlamaCppModel
from shoal.models.local_server import LlamaServer, serve_embedded
from shoal.models.onnx import EmbeddingClassifier, OnnxEmbedder, OnnxTextClassifier, load_classifier
from shoal.models.openai_compat import OpenAICompatModel
from shoal.models.router import DeferralRouter, load_router
from shoal.models.train import (
    TrainingDataError,
    TrainReport,
    build_embedding_classifier,
    train_text_classifier,
)
from shoal.models.train_ensemble import train_ensemble_classifier
from shoal.models.train_router import train_router

__all__ = [
    "Backend",
    "Classifier",
    "DeferralRouter",
    "Embedder",
    "EmbeddingClassifier",
    "EnsembleClassifier",
    "Generation",
    "Generator",
    "JsonGeneration",
    "LabelScorer",
    "LlamaCppModel",
    "LlamaServer",
    "Message",
    "ModelKind",
    "OnnxEmbedder",
    "OnnxTextClassifier",
    "OpenAICompatModel",
    "SignalClassifier",
    "Signals",
    "TrainReport",
    "TrainingDataError",
    "Usage",
    "build_embedding_classifier",
    "build_model",
    "get_kind",
    "kind_names",
    "load_classifier",
    "load_router",
    "register_kind",
    "serve_embedded",
    "train_ensemble_classifier",
    "train_router",
    "train_text_classifier",
]
