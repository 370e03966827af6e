"""Which store a graph's escalation state goes to: the Postgres database of ``$SHOAL_DB`` when
it is set (shared by every process pointed at it), else the embedded SQLite file."""

from __future__ import annotations

from pathlib import Path

from shoal.policies.escalation.budget import Budget, BudgetSpec
from shoal.policies.escalation.budget_postgres import SharedShareBudget
from shoal.policies.escalation.circuit import CircuitBreaker
from shoal.policies.escalation.circuit_postgres import SharedCircuitBreaker
from shoal.policies.escalation.ledger import LedgerStore, SqliteLedger
from shoal.policies.escalation.ledger_postgres import PostgresLedger
from shoal.policies.escalation.model_registry import ModelRegistry, SqliteModelRegistry
from shoal.policies.escalation.model_registry_postgres import PostgresModelRegistry
from shoal.policies.escalation.outbox import Outbox, OutboxStore
from shoal.policies.escalation.outbox_postgres import PostgresOutbox
from shoal.store import state_url

__all__ = ["open_budget", "open_circuit", "open_ledger", "open_outbox", "open_registry"]


def open_outbox(path: Path) -> OutboxStore:
    """The outbox to use: Postgres when ``$SHOAL_DB`` is set, else the SQLite file ``path``."""
    url = state_url()
    return Outbox(path) if url is None else PostgresOutbox(url)


def open_budget(spec: BudgetSpec, *, graph: str) -> Budget:
    """The graph's budget: its planner-share window in Postgres when ``$SHOAL_DB`` is set and
    the budget caps the share (every process of the graph then shares one window), else this
    process's own."""
    url = state_url()
    if url is None or spec.max_share is None:
        return Budget(spec)
    return SharedShareBudget(spec, url=url, graph=graph)


def open_ledger(path: Path) -> LedgerStore:
    """The escalation ledger: Postgres when ``$SHOAL_DB`` is set, else the SQLite file
    ``path`` (the outbox's)."""
    url = state_url()
    return SqliteLedger(path) if url is None else PostgresLedger(url)


def open_registry(path: Path) -> ModelRegistry:
    """The model registry (versions, champion, shadow): Postgres when ``$SHOAL_DB`` is set,
    else the SQLite file ``path`` (the outbox's). With Postgres, every process must be able to
    read the model files a version names (see
    :mod:`~shoal.policies.escalation.model_registry_postgres`)."""
    url = state_url()
    return SqliteModelRegistry(path) if url is None else PostgresModelRegistry(url)


def open_circuit(name: str, *, failures: int, cooldown_s: float,
                 probe_lease_s: float | None = None) -> CircuitBreaker:
    """The circuit breaker ``name``: one state for every process pointed at ``$SHOAL_DB`` when
    it is set, else this process's own. ``probe_lease_s``: how long a shared probe may be out
    before another process may probe (default ``cooldown_s``)."""
    url = state_url()
    if url is None:
        return CircuitBreaker(name, failures=failures, cooldown_s=cooldown_s)
    return SharedCircuitBreaker(name, url=url, failures=failures, cooldown_s=cooldown_s,
                                probe_lease_s=probe_lease_s)
