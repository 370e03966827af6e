"""Training a learned deferral router (:mod:`shoal.models.router`) for one classifier node.

Out of fold, so that no feature of a training row comes from a model that saw the row:

1. The rows are split into ``folds`` groups (by a group key such as a message family, so that
   near-duplicates never sit on both sides; by row otherwise), seeded.
2. For each fold, the node's model is retrained on the other folds with its own recipe
   (:func:`shoal.models.refit.refitter`) and asked about the held-out fold: its probabilities,
   its members', and the nearest neighbours among the *other folds'* rows. A row is labelled
   1 when the retrained model's top label is wrong.
3. A logistic regression (standardised features, seeded) learns P(wrong) from those rows; its
   own out-of-fold scores fit an isotonic map to a calibrated probability.
4. The exported graph holds every training row as the neighbour bank (the deployed model saw
   them all), the regression and the isotonic knots.

Every fold's training and held-out row sets are checked to be disjoint (:class:`FoldPlan`), and
the sidecar records per-fold metrics and the hashes of the data.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from shoal.errors import BackendError
from shoal.models.base import Signals
from shoal.models.onnx import file_sha256, sidecar_path
from shoal.models.refit import refitter
from shoal.models.router import (
    FEATURES_METADATA_KEY,
    FORMAT_VERSION,
    KIND_ROUTER,
    KNN_FEATURES,
    LABELS_METADATA_KEY,
    VOCABULARY_METADATA_KEY,
    FoldMetrics,
    OofRows,
    RouterSidecar,
    knn_features,
    plain_feature_names,
    plain_features,
    words_of,
)
from shoal.models.train import _versions, _write_atomic

__all__ = ["FoldPlan", "OutOfFold", "RouterReport", "fold_plan", "out_of_fold", "train_router"]

DEFAULT_K = 10
TIE_BREAK = 1e-4
DEFAULT_FOLDS = 5
_EXPORT = "train-router"


@dataclass(frozen=True)
class FoldPlan:
    """Which rows each fold's model is trained on and which it answers for."""

    held_out: tuple[NDArray[np.int64], ...]
    train: tuple[NDArray[np.int64], ...]

    def check(self, n: int) -> None:
        """Raise unless every row is held out exactly once and never trained on in its fold."""
        seen = np.zeros(n, dtype=np.int64)
        for held, train in zip(self.held_out, self.train, strict=True):
            if np.intersect1d(held, train).size:
                raise BackendError("a fold trains on a row it is asked about", backend=_EXPORT)
            if np.union1d(held, train).size != n:
                raise BackendError("a fold leaves rows out", backend=_EXPORT)
            seen[held] += 1
        if not (seen == 1).all():
            raise BackendError("every row must be held out exactly once", backend=_EXPORT)


def fold_plan(groups: Sequence[str], folds: int, seed: int) -> FoldPlan:
    """Seeded group folds: every group's rows in one fold, fold sizes as even as groups allow
    (largest groups placed first, each into the currently smallest fold)."""
    names = sorted(set(groups))
    if len(names) < folds:
        raise BackendError(f"{len(names)} groups cannot make {folds} folds", backend=_EXPORT)
    rng = np.random.default_rng(seed)
    order = [names[i] for i in rng.permutation(len(names))]
    sizes = {g: 0 for g in names}
    for g in groups:
        sizes[g] += 1
    order.sort(key=lambda g: -sizes[g])  # stable: equal sizes keep the seeded order
    fold_of: dict[str, int] = {}
    load = [0] * folds
    for g in order:
        f = min(range(folds), key=lambda i: (load[i], i))
        fold_of[g] = f
        load[f] += sizes[g]
    index = np.array([fold_of[g] for g in groups], dtype=np.int64)
    every = np.arange(len(groups), dtype=np.int64)
    plan = FoldPlan(held_out=tuple(every[index == f] for f in range(folds)),
                    train=tuple(every[index != f] for f in range(folds)))
    plan.check(len(groups))
    return plan


@dataclass(frozen=True)
class OutOfFold:
    """The router's training set: features of every row from a model that never saw it."""

    features: NDArray[np.float32]
    names: list[str]
    wrong: NDArray[np.int64]
    """1 when the fold model's top label was wrong."""
    predicted: NDArray[np.int64]
    probabilities: NDArray[np.float64]
    """The fold models' probabilities for each row (row order of the input)."""
    fold: NDArray[np.int64]
    members: list[str]
    plan: FoldPlan


def _auroc(y: NDArray[Any], score: NDArray[Any]) -> float | None:
    from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped]

    return float(roc_auc_score(y, score)) if 0 < y.sum() < len(y) else None


def out_of_fold(texts: Sequence[str], labels: Sequence[str], groups: Sequence[str],
                model_path: Path, *, folds: int = DEFAULT_FOLDS, seed: int = 0,
                k: int = DEFAULT_K, embeddings: NDArray[np.float32] | None,
                progress: Callable[[str], None] | None = None) -> OutOfFold:
    """Out-of-fold router features for ``texts`` (the node's inputs) with gold ``labels``.
    ``embeddings``: the model's own embedder's vectors for ``texts`` (``refitter(...).embed``),
    None for a model without one."""
    refit = refitter(model_path)
    names = list(refit.labels)
    unknown = sorted(set(labels) - set(names))
    if unknown:
        raise BackendError(f"labels {unknown} are not the model's ({names})", backend=_EXPORT)
    y = np.array([names.index(label) for label in labels], dtype=np.int64)
    plan = fold_plan(groups, folds, seed)
    vocab_rows: list[NDArray[np.float32]] = []
    rows: list[NDArray[np.int64]] = []
    predicted = np.zeros(len(texts), dtype=np.int64)
    probabilities = np.zeros((len(texts), len(names)))
    fold_index = np.zeros(len(texts), dtype=np.int64)
    members: list[str] | None = None
    for f, (held, train) in enumerate(zip(plan.held_out, plan.train, strict=True)):
        if progress is not None:
            progress(f"fold {f + 1}/{folds}")
        model = refit.fit([texts[i] for i in train], [labels[i] for i in train],
                          None if embeddings is None else embeddings[train], seed=seed)
        held_texts = [texts[i] for i in held]
        signals: Signals = model.signals(held_texts,
                                         None if embeddings is None else embeddings[held])
        fold_members = sorted(signals.members)
        if members is None:
            members = fold_members
        elif members != fold_members:
            raise BackendError("fold models disagree about their members", backend=_EXPORT)
        pred = signals.probabilities.argmax(1).astype(np.int64)
        x = plain_features(signals, held_texts, names,
                           words_of([texts[i] for i in train]))
        if embeddings is not None and k:
            x = np.hstack([x, knn_features(embeddings[held], pred, embeddings[train],
                                           y[train], k)])
        vocab_rows.append(x)
        rows.append(held)
        predicted[held] = pred
        probabilities[held] = signals.probabilities
        fold_index[held] = f
    order = np.argsort(np.concatenate(rows), kind="stable")
    features = np.vstack(vocab_rows)[order]
    feature_names = plain_feature_names(names, members or [])
    if embeddings is not None and k:
        feature_names += list(KNN_FEATURES)
    wrong = (predicted != y).astype(np.int64)
    return OutOfFold(features=features, names=feature_names, wrong=wrong, predicted=predicted,
                     probabilities=probabilities, fold=fold_index, members=members or [],
                     plan=plan)


@dataclass(frozen=True)
class RouterReport:
    sidecar: RouterSidecar
    path: Path

    def summary(self) -> str:
        oof = self.sidecar.oof

        def f(key: str) -> str:
            value = oof.get(key)
            return "n/a" if value is None else f"{value:.3f}"

        return (f"router for {len(self.sidecar.labels)} labels, {self.sidecar.n_examples} rows, "
                f"{len(self.sidecar.folds)} folds: out-of-fold local accuracy "
                f"{f('local_accuracy')}, error detection AUROC {f('auroc')}, AUPRC "
                f"{f('auprc')}; mean P(wrong) {f('mean_p_wrong')} vs error rate "
                f"{f('error_rate')}")


def _fit_lr(x: NDArray[np.float32], y: NDArray[np.int64], seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
    from sklearn.pipeline import Pipeline  # type: ignore[import-untyped]
    from sklearn.preprocessing import StandardScaler  # type: ignore[import-untyped]

    # C=1 with standardised features: the research runs (docs/research/routing) found stronger
    # regularisation or boosting no better out of fold, and a linear model exports exactly.
    return Pipeline([("scale", StandardScaler()),
                     ("lr", LogisticRegression(C=1.0, max_iter=5000, random_state=seed))]
                    ).fit(x, y)


def _isotonic(oof: OutOfFold, seed: int) -> tuple[NDArray[np.float64], NDArray[np.float64],
                                                  NDArray[np.float64]]:
    """Knots of the isotonic map from the regression's score to P(wrong), fitted on the
    regression's own out-of-fold scores (nested in the same folds); and those scores."""
    from sklearn.isotonic import IsotonicRegression  # type: ignore[import-untyped]

    scores = np.zeros(len(oof.wrong))
    for held, train in zip(oof.plan.held_out, oof.plan.train, strict=True):
        if len(set(oof.wrong[train].tolist())) < 2:
            scores[held] = float(oof.wrong[train].mean())
            continue
        scores[held] = _fit_lr(oof.features[train], oof.wrong[train], seed).predict_proba(
            oof.features[held])[:, 1]
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(scores, oof.wrong)
    return (np.asarray(iso.X_thresholds_, dtype=np.float64),
            np.asarray(iso.y_thresholds_, dtype=np.float64), scores)


def _export(lr: Any, knots_x: NDArray[np.float64], knots_y: NDArray[np.float64], *,
            n_plain: int, names: list[str], labels: list[str], vocabulary: list[str],
            bank: NDArray[np.float32] | None, bank_labels: NDArray[np.int64], k: int) -> bytes:
    """The router as one ONNX graph (see :mod:`shoal.models.router`): neighbours, regression,
    isotonic map; output ``p_wrong`` [N] and the raw ``score`` [N]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[Any] = []
    inits: list[Any] = []

    def const(name: str, value: NDArray[Any]) -> str:
        inits.append(numpy_helper.from_array(value, name=name))
        return name

    def node(op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [output], **attrs))
        return output

    inputs = [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, n_plain]),
              helper.make_tensor_value_info("predicted", TensorProto.INT64, [None])]
    parts = ["features"]
    axis1 = const("axis1", np.array([1], dtype=np.int64))
    if bank is not None:
        inputs.append(helper.make_tensor_value_info("embedding", TensorProto.FLOAT,
                                                    [None, bank.shape[1]]))
        kk = min(k, bank.shape[0])
        sims = node("MatMul", ["embedding", const("bank_t", bank.T.copy())], "sims")
        nodes.append(helper.make_node("TopK", [sims, const("k", np.array([kk], np.int64))],
                                      ["top", "top_idx"], axis=1, largest=1, sorted=1))
        near = node("Gather", [const("bank_labels", bank_labels.astype(np.int64)), "top_idx"],
                    "near_labels", axis=0)
        pred = node("Unsqueeze", ["predicted", axis1], "pred_col")
        agree = node("Cast", [node("Equal", [near, pred], "agree_b")], "agree", to=1)
        agree_mean = node("ReduceMean", [agree], "knn_agree", axes=[1], keepdims=1)
        num = node("ReduceSum", [node("Mul", ["top", agree], "top_agree"), axis1], "num",
                   keepdims=1)
        den = node("Max", [node("ReduceSum", ["top", axis1], "den0", keepdims=1),
                           const("eps", np.array([[1e-6]], np.float32))], "den")
        weighted = node("Div", [num, den], "knn_agree_weighted")
        mean_dist = node("Sub", [const("one", np.array([[1.0]], np.float32)),
                                 node("ReduceMean", ["top"], "top_mean", axes=[1], keepdims=1)],
                         "knn_mean_distance")
        zero, one = const("s0", np.array([0], np.int64)), const("s1", np.array([1], np.int64))
        top1 = node("Slice", ["top", zero, one, axis1], "knn_top1_similarity")
        top1_agree = node("Slice", [agree, zero, one, axis1], "knn_top1_agree")
        parts += [agree_mean, weighted, mean_dist, top1, top1_agree]
    x = node("Concat", parts, "x", axis=1) if len(parts) > 1 else "features"
    scaler, clf = lr.named_steps["scale"], lr.named_steps["lr"]
    z = node("Div", [node("Sub", [x, const("mean", scaler.mean_.astype(np.float32)[None, :])],
                          "centred"),
                     const("scale", scaler.scale_.astype(np.float32)[None, :])], "z")
    logit = node("Add", [node("MatMul", [z, const("coef", clf.coef_.T.astype(np.float32))],
                              "zw"),
                         const("intercept", clf.intercept_.astype(np.float32)[None, :])],
                 "logit")
    score = node("Sigmoid", [logit], "score_col")
    # Isotonic map as a sum of clamped ramps: y0 + sum_i slope_i * clip(s - x_i, 0, x_{i+1}-x_i)
    # is np.interp over the knots (flat outside them), in broadcast ops ORT has everywhere.
    if len(knots_x) >= 2:
        widths = np.diff(knots_x)
        slopes = np.divide(np.diff(knots_y), widths, out=np.zeros_like(widths),
                           where=widths > 0)
        ramp = node("Min", [node("Max", [node("Sub", [score, const(
            "knots", knots_x[:-1].astype(np.float32)[None, :])], "d"), const(
            "zero", np.array([[0.0]], np.float32))], "d0"), const(
            "widths", widths.astype(np.float32)[None, :])], "ramp")
        rise = node("ReduceSum", [node("Mul", [ramp, const(
            "slopes", slopes.astype(np.float32)[None, :])], "rises"), axis1], "rise", keepdims=1)
        p = node("Add", [rise, const("y0", np.array([[knots_y[0]]], np.float32))], "iso")
    else:
        p = node("Add", [node("Mul", [score, const("zero_w", np.array([[0.0]], np.float32))],
                              "flat"),
                         const("y0", np.array([[knots_y[0] if len(knots_y) else 0.0]],
                                              np.float32))], "iso")
    # Ties on a flat isotonic step are broken by the raw score (at most 1e-4): a threshold on
    # P(wrong) then ranks like the regression within a step instead of jumping a whole step of
    # records at once. 1e-4, not less: float32 near 0.3 resolves about 3e-8, and scores a
    # hundredth apart must stay apart.
    p = node("Add", [p, node("Mul", [score, const("tie", np.array([[TIE_BREAK]], np.float32))],
                             "tie_break")], "p_tie")
    flat = const("flat_shape", np.array([-1], np.int64))
    node("Reshape", [p, flat], "p_wrong")
    node("Reshape", [score, flat], "score")
    graph = helper.make_graph(
        nodes, "shoal_deferral_router", inputs,
        [helper.make_tensor_value_info("p_wrong", TensorProto.FLOAT, [None]),
         helper.make_tensor_value_info("score", TensorProto.FLOAT, [None])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="shoal")
    model.ir_version = 8  # what the installed onnxruntime reads for opset 17
    for key, value in ((FEATURES_METADATA_KEY, names), (LABELS_METADATA_KEY, labels),
                       (VOCABULARY_METADATA_KEY, vocabulary)):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data


def _auprc(y: NDArray[Any], score: NDArray[Any]) -> float | None:
    from sklearn.metrics import average_precision_score  # type: ignore[import-untyped, unused-ignore]

    return float(average_precision_score(y, score)) if 0 < y.sum() < len(y) else None


def train_router(texts: Sequence[str], labels: Sequence[str], groups: Sequence[str],
                 model_path: Path, out: Path, *, data_sha256: str, folds: int = DEFAULT_FOLDS,
                 seed: int = 0, k: int = DEFAULT_K,
                 progress: Callable[[str], None] | None = None) -> RouterReport:
    """Train a router for the classifier at ``model_path`` on the node's input ``texts`` with
    gold ``labels`` (grouped by ``groups`` into folds) and write ``out`` with its sidecar.
    Deterministic under ``seed``."""
    refit = refitter(model_path)
    if progress is not None:
        progress("embedding")
    embeddings = refit.embed(texts)
    oof = out_of_fold(texts, labels, groups, model_path, folds=folds, seed=seed, k=k,
                      embeddings=embeddings, progress=progress)
    if len(set(oof.wrong.tolist())) < 2:
        raise BackendError("the model is right (or wrong) on every row out of fold: nothing "
                           "to learn a router from", backend=_EXPORT)
    if progress is not None:
        progress("fitting")
    knots_x, knots_y, lr_scores = _isotonic(oof, seed)
    lr = _fit_lr(oof.features, oof.wrong, seed)
    names = list(refit.labels)
    y = np.array([names.index(label) for label in labels], dtype=np.int64)
    n_plain = len(oof.names) - (len(KNN_FEATURES) if embeddings is not None and k else 0)
    vocabulary = sorted(words_of(texts))
    bank = embeddings if embeddings is not None and k else None
    model = _export(lr, knots_x, knots_y, n_plain=n_plain, names=oof.names, labels=names,
                    vocabulary=vocabulary, bank=bank, bank_labels=y, k=k)
    p_wrong = (np.interp(lr_scores, knots_x, knots_y) if len(knots_x) else lr_scores
               ) + TIE_BREAK * lr_scores
    fold_metrics = []
    for f, (held, train) in enumerate(zip(oof.plan.held_out, oof.plan.train, strict=True)):
        fold_metrics.append(FoldMetrics(
            fold=f, n_train=len(train), n_held_out=len(held),
            local_accuracy=float(1.0 - oof.wrong[held].mean()),
            router_auroc=_auroc(oof.wrong[held], lr_scores[held])))
    digest = hashlib.sha256()
    for text, label in zip(texts, labels, strict=True):
        digest.update(json.dumps([text, label]).encode())
    sidecar = RouterSidecar(
        format_version=FORMAT_VERSION, kind=KIND_ROUTER, labels=names, features=oof.names,
        members=oof.members, knn=min(k, len(texts)) if bank is not None else 0,
        embedding_dim=None if bank is None else int(bank.shape[1]),
        model_sha256=hashlib.sha256(model).hexdigest(),
        node_model_sha256=file_sha256(model_path), data_sha256=data_sha256,
        texts_sha256=digest.hexdigest(), n_examples=len(texts), seed=seed, folds=fold_metrics,
        oof={"local_accuracy": float(1.0 - oof.wrong.mean()),
             "auroc": _auroc(oof.wrong, lr_scores), "auprc": _auprc(oof.wrong, lr_scores),
             "mean_p_wrong": float(np.mean(p_wrong)), "error_rate": float(oof.wrong.mean())},
        oof_rows=OofRows(
            gold=y.tolist(), predicted=oof.predicted.tolist(),
            probabilities=[[round(float(v), 4) for v in row] for row in oof.probabilities]),
        created=datetime.now(UTC).isoformat(timespec="seconds"), versions=_versions())
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(out, model)  # model first: a crash leaves a pair whose sha check fails
        _write_atomic(sidecar_path(out),
                      (sidecar.model_dump_json(indent=2) + "\n").encode())
    except OSError as exc:
        raise BackendError(f"cannot write {exc.filename or out}: {exc.strerror or 'I/O error'}",
                           backend=_EXPORT) from exc
    return RouterReport(sidecar=sidecar, path=out)
