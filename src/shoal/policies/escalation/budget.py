"""Caps on what the planner may cost: its share of the decisions, tokens and money per run and
per process. An exhausted budget never raises into a run: the node keeps its local answer and its
trace says ``budget_exhausted``.

Calls are admitted against a *reservation* (the prompt's estimated tokens plus the answer's cap),
so concurrent runs cannot overshoot a cap by the calls they have in flight; the reservation is
replaced by the real usage when the call returns.

A *critical* escalation (a critical label fired, see ``CriticalRule``) is never refused: it is
counted in the share window and its tokens and dollars are recorded against the caps, but a full
window or a spent cap lets it through (``Budget.decide(..., critical=True)``, and
``Budget.admit`` inside :func:`critical_call`).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from shoal.policies.scope import RunSpend

__all__ = ["Budget", "BudgetSpec", "Ticket", "critical_call", "estimate_tokens", "process_spent"]

CHARS_PER_TOKEN = 4.0
"""Rough and on the high side for English: a reservation should overestimate, not under."""


def estimate_tokens(chars: int) -> int:
    return max(1, math.ceil(chars / CHARS_PER_TOKEN))


class BudgetSpec(BaseModel):
    """Budget keys, shared by a graph's ``escalation:`` block and escalation policy files."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_share: float | None = Field(default=None, ge=0.0, le=1.0)
    """At most ``floor(max_share * window)`` planner calls among the last ``window``
    escalation decisions (a decision: a node with an escalation rule finished)."""
    window: int | None = Field(default=None, ge=1)
    max_tokens_per_run: int | None = Field(default=None, ge=0)
    max_usd_per_run: float | None = Field(default=None, ge=0.0)
    max_tokens_per_process: int | None = Field(default=None, ge=0)
    max_usd_per_process: float | None = Field(default=None, ge=0.0)

    def merged(self, later: BudgetSpec) -> BudgetSpec:
        """This budget with every key ``later`` sets replacing ours."""
        return self.model_copy(update=later.model_dump(exclude_unset=True, exclude_none=True))

    @property
    def uses_money(self) -> bool:
        return self.max_usd_per_run is not None or self.max_usd_per_process is not None


DEFAULT_WINDOW = 100


@dataclass
class Ticket:
    """An admitted call's reservation, settled with the real usage afterwards."""

    run: RunSpend
    tokens: int
    usd: float
    settled: bool = False


_critical: ContextVar[bool] = ContextVar("shoal_critical_call", default=False)


@contextmanager
def critical_call() -> Iterator[None]:
    """Calls made inside are a critical escalation's: ``Budget.admit`` records them and never
    refuses them (the planner's guard admits the call deep inside the planner request)."""
    token = _critical.set(True)
    try:
        yield
    finally:
        _critical.reset(token)


_lock = threading.Lock()
_process = RunSpend()
"""What this process has spent or reserved: the per-process caps are the process's own."""


def process_spent() -> tuple[int, float]:
    """Planner tokens and dollars spent or reserved by this process so far."""
    with _lock:
        return _process.tokens, _process.usd


class Budget:
    """One graph's planner budget. Thread-safe; cheap when no cap is set."""

    blocking = False
    """Whether :meth:`decide` waits on I/O (a shared window in a database): async callers then
    run it in a thread, so the event loop serves other runs meanwhile."""

    def __init__(self, spec: BudgetSpec) -> None:
        self.spec = spec
        self.window = spec.window or DEFAULT_WINDOW
        self._decisions: deque[bool] = deque(maxlen=self.window)
        self._calls_allowed = (None if spec.max_share is None
                               else math.floor(spec.max_share * self.window + 1e-9))

    # -- share --------------------------------------------------------------------------------

    def decide(self, wants: bool, *, critical: bool = False) -> str | None:
        """Record one escalation decision. For a node that wants the planner, None admits it
        (and counts it as a call) and a string says why the share cap refuses. A critical one is
        counted and always admitted, even past the cap."""
        with _lock:
            if wants and not critical and self._calls_allowed is not None:
                calls = sum(self._decisions)
                if calls + 1 > self._calls_allowed:
                    self._decisions.append(False)
                    return (f"budget_exhausted: planner share cap {self.spec.max_share:g} "
                            f"({self._calls_allowed} calls in the last {self.window} "
                            "decisions) reached")
            self._decisions.append(wants)
            return None

    def share(self) -> float:
        """Planner calls over decisions in the current window."""
        with _lock:
            return sum(self._decisions) / len(self._decisions) if self._decisions else 0.0

    # -- tokens and money ---------------------------------------------------------------------

    def admit(self, run: RunSpend, tokens: int, usd: float) -> Ticket | str:
        """Reserve an estimated call against ``run`` (the run scope's spend) and the process, or
        say which cap it would break. Inside :func:`critical_call` no cap refuses (the call is
        still reserved and settled, so later calls see what it spent)."""
        s = self.spec
        critical = _critical.get()
        with _lock:
            checks = () if critical else (
                ("tokens per run", s.max_tokens_per_run, run.tokens, tokens),
                ("tokens per process", s.max_tokens_per_process, _process.tokens, tokens),
                ("USD per run", s.max_usd_per_run, run.usd, usd),
                ("USD per process", s.max_usd_per_process, _process.usd, usd),
            )
            for name, cap, spent, want in checks:
                if cap is not None and spent + want > cap:
                    return (f"budget_exhausted: {name} cap {cap:g} would be passed "
                            f"({spent:g} spent, this call needs up to {want:g})")
            run.tokens += tokens
            run.usd += usd
            _process.tokens += tokens
            _process.usd += usd
            return Ticket(run=run, tokens=tokens, usd=usd)

    def settle(self, ticket: Ticket, tokens: int, usd: float) -> None:
        """Replace a reservation with what the call really used (0 if it failed)."""
        with _lock:
            if ticket.settled:
                return
            ticket.settled = True
            d_tokens, d_usd = tokens - ticket.tokens, usd - ticket.usd
            ticket.run.tokens += d_tokens
            ticket.run.usd += d_usd
            _process.tokens += d_tokens
            _process.usd += d_usd

