"""A version of a node's model measured on the frozen evaluation split, the way the node runs it.

Every record goes through the node's own escalation decision (:func:`shoal.policies.escalation.
decide`: the confidence threshold, the learned router, the critical labels' floors and red
flags), with an always-right planner for what escalates, so the numbers are the node's: local
accuracy, the share that would go to the planner, the cascade's accuracy, and for each critical
label the recall the node guarantees (the local label, or the critical label firing: past any
budget). The promotion gate compares two versions on these numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shoal.models.base import Classifier, SignalClassifier
from shoal.models.onnx import load_classifier
from shoal.models.router import load_router
from shoal.policies.escalation import NodeRule, decide

__all__ = ["BelowChoice", "EvalMetrics", "choose_below", "evaluate_version"]

_BATCH = 64


@dataclass(frozen=True)
class EvalMetrics:
    """One version on one split. Recalls are None for a label the split lacks."""

    n: int
    accuracy: float
    """The local model's top label against the gold label."""
    share: float
    """Records the node would send to the planner."""
    cascade_accuracy: float
    """Right locally, or escalated (an always-right planner)."""
    recall: dict[str, float | None] = field(default_factory=dict)
    """Local recall per label."""
    critical_recall: dict[str, float | None] = field(default_factory=dict)
    """Per critical label: gold records labelled so locally or made critical by the rule."""
    model_recall: dict[str, float | None] = field(default_factory=dict)
    """Per critical label with a floor: gold records the model catches on its own (labelled so
    locally, or P(label) at or above the floor), red flags left out. Where every record of the
    label carries a red flag, ``critical_recall`` is 1 whatever the model does: this is the
    model's part of the net."""
    predicted: list[str] = field(default_factory=list, repr=False)
    confidence: list[float] = field(default_factory=list, repr=False)
    wants: list[bool] = field(default_factory=list, repr=False)
    """Per record: the node's decision sends it to the planner."""

    def as_dict(self) -> dict[str, object]:
        return {"n": self.n, "accuracy": round(self.accuracy, 4),
                "share": round(self.share, 4),
                "cascade_accuracy": round(self.cascade_accuracy, 4),
                "recall": {k: None if v is None else round(v, 4) for k, v in self.recall.items()},
                "critical_recall": {k: None if v is None else round(v, 4)
                                    for k, v in self.critical_recall.items()},
                "model_recall": {k: None if v is None else round(v, 4)
                                 for k, v in self.model_recall.items()}}


async def _probabilities(model: Classifier, texts: Sequence[str]
                         ) -> tuple[np.ndarray, list[object]]:
    rows: list[np.ndarray] = []
    signals: list[object] = []
    for start in range(0, len(texts), _BATCH):
        chunk = list(texts[start:start + _BATCH])
        if isinstance(model, SignalClassifier):
            sig = await model.classify_signals(chunk)
            rows.append(np.asarray(sig.probabilities, dtype=np.float64))
            signals.append(sig)
        else:
            probs = await model.classify(chunk)
            rows.append(np.array([[p[label] for label in model.labels] for p in probs]))
    return (np.vstack(rows) if rows else np.zeros((0, len(model.labels)))), signals


async def evaluate_version(model_path: str | Path, texts: Sequence[str], gold: Sequence[str],
                           rule: NodeRule | None, *, router_path: str | Path | None = None
                           ) -> EvalMetrics:
    """Measure the classifier at ``model_path`` (with ``router_path``, its learned router, when
    the node has one) on the node's input ``texts`` with ``gold`` labels under ``rule``."""
    if len(texts) != len(gold):
        raise ValueError(f"{len(texts)} texts but {len(gold)} gold labels")
    model = load_classifier(model_path)
    labels = list(model.labels)
    probs, signals = await _probabilities(model, texts)
    p_wrong: list[float | None] = [None] * len(texts)
    if router_path is not None and rule is not None and rule.router is not None:
        router = load_router(router_path)
        scores: list[float] = []
        for start, sig in zip(range(0, len(texts), _BATCH), signals, strict=True):
            chunk = list(texts[start:start + _BATCH])
            scores += (await router.p_wrong(sig, chunk)).tolist()  # type: ignore[arg-type]
        p_wrong = list(scores)
    predicted: list[str] = []
    confidence: list[float] = []
    wants: list[bool] = []
    critical: list[str | None] = []
    for i, text in enumerate(texts):
        row = {label: float(p) for label, p in zip(labels, probs[i], strict=True)}
        best = max(sorted(row), key=lambda k: row[k])
        decision = decide(rule, confidence=row[best], flagged=False, note=None, label=best,
                          probabilities=row, text=text, p_wrong=p_wrong[i])
        predicted.append(best)
        confidence.append(row[best])
        wants.append(decision.wants)
        critical.append(decision.critical)
    n = len(texts)
    right = [p == g for p, g in zip(predicted, gold, strict=True)]

    def recall(label: str, hit: Sequence[bool]) -> float | None:
        rows = [i for i, g in enumerate(gold) if g == label]
        return None if not rows else sum(hit[i] for i in rows) / len(rows)

    critical_labels = sorted(rule.critical) if rule is not None else []
    return EvalMetrics(
        n=n,
        accuracy=sum(right) / n if n else 0.0,
        share=sum(wants) / n if n else 0.0,
        cascade_accuracy=sum(r or w for r, w in zip(right, wants, strict=True)) / n if n else 0.0,
        recall={label: recall(label, right) for label in labels},
        critical_recall={label: recall(label, [p == label or c == label
                                               for p, c in zip(predicted, critical,
                                                               strict=True)])
                         for label in critical_labels},
        model_recall={label: recall(label, [
            p == label or (label in labels and bool(probs[i, labels.index(label)] >= floor))
            for i, p in enumerate(predicted)])
            for label in critical_labels
            if rule is not None and (floor := rule.critical[label].floor) is not None},
        predicted=predicted, confidence=confidence, wants=wants)


@dataclass(frozen=True)
class BelowChoice:
    """A confidence threshold chosen for a cascade accuracy target, and what it does."""

    below: float
    target_accuracy: float
    cascade_accuracy: float
    share: float
    met: bool
    n: int

    def as_dict(self) -> dict[str, object]:
        return {"threshold": round(self.below, 6), "target_accuracy": self.target_accuracy,
                "cascade_accuracy": round(self.cascade_accuracy, 4),
                "share": round(self.share, 4), "met": self.met, "n": self.n}


async def choose_below(model_path: str | Path, texts: Sequence[str], gold: Sequence[str],
                       rule: NodeRule, target_accuracy: float, *,
                       router_path: str | Path | None = None) -> BelowChoice:
    """The smallest confidence threshold (``below``) at which the node's cascade reaches
    ``target_accuracy`` on ``texts``: what ``shoal calibrate`` does for the graph's own model,
    with every other part of ``rule`` (critical floors, red flags, router) as it is. When no
    threshold reaches the target, 1.0 (escalate all but the surest) with ``met`` false."""
    metrics = await evaluate_version(model_path, texts, gold, rule.model_copy(
        update={"below": None}), router_path=router_path)
    right = np.array([p == g for p, g in zip(metrics.predicted, gold, strict=True)], dtype=bool)
    other = np.array(metrics.wants, dtype=bool)  # floors, red flags, router: they stay
    confidence = np.array(metrics.confidence)
    n = max(len(texts), 1)
    for below in [*sorted({0.0, *map(float, confidence)}), 1.0]:
        escalated = other | (confidence < below)
        accuracy = float((right | escalated).sum()) / n
        if accuracy >= target_accuracy - 1e-12:
            return BelowChoice(below, target_accuracy, accuracy,
                               float(escalated.sum()) / n, True, len(texts))
    escalated = other | (confidence < 1.0)
    return BelowChoice(1.0, target_accuracy, float((right | escalated).sum()) / n,
                       float(escalated.sum()) / n, False, len(texts))
