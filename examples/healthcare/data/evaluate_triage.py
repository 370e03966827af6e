"""Evaluate the triage classifier on a split of the healthcare messages.

    python examples/healthcare/data/evaluate_triage.py [SPLIT.jsonl] [--model MODEL.onnx]
                                                       [--no-mask]

Defaults: ``test.jsonl`` next to this file and ``examples/healthcare/models/triage.onnx``. The
messages are masked with the ``hipaa_safe_harbor`` pack first, as the cascade's masker does
before triage (and as the models were trained); ``--no-mask`` classifies the raw text. The
model is opened through shoal's ONNX backend (``shoal.models.load_classifier``) and queried as
the ``classifier`` agent does, so any kind works (``tfidf-logreg``, ``embedding-centroid``,
``text-embedding-ensemble``; an ensemble's members are scored too). Prints accuracy overall, on
the ``hard`` subset and per label (the label's recall), model time per message, the most
frequent confusions, the confidence (top probability) of right and wrong answers, and what a
confidence threshold would send to the planner: the share escalated and the accuracy of what
stays local.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

from shoal.models import load_classifier
from shoal.models.base import SignalClassifier
from shoal.policies import privacy

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE / "test.jsonl"
DEFAULT_MODEL = HERE.parent / "models" / "triage.onnx"
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
BINS = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0001)


def _accuracy(hits: np.ndarray) -> str:
    return f"{hits.mean():.1%} ({int(hits.sum())}/{hits.size})" if hits.size else "-"


def evaluate(data: Path, model: Path, *, mask: bool = True) -> dict[str, float]:
    rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines() if line]
    texts = [r["text"] for r in rows]
    if mask:
        detector = privacy.detector("hipaa_safe_harbor")
        texts = [detector.mask(text).masked for text in texts]
    classifier = load_classifier(model)
    labels = classifier.labels
    members: dict[str, np.ndarray] = {}
    start = time.perf_counter()
    if isinstance(classifier, SignalClassifier):
        signals = asyncio.run(classifier.classify_signals(texts))
        probs, members = signals.probabilities, dict(signals.members)
    else:
        answers = asyncio.run(classifier.classify(texts))
        probs = np.array([[answer[label] for label in labels] for answer in answers])
    ms_per_message = (time.perf_counter() - start) * 1000 / max(len(texts), 1)
    predicted = [labels[i] for i in probs.argmax(axis=1)]
    confidence = probs.max(axis=1)
    truth = [r["label"] for r in rows]
    hits = np.array([p == t for p, t in zip(predicted, truth, strict=True)])
    hard = np.array([bool(r.get("hard")) for r in rows])

    print(f"{data}: {len(rows)} messages ({'masked' if mask else 'raw text'}), model {model}")
    print(f"accuracy        {_accuracy(hits)}")
    print(f"  ordinary      {_accuracy(hits[~hard])}")
    print(f"  hard          {_accuracy(hits[hard])}")
    for name, member in members.items():
        member_hits = np.array([labels[i] == t for i, t in
                                zip(member.argmax(axis=1), truth, strict=True)])
        print(f"  member {name:<9} {_accuracy(member_hits)}")
    print(f"model time      {ms_per_message:.2f} ms/message (one batch, embedding included)")
    width = max(len(label) for label in labels)
    print(f"\n{'label':<{width}}  recall             hard")
    recall = {}
    for label in sorted(set(truth), key=labels.index):
        in_label = np.array([t == label for t in truth])
        recall[label] = float(hits[in_label].mean())
        print(f"{label:<{width}}  {_accuracy(hits[in_label]):<17}  "
              f"{_accuracy(hits[in_label & hard])}")

    confusions = Counter((t, p) for t, p in zip(truth, predicted, strict=True) if t != p)
    print("\nmost frequent confusions (gold -> predicted)")
    for (t, p), n in confusions.most_common(8):
        print(f"  {t} -> {p}: {n}")

    print("\nconfidence      right   wrong")
    for q in (0.1, 0.25, 0.5, 0.75, 0.9):
        right = np.quantile(confidence[hits], q) if hits.any() else float("nan")
        wrong = np.quantile(confidence[~hits], q) if (~hits).any() else float("nan")
        print(f"  p{int(q * 100):<2}          {right:.2f}    {wrong:.2f}")
    print("  bin          right   wrong")
    for lo, hi in itertools.pairwise(BINS):
        in_bin = (confidence >= lo) & (confidence < hi)
        print(f"  [{lo:.1f}, {min(hi, 1.0):.1f})   {int((in_bin & hits).sum()):5d}   "
              f"{int((in_bin & ~hits).sum()):5d}")

    print("\nescalate below  escalated  local accuracy  wrong answers escalated")
    n_wrong = int((~hits).sum())
    for t in THRESHOLDS:
        low = confidence < t
        caught = int((low & ~hits).sum())
        print(f"  {t:.1f}            {low.mean():7.1%}    {_accuracy(hits[~low]):<14}  "
              f"{caught}/{n_wrong}")
    return {"accuracy": float(hits.mean()), "hard_accuracy": float(hits[hard].mean())
            if hard.any() else float("nan"), "ms_per_message": ms_per_message,
            **{f"recall_{label}": value for label, value in recall.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--no-mask", action="store_true",
                        help="classify the raw text (the cascade masks before triage)")
    args = parser.parse_args()
    evaluate(args.data, args.model, mask=not args.no_mask)


if __name__ == "__main__":
    main()
