"""The healthcare guard's data, shared by ``build_models.py`` (training), ``benchmarks/guard.py``
(measuring) and the tests: which files, which guard label each line gets, and the recipe.

Guard labels (the ``input_guard`` agent refuses ``injection`` and ``jailbreak`` as attacks and
``off_topic`` as off-topic; ``allow`` passes):

- ``injection``, ``jailbreak``: as the public corpora label them;
- ``harmful`` requests and ``benign`` general prompts from the public corpora -> ``off_topic``:
  neither belongs in a clinic's inbox, and as off-topic they keep the guard's emergency valve
  (a message naming a crisis is never refused as off-topic), which an attack label would not;
- ``patient`` (the look-alikes and patient messages written for this project) -> ``allow``;
- the healthcare splits: ``injection`` and ``off_topic`` as they are, every clinical or
  administrative class -> ``allow``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from shoal.agents.input_guard import normalise, strip_special
from shoal.models.ensemble import MEMBER_EMBEDDING, MEMBER_TEXT
from shoal.models.train_ensemble import EnsembleHyperparameters

HERE = Path(__file__).resolve().parent
PUBLIC = HERE / "public.jsonl"
AUTHORED_TRAIN = HERE / "authored_train.jsonl"
AUTHORED_EVAL = HERE / "authored_eval.jsonl"
SOURCES = HERE / "sources.json"
HEALTHCARE = HERE.parent
TRAIN = HEALTHCARE / "train.jsonl"
TEST = HEALTHCARE / "test.jsonl"

LABELS = ("injection", "jailbreak", "harmful", "benign", "patient")
GUARD_LABEL = {"injection": "injection", "jailbreak": "jailbreak", "harmful": "off_topic",
               "benign": "off_topic", "patient": "allow"}
HEALTHCARE_LABEL = {"injection": "injection", "off_topic": "off_topic"}
ATTACKS = frozenset({"injection", "jailbreak"})

TRAIN_CHARS = 2000
"""Training texts are cut here: the guard reads a long message in 1,000-character windows
(``GuardConfig.window_chars``) besides the whole, and MiniLM reads 256 tokens, so the rest of a
long jailbreak adds fitting time (character n-grams of megabytes) and nothing the model uses."""

RECIPE = EnsembleHyperparameters(weights={MEMBER_TEXT: 0.3, MEMBER_EMBEDDING: 0.7})
"""Word + character TF-IDF and MiniLM logistic regressions, the embedding weighted 0.7: left-out
corpora of short or reworded attacks (promptwl, spikee, the multilingual payloads) are caught
by meaning far more often than by n-grams, while the n-grams keep long role-play jailbreaks."""


def read(path: Path) -> list[dict[str, Any]]:
    # split("\n"), not splitlines(): texts keep U+2028 and friends, which splitlines() breaks on.
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n")
            if line.strip()]


def model_text(text: str) -> str:
    """A text as the guard's classifier reads it (chat tokens out, NFKC, no invisibles)."""
    return normalise(strip_special(text))


def guard_label(row: dict[str, Any]) -> str:
    """The guard label of a line of ``public.jsonl``, the authored files or a healthcare
    split."""
    if row.get("label") in GUARD_LABEL and "corpus" in row:
        return GUARD_LABEL[row["label"]]
    return HEALTHCARE_LABEL.get(str(row["label"]), "allow")


def long_messages(rows: list[dict[str, Any]], n: int, *, seed: int) -> list[dict[str, Any]]:
    """``n`` long patient messages, each 4 to 9 of ``rows``' allowed messages joined as
    paragraphs (a letter about several things). Public jailbreaks are long and clinic messages
    short, so without these a model learns that length alone is an attack."""
    allowed = [r for r in rows if guard_label(r) == "allow"]
    rng = random.Random(seed)
    out = []
    for i in range(n):
        parts = rng.sample(allowed, rng.randint(4, 9))
        out.append({"id": f"long-{seed}-{i}", "text": "\n\n".join(p["text"] for p in parts),
                    "label": "patient", "kind": "long", "corpus": "long-patient"})
    return out


def training_rows(public: list[dict[str, Any]], *, leave_out: str | None = None,
                  ) -> list[dict[str, str]]:
    """The guard's training lines (``text``, ``label``): the healthcare train split (and long
    messages made of it), the authored training file and every public corpus but
    ``leave_out``."""
    train = read(TRAIN)
    rows = (train + long_messages(train, 150, seed=0) + read(AUTHORED_TRAIN)
            + [r for r in public if r["corpus"] != leave_out])
    out = [{"text": model_text(r["text"])[:TRAIN_CHARS].strip(), "label": guard_label(r)}
           for r in rows]
    # A line that is nothing but chat tokens is empty once they are out (the rules judge those).
    return [r for r in out if r["text"]]


def packaged_training_rows(own: list[dict[str, Any]], public: list[dict[str, Any]], *,
                           leave_out: str | None = None) -> list[dict[str, str]]:
    """The packaged default guard's training lines (``tools/guard/build_guard.py``,
    ``benchmarks/guard_packaged.py``): ``own`` (``tools/guard/guard_train.jsonl``, already in
    guard labels) and 150 long messages made of its ``allow`` lines, the authored training file
    and every public corpus but ``leave_out``; no healthcare split. Cut as
    :func:`training_rows` cuts them."""
    allowed = [r for r in own if r["label"] == "allow"]
    labelled = ([(r["text"], str(r["label"])) for r in own]
                + [(r["text"], guard_label(r)) for r in long_messages(allowed, 150, seed=0)
                   + read(AUTHORED_TRAIN) + [r for r in public if r["corpus"] != leave_out]])
    out = [{"text": model_text(text)[:TRAIN_CHARS].strip(), "label": label}
           for text, label in labelled]
    return [r for r in out if r["text"]]
