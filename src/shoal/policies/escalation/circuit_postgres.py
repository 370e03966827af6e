"""A circuit breaker whose state every process shares, in Postgres (``SHOAL_DB``).

With one breaker per process, each ``shoal serve`` replica or batch worker learns on its own that
the planner is down (``failures`` calls each, each waiting out its time-out) and probes it on its
own after every cooldown. :class:`SharedCircuitBreaker` keeps the state in one row per breaker
name (``graph:model``), so failures seen by any process open the circuit for all of them, and
after the cooldown one process, not one per process, sends the probe.

The rules are :class:`~shoal.policies.escalation.circuit.CircuitBreaker`'s. What differs:

- Times are the database's clock (``clock_timestamp()``), so machines whose clocks disagree
  still agree on when a cooldown ends.
- The probe is a lease (``probe_until``): the process that takes it holds it for
  ``probe_lease_s``. A probe still out after that is taken for dead (its process crashed or was
  killed) and the next caller probes instead; otherwise a dead prober would hold the circuit
  half open for good.
- Each state change is one statement that reads and writes the row under its row lock, so two
  processes never both take the probe and two failures never count as one.

Round trips: one per :meth:`SharedCircuitBreaker.before` (the row is read, and the probe taken
when due, in one statement); :meth:`~SharedCircuitBreaker.success` costs none while the circuit is
closed with no failures counted (the usual case), one otherwise; each
:meth:`~SharedCircuitBreaker.failure` costs one. A planner call takes hundreds of milliseconds
to seconds; a query on an indexed row of a nearby database takes about a millisecond, so reading
the shared state before every call is worth its price. The calls block (psycopg is synchronous
here, as in the other stores): the guard runs them on the event loop for that millisecond.

A database that cannot be reached is :class:`~shoal.errors.StoreError` from every method,
``state`` included: a breaker that guessed would hide whether the planner is up.
"""

from __future__ import annotations

from typing import Any, cast

from shoal.observability.logging import get_logger
from shoal.policies.escalation.circuit import CircuitBreaker, CircuitOpen, State
from shoal.store import Migration, connection, migrate

__all__ = ["MIGRATIONS", "SharedCircuitBreaker"]

_log = get_logger()

MIGRATIONS = (
    Migration(1, """
CREATE TABLE IF NOT EXISTS shoal_circuits (
    name TEXT PRIMARY KEY,
    state TEXT NOT NULL DEFAULT 'closed' CHECK (state IN ('closed', 'open', 'half_open')),
    consecutive INTEGER NOT NULL DEFAULT 0,
    opened_at DOUBLE PRECISION NOT NULL DEFAULT 0,
    probe_until DOUBLE PRECISION NOT NULL DEFAULT 0,
    opened_count BIGINT NOT NULL DEFAULT 0
);
"""),
)
"""The breakers' schema, step by step (``shoal_schema`` records the step reached)."""

_NOW = "SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8 AS t"

# The probe is taken by the UPDATE in the CTE: under READ COMMITTED a second process's UPDATE
# waits on the row lock, re-checks its WHERE against the row the first one wrote (half open,
# lease running) and takes nothing. The outer SELECT sees the row as it was when the statement
# began, which is what a caller that did not get the probe needs for its "next probe in".
_BEFORE = f"""
WITH now AS ({_NOW}),
probe AS (
    UPDATE shoal_circuits c SET state = 'half_open', probe_until = now.t + %(lease)s
    FROM now
    WHERE c.name = %(name)s AND (
        (c.state = 'open' AND now.t >= c.opened_at + %(cooldown)s)
        OR (c.state = 'half_open' AND now.t >= c.probe_until))
    RETURNING c.name)
SELECT c.state, c.consecutive, c.opened_at, c.probe_until, c.opened_count, now.t,
       EXISTS (SELECT 1 FROM probe) AS probing
FROM shoal_circuits c, now WHERE c.name = %(name)s
"""

# ``old`` locks the row (FOR UPDATE, which waits for another process's change and then reads the
# row as changed) and decides from it; it also keeps the state before the change, so the caller
# knows whether this call opened or closed the circuit (for the log line).
_FAILURE = f"""
WITH now AS ({_NOW}),
old AS (
    SELECT state, consecutive,
           state = 'half_open' OR (state = 'closed' AND consecutive + 1 >= %(failures)s) AS opens
    FROM shoal_circuits WHERE name = %(name)s FOR UPDATE)
UPDATE shoal_circuits c SET
    consecutive = old.consecutive + 1,
    state = CASE WHEN old.opens THEN 'open' ELSE old.state END,
    opened_at = CASE WHEN old.opens THEN now.t ELSE c.opened_at END,
    probe_until = CASE WHEN old.opens THEN 0 ELSE c.probe_until END,
    opened_count = c.opened_count + CASE WHEN old.opens THEN 1 ELSE 0 END
FROM now, old WHERE c.name = %(name)s
RETURNING old.state AS was, c.state, c.consecutive, c.opened_count
"""

_SUCCESS = """
WITH old AS (SELECT state FROM shoal_circuits WHERE name = %(name)s FOR UPDATE)
UPDATE shoal_circuits c SET state = 'closed', consecutive = 0, probe_until = 0
FROM old WHERE c.name = %(name)s
RETURNING old.state AS was, c.state, c.consecutive, c.opened_count
"""


class SharedCircuitBreaker(CircuitBreaker):
    """:class:`CircuitBreaker` whose state lives in one row of the Postgres database at ``url``,
    shared by every breaker of the same ``name`` there.

    ``probe_lease_s`` (default: ``cooldown_s``): how long a probe may be out before another
    process may probe; give the longest a call to the model can take. ``opened_count`` is how
    many times the circuit opened in every process, as of this process's last look."""

    def __init__(self, name: str, *, url: str, failures: int = 5, cooldown_s: float = 30.0,
                 probe_lease_s: float | None = None) -> None:
        super().__init__(name, failures=failures, cooldown_s=cooldown_s)
        if probe_lease_s is not None and probe_lease_s <= 0:
            raise ValueError("probe_lease_s must be > 0")
        self.url = url
        self.probe_lease_s = cooldown_s if probe_lease_s is None else probe_lease_s
        self._ready = False
        self._seen: tuple[State, int] = ("closed", 0)
        """The row's state and failure count as this process last read or wrote them."""

    def _migrated(self) -> str:
        """The URL, once the table and this breaker's row exist (once per process)."""
        if not self._ready:
            migrate(self.url, "circuits", MIGRATIONS)
            with connection(self.url) as conn:
                conn.execute("INSERT INTO shoal_circuits (name) VALUES (%s) "
                             "ON CONFLICT (name) DO NOTHING", (self.name,))
            self._ready = True
        return self.url

    def _one(self, sql: str, **args: Any) -> dict[str, Any]:
        with connection(self._migrated()) as conn:
            row = conn.execute(sql, {"name": self.name, **args}).fetchone()
        assert row is not None  # _migrated() made the row; nothing deletes it
        self._seen = (cast("State", row["state"]), int(row["consecutive"]))
        self.opened_count = int(row["opened_count"])
        return cast("dict[str, Any]", row)

    @property
    def state(self) -> State:
        """The shared state now (one round trip)."""
        return cast("State", self._one("SELECT * FROM shoal_circuits WHERE name = %(name)s")
                    ["state"])

    def before(self) -> None:
        """Raise CircuitOpen unless a call may go now (this process's call is the probe when
        the cooldown is over and no other process holds a live probe lease)."""
        row = self._one(_BEFORE, lease=self.probe_lease_s, cooldown=self.cooldown_s)
        if row["probing"]:
            self._seen = ("half_open", int(row["consecutive"]))
            _log.info("circuit_half_open", backend=self.name, shared=True)
            return
        if row["state"] == "closed":
            return
        until = (row["opened_at"] + self.cooldown_s if row["state"] == "open"
                 else row["probe_until"])
        raise CircuitOpen(self.name, float(until) - float(row["t"]))

    def success(self) -> None:
        if self._seen == ("closed", 0):
            # Nothing to reset as far as this process saw at its last round trip (before()
            # of this call): the usual case costs no write. A failure another process counted
            # since then stays counted, as if it came after this success.
            return
        row = self._one(_SUCCESS)
        if row["was"] != "closed":
            _log.info("circuit_closed", backend=self.name, shared=True)

    def failure(self) -> None:
        row = self._one(_FAILURE, failures=self.failures)
        if row["was"] != "open" and row["state"] == "open":
            _log.warning("circuit_opened", backend=self.name, shared=True,
                         consecutive_failures=int(row["consecutive"]),
                         cooldown_s=self.cooldown_s)
