"""The README's Results block is generated from benchmarks/results/, not typed by hand."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import REPO

CASCADE = REPO / "benchmarks" / "results" / "cascade.json"
MODES = ("confidence", "learned", "random", "all_planner", "local_only")


def _readme_results() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "readme_results", REPO / "benchmarks" / "readme_results.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cascade() -> dict[str, Any]:
    if not CASCADE.is_file():
        pytest.skip("no benchmarks/results/cascade.json: run benchmarks/cascade.py")
    data: dict[str, Any] = json.loads(CASCADE.read_text(encoding="utf-8"))
    return data


def test_readme_results_match_the_result_files():
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "readme_results.py"),
                           "--check"], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_readme_first_screen_gives_the_two_commands():
    first_screen = "\n".join((REPO / "README.md").read_text().splitlines()[:15])
    assert "make demo" in first_screen
    assert "make test" in first_screen


def test_cascade_results_carry_both_routers_and_the_safety_numbers(cascade):
    for key in ("learned_cpt95", "learned_apgr", "oracle_cpt95", "oracle_apgr",
                "confidence_auroc", "learned_auroc", "cpt95_floor", "confidence_cpt90",
                "learned_cpt90", "emergency_recall", "missed_emergencies", "cascade_accuracy",
                "cascade_planner_share", "local_only_accuracy", "all_planner_accuracy"):
        assert key in cascade, key
    shipped = cascade["oracle"]["modes"]["confidence"]
    assert cascade["emergency_recall"] == shipped["emergency_recall"]
    assert cascade["missed_emergencies"] == len(cascade["missed_emergency_ids"])
    assert cascade["missed_emergency_ids"] == shipped["missed_emergency_ids"]
    n = cascade["oracle"]["class_counts"]["emergency"]
    assert shipped["emergency_recall"] == round((n - cascade["missed_emergencies"]) / n, 4)
    # Every mode, both planners: recall for every label, emergency first.
    for planner in ("oracle", "live"):
        res = cascade[planner]
        if res is None:
            continue
        for mode in MODES:
            recall = res["modes"][mode]["per_class_recall"]
            assert next(iter(recall)) == "emergency", (planner, mode)
            assert set(recall) == set(cascade["oracle"]["class_counts"])
    assert list(cascade["per_class_recall"]) == list(MODES)
    # The learned threshold was chosen on dev, never on test.
    assert cascade["oracle"]["dev_choice"]["learned"]["above"] == cascade["learned_threshold"]
    for router in ("confidence", "learned"):
        assert "chosen_threshold" not in cascade["oracle"]["routers"][router]
    met, wanted = cascade["targets"]["met"], cascade["targets"]["wanted"]
    assert met["emergency_recall"] == (shipped["emergency_recall"]
                                       >= wanted["emergency_recall_min"])
    assert met["learned_cpt95"] == (cascade["learned_cpt95"] is not None
                                    and cascade["learned_cpt95"] <= wanted["learned_cpt95_max"])


def test_cascade_results_hold_no_machine_paths(cascade):
    text = CASCADE.read_text(encoding="utf-8")
    assert not re.search(r"(?<![<\w])/(?:work|tmp|home|root|Users|private|var)/", text)


def test_readme_cascade_block_shows_routers_recall_misses_and_targets(cascade):
    block = "\n".join(_readme_results()._cascade(cascade))
    lines = block.splitlines()
    # Both routers' metrics, side by side with random.
    for router in ("confidence", "learned", "random"):
        assert any(line.startswith(f"| {router} |") for line in lines), router
    # Per-class recall of every mode, emergency first.
    head = next(i for i, line in enumerate(lines) if line.startswith("| class | n |"))
    assert lines[head + 2].startswith("| emergency |")
    assert "confidence (shipped)" in lines[head] and "learned router" in lines[head]
    shipped = cascade["oracle"]["modes"]["confidence"]
    assert f"**{shipped['missed_emergencies']} of " in block
    for missed in shipped["missed_emergency_ids"]:
        assert f"`{missed}`" in block
    # Every target with its verdict.
    met = cascade["targets"]["met"]
    targets = next(line for line in lines if line.startswith("Targets"))
    assert targets.count("**not met**") == sum(
        not met[k] for k in ("emergency_recall", "accuracy_at_share", "learned_cpt95",
                             "learned_cpt95_stretch", "throughput"))
    assert "benchmarks/results/cascade.png" in block
