"""A circuit breaker for a remote model: after ``failures`` consecutive failures the circuit opens
and calls fail at once (no network, no timeout to wait out); after ``cooldown_s`` one call is let
through as a probe (half-open); its success closes the circuit, its failure opens it again.

Only failures that say the service is unwell count: unreachable, timeouts, 5xx after retries
(``BackendError``). A malformed answer (``OutputValidationError``) is the model's fault, not the
service's, and a refusal by our own policies never reached it.
"""

from __future__ import annotations

import threading
import time
from typing import Literal

from shoal.errors import BackendError, StoreError
from shoal.observability.logging import get_logger

__all__ = ["CircuitBreaker", "CircuitOpen", "State", "circuits"]

State = Literal["closed", "open", "half_open"]
_log = get_logger()
_registry: dict[str, CircuitBreaker] = {}
_registry_lock = threading.Lock()


class CircuitOpen(BackendError):
    """The circuit is open: the call was not attempted."""

    def __init__(self, backend: str, retry_in_s: float) -> None:
        super().__init__(f"circuit open after repeated failures; next probe in "
                         f"{max(0.0, retry_in_s):.1f} s", backend=backend)
        self.retry_in_s = retry_in_s


class CircuitBreaker:
    def __init__(self, name: str, *, failures: int = 5, cooldown_s: float = 30.0) -> None:
        if failures < 1 or cooldown_s <= 0:
            raise ValueError("failures must be >= 1 and cooldown_s > 0")
        self.name = name
        self.failures = failures
        self.cooldown_s = cooldown_s
        self._state: State = "closed"
        self._consecutive = 0
        self._opened_at = 0.0
        self._probing = False
        self._lock = threading.Lock()
        self.opened_count = 0
        """How many times the circuit opened (a metric)."""
        with _registry_lock:
            _registry[name] = self

    @property
    def state(self) -> State:
        with self._lock:
            return self._state

    def before(self) -> None:
        """Raise CircuitOpen unless a call may go now."""
        with self._lock:
            if self._state == "closed":
                return
            waited = time.monotonic() - self._opened_at
            if self._state == "open" and waited >= self.cooldown_s:
                self._state, self._probing = "half_open", False
                _log.info("circuit_half_open", backend=self.name)
            if self._state == "half_open" and not self._probing:
                self._probing = True  # exactly one probe at a time
                return
            raise CircuitOpen(self.name, self.cooldown_s - waited)

    def success(self) -> None:
        with self._lock:
            was = self._state
            self._state, self._consecutive, self._probing = "closed", 0, False
        if was != "closed":
            _log.info("circuit_closed", backend=self.name)

    def failure(self) -> None:
        with self._lock:
            self._consecutive += 1
            opening = self._state == "half_open" or (
                self._state == "closed" and self._consecutive >= self.failures)
            if opening:
                self._state, self._opened_at, self._probing = "open", time.monotonic(), False
                self.opened_count += 1
        if opening:
            _log.warning("circuit_opened", backend=self.name,
                         consecutive_failures=self._consecutive, cooldown_s=self.cooldown_s)


def circuits() -> dict[str, State]:
    """Every breaker of this process and its state (for metrics and readiness)."""
    with _registry_lock:
        items = list(_registry.items())
    states: dict[str, State] = {}
    for name, breaker in items:
        try:
            states[name] = breaker.state
        except StoreError:
            # A shared breaker whose database is down: a scrape must still answer.
            _log.warning("circuit_state_unavailable", backend=name)
    return states
