"""benchmarks/cascade.py's simulation of the critical rule matches ``rules.decide``: a red flag
that fired holds the label with no planner call; reaching the floor alone goes to the planner."""

from __future__ import annotations

from shoal.policies.escalation.calibration import Example
from shoal.policies.escalation.rules import CriticalRule, NodeRule
from tests.conftest import REPO, import_script

cascade = import_script(REPO / "benchmarks" / "cascade.py", "bench_cascade")


def example(id_: str, p_emergency: float, local: str, *, red_flag: bool = False) -> Example:
    other = "billing" if local == "emergency" else local
    probs = {"emergency": p_emergency, other: 1.0 - p_emergency}
    return Example(id=id_, confidence=max(probs.values()), local_correct=False,
                   planner_correct=True, label="emergency", local_label=local,
                   probabilities=probs, red_flag=red_flag)


EXAMPLES = [
    example("floor-only", 0.3, "billing"),                   # P >= floor, no flag
    example("flag-only", 0.05, "appointment", red_flag=True),  # a flag below the floor
    example("both", 0.4, "billing", red_flag=True),          # floor and flag
    example("neither", 0.05, "billing"),
    example("already", 0.9, "emergency", red_flag=True),     # answered emergency, a flag
    example("answered", 0.9, "emergency"),                   # answered emergency, no flag
]


def rule(**critical: object) -> NodeRule:
    crit = CriticalRule.model_validate({"floor": 0.2, "red_flags": "clinical_red_flags",
                                        **critical})
    return NodeRule(below=0.5, critical={"emergency": crit})


def test_a_red_flag_routes_and_the_floor_alone_escalates() -> None:
    crit = cascade.critical_of(EXAMPLES, rule())
    assert crit.escalate == {"floor-only": "emergency"}
    # An emergency answer on which a flag fired keeps its label even if the router is unsure.
    assert crit.route == {"flag-only": "emergency", "both": "emergency", "already": "emergency"}


def test_without_the_hold_every_critical_record_escalates() -> None:
    crit = cascade.critical_of(EXAMPLES, rule(red_flags_hold=False))
    assert set(crit.escalate) == {"floor-only", "flag-only", "both"}
    assert crit.route == {}


def test_action_route_routes_every_critical_record() -> None:
    crit = cascade.critical_of(EXAMPLES, rule(action="route"))
    assert crit.escalate == {}
    assert set(crit.route) == {"floor-only", "flag-only", "both", "already", "answered"}


def test_the_cross_check_keeps_local_what_the_real_run_kept_local() -> None:
    """A record the real run wanted to escalate but kept local (the egress check blocked it)
    stays local in the recomputation, its critical label standing; without the real run's
    list the recomputation would count it as a planner call answered right."""
    msgs = [cascade.Msg("unsure", "", "billing", False),
            cascade.Msg("sure", "", "appointment", False),
            cascade.Msg("critical", "", "emergency", False)]
    examples = {"unsure": Example(id="unsure", confidence=0.3, local_correct=False,
                                  planner_correct=True, label="billing",
                                  local_label="appointment",
                                  probabilities={"appointment": 0.3, "billing": 0.25}),
                "sure": Example(id="sure", confidence=0.9, local_correct=True,
                                planner_correct=True, label="appointment",
                                local_label="appointment",
                                probabilities={"appointment": 0.9, "billing": 0.1}),
                "critical": example("critical", 0.3, "billing")}
    local = {i: cascade.Local(e.local_label or "", False, 1.0, e) for i, e in examples.items()}

    def check(kept: dict[str, str]) -> dict[str, object]:
        theirs = {"kept_local": [{"id": i, "why": why} for i, why in kept.items()]}
        out = cascade.cross_check(msgs, local, {}, rule(), theirs, {})
        return out["this_benchmark"]

    alone = check({})
    assert (alone["planner_share"], alone["accuracy"]) == (round(2 / 3, 4), 1.0)
    blocked = check({"unsure": "egress_blocked", "critical": "egress_blocked"})
    assert blocked["planner_share"] == 0.0
    # The unsure record keeps its wrong local answer; the critical one its emergency label.
    assert blocked["accuracy"] == round(2 / 3, 4)
    assert blocked["kept_local_as_in_the_real_run"] == {"critical": "egress_blocked",
                                                       "unsure": "egress_blocked"}
