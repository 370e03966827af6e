"""Where shoal keeps state that outlives a run: an embedded SQLite file by default, or a Postgres
database shared by several processes and machines (``SHOAL_DB=postgresql://...``).

This package holds what the stores have in common (which store a process uses, Postgres
connection pools, versioned migrations); each store's own tables and queries live beside the
policy they serve (the outbox in :mod:`shoal.policies.escalation.outbox`).
"""

from __future__ import annotations

from shoal.store.postgres import (
    DB_ENV,
    Migration,
    PostgresTables,
    close_pools,
    connection,
    is_postgres_url,
    migrate,
    redact,
    state_url,
)

__all__ = [
    "DB_ENV",
    "Migration",
    "PostgresTables",
    "close_pools",
    "connection",
    "is_postgres_url",
    "migrate",
    "redact",
    "state_url",
]
