"""Routing calibration math: threshold curve, PGR, APGR, CPT, random baseline, threshold choice;
the learned router on the same code path, CPT intervals, error-detection AUROC/AUPRC, the CPT
floor, per-class recall and critical floors."""

from __future__ import annotations

import random

import pytest

from shoal.policies.escalation.calibration import (
    CPT_TARGETS,
    CalibrationSummary,
    CurvePoint,
    Example,
    RoutingPoint,
    apgr,
    auprc,
    auroc,
    choose_floor,
    choose_threshold,
    cpt,
    cpt_floor,
    cpt_intervals,
    critical_at,
    curve,
    per_class_recall,
    random_baseline,
    scores,
    summarize,
)


def ex(i: int, confidence: float, local: bool, planner: bool) -> Example:
    return Example(id=f"e{i}", confidence=confidence, local_correct=local, planner_correct=planner)


# Five examples, hand-worked. weak (all local) = c, e correct = 2/5 = 0.4;
# strong (all planner) = a, b, d, e = 4/5 = 0.8; gap = 0.4 (2 examples).
#   id conf local planner  gain(planner - local)
#   a  0.2  F     T        +1
#   b  0.5  F     T        +1   } tie at 0.5: b and c always move together,
#   c  0.5  T     F        -1   } so share 0.4 (a + b only) is not reachable
#   d  0.8  F     T        +1
#   e  0.9  T     T         0
# threshold  escalated   share correct quality PGR=(correct-2)/2
#   0        -           0.0   2       0.4     0.0
#   (0.2     -  same routing as 0, reported once)
#   0.5      a           0.2   3       0.6     0.5
#   0.8      a b c       0.6   3       0.6     0.5
#   0.9      a b c d     0.8   4       0.8     1.0
#   >0.9     all         1.0   4       0.8     1.0
SMALL = [ex(0, 0.2, False, True), ex(1, 0.5, False, True), ex(2, 0.5, True, False),
         ex(3, 0.8, False, True), ex(4, 0.9, True, True)]


def perfect(n_wrong: int = 3, n: int = 10) -> list[Example]:
    """Local is wrong exactly on its n_wrong least confident examples; planner always right."""
    return [ex(i, (i + 1) / n, i >= n_wrong, True) for i in range(n)]


def reversed_router(n_wrong: int = 3, n: int = 10) -> list[Example]:
    """The local node is wrong exactly on its n_wrong MOST confident examples."""
    return [ex(i, (i + 1) / n, i < n - n_wrong, True) for i in range(n)]


def test_small_curve_by_hand() -> None:
    points = curve(SMALL)
    assert [p.threshold for p in points[:-1]] == [0.0, 0.5, 0.8, 0.9]
    assert points[-1].threshold > 0.9
    assert [p.share for p in points] == [0.0, 0.2, 0.6, 0.8, 1.0]
    assert [p.quality for p in points] == [0.4, 0.6, 0.6, 0.8, 0.8]
    assert [p.pgr for p in points] == [0.0, 0.5, 0.5, 1.0, 1.0]


def test_small_metrics_by_hand() -> None:
    points = curve(SMALL)
    # PGR*(s) at s = 0, .1, ..., 1: 0, 0, .5 (x6: .2-.7), 1 (x3: .8-1)
    # trapezoid: (0/2 + 0 + .5*6 + 1 + 1 + 1/2) / 10 = 5.5 / 10
    assert apgr(points) == pytest.approx(0.55)
    assert cpt(points, 0.5) == 0.2
    assert cpt(points, 0.8) == 0.8
    assert cpt(points, 0.95) == 0.8
    assert cpt(points, 1.01) is None


def test_ties_move_together() -> None:
    points = curve(SMALL)
    assert 0.4 not in [p.share for p in points]  # would split b from c
    # asking for share 0.4 gets the largest reachable share below it, never a split tie
    (at_04,) = curve(SMALL, shares=[0.4])
    assert at_04.share == 0.2 and at_04.threshold == 0.5
    # order of the input does not matter, so ties are not broken by position
    assert curve(list(reversed(SMALL))) == points


def test_all_tied_has_only_the_two_ends() -> None:
    examples = [ex(i, 0.5, i % 2 == 0, True) for i in range(4)]
    points = curve(examples)
    assert [p.share for p in points] == [0.0, 1.0]
    assert [p.pgr for p in points] == [0.0, 1.0]


def test_confidence_zero_and_one_are_covered() -> None:
    examples = [ex(0, 0.0, False, True), ex(1, 1.0, True, True)]
    points = curve(examples)
    assert [p.share for p in points] == [0.0, 0.5, 1.0]
    assert [p.threshold for p in points[:2]] == [0.0, 1.0]
    assert points[-1].threshold > 1.0  # above the max, so confidence 1.0 escalates too


def test_curve_at_requested_shares() -> None:
    picked = curve(SMALL, shares=[0.0, 0.7, 1.0])
    assert [p.share for p in picked] == [0.0, 0.6, 1.0]


@pytest.mark.parametrize("planner_right", [0, 1], ids=["planner_worse", "no_gap"])
def test_no_positive_gap_leaves_pgr_undefined(planner_right: int) -> None:
    # local right on 1 of 2 examples; planner right on 0 (gap -0.5) or 1 (gap 0)
    examples = [ex(0, 0.1, True, planner_right == 1), ex(1, 0.9, False, False)]
    points = curve(examples)
    assert all(p.pgr is None for p in points)
    assert apgr(points) is None
    assert cpt(points, 0.5) is None
    summary = summarize(examples, 0.5)
    assert not summary.pgr_defined
    assert summary.gap == pytest.approx((planner_right - 1) / 2)
    assert summary.apgr is None and summary.random_apgr is None
    assert summary.cpt50 is None and summary.cpt80 is None and summary.cpt95 is None
    assert all(p.pgr is None for p in summary.random_points)
    # qualities are still meaningful: keep everything local
    assert summary.chosen_share == 0.0 and summary.chosen_quality == 0.5


def test_perfect_router() -> None:
    points = curve(perfect(n_wrong=3))
    # shares k/10 recover min(k, 3)/3 of the gap
    assert cpt(points, 0.95) == 0.3
    assert cpt(points, 0.8) == 0.3
    assert cpt(points, 0.5) == 0.2  # 2/3 >= 0.5, 1/3 is not
    # PGR*: 0, 1/3, 2/3, then 1 from 0.3 to 1.0 -> (1/3 + 2/3 + 7 + 1/2) / 10 = 0.85
    score = apgr(points)
    assert score == pytest.approx(0.85)
    random_score = apgr(random_baseline(perfect(n_wrong=3)))
    assert random_score == pytest.approx(0.5)
    assert score is not None and random_score is not None
    assert score > random_score + 0.3


def test_reversed_router_is_worse_than_random() -> None:
    examples = reversed_router(n_wrong=3)
    points = curve(examples)
    baseline = {p.share: p.quality for p in random_baseline(examples, [p.share for p in points])}
    # weak 0.7, strong 1.0: random gains 0.3 * s, this router gains nothing until s > 0.7
    assert all(p.quality <= baseline[p.share] + 1e-12 for p in points)
    assert any(p.quality < baseline[p.share] - 0.05 for p in points)
    # PGR*: 0 up to 0.7, then 1/3, 2/3, 1 -> (1/3 + 2/3 + 1/2) / 10 = 0.15
    score = apgr(points)
    random_score = apgr(random_baseline(examples))
    assert score == pytest.approx(0.15)
    assert random_score is not None and score is not None and score < random_score
    assert cpt(points, 0.5) == 0.9


def test_random_baseline_by_formula() -> None:
    points = random_baseline(SMALL, [0.0, 0.25, 1.0])
    # (1 - s) * 0.4 + s * 0.8
    assert [p.quality for p in points] == pytest.approx([0.4, 0.5, 0.8])
    assert [p.pgr for p in points] == [0.0, 0.25, 1.0]
    default = random_baseline(SMALL)
    assert [p.share for p in default] == pytest.approx([k / 10 for k in range(11)])
    assert apgr(default) == pytest.approx(0.5)  # computed, by the same definition


def test_apgr_reads_the_best_point_at_or_below_each_share() -> None:
    # a dip at a larger share does not lower PGR*: the router may escalate less
    points = [RoutingPoint(share=0.0, quality=0.0, pgr=0.0),
              RoutingPoint(share=0.5, quality=0.0, pgr=1.0),
              RoutingPoint(share=0.6, quality=0.0, pgr=-1.0)]
    # PGR*: 0 at s = 0-0.4, 1 at s = 0.5-1.0 -> (0/2 + 0*4 + 1*5 + 1/2) / 10 = 0.55
    # (reading the raw PGR instead would give -1 from 0.6 on and a negative score)
    assert apgr(points) == pytest.approx(0.55)


def test_choose_threshold_respects_the_share_cap() -> None:
    points = curve(SMALL)
    best = choose_threshold(points, 0.5)
    assert best.share <= 0.5
    assert (best.threshold, best.share, best.quality) == (0.5, 0.2, 0.6)
    # 0.6 is as good as 0.2 (quality 0.6): the lower share wins the tie
    assert choose_threshold(points, 0.7).share == 0.2
    assert choose_threshold(points, 0.8).threshold == 0.9
    assert choose_threshold(points, 1.0).share == 0.8  # share 1.0 buys nothing over 0.8
    assert choose_threshold(points, 0.1).share == 0.0  # the cap forbids escalating anyone


def test_summarize_gathers_everything() -> None:
    summary = summarize(SMALL, 0.5)
    assert isinstance(summary, CalibrationSummary)
    assert (summary.n, summary.local_quality, summary.planner_quality) == (5, 0.4, 0.8)
    assert summary.gap == pytest.approx(0.4) and summary.pgr_defined
    assert summary.points == tuple(curve(SMALL))
    assert summary.apgr == pytest.approx(0.55)
    assert (summary.cpt50, summary.cpt80, summary.cpt95) == (0.2, 0.8, 0.8)
    assert summary.random_apgr == pytest.approx(0.5)
    assert len(summary.random_points) == 11
    assert (summary.chosen_threshold, summary.chosen_share, summary.chosen_quality) == (0.5, 0.2,
                                                                                        0.6)


def test_results_are_frozen() -> None:
    point = curve(SMALL)[0]
    assert isinstance(point, CurvePoint)
    with pytest.raises(ValueError, match="frozen"):
        point.share = 0.5


def test_empty_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="at least one"):
        curve([])
    with pytest.raises(ValueError, match="at least one"):
        summarize([], 0.5)
    with pytest.raises(ValueError, match="at least one"):
        random_baseline([])


@pytest.mark.parametrize("confidence", [-0.01, 1.01, float("nan")])
def test_confidence_outside_unit_interval_is_rejected(confidence: float) -> None:
    with pytest.raises(ValueError, match="confidence"):
        ex(0, confidence, True, True)
    # even an unvalidated model is caught before any arithmetic
    sneaky = Example.model_construct(id="x", confidence=confidence, local_correct=True,
                                     planner_correct=False)
    with pytest.raises(ValueError, match="confidence must be within"):
        curve([sneaky])


@pytest.mark.parametrize("target", [-0.1, 1.1, float("nan")])
def test_target_share_outside_unit_interval_is_rejected(target: float) -> None:
    with pytest.raises(ValueError, match="target_share"):
        summarize(SMALL, target)
    with pytest.raises(ValueError, match="target_share"):
        choose_threshold(curve(SMALL), target)


def test_requested_shares_outside_unit_interval_are_rejected() -> None:
    with pytest.raises(ValueError, match="share"):
        curve(SMALL, shares=[1.5])
    with pytest.raises(ValueError, match="share"):
        random_baseline(SMALL, [-0.5])


def test_choose_threshold_without_an_allowed_point() -> None:
    only_all = [CurvePoint(threshold=1.0, share=1.0, quality=1.0, pgr=1.0)]
    with pytest.raises(ValueError, match="at most"):
        choose_threshold(only_all, 0.5)


# --- the learned router, on the same code path ---------------------------------------------------


def learned(i: int, p_wrong: float, local: bool, planner: bool = True) -> Example:
    return Example(id=f"e{i}", confidence=0.5, local_correct=local, planner_correct=planner,
                   p_wrong=p_wrong)


def test_learned_router_escalates_at_or_above_its_threshold() -> None:
    # p_wrong 0.9 (wrong), 0.6 (wrong), 0.6 (right), 0.1 (right): the 0.6 tie moves together
    examples = [learned(0, 0.9, False), learned(1, 0.6, False), learned(2, 0.6, True),
                learned(3, 0.1, True)]
    points = curve(examples, router="learned")
    assert [p.share for p in points] == [0.0, 0.25, 0.75, 1.0]
    assert [p.threshold for p in points[1:]] == [0.9, 0.6, 0.1]  # p_wrong >= t escalates
    assert points[0].threshold > 0.9  # above every score: nothing escalates
    assert [p.pgr for p in points] == [0.0, 0.5, 1.0, 1.0]
    assert cpt(points, 0.95) == 0.75


def test_confidence_and_learned_routers_agree_on_the_same_ranking() -> None:
    rnd = random.Random(3)
    examples = [Example(id=f"e{i}", confidence=c, local_correct=rnd.random() < 0.7,
                        planner_correct=rnd.random() < 0.95, p_wrong=1 - c)
                for i, c in enumerate(round(rnd.random(), 2) for _ in range(80))]
    by_confidence = curve(examples)
    by_learned = curve(examples, router="learned")
    assert [(p.share, p.quality, p.pgr) for p in by_confidence] == [
        (p.share, p.quality, p.pgr) for p in by_learned]
    a, b = summarize(examples, 0.3), summarize(examples, 0.3, router="learned")
    assert (a.apgr, a.cpt50, a.cpt95, a.chosen_share) == (b.apgr, b.cpt50, b.cpt95,
                                                          b.chosen_share)
    assert a.auroc == pytest.approx(b.auroc) and a.auprc == pytest.approx(b.auprc)
    assert (a.router, b.router) == ("confidence", "learned")


def test_learned_router_needs_every_score() -> None:
    examples = [learned(0, 0.2, True), ex(1, 0.5, False, True)]
    with pytest.raises(ValueError, match="no P\\(wrong\\) for 1 of 2"):
        summarize(examples, 0.5, router="learned")
    sneaky = Example.model_construct(id="x", confidence=0.5, local_correct=True,
                                     planner_correct=True, p_wrong=1.5)
    with pytest.raises(ValueError, match="p_wrong must be within"):
        curve([sneaky], router="learned")


def test_the_old_constructor_still_works_and_new_fields_default() -> None:
    e = ex(0, 0.4, True, False)
    assert (e.p_wrong, e.label, e.local_label, e.probabilities, e.red_flag) == (
        None, None, None, None, False)


# --- error detection: AUROC and AUPRC ----------------------------------------------------------


def test_a_perfect_detector_has_auroc_and_auprc_one() -> None:
    examples = perfect(n_wrong=3)  # wrong exactly on the 3 least confident
    assert auroc(examples) == 1.0
    assert auprc(examples) == 1.0
    backwards = reversed_router(n_wrong=3)  # wrong on the most confident
    assert auroc(backwards) == 0.0
    assert auprc(backwards) == pytest.approx((1 / 8 + 2 / 9 + 3 / 10) / 3)


def test_auroc_counts_ties_half_and_needs_both_classes() -> None:
    tied = [ex(i, 0.5, i % 2 == 0, True) for i in range(4)]
    assert auroc(tied) == 0.5
    assert auprc(tied) == 0.5  # one threshold: precision 0.5 over the whole recall
    all_right = [ex(i, 0.5, True, True) for i in range(3)]
    assert auroc(all_right) is None and auprc(all_right) is None


def test_auroc_and_auprc_match_scikit_learn() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rnd = random.Random(7)
    for trial in range(20):
        examples = [Example(id=f"e{i}", confidence=round(rnd.random(), 1),
                            local_correct=rnd.random() < 0.7, planner_correct=True,
                            p_wrong=round(rnd.random(), 1)) for i in range(5 + 3 * trial)]
        wrong = [not e.local_correct for e in examples]
        if len(set(wrong)) < 2:
            continue
        for router in ("confidence", "learned"):
            score = scores(examples, router)
            assert auroc(examples, router) == pytest.approx(
                metrics.roc_auc_score(wrong, score), abs=1e-12)
            assert auprc(examples, router) == pytest.approx(
                metrics.average_precision_score(wrong, score), abs=1e-12)


# --- the CPT floor and its intervals --------------------------------------------------------------


def test_cpt_floor_is_095_times_the_local_error_rate_with_an_always_right_planner() -> None:
    examples = perfect(n_wrong=3)  # error rate 0.3
    assert cpt_floor(examples) == pytest.approx(0.95 * 0.3)
    # even the perfect router cannot go below it
    cpt95 = cpt(curve(examples), 0.95)
    floor = cpt_floor(examples)
    assert cpt95 is not None and floor is not None and cpt95 >= floor
    # a planner that is sometimes wrong: the floor is 0.95 x the gap (strong 0.8 - weak 0.4)
    assert cpt_floor(SMALL) == pytest.approx(0.95 * 0.4)
    assert cpt_floor([ex(0, 0.5, True, False)]) is None  # no gap
    assert summarize(examples, 0.2).cpt_floor == cpt_floor(examples)


def noisy(n: int = 120, seed: int = 1) -> list[Example]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        right = rnd.random() < 0.75
        confidence = min(1.0, max(0.0, (0.7 if right else 0.4) + rnd.gauss(0, 0.15)))
        out.append(ex(i, round(confidence, 3), right, True))
    return out


def test_bootstrap_intervals_contain_the_estimate_and_repeat_under_a_seed() -> None:
    examples = noisy()
    points = curve(examples)
    intervals = cpt_intervals(examples, resamples=300, seed=5)
    assert set(intervals) == set(CPT_TARGETS)
    for key, target in CPT_TARGETS.items():
        interval, estimate = intervals[key], cpt(points, target)
        assert interval is not None and estimate is not None
        assert interval.low <= estimate <= interval.high, key
        assert interval.low < interval.high  # 120 examples: real uncertainty
    assert cpt_intervals(examples, resamples=300, seed=5) == intervals
    assert cpt_intervals(examples, resamples=300, seed=6) != intervals
    summary = summarize(examples, 0.2, resamples=300, seed=5)
    assert summary.cpt_ci == intervals
    assert summary.cpt90 == cpt(points, 0.9)


def test_bootstrap_without_a_gap_has_no_interval() -> None:
    examples = [ex(i, i / 10, True, True) for i in range(10)]  # local always right
    assert cpt_intervals(examples, resamples=50) == {key: None for key in CPT_TARGETS}
    with pytest.raises(ValueError, match="resamples"):
        cpt_intervals(examples, resamples=0)


# --- per-class recall ---------------------------------------------------------------------------


def test_per_class_recall_local_and_routed_with_critical_labels_first() -> None:
    def g(i: int, gold: str, local: bool, confidence: float) -> Example:
        return Example(id=f"e{i}", confidence=confidence, local_correct=local,
                       planner_correct=True, label=gold)

    examples = [g(0, "billing", True, 0.9), g(1, "billing", False, 0.2),
                g(2, "emergency", False, 0.3), g(3, "emergency", False, 0.8),
                g(4, "appointment", True, 0.7), Example(id="x", confidence=0.1,
                                                        local_correct=False,
                                                        planner_correct=True)]
    recall = per_class_recall(examples, {"e1", "e2"}, first=["emergency", "nothing"])
    assert list(recall) == ["emergency", "appointment", "billing"]
    assert (recall["emergency"].n, recall["emergency"].local,
            recall["emergency"].routed) == (2, 0.0, 0.5)
    assert (recall["billing"].local, recall["billing"].routed) == (0.5, 1.0)
    # in a summary: routed at the chosen threshold (below 0.7 here escalates e1, e2, x)
    summary = summarize(examples, 0.5, first=["emergency"])
    assert summary.chosen_threshold == 0.7
    assert list(summary.per_class_recall) == ["emergency", "appointment", "billing"]
    assert summary.per_class_recall["emergency"].routed == 0.5


# --- critical floors ----------------------------------------------------------------------------


def crit(i: int, gold: str, local: str, p_emergency: float, flag: bool = False) -> Example:
    return Example(id=f"c{i}", confidence=0.5, local_correct=gold == local,
                   planner_correct=True, label=gold, local_label=local,
                   probabilities={"emergency": p_emergency, "other": 1 - p_emergency},
                   red_flag=flag)


# Ten emergencies: 4 answered 'emergency' locally, 1 red-flagged, the rest by P(emergency):
# 0.40, 0.30, 0.20, 0.10, 0.05. Five others with P(emergency) 0.35, 0.25, 0.15, 0.02, 0.01.
CRITICAL = [
    *(crit(i, "emergency", "emergency", 0.9) for i in range(4)),
    crit(4, "emergency", "other", 0.01, flag=True),
    *(crit(5 + i, "emergency", "other", p) for i, p in enumerate([0.4, 0.3, 0.2, 0.1, 0.05])),
    *(crit(10 + i, "other", "other", p) for i, p in enumerate([0.35, 0.25, 0.15, 0.02, 0.01])),
]


def test_critical_floor_is_the_largest_that_reaches_min_recall() -> None:
    choice = choose_floor(CRITICAL, "emergency", 0.8)
    # 5 caught without a floor (4 local answers, 1 red flag); 8 of 10 needs 3 more: the
    # emergencies with P 0.4, 0.3 and 0.2 -> floor 0.2
    assert choice.floor == 0.2 and choice.met
    assert (choice.n, choice.caught, choice.recall) == (10, 8, 0.8)
    assert choice.recall_without_floor == 0.5
    # costs: emergencies 0.4, 0.3, 0.2 and the red flag, others 0.35 and 0.25: 6 of 15
    assert choice.share == pytest.approx(6 / 15)
    # the largest: any higher floor misses the target
    for floor in (0.2001, 0.25, 0.3, 0.5, 1.0):
        assert critical_at(CRITICAL, "emergency", floor, min_recall=0.8).recall < 0.8
    assert choose_floor(CRITICAL, "emergency", 1.0).floor == 0.05
    assert choose_floor(CRITICAL, "emergency", 0.5).floor == 1.0  # local + red flag suffice


def test_red_flags_count_only_when_the_label_has_them() -> None:
    with_flags = choose_floor(CRITICAL, "emergency", 0.9)
    without = choose_floor(CRITICAL, "emergency", 0.9, red_flags=False)
    assert (with_flags.floor, without.floor) == (0.1, 0.05)
    assert without.recall_without_floor == 0.4


def test_critical_floor_without_examples_or_probabilities() -> None:
    none = choose_floor(CRITICAL, "stroke", 0.99)
    assert (none.floor, none.recall, none.met, none.n) == (None, None, False, 0)
    # without probabilities only a local answer of the label counts (as decide() reads it)
    bare = [Example(id="a", confidence=0.9, local_correct=True, planner_correct=True,
                    label="emergency", local_label="emergency"),
            Example(id="b", confidence=0.9, local_correct=False, planner_correct=True,
                    label="emergency", local_label="other")]
    choice = choose_floor(bare, "emergency", 0.99)
    assert not choice.met and choice.recall == 0.5
