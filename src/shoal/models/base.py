"""The small protocols agents depend on. Agents never import a backend class.

Four capabilities, each a Protocol a backend may implement:

- :class:`Generator`: chat text, and JSON constrained by a pydantic model or a JSON schema.
- :class:`LabelScorer`: a probability for each of a fixed set of labels (they sum to 1).
- :class:`Classifier`: a trained classifier's label probabilities for each text.
- :class:`Embedder`: one vector per text.

Every method is ``async`` and takes ``timeout_s``; a backend that does not answer in time raises
:class:`shoal.BackendTimeout`, any other failure :class:`shoal.BackendError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeAlias, TypedDict, runtime_checkable

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field


class Message(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


class Usage(BaseModel):
    model_config = ConfigDict(frozen=True)

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Generation(BaseModel):
    """A generated text, what it cost, and how long it took."""

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    text: str
    model: str
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float | None = None
    """Money spent, where the model has a price in the YAML; None for local models."""
    latency_ms: float = 0.0
    finish_reason: str | None = None


class JsonGeneration(Generation):
    """A generation that parsed as JSON and validated against the requested schema."""

    data: Any


JsonSchema = type[BaseModel] | Mapping[str, Any]
"""A pydantic model class (validated into an instance) or a JSON schema dict (validated into
plain data with jsonschema-like checks by the backend's constraint)."""


@runtime_checkable
class Generator(Protocol):
    name: str

    async def generate(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        timeout_s: float | None = None,
    ) -> Generation: ...

    async def generate_json(
        self,
        messages: Sequence[Message],
        schema: JsonSchema,
        *,
        max_tokens: int = 512,
        timeout_s: float | None = None,
    ) -> JsonGeneration: ...


@runtime_checkable
class LabelScorer(Protocol):
    name: str

    async def score_labels(
        self, prompt: str, labels: Sequence[str], *, timeout_s: float | None = None
    ) -> dict[str, float]:
        """P(label | prompt) over ``labels``; the values sum to 1."""
        ...


@runtime_checkable
class Classifier(Protocol):
    name: str

    @property
    def labels(self) -> tuple[str, ...]: ...

    async def classify(
        self, texts: Sequence[str], *, timeout_s: float | None = None
    ) -> list[dict[str, float]]:
        """One {label: probability} per text, over :attr:`labels`; each sums to 1."""
        ...


@dataclass(frozen=True)
class Signals:
    """What a classifier knows about its answers beyond the probabilities: the raw material of a
    learned deferral router (:mod:`shoal.models.router`).

    Rows follow the texts; columns follow the classifier's :attr:`Classifier.labels`.
    """

    probabilities: NDArray[np.float64]
    """(n, k): the classifier's own probabilities (for an ensemble, the combined ones)."""
    members: Mapping[str, NDArray[np.float64]] = field(default_factory=dict)
    """Member name -> (n, k) probabilities, for an ensemble; empty for a single model."""
    embeddings: NDArray[np.float32] | None = None
    """(n, d) L2-normalised sentence embeddings the classifier computed anyway, or None."""

    @staticmethod
    def stack(rows: Sequence[Signals]) -> Signals:
        """Row-wise signals (e.g. each caller's share of a micro-batch) as one."""
        first = rows[0]
        return Signals(np.vstack([r.probabilities for r in rows]),
                       {k: np.vstack([r.members[k] for r in rows]) for k in first.members},
                       None if first.embeddings is None
                       else np.vstack([r.embeddings for r in rows
                                       if r.embeddings is not None]))

    def row(self, i: int) -> Signals:
        """Row ``i`` as a one-row :class:`Signals`."""
        return Signals(self.probabilities[i:i + 1],
                       {k: v[i:i + 1] for k, v in self.members.items()},
                       None if self.embeddings is None else self.embeddings[i:i + 1])


@runtime_checkable
class SignalClassifier(Classifier, Protocol):
    """A :class:`Classifier` that can also return its :class:`Signals`."""

    async def classify_signals(
        self, texts: Sequence[str], *, timeout_s: float | None = None
    ) -> Signals: ...

    def signals_sync(self, texts: Sequence[str]) -> Signals:
        """Blocking :meth:`classify_signals`, for training tools."""
        ...


@runtime_checkable
class Embedder(Protocol):
    name: str

    @property
    def dim(self) -> int: ...

    async def embed(
        self, texts: Sequence[str], *, timeout_s: float | None = None
    ) -> list[list[float]]:
        """One L2-normalised vector of length :attr:`dim` per text."""
        ...


Backend: TypeAlias = Generator | LabelScorer | Classifier | Embedder
"""A built model: whatever implements at least one of the four protocols."""

PROTOCOLS: tuple[type, ...] = (Generator, LabelScorer, Classifier, Embedder)
"""The protocols a model kind may serve, in the order they are named in messages."""


def json_schema_of(schema: JsonSchema) -> dict[str, Any]:
    """The JSON schema dict for a pydantic model class or an already-made schema."""
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return schema.model_json_schema()
    return dict(schema)


def validate_json(schema: JsonSchema, data: Any) -> Any:
    """Validate parsed JSON: a pydantic model gives an instance, a schema dict the data itself.

    Raises ``pydantic.ValidationError`` or ``ValueError`` with no input quoted.
    """
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return schema.model_validate(data)
    _check_schema(dict(schema), data, "$")
    return data


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "integer": (int,),
    "number": (int, float), "boolean": (bool,), "null": (type(None),),
}


def _check_schema(schema: Mapping[str, Any], data: Any, where: str) -> None:
    """The subset of JSON Schema that grammar-constrained decoding enforces: type, required,
    properties, items, enum. Enough to catch a backend that ignored the constraint."""
    kind = schema.get("type")
    if isinstance(kind, str):
        types = _JSON_TYPES.get(kind, (object,))
        is_bool = isinstance(data, bool)
        if not isinstance(data, types) or (is_bool and kind in ("integer", "number")):
            raise ValueError(f"{where}: expected {kind}, got {type(data).__name__}")
    if "enum" in schema and data not in schema["enum"]:
        raise ValueError(f"{where}: value not in enum")
    if isinstance(data, dict):
        for key in schema.get("required", []):
            if key not in data:
                raise ValueError(f"{where}: missing required property {key!r}")
        for key, sub in schema.get("properties", {}).items():
            if key in data:
                _check_schema(sub, data[key], f"{where}.{key}")
    if isinstance(data, list) and isinstance(schema.get("items"), Mapping):
        for i, item in enumerate(data):
            _check_schema(schema["items"], item, f"{where}[{i}]")
