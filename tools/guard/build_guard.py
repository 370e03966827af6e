"""Rebuild the input guard's packaged classifier: ``python tools/guard/build_guard.py``.

Writes ``src/shoal/agents/data/guard.onnx`` and its sidecar ``guard.onnx.json``: the default
model of the ``input_guard`` agent, text only (no embedder), so a core install runs it.

Data (all committed; nothing is downloaded), every text through ``guard_data.model_text`` (chat
tokens out, NFKC, no invisibles) and cut at ``guard_data.TRAIN_CHARS`` characters:

- ``guard_train.jsonl`` (beside this file, written by ``make_guard_data.py``): 1,200 lines
  written for the project, ``allow | injection | jailbreak | off_topic``;
- 150 long messages, each 4 to 9 of its ``allow`` lines joined (``guard_data.long_messages``):
  public jailbreaks are long and patient messages short, and without them length itself reads as
  an attack;
- ``examples/healthcare/data/guard/authored_train.jsonl``: look-alikes (patient messages with
  attack words) and injections, jailbreaks and patient messages in German, French, Spanish and
  Italian, written for the project;
- ``examples/healthcare/data/guard/public.jsonl``: 14 public prompt-injection, jailbreak,
  harmful-request and benign collections from PyPI packages (``harmful`` and ``benign`` ->
  ``off_topic``; see that folder's README for sources and licences).

No healthcare split is trained on: the dev split (guard labels: injection, off_topic, every
other class ``allow``) measures the file (the sidecar's ``metrics``, ``evaluated_on``) and the
test split is ``benchmarks/guard_packaged.py``'s.

Recipe (:data:`RECIPE`): word 1-2 gram and character 2-5 gram TF-IDF (sublinear term
frequencies), then logistic regression (C=10, balanced class weights): the text member of the
healthcare guard's ensemble (:class:`shoal.models.train_ensemble.TextMemberHyperparameters`),
with word n-grams seen in one training text and character n-grams seen in fewer than three
dropped, which keeps the file near 5 MB. Character n-grams carry what word n-grams miss in
other languages and scripts (the word pattern is ASCII) and in obfuscated spellings.

The file is of kind ``tfidf-logreg`` (one string input, ``probabilities`` out: what
:func:`shoal.models.onnx.load_classifier` opens for that kind); its sidecar's
``hyperparameters`` are :class:`GuardRecipe`, not the word-only ``TfidfHyperparameters``, so
``shoal learn`` and :mod:`shoal.models.refit` refuse to retrain it rather than retrain it
differently: rebuild it here. The model is trained on every row; ``data_sha256`` is the SHA-256
of the training rows as JSONL (``--dump-data`` writes exactly that file). The export is checked
against scikit-learn on the evaluation texts and on every public text (99% label agreement or
nothing is written). The same data and seed give the same ``guard.onnx`` bytes; the sidecar's
``created`` and ``versions`` change on every build.

``--data`` trains on another file of the project's own lines (``text``, ``label``; labels must
include ``allow`` for the agent to use the model), still with the public and authored data.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from shoal.models.onnx import KIND_TFIDF, load_classifier, sidecar_path
from shoal.models.train import (
    TOKEN_PATTERN,
    TrainReport,
    _add_labels,
    _agreement,
    _metrics,
    _run_onnx,
    _write,
    convert_text_pipeline,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
GUARD_DATA = ROOT / "examples" / "healthcare" / "data" / "guard"
sys.path.insert(0, str(GUARD_DATA))
from guard_data import (  # noqa: E402  (the healthcare guard's data helper)
    PUBLIC,
    guard_label,
    model_text,
    packaged_training_rows,
    read,
)

DATA = HERE / "guard_train.jsonl"
EVAL = GUARD_DATA.parent / "dev.jsonl"
OUT = ROOT / "src" / "shoal" / "agents" / "data" / "guard.onnx"
"""The trained artefact ships in the package; its data and this script do not."""
SEED = 0

Row = dict[str, Any]


class GuardRecipe(BaseModel):
    """The packaged guard's recipe, recorded in its sidecar's ``hyperparameters``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    word_ngram_range: tuple[int, int] = (1, 2)
    word_min_df: int = Field(default=2, ge=1)
    """Word n-grams in fewer training texts are dropped (mostly bigrams of a single long
    jailbreak): about 26,000 of 84,000 are left, which keeps the file under 5 MB."""
    char_ngram_range: tuple[int, int] = (2, 5)
    char_min_df: int = Field(default=3, ge=1)
    token_pattern: str = TOKEN_PATTERN
    sublinear_tf: bool = True
    C: float = Field(default=10.0, gt=0)
    max_iter: int = Field(default=3000, ge=1)
    class_weight: Literal["balanced"] | None = "balanced"


RECIPE = GuardRecipe()


def pipeline(recipe: GuardRecipe = RECIPE, *, seed: int = SEED) -> Any:
    """The unfitted scikit-learn pipeline of ``recipe``."""
    from sklearn.feature_extraction.text import (  # type: ignore[import-untyped]
        TfidfVectorizer,
    )
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
    from sklearn.pipeline import FeatureUnion, Pipeline  # type: ignore[import-untyped]

    r = recipe
    return Pipeline([
        ("features", FeatureUnion([
            ("word", TfidfVectorizer(lowercase=True, token_pattern=r.token_pattern,
                                     ngram_range=r.word_ngram_range, min_df=r.word_min_df,
                                     sublinear_tf=r.sublinear_tf)),
            # "char", not "char_wb": skl2onnx converts only the first.
            ("char", TfidfVectorizer(lowercase=True, analyzer="char",
                                     ngram_range=r.char_ngram_range, min_df=r.char_min_df,
                                     sublinear_tf=r.sublinear_tf)),
        ])),
        ("clf", LogisticRegression(C=r.C, max_iter=r.max_iter, class_weight=r.class_weight,
                                   random_state=seed)),
    ])


def training_rows(own: Path = DATA, *, leave_out: str | None = None) -> list[dict[str, str]]:
    """The training rows (``text``, ``label``): ``own`` lines, their long messages, the authored
    training file and every public corpus but ``leave_out``."""
    rows: list[dict[str, str]] = packaged_training_rows(read(own), read(PUBLIC),
                                                        leave_out=leave_out)
    return rows


def eval_rows(path: Path = EVAL) -> list[dict[str, str]]:
    """A healthcare split in guard labels, texts as the guard's classifier reads them."""
    return [{"text": model_text(r["text"]), "label": guard_label(r)} for r in read(path)]


def jsonl(rows: Sequence[Row]) -> bytes:
    """The rows as JSONL bytes: what ``data_sha256`` hashes and ``--dump-data`` writes."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def fit(rows: Sequence[Row], recipe: GuardRecipe = RECIPE, *, seed: int = SEED) -> Any:
    """``recipe`` fitted on ``rows``. Deterministic (lbfgs)."""
    return pipeline(recipe, seed=seed).fit([r["text"] for r in rows], [r["label"] for r in rows])


def export(fitted: Any) -> bytes:
    """The fitted pipeline as a ``tfidf-logreg`` ONNX model (labels in its metadata)."""
    features = fitted.named_steps["features"]
    # convert_text_pipeline pads batches with a token no n-gram matches (see its PAD_TOKEN).
    model = convert_text_pipeline(fitted, [v for _, v in features.transformer_list])
    _add_labels(model, [str(c) for c in fitted.classes_])
    data: bytes = model.SerializeToString()
    return data


def build(out: Path = OUT, *, own: Path = DATA, evaluate: Path = EVAL,
          leave_out: str | None = None, recipe: GuardRecipe = RECIPE,
          seed: int = SEED) -> TrainReport:
    """Fit ``recipe`` on :func:`training_rows`, write ``out`` and its sidecar, load it back.

    The export is checked against scikit-learn on the evaluation texts and every public text
    (BackendError below 99% label agreement; nothing is written). Metrics: the written model's
    (ONNX) predictions on ``evaluate``.
    """
    start = time.perf_counter()
    rows = training_rows(own, leave_out=leave_out)
    dev = eval_rows(evaluate)
    fitted = fit(rows, recipe, seed=seed)
    labels = [str(c) for c in fitted.classes_]
    unknown = sorted({r["label"] for r in dev} - set(labels))
    if unknown:
        raise ValueError(f"{evaluate}: labels {unknown} are not among the model's {labels}")
    model = export(fitted)

    def onnx_probs(texts: list[str]) -> Any:
        return _run_onnx(model, {"text": np.array(texts, dtype=object).reshape(-1, 1)})

    dev_texts = [r["text"] for r in dev]
    check = dev_texts + [model_text(r["text"]) for r in read(PUBLIC)]
    probs = onnx_probs(check)
    agreement, diff = _agreement(probs, fitted.predict_proba(check), str(out))
    truth = [r["label"] for r in dev]
    predicted = [labels[i] for i in probs[:len(dev)].argmax(axis=1)]
    metrics = _metrics(truth, predicted, labels, len(rows), evaluated_on=evaluate.name)
    data_sha = hashlib.sha256(jsonl(rows)).hexdigest()
    sidecar = _write(out, model, kind=KIND_TFIDF, labels=labels, metrics=metrics,
                     data_sha256=data_sha, n_examples=len(rows),
                     hyperparameters=recipe.model_dump(mode="json"))
    load_classifier(out)  # the loader's own checks, on the files as written
    return TrainReport(
        kind=KIND_TFIDF, model_path=out, sidecar_path=sidecar_path(out), labels=labels,
        n_examples=len(rows), metrics=metrics, onnx_agreement=agreement,
        max_probability_diff=diff, model_sha256=sidecar.model_sha256, data_sha256=data_sha,
        seconds=time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/guard/build_guard.py",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA,
                        help="the project's own lines (default: guard_train.jsonl)")
    parser.add_argument("--eval", type=Path, default=EVAL, dest="evaluate",
                        help="a healthcare split to measure on (default: its dev split)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--dump-data", type=Path, metavar="PATH",
                        help="also write the training rows (JSONL; sha256 = data_sha256)")
    args = parser.parse_args(argv)
    if args.dump_data is not None:
        args.dump_data.write_bytes(jsonl(training_rows(args.data)))
    report = build(args.out, own=args.data, evaluate=args.evaluate, seed=args.seed)
    print(f"wrote {report.model_path} ({report.model_path.stat().st_size:,} bytes) and "
          f"{report.sidecar_path.name}")
    print(report.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
