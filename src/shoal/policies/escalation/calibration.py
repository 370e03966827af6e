"""Routing calibration: how much of the planner's advantage a confidence threshold buys per call.

The metrics follow RouteLLM (Ong et al. 2024, "RouteLLM: Learning to Route LLMs with Preference
Data"), with the local node as the weak model and the planner as the strong one. A router here is
a threshold ``t`` on the local node's confidence: an example with ``confidence < t`` is escalated
to the planner, every other one keeps its local answer. Lowering the confidence you trust costs
planner calls (the *share* escalated) and should buy quality; these functions measure that trade
on labelled examples so a threshold can be chosen from data instead of guessed.

``PGR = (q(router) - q(weak)) / (q(strong) - q(weak))`` is the part of the weak-to-strong gap a
routing recovers. It only means something when the planner is better (``q(strong) > q(weak)``);
otherwise every PGR, APGR and CPT is ``None`` and :attr:`CalibrationSummary.pgr_defined` is false.

Everything is pure arithmetic over the examples: no model calls, no I/O. Qualities and PGRs are
computed from integer counts, so equal routings compare equal exactly.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CalibrationSummary",
    "CurvePoint",
    "Example",
    "RoutingPoint",
    "apgr",
    "choose_threshold",
    "cpt",
    "curve",
    "random_baseline",
    "summarize",
]

_FROZEN = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
APGR_GRID: tuple[float, ...] = tuple(k / 10 for k in range(11))
"""Shares 0, 0.1, ..., 1.0 at which :func:`apgr` reads the PGR (``k / 10``, exact decimals)."""


class Example(BaseModel):
    """One labelled example: the local node's confidence and whether each side was right."""

    model_config = _FROZEN

    id: str
    confidence: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    local_correct: bool
    planner_correct: bool


class RoutingPoint(BaseModel):
    """One routing: the share escalated, the resulting quality, and its PGR (None: no gap)."""

    model_config = _FROZEN

    share: float
    quality: float
    pgr: float | None


class CurvePoint(RoutingPoint):
    """A threshold routing: examples with ``confidence < threshold`` go to the planner."""

    threshold: float


class CalibrationSummary(BaseModel):
    """Everything :func:`summarize` computes, ready to log or to store next to a graph spec."""

    model_config = _FROZEN

    n: int
    local_quality: float
    planner_quality: float
    gap: float
    pgr_defined: bool
    points: tuple[CurvePoint, ...]
    apgr: float | None
    cpt50: float | None
    cpt80: float | None
    cpt95: float | None
    random_points: tuple[RoutingPoint, ...]
    random_apgr: float | None
    target_share: float
    chosen_threshold: float
    chosen_share: float
    chosen_quality: float


def _check_share(value: float, what: str) -> None:
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(f"{what} must be within [0, 1], got {value!r}")


def _tally(examples: Sequence[Example]) -> tuple[int, int, int]:
    """``(n, weak, strong)``: example count, local-correct count, planner-correct count."""
    if not examples:
        raise ValueError("calibration needs at least one labelled example")
    for example in examples:  # model_construct() skips the field check; arithmetic must not
        if not 0.0 <= example.confidence <= 1.0:
            raise ValueError(f"example {example.id!r}: confidence must be within [0, 1], "
                             f"got {example.confidence!r}")
    weak = sum(e.local_correct for e in examples)
    strong = sum(e.planner_correct for e in examples)
    return len(examples), weak, strong


def curve(examples: Sequence[Example], shares: Sequence[float] | None = None) -> list[CurvePoint]:
    """Share, quality and PGR of routing by every useful confidence threshold.

    Candidate thresholds are 0 (escalate nothing), every distinct confidence, and the next float
    above the largest confidence (escalate everything), so shares 0 and 1 are always present.
    Examples with equal confidence fall on the same side of every threshold: ties move together,
    and a share that would need to split a tie is simply not on the curve. Thresholds that route
    identically (0 and a minimum confidence above 0) are reported once, at the lowest threshold.

    With ``shares``, returns for each requested share the point with the largest share not above
    it: a threshold router cannot split ties, but it can always escalate less.
    """
    n, weak, strong = _tally(examples)
    gain: dict[float, int] = {}  # per confidence level: planner-correct minus local-correct
    count: dict[float, int] = {}
    for e in examples:
        gain[e.confidence] = gain.get(e.confidence, 0) + e.planner_correct - e.local_correct
        count[e.confidence] = count.get(e.confidence, 0) + 1
    levels = sorted(gain)
    thresholds = [*sorted({0.0, *levels}), math.nextafter(levels[-1], math.inf)]
    points: list[CurvePoint] = []
    escalated, correct, i, last = 0, weak, 0, -1
    for threshold in thresholds:
        while i < len(levels) and levels[i] < threshold:
            escalated += count[levels[i]]
            correct += gain[levels[i]]
            i += 1
        if escalated == last:
            continue  # same routing as the previous, lower threshold
        last = escalated
        pgr = (correct - weak) / (strong - weak) if strong > weak else None
        points.append(CurvePoint(threshold=threshold, share=escalated / n, quality=correct / n,
                                 pgr=pgr))
    if shares is None:
        return points
    picked: list[CurvePoint] = []
    for share in shares:
        _check_share(share, "share")
        picked.append(max((p for p in points if p.share <= share), key=lambda p: p.share))
    return picked


def apgr(points: Sequence[RoutingPoint]) -> float | None:
    """Average PGR over shares, RouteLLM's single-number score for a router (None: no gap).

    Exact definition used here: let ``PGR*(s)`` be the best PGR among the points with
    ``share <= s`` (0 if there is none: escalating nothing recovers nothing), a step function
    because a router may always escalate less than it is allowed. Then

        APGR = (1/10) * (PGR*(0)/2 + PGR*(0.1) + ... + PGR*(0.9) + PGR*(1.0)/2),

    the trapezoidal area under ``PGR*`` over [0, 1] on the 11 shares ``k/10``. RouteLLM reads the
    PGR at ten evenly spaced call percentages; the trapezoid (which its evaluation code also
    uses, via ``np.trapz``) rather than a plain mean of ``PGR*(0.1..1.0)`` is what makes random
    routing (``PGR = s``) score exactly 0.5; the plain mean would give it 0.55.
    """
    defined = [(p.share, p.pgr) for p in points if p.pgr is not None]
    if not defined:
        return None
    best = [max((pgr for share, pgr in defined if share <= s), default=0.0) for s in APGR_GRID]
    return (sum(best) - (best[0] + best[-1]) / 2) / (len(APGR_GRID) - 1)


def cpt(points: Sequence[RoutingPoint], pgr_target: float) -> float | None:
    """Call-performance threshold: the least share whose PGR reaches ``pgr_target``.

    RouteLLM's CPT(x%), e.g. ``cpt(points, 0.5)`` for CPT(50%): how many planner calls it takes
    to recover that part of the gap. None when no point reaches it or PGR is undefined.
    """
    reached = [p.share for p in points if p.pgr is not None and p.pgr >= pgr_target]
    return min(reached, default=None)


def random_baseline(examples: Sequence[Example],
                    shares: Sequence[float] | None = None) -> list[RoutingPoint]:
    """Expected quality of escalating a random ``share`` of examples: the line to beat.

    A random router's expected quality is ``(1 - s) * q_weak + s * q_strong``, so its PGR is ``s``
    itself (None without a gap). ``shares`` defaults to 0, 0.1, ..., 1.0, where :func:`apgr`
    reads it (giving 0.5).
    """
    n, weak, strong = _tally(examples)
    points: list[RoutingPoint] = []
    for share in APGR_GRID if shares is None else shares:
        _check_share(share, "share")
        quality = ((1 - share) * weak + share * strong) / n
        points.append(RoutingPoint(share=share, quality=quality,
                                   pgr=share if strong > weak else None))
    return points


def choose_threshold(points: Sequence[CurvePoint], target_share: float) -> CurvePoint:
    """The best-quality threshold that escalates at most ``target_share`` of examples.

    The share is a budget (planner calls cost time, money or privacy), so it is a hard cap; among
    equally good points the one escalating less wins, since extra calls would buy nothing.
    """
    _check_share(target_share, "target_share")
    allowed = [p for p in points if p.share <= target_share]
    if not allowed:
        raise ValueError(f"no point escalates at most {target_share!r} of examples")
    return min(allowed, key=lambda p: (-p.quality, p.share))


def summarize(examples: Sequence[Example], target_share: float) -> CalibrationSummary:
    """Curve, APGR, CPT(50/80/95%), random baseline and the chosen threshold in one record."""
    _check_share(target_share, "target_share")
    n, weak, strong = _tally(examples)
    points = curve(examples)
    chosen = choose_threshold(points, target_share)
    random_points = random_baseline(examples)
    return CalibrationSummary(
        n=n, local_quality=weak / n, planner_quality=strong / n, gap=(strong - weak) / n,
        pgr_defined=strong > weak, points=tuple(points), apgr=apgr(points),
        cpt50=cpt(points, 0.5), cpt80=cpt(points, 0.8), cpt95=cpt(points, 0.95),
        random_points=tuple(random_points), random_apgr=apgr(random_points),
        target_share=target_share, chosen_threshold=chosen.threshold,
        chosen_share=chosen.share, chosen_quality=chosen.quality,
    )
