"""Build the healthcare cascade's triage and guard models from the training split.

    python examples/healthcare/build_models.py        (or: make healthcare-data)

The classifiers run after the privacy masker in the cascade, so they are trained on what they
will see: the training messages masked with the same pack (``[NAME_1]`` instead of a name).
That also keeps made-up names and phone numbers out of the triage models' vocabularies. The
guard runs before the masker and reads raw text, so it is trained on raw text.

- ``models/triage.onnx``: the seven classes; a text + embedding ensemble
  (``text-embedding-ensemble``: word + character TF-IDF and MiniLM logistic regressions,
  averaged) trained on all of the masked training split plus the masked benign look-alikes of
  ``data/lookalikes_train.jsonl`` (``data/make_lookalikes.py``: patient messages that use
  "ignore", "system", "instructions", "override"... innocently, emergencies included; without
  them the model took those words alone for an injection); its sidecar's metrics are on the
  masked dev split.
- ``models/clause.onnx``: the same seven classes and recipe for the ``split`` node, which labels
  a message clause by clause (``shoal.agents.splitting``): the triage model's rows, the alarm
  look-alikes of ``data/alarms_train.jsonl`` (``data/make_alarms.py``: "nothing urgent", "since
  my ER visit for chest pain", "no chest pain, just...", and hedged real emergencies), and, as
  rows of their own, the clauses of every training message with one request that is no
  emergency, each with its message's label. The triage model, trained on whole messages, gave
  "Nothing urgent." or "the chest pain was only heartburn" alone 0.5 to 0.96 emergency and the
  splitter made a "call 911" step of it: on the alarm look-alikes of dev (families it never
  saw) 31 of 70 messages with no emergency got one; with this model 11
  (``benchmarks/plan.py --tune``). The triage model stays as it is: its thresholds were
  calibrated on dev (``shoal calibrate``). Emergency clauses are not added alone: a clause
  such as "We're at home." of an emergency message is no emergency. An eighth label,
  ``aside``, is learnt from ``data/asides_train.jsonl`` (``data/make_asides.py``: small talk
  such as "Hope you had a good weekend!"): the split node makes no step of such a sentence
  (before, "Hope you are doing well." alone was an ``injection`` at 0.93).
- ``models/triage-router.onnx``: the learned deferral router for the triage node
  (``shoal train-router``'s training, out of fold over the same masked rows).
- ``models/guard.onnx``: ``allow``, ``injection``, ``jailbreak``, ``off_topic``, for the
  ``input_guard`` agent: the text + embedding ensemble with the embedding weighted 0.7
  (``data/guard/guard_data.py``: ``RECIPE``), trained on the raw (unmasked: the guard runs
  before the masker) training split, the public prompt-injection, jailbreak and harmful-request
  corpora in ``data/guard/public.jsonl`` and the look-alikes in ``data/guard/
  authored_train.jsonl``; its sidecar's metrics are on the dev split. ``benchmarks/guard.py``
  measures it corpus by corpus, each left out of training.

The test split is family-disjoint from both: ``data/evaluate_triage.py`` measures on it.
``--only guard`` (or ``triage``, ``clause``) rebuilds one model and leaves the others' files
alone. About four minutes on two cores: masking and embedding take most of it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Callable
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

from shoal.agents.splitting import is_filler, segments
from shoal.models.train_ensemble import train_ensemble_classifier
from shoal.models.train_router import train_router
from shoal.policies import privacy

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "data" / "guard"))
from guard_data import (  # noqa: E402  (the data folder's helper)
    RECIPE,
    model_text,
    read,
    training_rows,
)

TRAIN = HERE / "data" / "train.jsonl"
LOOKALIKES = HERE / "data" / "lookalikes_train.jsonl"
"""Benign look-alikes (``data/make_lookalikes.py``), added to the triage model's training rows."""
ALARMS = HERE / "data" / "alarms_train.jsonl"
"""Alarm look-alikes (``data/make_alarms.py``), added to the clause model's training rows."""
ASIDES = HERE / "data" / "asides_train.jsonl"
"""Sentences that ask for nothing (``data/make_asides.py``): the clause model's ``aside``
label."""
DEV = HERE / "data" / "dev.jsonl"
MODELS = HERE / "models"
GUARD_LABELS = {"injection": "injection", "off_topic": "off_topic"}
PUBLIC = HERE / "data" / "guard" / "public.jsonl"


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--only", choices=("triage", "clause", "guard"),
                        help="rebuild one model (default: all three)")
    args = parser.parse_args(argv)
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

        if args.only in (None, "guard"):
            guard(Path(tmp), progress, line)
        if args.only == "guard":
            return 0
        line(f"masking {TRAIN.name}, {LOOKALIKES.name} and {DEV.name} with hipaa_safe_harbor")
        rows = masked_rows(TRAIN, progress) + masked_rows(LOOKALIKES, progress)
        dev = masked_rows(DEV, progress)
        triage_data, dev_data = Path(tmp) / "triage.jsonl", Path(tmp) / "dev.jsonl"
        write_jsonl(rows, triage_data)
        write_jsonl(dev, dev_data)
        if args.only in (None, "clause"):
            line(f"masking {ALARMS.name} and {ASIDES.name}")
            clause(rows, masked_rows(ALARMS, progress), masked_rows(ASIDES, progress),
                   dev_data, Path(tmp), progress, line)
        if args.only == "clause":
            return 0

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
                              data_sha256=hashlib.sha256(TRAIN.read_bytes()
                                                         + LOOKALIKES.read_bytes()).hexdigest(),
                              seed=0, progress=router_stage)
        progress.update(router_task, description="triage router: done", completed=7)
        line(f"triage router: {routed.summary()}")

    return 0


def clause_rows(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """``rows``, and the clauses of each one that is no emergency and cut into several, each
    with its message's label (greetings and sign-offs left out, as the splitter leaves them)."""
    out = [{"text": r["text"], "label": r["label"]} for r in rows]
    for r in rows:
        if r["label"] == "emergency":
            continue
        found = [s.text for s in segments(r["text"]) if not is_filler(s.text)]
        if len(found) > 1:
            out += [{"text": text, "label": r["label"]} for text in found]
    return out


def clause(rows: list[dict[str, str]], alarms: list[dict[str, str]],
           asides: list[dict[str, str]], dev: Path, tmp: Path, progress: Progress,
           line: Callable[[str], None]) -> None:
    """Train ``models/clause.onnx`` on the masked triage rows, the alarm look-alikes and their
    clauses, and the asides (label ``aside``); measure it on the dev split (whole
    messages)."""
    data = tmp / "clause.jsonl"
    clauses = clause_rows(rows + alarms) + [{"text": r["text"], "label": r["label"]}
                                            for r in asides]
    write_jsonl(clauses, data)
    task = progress.add_task("clause", total=None)

    def clause_stage(name: str) -> None:
        line(f"clause: {name}")
        progress.update(task, description=f"clause: {name}")

    report = train_ensemble_classifier(data, MODELS / "clause.onnx", eval_data=dev,
                                       progress=clause_stage)
    progress.update(task, description="clause: done", total=1, completed=1)
    line(f"clause: {report.n_examples} examples ({len(rows) + len(alarms)} messages, "
         f"{len(asides)} asides, the rest their clauses), dev accuracy "
         f"{report.metrics.accuracy:.3f} on whole messages; "
         "benchmarks/plan.py --tune measures it clause by clause")


def guard(tmp: Path, progress: Progress, line: Callable[[str], None]) -> None:
    """Train ``models/guard.onnx`` on the raw training split, the public corpora and the
    authored look-alikes; measure it on the dev split (guard labels)."""
    data, dev = tmp / "guard.jsonl", tmp / "guard-dev.jsonl"
    write_jsonl(training_rows(read(PUBLIC)), data)
    write_jsonl([{"text": model_text(r["text"]), "label": GUARD_LABELS.get(r["label"], "allow")}
                 for r in read(DEV)], dev)
    task = progress.add_task("guard", total=None)

    def guard_stage(name: str) -> None:
        line(f"guard: {name}")
        progress.update(task, description=f"guard: {name}")

    report = train_ensemble_classifier(data, MODELS / "guard.onnx", eval_data=dev,
                                       hyperparameters=RECIPE, progress=guard_stage)
    progress.update(task, description="guard: done", total=1, completed=1)
    line(f"guard: {report.n_examples} examples, labels {report.labels}, dev accuracy "
         f"{report.metrics.accuracy:.3f}; benchmarks/guard.py measures it corpus by corpus")


if __name__ == "__main__":
    sys.exit(main())
