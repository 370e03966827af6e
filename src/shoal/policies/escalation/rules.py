"""When a node's result goes to the planner: the graph's ``escalation:`` block, escalation policy
files, and the one function that decides (and says why).

Rules come from the graph (a node's ``escalate_below``) and from escalation policy files listed
under ``escalation: {policies: [...]}``; a later policy overrides an earlier one, and any policy
overrides the graph's inline threshold::

    escalation: 1
    name: healthcare-calibrated
    nodes:
      triage:
        below: 0.62                    # confidence under this goes to the planner
        critical:                      # labels never traded for cost (see CriticalRule)
          emergency: {floor: 0.06, min_recall: 0.99, action: escalate,
                      red_flags: clinical_red_flags}
      validate: {on_flag: true}        # the agent's own flag (a failed check, a guard 'review')
      guard: {on_flag: false}          # never: it runs before the masker
    budget: {max_share: 0.2, window: 100, max_usd_per_run: 0.01}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from shoal.errors import SpecError
from shoal.policies.escalation.budget import BudgetSpec
from shoal.policies.escalation.red_flags import matcher_for, red_flags_path
from shoal.resources import POLICIES, builtin_names, builtin_or_file
from shoal.yaml_source import load_yaml_model

__all__ = [
    "DEFAULT_SYSTEM",
    "UNMASKABLE_AGENTS",
    "CriticalRule",
    "Decision",
    "EscalationPolicy",
    "EscalationSpec",
    "NodeRule",
    "RouterRule",
    "Rules",
    "builtin_policy_names",
    "decide",
    "load_policy",
    "policy_path",
    "resolve_rules",
]

UNMASKABLE_AGENTS = frozenset({"privacy_masker"})
"""Agents whose input is the raw text: they never escalate, whatever the rules say."""

DEFAULT_SYSTEM = (
    "You are the planner of a pipeline of small models: one step could not answer on its own "
    "and you stand in for it. Values in the message may have been replaced by placeholders such "
    "as [NAME_1]; keep placeholders exactly as written and never guess what they stand for. Do "
    "the task and answer in the JSON format requested, with your honest confidence between 0 "
    "and 1."
)
"""The planner's system prompt when the graph sets no ``escalation.system``."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class EscalationSpec(BudgetSpec):
    """A graph's ``escalation:`` block: where escalated nodes go, the policy files that say when,
    how much may go there (the budget keys), and how long and how much the planner may answer.
    Escalation policy files can override the budget keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    planner: str
    policies: list[str] = Field(default_factory=list)
    """Escalation policy files (relative to the graph file) or built-in policy names
    (``planner_share_20``); later ones win."""
    system: str | None = Field(default=None, min_length=1)
    """The planner's system prompt; default: a neutral one (:data:`DEFAULT_SYSTEM`)."""
    max_tokens: int = Field(default=256, ge=16)
    """Cap on the planner's answer per escalation."""
    timeout_s: float | None = Field(default=None, gt=0)
    """Per escalation; default: the planner model's own timeout."""
    outbox: str | None = None
    """SQLite file for escalations the planner could not take (relative to the graph file);
    default: ``$SHOAL_OUTBOX``, else ``.shoal/outbox.sqlite`` under the working directory."""

    @property
    def budget(self) -> BudgetSpec:
        return BudgetSpec.model_validate(self.model_dump(include=set(BudgetSpec.model_fields),
                                                         exclude_unset=True))

    @property
    def system_prompt(self) -> str:
        return self.system if self.system is not None else DEFAULT_SYSTEM


class CriticalRule(_Strict):
    """A label that must not be traded for cost (``critical: {emergency: {...}}``): when its
    probability reaches ``floor`` or a red flag fires on the working text, the node's label
    becomes this label (or the planner's answer, with ``action: escalate``) whatever its top
    label was, and no budget holds the escalation back."""

    floor: float | None = Field(default=None, ge=0.0, le=1.0)
    """The label's probability (the classifier's ``probabilities``) at or above which the record
    is critical; None: only red flags make it critical."""
    min_recall: float | None = Field(default=None, ge=0.0, le=1.0)
    """The recall target a calibration chooses ``floor`` for (kept for the tools)."""
    action: Literal["escalate", "route"] = "escalate"
    """``escalate``: the planner answers, past any budget (its label wins; if it cannot answer,
    the critical label stands); ``route``: the critical label, no planner call."""
    red_flags: str | None = Field(default=None, min_length=1)
    """A red-flag pack: a built-in name (``clinical_red_flags``) or a file relative to the
    policy file."""
    clear_confidence: float = Field(default=0.9, ge=0.0, le=1.0)
    """With ``action: escalate``: the planner's answer replaces the critical label only when it
    is at least this sure; a less sure "billing" for a possible emergency leaves it an
    emergency (over-triage is the safe mistake). 0: the planner always decides."""
    red_flags_hold: bool = True
    """A red flag that fired holds the label: the record takes it with no planner call, as
    with ``action: route``, however sure a planner would be of another label. Red flags are
    written by people who read such messages and fire almost only on emergencies; a small
    planner, asked about a message with several requests, answers one of the others "sure".
    False: a red flag escalates like the floor, and the planner may clear it."""

    def merged(self, later: CriticalRule) -> CriticalRule:
        return self.model_copy(update=later.model_dump(exclude_unset=True))


class RouterRule(_Strict):
    """A learned deferral router for the node (``router: {model: ROUTER.onnx, above: 0.3}``):
    escalate when its P(local answer wrong) is at or above ``above``. See
    :mod:`shoal.models.router`; ``shoal train-router`` makes the file, ``shoal calibrate
    --router learned`` chooses ``above``."""

    model: str = Field(min_length=1)
    """The router file, relative to the policy file that names it."""
    above: float | None = Field(default=None, ge=0.0, le=1.0)
    """Escalate when P(wrong) >= this; None: score only (the trace shows ``p_wrong``)."""


class NodeRule(_Strict):
    """When one node escalates."""

    below: float | None = Field(default=None, ge=0.0, le=1.0)
    """Escalate when the agent's confidence is below this."""
    on_flag: bool = True
    """Escalate when the agent asks to (a validator's failed check, a guard's ``review``)."""
    task: str | None = Field(default=None, min_length=1)
    """What the planner is asked to do for this node; default: stand in for the node."""
    attach: bool = False
    """Keep the local answer as the node's output and attach the planner's under ``planner``
    (an emergency's fixed safe reply goes out as written; the planner drafts the hand-off)."""

    critical: dict[str, CriticalRule] = Field(default_factory=dict)
    """Labels that escalate (or route) past the budget; see :class:`CriticalRule`."""
    router: RouterRule | None = None
    """A learned router; with one, ``below`` (if also set) still escalates on its own."""

    def merged(self, later: NodeRule) -> NodeRule:
        update: dict[str, Any] = {k: getattr(later, k) for k in later.model_fields_set}
        if "critical" in update:  # per label: a later file may change one key of one label
            critical = dict(self.critical)
            for label, rule in later.critical.items():
                critical[label] = critical[label].merged(rule) if label in critical else rule
            update["critical"] = critical
        return self.model_copy(update=update)

    @property
    def active(self) -> bool:
        return (self.below is not None or self.on_flag or bool(self.critical)
                or self.router is not None)


class EscalationPolicy(_Strict):
    """An escalation policy file (``escalation: 1``)."""

    escalation: Literal[1]
    name: str = Field(min_length=1)
    description: str | None = None
    nodes: dict[str, NodeRule] = Field(default_factory=dict)
    budget: BudgetSpec = Field(default_factory=BudgetSpec)


def _refuse_pack(data: dict[str, object]) -> str | None:
    if "pack" in data and "escalation" not in data:
        return ("this is an identifier pack, not an escalation policy: list it under the "
                "graph's 'packs:'")
    return None


def load_policy(path: Path, label: str | None = None) -> EscalationPolicy:
    """Load and validate one policy file; SpecError with FILE:LINE:COL for every mistake."""
    return load_yaml_model(path, label or str(path), EscalationPolicy, "policy", _refuse_pack)


def builtin_policy_names() -> list[str]:
    """Escalation policies shipped with shoal, usable by name under ``escalation.policies``."""
    return builtin_names(POLICIES)


def policy_path(entry: str, base_dir: Path | None) -> Path:
    """Where an ``escalation.policies`` entry is: a built-in name, or a path relative to the
    graph file. Raises SpecError for a name that is neither."""
    return builtin_or_file(POLICIES, entry, base_dir, "escalation policy")


class _NodeLike(Protocol):
    @property
    def agent(self) -> str: ...
    @property
    def escalate_below(self) -> float | None: ...


@dataclass
class Rules:
    """The graph's escalation rules after every policy file was applied."""

    nodes: dict[str, NodeRule | None]
    """Per node; None: the node never escalates."""
    budget: BudgetSpec
    problems: list[tuple[int, str]] = field(default_factory=list)
    """(index in ``escalation.policies``, message) for policy files that failed to load or name
    nodes the graph does not have."""


def _anchor_router(rule: NodeRule, base_dir: Path) -> NodeRule:
    """``rule`` with its router file made relative to its policy file's folder."""
    if rule.router is None:
        return rule
    path = Path(rule.router.model).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    return rule.model_copy(update={"router": rule.router.model_copy(
        update={"model": str(path)})})


def _anchor_red_flags(rule: NodeRule, base_dir: Path) -> NodeRule:
    """``rule`` with each red-flag pack file made relative to its policy file's folder, and
    loaded once (SpecError when a pack is missing or wrong)."""
    critical = {}
    for label, crit in rule.critical.items():
        if crit.red_flags is not None:
            path = red_flags_path(crit.red_flags, base_dir)
            entry = (str(path) if crit.red_flags.endswith((".yaml", ".yml"))
                     or "/" in crit.red_flags else crit.red_flags)
            matcher_for(entry)
            crit = crit.model_copy(update={"red_flags": entry})
        critical[label] = crit
    return rule.model_copy(update={"critical": critical}) if critical else rule


def resolve_rules(nodes: Mapping[str, _NodeLike], escalation: EscalationSpec | None,
                  base_dir: Path | None) -> Rules:
    """Inline thresholds, then each escalation policy file in order (later ones win)."""
    rules: dict[str, NodeRule | None] = {
        name: NodeRule(below=node.escalate_below) if node.escalate_below is not None
        else NodeRule()
        for name, node in nodes.items()}
    budget = escalation.budget if escalation is not None else BudgetSpec()
    problems: list[tuple[int, str]] = []
    for i, entry in enumerate(escalation.policies if escalation is not None else []):
        try:
            path = policy_path(entry, base_dir)
            policy = load_policy(path, entry)
        except SpecError as exc:
            problems.append((i, "; ".join(str(issue) for issue in exc.issues)))
            continue
        for name, rule in policy.nodes.items():
            if name not in nodes:
                problems.append((i, f"policy {policy.name!r} has a rule for node {name!r}, "
                                    "which the graph does not have"))
                continue
            rule = _anchor_router(rule, path.parent)
            try:
                rule = _anchor_red_flags(rule, path.parent)
            except SpecError as exc:
                problems.append((i, "; ".join(str(issue) for issue in exc.issues)))
                rule = rule.model_copy(update={"critical": {
                    label: crit.model_copy(update={"red_flags": None})
                    for label, crit in rule.critical.items()}})
            current = rules[name] or NodeRule()
            rules[name] = current.merged(rule)
        budget = budget.merged(policy.budget)
    for name, node in nodes.items():
        if node.agent in UNMASKABLE_AGENTS:
            rules[name] = None
    return Rules(nodes=rules, budget=budget, problems=problems)


# --- the decision -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a node's result wants the planner, and why. Every escalation reason a trace shows
    is written here."""

    wants: bool
    trigger: str | None
    """Why it wants the planner (or the agent's own note when it does not)."""
    critical: str | None = None
    """A critical label fired: the node's label becomes it (or, when ``wants``, the planner's
    answer). With ``wants`` False this is ``action: route``: no planner call."""
    may_block: bool = True
    """Whether the budget (share window, token and USD caps) may hold the escalation back; a
    critical one is counted but never held back."""
    clear_confidence: float = 0.0
    """For a critical escalation: how sure the planner must be to replace the critical label."""

    def kept(self, because: str) -> str:
        """The reason of a node that wanted the planner and kept its local answer."""
        wanted = f"; {self.trigger}" if self.trigger else ""
        kept = f"label {self.critical} kept" if self.critical else "local answer kept"
        return f"{because}; {kept}{wanted}"


def _critical(rule: NodeRule, label: str | None, confidence: float,
              probabilities: Mapping[str, float] | None, text: str | None
              ) -> tuple[str, CriticalRule, str, bool] | None:
    """The first critical label that fires: (label, its rule, why, whether a red flag fired)."""
    for name, crit in rule.critical.items():
        p = (probabilities.get(name) if probabilities is not None
             else confidence if label == name else None)
        why = []
        if crit.floor is not None and p is not None and p >= crit.floor:
            why.append(f"P={p:.3f} >= floor {crit.floor:g}")
        fired = (matcher_for(crit.red_flags).fired(text)
                 if crit.red_flags is not None and text else [])
        if fired:
            why.append(f"red flag {', '.join(fired)}")
        if why:
            return name, crit, "; ".join(why), bool(fired)
    return None


def decide(rule: NodeRule | None, *, confidence: float, flagged: bool,
           note: str | None, label: str | None = None,
           probabilities: Mapping[str, float] | None = None,
           text: str | None = None, p_wrong: float | None = None) -> Decision:
    """The escalation decision for one result: the agent's own flag (when the rule heeds it),
    then the confidence threshold, then the critical labels. ``note`` is the agent's reason;
    ``label``, ``probabilities`` (per label) and ``text`` (the masked working text, for red
    flags) feed the critical labels; ``p_wrong`` is the node's learned router's score.

    A critical label that fires makes the decision critical (never held back by a budget),
    unless the agent already answered that label and nothing else wants the planner."""
    plain = _plain(rule, confidence=confidence, flagged=flagged, note=note, p_wrong=p_wrong)
    if rule is None or not rule.critical:
        return plain
    fired = _critical(rule, label, confidence, probabilities, text)
    if fired is None:
        return plain
    name, crit, why, flagged_red = fired
    if label == name and not plain.wants:
        return plain  # already the critical label, and sure of it
    trigger = f"critical: {name} ({why})"
    if crit.action == "route":
        return Decision(False, trigger, critical=name, may_block=False)
    if flagged_red and crit.red_flags_hold:
        return Decision(False, f"{trigger}; a red flag holds", critical=name, may_block=False)
    if plain.wants and plain.trigger:
        trigger = f"{trigger}; {plain.trigger}"
    return Decision(True, trigger, critical=name, may_block=False,
                    clear_confidence=crit.clear_confidence)


def _plain(rule: NodeRule | None, *, confidence: float, flagged: bool,
           note: str | None, p_wrong: float | None = None) -> Decision:
    if flagged and (rule is None or rule.on_flag):
        return Decision(True, note or "agent asked to escalate")
    why = f" ({note})" if note else ""
    above = rule.router.above if rule is not None and rule.router is not None else None
    if above is not None and p_wrong is not None and p_wrong >= above:
        return Decision(True, f"router P(wrong) {p_wrong:.3f} >= {above:g}{why}")
    below = rule.below if rule is not None else None
    if below is not None and confidence < below:
        return Decision(True, f"confidence {confidence:.3f} below {below:g}{why}")
    return Decision(False, note)
