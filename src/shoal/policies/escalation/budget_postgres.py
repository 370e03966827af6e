"""The planner-share window in Postgres, shared by every process pointed at ``SHOAL_DB``.

Several ``shoal serve`` replicas or batch workers of one graph each keep their own window
otherwise, and together they would spend the share several times over. Here each escalation
decision is one row; a decision that wants the planner is admitted only if the graph's last
``window`` decisions, across all processes, hold fewer than the allowed calls. One transaction per
decision, under an advisory lock per graph, so two processes never both take the last slot.

The token and dollar caps per run stay in the run; the caps "per process" stay per process (they
bound what one process may spend, as their name says).
"""

from __future__ import annotations

import random

from shoal.policies.escalation.budget import Budget, BudgetSpec
from shoal.store import Migration, connection, migrate

__all__ = ["MIGRATIONS", "SharedShareBudget"]

MIGRATIONS = (
    Migration(1, """
CREATE TABLE IF NOT EXISTS shoal_budget_decisions (
    graph TEXT NOT NULL,
    seq BIGSERIAL NOT NULL,
    wants BOOLEAN NOT NULL,
    PRIMARY KEY (graph, seq)
);
"""),
)

PRUNE_EVERY = 200
"""About one decision in this many also deletes the rows older than the window (kept: 2 windows),
so the table stays small without a job of its own."""


class SharedShareBudget(Budget):
    """:class:`Budget` whose share window (``max_share`` over ``window``) lives in Postgres."""

    def __init__(self, spec: BudgetSpec, *, url: str, graph: str) -> None:
        super().__init__(spec)
        # One transaction under a lock other processes may hold: a wait, not a computation.
        self.blocking = self._calls_allowed is not None
        self.url = url
        self.graph = graph
        self._ready = False

    def _migrated(self) -> str:
        if not self._ready:
            migrate(self.url, "budget", MIGRATIONS)
            self._ready = True
        return self.url

    def decide(self, wants: bool, *, critical: bool = False) -> str | None:
        if self._calls_allowed is None:
            return super().decide(wants, critical=critical)  # nothing to share: no cap
        refused: str | None = None
        with connection(self._migrated()) as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))",
                         (f"shoal-budget:{self.graph}",))
            if wants and not critical:
                row = conn.execute(
                    "SELECT COUNT(*) FILTER (WHERE wants) AS calls FROM (SELECT wants FROM "
                    "shoal_budget_decisions WHERE graph = %s ORDER BY seq DESC LIMIT %s) AS w",
                    (self.graph, self.window)).fetchone()
                if int(row["calls"]) + 1 > self._calls_allowed:
                    refused = (f"budget_exhausted: planner share cap {self.spec.max_share:g} "
                               f"({self._calls_allowed} calls in the last {self.window} "
                               "decisions of every process sharing the database) reached")
            conn.execute("INSERT INTO shoal_budget_decisions (graph, wants) VALUES (%s, %s)",
                         (self.graph, wants and refused is None))
            if random.random() < 1.0 / PRUNE_EVERY:
                conn.execute(
                    "DELETE FROM shoal_budget_decisions WHERE graph = %s AND seq < (SELECT "
                    "MIN(seq) FROM (SELECT seq FROM shoal_budget_decisions WHERE graph = %s "
                    "ORDER BY seq DESC LIMIT %s) AS keep)", (self.graph, self.graph,
                                                             2 * self.window))
        return refused

    def share(self) -> float:
        """Planner calls over decisions in the shared window (every process's)."""
        if self._calls_allowed is None:
            return super().share()
        with connection(self._migrated()) as conn:
            row = conn.execute(
                "SELECT COUNT(*) AS n, COUNT(*) FILTER (WHERE wants) AS calls FROM (SELECT wants "
                "FROM shoal_budget_decisions WHERE graph = %s ORDER BY seq DESC LIMIT %s) AS w",
                (self.graph, self.window)).fetchone()
        return int(row["calls"]) / int(row["n"]) if row["n"] else 0.0
