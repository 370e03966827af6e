"""Train the text + embedding ensemble (kind ``text-embedding-ensemble``); write ``MODEL.onnx`` and
``MODEL.onnx.json``, loaded by :class:`shoal.models.ensemble.EnsembleClassifier`.

Two logistic regressions over the same labels, averaged:

- ``text``: TF-IDF over word 1-2 grams and character 2-5 grams (``analyzer="char"``: skl2onnx
  converts it, ``char_wb`` it does not), sublinear term frequencies, C=10, balanced weights;
- ``embedding``: the embedder's L2-normalised vectors (default: the embedded MiniLM int8), C=10,
  balanced weights.

The recipe is the one ``docs/research/routing`` found best on the healthcare triage data
(``common.py``: ``wordchar_pipe(analyzer="char")`` and ``emb_lr``): test accuracy 0.88 against
0.82-0.85 for either member alone. The members' weights are 0.5 each, not tuned.

Each member is converted with skl2onnx (the text member with :func:`shoal.models.train.
fix_sublinear_tf`), the two graphs are merged into one (``onnx.compose``; each member's names
prefixed, the inputs kept), and a weighted ``Sum`` adds the combined ``probabilities`` next to
``p_text`` and ``p_embedding``. As for the other kinds, the export is checked against its
scikit-learn reference on the evaluation texts (99% label agreement or nothing is written), the
sidecar's metrics are the shipped file's, and the sidecar records the recipe
(``hyperparameters``) for :mod:`shoal.models.refit`. The same fit exports to the same bytes.

Where the export and scikit-learn still differ (text member; the embedding member agrees to
1e-6): scikit-learn's character analyser collapses runs of whitespace (``" \n"``) and ONNX
Runtime's does not, and a character n-gram ending in ``#`` (from ``MRN#``) also matches at the
end of a text in ONNX Runtime. On the healthcare test split that is 100% label agreement and a
largest difference of 0.013 in the combined probabilities.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, field_validator

from shoal.errors import BackendError
from shoal.models.base import Embedder
from shoal.models.ensemble import (
    EMBEDDING_INPUT,
    MEMBER_EMBEDDING,
    MEMBER_TEXT,
    MEMBERS,
    TEXT_INPUT,
    member_output,
)
from shoal.models.onnx import (
    KIND_ENSEMBLE,
    OnnxEmbedder,
    embed_blocking,
    file_sha256,
    load_classifier,
    sidecar_path,
)
from shoal.models.train import (
    _EXPORT,
    TOKEN_PATTERN,
    DataIssue,
    TrainingDataError,
    TrainReport,
    _add_labels,
    _agreement,
    _metrics,
    _write,
    convert_text_pipeline,
    embedder_source,
    make_reproducible,
    read_examples,
    split_examples,
)

__all__ = [
    "EmbeddingMemberHyperparameters",
    "EnsembleHyperparameters",
    "FittedEnsemble",
    "TextMemberHyperparameters",
    "export_ensemble",
    "fit_ensemble",
    "run_ensemble",
    "train_ensemble_classifier",
]

Progress = Callable[[str], None]
"""Told the name of each stage as it starts (for a script's progress lines)."""


# --- recipe ---------------------------------------------------------------------------------------


class TextMemberHyperparameters(BaseModel):
    """The text member: word + character TF-IDF, then logistic regression."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    word_ngram_range: tuple[int, int] = (1, 2)
    char_ngram_range: tuple[int, int] = (2, 5)
    char_min_df: int = Field(default=2, ge=1)
    """Character n-grams seen in fewer training texts are dropped (they are mostly names and
    typos, and the vocabulary, thus the file, is half the size)."""
    token_pattern: str = TOKEN_PATTERN
    sublinear_tf: bool = True
    C: float = Field(default=10.0, gt=0)
    max_iter: int = Field(default=3000, ge=1)
    class_weight: Literal["balanced"] | None = "balanced"


class EmbeddingMemberHyperparameters(BaseModel):
    """The embedding member: logistic regression on the sentence embeddings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    C: float = Field(default=10.0, gt=0)
    max_iter: int = Field(default=3000, ge=1)
    class_weight: Literal["balanced"] | None = "balanced"


class EnsembleHyperparameters(BaseModel):
    """The ensemble's recipe, recorded in its sidecar's ``hyperparameters``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: TextMemberHyperparameters = Field(default_factory=TextMemberHyperparameters)
    embedding: EmbeddingMemberHyperparameters = Field(
        default_factory=EmbeddingMemberHyperparameters)
    weights: dict[str, float] = Field(
        default_factory=lambda: {MEMBER_TEXT: 0.5, MEMBER_EMBEDDING: 0.5})
    """Member -> weight of its probabilities in the combined ones; positive, summing to 1."""

    @field_validator("weights")
    @classmethod
    def _weights(cls, weights: dict[str, float]) -> dict[str, float]:
        if sorted(weights) != sorted(MEMBERS):
            raise ValueError(f"weights must name exactly the members {list(MEMBERS)}")
        if any(w <= 0 for w in weights.values()) or abs(sum(weights.values()) - 1.0) > 1e-9:
            raise ValueError("weights must be positive and sum to 1")
        return weights


def _text_pipeline(p: TextMemberHyperparameters, seed: int) -> Any:
    from sklearn.feature_extraction.text import (  # type: ignore[import-untyped]
        TfidfVectorizer,
    )
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
    from sklearn.pipeline import FeatureUnion, Pipeline  # type: ignore[import-untyped]

    return Pipeline([
        ("features", FeatureUnion([
            ("word", TfidfVectorizer(lowercase=True, token_pattern=p.token_pattern,
                                     ngram_range=p.word_ngram_range,
                                     sublinear_tf=p.sublinear_tf)),
            ("char", TfidfVectorizer(lowercase=True, analyzer="char",
                                     ngram_range=p.char_ngram_range,
                                     sublinear_tf=p.sublinear_tf, min_df=p.char_min_df)),
        ])),
        # lbfgs is deterministic; the seed is passed anyway so a change of solver stays seeded.
        ("clf", LogisticRegression(C=p.C, max_iter=p.max_iter, class_weight=p.class_weight,
                                   random_state=seed)),
    ])


def _embedding_model(p: EmbeddingMemberHyperparameters, seed: int) -> Any:
    from sklearn.linear_model import (  # type: ignore[import-untyped, unused-ignore]
        LogisticRegression,
    )

    return LogisticRegression(C=p.C, max_iter=p.max_iter, class_weight=p.class_weight,
                              random_state=seed)


@dataclass(frozen=True)
class FittedEnsemble:
    """Both fitted members (scikit-learn) and their common label order."""

    text: Any
    embedding: Any
    labels: list[str]
    hyperparameters: EnsembleHyperparameters

    def reference(
        self, texts: Sequence[str], vectors: NDArray[Any]
    ) -> tuple[NDArray[np.float64], dict[str, NDArray[np.float64]]]:
        """scikit-learn's combined and member probabilities: what the export is checked
        against."""
        members = {MEMBER_TEXT: self.text.predict_proba(list(texts)),
                   MEMBER_EMBEDDING: self.embedding.predict_proba(
                       np.asarray(vectors, dtype=np.float64))}
        combined = sum(self.hyperparameters.weights[m] * p for m, p in members.items())
        return np.asarray(combined, dtype=np.float64), members


def fit_ensemble(
    texts: Sequence[str], labels: Sequence[str], vectors: NDArray[Any],
    hyperparameters: EnsembleHyperparameters | None = None, *, seed: int = 0,
) -> FittedEnsemble:
    """Fit both members on ``texts`` with gold ``labels`` and the texts' embeddings
    ``vectors`` (one row each). Deterministic: the same inputs and seed give the same model."""
    params = hyperparameters or EnsembleHyperparameters()
    array = np.asarray(vectors, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != len(texts) or len(labels) != len(texts):
        raise ValueError(f"{len(texts)} texts, {len(labels)} labels and embeddings of shape "
                         f"{array.shape} do not line up")
    if len(set(labels)) < 2:
        raise ValueError("an ensemble needs examples of at least 2 labels")
    text = _text_pipeline(params.text, seed).fit(list(texts), list(labels))
    embedding = _embedding_model(params.embedding, seed).fit(array, list(labels))
    order = [str(c) for c in text.classes_]
    # Both sort the same label set; checked because the columns are added blindly in the graph.
    assert order == [str(c) for c in embedding.classes_]
    return FittedEnsemble(text, embedding, order, params)


# --- export ---------------------------------------------------------------------------------------


def export_ensemble(fitted: FittedEnsemble, dim: int) -> bytes:
    """One ONNX model: inputs ``text`` (string ``[n, 1]``) and ``embedding`` (float
    ``[n, dim]``); outputs ``probabilities`` and ``p_<member>``; labels in its metadata."""
    import onnx
    from onnx import TensorProto, compose, helper, numpy_helper
    from skl2onnx import convert_sklearn  # type: ignore[import-untyped]
    from skl2onnx.common.data_types import FloatTensorType  # type: ignore[import-untyped]

    features = fitted.text.named_steps["features"]
    text = convert_text_pipeline(fitted.text, [v for _, v in features.transformer_list],
                                 input_name=TEXT_INPUT)
    try:
        embedding = convert_sklearn(
            fitted.embedding, initial_types=[(EMBEDDING_INPUT, FloatTensorType([None, dim]))],
            options={id(fitted.embedding): {"zipmap": False}})
    except (RuntimeError, NotImplementedError, ValueError, TypeError) as exc:
        raise BackendError(f"skl2onnx cannot convert the embedding member "
                           f"({type(exc).__name__})", backend=_EXPORT) from exc
    try:
        # Each member's names get its prefix so the two graphs cannot collide; the inputs keep
        # theirs, which are the merged model's inputs.
        merged = compose.merge_models(
            compose.add_prefix(text, f"{MEMBER_TEXT}_", rename_inputs=False),
            compose.add_prefix(embedding, f"{MEMBER_EMBEDDING}_", rename_inputs=False),
            io_map=[])
    except (ValueError, onnx.checker.ValidationError) as exc:
        raise BackendError(f"the two members' ONNX graphs cannot be merged ({exc})",
                           backend=_EXPORT) from exc
    graph = merged.graph
    k = len(fitted.labels)
    weighted = []
    for member in MEMBERS:
        probabilities = f"{member}_probabilities"
        graph.initializer.append(numpy_helper.from_array(
            np.array(fitted.hyperparameters.weights[member], dtype=np.float32),
            f"weight_{member}"))
        graph.node.extend([
            helper.make_node("Mul", [probabilities, f"weight_{member}"], [f"weighted_{member}"],
                             name=f"weighted_{member}"),
            helper.make_node("Identity", [probabilities], [member_output(member)],
                             name=member_output(member)),
        ])
        weighted.append(f"weighted_{member}")
    graph.node.append(helper.make_node("Sum", weighted, ["probabilities"], name="combined"))
    del graph.output[:]
    graph.output.extend(
        helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, k])
        for name in ["probabilities", *map(member_output, MEMBERS)])
    make_reproducible(merged, "shoal_text_embedding_ensemble")
    merged.producer_name = "shoal"
    del merged.metadata_props[:]
    _add_labels(merged, fitted.labels)
    try:
        onnx.checker.check_model(merged)
    except onnx.checker.ValidationError as exc:
        raise BackendError(f"the merged ensemble is not a valid ONNX model ({exc})",
                           backend=_EXPORT) from exc
    data: bytes = merged.SerializeToString()
    return data


def run_ensemble(model: bytes, texts: Sequence[str],
                 vectors: NDArray[np.float32]) -> dict[str, NDArray[np.float64]]:
    """Every output of an exported ensemble for ``texts`` and their ``vectors`` (a plain ORT
    session: for checks at training time)."""
    import onnxruntime as ort  # type: ignore[import-untyped, unused-ignore]

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    names = ["probabilities", *map(member_output, MEMBERS)]
    try:
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        outputs = session.run(names, {
            TEXT_INPUT: np.array(list(texts), dtype=object).reshape(-1, 1),
            EMBEDDING_INPUT: np.asarray(vectors, dtype=np.float32)})
    except Exception as exc:  # ORT's exception classes derive from Exception only
        raise BackendError(f"ONNX Runtime cannot run the exported model ({type(exc).__name__})",
                           backend=_EXPORT) from exc
    return {name: np.asarray(out, dtype=np.float64)
            for name, out in zip(names, outputs, strict=True)}


# --- training -------------------------------------------------------------------------------------


def train_ensemble_classifier(
    data: Path,
    out: Path,
    embedder: Embedder | None = None,
    *,
    test_size: float = 0.2,
    seed: int = 0,
    eval_data: Path | None = None,
    hyperparameters: EnsembleHyperparameters | None = None,
    progress: Progress | None = None,
) -> TrainReport:
    """Fit the ensemble on ``data`` (JSONL) with ``embedder``'s vectors (default: the embedded
    MiniLM); write ``out`` and its sidecar.

    Without ``eval_data``, a stratified ``test_size`` share of ``data`` is held out for the
    metrics and the export check, and the model ships trained on the rest (as the other kinds
    do). With ``eval_data`` (JSONL, e.g. a dev split), the model is trained on all of ``data``
    and measured on ``eval_data``; ``test_size`` is then unused.

    Raises TrainingDataError (every bad line, as FILE:LINE; or evaluation labels the training
    data lacks), or BackendError if the export disagrees with scikit-learn on more than 1% of
    the evaluation labels (then nothing is written).
    """
    start = time.perf_counter()
    data, out = Path(data), Path(out)
    params = hyperparameters or EnsembleHyperparameters()

    def stage(name: str) -> None:
        if progress is not None:
            progress(name)

    stage(f"reading {data.name}")
    examples = read_examples(data)
    if eval_data is None:
        train, test = split_examples(examples, test_size=test_size, seed=seed, file=str(data))
        evaluated_on = None
    else:
        eval_data = Path(eval_data)
        train, test = list(examples), read_examples(eval_data)
        evaluated_on = eval_data.name
        unknown = sorted({e.label for e in test} - {e.label for e in train})
        if unknown:
            raise TrainingDataError([DataIssue(str(eval_data), None,
                                               f"labels {unknown} are not in {data.name}")])
    embedder = embedder or OnnxEmbedder()
    texts = [e.text for e in train + test]
    stage(f"embedding {len(texts)} texts with {embedder.name}")
    vectors = embed_blocking(embedder, texts)
    train_vectors, test_vectors = vectors[:len(train)], vectors[len(train):]
    stage(f"fitting the text and embedding members on {len(train)} examples")
    fitted = fit_ensemble([e.text for e in train], [e.label for e in train], train_vectors,
                          params, seed=seed)
    stage("exporting both members into one ONNX model")
    model = export_ensemble(fitted, int(vectors.shape[1]))

    stage(f"checking the export on {len(test)} held-out examples")
    test_texts = [e.text for e in test]
    outputs = run_ensemble(model, test_texts, test_vectors)
    reference, _ = fitted.reference(test_texts, test_vectors)
    agreement, diff = _agreement(outputs["probabilities"], reference, str(out))
    labels = fitted.labels
    truth = [e.label for e in test]
    predicted = [labels[i] for i in outputs["probabilities"].argmax(axis=1)]
    member_accuracy = {
        m: float(np.mean([labels[i] == t for i, t in
                          zip(outputs[member_output(m)].argmax(axis=1), truth, strict=True)]))
        for m in MEMBERS
    }
    metrics = _metrics(truth, predicted, labels, len(train), evaluated_on=evaluated_on,
                       member_accuracy=member_accuracy)

    data_sha = file_sha256(data)
    source, embedder_sha = embedder_source(embedder)
    sidecar = _write(out, model, kind=KIND_ENSEMBLE, labels=labels, metrics=metrics,
                     data_sha256=data_sha, n_examples=len(examples), embedder=source,
                     embedder_sha256=embedder_sha, embedder_dim=int(vectors.shape[1]),
                     members=list(MEMBERS), hyperparameters=params.model_dump(mode="json"))
    load_classifier(out, embedder=embedder)  # the loader's own checks, on the files as written
    return TrainReport(
        kind=KIND_ENSEMBLE, model_path=out, sidecar_path=sidecar_path(out), labels=labels,
        n_examples=len(examples), metrics=metrics, onnx_agreement=agreement,
        max_probability_diff=diff, model_sha256=sidecar.model_sha256, data_sha256=data_sha,
        seconds=time.perf_counter() - start)
