"""The promotion gate: a candidate becomes the champion only if nothing that matters got worse.

Checks, each with the champion's and the candidate's number:

- ``accuracy``: on the frozen evaluation split, not lower than the champion's (less the node's
  ``learn.accuracy_tolerance``, 0 by default);
- ``recall:<label>`` for every critical label: the recall the node guarantees on the frozen
  split (local label or the critical rule firing), not lower; and ``recall:<label>
  (model+floor)``, the same without red flags (where every record of the label in the split
  carries a red flag, only this one can tell two models apart). No tolerance and no override: a
  model that loses emergency recall never goes live;
- ``shadow``: on live traffic beside the champion, at least ``learn.min_shadow`` shadow records
  with a planner's or a person's label, and strictly better accuracy on them than the champion;
- ``share`` and ``cascade_accuracy``: the node's router (threshold, learned router, critical
  floors) still meets its target on the frozen split: the planner share within the budget's
  ``max_share`` (when the graph has one) and the cascade's accuracy (an always-right planner for
  what escalates) at least the node's ``learn.target_accuracy``, or the champion's when the node
  sets none.
"""

from __future__ import annotations

from dataclasses import dataclass

from shoal.learning.evaluate import EvalMetrics
from shoal.learning.shadow import ShadowStats

__all__ = ["GateCheck", "GateResult", "gate"]


@dataclass(frozen=True)
class GateCheck:
    name: str
    champion: float | None
    candidate: float | None
    passed: bool
    critical: bool = False
    """A critical label's recall: no override, ever."""
    note: str = ""

    def line(self) -> str:
        def f(x: float | None) -> str:
            return "-" if x is None else f"{x:.3f}"

        mark = "ok  " if self.passed else "FAIL"
        note = f"  ({self.note})" if self.note else ""
        return f"{mark} {self.name:<26} champion {f(self.champion):>6}  candidate " \
               f"{f(self.candidate):>6}{note}"


@dataclass(frozen=True)
class GateResult:
    checks: list[GateCheck]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failed(self) -> list[GateCheck]:
        return [c for c in self.checks if not c.passed]

    def as_dict(self) -> dict[str, object]:
        return {"passed": self.passed,
                "checks": [{"name": c.name, "champion": c.champion, "candidate": c.candidate,
                            "passed": c.passed, "critical": c.critical, "note": c.note}
                           for c in self.checks]}


def gate(champion: EvalMetrics, candidate: EvalMetrics, shadow: ShadowStats, *,
         min_shadow: int, max_share: float | None, accuracy_tolerance: float = 0.0,
         target_accuracy: float | None = None) -> GateResult:
    """Every check of the module doc; the result passes only if all of them do."""
    checks = [GateCheck("accuracy (frozen split)", champion.accuracy, candidate.accuracy,
                        candidate.accuracy >= champion.accuracy - accuracy_tolerance - 1e-12,
                        note=(f"tolerance {accuracy_tolerance:g}" if accuracy_tolerance
                              else ""))]
    for label, was in champion.critical_recall.items():
        now = candidate.critical_recall.get(label)
        ok = was is None or (now is not None and now >= was - 1e-12)
        checks.append(GateCheck(f"recall:{label} (critical)", was, now, ok, critical=True,
                                note="" if ok else "no override for a critical label"))
    for label, was in champion.model_recall.items():
        now = candidate.model_recall.get(label)
        ok = was is None or (now is not None and now >= was - 1e-12)
        checks.append(GateCheck(f"recall:{label} (model+floor)", was, now, ok, critical=True,
                                note="" if ok else "no override for a critical label"))
    if shadow.labelled < max(min_shadow, 1):
        checks.append(GateCheck("shadow accuracy (labelled)", shadow.champion_accuracy,
                                shadow.candidate_accuracy, False,
                                note=f"{shadow.labelled} labelled shadow records, "
                                     f"{min_shadow} needed"))
    else:
        assert shadow.champion_accuracy is not None
        assert shadow.candidate_accuracy is not None
        checks.append(GateCheck(
            "shadow accuracy (labelled)", shadow.champion_accuracy, shadow.candidate_accuracy,
            shadow.candidate_accuracy > shadow.champion_accuracy,
            note=f"{shadow.labelled} labelled of {shadow.n}; must be better"))
    if max_share is not None:
        checks.append(GateCheck("planner share (frozen split)", champion.share, candidate.share,
                                candidate.share <= max_share + 1e-12,
                                note=f"budget max_share {max_share:g}"))
    target = champion.cascade_accuracy if target_accuracy is None else target_accuracy
    checks.append(GateCheck("cascade accuracy (frozen)", champion.cascade_accuracy,
                            candidate.cascade_accuracy,
                            candidate.cascade_accuracy >= target - 1e-12,
                            note=(f"target {target_accuracy:g}" if target_accuracy is not None
                                  else "target: the champion's")))
    return GateResult(checks)
