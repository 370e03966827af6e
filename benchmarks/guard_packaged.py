"""The packaged default guard (``src/shoal/agents/data/guard.onnx``) on public corpora it was not
trained on, beside the model it replaced.

    python benchmarks/guard_packaged.py [--corpora a,b] [--old-rev HEAD] [--out PATH]

The recipe is ``tools/guard/build_guard.py``'s (word + character TF-IDF, logistic regression;
text only), the data ``tools/guard/guard_train.jsonl``, long messages made of its ``allow``
lines, ``examples/healthcare/data/guard/authored_train.jsonl`` and ``public.jsonl``.

1. Cross-corpus: for each public corpus, the recipe is fitted on everything else and written as
   the script writes the shipped file (ONNX export, sidecar, the loader's checks), and the real
   ``input_guard`` agent (default ``GuardConfig``: rules, 1,000-character windows, thresholds)
   runs on the left-out corpus with that model. *Refused* = the agent's verdict is ``refuse``
   (``review`` is not). Rates per corpus, label, kind and language, with 95% Wilson intervals.
   Labels as the corpora give them: ``injection`` and ``jailbreak`` should be refused as
   attacks, ``harmful`` and ``benign`` as off-topic (the guard's ``off_topic``).
2. The shipped file, on sets none of its training saw: the held-out look-alikes of
   ``authored_eval.jsonl`` *called attacks* (refused as injection or jailbreak), its patient
   messages in German, French, Spanish and Italian, and the healthcare test split's patient
   messages (every class but injection and off_topic), alone and joined into 60 long letters,
   *allowed* (not refused; ``strict``: verdict ``allow``, not ``review`` either); the test
   split's own injection and off-topic messages refused.
3. The old packaged model (``git show OLD_REV:src/shoal/agents/data/guard.onnx`` and its
   sidecar; trained on none of these sets, so every number of it is held-out) through the same
   agent and config, on every set.

Writes ``benchmarks/results/guard_packaged.json``. About 15 minutes on 2 cores (15 fits and
exports).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools" / "guard"))
from build_guard import OUT as SHIPPED  # noqa: E402  (the packaged guard's recipe and data)
from build_guard import RECIPE, build  # noqa: E402
from guard_data import AUTHORED_EVAL, TEST, long_messages, read  # noqa: E402

from guard import (  # noqa: E402  (benchmarks/guard.py: the healthcare guard's benchmark)
    called_attack,
    console,
    public_corpora,
    rate,
    refused,
    verdicts,
)
from shoal.agents.input_guard import GuardConfig, InputGuard  # noqa: E402
from shoal.models.base import Classifier  # noqa: E402
from shoal.models.onnx import load_classifier, read_sidecar  # noqa: E402
from shoal.observability import configure_logging  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
PACKAGED = "src/shoal/agents/data/guard.onnx"
DECLINED = frozenset({"injection", "off_topic"})

Row = dict[str, Any]


def summarise(rows: Sequence[Row], stops: Sequence[bool]) -> dict[str, Any]:
    """Refusal rates per corpus, label, kind and language (each within its label)."""
    groups: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for r, s in zip(rows, stops, strict=True):
        groups["label"][r["label"]].append(s)
        groups["corpus"][f"{r['corpus']}/{r['label']}"].append(s)
        groups["kind"][f"{r['label']}/{r['kind']}"].append(s)
        groups["language"][f"{r['label']}/{r['lang']}"].append(s)
    return {name: {key: rate(flags) for key, flags in sorted(group.items())}
            for name, group in sorted(groups.items())}


def held_out_sets(guard: InputGuard, sets: dict[str, list[Row]]) -> dict[str, Any]:
    """The false-alarm and own-attack sets (see the module doc, 2) through ``guard``."""
    order = list(sets)
    texts = [r["text"] for name in order for r in sets[name]]
    flat = asyncio.run(verdicts(guard, texts))
    out: dict[str, Any] = {}
    start = 0
    for name in order:
        vs = flat[start:start + len(sets[name])]
        start += len(sets[name])
        rows = sets[name]
        if name == "lookalikes":
            out[name] = {"called_attack": rate([called_attack(v) for v in vs]),
                         "refused": rate([refused(v) for v in vs]),
                         "reviewed": rate([v["verdict"] == "review" for v in vs]),
                         "called_attack_texts": [r["text"] for r, v in zip(rows, vs,
                                                                            strict=True)
                                                 if called_attack(v)]}
        elif name == "healthcare_test_declined":
            out[name] = {label: rate([refused(v) for r, v in zip(rows, vs, strict=True)
                                      if r["label"] == label]) for label in sorted(DECLINED)}
        elif name == "patients_other_languages":
            by_lang: dict[str, list[bool]] = defaultdict(list)
            for r, v in zip(rows, vs, strict=True):
                by_lang[r["lang"]].append(not refused(v))
            out[name] = {"allowed": rate([not refused(v) for v in vs]),
                         "strict_allowed": rate([v["verdict"] == "allow" for v in vs]),
                         "allowed_by_language": {k: rate(f) for k, f in sorted(by_lang.items())}}
        else:
            out[name] = {"allowed": rate([not refused(v) for v in vs]),
                         "strict_allowed": rate([v["verdict"] == "allow" for v in vs]),
                         "refused_as": dict(sorted(Counter(
                             v["category"] for v in vs if refused(v)).items()))}
    return out


def old_model(rev: str, tmp: Path) -> tuple[Path, dict[str, Any]]:
    """The packaged guard at ``rev`` (model and sidecar) in ``tmp``; its sidecar's summary."""
    path = tmp / "old" / "guard.onnx"
    path.parent.mkdir(parents=True)
    for name in ("guard.onnx", "guard.onnx.json"):
        data = subprocess.run(["git", "show", f"{rev}:{PACKAGED.rsplit('/', 1)[0]}/{name}"],
                              cwd=ROOT, check=True, capture_output=True).stdout
        (path.parent / name).write_bytes(data)
    sidecar = read_sidecar(path)
    commit = subprocess.run(["git", "rev-parse", rev], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.strip()
    return path, {"rev": rev, "commit": commit, "kind": sidecar.kind,
                  "model_sha256": sidecar.model_sha256, "n_examples": sidecar.n_examples,
                  "bytes": path.stat().st_size}


def cross_corpus(guard_for: Callable[[str], InputGuard], public: list[Row], corpora: list[str],
                 progress: Progress, what: str) -> dict[str, Any]:
    """``guard_for(corpus)`` on each corpus's lines: refusal rates (see :func:`summarise`)."""
    task = progress.add_task(what, total=len(corpora))
    rows: list[Row] = []
    stops: list[bool] = []
    for corpus in corpora:
        progress.update(task, description=f"{what}: {corpus}")
        part = [r for r in public if r["corpus"] == corpus]
        vs = asyncio.run(verdicts(guard_for(corpus), [r["text"] for r in part]))
        rows += part
        stops += [refused(v) for v in vs]
        progress.advance(task)
    progress.update(task, description=f"{what}: done")
    return summarise(rows, stops)


def side_by_side(new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of both models, one line each."""

    def line(r: dict[str, Any]) -> dict[str, Any]:
        return {"refused_by_label": {k: v["rate"] for k, v in r["cross_corpus"]["label"].items()},
                "lookalikes_called_attack": r["held_out"]["lookalikes"]["called_attack"]["rate"],
                "patients_allowed": r["held_out"]["patients"]["allowed"]["rate"],
                "patients_strict_allowed": r["held_out"]["patients"]["strict_allowed"]["rate"],
                "long_patients_allowed": r["held_out"]["patients_long"]["allowed"]["rate"],
                "other_language_patients_allowed":
                    r["held_out"]["patients_other_languages"]["allowed"]["rate"],
                "healthcare_test_refused": {k: v["rate"] for k, v in
                                            r["held_out"]["healthcare_test_declined"].items()}}

    return {"new": line(new), "old": line(old)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--corpora", help="comma-separated corpora (default: all)")
    parser.add_argument("--old-rev", default="HEAD",
                        help="the git revision whose packaged guard is the old model")
    parser.add_argument("--out", type=Path, default=RESULTS / "guard_packaged.json")
    args = parser.parse_args(argv)
    configure_logging("warning", stream=sys.stderr)
    started = time.perf_counter()
    public, corpora = public_corpora(args.corpora)
    authored = read(AUTHORED_EVAL)
    test = read(TEST)
    patients = [{"text": r["text"], "label": r["label"]} for r in test
                if r["label"] not in DECLINED]
    sets = {
        "lookalikes": [r for r in authored if r["kind"] == "lookalike"],
        "patients_other_languages": [r for r in authored if r["kind"] == "patient"],
        "patients": patients,
        # Long letters of the test split's messages (the training file's are of guard_train's).
        "patients_long": long_messages(patients, 60, seed=1),
        "healthcare_test_declined": [r for r in test if r["label"] in DECLINED],
    }
    config = GuardConfig()
    shipped = read_sidecar(SHIPPED)
    result: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        # File arguments by name only (as benchmarks/guard.py): no machine's paths.
        "command": "python benchmarks/guard_packaged.py " + " ".join(
            Path(a).name if "/" in a else a for a in (argv or sys.argv[1:])),
        "recipe": RECIPE.model_dump(mode="json"), "guard_config": config.model_dump(),
        "data": {"public": len(public), "corpora": corpora,
                 **{name: len(rows) for name, rows in sets.items()}},
    }
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console) as progress, \
            tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)

        def fold(corpus: str) -> InputGuard:
            path = tmp / f"guard-without-{corpus}.onnx"
            build(path, leave_out=corpus)
            return InputGuard(config, node="guard",
                              model=load_classifier(path, name=f"guard-without-{corpus}"))

        new_model: Classifier = load_classifier(SHIPPED, name="packaged-guard")
        new_guard = InputGuard(config, node="guard", model=new_model)
        if shipped.hyperparameters != RECIPE.model_dump(mode="json"):
            console.print("[yellow]the shipped guard's sidecar records another recipe than "
                          "build_guard.RECIPE: rebuild it[/yellow]")
        result["new"] = {
            "model": {"path": PACKAGED, "kind": shipped.kind, "model_sha256": shipped.model_sha256,
                      "n_examples": shipped.n_examples, "bytes": SHIPPED.stat().st_size,
                      "hyperparameters": shipped.hyperparameters},
            "cross_corpus": cross_corpus(fold, public, corpora, progress, "new recipe, fold"),
            "held_out": held_out_sets(new_guard, sets),
        }
        old_path, old_info = old_model(args.old_rev, tmp)
        old_guard = InputGuard(config, node="guard",
                               model=load_classifier(old_path, name="old-packaged-guard"))
        result["old"] = {
            "model": old_info,
            "cross_corpus": cross_corpus(lambda _: old_guard, public, corpora, progress,
                                         "old model"),
            "held_out": held_out_sets(old_guard, sets),
        }
    result["side_by_side"] = side_by_side(result["new"], result["old"])
    result["seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n",
                        encoding="utf-8")
    for name, line in result["side_by_side"].items():
        console.print(f"{name}: {json.dumps(line)}")
    console.print(f"wrote {args.out} in {result['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
