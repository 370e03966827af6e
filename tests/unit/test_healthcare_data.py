"""The healthcare example's labelled messages (examples/healthcare/data): split hygiene, class
minimums, personal data, and a deterministic generator. Fast: no models are loaded."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import import_script

DATA = Path(__file__).resolve().parents[2] / "examples" / "healthcare" / "data"
GENERATOR = DATA / "make_messages.py"
KEYS = ["id", "text", "label", "family", "split", "hard", "has_pii", "pii"]


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    """make_messages.py, imported from its path (examples/ is not a package)."""
    return import_script(GENERATOR, "healthcare_make_messages")


@pytest.fixture(scope="module")
def splits() -> dict[str, list[dict[str, Any]]]:
    out = {}
    for split in ("train", "dev", "test"):
        lines = (DATA / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
        out[split] = [json.loads(line) for line in lines]
    return out


def _all(splits: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [r for rows in splits.values() for r in rows]


def test_records_have_the_documented_fields(
    gen: ModuleType, splits: dict[str, list[dict[str, Any]]]
) -> None:
    for split, rows in splits.items():
        for r in rows:
            several = r["family"].startswith("hard_multi_")  # these also carry "labels"
            assert list(r) == ([*KEYS[:3], "labels", *KEYS[3:]] if several else KEYS), r["id"]
            assert r["split"] == split and r["label"] in gen.LABELS, r["id"]
            assert isinstance(r["hard"], bool) and isinstance(r["has_pii"], bool), r["id"]
            assert r["text"].strip() and not re.search(r"\{\w+\}", r["text"]), r["id"]


def test_every_class_in_every_split_with_the_minimums(
    gen: ModuleType, splits: dict[str, list[dict[str, Any]]]
) -> None:
    for split, rows in splits.items():
        counts = Counter(r["label"] for r in rows)
        for label in gen.LABELS:
            assert counts[label] >= gen.MIN_PER_SPLIT[split], (split, label, counts[label])
    totals = Counter(r["label"] for r in _all(splits))
    assert all(totals[label] >= gen.MIN_PER_CLASS for label in gen.LABELS), totals
    assert len(_all(splits)) >= 1400


def test_hard_cases_only_in_test(gen: ModuleType,
                                 splits: dict[str, list[dict[str, Any]]]) -> None:
    assert sum(r["hard"] for r in splits["test"]) >= gen.MIN_HARD
    assert not any(r["hard"] for r in splits["train"] + splits["dev"])


def test_ids_unique_across_splits(splits: dict[str, list[dict[str, Any]]]) -> None:
    ids = [r["id"] for r in _all(splits)]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"hc-\d{5}", i) for i in ids)


def test_no_family_in_two_splits(gen: ModuleType,
                                 splits: dict[str, list[dict[str, Any]]]) -> None:
    seen: dict[str, set[str]] = {}
    labels: dict[str, set[str]] = {}
    for r in _all(splits):
        seen.setdefault(r["family"], set()).add(r["split"])
        labels.setdefault(r["family"], set()).add(r["label"])
    assert {f: s for f, s in seen.items() if len(s) > 1} == {}
    assert {f: lb for f, lb in labels.items() if len(lb) > 1} == {}
    ordinary = Counter(next(iter(labels[f])) for f in seen
                       if not any(r["hard"] for r in _all(splits) if r["family"] == f))
    assert all(ordinary[label] >= 8 for label in gen.LABELS), ordinary


def test_no_test_or_dev_text_in_train(gen: ModuleType,
                                      splits: dict[str, list[dict[str, Any]]]) -> None:
    train = {gen.normalise(r["text"]) for r in splits["train"]}
    for split in ("dev", "test"):
        leaked = [r["id"] for r in splits[split] if gen.normalise(r["text"]) in train]
        assert leaked == [], split


def test_most_messages_carry_personal_data(splits: dict[str, list[dict[str, Any]]]) -> None:
    rows = _all(splits)
    assert sum(r["has_pii"] for r in rows) / len(rows) >= 0.70
    assert all(r["has_pii"] == bool(r["pii"]) for r in rows)
    assert len({k for r in rows for k in r["pii"]}) >= 7  # several kinds, not only names


@pytest.mark.parametrize(("kind", "pattern"), [
    ("mrn", r"(?i)(mrn\W{0,2}|medical record # )\d{7}\b"),
    ("email", r"[\w.+-]+@[\w-]+\.[\w.]+"),
    ("phone", r"\(?\d{3}\)?[ .-]?\d{3}[.-]?\d{4}"),
    ("dob", r"\d{1,2}[/-]\d{1,2}[/-]\d{2,4}|\d{4}-\d{2}-\d{2}|[A-Z][a-z]+ \d{1,2}, \d{4}"),
])
def test_flagged_identifiers_are_in_the_text(
    splits: dict[str, list[dict[str, Any]]], kind: str, pattern: str
) -> None:
    flagged = [r for r in _all(splits) if kind in r["pii"]]
    assert len(flagged) >= 30, kind
    missing = [r["id"] for r in flagged if not re.search(pattern, r["text"])]
    assert missing == []


def test_generator_is_deterministic(gen: ModuleType, tmp_path: Path) -> None:
    first = gen.main(tmp_path / "a", echo=lambda _: None)
    second = gen.main(tmp_path / "b", echo=lambda _: None)
    assert sorted(first) == ["dev", "test", "train"]
    for split, path in first.items():
        assert path.read_bytes() == second[split].read_bytes(), split
