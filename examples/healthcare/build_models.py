"""Build the healthcare cascade's triage and guard models from the training split.

    python examples/healthcare/build_models.py        (or: make healthcare-data)

The classifiers run after the privacy masker in the cascade, so they are trained on what they
will see: the training messages masked with the same pack (``[NAME_1]`` instead of a name).
That also keeps made-up names and phone numbers out of the models' vocabularies. The guard runs
before the masker; it is trained on masked text too, because names carry no signal for it.

- ``models/triage.onnx``: the seven classes; a text + embedding ensemble
  (``text-embedding-ensemble``: word + character TF-IDF and MiniLM logistic regressions,
  averaged) trained on all of the masked training split; its sidecar's metrics are on the masked
  dev split.
- ``models/triage-router.onnx``: the learned deferral router for the triage node
  (``shoal train-router``'s training, out of fold over the same masked rows).
- ``models/guard.onnx``: ``allow`` (every clinical or administrative class), ``injection``,
  ``off_topic``, for the ``input_guard`` agent; word TF-IDF (``tfidf-logreg``: microseconds,
  before the masker), trained on 80% of the training split and measured on the rest.

The test split is family-disjoint from both: ``data/evaluate_triage.py`` measures on it.
About a minute on two cores: masking and embedding take most of it.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from shoal.models.train import train_text_classifier
from shoal.models.train_ensemble import train_ensemble_classifier
from shoal.models.train_router import train_router
from shoal.policies import privacy

HERE = Path(__file__).resolve().parent
TRAIN = HERE / "data" / "train.jsonl"
DEV = HERE / "data" / "dev.jsonl"
MODELS = HERE / "models"
GUARD_LABELS = {"injection": "injection", "off_topic": "off_topic"}


def masked_rows(path: Path, progress: Progress | None = None) -> list[dict[str, str]]:
    detector = privacy.detector("hipaa_safe_harbor")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    task = None if progress is None else progress.add_task(f"masking {path.name}",
                                                            total=len(rows))
    out = []
    for r in rows:
        out.append({"id": r["id"], "text": detector.mask(r["text"]).masked, "label": r["label"],
                    "family": r.get("family", r["id"])})
        if progress is not None and task is not None:
            progress.advance(task)
    return out


def write_jsonl(rows: list[dict[str, str]], path: Path) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def main() -> int:
    MODELS.mkdir(exist_ok=True)
    start = time.perf_counter()
    console = Console()
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
               MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress, \
            tempfile.TemporaryDirectory() as tmp:

        def line(text: str) -> None:
            # One plain line per stage (also when stdout is not a terminal and the bar is off).
            progress.console.print(f"{time.perf_counter() - start:6.1f}s  {text}")

        line(f"masking {TRAIN.name} and {DEV.name} with hipaa_safe_harbor")
        rows, dev = masked_rows(TRAIN, progress), masked_rows(DEV, progress)
        triage_data, dev_data = Path(tmp) / "triage.jsonl", Path(tmp) / "dev.jsonl"
        guard_data = Path(tmp) / "guard.jsonl"
        write_jsonl(rows, triage_data)
        write_jsonl(dev, dev_data)
        write_jsonl([{**r, "label": GUARD_LABELS.get(r["label"], "allow")} for r in rows],
                    guard_data)

        stage = progress.add_task("triage", total=None)

        def triage_stage(name: str) -> None:
            line(f"triage: {name}")
            progress.update(stage, description=f"triage: {name}")

        report = train_ensemble_classifier(triage_data, MODELS / "triage.onnx",
                                           eval_data=dev_data, progress=triage_stage)
        progress.update(stage, description="triage: done", total=1, completed=1)
        members = ", ".join(f"{m} {a:.3f}" for m, a in
                            (report.metrics.member_accuracy or {}).items())
        line(f"triage: {report.n_examples} examples, labels {report.labels}, dev accuracy "
             f"{report.metrics.accuracy:.3f} (members alone: {members}); the test split is "
             f"family-disjoint: evaluate_triage.py")

        # The router learns when that triage model is wrong, from the same masked rows (what
        # the node reads after the masker), retraining it out of fold by message family.
        router_task = progress.add_task("triage router", total=7)

        def router_stage(name: str) -> None:
            line(f"triage router: {name}")
            progress.update(router_task, description=f"triage router: {name}", advance=1)

        routed = train_router([r["text"] for r in rows], [r["label"] for r in rows],
                              [r["family"] for r in rows], MODELS / "triage.onnx",
                              MODELS / "triage-router.onnx",
                              data_sha256=hashlib.sha256(TRAIN.read_bytes()).hexdigest(),
                              seed=0, progress=router_stage)
        progress.update(router_task, description="triage router: done", completed=7)
        line(f"triage router: {routed.summary()}")

        line("guard: fitting word TF-IDF + logistic regression")
        report = train_text_classifier(guard_data, MODELS / "guard.onnx")
        line(f"guard: {report.n_examples} examples, labels {report.labels}, held-out accuracy "
             f"{report.metrics.accuracy:.3f} (random split of train)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
