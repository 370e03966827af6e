"""Escalation: when a node goes to the planner and what it may cost.

- :mod:`~shoal.policies.escalation.rules`: the ``escalation:`` block, policy files, node rules
  and the one decision function (:func:`decide`), critical labels included;
- :mod:`~shoal.policies.escalation.red_flags`: red-flag packs and their matcher;
- :mod:`~shoal.policies.escalation.escalator`: sends a failing node to the planner;
- :mod:`~shoal.policies.escalation.planner_call`: the planner request and answer;
- :mod:`~shoal.policies.escalation.guard`: every call to a remote model (egress scan, budget,
  metering, circuit breaker);
- :mod:`~shoal.policies.escalation.budget`, :mod:`~shoal.policies.escalation.circuit`,
  :mod:`~shoal.policies.escalation.outbox`: caps, outage handling, the durable outbox;
- :mod:`~shoal.policies.escalation.ledger`: every answered escalation, kept as training data;
- :mod:`~shoal.policies.escalation.review`: a person's label for an entry (checked, audited);
- :mod:`~shoal.policies.escalation.model_registry`: learned versions, champion, shadow;
- :mod:`~shoal.policies.escalation.stores`: SQLite or, with ``$SHOAL_DB``, Postgres for each;
- :mod:`~shoal.policies.escalation.calibration`: RouteLLM's PGR, APGR and CPT.
"""

from shoal.policies.escalation.budget import Budget, BudgetSpec
from shoal.policies.escalation.budget_postgres import SharedShareBudget
from shoal.policies.escalation.circuit import CircuitBreaker, CircuitOpen
from shoal.policies.escalation.circuit_postgres import SharedCircuitBreaker
from shoal.policies.escalation.escalator import Escalator, LocalAnswer, Outcome
from shoal.policies.escalation.guard import RemoteGuard
from shoal.policies.escalation.ledger import LedgerEntry, LedgerStore, SqliteLedger, training_lines
from shoal.policies.escalation.ledger_postgres import PostgresLedger
from shoal.policies.escalation.model_registry import (
    BASE_VERSION,
    ModelEvent,
    ModelRegistry,
    ModelVersion,
    ShadowRecord,
    SqliteModelRegistry,
    version_number,
    version_rule,
)
from shoal.policies.escalation.model_registry_postgres import PostgresModelRegistry
from shoal.policies.escalation.outbox import (
    Outbox,
    OutboxRow,
    OutboxStore,
    default_outbox_path,
    outbox_path,
)
from shoal.policies.escalation.outbox_postgres import PostgresOutbox
from shoal.policies.escalation.planner_call import PlannerReply, ask_planner
from shoal.policies.escalation.red_flags import (
    RedFlagMatcher,
    RedFlagPack,
    builtin_red_flag_names,
    load_red_flags,
    matcher_for,
)
from shoal.policies.escalation.review import (
    ReviewError,
    review_audit_path,
    review_label,
    review_queue,
)
from shoal.policies.escalation.rules import (
    DEFAULT_SYSTEM,
    UNMASKABLE_AGENTS,
    CriticalRule,
    Decision,
    EscalationPolicy,
    EscalationSpec,
    NodeRule,
    RouterRule,
    Rules,
    builtin_policy_names,
    decide,
    load_policy,
    policy_path,
    resolve_rules,
)
from shoal.policies.escalation.stores import (
    open_budget,
    open_circuit,
    open_ledger,
    open_outbox,
    open_registry,
)

__all__ = [
    "BASE_VERSION",
    "Budget",
    "BudgetSpec",
    "CircuitBreaker",
    "CircuitOpen",
    "CriticalRule",
    "DEFAULT_SYSTEM",
    "Decision",
    "EscalationPolicy",
    "EscalationSpec",
    "Escalator",
    "LedgerEntry",
    "LedgerStore",
    "LocalAnswer",
    "ModelEvent",
    "ModelRegistry",
    "ModelVersion",
    "NodeRule",
    "Outbox",
    "OutboxRow",
    "OutboxStore",
    "Outcome",
    "PlannerReply",
    "PostgresLedger",
    "PostgresModelRegistry",
    "PostgresOutbox",
    "RedFlagMatcher",
    "RedFlagPack",
    "RemoteGuard",
    "ReviewError",
    "RouterRule",
    "Rules",
    "ShadowRecord",
    "SharedCircuitBreaker",
    "SharedShareBudget",
    "SqliteLedger",
    "SqliteModelRegistry",
    "UNMASKABLE_AGENTS",
    "ask_planner",
    "builtin_policy_names",
    "builtin_red_flag_names",
    "decide",
    "default_outbox_path",
    "load_policy",
    "load_red_flags",
    "matcher_for",
    "open_budget",
    "open_circuit",
    "open_ledger",
    "open_outbox",
    "open_registry",
    "outbox_path",
    "policy_path",
    "resolve_rules",
    "review_audit_path",
    "review_label",
    "review_queue",
    "training_lines",
    "version_number",
    "version_rule",
]
