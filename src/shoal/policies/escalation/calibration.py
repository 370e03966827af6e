"""Routing calibration: how much of the planner's advantage a router buys per call.

The metrics follow RouteLLM (Ong et al. 2024, "RouteLLM: Learning to Route LLMs with Preference
Data"), with the local node as the weak model and the planner as the strong one. A router ranks
examples by a score (higher: escalate first) and a threshold cuts the ranking: everything above
the cut goes to the planner, every other example keeps its local answer. Two routers share that
one code path (:data:`Router`):

- ``confidence``: the local node's own top probability, escalating when ``confidence < t``
  (a rule's ``below``); its score is ``-confidence`` (the order of ``1 - confidence``, without
  the rounding that would merge nearly equal confidences);
- ``learned``: a learned deferral router's P(local answer wrong), escalating when
  ``p_wrong >= t`` (a rule's ``router.above``).

Trusting less costs planner calls (the *share* escalated) and should buy quality; these
functions measure that trade on labelled examples so a threshold can be chosen from data instead
of guessed.

``PGR = (q(router) - q(weak)) / (q(strong) - q(weak))`` is the part of the weak-to-strong gap a
routing recovers. It only means something when the planner is better (``q(strong) > q(weak)``);
otherwise every PGR, APGR and CPT is ``None`` and :attr:`CalibrationSummary.pgr_defined` is false.
With a planner that is always right, PGR at share ``s`` is the share of local errors caught, so no
router reaches CPT(95%) below 0.95 x the local error rate (:func:`cpt_floor`).

Beyond RouteLLM: bootstrap intervals for each CPT (:func:`cpt_intervals`), how well the score
detects the local node's errors (:func:`auroc`, :func:`auprc`), recall per gold label
(:func:`per_class_recall`), and the floor of a critical label (:func:`choose_floor`).

Everything is pure arithmetic over the examples: no model calls, no I/O. Qualities and PGRs are
computed from integer counts, so equal routings compare equal exactly.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "CPT_TARGETS",
    "ROUTERS",
    "CalibrationSummary",
    "ClassRecall",
    "CurvePoint",
    "Example",
    "FloorChoice",
    "Interval",
    "Router",
    "RoutingPoint",
    "apgr",
    "auprc",
    "auroc",
    "choose_floor",
    "choose_threshold",
    "choose_with_forced",
    "critical_fires",
    "critical_ids",
    "cpt",
    "cpt_floor",
    "cpt_intervals",
    "critical_at",
    "curve",
    "escalates",
    "per_class_recall",
    "random_baseline",
    "scores",
    "summarize",
]

_FROZEN = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
APGR_GRID: tuple[float, ...] = tuple(k / 10 for k in range(11))
"""Shares 0, 0.1, ..., 1.0 at which :func:`apgr` reads the PGR (``k / 10``, exact decimals)."""

Router = Literal["confidence", "learned"]
"""What ranks the examples: the local confidence, or a learned router's P(wrong)."""
ROUTERS: tuple[Router, ...] = ("confidence", "learned")

CPT_TARGETS: dict[str, float] = {"cpt50": 0.5, "cpt80": 0.8, "cpt90": 0.9, "cpt95": 0.95}
"""The CPTs a summary reports, by key."""
BOOTSTRAP_RESAMPLES = 1000
"""Resamples behind each CPT interval (:func:`cpt_intervals`)."""


class Example(BaseModel):
    """One labelled example: the local node's confidence and whether each side was right, and
    what the richer metrics need (all optional, so a bare example still works)."""

    model_config = _FROZEN

    id: str
    confidence: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    local_correct: bool
    planner_correct: bool
    p_wrong: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)
    """The learned router's P(local answer wrong); None without a router."""
    label: str | None = None
    """The gold label (for per-class recall and critical floors)."""
    local_label: str | None = None
    """The local node's answer."""
    probabilities: dict[str, float] | None = None
    """The local node's probability per label."""
    red_flag: bool = False
    """A red flag of one of the node's critical labels fired on the (masked) working text."""


class RoutingPoint(BaseModel):
    """One routing: the share escalated, the resulting quality, and its PGR (None: no gap)."""

    model_config = _FROZEN

    share: float
    quality: float
    pgr: float | None


class CurvePoint(RoutingPoint):
    """A threshold routing: examples with ``confidence < threshold`` (confidence router) or
    ``p_wrong >= threshold`` (learned router) go to the planner."""

    threshold: float


class Interval(BaseModel):
    """A two-sided interval (``low <= high``)."""

    model_config = _FROZEN

    low: float
    high: float


class ClassRecall(BaseModel):
    """One gold label's recall: kept local, and routed at the chosen threshold."""

    model_config = _FROZEN

    n: int
    """Examples with this gold label."""
    local: float
    routed: float


class FloorChoice(BaseModel):
    """A critical label's floor and what it does on the calibration data (:func:`critical_at`).

    A record of the label counts as *caught* when the local answer is the label, or its
    probability is at or above ``floor``, or a red flag fired: what makes it critical at run
    time, whatever the budget (the planner, always right, then answers it)."""

    model_config = _FROZEN

    label: str
    floor: float | None
    """None: no example of the label, nothing to choose from."""
    min_recall: float | None
    n: int
    """Examples whose gold label is ``label``."""
    caught: int
    recall: float | None
    """``caught / n``; None without examples of the label."""
    recall_without_floor: float | None
    """Recall from the local answer and red flags alone: what the floor adds."""
    met: bool
    """``recall >= min_recall`` (False without examples or without a target)."""
    share: float
    """Share of all examples the rule makes critical with another local label: the planner
    calls (or routes) it adds past any budget."""
    chosen_on: int = 0
    """Examples of the label the floor was chosen on (calibration data plus any out-of-fold
    evidence, red flags not counted); 0 when the floor was not chosen here."""
    chosen_recall: float | None = None
    """The recall the floor reaches on those, from the model alone (no red flags)."""


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
    router: Router = "confidence"
    cpt90: float | None = None
    cpt_ci: dict[str, Interval | None] = Field(default_factory=dict)
    """Per CPT key (``cpt50``, ...): its bootstrap 95% interval (:func:`cpt_intervals`)."""
    auroc: float | None = None
    """How well the router's score separates the local node's errors (:func:`auroc`)."""
    auprc: float | None = None
    cpt_floor: float | None = None
    """The least CPT(95%) any router can reach on these examples (:func:`cpt_floor`)."""
    per_class_recall: dict[str, ClassRecall] = Field(default_factory=dict)
    """Per gold label, the ``first`` labels (critical ones) first (:func:`per_class_recall`)."""


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


def scores(examples: Sequence[Example], router: Router = "confidence") -> NDArray[np.float64]:
    """Each example's routing score, higher: escalate first (``-confidence`` or ``p_wrong``).

    Raises ValueError when a learned score is missing or outside [0, 1]."""
    if router == "confidence":
        return -np.array([e.confidence for e in examples], dtype=np.float64)
    missing = [e.id for e in examples if e.p_wrong is None]
    if missing:
        raise ValueError(f"the learned router gave no P(wrong) for {len(missing)} of "
                         f"{len(examples)} examples (first: {missing[0]!r})")
    values = np.array([e.p_wrong for e in examples], dtype=np.float64)
    bad = ~((values >= 0.0) & (values <= 1.0))  # also NaN
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"example {examples[i].id!r}: p_wrong must be within [0, 1], "
                         f"got {examples[i].p_wrong!r}")
    return values


def escalates(example: Example, router: Router, threshold: float) -> bool:
    """Whether ``threshold`` sends ``example`` to the planner under ``router``."""
    if router == "confidence":
        return example.confidence < threshold
    return example.p_wrong is not None and example.p_wrong >= threshold


@dataclass(frozen=True)
class _Cuts:
    """Every routing a threshold can make: cut ``k`` escalates the ``k`` highest score levels."""

    levels: NDArray[np.float64]
    """Distinct scores, highest first."""
    escalated: NDArray[np.int64]
    """Per cut ``k = 0..len(levels)``: examples escalated."""
    correct: NDArray[np.int64]
    """Per cut: examples answered right (the planner's answer where escalated)."""


def _cuts(score: NDArray[np.float64], gain: NDArray[np.int64], weak: int) -> _Cuts:
    """Cumulative counts over the score levels; ``gain`` is planner-correct minus local-correct.

    Examples with equal score fall on the same side of every threshold: ties move together."""
    levels, inverse = np.unique(score, return_inverse=True)
    count = np.bincount(inverse, minlength=len(levels))[::-1]
    gains = np.bincount(inverse, weights=gain, minlength=len(levels))[::-1]
    zero = np.zeros(1, dtype=np.int64)
    return _Cuts(levels=levels[::-1],
                 escalated=np.concatenate([zero, np.cumsum(count)]).astype(np.int64),
                 correct=weak + np.concatenate([zero, np.cumsum(np.rint(gains))]).astype(np.int64))


def _threshold(cuts: _Cuts, k: int, router: Router) -> float:
    """The router's threshold that makes cut ``k``, in the router's own units."""
    levels, last = cuts.levels, len(cuts.levels)
    if router == "confidence":  # levels are -confidence; escalate confidence < t
        if k == 0:
            return 0.0
        return -float(levels[k]) if k < last else math.nextafter(-float(levels[-1]), math.inf)
    # learned: escalate p_wrong >= t; nothing escalates just above the largest score
    return float(levels[k - 1]) if k else math.nextafter(float(levels[0]), math.inf)


def _arrays(examples: Sequence[Example], router: Router
            ) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.int64]]:
    """(score, local-correct, planner-correct) as arrays."""
    local = np.array([e.local_correct for e in examples], dtype=np.int64)
    planner = np.array([e.planner_correct for e in examples], dtype=np.int64)
    return scores(examples, router), local, planner


def curve(examples: Sequence[Example], shares: Sequence[float] | None = None, *,
          router: Router = "confidence") -> list[CurvePoint]:
    """Share, quality and PGR of routing by every useful threshold of ``router``.

    Confidence: candidate thresholds are 0 (escalate nothing), every distinct confidence, and
    the next float above the largest confidence (escalate everything), so shares 0 and 1 are
    always present; thresholds that route identically (0 and a minimum confidence above 0) are
    reported once, at the lowest threshold. Learned: the next float above the largest P(wrong)
    (escalate nothing), then every distinct P(wrong), from the largest down.
    Examples with equal score fall on the same side of every threshold: ties move together,
    and a share that would need to split a tie is simply not on the curve.

    With ``shares``, returns for each requested share the point with the largest share not above
    it: a threshold router cannot split ties, but it can always escalate less.
    """
    n, weak, strong = _tally(examples)
    score, local, planner = _arrays(examples, router)
    cuts = _cuts(score, planner - local, weak)
    points: list[CurvePoint] = []
    for k in range(len(cuts.levels) + 1):
        escalated, correct = int(cuts.escalated[k]), int(cuts.correct[k])
        pgr = (correct - weak) / (strong - weak) if strong > weak else None
        points.append(CurvePoint(threshold=_threshold(cuts, k, router), share=escalated / n,
                                 quality=correct / n, pgr=pgr))
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


def cpt_floor(examples: Sequence[Example], pgr_target: float = 0.95) -> float | None:
    """The least CPT(``pgr_target``) any router can reach: ``pgr_target x gap``.

    A perfect error detector escalates only examples the planner gets right and the local node
    wrong, each worth one example of the gap, so it needs ``pgr_target x gap`` of them. With a
    planner that is always right the gap is the local error rate: CPT(95%) >= 0.95 x local error
    rate, whatever the router. None without a positive gap."""
    n, weak, strong = _tally(examples)
    return pgr_target * (strong - weak) / n if strong > weak else None


def cpt_intervals(examples: Sequence[Example], *, router: Router = "confidence",
                  targets: Mapping[str, float] = CPT_TARGETS,
                  resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                  level: float = 0.95) -> dict[str, Interval | None]:
    """Percentile bootstrap intervals for each CPT, by key of ``targets``.

    Each of ``resamples`` resamples draws ``n`` examples with replacement (NumPy's
    ``default_rng(seed)``, so the same call gives the same intervals), re-runs the whole sweep on
    them and reads each CPT; the interval is the ``(1 - level) / 2`` and ``(1 + level) / 2``
    percentiles of those CPTs (linear interpolation). Resamples without a positive gap have no
    CPT and are left out; with fewer than half of them left, the interval is None.
    """
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be within (0, 1), got {level!r}")
    n, _, _ = _tally(examples)
    score, local, planner = _arrays(examples, router)
    rng = np.random.default_rng(seed)
    found: dict[str, list[float]] = {key: [] for key in targets}
    for _ in range(resamples):
        pick = rng.integers(0, n, size=n)
        weak, strong = int(local[pick].sum()), int(planner[pick].sum())
        if strong <= weak:
            continue
        cuts = _cuts(score[pick], planner[pick] - local[pick], weak)
        pgr = (cuts.correct - weak) / (strong - weak)
        for key, target in targets.items():
            # The first cut reaching it has the least share (shares grow with the cut); the
            # last cut escalates everything, PGR 1, so one always does for targets <= 1.
            reached = np.flatnonzero(pgr >= target)
            if reached.size:
                found[key].append(int(cuts.escalated[reached[0]]) / n)
    tail = (1.0 - level) / 2 * 100
    out: dict[str, Interval | None] = {}
    for key, values in found.items():
        if 2 * len(values) < resamples:
            out[key] = None
            continue
        low, high = np.percentile(np.array(values), [tail, 100 - tail])
        out[key] = Interval(low=float(low), high=float(high))
    return out


def _wrong(examples: Sequence[Example]) -> NDArray[np.bool_]:
    return np.array([not e.local_correct for e in examples], dtype=np.bool_)


def auroc(examples: Sequence[Example], router: Router = "confidence") -> float | None:
    """Area under the ROC curve of the router's score as a detector of local errors: the
    chance that a random wrong example scores above a random right one, ties counting half
    (Mann-Whitney). 1: perfect, 0.5: no better than chance; None when the local node is always
    right or always wrong."""
    _tally(examples)
    score, wrong = scores(examples, router), _wrong(examples)
    pos, neg = int(wrong.sum()), int((~wrong).sum())
    if not pos or not neg:
        return None
    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    below = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = below + (counts + 1) / 2  # 1-based average rank of each tie group
    rank_sum = float(rank[inverse][wrong].sum())
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def auprc(examples: Sequence[Example], router: Router = "confidence") -> float | None:
    """Area under the precision-recall curve of the router's score as a detector of local
    errors, as average precision (scikit-learn's ``average_precision_score``): the sum over
    distinct thresholds of precision times the recall gained. A random score gets about the
    local error rate; None when the local node is never wrong."""
    _tally(examples)
    score, wrong = scores(examples, router), _wrong(examples)
    pos = int(wrong.sum())
    if not pos:
        return None
    cuts = _cuts(score, wrong.astype(np.int64), 0)  # "correct" counts the errors escalated
    tp = cuts.correct[1:].astype(np.float64)
    precision = tp / cuts.escalated[1:]
    recall_gain = np.diff(np.concatenate([[0.0], tp])) / pos
    return float((precision * recall_gain).sum())


def per_class_recall(examples: Sequence[Example], escalated: Collection[str],
                     first: Sequence[str] = ()) -> dict[str, ClassRecall]:
    """Per gold label: the share of its examples answered right kept local, and routed (the
    planner's answer for ids in ``escalated``, the local one for the rest).

    Labels in ``first`` that occur come first, in that order (critical labels), then the rest
    sorted. Examples without a gold label are left out."""
    right: dict[str, list[int]] = {}
    for e in examples:
        if e.label is None:
            continue
        row = right.setdefault(e.label, [0, 0, 0])
        row[0] += 1
        row[1] += e.local_correct
        row[2] += e.planner_correct if e.id in escalated else e.local_correct
    order = [label for label in first if label in right]
    order += sorted(label for label in right if label not in order)
    return {label: ClassRecall(n=right[label][0], local=right[label][1] / right[label][0],
                               routed=right[label][2] / right[label][0]) for label in order}


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


def choose_with_forced(examples: Sequence[Example], target_share: float, forced: Collection[str], *,
                       router: Router = "confidence") -> CurvePoint:
    """:func:`choose_threshold` when the examples with ids in ``forced`` go to the planner
    whatever the threshold (critical labels past any budget): each candidate threshold's share
    and quality count them as escalated, so the threshold spends only what the critical
    escalations leave of ``target_share``. When they alone exceed it, the threshold escalating
    nothing else is returned (its share says by how much)."""
    _check_share(target_share, "target_share")
    n = len(examples)
    best: CurvePoint | None = None
    for point in curve(examples, router=router):
        sent = [e.id in forced or escalates(e, router, point.threshold) for e in examples]
        share = sum(sent) / n
        quality = sum((e.planner_correct if s else e.local_correct)
                      for e, s in zip(examples, sent, strict=True)) / n
        candidate = CurvePoint(threshold=point.threshold, share=share, quality=quality,
                               pgr=None)
        better = best is None or (
            (share <= target_share and (best.share > target_share
                                        or (quality, -share) > (best.quality, -best.share)))
            # Nothing within the target yet: escalate as little as the critical ones allow.
            or (best.share > target_share and share < best.share))
        if better:
            best = candidate
    assert best is not None  # the curve always has the escalate-nothing point
    return best


def _p(example: Example, label: str) -> float | None:
    """P(label) as a critical rule reads it: the probabilities, else the confidence of a local
    answer that is the label (as :func:`~shoal.policies.escalation.rules.decide` does)."""
    if example.probabilities is not None:
        return example.probabilities.get(label)
    return example.confidence if example.local_label == label else None


def critical_at(examples: Sequence[Example], label: str, floor: float | None, *,
                min_recall: float | None = None, red_flags: bool = True) -> FloorChoice:
    """What a critical rule for ``label`` with ``floor`` does on ``examples``: a record is
    critical when its P(label) is at or above ``floor`` or (``red_flags``) a red flag fired, and
    a record of the label is caught when it is critical or answered ``label`` locally."""
    if floor is not None and not 0.0 <= floor <= 1.0:
        raise ValueError(f"floor must be within [0, 1], got {floor!r}")

    def fires(e: Example, with_floor: bool) -> bool:
        return critical_fires(e, label, floor if with_floor else None, red_flags=red_flags)

    gold = [e for e in examples if e.label == label]
    caught = sum(e.local_label == label or fires(e, True) for e in gold)
    without = sum(e.local_label == label or fires(e, False) for e in gold)
    added = sum(e.local_label != label and fires(e, True) for e in examples)
    recall = caught / len(gold) if gold else None
    return FloorChoice(
        label=label, floor=floor, min_recall=min_recall, n=len(gold), caught=caught,
        recall=recall, recall_without_floor=without / len(gold) if gold else None,
        met=recall is not None and min_recall is not None and recall >= min_recall,
        share=added / len(examples) if examples else 0.0)


def choose_floor(examples: Sequence[Example], label: str, min_recall: float, *,
                 red_flags: bool = True) -> FloorChoice:
    """The largest floor on P(``label``) whose recall of ``label`` reaches ``min_recall``
    (:func:`critical_at` says what counts as caught), with the share it costs.

    Recall only changes at the probabilities of the label's own examples, so the candidates are
    1.0 and those probabilities, tried from the largest down. A larger floor makes fewer records
    critical: the largest one that is enough is the cheapest. When no floor is enough (examples
    of the label without a probability), the one catching the most is returned with ``met``
    false; without examples of the label, the floor is None."""
    _check_share(min_recall, "min_recall")
    gold = [e for e in examples if e.label == label]
    if not gold:
        return critical_at(examples, label, None, min_recall=min_recall, red_flags=red_flags)
    candidates = sorted({1.0, *(p for e in gold if (p := _p(e, label)) is not None)},
                        reverse=True)
    for floor in candidates:
        choice = critical_at(examples, label, floor, min_recall=min_recall, red_flags=red_flags)
        if choice.met:
            return choice
    return choice  # the smallest candidate: the most any floor catches


def critical_ids(examples: Sequence[Example], label: str, floor: float | None, *,
                 red_flags: bool = True) -> set[str]:
    """Ids of the examples a critical rule for ``label`` sends to the planner past any budget:
    the rule fires (P(label) >= ``floor``, or a red flag) and the local answer is another
    label (a local ``label`` stays local, as :func:`~shoal.policies.escalation.rules.decide`
    has it)."""
    return {e.id for e in examples
            if e.local_label != label and critical_fires(e, label, floor, red_flags=red_flags)}


def critical_fires(example: Example, label: str, floor: float | None, *,
                   red_flags: bool = True) -> bool:
    """Whether a critical rule for ``label`` fires on ``example``: P(label) >= ``floor``, or
    (``red_flags``) a red flag fired, whatever the local answer."""
    p = _p(example, label)
    return (floor is not None and p is not None and p >= floor) or (red_flags and example.red_flag)


def summarize(examples: Sequence[Example], target_share: float, *,
              router: Router = "confidence", first: Sequence[str] = (),
              resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
              forced: Collection[str] = ()) -> CalibrationSummary:
    """Curve, APGR, CPT(50/80/90/95%) with bootstrap intervals, AUROC and AUPRC of error
    detection, the CPT floor, the random baseline, the chosen threshold and per-class recall
    (``first``: labels listed first, the critical ones) in one record."""
    _check_share(target_share, "target_share")
    n, weak, strong = _tally(examples)
    points = curve(examples, router=router)
    # ``forced``: ids escalated whatever the threshold (critical labels); the chosen threshold
    # spends only what they leave of the target share, and chosen_share/quality include them.
    chosen = (choose_with_forced(examples, target_share, forced, router=router) if forced
              else choose_threshold(points, target_share))
    random_points = random_baseline(examples)
    escalated = {e.id for e in examples
                 if e.id in forced or escalates(e, router, chosen.threshold)}
    return CalibrationSummary(
        n=n, local_quality=weak / n, planner_quality=strong / n, gap=(strong - weak) / n,
        pgr_defined=strong > weak, points=tuple(points), apgr=apgr(points),
        cpt50=cpt(points, 0.5), cpt80=cpt(points, 0.8), cpt95=cpt(points, 0.95),
        random_points=tuple(random_points), random_apgr=apgr(random_points),
        target_share=target_share, chosen_threshold=chosen.threshold,
        chosen_share=chosen.share, chosen_quality=chosen.quality,
        router=router, cpt90=cpt(points, 0.9),
        cpt_ci=cpt_intervals(examples, router=router, resamples=resamples, seed=seed),
        auroc=auroc(examples, router), auprc=auprc(examples, router),
        cpt_floor=cpt_floor(examples),
        per_class_recall=per_class_recall(examples, escalated, first),
    )
