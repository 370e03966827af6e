"""Plan mode: what the planner is asked when the local split is unsure, how its plan is checked,
and the cache that lets a message of a known shape skip it.

The planner gets the masked message and the allowed targets, one line each, and answers under a
JSON schema: steps of ``{target, text, why}``, ``text`` copied word for word from the message.
:func:`check_plan` keeps a step only when its target is allowed and its text is a substring of
the masked message (so a step can carry nothing the message did not: no unmasked value, no
instruction of the planner's own), at most ``max_steps`` of them.

A plan is cached under the message's *shape*: the labels of its segment groups in order
(:func:`shape`), not its words. Each cached step keeps its target and the groups its text
covered, so a later message of the same shape gets the same cut of its own groups, with no
planner call.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypedDict

from pydantic import BaseModel, ConfigDict, Field, create_model

from shoal.agents.base import AgentResult
from shoal.agents.splitting import NO_CRITICAL, CriticalRule, Segment, is_filler
from shoal.models.base import Message

__all__ = ["CachedStep", "CheckedStep", "Group", "PlanCache", "PlanStepAnswer", "Step",
           "apply_cached", "check_plan", "groups", "plan_messages", "plan_schema", "shape",
           "step_key", "steps_of", "to_cached"]

class Step(TypedDict):
    """One request of a message, as a splitter writes it into its output's ``steps`` and the
    runtime runs it (:mod:`shoal.graphs.steps`)."""

    index: int
    target: str
    label: str
    text: str
    """The request's excerpt of the working (masked) text."""
    why: str
    source: str
    """Where the step came from: ``local`` (the splitter), ``planner``, ``cache``."""


WHY_CHARS = 120
"""A planner's reason for a step is cut to this many characters: a few words are asked for."""


def steps_of(result: AgentResult | None) -> list[Step]:
    """The steps in a splitter's output; none for any other result (or none at all)."""
    output = result.output if result is not None else None
    steps = output.get("steps") if isinstance(output, Mapping) else None
    return list(steps) if isinstance(steps, list) else []


def step_key(node: str, index: int) -> str:
    """The key of ``node``'s trace for step ``index`` in a run's results."""
    return f"{node}[{index}]"


PLAN_TASK = (
    "This message may hold several requests. Split it into steps, one per request. For each "
    "step copy the exact words of the message that make the request into 'text' (word for "
    "word, placeholders such as [NAME_1] as written), choose the 'target' that handles it, and "
    "say 'why' in a few words. Leave out greetings and signatures. At most {max_steps} steps.\n"
    "Targets:\n{targets}"
)


class PlanStepAnswer(BaseModel):
    model_config = ConfigDict(frozen=True)

    target: str
    text: str
    why: str = ""


def plan_schema(targets: Sequence[str], max_steps: int) -> type[BaseModel]:
    """``{"steps": [{target, text, why}, ...]}`` with ``target`` one of ``targets``."""
    choice = Enum("Target", {f"t{i}": t for i, t in enumerate(targets)})  # type: ignore[misc]
    step = create_model("PlanStep", __base__=PlanStepAnswer, target=(choice, ...))
    model: type[BaseModel] = create_model(
        "Plan", steps=(list[step], Field(min_length=1, max_length=max_steps)))  # type: ignore[valid-type]
    return model


def plan_messages(system: str, targets: Mapping[str, str], text: str,
                  max_steps: int) -> list[Message]:
    lines = "\n".join(f"- {name}: {does}" for name, does in targets.items())
    task = PLAN_TASK.format(max_steps=max_steps, targets=lines)
    return [{"role": "system", "content": system},
            {"role": "user", "content": f"Task: {task}\n\nMessage:\n{text}"}]


@dataclass(frozen=True, slots=True)
class CheckedStep:
    """A planner step that passed the checks: its target, where its text is, and why."""

    target: str
    start: int
    end: int
    why: str


def check_plan(steps: Sequence[Any], message: str, targets: Sequence[str],
               max_steps: int) -> tuple[list[CheckedStep | None], list[str]]:
    """Per planner step, in order, the step if it passes (else None), and what was wrong with
    the others (numbered from 1)."""
    checked: list[CheckedStep | None] = []
    problems: list[str] = []
    kept = 0
    for i, step in enumerate(steps, start=1):
        target = getattr(step, "target", None)
        target = getattr(target, "value", target)
        text = str(getattr(step, "text", "") or "").strip()
        why = " ".join(str(getattr(step, "why", "") or "").split())[:WHY_CHARS]
        step_ok = None
        if kept >= max_steps:
            problems.append(f"step {i}: more than {max_steps} steps")
        elif target not in targets:
            problems.append(f"step {i}: target {target!r} is not allowed")
        elif not text:
            problems.append(f"step {i}: no text")
        elif (start := message.find(text)) < 0:
            problems.append(f"step {i}: its text is not in the message")
        else:
            step_ok = CheckedStep(str(target), start, start + len(text), why)
            kept += 1
        checked.append(step_ok)
    return checked, problems


@dataclass(frozen=True, slots=True)
class Group:
    """Adjacent non-filler segments whose top label is the same."""

    label: str
    start: int
    end: int


def groups(segs: Sequence[Segment], probabilities: Sequence[Mapping[str, float]],
           critical: CriticalRule = NO_CRITICAL) -> list[Group]:
    """The message's groups: each non-filler segment's label (the critical label its rule
    gives it, else the most probable), runs of one label merged."""
    out: list[Group] = []
    for seg, probs in zip(segs, probabilities, strict=True):
        if is_filler(seg.text):
            continue
        found = critical.label(seg.text, probs)
        label = found[1] if found else max(sorted(probs), key=lambda k: probs[k])
        if out and out[-1].label == label:
            out[-1] = Group(label, out[-1].start, seg.end)
        else:
            out.append(Group(label, seg.start, seg.end))
    return out


def shape(found: Sequence[Group]) -> str:
    """The cache key of a message: its groups' labels in order."""
    return ">".join(g.label for g in found)


@dataclass(frozen=True, slots=True)
class CachedStep:
    target: str
    first: int
    last: int
    """The first and last group the step's text covered. The planner's ``why`` is not kept: it
    was about another message."""


def to_cached(steps: Sequence[CheckedStep], found: Sequence[Group]) -> list[CachedStep] | None:
    """The plan in group terms; None when a step's text covers no group (it cannot be
    replayed on another message)."""
    out = []
    for step in steps:
        covered = [i for i, g in enumerate(found) if g.start < step.end and step.start < g.end]
        if not covered:
            return None
        out.append(CachedStep(step.target, covered[0], covered[-1]))
    return out


def apply_cached(plan: Sequence[CachedStep], found: Sequence[Group]) -> list[CheckedStep]:
    """A cached plan cut out of another message of the same shape."""
    return [CheckedStep(s.target, found[s.first].start, found[s.last].end, "")
            for s in plan if s.last < len(found)]


class PlanCache:
    """Plans by shape, the ``size`` most recently used, for one node in one process."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._plans: OrderedDict[str, tuple[CachedStep, ...]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> tuple[CachedStep, ...] | None:
        with self._lock:
            plan = self._plans.get(key)
            if plan is None:
                self.misses += 1
                return None
            self._plans.move_to_end(key)
            self.hits += 1
            return plan

    def put(self, key: str, plan: Sequence[CachedStep]) -> None:
        with self._lock:
            self._plans[key] = tuple(plan)
            self._plans.move_to_end(key)
            while len(self._plans) > self.size:
                self._plans.popitem(last=False)

    def __len__(self) -> int:
        return len(self._plans)
