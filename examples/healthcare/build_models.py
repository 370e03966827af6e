"""Build the healthcare cascade's triage and guard models from the training split.

    python examples/healthcare/build_models.py        (or: make healthcare-data)

The classifiers run after the privacy masker in the cascade, so they are trained on what they
will see: the training messages masked with the same pack (``[NAME_1]`` instead of a name).
That also keeps made-up names and phone numbers out of the models' vocabularies. The guard runs
before the masker; it is trained on masked text too, because names carry no signal for it.

- ``models/triage.onnx``: the seven classes.
- ``models/guard.onnx``: ``allow`` (every clinical or administrative class), ``injection``,
  ``off_topic``, for the ``input_guard`` agent.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from shoal.models.train import train_text_classifier
from shoal.policies import privacy

HERE = Path(__file__).resolve().parent
TRAIN = HERE / "data" / "train.jsonl"
MODELS = HERE / "models"
GUARD_LABELS = {"injection": "injection", "off_topic": "off_topic"}


def masked_rows(path: Path) -> list[dict[str, str]]:
    detector = privacy.detector("hipaa_safe_harbor")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [{"id": r["id"], "text": detector.mask(r["text"]).masked, "label": r["label"]}
            for r in rows]


def write_jsonl(rows: list[dict[str, str]], path: Path) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def main() -> int:
    MODELS.mkdir(exist_ok=True)
    rows = masked_rows(TRAIN)
    with tempfile.TemporaryDirectory() as tmp:
        triage_data, guard_data = Path(tmp) / "triage.jsonl", Path(tmp) / "guard.jsonl"
        write_jsonl(rows, triage_data)
        write_jsonl([{**r, "label": GUARD_LABELS.get(r["label"], "allow")} for r in rows],
                    guard_data)
        for name, data in (("triage", triage_data), ("guard", guard_data)):
            report = train_text_classifier(data, MODELS / f"{name}.onnx")
            print(f"{name}: {report.n_examples} examples, labels {report.labels}, held-out "
                  f"accuracy {report.metrics.accuracy:.3f} (random split of train; the test "
                  f"split is family-disjoint: evaluate_triage.py)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
