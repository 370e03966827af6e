"""The promotion gate on hand-made metrics: it passes when nothing that matters got worse and the
shadow did strictly better, and each check fails on its own (critical recall with no
tolerance)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from shoal.learning.evaluate import EvalMetrics
from shoal.learning.gate import GateCheck, GateResult, gate
from shoal.learning.shadow import ShadowStats

# 20 emergency records on the frozen split: one missed is a recall of 0.95.
CHAMPION = EvalMetrics(n=200, accuracy=0.90, share=0.20, cascade_accuracy=0.97,
                       recall={"billing": 0.9, "emergency": 1.0},
                       critical_recall={"emergency": 1.0})
SHADOW = ShadowStats(version="v2", champions=["v1"], n=40, agreement=0.9, labelled=25, human=3,
                     champion_accuracy=0.80, candidate_accuracy=0.84)
OPTS: dict[str, Any] = {"min_shadow": 20, "max_share": 0.30}


def check(result: GateResult, prefix: str) -> GateCheck:
    [found] = [c for c in result.checks if c.name.startswith(prefix)]
    return found


def failed_names(result: GateResult) -> list[str]:
    return [c.name.split(" ")[0] for c in result.failed]


def test_passes_when_equal_or_better_and_shadow_strictly_better() -> None:
    result = gate(CHAMPION, CHAMPION, SHADOW, **OPTS)
    assert result.passed
    assert result.failed == []
    assert [c.name.split(" ")[0] for c in result.checks] == [
        "accuracy", "recall:emergency", "shadow", "planner", "cascade"]
    better = replace(CHAMPION, accuracy=0.93, share=0.15, cascade_accuracy=0.98)
    assert gate(CHAMPION, better, SHADOW, **OPTS).passed
    as_dict = result.as_dict()
    assert as_dict["passed"] is True
    assert len(as_dict["checks"]) == 5  # type: ignore[arg-type]


def test_accuracy_drop_beyond_tolerance_fails() -> None:
    worse = replace(CHAMPION, accuracy=0.89)
    result = gate(CHAMPION, worse, SHADOW, **OPTS)
    assert not result.passed
    assert failed_names(result) == ["accuracy"]
    acc = check(result, "accuracy")
    assert (acc.champion, acc.candidate, acc.critical) == (0.90, 0.89, False)
    result = gate(CHAMPION, replace(CHAMPION, accuracy=0.87), SHADOW, accuracy_tolerance=0.02,
                  **OPTS)
    assert failed_names(result) == ["accuracy"]
    assert "tolerance 0.02" in check(result, "accuracy").note


def test_accuracy_drop_within_tolerance_passes() -> None:
    result = gate(CHAMPION, replace(CHAMPION, accuracy=0.89), SHADOW, accuracy_tolerance=0.02,
                  **OPTS)
    assert result.passed
    # Exactly at the tolerance still passes.
    assert gate(CHAMPION, replace(CHAMPION, accuracy=0.88), SHADOW, accuracy_tolerance=0.02,
                **OPTS).passed


def test_emergency_recall_drop_of_one_record_fails_and_is_critical() -> None:
    one_missed = replace(CHAMPION, accuracy=0.95, critical_recall={"emergency": 19 / 20})
    # Even with the largest accuracy tolerance the spec allows: recall has none.
    result = gate(CHAMPION, one_missed, SHADOW, accuracy_tolerance=0.05, **OPTS)
    assert not result.passed
    assert failed_names(result) == ["recall:emergency"]
    recall = check(result, "recall:emergency")
    assert recall.critical
    assert (recall.champion, recall.candidate) == (1.0, 0.95)
    assert "no override" in recall.note
    assert result.as_dict()["checks"][1]["critical"] is True  # type: ignore[index]


def test_critical_recall_missing_from_candidate_fails() -> None:
    result = gate(CHAMPION, replace(CHAMPION, critical_recall={}), SHADOW, **OPTS)
    assert failed_names(result) == ["recall:emergency"]
    assert check(result, "recall:emergency").candidate is None


def test_critical_recall_the_split_lacks_passes() -> None:
    none = replace(CHAMPION, critical_recall={"emergency": None})
    result = gate(none, none, SHADOW, **OPTS)
    assert result.passed
    assert check(result, "recall:emergency").critical


def test_too_few_labelled_shadow_records_fails() -> None:
    few = replace(SHADOW, labelled=19, candidate_accuracy=1.0)
    result = gate(CHAMPION, CHAMPION, few, **OPTS)
    assert failed_names(result) == ["shadow"]
    assert "19 labelled shadow records, 20 needed" in check(result, "shadow").note
    # Exactly the minimum is enough.
    assert gate(CHAMPION, CHAMPION, replace(SHADOW, labelled=20), **OPTS).passed


def test_no_shadow_records_at_all_fails() -> None:
    result = gate(CHAMPION, CHAMPION, ShadowStats(version="v2"), **OPTS)
    assert failed_names(result) == ["shadow"]
    shadow = check(result, "shadow")
    assert shadow.champion is None and shadow.candidate is None


def test_shadow_equal_is_not_better_and_fails() -> None:
    equal = replace(SHADOW, candidate_accuracy=0.80)
    result = gate(CHAMPION, CHAMPION, equal, **OPTS)
    assert failed_names(result) == ["shadow"]
    assert "must be better" in check(result, "shadow").note
    worse = replace(SHADOW, candidate_accuracy=0.76)
    assert failed_names(gate(CHAMPION, CHAMPION, worse, **OPTS)) == ["shadow"]


def test_share_above_max_share_fails() -> None:
    over = replace(CHAMPION, share=0.31)
    result = gate(CHAMPION, over, SHADOW, **OPTS)
    assert failed_names(result) == ["planner"]
    share = check(result, "planner share")
    assert (share.champion, share.candidate) == (0.20, 0.31)
    assert "max_share 0.3" in share.note
    # At the cap passes; a share above the champion's but within the budget passes.
    assert gate(CHAMPION, replace(CHAMPION, share=0.30), SHADOW, **OPTS).passed
    # No budget: no share check at all.
    no_budget = gate(CHAMPION, over, SHADOW, min_shadow=20, max_share=None)
    assert no_budget.passed
    assert not any(c.name.startswith("planner") for c in no_budget.checks)


def test_cascade_accuracy_below_target_fails() -> None:
    candidate = replace(CHAMPION, cascade_accuracy=0.975)
    result = gate(CHAMPION, candidate, SHADOW, target_accuracy=0.98, **OPTS)
    assert failed_names(result) == ["cascade"]
    assert "target 0.98" in check(result, "cascade").note
    # The target, not the champion, is the bar when the node sets one: below the champion's
    # cascade accuracy but above the target passes.
    lower = replace(CHAMPION, cascade_accuracy=0.96)
    assert gate(CHAMPION, lower, SHADOW, target_accuracy=0.95, **OPTS).passed


def test_cascade_target_none_uses_the_champions() -> None:
    lower = replace(CHAMPION, cascade_accuracy=0.965)
    result = gate(CHAMPION, lower, SHADOW, **OPTS)
    assert failed_names(result) == ["cascade"]
    assert check(result, "cascade").note == "target: the champion's"
    assert gate(CHAMPION, replace(CHAMPION, cascade_accuracy=0.97), SHADOW, **OPTS).passed


def test_every_failure_is_reported() -> None:
    bad = EvalMetrics(n=200, accuracy=0.5, share=0.9, cascade_accuracy=0.6,
                      critical_recall={"emergency": 0.5})
    result = gate(CHAMPION, bad, replace(SHADOW, labelled=0), **OPTS)
    assert failed_names(result) == ["accuracy", "recall:emergency", "shadow", "planner",
                                    "cascade"]


@pytest.mark.parametrize(("passed", "mark"), [(False, "FAIL"), (True, "ok")])
def test_check_line_shows_mark_and_both_numbers(passed: bool, mark: str) -> None:
    line = GateCheck("recall:emergency (critical)", 1.0, 0.95, passed, critical=True,
                     note="no override").line()
    assert line.startswith(mark)
    assert ("FAIL" in line) is not passed
    assert "recall:emergency (critical)" in line
    assert "champion  1.000" in line and "candidate  0.950" in line
    assert line.endswith("(no override)")


def test_check_line_without_numbers() -> None:
    line = GateCheck("shadow accuracy (labelled)", None, None, False).line()
    assert line.startswith("FAIL")
    assert "champion      -" in line and "candidate      -" in line
    assert "(" not in line.split("labelled)")[1]


def test_the_models_own_emergency_recall_fails_on_its_own() -> None:
    """Red flags can hold the node's recall at 1 whatever the model does (every emergency of
    the split carries one); the model's own part (local label or floor) is checked beside it,
    with no tolerance either."""
    champion = replace(CHAMPION, model_recall={"emergency": 1.0})
    weaker = replace(champion, model_recall={"emergency": 0.95})
    result = gate(champion, weaker, SHADOW, accuracy_tolerance=0.05, **OPTS)
    assert failed_names(result) == ["recall:emergency"]
    found = check(result, "recall:emergency (model+floor)")
    assert found.critical and "no override" in found.note
    assert check(result, "recall:emergency (critical)").passed
    assert gate(champion, champion, SHADOW, **OPTS).passed
