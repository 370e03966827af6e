"""Train text classifiers from labelled JSONL; write ``MODEL.onnx`` + ``MODEL.onnx.json``.

Data: one JSON object per line, ``{"text": "...", "label": "..."}`` (other keys are ignored,
blank lines skipped). Every bad line is collected and one :class:`TrainingDataError` lists them
all as ``FILE:LINE: problem``; nothing is trained on part of a file, because a dropped line or a
mistyped label silently changes the model.

Two kinds here, both loaded by :func:`shoal.models.onnx.load_classifier` (a third, the
text + embedding ensemble, is trained by :mod:`shoal.models.train_ensemble`):

- ``tfidf-logreg`` (:func:`train_text_classifier`): TF-IDF over word 1-2 grams + logistic
  regression, exported with skl2onnx. Microseconds per message; needs wording overlap with its
  training data. Character n-grams are left out of this kind (the ensemble has them): skl2onnx
  converts ``analyzer="char"`` with a warning, ``char_wb`` not at all, and its ``sublinear_tf``
  is wrong (see :func:`fix_sublinear_tf`).
- ``embedding-centroid`` (:func:`build_embedding_classifier`): MiniLM sentence embeddings, one
  centroid per label, softmax over cosine similarity / temperature. Milliseconds per message;
  generalises to unseen wording (4-label probe, 4-fold: 83% accuracy vs 42% for TF-IDF).

The sidecar records the training recipe (``hyperparameters``; the centroid kind's is its
``temperature``) so that :mod:`shoal.models.refit` can retrain the same kind the same way.

Both hold out a stratified ``test_size`` share of the data, train on the rest, and ship the model
they evaluated, so the sidecar's metrics describe exactly the file next to it. The export is then
checked against its reference (scikit-learn, or the centroid rule in numpy) on the held-out texts;
below 99% label agreement nothing is written.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from shoal.errors import BackendError, ErrorCode, ShoalError
from shoal.models.base import Embedder
from shoal.models.onnx import (
    FORMAT_VERSION,
    KIND_CENTROID,
    KIND_TFIDF,
    LABELS_METADATA_KEY,
    ClassifierKind,
    OnnxEmbedder,
    Sidecar,
    embed_blocking,
    file_sha256,
    load_classifier,
    sidecar_path,
)

TOKEN_PATTERN = r"[a-zA-Z0-9_]{2,}"
"""Given to scikit-learn and to the ONNX tokenizer alike: skl2onnx would otherwise swap in its
own pattern, and ONNX Runtime's ``\\w`` is ASCII-only."""

DEFAULT_TEMPERATURE = 0.05
"""Softmax temperature over cosine similarities. On a 4-label, 48-sentence probe (4-fold
held-out) 0.05 gave the lowest log-loss (0.35; 0.03 -> 0.37, 0.1 -> 0.48) with a small
calibration error (ECE 0.08, mean top probability 0.85 at 83% accuracy). MiniLM puts a text about
0.47 from its own label's centroid and 0.25 from the others: at 0.05 that gap is a factor of
e^4.4, at 0.01 the probabilities are near 0/1 and overconfident, at 0.2 nearly flat. Logistic
regression on the embeddings was no better (accuracy 85%, log-loss 0.39 at best C), so the
simpler centroid rule is the default."""

MIN_AGREEMENT = 0.99

_EXPORT = "onnx-export"

_MAX_LISTED = 20


# --- data -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    label: str
    line: int


@dataclass(frozen=True, slots=True)
class DataIssue:
    """One problem with a training file; ``line`` is None for problems of the file as a whole."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.message}"


class TrainingDataError(ShoalError):
    """A training file cannot be used. ``issues`` holds every problem found, in file order.

    The message lists the first 20 as ``FILE:LINE: problem`` and never quotes a text.
    """

    code = ErrorCode.INPUT_INVALID

    def __init__(self, issues: list[DataIssue]) -> None:
        if not issues:
            raise ValueError("TrainingDataError needs at least one issue")
        self.issues = issues
        listed = [str(i) for i in issues[:_MAX_LISTED]]
        if len(issues) > _MAX_LISTED:
            listed.append(f"... and {len(issues) - _MAX_LISTED} more")
        super().__init__("\n".join(listed))


def _short(label: str) -> str:
    # Labels are category names, but a file with swapped fields puts texts there.
    return repr(label if len(label) <= 40 else label[:37] + "...")


def _check_field(data: dict[str, Any], key: str) -> str | None:
    """A problem with a required string field, or None."""
    if key not in data:
        return f"missing {key!r}"
    value = data[key]
    if not isinstance(value, str):
        return f"{key!r} must be a string, got {type(value).__name__}"
    if not value.strip():
        return f"{key!r} is empty"
    if key == "label" and value != value.strip():
        return "'label' has leading or trailing spaces"
    return None


def read_examples(path: Path) -> list[Example]:
    """Every example of a labelled JSONL file; TrainingDataError listing all bad lines.

    Also rejects files with fewer than two labels or a label with fewer than two examples (a
    stratified split needs one to train on and one to test).
    """
    file = str(path)
    if not path.is_file():
        raise TrainingDataError([DataIssue(file, None, "file not found")])
    issues: list[DataIssue] = []
    examples: list[Example] = []
    try:
        lines = path.read_bytes().split(b"\n")  # numbered like an editor and _batch do
    except OSError as exc:
        raise TrainingDataError([DataIssue(file, None, f"cannot read: {exc.strerror}")]) from exc
    for line_no, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            issues.append(DataIssue(file, line_no, f"not valid UTF-8 (byte {exc.start})"))
            continue
        except json.JSONDecodeError as exc:
            issues.append(DataIssue(file, line_no,
                                    f"not valid JSON: {exc.msg} (column {exc.colno})"))
            continue
        if not isinstance(data, dict):
            issues.append(DataIssue(file, line_no,
                                    f"expected a JSON object, got {type(data).__name__}"))
            continue
        problems = [p for key in ("text", "label") if (p := _check_field(data, key))]
        if problems:
            issues.append(DataIssue(file, line_no, "; ".join(problems)))
            continue
        examples.append(Example(data["text"], data["label"], line_no))
    if issues:
        raise TrainingDataError(issues)
    counts = Counter(e.label for e in examples)
    if len(counts) < 2:
        found = f"only {_short(next(iter(counts)))}" if counts else "no examples"
        raise TrainingDataError([DataIssue(file, None, f"need at least 2 labels; found {found}")])
    few = [
        DataIssue(file, None, f"label {_short(label)} has {n} example; each label needs at "
                              f"least 2 (one to train on, one to hold out)")
        for label, n in sorted(counts.items()) if n < 2
    ]
    if few:
        raise TrainingDataError(few)
    return examples


def split_examples(
    examples: Sequence[Example], *, test_size: float, seed: int, file: str = "<data>"
) -> tuple[list[Example], list[Example]]:
    """A stratified (train, held-out) split, the same for the same data, test_size and seed."""
    from sklearn.model_selection import train_test_split  # type: ignore[import-untyped]

    if not 0.0 < test_size < 1.0:
        raise ValueError("test_size must be between 0 and 1")
    n, k = len(examples), len({e.label for e in examples})
    n_test = math.ceil(test_size * n)
    if n_test < k or n - n_test < k:
        raise TrainingDataError([DataIssue(
            file, None, f"{n} examples of {k} labels cannot be split with test_size={test_size:g}"
                        f": both parts need at least one example per label")])
    index = np.arange(n)
    train_idx, test_idx = train_test_split(
        index, test_size=test_size, random_state=seed, stratify=[e.label for e in examples])
    return [examples[i] for i in train_idx], [examples[i] for i in test_idx]


# --- report ---------------------------------------------------------------------------------------


class LabelMetrics(BaseModel):
    model_config = ConfigDict(frozen=True)

    precision: float
    recall: float
    f1: float
    support: int
    """Held-out examples with this label."""


class Metrics(BaseModel):
    """Held-out metrics of the shipped model (its ONNX predictions, not the reference's)."""

    model_config = ConfigDict(frozen=True)

    accuracy: float
    macro_f1: float
    per_label: dict[str, LabelMetrics]
    n_train: int
    n_test: int
    evaluated_on: str | None = None
    """The name of the evaluation file, or None for a held-out share of the training file."""
    member_accuracy: dict[str, float] | None = None
    """An ensemble's members' held-out accuracy, each on its own."""


class TrainReport(BaseModel):
    """What training wrote and how well the result did on held-out data."""

    model_config = ConfigDict(frozen=True)

    kind: ClassifierKind
    model_path: Path
    sidecar_path: Path
    labels: list[str]
    n_examples: int
    metrics: Metrics
    onnx_agreement: float
    """Share of held-out texts on which the ONNX file's label equals the reference's."""
    max_probability_diff: float
    """Largest absolute difference between ONNX and reference probabilities on held-out texts."""
    model_sha256: str
    data_sha256: str
    seconds: float
    """Wall time: reading, (embedding,) fitting, export and checks."""

    def summary(self) -> str:
        """A plain-text table for the CLI."""
        m = self.metrics
        width = max(len(label) for label in self.labels)
        lines = [
            f"{self.kind} classifier: {self.model_path} (+ {self.sidecar_path.name})",
            f"{self.n_examples} examples, {len(self.labels)} labels; trained on {m.n_train}, "
            f"held out {m.n_test}; {self.seconds:.1f} s",
            f"held-out accuracy {m.accuracy:.3f}, macro-F1 {m.macro_f1:.3f}",
            f"{'label':<{width}}  precision  recall     f1  support",
        ]
        lines += [
            f"{label:<{width}}  {lm.precision:9.3f}  {lm.recall:6.3f}  {lm.f1:5.3f}  "
            f"{lm.support:7d}"
            for label, lm in m.per_label.items()
        ]
        lines.append(f"ONNX agrees with the reference on {self.onnx_agreement:.1%} of held-out "
                     f"labels (max probability difference {self.max_probability_diff:.1e})")
        return "\n".join(lines)


def _metrics(
    truth: Sequence[str], predicted: Sequence[str], labels: list[str], n_train: int,
    **extra: Any,
) -> Metrics:
    from sklearn.metrics import (  # type: ignore[import-untyped]
        accuracy_score,
        precision_recall_fscore_support,
    )

    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=labels, zero_division=0)
    return Metrics(
        accuracy=float(accuracy_score(truth, predicted)),
        macro_f1=float(np.mean(f1)),
        per_label={
            label: LabelMetrics(precision=float(precision[i]), recall=float(recall[i]),
                                f1=float(f1[i]), support=int(support[i]))
            for i, label in enumerate(labels)
        },
        n_train=n_train,
        n_test=len(truth),
        **extra,
    )


def _agreement(
    onnx_probs: NDArray[Any], reference_probs: NDArray[Any], file: str
) -> tuple[float, float]:
    agreement = float(np.mean(onnx_probs.argmax(axis=1) == reference_probs.argmax(axis=1)))
    diff = float(np.abs(onnx_probs - reference_probs).max())
    if agreement < MIN_AGREEMENT:
        raise BackendError(f"{file}: the ONNX export agrees with its reference on only "
                           f"{agreement:.1%} of held-out labels (need {MIN_AGREEMENT:.0%}); "
                           f"nothing was written", backend=_EXPORT)
    return agreement, diff


def _versions() -> dict[str, str]:
    out = {}
    for dist in ("shoal", "scikit-learn", "skl2onnx", "onnx", "onnxruntime", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _add_labels(model: Any, labels: list[str]) -> None:
    entry = model.metadata_props.add()
    entry.key = LABELS_METADATA_KEY
    entry.value = json.dumps(labels)


def _write(
    out: Path, model: bytes, *, kind: ClassifierKind,
    labels: list[str], metrics: Metrics, data_sha256: str, n_examples: int, **extra: Any,
) -> Sidecar:
    # Model first, sidecar last: a crash in between leaves a pair whose sha256 check fails on
    # load, never a sidecar vouching for a half-written model.
    sidecar = Sidecar(
        format_version=FORMAT_VERSION, kind=kind, labels=labels, model_sha256=_sha256(model),
        data_sha256=data_sha256, created=datetime.now(UTC).isoformat(timespec="seconds"),
        n_examples=n_examples, metrics=metrics.model_dump(), versions=_versions(), **extra)
    text = sidecar.model_dump_json(indent=2, exclude_none=True) + "\n"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(out, model)
        _write_atomic(sidecar_path(out), text.encode())
    except OSError as exc:
        raise BackendError(f"cannot write {exc.filename or out}: {exc.strerror or 'I/O error'}",
                           backend=_EXPORT) from exc
    return sidecar


# --- export helpers -----------------------------------------------------------------------------


def fix_sublinear_tf(model: Any) -> int:
    """Make a skl2onnx graph compute scikit-learn's ``sublinear_tf``; return how many
    vectorisers it fixed.

    scikit-learn replaces a non-zero term count tf by ``1 + log(tf)``; skl2onnx 1.20 exports
    ``log(tf + 1)`` for every count (an ``Add`` of a ones vector, then ``Log``), so the
    L2-normalised vectors differ wherever a term repeats (probability differences up to 0.03 on
    the healthcare messages). Each such ``Add`` + ``Log`` becomes
    ``Where(tf > 0, 1 + Log(tf), 0)`` (the ``Log(0) = -inf`` of absent terms is discarded by
    ``Where``). The caller checks the count against its vectorisers: a skl2onnx that exports
    something else is found, not patched blindly.
    """
    from onnx import NodeProto, helper, numpy_helper

    graph = model.graph
    # Copies: the graph's node list is cleared and refilled below. Positions, not protobuf
    # wrapper objects, identify the nodes.
    nodes = []
    for node in graph.node:
        nodes.append(NodeProto())
        nodes[-1].CopyFrom(node)
    initializers = {init.name: init for init in graph.initializer}
    producer = {out: i for i, node in enumerate(nodes) for out in node.output}
    consumers = Counter(name for node in nodes for name in node.input)
    patched: dict[int, str] = {}  # position of a Log node -> the term counts it should read
    dropped: set[int] = set()  # positions of the Add nodes it replaces
    ones: set[str] = set()
    for i, node in enumerate(nodes):
        j = producer.get(node.input[0]) if node.op_type == "Log" else None
        if j is None or nodes[j].op_type != "Add" or consumers[nodes[j].output[0]] != 1:
            continue
        constant = [x for x in nodes[j].input if x in initializers
                    and np.all(numpy_helper.to_array(initializers[x]) == 1.0)]
        variable = [x for x in nodes[j].input if x not in constant]
        if len(constant) == 1 and len(variable) == 1:
            patched[i] = variable[0]
            dropped.add(j)
            ones.add(constant[0])
    if not patched:
        return 0
    one, zero = "shoal_sublinear_one", "shoal_sublinear_zero"
    rewritten = []
    for i, node in enumerate(nodes):
        if i in dropped:
            continue
        if i not in patched:
            rewritten.append(node)
            continue
        counts, name = patched[i], node.output[0]
        rewritten += [
            helper.make_node("Log", [counts], [f"{name}_log"], name=f"{name}_log"),
            helper.make_node("Add", [f"{name}_log", one], [f"{name}_plus"], name=f"{name}_plus"),
            helper.make_node("Greater", [counts, zero], [f"{name}_seen"], name=f"{name}_seen"),
            helper.make_node("Where", [f"{name}_seen", f"{name}_plus", zero], [name],
                             name=f"{name}_where"),
        ]
    del graph.node[:]
    graph.node.extend(rewritten)
    # The ones vectors were as wide as the vocabulary; nothing reads them any more.
    kept = [init for init in graph.initializer if init.name not in ones]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    graph.initializer.extend([numpy_helper.from_array(np.array(1.0, np.float32), one),
                              numpy_helper.from_array(np.array(0.0, np.float32), zero)])
    return len(patched)


def make_reproducible(model: Any, name: str) -> None:
    """Give a converted model the same bytes for the same fit: skl2onnx names the graph with a
    random uuid and lists the opsets in set order (it changed between two runs), and a merge of
    two models repeats the opsets and quotes the names in the graph's doc string. The graph gets
    ``name`` and no doc string; the opsets, one per domain (the highest version), sorted."""
    from onnx import helper

    versions: dict[str, int] = {}
    for opset in model.opset_import:
        versions[opset.domain] = max(versions.get(opset.domain, 0), opset.version)
    del model.opset_import[:]
    model.opset_import.extend(helper.make_opsetid(domain, version)
                              for domain, version in sorted(versions.items()))
    model.graph.name = name
    model.graph.doc_string = ""


PAD_TOKEN = "<pad>"
"""What ONNX Runtime's tokenizers pad a batch's shorter texts with. skl2onnx's ``#`` is a
character like any other to a character analyser, so in a batch a short text gained ``##`` and
``###`` n-grams from its longer neighbours: the healthcare guard's text member changed 4 of 300
labels, and probabilities by up to 0.22, depending on which texts shared its batch. A token of
five characters cannot equal any character n-gram's character, nor match the word pattern
inside a text, so padding adds nothing and a text scores the same alone or in any batch (which
micro-batching relies on)."""


def convert_text_pipeline(pipeline: Any, vectorizers: Sequence[Any], *,
                          input_name: str = "text") -> Any:
    """skl2onnx's ONNX model of a fitted text ``pipeline`` (string input ``[n, 1]``, outputs
    ``label`` and ``probabilities``) whose TF-IDF ``vectorizers`` are given, with the options
    every shoal export needs and :func:`fix_sublinear_tf` applied."""
    from skl2onnx import convert_sklearn  # type: ignore[import-untyped]
    from skl2onnx.common.data_types import StringTensorType  # type: ignore[import-untyped]

    # ORT's string normaliser needs a locale the machine has; C.UTF-8 is everywhere (without it
    # the session failed to load on a machine with no en_US). The word pattern is given to both
    # sides: skl2onnx would swap in its own.
    options: dict[int, dict[str, Any]] = {
        id(v): {"locale": "C.UTF-8"} | ({"tokenexp": v.token_pattern} if v.analyzer == "word"
                                        else {})
        for v in vectorizers
    }
    options[id(pipeline.steps[-1][1])] = {"zipmap": False}
    try:
        with warnings.catch_warnings():
            # "only tokenizer='word' is fully supported": the char analyser is checked instead,
            # by the caller's agreement check against scikit-learn.
            warnings.simplefilter("ignore", UserWarning)
            model = convert_sklearn(pipeline, initial_types=[(input_name,
                                                              StringTensorType([None, 1]))],
                                    options=options)
    except (RuntimeError, NotImplementedError, ValueError, TypeError) as exc:
        raise BackendError(f"skl2onnx cannot convert the pipeline ({type(exc).__name__})",
                           backend=_EXPORT) from exc
    make_reproducible(model, "shoal_text_classifier")
    for node in model.graph.node:
        if node.op_type == "Tokenizer":
            for attribute in node.attribute:
                if attribute.name == "pad_value":
                    attribute.s = PAD_TOKEN.encode()
    expected = sum(1 for v in vectorizers if v.sublinear_tf)
    fixed = fix_sublinear_tf(model)
    if fixed != expected:
        raise BackendError(f"the ONNX export has {fixed} sublinear term-frequency steps for "
                           f"{expected} vectorisers with sublinear_tf; this skl2onnx exports "
                           f"them differently from the one shoal was written for",
                           backend=_EXPORT)
    return model


# --- TF-IDF ---------------------------------------------------------------------------------------


class TfidfHyperparameters(BaseModel):
    """The tfidf-logreg recipe, recorded in its sidecar's ``hyperparameters``.

    The defaults are the recipe of every tfidf-logreg model so far. C=10: on the probe, C=1 left
    every probability near uniform (mean top 0.29 for 4 labels) and C=10 had the lowest
    log-loss; balanced weights keep a rare label from being ignored.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    ngram_range: tuple[int, int] = (1, 2)
    token_pattern: str = TOKEN_PATTERN
    sublinear_tf: bool = False
    C: float = Field(default=10.0, gt=0)
    max_iter: int = Field(default=2000, ge=1)
    class_weight: Literal["balanced"] | None = "balanced"


def tfidf_pipeline(params: TfidfHyperparameters | None = None, *, seed: int = 0) -> Any:
    """The unfitted scikit-learn pipeline that :func:`train_text_classifier` fits."""
    from sklearn.feature_extraction.text import (  # type: ignore[import-untyped]
        TfidfVectorizer,
    )
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
    from sklearn.pipeline import Pipeline  # type: ignore[import-untyped]

    p = params or TfidfHyperparameters()
    return Pipeline([
        ("tfidf", TfidfVectorizer(lowercase=True, token_pattern=p.token_pattern,
                                  ngram_range=p.ngram_range, sublinear_tf=p.sublinear_tf)),
        # lbfgs is deterministic; the seed is passed anyway so a change of solver stays seeded.
        ("clf", LogisticRegression(C=p.C, max_iter=p.max_iter, class_weight=p.class_weight,
                                   random_state=seed)),
    ])


def _export_tfidf(pipeline: Any, labels: list[str]) -> bytes:
    model = convert_text_pipeline(pipeline, [pipeline.named_steps["tfidf"]])
    _add_labels(model, labels)
    data: bytes = model.SerializeToString()
    return data


def _run_onnx(model: bytes, feed: dict[str, Any]) -> NDArray[Any]:
    import onnxruntime as ort  # type: ignore[import-untyped, unused-ignore]

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        (probs,) = session.run(["probabilities"], feed)
    except Exception as exc:  # ORT's exception classes derive from Exception only
        raise BackendError(f"ONNX Runtime cannot run the exported model ({type(exc).__name__})",
                           backend=_EXPORT) from exc
    return np.asarray(probs, dtype=np.float64)


def train_text_classifier(
    data: Path, out: Path, *, test_size: float = 0.2, seed: int = 0,
    hyperparameters: TfidfHyperparameters | None = None,
) -> TrainReport:
    """Fit TF-IDF + logistic regression on ``data`` (JSONL), write ``out`` and its sidecar.

    Raises TrainingDataError (every bad line, as FILE:LINE), or BackendError if the ONNX export
    disagrees with scikit-learn on more than 1% of held-out labels (then nothing is written).
    """
    start = time.perf_counter()
    data, out = Path(data), Path(out)
    params = hyperparameters or TfidfHyperparameters()
    examples = read_examples(data)
    train, test = split_examples(examples, test_size=test_size, seed=seed, file=str(data))
    pipeline = tfidf_pipeline(params, seed=seed)
    pipeline.fit([e.text for e in train], [e.label for e in train])
    labels = [str(c) for c in pipeline.classes_]
    model = _export_tfidf(pipeline, labels)

    test_texts = [e.text for e in test]
    onnx_probs = _run_onnx(model, {"text": np.array(test_texts, dtype=object).reshape(-1, 1)})
    agreement, diff = _agreement(onnx_probs, pipeline.predict_proba(test_texts), str(out))
    predicted = [labels[i] for i in onnx_probs.argmax(axis=1)]
    metrics = _metrics([e.label for e in test], predicted, labels, len(train))

    data_sha = file_sha256(data)
    sidecar = _write(out, model, kind=KIND_TFIDF, labels=labels, metrics=metrics,
                     data_sha256=data_sha, n_examples=len(examples),
                     hyperparameters=params.model_dump(mode="json"))
    load_classifier(out)  # the loader's own checks, on the files as written
    return TrainReport(
        kind=KIND_TFIDF, model_path=out, sidecar_path=sidecar_path(out), labels=labels,
        n_examples=len(examples), metrics=metrics, onnx_agreement=agreement,
        max_probability_diff=diff, model_sha256=sidecar.model_sha256, data_sha256=data_sha,
        seconds=time.perf_counter() - start)


# --- embedding centroids --------------------------------------------------------------------------


def _embed_all(embedder: Embedder, texts: list[str]) -> NDArray[np.float32]:
    return embed_blocking(embedder, texts)


def _centroids(vectors: NDArray[np.float32], labels: Sequence[str],
               order: list[str]) -> NDArray[np.float32]:
    names = np.asarray(labels)
    rows = [vectors[names == label].mean(axis=0) for label in order]
    centroids = np.vstack(rows).astype(np.float32)
    norms = np.clip(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12, None)
    result: NDArray[np.float32] = (centroids / norms).astype(np.float32)
    return result


def _centroid_probs(vectors: NDArray[np.float32], centroids: NDArray[np.float32],
                    temperature: float) -> NDArray[np.float64]:
    logits = vectors.astype(np.float64) @ centroids.T.astype(np.float64) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    result: NDArray[np.float64] = weights / weights.sum(axis=1, keepdims=True)
    return result


def embedder_source(embedder: Embedder) -> tuple[str, str | None]:
    """What a sidecar records of the embedder a model was built with: a catalog name or file
    (``OnnxEmbedder.source``) and its sha256, or a caller-supplied embedder's name only."""
    if isinstance(embedder, OnnxEmbedder):
        return embedder.source, embedder.model_sha256
    return embedder.name, None


def _export_centroids(centroids: NDArray[np.float32], temperature: float,
                      labels: list[str]) -> bytes:
    """An ONNX head: ``embedding`` (n, dim) -> ``probabilities`` = softmax(E·Cᵀ / T), and
    ``cosine`` (n, labels) for callers who want the raw similarities."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    k, dim = centroids.shape
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["embedding", "centroids_t"], ["cosine"]),
            helper.make_node("Mul", ["cosine", "inverse_temperature"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
        ],
        "embedding_centroid",
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [None, dim])],
        [
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, k]),
            helper.make_tensor_value_info("cosine", TensorProto.FLOAT, [None, k]),
        ],
        initializer=[
            numpy_helper.from_array(np.ascontiguousarray(centroids.T), "centroids_t"),
            numpy_helper.from_array(np.array(1.0 / temperature, dtype=np.float32),
                                    "inverse_temperature"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="shoal")
    model.ir_version = 8  # opset 17's IR: loadable by any ONNX Runtime since 1.13
    _add_labels(model, labels)
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data


def build_embedding_classifier(
    data: Path,
    out: Path,
    embedder: Embedder | None = None,
    *,
    test_size: float = 0.2,
    seed: int = 0,
    temperature: float = DEFAULT_TEMPERATURE,
) -> TrainReport:
    """Build a nearest-centroid classifier over ``embedder``'s vectors (default: the embedded
    MiniLM) from ``data`` (JSONL); write ``out`` (an ONNX head) and its sidecar.

    The sidecar names the embedder (catalog name, or the ONNX file's path for an
    :class:`~shoal.models.onnx.OnnxEmbedder` built from a path, else ``embedder.name``, which
    must then be passed to ``load_classifier(..., embedder=)``).
    """
    if temperature <= 0:
        raise ValueError("temperature must be positive")
    start = time.perf_counter()
    data, out = Path(data), Path(out)
    examples = read_examples(data)
    train, test = split_examples(examples, test_size=test_size, seed=seed, file=str(data))
    embedder = embedder or OnnxEmbedder()
    vectors = _embed_all(embedder, [e.text for e in train + test])
    train_vectors, test_vectors = vectors[:len(train)], vectors[len(train):]
    labels = sorted({e.label for e in examples})
    centroids = _centroids(train_vectors, [e.label for e in train], labels)
    model = _export_centroids(centroids, temperature, labels)

    onnx_probs = _run_onnx(model, {"embedding": test_vectors})
    reference = _centroid_probs(test_vectors, centroids, temperature)
    agreement, diff = _agreement(onnx_probs, reference, str(out))
    predicted = [labels[i] for i in onnx_probs.argmax(axis=1)]
    metrics = _metrics([e.label for e in test], predicted, labels, len(train))

    data_sha = file_sha256(data)
    source, embedder_sha = embedder_source(embedder)
    sidecar = _write(out, model, kind=KIND_CENTROID, labels=labels, metrics=metrics,
                     data_sha256=data_sha, n_examples=len(examples), embedder=source,
                     embedder_sha256=embedder_sha, embedder_dim=int(vectors.shape[1]),
                     temperature=temperature)
    load_classifier(out, embedder=embedder)  # the loader's own checks, on the files as written
    return TrainReport(
        kind=KIND_CENTROID, model_path=out, sidecar_path=sidecar_path(out), labels=labels,
        n_examples=len(examples), metrics=metrics, onnx_agreement=agreement,
        max_probability_diff=diff, model_sha256=sidecar.model_sha256, data_sha256=data_sha,
        seconds=time.perf_counter() - start)
