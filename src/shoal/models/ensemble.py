"""A text + embedding ensemble classifier (kind ``text-embedding-ensemble``), run by ONNX Runtime.

Two logistic regressions over the same labels, in one ONNX file written by
:func:`shoal.models.train_ensemble.train_ensemble_classifier`:

- ``text``: TF-IDF over word 1-2 grams and character 2-5 grams of the text;
- ``embedding``: the L2-normalised sentence embedding of the text (by default the embedded
  all-MiniLM-L6-v2 int8, named in the sidecar).

The file's inputs are ``text`` (string, ``[n, 1]``, as the tfidf-logreg kind takes it) and
``embedding`` (float32, ``[n, dim]``); its outputs are ``probabilities`` (the members' weighted
average, the weights written into the graph and recorded in the sidecar's ``hyperparameters``)
and one ``p_<member>`` per member (``p_text``, ``p_embedding``). The classifier embeds the texts
itself, so callers pass texts only; :meth:`EnsembleClassifier.classify_signals` returns all three
probability sets and the embeddings (what a learned router reads).

Why two members: they make different mistakes (one needs wording overlap with its training data,
the other tolerates paraphrase). Measured on the healthcare example's masked, family-disjoint
test split (635 messages; ``examples/healthcare/data/evaluate_triage.py``): accuracy 0.876, the
text member alone 0.861, the embedding member 0.827, the word TF-IDF model it replaced 0.817;
emergency recall 0.79 (was 0.68). The cost is MiniLM: about 11 ms for one message on two cores
(0.3 ms before), 9.5 ms per message in a batch, and a 1.7 MB file (the character vocabulary).

Loading checks what the other kinds' loading checks (see :mod:`shoal.models.onnx`: sidecar,
sha256, labels metadata, probability widths) plus both inputs, every member's output, and the
embedder: its width and, for an :class:`~shoal.models.onnx.OnnxEmbedder`, its file's sha256.
Importing this module registers the kind with :func:`shoal.models.onnx.load_classifier`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from shoal.errors import BackendError
from shoal.models import pool
from shoal.models.base import Embedder, Signals
from shoal.models.batching import BatchSettings, MicroBatcher
from shoal.models.onnx import (
    KIND_ENSEMBLE,
    _as_dicts,
    _batcher,
    _check_labels,
    _check_width,
    _map_errors,
    _normalised,
    _probabilities_output,
    _read_checked,
    _session,
    _texts,
    checked_embedder,
    embed_blocking,
    embed_then,
    embedding_probe,
    register_classifier_kind,
)
from shoal.models.specs import DEFAULT_ORT, OrtSettings

__all__ = [
    "EMBEDDING_INPUT",
    "EnsembleClassifier",
    "MEMBERS",
    "MEMBER_EMBEDDING",
    "MEMBER_TEXT",
    "TEXT_INPUT",
    "member_output",
]

TEXT_INPUT: Final = "text"
EMBEDDING_INPUT: Final = "embedding"
MEMBER_TEXT: Final = "text"
MEMBER_EMBEDDING: Final = "embedding"
MEMBERS: Final = (MEMBER_TEXT, MEMBER_EMBEDDING)
"""The members this shoal trains, in the order of their outputs."""


def member_output(member: str) -> str:
    """The ONNX output holding ``member``'s probabilities: ``p_<member>``."""
    return f"p_{member}"


class _EnsembleRuntime:
    """The loaded session of one ensemble graph: (texts, embeddings) -> combined and member
    probabilities. Shared by every classifier on one file; :mod:`shoal.models.refit` runs its
    in-memory fold models through it too, hence labels, members and width rather than a sidecar.
    """

    def __init__(self, data: bytes, labels: Sequence[str], members: Sequence[str], dim: int,
                 path: Path, backend: str, settings: OrtSettings = DEFAULT_ORT) -> None:
        self.session = _session(data, path=path, backend=backend, settings=settings)
        inputs = {i.name: i for i in self.session.get_inputs()}
        text, embedding = inputs.get(TEXT_INPUT), inputs.get(EMBEDDING_INPUT)
        if (len(inputs) != 2 or text is None or text.type != "tensor(string)"
                or embedding is None or embedding.type != "tensor(float)"
                or embedding.shape[-1] != dim):
            raise BackendError(f"{path}: expected two inputs, {TEXT_INPUT!r} (string) and "
                               f"{EMBEDDING_INPUT!r} (float, width {dim})", backend=backend)
        self.members = tuple(members)
        self.outputs = [_probabilities_output(self.session, path, backend)] + [
            _probabilities_output(self.session, path, backend, member_output(m))
            for m in self.members
        ]
        _check_labels(self.session, labels, path, backend)
        probe_texts = ["", "the"]
        with _map_errors(backend):
            results = self.session.run(self.outputs, self._feed(probe_texts,
                                                                 embedding_probe(2, dim)))
        for probs in results:
            _check_width(probs, labels, path, backend)

    @staticmethod
    def _feed(texts: list[str], vectors: NDArray[np.float32]) -> dict[str, NDArray[Any]]:
        return {TEXT_INPUT: np.array(texts, dtype=object).reshape(-1, 1),
                EMBEDDING_INPUT: vectors}

    def predict(
        self, texts: list[str], vectors: NDArray[np.float32]
    ) -> tuple[NDArray[np.float64], dict[str, NDArray[np.float64]]]:
        combined, *parts = self.session.run(self.outputs, self._feed(texts, vectors))
        return _normalised(combined), {
            member: _normalised(part) for member, part in zip(self.members, parts, strict=True)}


class EnsembleClassifier:
    """The text + embedding ensemble (kind ``text-embedding-ensemble``); see the module doc.

    The embedder is the one the sidecar names unless ``embedder`` is given; its width, and for an
    :class:`~shoal.models.onnx.OnnxEmbedder` its file's sha256, must match the sidecar's. The
    ONNX session is loaded once per file per process and shared; embedding runs in the model
    pool in small chunks, then one pool call runs both members on the whole batch.
    """

    def __init__(
        self, path: str | Path, *, embedder: Embedder | None = None, name: str | None = None,
        batch: BatchSettings | None = None, ort: OrtSettings = DEFAULT_ORT,
    ) -> None:
        self.path = Path(path)
        self.name = name or self.path.name
        data, self.sidecar = _read_checked(self.path, KIND_ENSEMBLE, self.name)
        self.embedder = checked_embedder(self.sidecar, self.path, self.name, embedder, batch, ort)
        assert self.sidecar.members is not None  # the sidecar's validator requires them
        self._members = tuple(self.sidecar.members)
        self._labels = tuple(self.sidecar.labels)
        key = ("onnx-classifier", str(self.path.resolve()), self.sidecar.model_sha256, ort)
        labels, members, dim = self._labels, self._members, self.embedder.dim
        path, backend = self.path, self.name
        self._runtime = pool.shared(
            key, lambda: _EnsembleRuntime(data, labels, members, dim, path, backend, ort))
        self.batcher: MicroBatcher[tuple[str, NDArray[np.float32]], Signals] = _batcher(
            key, self._rows, backend, batch)

    def _rows(self, rows: list[tuple[str, NDArray[np.float32]]]) -> list[Signals]:
        signals = self.predict([text for text, _ in rows], np.stack([v for _, v in rows]))
        return [signals.row(i) for i in range(len(rows))]

    async def _step(self, texts: list[str], vectors: list[NDArray[np.float32]], *,
                    timeout_s: float | None) -> list[Signals]:
        return await self.batcher.submit(list(zip(texts, vectors, strict=True)),
                                         timeout_s=timeout_s)

    @property
    def labels(self) -> tuple[str, ...]:
        return self._labels

    @property
    def members(self) -> tuple[str, ...]:
        return self._members

    def _empty(self) -> Signals:
        k = len(self._labels)
        return Signals(np.zeros((0, k)), {m: np.zeros((0, k)) for m in self._members},
                       np.zeros((0, self.embedder.dim), dtype=np.float32))

    def predict(self, texts: Sequence[str], vectors: NDArray[Any]) -> Signals:
        """Blocking: the signals of ``texts`` whose embeddings (the sidecar's embedder's
        L2-normalised vectors, one row per text) are already computed."""
        batch = _texts(texts)
        array = np.asarray(vectors, dtype=np.float32).reshape(-1, self.embedder.dim)
        if array.shape[0] != len(batch):
            raise ValueError(f"{len(batch)} texts but {array.shape[0]} embeddings")
        if not batch:
            return self._empty()
        with _map_errors(self.name):
            probs, members = self._runtime.predict(batch, array)
        return Signals(probs, members, array)

    def signals_sync(self, texts: Sequence[str]) -> Signals:
        """Blocking :meth:`classify_signals`, for training tools (not from a model-pool thread)."""
        batch = _texts(texts)
        return self.predict(batch, embed_blocking(self.embedder, batch))

    async def classify_signals(
        self, texts: Sequence[str], *, timeout_s: float | None = None
    ) -> Signals:
        """The combined probabilities, each member's (``text``, ``embedding``) and the
        embeddings; ``timeout_s`` bounds embedding and classification together."""
        batch = _texts(texts)
        if not batch:
            return self._empty()
        _, rows = await embed_then(self.embedder, batch, functools.partial(self._step, batch),
                                   backend=self.name, timeout_s=timeout_s)
        return Signals.stack(rows)

    async def classify(
        self, texts: Sequence[str], *, timeout_s: float | None = None
    ) -> list[dict[str, float]]:
        signals = await self.classify_signals(texts, timeout_s=timeout_s)
        return _as_dicts(signals.probabilities, self._labels)


register_classifier_kind(
    KIND_ENSEMBLE, lambda path, embedder, name, batch, ort: EnsembleClassifier(
        path, embedder=embedder, name=name, batch=batch, ort=ort))
