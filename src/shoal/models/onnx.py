"""ONNX Runtime backends: a sentence embedder and trained text classifiers.

- :class:`OnnxEmbedder` runs a BERT-style encoder (by default the embedded all-MiniLM-L6-v2 int8
  model) with a ``tokenizers`` tokenizer: mean pooling over the attention mask, then L2-normalised.
- :class:`OnnxTextClassifier` runs a TF-IDF + logistic-regression model exported by
  :func:`shoal.models.train.train_text_classifier` (kind ``"tfidf-logreg"``).
- :class:`EmbeddingClassifier` embeds texts with an :class:`~shoal.models.base.Embedder` and runs
  a nearest-centroid head exported by :func:`shoal.models.train.build_embedding_classifier`
  (kind ``"embedding-centroid"``).
- :class:`shoal.models.ensemble.EnsembleClassifier` (kind ``"text-embedding-ensemble"``) builds on
  this module, so it lives in its own and registers itself here
  (:func:`register_classifier_kind`).

:func:`load_classifier` opens any kind, dispatching on the sidecar's ``kind``. Every classifier
also gives its :class:`~shoal.models.base.Signals` (``classify_signals``, ``signals_sync``): the
probabilities ``classify`` returns, plus member probabilities and embeddings where it has them.

Classifier files
----------------
A classifier is two files: ``MODEL.onnx`` and its sidecar ``MODEL.onnx.json`` (the model's full
file name plus ``.json``, so the pair sorts together and ``MODEL.json`` stays free for anything
else). The sidecar (:class:`Sidecar`) names the labels in the order of the model's probability
columns and pins the model's sha256. Loading checks, before anything runs: the sidecar is present
and readable, its ``format_version`` is one this shoal reads, the ONNX file's sha256 equals
``model_sha256``, ONNX Runtime can load the file, and the labels written into the model at export
(metadata ``shoal.labels``) and its probability width match the sidecar. Any failure is a
:class:`~shoal.BackendError` naming the file.

onnxruntime and tokenizers are imported on first use, so ``import shoal`` needs neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shoal.errors import BackendError, BackendTimeout, ShoalError
from shoal.models import catalog, pool
from shoal.models.base import Signals
from shoal.models.batching import BatchSettings, MicroBatcher
from shoal.models.specs import (
    DEFAULT_ORT,
    OnnxEmbedderModelSpec,
    OrtSettings,
    ort_settings,
    resolve_path,
)
from shoal.observability.logging import get_logger

if TYPE_CHECKING:
    from shoal.models.base import Classifier, Embedder

__all__ = [
    "ClassifierLoader",
    "DEFAULT_EMBEDDER",
    "EmbeddingClassifier",
    "FORMAT_VERSION",
    "KIND_CENTROID",
    "KIND_ENSEMBLE",
    "KIND_TFIDF",
    "LABELS_METADATA_KEY",
    "MAX_TOKENS",
    "OnnxEmbedder",
    "OnnxTextClassifier",
    "Sidecar",
    "checked_embedder",
    "embed_blocking",
    "embed_then",
    "embedding_probe",
    "file_sha256",
    "load_classifier",
    "read_sidecar",
    "register_classifier_kind",
    "sidecar_path",
]

FORMAT_VERSION = 1
"""The sidecar format this shoal writes and reads."""

KIND_TFIDF: Final = "tfidf-logreg"
KIND_CENTROID: Final = "embedding-centroid"
KIND_ENSEMBLE: Final = "text-embedding-ensemble"
ClassifierKind = Literal["tfidf-logreg", "embedding-centroid", "text-embedding-ensemble"]

LABELS_METADATA_KEY = "shoal.labels"
"""ONNX metadata key holding the JSON list of labels, written at export, checked at load."""

DEFAULT_EMBEDDER = "minilm-l6-int8"

MAX_TOKENS = 256
"""all-MiniLM-L6-v2's max_seq_length. Longer texts are embedded from their first 256 tokens (the
truncation applies to the embedding input only; the caller's text is not changed)."""

_CHUNK = 4
# Texts per ONNX run. Measured on 2 cores with MiniLM int8, 32 texts of 4-40 words: one run of all
# 32 took 650 ms (long texts) / 270 ms (short ones); runs of 4 sorted by length, one after another,
# 345 / 200 ms; the same runs spread over the two pool threads 200 / 107 ms. Large int8 batches
# are slower per text on this CPU, so a call is cut into small length-sorted chunks.

EMBEDDER_BATCH = BatchSettings(max_size=_CHUNK, max_inflight=2)
"""An embedder's default micro-batches: concurrent callers' texts joined into runs of
``_CHUNK``, two runs at a time (larger int8 runs are slower per text on this CPU)."""


T = TypeVar("T")

_log = get_logger()


# --- errors ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def _map_errors(backend: str) -> Iterator[None]:
    """:func:`shoal.models.pool.map_errors`, plus ONNX Runtime's and tokenizers' exception classes,
    which derive from ``Exception`` only and would slip past it. Messages keep only the type name:
    library messages can quote the input."""
    try:
        with pool.map_errors(backend):
            yield
    except ShoalError:
        raise
    except Exception as exc:
        if type(exc).__module__.startswith("onnxruntime") or type(exc) is Exception:
            raise BackendError(f"{type(exc).__name__} from the model library",
                               backend=backend) from exc
        raise


def _ort() -> Any:
    try:
        import onnxruntime  # type: ignore[import-untyped, unused-ignore]
    except ImportError as exc:
        raise BackendError("onnxruntime is not installed; run: pip install onnxruntime",
                           backend="onnx") from exc
    return onnxruntime


def _providers(settings: OrtSettings, backend: str) -> list[str]:
    """The execution providers to ask for: the configured ones this ONNX Runtime has, then CPU.
    A name ONNX Runtime does not know is an error; one it knows but was not built with (CUDA on
    a CPU wheel) is skipped with a ``gpu_unavailable`` warning event, so the model runs on the
    CPU as it would have without the setting."""
    ort = _ort()
    known, available = set(ort.get_all_providers()), set(ort.get_available_providers())
    unknown = [p for p in settings.providers if p not in known]
    if unknown:
        raise BackendError(f"unknown ONNX Runtime execution provider(s) {unknown}; known: "
                           f"{sorted(known)}", backend=backend)
    chosen = [p for p in settings.providers if p in available]
    missing = [p for p in settings.providers if p not in available]
    if missing:
        _log.warning("gpu_unavailable", backend=backend, providers=missing, fallback="cpu",
                     reason="this onnxruntime build lacks them")
    return [*chosen, *(["CPUExecutionProvider"] if "CPUExecutionProvider" not in chosen else [])]


def _session(model: bytes, *, path: Path, backend: str,
             settings: OrtSettings = DEFAULT_ORT) -> Any:
    """An ORT session with one intra-op thread.

    One session per model file, shared by every caller, not a pool of sessions: ``run`` is
    thread-safe and concurrent runs on one session proceed in parallel. Measured on 2 cores,
    MiniLM int8, single-sentence requests from 2 threads (6 rounds, medians): one session with
    intra_op_num_threads=1 served 263/s (p50 7.2 ms); two such sessions 269/s (p50 7.2 ms: the
    same within noise, for about 100 MB more RSS and another 0.4 s load); one session with 2
    intra-op threads 189/s (p50 9.4 ms), its threads fighting the other request for the cores.
    A rerun with the machine otherwise busy kept that order. A lone request is faster with 2
    intra-op threads (4.6 vs 6.8 ms), but shoal's load is concurrent records, and the model
    pool's threads (one per core) already supply the parallelism.
    """
    ort = _ort()
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # ORT's warnings go to stderr, outside shoal's logging
    providers = _providers(settings, backend)
    try:
        return ort.InferenceSession(model, options, providers=providers)
    except Exception as exc:  # ORT's exception classes derive from Exception only
        raise BackendError(f"{path}: not a loadable ONNX model ({type(exc).__name__})",
                           backend=backend) from exc


def _read_model(path: Path, backend: str) -> bytes:
    if not path.is_file():
        raise BackendError(f"model file not found: {path}", backend=backend)
    with pool.map_errors(backend):
        return path.read_bytes()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _texts(texts: Sequence[str]) -> list[str]:
    # A lone string is a Sequence[str] too; iterating it would classify its characters.
    if isinstance(texts, str):
        raise TypeError("pass a list of texts, not a single string")
    batch = list(texts)
    for i, text in enumerate(batch):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {type(text).__name__}, not str")
    return batch


def _normalised(probs: NDArray[Any]) -> NDArray[np.float64]:
    # ORT computes in float32: rows sum to 1 within ~1e-7; renormalise in float64 so callers can
    # rely on the sum.
    out = np.clip(np.asarray(probs, dtype=np.float64), 0.0, None)
    sums = out.sum(axis=1, keepdims=True)
    sums[sums == 0.0] = 1.0
    result: NDArray[np.float64] = out / sums
    return result


def _as_dicts(probs: NDArray[np.float64], labels: tuple[str, ...]) -> list[dict[str, float]]:
    return [dict(zip(labels, map(float, row), strict=True)) for row in probs]


# --- sidecar --------------------------------------------------------------------------------------


def sidecar_path(model: Path) -> Path:
    """``MODEL.onnx`` -> ``MODEL.onnx.json``."""
    return model.with_name(model.name + ".json")


class Sidecar(BaseModel):
    """What ``MODEL.onnx.json`` holds. Written by :mod:`shoal.models.train` (and
    :mod:`shoal.models.train_ensemble`), checked on load.

    ``labels`` are in the order of the model's probability columns. ``metrics`` are the held-out
    metrics of exactly this model (see :class:`shoal.models.train.Metrics`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: int
    kind: ClassifierKind
    labels: list[str] = Field(min_length=2)
    model_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    data_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    created: str
    """UTC, ISO 8601."""
    n_examples: int = Field(ge=0)
    metrics: dict[str, Any]
    versions: dict[str, str]
    """Library versions at training time (scikit-learn, skl2onnx, onnx, onnxruntime, shoal)."""
    embedder: str | None = None
    """embedding-centroid and text-embedding-ensemble: a catalog name (``minilm-l6-int8``), or a
    path to the embedder's ONNX file (relative to the sidecar's directory), or the name of an
    embedder the caller supplies."""
    embedder_sha256: str | None = None
    embedder_dim: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, gt=0)
    members: list[str] | None = None
    """text-embedding-ensemble: the member names; the model has one ``p_<member>`` output each."""
    hyperparameters: dict[str, Any] | None = None
    """The training recipe (see :mod:`shoal.models.train` and :mod:`shoal.models.train_ensemble`),
    read back by :mod:`shoal.models.refit` to retrain the same kind the same way. Absent from
    sidecars written before it was recorded: the kind's defaults then apply."""

    @field_validator("labels")
    @classmethod
    def _labels_unique(cls, labels: list[str]) -> list[str]:
        if len(set(labels)) != len(labels):
            raise ValueError("labels must be unique")
        if any(not label for label in labels):
            raise ValueError("labels must be non-empty")
        return labels

    @model_validator(mode="after")
    def _kind_fields(self) -> Sidecar:
        if self.kind == KIND_CENTROID and (
            self.embedder is None or self.embedder_dim is None or self.temperature is None
        ):
            raise ValueError("an embedding-centroid sidecar needs embedder, embedder_dim and "
                             "temperature")
        if self.kind == KIND_ENSEMBLE:
            if self.embedder is None or self.embedder_dim is None or not self.members:
                raise ValueError("a text-embedding-ensemble sidecar needs embedder, embedder_dim "
                                 "and members")
            if len(set(self.members)) != len(self.members) or not all(self.members):
                raise ValueError("members must be unique and non-empty")
        return self


def read_sidecar(model: Path, *, backend: str | None = None) -> Sidecar:
    """Read and validate ``model``'s sidecar; BackendError naming the file on any problem."""
    backend = backend or model.name
    path = sidecar_path(model)
    if not path.is_file():
        raise BackendError(
            f"{model}: sidecar {path} not found; a classifier is loaded with the JSON that "
            f"`shoal train-classifier` writes next to it", backend=backend)
    with pool.map_errors(backend):
        raw = path.read_bytes()
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f"{path}:{exc.lineno}" if isinstance(exc, json.JSONDecodeError) else str(path)
        raise BackendError(f"{where}: sidecar is not valid JSON", backend=backend) from exc
    if not isinstance(data, dict):
        raise BackendError(f"{path}: sidecar must be a JSON object", backend=backend)
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise BackendError(f"{path}: format_version {version!r} is not supported (this shoal "
                           f"reads {FORMAT_VERSION})", backend=backend)
    try:
        return Sidecar.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}"
            for e in exc.errors(include_input=False)
        )
        raise BackendError(f"{path}: invalid sidecar: {problems}", backend=backend) from None


def _read_checked(path: Path, kind: ClassifierKind, backend: str) -> tuple[bytes, Sidecar]:
    """The model's bytes and sidecar, after the presence, version, kind and sha256 checks.

    The bytes hashed are the bytes loaded, so the file cannot change between check and load.
    """
    data = _read_model(path, backend)
    sidecar = read_sidecar(path, backend=backend)
    if sidecar.kind != kind:
        raise BackendError(f"{path}: a {sidecar.kind!r} classifier, not {kind!r}; open it with "
                           f"load_classifier()", backend=backend)
    digest = hashlib.sha256(data).hexdigest()
    if digest != sidecar.model_sha256:
        raise BackendError(
            f"{path}: sha256 {digest[:12]}… does not match model_sha256 {sidecar.model_sha256[:12]}"
            f"… in {sidecar_path(path).name}; the file changed or is corrupt since training "
            f"(restore it or retrain)", backend=backend)
    return data, sidecar


def _check_labels(session: Any, labels: Sequence[str], path: Path, backend: str) -> None:
    meta = session.get_modelmeta().custom_metadata_map
    raw = meta.get(LABELS_METADATA_KEY)
    try:
        model_labels = json.loads(raw) if raw is not None else None
    except json.JSONDecodeError:
        model_labels = None
    if model_labels is None:
        raise BackendError(f"{path}: the model carries no {LABELS_METADATA_KEY!r} metadata; "
                           f"export it with shoal.models.train", backend=backend)
    if model_labels != list(labels):
        raise BackendError(f"{path}: the model's labels do not match its sidecar's "
                           f"(model {len(model_labels)}, sidecar {len(labels)}, or a "
                           f"different order)", backend=backend)


def _probabilities_output(session: Any, path: Path, backend: str,
                          name: str = "probabilities") -> str:
    for out in session.get_outputs():
        if out.name == name:
            if out.type != "tensor(float)":
                raise BackendError(f"{path}: {name!r} is {out.type}, not a float tensor "
                                   f"(export with the zipmap option False)", backend=backend)
            return str(out.name)
    raise BackendError(f"{path}: the model has no {name!r} output", backend=backend)


def _check_width(probs: NDArray[Any], labels: Sequence[str], path: Path, backend: str) -> None:
    if probs.ndim != 2 or probs.shape[1] != len(labels):
        raise BackendError(f"{path}: the model gives {probs.shape[-1]} probabilities for "
                           f"{len(labels)} labels", backend=backend)


# --- TF-IDF classifier ----------------------------------------------------------------------------


class _TfidfRuntime:
    """The loaded session of one tfidf-logreg file (shared by every classifier on that file).

    Also runs the in-memory fold models of :mod:`shoal.models.refit`, so a fold model answers
    through the same checks and code as a deployed file; hence labels, not a sidecar.
    """

    def __init__(self, data: bytes, labels: Sequence[str], path: Path, backend: str,
                 settings: OrtSettings = DEFAULT_ORT) -> None:
        self.session = _session(data, path=path, backend=backend, settings=settings)
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].type != "tensor(string)":
            raise BackendError(f"{path}: expected one string input", backend=backend)
        self.input = str(inputs[0].name)
        self.probs = _probabilities_output(self.session, path, backend)
        _check_labels(self.session, labels, path, backend)
        # A probe run: the label column the model names must be the column it ranks first.
        names = [o.name for o in self.session.get_outputs()]
        label_out = "label" if "label" in names else None
        with _map_errors(backend):
            outputs = self.session.run(
                [label_out, self.probs] if label_out else [self.probs],
                {self.input: np.array(["", "the"], dtype=object).reshape(-1, 1)})
        probs = outputs[-1]
        _check_width(probs, labels, path, backend)
        if label_out is not None:
            for name, row in zip(outputs[0], probs, strict=True):
                top = np.sort(row)[::-1]
                if top[0] - top[1] > 1e-6 and labels[int(np.argmax(row))] != name:
                    raise BackendError(f"{path}: the model's label column order differs from "
                                       f"its sidecar's labels", backend=backend)

    def predict(self, texts: list[str]) -> NDArray[np.float64]:
        feed = np.array(texts, dtype=object).reshape(-1, 1)
        (probs,) = self.session.run([self.probs], {self.input: feed})
        return _normalised(probs)


class OnnxTextClassifier:
    """A TF-IDF + logistic-regression classifier (kind ``tfidf-logreg``) run by ONNX Runtime.

    About 25-30 µs of model time per message, 3 µs per message in large batches; one call runs
    the whole batch at once. Loading checks the sidecar (see the module doc).
    """

    def __init__(self, path: str | Path, *, name: str | None = None,
                 batch: BatchSettings | None = None, ort: OrtSettings = DEFAULT_ORT) -> None:
        self.path = Path(path)
        self.name = name or self.path.name
        data, self.sidecar = _read_checked(self.path, KIND_TFIDF, self.name)
        key = ("onnx-classifier", str(self.path.resolve()), self.sidecar.model_sha256, ort)
        labels, path, backend = self.sidecar.labels, self.path, self.name
        self._runtime = pool.shared(key, lambda: _TfidfRuntime(data, labels, path, backend, ort))
        self._labels = tuple(self.sidecar.labels)
        self.batcher: MicroBatcher[str, NDArray[np.float64]] = _batcher(
            key, self._rows, backend, batch)

    def _rows(self, texts: list[str]) -> list[NDArray[np.float64]]:
        return list(self.predict(texts))

    @property
    def labels(self) -> tuple[str, ...]:
        return self._labels

    def predict(self, texts: Sequence[str]) -> NDArray[np.float64]:
        """Blocking: one row of probabilities per text, columns in :attr:`labels` order.

        For scripts and training checks; agents use :meth:`classify`.
        """
        batch = _texts(texts)
        if not batch:
            return np.zeros((0, len(self._labels)))
        with _map_errors(self.name):
            return self._runtime.predict(batch)

    def signals_sync(self, texts: Sequence[str]) -> Signals:
        """Blocking :meth:`classify_signals`: the probabilities only (one model, no embedding)."""
        return Signals(self.predict(texts))

    async def classify_signals(
        self, texts: Sequence[str], *, timeout_s: float | None = None
    ) -> Signals:
        batch = _texts(texts)
        if not batch:
            return Signals(np.zeros((0, len(self._labels))))
        return Signals(np.vstack(await self.batcher.submit(batch, timeout_s=timeout_s)))

    async def classify(
        self, texts: Sequence[str], *, timeout_s: float | None = None
    ) -> list[dict[str, float]]:
        signals = await self.classify_signals(texts, timeout_s=timeout_s)
        return _as_dicts(signals.probabilities, self._labels)


def _batcher(key: tuple[Any, ...], run: Callable[[list[T]], Sequence[Any]], backend: str,
             settings: BatchSettings | None) -> MicroBatcher[T, Any]:
    """The process's one batcher for a loaded model and batch settings: two graphs (or two
    nodes) on one model file share its batches."""
    chosen = settings or BatchSettings()
    return pool.shared(("batcher", *key, chosen),
                       lambda: MicroBatcher(run, backend=backend, settings=chosen))


# --- embedder -------------------------------------------------------------------------------------


class _EmbedderRuntime:
    """One embedder file's session and tokenizer (shared by every OnnxEmbedder on that file)."""

    def __init__(self, model: Path, tokenizer: Path, max_tokens: int, backend: str,
                 settings: OrtSettings = DEFAULT_ORT) -> None:
        data = _read_model(model, backend)
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.session = _session(data, path=model, backend=backend, settings=settings)
        del data
        self.inputs = {i.name for i in self.session.get_inputs()}
        unknown = self.inputs - {"input_ids", "attention_mask", "token_type_ids"}
        if "input_ids" not in self.inputs or unknown:
            raise BackendError(
                f"{model}: expected inputs input_ids[, attention_mask, token_type_ids], got "
                f"{', '.join(sorted(self.inputs))}", backend=backend)
        hidden = [o for o in self.session.get_outputs() if len(o.shape) == 3]
        named = [o for o in hidden if o.name == "last_hidden_state"]
        if not hidden:
            raise BackendError(f"{model}: no token-embedding output (batch, sequence, dim)",
                               backend=backend)
        self.output = str((named or hidden)[0].name)
        self.tokenizer = _load_tokenizer(tokenizer, max_tokens, backend)
        width = (named or hidden)[0].shape[-1]
        # The width is static in MiniLM's export; a symbolic one is measured once.
        self.dim = width if isinstance(width, int) else int(self.embed(["probe"]).shape[1])

    def embed(self, texts: list[str]) -> NDArray[np.float32]:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feed = {"input_ids": ids}
        if "attention_mask" in self.inputs:
            feed["attention_mask"] = mask
        if "token_type_ids" in self.inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        (hidden,) = self.session.run([self.output], feed)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: NDArray[np.float32] = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
        return result


def _load_tokenizer(path: Path, max_tokens: int, backend: str) -> Any:
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise BackendError("tokenizers is not installed; run: pip install tokenizers",
                           backend=backend) from exc
    if not path.is_file():
        raise BackendError(f"tokenizer file not found: {path}", backend=backend)
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises plain Exception
        raise BackendError(f"{path}: not a loadable tokenizer.json ({type(exc).__name__})",
                           backend=backend) from exc
    # MiniLM's tokenizer.json pads and truncates to a fixed 128; pad to the longest text in each
    # run instead and truncate at the model's max_seq_length.
    padding = tokenizer.padding or {}
    pad_token = padding.get("pad_token", "[PAD]")
    pad_id = padding.get("pad_id", tokenizer.token_to_id(pad_token) or 0)
    tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)
    tokenizer.enable_truncation(max_length=max_tokens)
    return tokenizer


def _default_tokenizer(model: Path) -> Path:
    """``tokenizer.json`` beside the model file, else MiniLM's (BERT uncased vocabulary)."""
    beside = model.with_name("tokenizer.json")
    if beside.is_file():
        return beside
    found = catalog.tokenizer_path()
    assert found is not None  # required=True raises instead of returning None
    return found


class OnnxEmbedder:
    """Sentence embeddings from an ONNX encoder: mean pooling over the attention mask,
    L2-normalised. ``OnnxEmbedder()`` is the embedded all-MiniLM-L6-v2 int8 model (384-d).

    Give ``path`` (an ONNX file; its tokenizer is ``tokenizer.json`` beside it, else MiniLM's) or
    ``model`` (a catalog name), not both. The session and tokenizer are loaded once per file per
    process and shared. Texts longer than ``max_tokens`` are embedded from their first
    ``max_tokens`` tokens.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        model: str | None = None,
        tokenizer: str | Path | None = None,
        name: str | None = None,
        max_tokens: int = MAX_TOKENS,
        batch: BatchSettings | None = None,
        ort: OrtSettings = DEFAULT_ORT,
    ) -> None:
        if path is not None and model is not None:
            raise ValueError("give path (an ONNX file) or model (a catalog name), not both")
        # source: how a classifier's sidecar names this embedder, to load it again.
        if path is None:
            model = model or DEFAULT_EMBEDDER
            self.model_path = catalog.resolve(model)
            self.source = model
        else:
            self.model_path = Path(path)
            self.source = str(self.model_path.resolve())
        self.name = name or model or self.model_path.name
        tok = Path(tokenizer) if tokenizer is not None else _default_tokenizer(self.model_path)
        key = ("onnx-embedder", str(self.model_path.resolve()), str(tok.resolve()), max_tokens,
               ort)
        model_path, backend = self.model_path, self.name
        self._runtime: _EmbedderRuntime = pool.shared(
            key, lambda: _EmbedderRuntime(model_path, tok, max_tokens, backend, ort))
        self.batcher: MicroBatcher[str, NDArray[np.float32]] = _batcher(
            key, self._rows, backend, batch or EMBEDDER_BATCH)

    @classmethod
    def from_spec(cls, spec: OnnxEmbedderModelSpec, base_dir: Path | None = None) -> OnnxEmbedder:
        """From a graph's ``kind: onnx-embedder`` entry; a path is relative to the YAML file."""
        ort = ort_settings(spec)
        if spec.model is not None:
            return cls(model=spec.model, batch=spec.batch, ort=ort)
        assert spec.path is not None  # the spec's validator requires path or model
        return cls(resolve_path(spec.path, base_dir), batch=spec.batch, ort=ort)

    @property
    def dim(self) -> int:
        return int(self._runtime.dim)

    @property
    def model_sha256(self) -> str:
        return self._runtime.sha256

    def _embed_chunk(self, texts: list[str]) -> NDArray[np.float32]:
        with _map_errors(self.name):
            return self._runtime.embed(texts)

    @staticmethod
    def _chunks(texts: list[str]) -> list[list[int]]:
        # Similar lengths share a run, so little of each run is padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        return [order[k:k + _CHUNK] for k in range(0, len(order), _CHUNK)]

    def embed_sync(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Blocking: an (n, dim) float32 array, chunks spread over the model pool's threads.

        For training and scripts; never call it from a model-pool thread (it waits on the pool).
        """
        batch = _texts(texts)
        out = np.zeros((len(batch), self.dim), dtype=np.float32)
        chunks = self._chunks(batch)
        parts = pool.executor().map(self._embed_chunk, [[batch[i] for i in c] for c in chunks])
        for chunk, part in zip(chunks, parts, strict=True):
            out[chunk] = part
        return out

    def _rows(self, texts: list[str]) -> list[NDArray[np.float32]]:
        # A micro-batch: run in one pool thread, in length-sorted chunks (see _CHUNK).
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for chunk in self._chunks(texts):
            out[chunk] = self._embed_chunk([texts[i] for i in chunk])
        return list(out)

    async def embed(
        self, texts: Sequence[str], *, timeout_s: float | None = None
    ) -> list[list[float]]:
        batch = _texts(texts)
        if not batch:
            return []
        if len(batch) <= self.batcher.settings.max_size:
            # Few texts (a graph run's one message): joined with other callers' in one run.
            rows = await self.batcher.submit(batch, timeout_s=timeout_s)
            return [row.tolist() for row in rows]
        chunks = self._chunks(batch)
        # Every chunk starts waiting at once, so timeout_s bounds the whole call.
        tasks = [
            asyncio.ensure_future(pool.run_blocking(
                self._embed_chunk, [batch[i] for i in chunk], backend=self.name,
                timeout_s=timeout_s))
            for chunk in chunks
        ]
        try:
            parts = await asyncio.gather(*tasks)
        except Exception:
            # One chunk failed or timed out: drop the queued rest instead of computing them.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        out: list[list[float]] = [[] for _ in batch]
        for chunk, part in zip(chunks, parts, strict=True):
            for i, row in zip(chunk, part.tolist(), strict=True):
                out[i] = row
        return out


# --- embedding classifier -------------------------------------------------------------------------


class _CentroidRuntime:
    """The loaded head of one embedding-centroid file: embedding -> probabilities (also the fold
    models of :mod:`shoal.models.refit`, hence labels and width rather than a sidecar)."""

    def __init__(self, data: bytes, labels: Sequence[str], dim: int, path: Path,
                 backend: str, settings: OrtSettings = DEFAULT_ORT) -> None:
        self.session = _session(data, path=path, backend=backend, settings=settings)
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].type != "tensor(float)" or inputs[0].shape[-1] != dim:
            raise BackendError(f"{path}: expected one float input of width {dim}",
                               backend=backend)
        self.input = str(inputs[0].name)
        self.probs = _probabilities_output(self.session, path, backend)
        _check_labels(self.session, labels, path, backend)
        with _map_errors(backend):
            (probs,) = self.session.run([self.probs], {self.input: embedding_probe(1, dim)})
        _check_width(probs, labels, path, backend)

    def predict(self, vectors: NDArray[np.float32]) -> NDArray[np.float64]:
        (probs,) = self.session.run([self.probs], {self.input: vectors})
        return _normalised(probs)


def embedding_probe(n: int, dim: int) -> NDArray[np.float32]:
    """``n`` unit vectors of width ``dim``: the input of a load-time probe run."""
    return np.full((n, dim), dim ** -0.5, dtype=np.float32)


def _embedder_for(sidecar: Sidecar, path: Path, backend: str,
                  batch: BatchSettings | None, ort: OrtSettings) -> Embedder:
    # A classifier with batching turned off turns it off for the embedder it loads too.
    off = batch if batch is not None and batch.max_size <= 1 else None
    source = sidecar.embedder or ""
    if source in catalog.CATALOG:
        return OnnxEmbedder(model=source, batch=off, ort=ort)
    candidate = Path(source).expanduser()
    if not candidate.is_absolute():
        candidate = path.parent / candidate
    if candidate.suffix == ".onnx":
        return OnnxEmbedder(candidate, batch=off, ort=ort)
    raise BackendError(f"{path}: built with embedder {source!r}, which shoal cannot load by "
                       f"itself; pass embedder= to load_classifier()", backend=backend)


def checked_embedder(
    sidecar: Sidecar, path: Path, backend: str, embedder: Embedder | None = None,
    batch: BatchSettings | None = None, ort: OrtSettings = DEFAULT_ORT,
) -> Embedder:
    """``embedder``, or the one the sidecar names, after checking it is the one the model was
    built with: its width, and for an :class:`OnnxEmbedder` its file's sha256."""
    embedder = embedder or _embedder_for(sidecar, path, backend, batch, ort)
    if embedder.dim != sidecar.embedder_dim:
        raise BackendError(f"{path}: built with {sidecar.embedder_dim}-d embeddings, the "
                           f"embedder gives {embedder.dim}-d", backend=backend)
    expected = sidecar.embedder_sha256
    if isinstance(embedder, OnnxEmbedder) and expected not in (None, embedder.model_sha256):
        raise BackendError(f"{path}: built with a different embedder file than "
                           f"{embedder.model_path} (sha256 {embedder.model_sha256[:12]}…, the "
                           f"sidecar's embedder_sha256 {expected[:12]}…); rebuild the classifier",
                           backend=backend)
    return embedder


def embed_blocking(embedder: Embedder, texts: Sequence[str]) -> NDArray[np.float32]:
    """Blocking: ``embedder``'s (n, dim) float32 vectors for ``texts``, for training tools and
    ``signals_sync``. Never call it from a model-pool thread (it waits on the pool)."""
    batch = _texts(texts)
    if isinstance(embedder, OnnxEmbedder):
        return embedder.embed_sync(batch)
    if not batch:
        return np.zeros((0, embedder.dim), dtype=np.float32)

    async def embed() -> list[list[float]]:
        return await embedder.embed(batch)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return np.asarray(asyncio.run(embed()), dtype=np.float32)
    # Called from async code: its loop cannot be blocked on, so run a private one in a thread.
    with ThreadPoolExecutor(max_workers=1) as runner:
        return np.asarray(runner.submit(asyncio.run, embed()).result(), dtype=np.float32)


async def embed_then(
    embedder: Embedder, texts: list[str],
    step: Callable[..., Awaitable[list[T]]], *,
    backend: str, timeout_s: float | None,
) -> tuple[NDArray[np.float32], list[T]]:
    """Embed ``texts``, then give the vectors (one array per text) to ``step``, a batcher's
    ``submit``, the two together within ``timeout_s`` (a BackendTimeout names ``backend`` and
    the whole budget)."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout_s is None else loop.time() + timeout_s
    try:
        vectors = np.asarray(await embedder.embed(texts, timeout_s=timeout_s), dtype=np.float32)
        remaining = None if deadline is None else deadline - loop.time()
        if remaining is not None and remaining <= 0:
            raise BackendTimeout(backend=backend, timeout_s=timeout_s or 0.0)
        result = await step(list(vectors), timeout_s=remaining)
    except BackendTimeout:
        # Whichever part ran out, the caller asked this classifier for timeout_s in all.
        raise BackendTimeout(backend=backend, timeout_s=timeout_s or 0.0) from None
    return vectors, result


class EmbeddingClassifier:
    """Nearest-centroid over sentence embeddings (kind ``embedding-centroid``).

    Each label's centroid is the normalised mean embedding of its training examples; the
    probabilities are a softmax over cosine similarity / temperature, computed by the small ONNX
    head in the file. The embedder is the one the sidecar names unless ``embedder`` is given; its
    width, and for an :class:`OnnxEmbedder` its file's sha256, must match the sidecar's.
    """

    def __init__(
        self, path: str | Path, *, embedder: Embedder | None = None, name: str | None = None,
        batch: BatchSettings | None = None, ort: OrtSettings = DEFAULT_ORT,
    ) -> None:
        self.path = Path(path)
        self.name = name or self.path.name
        data, self.sidecar = _read_checked(self.path, KIND_CENTROID, self.name)
        self.embedder = checked_embedder(self.sidecar, self.path, self.name, embedder, batch, ort)
        key = ("onnx-classifier", str(self.path.resolve()), self.sidecar.model_sha256, ort)
        labels, dim, path, backend = self.sidecar.labels, self.embedder.dim, self.path, self.name
        self._runtime = pool.shared(
            key, lambda: _CentroidRuntime(data, labels, dim, path, backend, ort))
        self._labels = tuple(self.sidecar.labels)
        self.batcher: MicroBatcher[NDArray[np.float32], NDArray[np.float64]] = _batcher(
            key, lambda vectors: list(self.predict_vectors(np.stack(vectors))), backend, batch)

    @property
    def labels(self) -> tuple[str, ...]:
        return self._labels

    @property
    def temperature(self) -> float:
        assert self.sidecar.temperature is not None  # the sidecar's validator requires it
        return self.sidecar.temperature

    def predict_vectors(self, vectors: NDArray[Any]) -> NDArray[np.float64]:
        """Blocking: probabilities for already-embedded, L2-normalised vectors."""
        array = np.asarray(vectors, dtype=np.float32).reshape(-1, self.embedder.dim)
        with _map_errors(self.name):
            return self._runtime.predict(array)

    def signals_sync(self, texts: Sequence[str]) -> Signals:
        """Blocking :meth:`classify_signals`, for training tools (not from a model-pool thread)."""
        vectors = embed_blocking(self.embedder, texts)
        if not len(vectors):
            return Signals(np.zeros((0, len(self._labels))), embeddings=vectors)
        return Signals(self.predict_vectors(vectors), embeddings=vectors)

    async def classify_signals(
        self, texts: Sequence[str], *, timeout_s: float | None = None
    ) -> Signals:
        """The probabilities and the embeddings they were computed from."""
        batch = _texts(texts)
        if not batch:
            return Signals(np.zeros((0, len(self._labels))),
                           embeddings=np.zeros((0, self.embedder.dim), dtype=np.float32))
        vectors, rows = await embed_then(self.embedder, batch, self.batcher.submit,
                                         backend=self.name, timeout_s=timeout_s)
        return Signals(np.vstack(rows), embeddings=vectors)

    async def classify(
        self, texts: Sequence[str], *, timeout_s: float | None = None
    ) -> list[dict[str, float]]:
        signals = await self.classify_signals(texts, timeout_s=timeout_s)
        return _as_dicts(signals.probabilities, self._labels)


# --- loading --------------------------------------------------------------------------------------


ClassifierLoader = Callable[[Path, "Embedder | None", str | None, BatchSettings | None,
                             OrtSettings], "Classifier"]
"""Opens one classifier kind: ``(path, embedder, name, batch, ort) -> Classifier``."""

_LOADERS: dict[str, ClassifierLoader] = {}


def register_classifier_kind(kind: ClassifierKind, loader: ClassifierLoader) -> None:
    """Let :func:`load_classifier` open ``kind`` with ``loader``.

    For kinds whose module builds on this one and so cannot be imported here:
    :mod:`shoal.models.ensemble` registers ``text-embedding-ensemble`` when it is imported, and
    :mod:`shoal.models.kinds` (which ``import shoal.models`` loads) imports it, so the kind is
    registered before anyone can call :func:`load_classifier`.
    """
    _LOADERS[kind] = loader


def load_classifier(
    path: str | Path, *, embedder: Embedder | None = None, name: str | None = None,
    batch: BatchSettings | None = None, ort: OrtSettings = DEFAULT_ORT,
) -> Classifier:
    """Open ``MODEL.onnx`` with its sidecar ``MODEL.onnx.json``, whichever kind it is.

    ``embedder`` is used by the kinds that embed (embedding-centroid, text-embedding-ensemble;
    default: the one the sidecar names). Raises BackendError naming the file if the file or
    sidecar is missing, changed, corrupt or inconsistent.
    """
    model = Path(path)
    backend = name or model.name
    if not model.is_file():
        raise BackendError(f"model file not found: {model}", backend=backend)
    kind = read_sidecar(model, backend=backend).kind
    builders: dict[str, ClassifierLoader] = {
        KIND_TFIDF: lambda p, _embedder, n, b, o: OnnxTextClassifier(p, name=n, batch=b, ort=o),
        KIND_CENTROID: lambda p, e, n, b, o: EmbeddingClassifier(p, embedder=e, name=n, batch=b,
                                                                 ort=o),
        **_LOADERS,
    }
    if kind not in builders:
        raise BackendError(f"{model}: this shoal cannot open {kind!r} classifiers (import "
                           f"shoal.models to register every built-in kind)", backend=backend)
    return builders[kind](model, embedder, name, batch, ort)
