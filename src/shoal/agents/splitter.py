"""``intent_splitter``: the requests in a message, found locally (:mod:`shoal.agents.splitting`).

Runs after a classifier node (``of``) on the same (masked) text: cuts it into sentence and clause
segments, labels them with its own classifier model in one batch, and groups them into parts.
Its label is the ``of`` node's label, so a graph routes a single-request message exactly as
before; ``output["parts"]`` lists each request (label, confidence, character spans of the
working text) for the steps that answer them one by one.

Confidence is 1.0 when every segment was sure enough to start a part or unsure enough to follow
one, and ``unsure_confidence`` when not: a node rule (``escalate_below``) then sends the unsure
ones to plan mode.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shoal.agents.base import Agent, AgentConfig, AgentContext, AgentResult, register
from shoal.agents.plans import (
    CheckedStep,
    PlanCache,
    Step,
    apply_cached,
    check_plan,
    groups,
    plan_messages,
    plan_schema,
    shape,
    to_cached,
)
from shoal.agents.splitting import (
    Confirm,
    CriticalRule,
    Segment,
    Split,
    group_parts,
    is_filler,
    segments,
)
from shoal.errors import AgentError, ShoalError
from shoal.models.base import Classifier
from shoal.observability.logging import get_logger
from shoal.policies.escalation import LocalAnswer
from shoal.policies.escalation.red_flags import matcher_for
from shoal.policies.privacy import scan_outbound

if TYPE_CHECKING:
    from shoal.policies.escalation import Escalator

_log = get_logger()

__all__ = ["IntentSplitter", "PlanModeConfig", "SplitterConfig", "TargetConfig"]


class TargetConfig(BaseModel):
    """A step target: the labels it answers and one line the planner reads about it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    labels: list[str] = Field(min_length=1)
    does: str = Field(min_length=1)


class PlanModeConfig(BaseModel):
    """``plan:`` of a splitter: ask the graph's planner for the steps when the split is unsure."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_steps: int = Field(default=4, ge=2, le=16)
    cache: bool = True
    """Keep each plan under the message's shape; a message of the same shape skips the planner."""
    cache_size: int = Field(default=1024, ge=1)
    max_tokens: int = Field(default=384, ge=32)
    timeout_s: float | None = Field(default=None, gt=0)


class SplitterConfig(AgentConfig):
    of: str
    """The classifier node whose whole-message label this node keeps (its routes stay valid)."""
    new_part: float = Field(default=0.6, gt=0, le=1)
    """A segment whose label is at least this sure starts a part of that label."""
    follow_below: float = Field(default=0.5, ge=0, le=1)
    """A segment less sure than this belongs to the part before it; in between it is unsure."""
    floors: dict[str, float] = Field(default_factory=dict)
    """Critical labels (emergency) start a part, sure, at this probability: as low as the ``of``
    node's critical floor, so no emergency hides inside a longer message."""
    red_flags: str | None = None
    """A red-flag pack (``clinical_red_flags``): a critical label below ``flag_below`` starts a
    part at its floor only where one of its flags fires on the segment (negation-aware). The
    ``of`` node's critical label for the whole message is kept as a step either way."""
    flag_below: float = Field(default=0.5, gt=0, le=1)
    """With ``red_flags``: from this probability on, a critical label needs no flag."""
    critical_top: bool = False
    """A critical label the model ranks first on a segment starts a part however unsure: a
    clause model spreads its probability over the labels of a short clause, and an emergency
    clause can be first at 0.4."""
    quiet: list[str] = Field(default_factory=list)
    """Labels that greetings and asides look like (off_topic): a part of one needs
    ``quiet_new_part``; between ``follow_below`` and that, the split is unsure (plan mode)."""
    quiet_new_part: float = Field(default=0.8, gt=0, le=1)
    asides: list[str] = Field(default_factory=list)
    """Labels of the node's model for a sentence that asks for nothing (``aside``: "Hope you
    had a good weekend!"): a segment the model ranks one of them first is left out like a
    greeting, unless a critical label fires on it; no step ever has one."""
    targets: dict[str, TargetConfig] = Field(default_factory=dict)
    """Step targets (nodes the route sends labels to) and the labels each answers; every label
    of the model must be in one. Without targets the node lists parts and makes no steps."""
    plan: PlanModeConfig | None = None
    """Plan mode; None: an unsure split stays as it is."""
    timeout_s: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> SplitterConfig:
        if self.follow_below > self.new_part:
            raise ValueError(f"follow_below ({self.follow_below}) must not exceed new_part "
                             f"({self.new_part})")
        seen: dict[str, str] = {}
        for target, spec in self.targets.items():
            for label in spec.labels:
                if label in seen:
                    raise ValueError(f"label {label!r} is in targets {seen[label]!r} and "
                                     f"{target!r}")
                seen[label] = target
        return self

    @property
    def max_steps(self) -> int:
        return self.plan.max_steps if self.plan is not None else 4


class IntentSplitter(Agent):
    """Splits a message into its requests with a classifier run per segment, and into steps
    (with the planner's help when unsure)."""

    name = "intent_splitter"
    Config = SplitterConfig
    config: SplitterConfig
    model_protocols = (Classifier,)

    def __init__(self, config: AgentConfig, *, node: str, model: Any = None) -> None:
        super().__init__(config, node=node, model=model)
        known = set(self.model.labels)
        cfg = self.config
        unknown = sorted((set(cfg.floors) | set(cfg.quiet) | set(cfg.asides)) - known)
        if unknown:
            raise AgentError(f"labels {unknown} in floors/quiet/asides are not the model's "
                             f"{sorted(known)}", node=node, agent=self.name)
        if clash := sorted(set(cfg.asides) & (set(cfg.floors) | set(cfg.quiet))):
            raise AgentError(f"labels {clash} cannot be asides and in floors/quiet",
                             node=node, agent=self.name)
        self._asides = frozenset(cfg.asides)
        known -= self._asides
        self._target_of = {label: t for t, spec in cfg.targets.items() for label in spec.labels}
        if cfg.targets and (left := sorted(known - set(self._target_of))):
            raise AgentError(f"labels {left} of the model are in no target: every request "
                             "needs a step to run", node=node, agent=self.name)
        if stray := sorted(set(self._target_of) - known):
            raise AgentError(f"target labels {stray} are not the model's {sorted(known)}",
                             node=node, agent=self.name)
        confirm: Confirm | None = None
        if cfg.red_flags is not None:
            matcher = matcher_for(cfg.red_flags)
            confirm = lambda text: bool(matcher.fired(text))  # noqa: E731
        self.critical = CriticalRule(cfg.floors, sure=cfg.flag_below, confirm=confirm,
                                     top=cfg.critical_top)
        """The rule a segment takes a critical label by, in its parts, its plan-cache groups
        and its planned steps alike."""
        self._escalator: Escalator | None = None
        self.cache = (PlanCache(cfg.plan.cache_size)
                      if cfg.plan is not None and cfg.plan.cache else None)

    @classmethod
    def step_targets(cls, config: AgentConfig) -> dict[str, frozenset[str]] | None:
        assert isinstance(config, SplitterConfig)
        return {t: frozenset(spec.labels) for t, spec in config.targets.items()}

    @classmethod
    def asks_planner(cls, config: AgentConfig) -> bool:
        assert isinstance(config, SplitterConfig)
        return config.plan is not None

    def bind_escalator(self, escalator: Escalator | None) -> None:
        self._escalator = escalator

    def requests(self, segs: Sequence[Segment], probabilities: Sequence[Mapping[str, float]]
                 ) -> tuple[list[Segment], list[dict[str, float]]]:
        """The segments that may hold a request, with their probabilities less the ``asides``
        labels: a segment the model ranks an aside first is left out, unless a critical label
        fires on it (a red flag in small talk is still an emergency)."""
        kept: list[Segment] = []
        probs_kept: list[dict[str, float]] = []
        for seg, probs in zip(segs, probabilities, strict=True):
            if (request := self._request(seg.text, probs)) is not None:
                kept.append(seg)
                probs_kept.append(request)
        return kept, probs_kept

    def _request(self, text: str, probs: Mapping[str, float]) -> dict[str, float] | None:
        """:meth:`requests` for one segment: None for an aside, else its probabilities less
        the ``asides`` labels."""
        if self._asides and max(sorted(probs), key=lambda k: probs[k]) in self._asides \
                and self.critical.label(text, probs) is None:
            return None
        return {k: v for k, v in probs.items() if k not in self._asides}

    def split(self, segs: Sequence[Segment], probabilities: Sequence[Mapping[str, float]]
              ) -> Split:
        """The parts of a text given its :func:`segments` and their probabilities."""
        return self._group(*self.requests(segs, probabilities))

    def _group(self, segs: Sequence[Segment], probabilities: Sequence[Mapping[str, float]]
               ) -> Split:
        """:meth:`split` of segments :meth:`requests` already kept."""
        cfg = self.config
        return group_parts(segs, probabilities, new_part=cfg.new_part,
                           follow_below=cfg.follow_below, critical=self.critical,
                           quiet=frozenset(cfg.quiet), quiet_new_part=cfg.quiet_new_part)

    async def run(self, ctx: AgentContext) -> AgentResult:
        whole = ctx.results.get(self.config.of)
        if whole is None or whole.label is None:
            raise AgentError(f"node {self.config.of!r} has no label in this run: the splitter "
                             "runs after it", node=self.node, agent=self.name)
        cut = segments(ctx.text)
        segs, probabilities = self.requests(cut, await self._classify([s.text for s in cut]))
        found = self._group(segs, probabilities)
        sure = found.sure and len(found.parts) <= self.config.max_steps
        output: dict[str, Any] = {
            "parts": [{"label": p.label, "confidence": round(p.confidence, 4),
                       "spans": [list(s) for s in p.spans]} for p in found.parts],
            "sure": sure, "segments": len(cut), "asides": len(cut) - len(segs)}
        if not self.config.targets:
            output["labels"] = list(found.labels)
            return AgentResult(output=output, label=whole.label, confidence=1.0,
                               reason=None if sure else "the split is unsure")
        local = [_Draft(self._target_of[p.label], p.label, p.spans, "", "local")
                 for p in found.parts]
        plan: dict[str, Any] = {"source": "local", "cache": None}
        drafts = local
        if not sure:
            planned = await self._plan(ctx, segs, probabilities, whole.label, found, plan)
            if planned:
                drafts = _union(planned, local)
        drafts = _with_critical(drafts, whole.label, segs, probabilities, self._target_of,
                                self.config.floors)
        steps = _steps(drafts, ctx.text, self.config.max_steps, self.config.floors,
                       _frame(ctx.text, segs))
        output.update(steps=steps if len(steps) > 1 else [],
                      labels=[s["label"] for s in steps], plan=plan)
        reason = _reason(len(steps), plan, sure)
        return AgentResult(output=output, label=whole.label, confidence=1.0, reason=reason)

    async def _classify(self, texts: list[str]) -> list[dict[str, float]]:
        if not texts:
            return []
        found: list[dict[str, float]] = await self.model.classify(
            texts, timeout_s=self.config.timeout_s)
        return found

    async def _plan(self, ctx: AgentContext, segs: Sequence[Segment],
                    probabilities: Sequence[Mapping[str, float]], label: str, found: Split,
                    plan: dict[str, Any]) -> list[_Draft]:
        """Steps from the cache or the planner for an unsure split, labelled here; [] when
        neither gives any (``plan`` says why)."""
        cfg = self.config
        escalator = self._escalator
        if cfg.plan is None or escalator is None:
            plan["why"] = "unsure, no plan mode" if cfg.plan is None else "unsure, no planner"
            return []
        found_groups = groups(segs, probabilities, self.critical)
        key = shape(found_groups)
        checked: list[CheckedStep] = []
        cached = self.cache.get(key) if self.cache is not None else None
        if cached is not None:
            checked = apply_cached(cached, found_groups)
            plan.update(source="cache", cache="hit")
        else:
            plan["cache"] = "miss" if self.cache is not None else None
            checked = await self._ask(ctx, escalator, label, found, plan)
            # Only a plan the checks passed whole is kept: a partial one would replay its
            # planner's mistakes on every message of the shape.
            if checked and self.cache is not None and not plan.get("problems"):
                replay = to_cached(checked, found_groups)
                if replay is not None:
                    self.cache.put(key, replay)
        if not checked:
            plan["source"] = "local"
            return []
        excerpts = [ctx.text[s.start:s.end] for s in checked]
        drafts = []
        for step, excerpt, probs in zip(checked, excerpts, await self._classify(excerpts),
                                        strict=True):
            if (p := self._request(excerpt, probs)) is None:
                continue  # small talk the planner made a step of
            target, step_label = self._label(step.target, p, excerpt)
            # A greeting or a sign-off is no request, whatever the planner made of it; and a
            # quiet label (off_topic) the model is unsure of is a step only where the planner
            # meant it (its target answers it), not a leftover of another target.
            if is_filler(excerpt) or (step_label in cfg.quiet and target != step.target
                                      and p.get(step_label, 0.0) < cfg.quiet_new_part):
                continue
            drafts.append(_Draft(target, step_label, ((step.start, step.end),), step.why,
                                 plan["source"]))
        return drafts

    async def _ask(self, ctx: AgentContext, escalator: Escalator, label: str, found: Split,
                   plan: dict[str, Any]) -> list[CheckedStep]:
        cfg = self.config
        assert cfg.plan is not None
        budget = escalator.budget
        refused = (await asyncio.to_thread(budget.decide, True, critical=False)
                   if budget.blocking else budget.decide(True, critical=False))
        if refused is not None:
            plan["why"] = f"planner not asked: {refused}"
            return []
        targets = {t: spec.does for t, spec in cfg.targets.items()}
        schema = plan_schema(list(targets), cfg.plan.max_steps)
        try:
            out = await escalator.planner.generate_json(
                plan_messages(escalator.system, targets, ctx.text, cfg.plan.max_steps), schema,
                max_tokens=cfg.plan.max_tokens, timeout_s=cfg.plan.timeout_s)
        except ShoalError as exc:
            plan["why"] = f"planner failed ({exc.code})"
            _log.info("plan_failed", node=self.node, record_id=ctx.record_id,
                      code=str(exc.code))
            return []
        plan["calls"] = 1
        raw = list(getattr(out.data, "steps", []))
        per_step, problems = check_plan(raw, ctx.text, list(targets), cfg.plan.max_steps)
        per_step = await _checked_reasons(per_step, getattr(escalator.planner, "pack", None),
                                          problems)
        checked = [c for c in per_step if c is not None]
        plan.update(source="planner", planner_steps=len(raw), kept=len(checked),
                    problems=problems)
        # The ledger keeps the plan in the message's terms: targets, the reasons that passed
        # the scan and the spans of the steps kept (the masked message is kept beside it). The
        # text of a step that failed the checks is not kept: it was not the message's.
        answer = [{"target": getattr(getattr(s, "target", None), "value", None),
                   "why": c.why if c is not None else "",
                   "span": [c.start, c.end] if c is not None else None}
                  for s, c in zip(raw, per_step, strict=True)]
        await escalator.record(
            node=self.node, record_id=ctx.record_id, run_id=ctx.run_id, text=ctx.text,
            local=LocalAnswer({"labels": list(found.labels)}, label, 0.0), label=None,
            labels=None, attached=True, answer={"plan": answer, "problems": problems},
            confidence=1.0)
        _log.info("plan_answered", node=self.node, record_id=ctx.record_id, steps=len(raw),
                  kept=len(checked))
        return checked

    def _label(self, target: str, probs: Mapping[str, float], text: str) -> tuple[str, str]:
        """A planned step's target and label. The planner picks the target; the label is the
        local model's: a critical label at its floor (borne out by ``red_flags``, or at
        ``flag_below``) takes its own target, and a critical label short of that is never given,
        whatever target the planner chose (the planner can
        neither raise an emergency nor hide one). Otherwise the most probable of the target's
        other labels, or, when the target answers nothing else, the most probable label
        overall that is not critical, with its own target."""
        floors = self.config.floors
        critical = self.critical.label(text, probs)
        if critical is not None:
            return self._target_of[critical[1]], critical[1]
        allowed = [k for k in sorted(self.config.targets[target].labels) if k not in floors]
        if allowed:
            return target, max(allowed, key=lambda k: probs.get(k, 0.0))
        rest = [k for k in sorted(probs) if k not in floors] or sorted(probs)
        label = max(rest, key=lambda k: probs[k])
        return self._target_of[label], label


async def _checked_reasons(steps: list[CheckedStep | None], pack: str | None,
                           problems: list[str]) -> list[CheckedStep | None]:
    """The steps with the planner's reasons re-scanned with the masker's ``pack``: a reason is
    the planner's own words, not the message's, and goes into traces, the ledger and the run's
    output; one that names an identifier in the clear is dropped (and said so in
    ``problems``)."""
    if pack is None:
        return steps
    out: list[CheckedStep | None] = []
    for i, step in enumerate(steps, start=1):
        if step is not None and step.why and await scan_outbound([step.why], pack):
            problems.append(f"step {i}: its reason named an identifier; dropped")
            step = replace(step, why="")
        out.append(step)
    return out


@dataclass(frozen=True, slots=True)
class _Draft:
    target: str
    label: str
    spans: tuple[tuple[int, int], ...]
    why: str
    source: str


def _union(planned: Sequence[_Draft], local: Sequence[_Draft]) -> list[_Draft]:
    """The plan's steps, and every local part whose label no planned step has: a planner can
    add requests, never drop one the splitter was sure of (an emergency above all)."""
    labels = {d.label for d in planned}
    return [*planned, *(d for d in local if d.label not in labels)]


def _with_critical(drafts: Sequence[_Draft], label: str, segs: Sequence[Segment],
                   probabilities: Sequence[Mapping[str, float]], target_of: Mapping[str, str],
                   floors: Mapping[str, float]) -> list[_Draft]:
    """``drafts``, and a step for the whole message's critical label when no part has it: the
    ``of`` node saw an emergency (at its own floor, its red flags or the planner) that no single
    segment was sure enough of, and the steps replace its route, so the emergency goes in as a
    step of its own, on the segment most likely to hold it. With one part or none there is
    nothing to split: the message keeps the ``of`` node's route (to the emergency's target), as
    a single-request message always has."""
    if label not in floors or len(drafts) < 2 or any(d.label == label for d in drafts):
        return list(drafts)
    at = max(range(len(segs)), key=lambda i: probabilities[i].get(label, 0.0))
    return [*drafts, _Draft(target_of[label], label, ((segs[at].start, segs[at].end),), "",
                            "local")]


def _frame(text: str, segs: Sequence[Segment]) -> tuple[str, str]:
    """The greeting and the sign-off of a message when they name someone (``Hi, this is
    [NAME_1].``, ``Thanks, [NAME_1]``): every step gets them around its excerpt, so the reply to
    each request greets the sender by name, as the reply to the whole message would."""
    content = [i for i, seg in enumerate(segs) if not is_filler(seg.text)]
    if not content:
        return "", ""
    lead = [seg.text for seg in segs[:content[0]]]
    tail = [seg.text for seg in segs[content[-1] + 1:]]
    return _named(lead), _named(tail)


def _named(parts: Sequence[str]) -> str:
    return " ".join(parts) if any("[" in p for p in parts) else ""


def _steps(drafts: Sequence[_Draft], text: str, max_steps: int,
           floors: Mapping[str, float], frame: tuple[str, str] = ("", "")) -> list[Step]:
    """One step per label (spans of the same label merged), in order of appearance, each
    excerpt in the message's ``frame``; past ``max_steps``, critical labels are kept first."""
    merged: dict[str, _Draft] = {}
    for d in drafts:
        if d.label in merged:
            m = merged[d.label]
            merged[d.label] = _Draft(m.target, m.label, (*m.spans, *d.spans), m.why or d.why,
                                     m.source)
        else:
            merged[d.label] = d
    chosen = sorted(merged.values(), key=lambda d: (d.label not in floors, min(d.spans)))
    chosen = sorted(chosen[:max_steps], key=lambda d: min(d.spans))
    lead, tail = frame
    return [Step(index=i, target=d.target, label=d.label,
                 text="\n".join(filter(None, (
                     lead, " … ".join(text[a:b] for a, b in sorted(set(d.spans))), tail))),
                 why=d.why, source=d.source)
            for i, d in enumerate(chosen, start=1)]


def _reason(n: int, plan: Mapping[str, Any], sure: bool) -> str | None:
    if plan["source"] == "planner":
        return (f"plan: {n} steps, {plan.get('kept', 0)} of {plan.get('planner_steps', 0)} "
                f"planner steps kept (cache {plan['cache'] or 'off'})")
    if plan["source"] == "cache":
        return f"plan: {n} steps from the plan cache"
    why = plan.get("why")
    if n > 1:
        return f"split: {n} steps" + (f" ({why})" if why else "")
    return why if not sure else None


register(IntentSplitter.name, IntentSplitter)
