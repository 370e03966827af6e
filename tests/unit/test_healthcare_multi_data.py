"""The healthcare example's multi-intent messages (examples/healthcare/data/make_multi.py,
multi_dev.jsonl and multi_test.jsonl): exact part bookkeeping, the priority label, family- and
connector-disjoint splits, coverage minimums, and the labels of make_messages' hard_multi rows.
Fast: no models are loaded."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import import_script

DATA = Path(__file__).resolve().parents[2] / "examples" / "healthcare" / "data"
GENERATOR = DATA / "make_multi.py"
SPLITS = ("dev", "test")
KEYS = ["id", "text", "label", "labels", "parts", "family", "part_families", "split", "multi",
        "has_pii", "pii"]
Rows = dict[str, list[dict[str, Any]]]


@pytest.fixture(scope="module")
def multi() -> ModuleType:
    """make_multi.py, imported from its path (examples/ is not a package)."""
    return import_script(GENERATOR, "healthcare_make_multi")


@pytest.fixture(scope="module")
def mm(multi: ModuleType) -> ModuleType:
    """make_messages, as make_multi imported it."""
    module: ModuleType = multi.mm
    return module


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def rows() -> Rows:
    return {split: _read(DATA / f"multi_{split}.jsonl") for split in SPLITS}


@pytest.fixture(scope="module")
def single() -> Rows:
    """make_messages' committed splits."""
    return {split: _read(DATA / f"{split}.jsonl") for split in ("train", "dev", "test")}


@pytest.fixture(scope="module")
def family_split(mm: ModuleType) -> dict[str, str]:
    """make_messages' own family split."""
    out: dict[str, str] = mm.split_families(mm.FAMILIES, random.Random(mm.SEED + 1))
    return out


def test_regenerating_writes_the_committed_files(multi: ModuleType, tmp_path: Path) -> None:
    paths = multi.main(tmp_path, echo=lambda _: None)
    assert sorted(paths) == ["dev", "test"]
    for split, path in paths.items():
        assert path.name == f"multi_{split}.jsonl"
        assert path.read_bytes() == (DATA / path.name).read_bytes(), split


def test_records_have_the_documented_fields(mm: ModuleType, rows: Rows) -> None:
    ids = []
    for split, records in rows.items():
        for r in records:
            assert list(r) == KEYS, r["id"]
            assert r["split"] == split and r["multi"] is True, r["id"]
            assert r["has_pii"] == bool(r["pii"]) and r["pii"] == sorted(set(r["pii"])), r["id"]
            assert set(r["pii"]) <= set(mm.PII_KINDS.values()), r["id"]
            assert r["text"].strip() == r["text"] and not re.search(r"\{\w+\}", r["text"]), r["id"]
            ids.append(r["id"])
    assert len(ids) == len(set(ids)) and all(re.fullmatch(r"hm-\d{5}", i) for i in ids)


def test_parts_are_exact_substrings_in_order(rows: Rows) -> None:
    for records in rows.values():
        for r in records:
            pos = 0
            for part in r["parts"]:
                assert part["text"].strip(), r["id"]
                start = r["text"].find(part["text"], pos)
                assert start >= 0, (r["id"], part["text"], r["text"])
                pos = start + len(part["text"])
            assert [p["label"] for p in r["parts"]] == r["labels"], r["id"]
            assert len(r["part_families"]) == len(r["parts"]), r["id"]


def test_connector_text_is_not_only_parts(rows: Rows) -> None:
    """Every message has text of its own between the parts (a connector, at least a newline)."""
    for records in rows.values():
        for r in records:
            rest = r["text"]
            for part in r["parts"]:
                rest = rest.replace(part["text"], "", 1)
            assert rest.strip() or "\n" in rest, r["id"]


def test_labels_distinct_and_label_is_the_priority_first(multi: ModuleType, mm: ModuleType,
                                                         rows: Rows) -> None:
    order = (*mm.PRIORITY, "off_topic")
    assert order == multi.ORDER
    for records in rows.values():
        for r in records:
            assert 2 <= len(r["labels"]) <= 3 and len(set(r["labels"])) == len(r["labels"])
            assert set(r["labels"]) <= set(multi.LABELS), r["id"]
            assert r["label"] == min(r["labels"], key=order.index), r["id"]
            assert r["label"] in mm.PRIORITY, r["id"]  # off_topic never wins


def test_part_families_come_from_the_same_split(mm: ModuleType, rows: Rows,
                                                family_split: dict[str, str]) -> None:
    families = {f.name: f for f in mm.FAMILIES}
    for split, records in rows.items():
        used = set()
        for r in records:
            for name, label in zip(r["part_families"], r["labels"], strict=True):
                family = families[name]
                assert family.label == label and not family.hard, (r["id"], name)
                assert label != "injection" and family.wrap, (r["id"], name)
                assert family_split[name] == split, (r["id"], name, family_split[name])
                used.add(name)
        assert len(used) >= 10, (split, used)  # many families, not a favourite few


def test_connector_families_disjoint(multi: ModuleType, rows: Rows) -> None:
    connectors = {split: {r["family"] for r in records} for split, records in rows.items()}
    assert connectors["dev"].isdisjoint(connectors["test"])
    known = {c.name for c in multi.CONNECTORS}
    assert connectors["dev"] | connectors["test"] <= known
    assert len(known) >= 12
    assert all(2 <= len(c.templates) <= 4 for c in multi.CONNECTORS)
    assert len(connectors["dev"]) >= 4 and len(connectors["test"]) >= 8
    # every pattern of the test file is absent from dev: no test connector text there
    split_of = multi.split_connectors(multi.CONNECTORS, random.Random(multi.SEED + 1))
    assert {name for name, s in split_of.items() if s == "test"} == connectors["test"]


def test_sizes_and_coverage(multi: ModuleType, rows: Rows) -> None:
    assert len(rows["test"]) >= 160 and len(rows["dev"]) >= 80
    covered = Counter(label for r in rows["test"] for label in r["labels"])
    assert all(covered[label] >= 20 for label in multi.LABELS), covered
    assert covered["emergency"] >= 25, covered
    # the emergency is not always the first thing said
    buried = sum(r["labels"].index("emergency") > 0 for r in rows["test"]
                 if "emergency" in r["labels"])
    assert buried >= 10, buried
    for split, records in rows.items():
        three = sum(len(r["parts"]) == 3 for r in records) / len(records)
        assert 0.2 <= three <= 0.4, (split, three)


def test_texts_distinct_and_not_in_the_single_intent_splits(mm: ModuleType, rows: Rows,
                                                            single: Rows) -> None:
    texts = [mm.normalise(r["text"]) for records in rows.values() for r in records]
    assert len(texts) == len(set(texts))
    seen = {mm.normalise(r["text"]) for records in single.values() for r in records}
    for split, records in rows.items():
        leaked = [r["id"] for r in records if mm.normalise(r["text"]) in seen]
        assert leaked == [], split


def test_many_messages_carry_personal_data(rows: Rows) -> None:
    records = [r for records in rows.values() for r in records]
    assert sum(r["has_pii"] for r in records) / len(records) >= 0.5
    assert len({k for r in records for k in r["pii"]}) >= 6
    emails = [r for r in records if "email" in r["pii"]]
    assert emails and all(re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", r["text"]) for r in emails)


def test_check_refuses_too_little_emergency(multi: ModuleType, rows: Rows) -> None:
    thin = {"dev": rows["dev"], "test": [r for r in rows["test"] if "emergency" not in r["labels"]]}
    with pytest.raises(RuntimeError):
        multi.check(thin)


def test_hard_multi_rows_carry_their_labels(mm: ModuleType, single: Rows) -> None:
    order = (*mm.PRIORITY, "off_topic")
    hard_multi = [r for r in single["test"] if r["family"].startswith("hard_multi_")]
    assert len(hard_multi) >= 40
    for r in hard_multi:
        assert list(r)[:4] == ["id", "text", "label", "labels"], r["id"]
        assert 2 <= len(r["labels"]) == len(set(r["labels"])) and r["label"] in r["labels"]
        assert r["label"] == min(r["labels"], key=order.index), r["id"]
    others = [r["id"] for rows_ in single.values() for r in rows_
              if "labels" in r and not r["family"].startswith("hard_multi_")]
    assert others == []
    # every template of every hard_multi family is labelled
    for family in mm.FAMILIES:
        if family.name.startswith("hard_multi_"):
            assert len(family.template_labels) == len(family.templates), family.name
