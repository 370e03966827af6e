"""One run's own state: its pseudonym vault, what its nodes spent on remote models, and what it
has reserved against the per-run budget caps.

The runtime makes a :class:`RunScope` when a run starts, hands it to every node in the agent
context, and closes it when the run ends; nothing about a run outlives its scope, and there is no
registry of runs to leak from. Remote model calls happen deep inside agents, where no context is
passed, so the node that is running is also set in a context variable (:func:`metering`), the way
structlog carries bound context.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from shoal.policies.privacy.vault import Vault

__all__ = ["Meter", "RunScope", "RunSpend", "active", "metering"]


@dataclass(slots=True)
class Meter:
    """What one node spent on remote models: every call through a remote model's guard while the
    node ran (its agent's and its escalation's) is added here."""

    calls: int = 0
    ms: float = 0.0
    tokens: int = 0
    usd: float = 0.0


@dataclass(slots=True)
class RunSpend:
    """Planner tokens and dollars a run has spent or reserved (the per-run budget caps)."""

    tokens: int = 0
    usd: float = 0.0


class RunScope:
    """The state of one run, owned by the runtime. ``repr`` never shows the vault's values."""

    __slots__ = ("_meters", "record_id", "run_id", "spend", "vault")

    def __init__(self, run_id: str, record_id: str | None = None) -> None:
        self.run_id = run_id
        self.record_id = record_id if record_id is not None else run_id
        self.vault = Vault(run_id)
        """Pseudonyms of this run: the masker writes them, the escalator and the compliance
        checker read them; dropped when the run ends."""
        self.spend = RunSpend()
        self._meters: dict[str, Meter] = {}

    def __repr__(self) -> str:
        return f"RunScope(run_id={self.run_id!r}, {self.vault!r})"

    def meter(self, node: str) -> Meter:
        """The node's meter, made on first use."""
        found = self._meters.get(node)
        if found is None:
            found = self._meters[node] = Meter()
        return found

    def close(self) -> None:
        """Forget the pseudonyms; called by the runtime when the run ends."""
        self.vault.clear()


_active: ContextVar[tuple[RunScope, str] | None] = ContextVar("shoal_run_scope", default=None)


def active() -> tuple[RunScope, str] | None:
    """The scope and node of the code running now, or None outside a node."""
    return _active.get()


@contextlib.contextmanager
def metering(scope: RunScope, node: str) -> Iterator[Meter]:
    """Attribute remote calls made inside (the node's agent and its escalation) to ``node``."""
    token = _active.set((scope, node))
    try:
        yield scope.meter(node)
    finally:
        _active.reset(token)
