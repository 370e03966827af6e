"""Retraining a deployed classifier's recipe on other data: the folds of a learned router.

A router learns when its classifier is wrong from rows the classifier never saw, so its trainer
(:mod:`shoal.models.train_router`) retrains the classifier once per fold. :func:`refitter` reads
a classifier's sidecar and returns a :class:`Refitter` that trains the same kind with the same
hyperparameters (the sidecar's ``hyperparameters``; the kind's defaults for sidecars written
before they were recorded) and the same embedder, which is fixed, not retrained.

A fold model is exported to ONNX in memory and run by the same runtime class as a deployed file
of its kind, so its :class:`~shoal.models.base.Signals` are what the exported model of the same
training data gives. Supported kinds: ``tfidf-logreg``, ``text-embedding-ensemble``,
``embedding-centroid``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np
from numpy.typing import NDArray
from pydantic import ValidationError

from shoal.errors import BackendError
from shoal.models.base import Embedder, Signals
from shoal.models.ensemble import MEMBERS, _EnsembleRuntime
from shoal.models.onnx import (
    KIND_CENTROID,
    KIND_ENSEMBLE,
    KIND_TFIDF,
    Sidecar,
    _CentroidRuntime,
    _map_errors,
    _read_checked,
    _texts,
    _TfidfRuntime,
    checked_embedder,
    embed_blocking,
    read_sidecar,
)
from shoal.models.train import (
    DEFAULT_TEMPERATURE,
    TfidfHyperparameters,
    _centroids,
    _export_centroids,
    _export_tfidf,
    tfidf_pipeline,
)
from shoal.models.train_ensemble import EnsembleHyperparameters, export_ensemble, fit_ensemble

__all__ = ["FoldModel", "Refitter", "refitter"]

_BACKEND: Final = "refit"


class FoldModel(Protocol):
    """A classifier retrained on one fold's training rows."""

    def signals(self, texts: Sequence[str], embeddings: NDArray[np.float32] | None) -> Signals:
        """The signals of ``texts``; ``embeddings`` are their vectors from
        :meth:`Refitter.embed` (None, and ignored, for a text-only kind).

        Columns are in the deployed model's label order (:attr:`Refitter.labels`), always all of
        them: a label the fold's training rows lacked gets probability 0 in every member.
        """
        ...


class Refitter(Protocol):
    """Retrains one deployed classifier's recipe; see the module doc."""

    labels: tuple[str, ...]
    """The deployed model's labels, in its column order: every fold model's column order."""

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32] | None:
        """The model's own embedder's (n, dim) vectors for ``texts`` (computed quietly, no
        progress shown), or None for a kind that does not embed. Blocking; not from a
        model-pool thread."""
        ...

    def fit(self, texts: Sequence[str], labels: Sequence[str],
            embeddings: NDArray[np.float32] | None, *, seed: int) -> FoldModel:
        """Train the recipe on ``texts`` with gold ``labels`` (and their ``embeddings`` from
        :meth:`embed`, for a kind that embeds). Deterministic: the same rows and ``seed`` give
        the same model. ``labels`` must be among :attr:`labels` and name at least two of them;
        a missing label is allowed (see :meth:`FoldModel.signals`)."""
        ...


def _params(model: type[Any], sidecar: Sidecar, path: Path) -> Any:
    try:
        return model.model_validate(sidecar.hyperparameters or {})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}"
                             for e in exc.errors(include_input=False))
        raise BackendError(f"{path}: the sidecar's hyperparameters are not a {sidecar.kind} "
                           f"recipe: {problems}", backend=_BACKEND) from None


def _columns(fold_labels: Sequence[str], labels: tuple[str, ...]) -> NDArray[np.int64]:
    """Where each of a fold model's columns goes among the deployed model's."""
    return np.array([labels.index(label) for label in fold_labels], dtype=np.int64)


def _expand(probs: NDArray[np.float64], columns: NDArray[np.int64], k: int) -> NDArray[np.float64]:
    out = np.zeros((probs.shape[0], k), dtype=np.float64)
    out[:, columns] = probs
    return out


def _check_rows(texts: Sequence[str], labels: Sequence[str], known: tuple[str, ...]) -> list[str]:
    batch = _texts(texts)
    if len(labels) != len(batch):
        raise ValueError(f"{len(batch)} texts but {len(labels)} labels")
    unknown = sorted(set(labels) - set(known))
    if unknown:
        raise ValueError(f"labels {unknown} are not the model's {list(known)}")
    if len(set(labels)) < 2:
        raise ValueError("a fold needs training rows of at least 2 labels")
    return batch


def _vectors(embeddings: NDArray[np.float32] | None, n: int, dim: int) -> NDArray[np.float32]:
    if embeddings is None:
        raise ValueError("this kind embeds: pass the texts' embeddings from Refitter.embed()")
    array = np.asarray(embeddings, dtype=np.float32)
    if array.shape != (n, dim):
        raise ValueError(f"expected embeddings of shape ({n}, {dim}), got {array.shape}")
    return array


def _fold_path(model: Path) -> Path:
    # Only named in error messages: the fold model never touches the disk.
    return model.with_name(f"{model.name} (fold model)")


# --- tfidf-logreg ---------------------------------------------------------------------------------


class _TfidfFold:
    def __init__(self, runtime: _TfidfRuntime, columns: NDArray[np.int64], k: int) -> None:
        self._runtime, self._columns, self._k = runtime, columns, k

    def signals(self, texts: Sequence[str], embeddings: NDArray[np.float32] | None) -> Signals:
        batch = _texts(texts)
        if not batch:
            return Signals(np.zeros((0, self._k)))
        with _map_errors(_BACKEND):
            probs = self._runtime.predict(batch)
        return Signals(_expand(probs, self._columns, self._k))


class _TfidfRefitter:
    def __init__(self, path: Path, sidecar: Sidecar) -> None:
        self.path = path
        self.labels = tuple(sidecar.labels)
        self._params: TfidfHyperparameters = _params(TfidfHyperparameters, sidecar, path)

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32] | None:
        return None

    def fit(self, texts: Sequence[str], labels: Sequence[str],
            embeddings: NDArray[np.float32] | None, *, seed: int) -> FoldModel:
        batch = _check_rows(texts, labels, self.labels)
        pipeline = tfidf_pipeline(self._params, seed=seed).fit(batch, list(labels))
        fold_labels = [str(c) for c in pipeline.classes_]
        model = _export_tfidf(pipeline, fold_labels)
        runtime = _TfidfRuntime(model, fold_labels, _fold_path(self.path), _BACKEND)
        return _TfidfFold(runtime, _columns(fold_labels, self.labels), len(self.labels))


# --- text-embedding-ensemble ----------------------------------------------------------------------


class _EnsembleFold:
    def __init__(self, runtime: _EnsembleRuntime, columns: NDArray[np.int64], k: int,
                 dim: int) -> None:
        self._runtime, self._columns, self._k, self._dim = runtime, columns, k, dim

    def signals(self, texts: Sequence[str], embeddings: NDArray[np.float32] | None) -> Signals:
        batch = _texts(texts)
        vectors = _vectors(embeddings, len(batch), self._dim)
        if not batch:
            empty = np.zeros((0, self._k))
            return Signals(empty, {m: empty.copy() for m in MEMBERS}, vectors)
        with _map_errors(_BACKEND):
            probs, members = self._runtime.predict(batch, vectors)
        return Signals(_expand(probs, self._columns, self._k),
                       {m: _expand(p, self._columns, self._k) for m, p in members.items()},
                       vectors)


class _EmbeddingRefitter:
    """What the two kinds that embed share: the sidecar's embedder, checked as on load."""

    def __init__(self, path: Path, sidecar: Sidecar, embedder: Embedder) -> None:
        self.path = path
        self.labels = tuple(sidecar.labels)
        self._embedder = embedder
        self._dim = embedder.dim

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32] | None:
        return embed_blocking(self._embedder, texts)


class _EnsembleRefitter(_EmbeddingRefitter):
    def __init__(self, path: Path, sidecar: Sidecar, embedder: Embedder) -> None:
        super().__init__(path, sidecar, embedder)
        self._params: EnsembleHyperparameters = _params(EnsembleHyperparameters, sidecar, path)

    def fit(self, texts: Sequence[str], labels: Sequence[str],
            embeddings: NDArray[np.float32] | None, *, seed: int) -> FoldModel:
        batch = _check_rows(texts, labels, self.labels)
        vectors = _vectors(embeddings, len(batch), self._dim)
        fitted = fit_ensemble(batch, list(labels), vectors, self._params, seed=seed)
        model = export_ensemble(fitted, self._dim)
        runtime = _EnsembleRuntime(model, fitted.labels, MEMBERS, self._dim,
                                   _fold_path(self.path), _BACKEND)
        return _EnsembleFold(runtime, _columns(fitted.labels, self.labels), len(self.labels),
                             self._dim)


# --- embedding-centroid ---------------------------------------------------------------------------


class _CentroidFold:
    def __init__(self, runtime: _CentroidRuntime, columns: NDArray[np.int64], k: int,
                 dim: int) -> None:
        self._runtime, self._columns, self._k, self._dim = runtime, columns, k, dim

    def signals(self, texts: Sequence[str], embeddings: NDArray[np.float32] | None) -> Signals:
        batch = _texts(texts)
        vectors = _vectors(embeddings, len(batch), self._dim)
        if not batch:
            return Signals(np.zeros((0, self._k)), embeddings=vectors)
        with _map_errors(_BACKEND):
            probs = self._runtime.predict(vectors)
        return Signals(_expand(probs, self._columns, self._k), embeddings=vectors)


class _CentroidRefitter(_EmbeddingRefitter):
    def __init__(self, path: Path, sidecar: Sidecar, embedder: Embedder) -> None:
        super().__init__(path, sidecar, embedder)
        self._temperature = sidecar.temperature or DEFAULT_TEMPERATURE

    def fit(self, texts: Sequence[str], labels: Sequence[str],
            embeddings: NDArray[np.float32] | None, *, seed: int) -> FoldModel:
        # The centroid rule has nothing random: ``seed`` is accepted for the protocol's sake.
        batch = _check_rows(texts, labels, self.labels)
        vectors = _vectors(embeddings, len(batch), self._dim)
        fold_labels = sorted(set(labels))
        centroids = _centroids(vectors, list(labels), fold_labels)
        model = _export_centroids(centroids, self._temperature, fold_labels)
        runtime = _CentroidRuntime(model, fold_labels, self._dim, _fold_path(self.path),
                                   _BACKEND)
        return _CentroidFold(runtime, _columns(fold_labels, self.labels), len(self.labels),
                             self._dim)


# --- entry ----------------------------------------------------------------------------------------


_REFITTABLE: Final = (KIND_TFIDF, KIND_ENSEMBLE, KIND_CENTROID)


def refitter(model_path: Path) -> Refitter:
    """A :class:`Refitter` for the classifier at ``model_path`` (with its sidecar).

    The files are checked as on load (sidecar, sha256; the embedder's width and sha256 for the
    kinds that embed). BackendError naming the file for a kind it cannot refit or a sidecar
    whose recipe it cannot read.
    """
    path = Path(model_path)
    kind = read_sidecar(path, backend=_BACKEND).kind
    if kind not in _REFITTABLE:
        raise BackendError(f"{path}: cannot refit a {kind!r} classifier (refit supports "
                           f"{', '.join(_REFITTABLE)})", backend=_BACKEND)
    _, sidecar = _read_checked(path, kind, _BACKEND)
    if kind == KIND_TFIDF:
        return _TfidfRefitter(path, sidecar)
    embedder = checked_embedder(sidecar, path, _BACKEND)
    if kind == KIND_ENSEMBLE:
        return _EnsembleRefitter(path, sidecar, embedder)
    return _CentroidRefitter(path, sidecar, embedder)
