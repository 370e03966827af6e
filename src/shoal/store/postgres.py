"""Postgres for the state several shoal processes share: one connection pool per database URL
per process, and versioned migrations applied once, under an advisory lock, whichever process
starts first.

Connections follow LangGraph's Postgres checkpointer: psycopg 3, ``autocommit=True`` (each
statement its own transaction unless a ``conn.transaction()`` block says otherwise) and
``row_factory=dict_row``. psycopg is the extra ``[postgres]``; it is imported only when a
Postgres URL is used.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from shoal.errors import StoreError
from shoal.extras import require

__all__ = ["DB_ENV", "Migration", "PostgresTables", "close_pools", "connection",
           "is_postgres_url", "migrate", "redact", "state_url"]

DB_ENV = "SHOAL_DB"
"""The environment variable naming the shared state database (a ``postgresql://`` URL)."""

CONNECT_TIMEOUT_S = 10.0
"""How long opening a pool waits for its first connection before :class:`StoreError`."""

_pools: dict[str, Any] = {}
_pools_lock = threading.Lock()
_migrated: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Migration:
    """One step of a store's schema: ``version`` counts from 1 and never changes meaning."""

    version: int
    sql: str


def is_postgres_url(location: object) -> bool:
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


def state_url() -> str | None:
    """``$SHOAL_DB`` when it names a Postgres database, else None (the embedded SQLite files).
    Any other value is an error rather than a silent fallback to a local file."""
    value = os.environ.get(DB_ENV)
    if not value:
        return None
    if not is_postgres_url(value):
        raise StoreError("not a postgresql:// URL", store=f"${DB_ENV}")
    return value


def redact(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = (parts.username or "") + ":***"
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc[-1]}"))


def _pool(url: str) -> Any:
    with _pools_lock:
        found = _pools.get(url)
        if found is not None:
            return found
        require("postgres", f"{DB_ENV}=postgresql://...")
        import psycopg  # optional extra [postgres]
        from psycopg.rows import dict_row  # optional extra [postgres]
        from psycopg_pool import ConnectionPool  # optional extra [postgres]

        pool = ConnectionPool(url, min_size=1, max_size=4, open=False,
                              kwargs={"autocommit": True, "row_factory": dict_row},
                              name="shoal")
        try:
            pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        except (psycopg.Error, TimeoutError) as exc:
            pool.close()
            # psycopg's message can quote the URL with its password: say only what happened.
            raise StoreError(f"cannot connect ({type(exc).__name__})", store=redact(url)) from None
        if not _pools:
            atexit.register(close_pools)
        _pools[url] = pool
        return pool


@contextlib.contextmanager
def connection(url: str) -> Iterator[Any]:
    """A pooled connection to ``url`` (autocommit, rows as dicts), returned to the pool after.

    A database that went away after the pool opened is :class:`StoreError` too, within
    ``CONNECT_TIMEOUT_S``: a broken connection (the server restarted, the network dropped), or
    no connection to be had. Errors of the statement itself (a constraint, a deadlock) stay
    psycopg's: the database answered.
    """
    pool = _pool(url)  # first: it says which extra to install when psycopg is missing
    import psycopg  # optional extra [postgres]

    try:
        with pool.connection(timeout=CONNECT_TIMEOUT_S) as conn:
            yield conn
    except psycopg.OperationalError as exc:
        if not _unavailable(exc):
            raise
        raise StoreError(f"database unavailable ({type(exc).__name__})",
                         store=redact(url)) from None


def _unavailable(exc: Exception) -> bool:
    """Whether ``exc`` says the database cannot be reached (as opposed to refusing a statement):
    no SQLSTATE (the client lost or never got a connection; the pool's time-out), class 08
    (connection exception) or 57P (the server shutting down or starting)."""
    state = getattr(exc, "sqlstate", None)
    return state is None or state.startswith(("08", "57P"))


def migrate(url: str, component: str, steps: Sequence[Migration]) -> int:
    """Bring ``component``'s tables in ``url`` to the last of ``steps``; its version after.

    Concurrent starters wait on one advisory lock, so each step runs once; a database already
    migrated further than ``steps`` know (a newer shoal) is refused, not downgraded.
    """
    if (url, component) in _migrated:
        return steps[-1].version
    target = steps[-1].version
    with connection(url) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('shoal-migrations'))")
        conn.execute("CREATE TABLE IF NOT EXISTS shoal_schema (component TEXT PRIMARY KEY, "
                     "version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM shoal_schema WHERE component = %s",
                           (component,)).fetchone()
        current = int(row["version"]) if row else 0
        if current > target:
            raise StoreError(f"{component} schema is at version {current}, this shoal knows "
                             f"{target}: upgrade shoal", store=redact(url))
        for step in steps:
            if step.version > current:
                conn.execute(step.sql)
        conn.execute("INSERT INTO shoal_schema (component, version) VALUES (%s, %s) "
                     "ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version",
                     (component, target))
    _migrated.add((url, component))
    return target


class PostgresTables:
    """Base of a store kept in Postgres: its database URL, and its ``migrations`` (recorded
    under ``component``) applied on first use."""

    component: ClassVar[str]
    migrations: ClassVar[Sequence[Migration]]

    def __init__(self, url: str) -> None:
        self.url = url
        self._ready = False

    @property
    def where(self) -> str:
        """The database URL without password: for messages."""
        return redact(self.url)

    def exists(self) -> bool:
        return True  # a database is there to ask; empty tables read as empty

    def _migrated(self) -> str:
        """The URL, once this store's tables are up to date."""
        if not self._ready:
            migrate(self.url, self.component, self.migrations)
            self._ready = True
        return self.url

    def close(self) -> None:
        """Nothing to close: connections belong to the process's pool for this URL."""


def close_pools() -> None:
    """Close every pool of this process (at exit; tests that stop their server)."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
        _migrated.clear()
    for pool in pools:
        pool.close()
