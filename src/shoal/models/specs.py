"""The ``models:`` entries of a graph: one pydantic model per built-in kind of backend, and the
catch-all entry for a plugin's kind.

They live beside the backends, below the graph layer, so a backend can read its own spec; the
kinds (:mod:`shoal.models.kinds`) tie each spec to its backend, and the graph spec only collects
them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shoal.models.batching import BatchSettings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class Price(_Strict):
    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)


Boundary = Literal["outside", "inside"]
"""Where a remote model runs: ``outside`` the organisation's trust boundary (a hosted API: the
default), or ``inside`` it (an on-prem server the organisation runs and may send personal data
to)."""

IndependentCheck = Literal["block", "count", "off"]


class EgressSpec(_Strict):
    """``egress:`` of a remote model: how a payload is checked before it is sent to it.

    Every payload is first re-scanned with the masker's own detector (always on: an identifier it
    finds outside a pseudonym blocks the call). ``independent_check`` adds a second detector
    built differently (a first-name gazetteer, name cues, context-free patterns), which catches
    some of what the masker itself missed. For a model ``boundary: inside`` neither blocks; the
    independent check only counts.
    """

    independent_check: IndependentCheck = "block"
    """``block`` (default): a hit blocks the call and the node keeps its local answer;
    ``count``: hits are logged (``egress_flagged``, types and counts) and the call goes out, for
    measuring a deployment's false-block rate before enforcing; ``off``: not run."""
    allow: list[str] = Field(default_factory=list, max_length=1000)
    """Words the independent check never takes for a name: a clinic's, a product's or a
    place's name that is not a person's."""

    @field_validator("allow")
    @classmethod
    def _words(cls, value: list[str]) -> list[str]:
        for word in value:
            if not word.strip() or len(word) > 64 or any(c.isspace() for c in word.strip()):
                raise ValueError("each 'allow' entry must be one word of at most 64 characters")
        return [w.strip() for w in value]


class LlamaCppModelSpec(_Strict):
    """A GGUF model run in-process by llama.cpp: a file path, or an embedded catalog name."""

    kind: Literal["llamacpp"]
    path: str | None = None
    model: str | None = None
    n_ctx: int = Field(default=2048, ge=128)
    threads: int | None = Field(default=None, ge=1)
    chat_format: str | None = None
    max_concurrency: int = Field(default=1, ge=1, le=64)
    """Calls handed to llama.cpp at once; the rest wait in an async queue, holding no thread."""
    max_queue: int = Field(default=64, ge=0, le=100_000)
    """Callers that may wait; past this ``shoal serve`` answers 429 (batches wait for room)."""
    n_gpu_layers: int = Field(default=0, ge=-1)
    """Layers offloaded to a GPU (-1: all). Without GPU support in the installed llama.cpp the
    model runs on the CPU and a ``gpu_unavailable`` warning event says so."""

    @model_validator(mode="after")
    def _one_source(self) -> LlamaCppModelSpec:
        if (self.path is None) == (self.model is None):
            raise ValueError("give exactly one of 'path' (a GGUF file) or 'model' (catalog name)")
        return self


class OrtSettings(_Strict):
    """ONNX Runtime's settings for one model's session."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threads: int = Field(default=1, ge=1, le=256)
    """Intra-op threads. One: shoal's load is concurrent records, and the model pool's threads
    (one per core) already supply the parallelism (measured: see ``shoal.models.onnx``)."""
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    """Execution providers in order of preference; the CPU is always the last resort."""


DEFAULT_ORT = OrtSettings()


class OnnxClassifierModelSpec(_Strict):
    """A text classifier exported to ONNX, with its sidecar JSON of labels next to it."""

    kind: Literal["onnx-classifier"]
    path: str
    batch: BatchSettings | None = None
    """How concurrent calls are combined into one ONNX run (default: up to 32 rows, 2 ms)."""
    threads: int = Field(default=1, ge=1, le=256)
    """ONNX Runtime intra-op threads for this model's session."""
    providers: list[str] = Field(default_factory=lambda: ["CPUExecutionProvider"], min_length=1)
    """ONNX Runtime execution providers, e.g. ``[CUDAExecutionProvider]``; one this
    onnxruntime lacks falls back to the CPU with a ``gpu_unavailable`` warning event."""


def ort_settings(spec: OnnxClassifierModelSpec | OnnxEmbedderModelSpec) -> OrtSettings:
    """The ONNX Runtime settings an ONNX model's YAML entry asks for."""
    return OrtSettings(threads=spec.threads, providers=tuple(spec.providers))


class OnnxEmbedderModelSpec(_Strict):
    """A sentence embedder in ONNX: a file path, or an embedded catalog name."""

    kind: Literal["onnx-embedder"]
    path: str | None = None
    model: str | None = None
    batch: BatchSettings | None = None
    """How concurrent calls are combined (default: runs of 4 texts, two at a time)."""
    threads: int = Field(default=1, ge=1, le=256)
    """ONNX Runtime intra-op threads for this model's session."""
    providers: list[str] = Field(default_factory=lambda: ["CPUExecutionProvider"], min_length=1)
    """ONNX Runtime execution providers (see ``onnx-classifier``)."""

    @model_validator(mode="after")
    def _one_source(self) -> OnnxEmbedderModelSpec:
        if (self.path is None) == (self.model is None):
            raise ValueError("give exactly one of 'path' (an ONNX file) or 'model' (catalog name)")
        return self


class OpenAIModelSpec(_Strict):
    """A model behind an OpenAI-compatible HTTP API. The only kind that leaves the machine."""

    kind: Literal["openai"]
    base_url: str
    model: str
    api_key_env: str | None = None
    """Name of the environment variable holding the key (never the key itself)."""
    timeout_s: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=3, ge=0)
    price: Price | None = None
    circuit_failures: int = Field(default=5, ge=1)
    """Consecutive failed calls (unreachable, timeout, 5xx) that open the circuit breaker."""
    circuit_cooldown_s: float = Field(default=30.0, gt=0)
    """How long an open circuit fails calls at once before one probe call is let through."""
    boundary: Boundary = "outside"
    """``inside``: this server runs inside the organisation's trust boundary (an on-prem vLLM,
    say). The compiler then lets a path reach it without a privacy masker, the egress checks
    count but never block, and every run that used it says so (the node trace's
    ``planner_boundary``, an ``egress_inside_boundary`` event, an audit record)."""
    egress: EgressSpec = Field(default_factory=EgressSpec)
    """How payloads to this model are checked before they leave."""

    @field_validator("base_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return value


class PluginModelSpec(BaseModel):
    """A model of a kind that is not built in: one a plugin registers under the entry-point
    group shoal.models. Its keys are checked against that kind's own spec."""

    # The compiler validates ``config`` against the spec class of the kind registered under
    # ``kind``, and the runtime builds the model from that validated spec. A plugin's own spec
    # instance may be given in Python too; it is kept as its keys.

    model_config = ConfigDict(extra="allow", frozen=True, hide_input_in_errors=True)

    kind: str

    @model_validator(mode="before")
    @classmethod
    def _from_spec(cls, value: Any) -> Any:
        if isinstance(value, BaseModel) and not isinstance(value, PluginModelSpec):
            data = value.model_dump(by_alias=True, exclude_unset=True)
            data.setdefault("kind", getattr(value, "kind", None))
            return data
        return value

    @property
    def config(self) -> dict[str, Any]:
        """The entry as written: ``kind`` and every other key."""
        return {"kind": self.kind, **(self.model_extra or {})}


def boundary_of(spec: object) -> Boundary:
    """Where the model of a ``models:`` entry runs (a plugin's entry may say it too, if its own
    spec has a ``boundary`` key); ``outside`` unless it says ``inside``."""
    value = (spec.config.get("boundary") if isinstance(spec, PluginModelSpec)
             else getattr(spec, "boundary", None))
    return "inside" if value == "inside" else "outside"


def egress_of(spec: object) -> EgressSpec:
    """The ``egress:`` settings of a ``models:`` entry; the defaults for a kind without them."""
    value = getattr(spec, "egress", None)
    return value if isinstance(value, EgressSpec) else EgressSpec()


def resolve_path(path: str, base_dir: Path | None) -> Path:
    """A model path from the YAML is relative to the YAML file, like every other path in it."""
    p = Path(path).expanduser()
    if not p.is_absolute() and base_dir is not None:
        p = base_dir / p
    return p
