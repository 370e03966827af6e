"""benchmarks/triage_oracle.py names the records that asked for the planner but kept their own
answer, by kind, so benchmarks/cascade.py's recomputation can keep them local too."""

from __future__ import annotations

from tests.conftest import REPO, import_script

oracle = import_script(REPO / "benchmarks" / "triage_oracle.py", "bench_triage_oracle")


def scored(id_: str, *, wanted: bool, escalated: bool, reason: str = "") -> object:
    return oracle.Scored(id=id_, gold="billing", predicted="billing", status="ok", reached=True,
                         wanted=wanted, escalated=escalated, critical=None, reason=reason,
                         confidence=0.4, p_wrong=None, local_label="billing")


def test_kept_local_lists_each_blocked_record_with_its_kind() -> None:
    summary = oracle.summarize([
        scored("asked", wanted=True, escalated=True),
        scored("mine", wanted=False, escalated=False),
        scored("egress", wanted=True, escalated=False,
               reason="egress blocked (1 PERSON survived masking); local answer kept"),
        scored("budget", wanted=True, escalated=False, reason="budget_exhausted: calls 0/0"),
        scored("down", wanted=True, escalated=False, reason="planner failed (timeout: x)"),
    ], None)
    assert summary["kept_local"] == [{"id": "egress", "why": "egress_blocked"},
                                     {"id": "budget", "why": "budget_blocked"},
                                     {"id": "down", "why": "planner_failed"}]
    esc = summary["escalations"]
    assert (esc["wanted_not_escalated"], esc["egress_blocked"], esc["budget_blocked"],
            esc["planner_failed"], esc["pending"]) == (3, 1, 1, 1, 0)
    assert summary["planner_share"] == 0.2
