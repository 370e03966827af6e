"""Model backends behind small protocols; agents depend on the protocols only."""

from shoal.models.base import (
    Classifier,
    Embedder,
    Generation,
    Generator,
    JsonGeneration,
    LabelScorer,
    Message,
    Usage,
)

__all__ = [
    "Classifier",
    "Embedder",
    "Generation",
    "Generator",
    "JsonGeneration",
    "LabelScorer",
    "Message",
    "Usage",
]
