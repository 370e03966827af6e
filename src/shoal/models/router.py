"""A learned deferral router: P(the node's local answer is wrong), from what its classifier knows.

A confidence threshold asks one question of the classifier (how sure is its top label?). The
router asks several, and learns from data how to weigh them: top probability, margin and entropy
of the combined answer and of each ensemble member, whether the members disagree, the
probability of every label, how many of the nearest labelled training messages (in the
classifier's own embedding space) carry the predicted label and how close they are, the
message's length and its share of words the training data never had. A logistic regression over
these features, trained out of fold (:mod:`shoal.models.train_router`), gives a score; isotonic
regression maps the score to a calibrated probability. Escalate when P(wrong) reaches a
threshold (``router: {model: ROUTER.onnx, above: 0.3}`` in a node's escalation rule).

Router files
------------
``ROUTER.onnx`` with its sidecar ``ROUTER.onnx.json`` (:class:`RouterSidecar`). The ONNX graph
does the nearest-neighbour lookup (the labelled bank is in the file), the logistic regression
and the isotonic map; its inputs are the plain features (:func:`plain_features`), the predicted
label's index and, when the classifier has an embedder, the embedding. Loading checks, before
anything runs: the sidecar is present, its format and kind, the file's sha256, that ONNX Runtime
loads it, and that the features and labels written into the model match the sidecar's. A node
then checks that the router was trained for its model (:meth:`DeferralRouter.check_for`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shoal.errors import BackendError
from shoal.models import pool
from shoal.models.base import Signals
from shoal.models.onnx import _map_errors, _session, sidecar_path

__all__ = [
    "FORMAT_VERSION",
    "KIND_ROUTER",
    "KNN_FEATURES",
    "DeferralRouter",
    "OofRows",
    "RouterSidecar",
    "knn_features",
    "load_router",
    "plain_feature_names",
    "plain_features",
    "read_router_sidecar",
    "words_of",
]

FORMAT_VERSION = 1
KIND_ROUTER: Final = "deferral-router"
FEATURES_METADATA_KEY = "shoal.router.features"
LABELS_METADATA_KEY = "shoal.labels"
VOCABULARY_METADATA_KEY = "shoal.router.vocabulary"

KNN_FEATURES: tuple[str, ...] = (
    "knn_agree", "knn_agree_weighted", "knn_mean_distance", "knn_top1_similarity",
    "knn_top1_agree")
"""Computed inside the ONNX graph from the embedding and the labelled bank (see
:func:`knn_features` for the same arithmetic in numpy)."""

_WORD = re.compile(r"[a-z0-9]{2,}")
# Same alphabet as the classifiers' ASCII token pattern: a word the TF-IDF model cannot have seen.
_EPS = 1e-6


# --- features ------------------------------------------------------------------------------------


def _entropy(p: NDArray[np.float64]) -> NDArray[np.float64]:
    q = np.clip(p, 1e-12, 1.0)
    out: NDArray[np.float64] = -(q * np.log(q)).sum(axis=1) / math.log(p.shape[1])
    return out


def _sources(signals: Signals) -> list[tuple[str, NDArray[np.float64]]]:
    return [("combined", signals.probabilities),
            *((f"member_{k}", signals.members[k]) for k in sorted(signals.members))]


def plain_feature_names(labels: Sequence[str], members: Sequence[str]) -> list[str]:
    """The names of :func:`plain_features`' columns, in order."""
    names: list[str] = []
    for source in ["combined", *(f"member_{m}" for m in sorted(members))]:
        names += [f"{source}_top", f"{source}_margin", f"{source}_entropy"]
    if len(members) >= 2:
        names += ["members_disagree", "members_l1"]
    names += [f"p_{label}" for label in labels]
    names += ["log_tokens", "unseen_word_share"]
    return names


def plain_features(signals: Signals, texts: Sequence[str], labels: Sequence[str],
                   vocabulary: frozenset[str]) -> NDArray[np.float32]:
    """Every feature but the nearest-neighbour ones, one row per text
    (:func:`plain_feature_names`). ``vocabulary``: the words of the router's training texts."""
    cols: list[NDArray[Any]] = []
    for _, p in _sources(signals):
        top2 = np.sort(p, axis=1)[:, -2:]
        cols += [top2[:, 1], top2[:, 1] - top2[:, 0], _entropy(p)]
    if len(signals.members) >= 2:
        first, second = (signals.members[k] for k in sorted(signals.members)[:2])
        cols += [(first.argmax(1) != second.argmax(1)).astype(np.float64),
                 np.abs(first - second).sum(1)]
    cols += [signals.probabilities[:, i] for i in range(len(labels))]
    words = [_WORD.findall(text.lower()) for text in texts]
    cols.append(np.log1p([len(w) for w in words]))
    cols.append(np.array([sum(x not in vocabulary for x in w) / len(w) if w else 0.0
                          for w in words]))
    return np.column_stack(cols).astype(np.float32)


def knn_features(embeddings: NDArray[np.float32], predicted: NDArray[np.int64],
                 bank: NDArray[np.float32], bank_labels: NDArray[np.int64], k: int
                 ) -> NDArray[np.float32]:
    """The nearest-neighbour features (:data:`KNN_FEATURES`) in numpy: cosine similarity to the
    ``k`` most similar bank rows (vectors are L2-normalised), and how many of them carry the
    predicted label. The ONNX graph computes the same; the trainer uses this one out of fold."""
    sims = embeddings.astype(np.float32) @ bank.T
    k = min(k, bank.shape[0])
    # Stable order on ties, as ORT's TopK (largest first, lower index first).
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(sims, order, axis=1)
    agree = (bank_labels[order] == predicted[:, None]).astype(np.float32)
    weighted = (top * agree).sum(1) / np.maximum(top.sum(1), _EPS)
    return np.column_stack([agree.mean(1), weighted, 1.0 - top.mean(1), top[:, 0],
                            agree[:, 0]]).astype(np.float32)


def words_of(texts: Sequence[str]) -> frozenset[str]:
    """The vocabulary :func:`plain_features` measures unseen words against."""
    return frozenset(w for text in texts for w in _WORD.findall(text.lower()))


# --- sidecar -------------------------------------------------------------------------------------


class FoldMetrics(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    fold: int
    n_train: int
    n_held_out: int
    local_accuracy: float
    """Of the node's model retrained without this fold, on this fold."""
    router_auroc: float | None
    """Of the out-of-fold router scores on this fold (None when the fold has one class)."""


class OofRows(BaseModel):
    """Every training row's out-of-fold answer: evidence for choosing a critical label's floor
    from more examples than a calibration split holds (``shoal calibrate`` pools them)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gold: list[int]
    """Index of the row's gold label in ``labels``."""
    predicted: list[int]
    """Index of the fold model's top label."""
    probabilities: list[list[float]]
    """The fold model's probabilities (4 decimals)."""


class RouterSidecar(BaseModel):
    """What ``ROUTER.onnx.json`` holds. Written by :mod:`shoal.models.train_router`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: int
    kind: str
    labels: list[str] = Field(min_length=2)
    """The node model's labels, in its probability column order."""
    features: list[str]
    """Every feature the logistic regression reads, in order (plain, then nearest-neighbour)."""
    members: list[str]
    """Ensemble member names the plain features expect (empty: a single model)."""
    knn: int = Field(ge=0)
    """Neighbours looked up (0: the model has no embedder, no neighbour features)."""
    embedding_dim: int | None = None
    model_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    node_model_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    """The node model file the router was trained for; a node with another model refuses it."""
    data_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    """Of the training JSONL file."""
    texts_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    """Of the node's input texts (after the masker) with their labels, in id order."""
    n_examples: int
    seed: int
    folds: list[FoldMetrics]
    oof: dict[str, float | None]
    """Out-of-fold metrics over all rows: local accuracy, AUROC and AUPRC of the router score,
    mean P(wrong) and the actual error rate."""
    oof_rows: OofRows | None = None
    created: str
    versions: dict[str, str]


def read_router_sidecar(path: Path) -> RouterSidecar:
    """Read and validate ``path``'s sidecar; BackendError naming the file on any problem."""
    side = sidecar_path(path)
    if not side.is_file():
        raise BackendError(f"{path}: sidecar {side} not found; a router is loaded with the JSON "
                           "that `shoal train-router` writes next to it", backend=path.name)
    try:
        data = json.loads(side.read_bytes())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BackendError(f"{side}: not a readable JSON sidecar ({type(exc).__name__})",
                           backend=path.name) from exc
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        raise BackendError(f"{side}: format_version must be {FORMAT_VERSION}",
                           backend=path.name)
    if data.get("kind") != KIND_ROUTER:
        raise BackendError(f"{side}: a {data.get('kind')!r} sidecar, not a {KIND_ROUTER!r}",
                           backend=path.name)
    try:
        return RouterSidecar.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}"
                             for e in exc.errors(include_input=False))
        raise BackendError(f"{side}: invalid sidecar: {problems}", backend=path.name) from None


# --- runtime -------------------------------------------------------------------------------------


class _RouterRuntime:
    def __init__(self, data: bytes, sidecar: RouterSidecar, path: Path) -> None:
        self.session = _session(data, path=path, backend=path.name)
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            features = json.loads(meta.get(FEATURES_METADATA_KEY, "null"))
            labels = json.loads(meta.get(LABELS_METADATA_KEY, "null"))
            vocabulary = json.loads(meta.get(VOCABULARY_METADATA_KEY, "null"))
        except json.JSONDecodeError:
            features = labels = vocabulary = None
        self.features, self.labels = features, labels
        if not isinstance(vocabulary, list):
            raise BackendError(f"{path}: the model carries no vocabulary", backend=path.name)
        self.vocabulary = frozenset(str(w) for w in vocabulary)
        self.inputs = {i.name for i in self.session.get_inputs()}
        expected = {"features", "predicted"} | ({"embedding"} if sidecar.knn else set())
        if self.inputs != expected:
            raise BackendError(f"{path}: inputs {sorted(self.inputs)}, expected "
                               f"{sorted(expected)}", backend=path.name)

    def run(self, feed: dict[str, NDArray[Any]]) -> NDArray[np.float64]:
        (p,) = self.session.run(["p_wrong"], feed)
        return np.clip(np.asarray(p, dtype=np.float64).reshape(-1), 0.0, 1.0)


class DeferralRouter:
    """A router file, loaded and checked (see the module doc). One ONNX session per file per
    process, shared."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = self.path.name
        if not self.path.is_file():
            raise BackendError(f"router file not found: {self.path}", backend=self.name)
        self.sidecar = read_router_sidecar(self.path)
        with pool.map_errors(self.name):
            data = self.path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != self.sidecar.model_sha256:
            raise BackendError(
                f"{self.path}: sha256 {digest[:12]}… does not match model_sha256 "
                f"{self.sidecar.model_sha256[:12]}… in {sidecar_path(self.path).name}; the "
                "file changed since training (restore it or run `shoal train-router` again)",
                backend=self.name)
        sidecar, path = self.sidecar, self.path
        self._runtime = pool.shared(("deferral-router", str(path.resolve()), digest),
                                    lambda: _RouterRuntime(data, sidecar, path))
        if (self._runtime.features != self.sidecar.features
                or self._runtime.labels != self.sidecar.labels):
            # Checked per load, not per session: the session is shared by file content.
            raise BackendError(f"{path}: the model's features or labels differ from its "
                               "sidecar's; retrain the router", backend=self.name)
        self.labels = tuple(self.sidecar.labels)

    def check_for(self, labels: Sequence[str], model_sha256: str | None) -> str | None:
        """Why this router cannot serve a node whose classifier has ``labels`` and model file
        ``model_sha256`` (None when it can)."""
        if list(labels) != list(self.labels):
            return (f"router {self.path} was trained for labels {list(self.labels)}, the node's "
                    f"model has {list(labels)}")
        if model_sha256 is not None and model_sha256 != self.sidecar.node_model_sha256:
            return (f"router {self.path} was trained for another model file (sha256 "
                    f"{self.sidecar.node_model_sha256[:12]}…, the node's is "
                    f"{model_sha256[:12]}…); run `shoal train-router` again")
        return None

    def feed(self, signals: Signals, texts: Sequence[str]) -> dict[str, NDArray[Any]]:
        """The ONNX inputs for ``texts`` and their classifier ``signals``."""
        if sorted(signals.members) != self.sidecar.members:
            raise BackendError(f"{self.path}: trained on members {self.sidecar.members}, the "
                               f"classifier gives {sorted(signals.members)}", backend=self.name)
        feed: dict[str, NDArray[Any]] = {
            "features": plain_features(signals, texts, self.labels, self._runtime.vocabulary),
            "predicted": signals.probabilities.argmax(axis=1).astype(np.int64),
        }
        if self.sidecar.knn:
            if signals.embeddings is None:
                raise BackendError(f"{self.path}: needs the classifier's embeddings",
                                   backend=self.name)
            feed["embedding"] = np.asarray(signals.embeddings, dtype=np.float32)
        return feed

    def p_wrong_sync(self, signals: Signals, texts: Sequence[str]) -> NDArray[np.float64]:
        """Blocking: P(local answer wrong) per text."""
        with _map_errors(self.name):
            return self._runtime.run(self.feed(signals, texts))

    async def p_wrong(self, signals: Signals, texts: Sequence[str], *,
                      timeout_s: float | None = None) -> NDArray[np.float64]:
        """P(local answer wrong) per text, in the model pool."""
        return await pool.run_blocking(self.p_wrong_sync, signals, list(texts),
                                       backend=self.name, timeout_s=timeout_s)


def load_router(path: str | Path) -> DeferralRouter:
    """Open ``ROUTER.onnx`` with its sidecar; BackendError naming the file on any problem."""
    return DeferralRouter(path)
