"""The one exception tree of shoal.

    ShoalError
    ├── SpecError                 a graph spec is wrong; carries every SpecIssue found
    ├── BackendError              a model backend failed
    │   └── BackendTimeout        ... and did not answer in time (also a TimeoutError)
    ├── AgentError                an agent raised or returned something unusable
    ├── OutputValidationError     a model's structured output failed its schema
    ├── PolicyViolation           a policy blocked an action
    ├── InputError                a batch record cannot be run (names its record id)
    ├── LearningError             the learning loop refused (no learn: block, gate failed, ...)
    ├── StoreError                shared state (Postgres) cannot be reached or migrated
    └── MissingExtra              a feature needs an optional extra that is not installed

Every error names its place keyword-only (``file:line``, ``node``, ``agent``, ``backend``,
``record_id``) and carries an :class:`ErrorCode` documented in ``docs/errors.md``. Messages never
quote user text: that is the caller's data and may hold personal information.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Stable machine-readable codes; each has a section in ``docs/errors.md``."""

    SPEC_INVALID = "spec_invalid"
    BACKEND_FAILED = "backend_failed"
    BACKEND_TIMEOUT = "backend_timeout"
    BACKEND_OVERLOADED = "backend_overloaded"
    AGENT_FAILED = "agent_failed"
    AGENT_TIMEOUT = "agent_timeout"
    OUTPUT_INVALID = "output_invalid"
    POLICY_VIOLATION = "policy_violation"
    INPUT_INVALID = "input_invalid"
    EGRESS_BLOCKED = "egress_blocked"
    BUDGET_EXHAUSTED = "budget_exhausted"
    EXTRA_MISSING = "extra_missing"
    LEARNING_FAILED = "learning_failed"
    STORE_UNAVAILABLE = "store_unavailable"


class ShoalError(Exception):
    """Root of every error shoal raises."""

    code: ErrorCode = ErrorCode.AGENT_FAILED

    def __init__(self, message: str, *, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross process boundaries (a Ray worker's answer, a subprocess's result): the
        # subclasses' keyword-only constructors would break pickle's default, which calls
        # ``cls(*args)``; the instance is rebuilt from its attributes instead.
        return _rebuild, (type(self), self.args, dict(self.__dict__))


def _rebuild(cls: type[ShoalError], args: tuple[Any, ...], state: dict[str, Any]) -> ShoalError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


@dataclass(frozen=True, slots=True)
class SourceLocation:
    """Where a spec value came from: a file position, or a path inside a Python-built spec."""

    file: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return self.file
        return f"{self.file}:{self.line}:{self.column or 1}"


@dataclass(frozen=True, slots=True)
class SpecIssue:
    """One mistake in a graph spec, with its place and the spec path (``nodes.triage.model``)."""

    location: SourceLocation
    path: str
    message: str

    def __str__(self) -> str:
        where = f" ({self.path})" if self.path and self.location.line is not None else ""
        if self.location.line is None and self.path:
            return f"{self.location}: {self.path}: {self.message}"
        return f"{self.location}: {self.message}{where}"


class SpecError(ShoalError):
    """A graph spec failed to load or check. ``issues`` holds all mistakes, not only the first."""

    code = ErrorCode.SPEC_INVALID

    def __init__(self, issues: list[SpecIssue]) -> None:
        if not issues:
            raise ValueError("SpecError needs at least one issue")
        self.issues = sorted(
            issues,
            key=lambda i: (i.location.file, i.location.line or 0, i.location.column or 0),
        )
        super().__init__("\n".join(str(i) for i in self.issues))


class BackendError(ShoalError):
    """A model backend could not answer."""

    code = ErrorCode.BACKEND_FAILED

    def __init__(self, message: str, *, backend: str, code: ErrorCode | None = None) -> None:
        super().__init__(f"backend {backend!r}: {message}", code=code)
        self.backend = backend


class BackendTimeout(BackendError, TimeoutError):
    """A model backend did not answer within its timeout."""

    code = ErrorCode.BACKEND_TIMEOUT

    def __init__(self, *, backend: str, timeout_s: float) -> None:
        super().__init__(f"no answer within {timeout_s:g} s", backend=backend)
        self.timeout_s = timeout_s


class BackendOverloaded(BackendError):
    """A model's queue was full and the caller asked not to wait (``shoal serve`` answers it
    as HTTP 429 with ``Retry-After``)."""

    code = ErrorCode.BACKEND_OVERLOADED

    def __init__(self, *, backend: str, waiting: int, retry_after_s: int) -> None:
        super().__init__(f"queue full ({waiting} waiting); retry in about {retry_after_s} s",
                         backend=backend)
        self.waiting = waiting
        self.retry_after_s = retry_after_s


class AgentError(ShoalError):
    """An agent failed at a node. The message names the node and agent, never the input."""

    code = ErrorCode.AGENT_FAILED

    def __init__(
        self, message: str, *, node: str, agent: str, code: ErrorCode | None = None
    ) -> None:
        super().__init__(f"node {node!r} (agent {agent!r}): {message}", code=code)
        self.node = node
        self.agent = agent


class OutputValidationError(ShoalError):
    """A model's structured output still failed its schema after every retry."""

    code = ErrorCode.OUTPUT_INVALID

    def __init__(self, message: str, *, node: str, attempts: int) -> None:
        super().__init__(f"node {node!r}: {message} after {attempts} attempt(s)")
        self.node = node
        self.attempts = attempts


class PolicyViolation(ShoalError):
    """A policy refused an action (for example an outbound payload that still holds PHI)."""

    code = ErrorCode.POLICY_VIOLATION

    def __init__(self, message: str, *, policy: str, node: str | None = None) -> None:
        where = f"node {node!r}: " if node else ""
        super().__init__(f"{where}policy {policy!r}: {message}")
        self.policy = policy
        self.node = node


class EgressBlocked(PolicyViolation):
    """An outbound payload still held an identifier; nothing was sent. The message names the
    identifier types and counts, never the values. ``detector`` says which check found them:
    ``masker`` (the masker's own detector, re-run) or ``independent`` (the second detector)."""

    code = ErrorCode.EGRESS_BLOCKED

    def __init__(self, message: str, *, types: dict[str, int], node: str | None = None,
                 detector: str = "masker") -> None:
        super().__init__(message, policy="privacy_boundary", node=node)
        self.types = types
        self.detector = detector


class BudgetExhausted(PolicyViolation):
    """A planner budget cap would be passed; nothing was sent."""

    code = ErrorCode.BUDGET_EXHAUSTED

    def __init__(self, message: str, *, node: str | None = None) -> None:
        super().__init__(message, policy="budget", node=node)
        self.detail = message
        """The cap's own words, without the node and policy prefix."""


class InputError(ShoalError):
    """A record of a batch cannot be run; the rest of the batch still runs."""

    code = ErrorCode.INPUT_INVALID

    def __init__(self, message: str, *, record_id: str, where: str | None = None) -> None:
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}record {record_id!r}: {message}")
        self.record_id = record_id
        self.where = where


class LearningError(ShoalError):
    """The learning loop cannot do what was asked: a node without a ``learn:`` block or a
    trained classifier, an unknown version, a frozen split that changed, a promotion the gate
    refused (``shoal learn``, ``shoal promote``, ``shoal rollback``)."""

    code = ErrorCode.LEARNING_FAILED


class StoreError(ShoalError):
    """The state store (the outbox and the other shared state in Postgres) cannot be reached,
    or its schema cannot be brought up to date. Names the store by its URL without password."""

    code = ErrorCode.STORE_UNAVAILABLE

    def __init__(self, message: str, *, store: str) -> None:
        super().__init__(f"{store}: {message}")
        self.store = store


class MissingExtra(ShoalError):
    """A feature needs an optional extra (``pip install 'shoal[privacy]'``) that is not
    installed. The message names the feature, the extra and the missing modules."""

    code = ErrorCode.EXTRA_MISSING

    def __init__(self, message: str, *, extra: str) -> None:
        super().__init__(message)
        self.extra = extra
