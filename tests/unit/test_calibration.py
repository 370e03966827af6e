"""Routing calibration math: threshold curve, PGR, APGR, CPT, random baseline, threshold choice."""

from __future__ import annotations

import pytest

from shoal.policies.escalation.calibration import (
    CalibrationSummary,
    CurvePoint,
    Example,
    RoutingPoint,
    apgr,
    choose_threshold,
    cpt,
    curve,
    random_baseline,
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
