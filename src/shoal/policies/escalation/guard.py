"""The machine boundary: every call to a remote model, and every call to the planner wherever it
runs, goes through a :class:`RemoteGuard` (a local planner's has no egress scan and no breaker).

The guard does three things no agent can forget to do:

- **egress scan**: the outbound messages are re-scanned with the graph's masker pack; an
  identifier outside a pseudonym blocks the call (:class:`~shoal.errors.EgressBlocked`, logged
  with types and counts only). Then a second detector, built independently of the masker's
  (:mod:`shoal.policies.privacy.second_detector`), looks at them too: by default a hit of it
  blocks the call as well (the model's ``egress: {independent_check: ...}``);
- **budget**: the call's tokens and dollars are reserved against the graph's caps first (the run's
  share in its :class:`~shoal.policies.scope.RunScope`)
  (:class:`~shoal.errors.BudgetExhausted` when a cap would be passed);
- **metering**: time, tokens and dollars are added to the running node's
  :class:`~shoal.policies.scope.Meter`: the one place a planner call's cost is measured.

The system prompt is the graph's own text (never user input), so only user and assistant messages
are scanned.

A model marked ``boundary: inside`` (an on-prem server inside the organisation's trust boundary)
is still budgeted, metered and behind its breaker, but nothing blocks a payload to it: the
masker's re-scan does not run (a graph that may send such a model unmasked text may have no
masker, nor the privacy extra), and the independent check only counts. Every call to it emits
``egress_inside_boundary`` (node, model, identifier types and counts) and, when the graph has an
audit log, appends an audit record before anything is sent; a record that cannot be written
stops the call.
"""

from __future__ import annotations

import time
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from shoal.errors import (
    BackendError,
    BudgetExhausted,
    EgressBlocked,
    OutputValidationError,
    PolicyViolation,
)
from shoal.models.base import Generation, JsonGeneration, JsonSchema, Message
from shoal.models.specs import Boundary, EgressSpec, IndependentCheck, Price
from shoal.observability.logging import get_logger
from shoal.policies.audit import AuditCheck, AuditWriter
from shoal.policies.escalation.budget import Budget, Ticket, estimate_tokens
from shoal.policies.escalation.circuit import CircuitBreaker, CircuitOpen
from shoal.policies.privacy import scan_outbound
from shoal.policies.privacy.second_detector import SecondDetector, second_detector
from shoal.policies.scope import RunSpend, active

GenT = TypeVar("GenT", bound=Generation)

__all__ = ["AUDIT_AGENT", "INSIDE_DECISION", "RemoteGuard", "price_of"]

AUDIT_AGENT = "remote_guard"
"""The ``agent`` of the audit record of a call to a model inside the trust boundary."""
INSIDE_DECISION = "sent_inside_boundary"
"""Its ``decision``."""

_log = get_logger()


def price_of(price: Price | None, prompt_tokens: int, completion_tokens: int) -> float:
    if price is None:
        return 0.0
    return (prompt_tokens * price.input_per_mtok
            + completion_tokens * price.output_per_mtok) / 1_000_000


class _AnswerLength:
    """Mean completion length of this model's answers so far: the all-planner estimate prices
    the calls that were not made with it."""

    def __init__(self, prior: int = 64) -> None:
        self.total = prior
        self.count = 1

    def add(self, tokens: int) -> None:
        self.total += tokens
        self.count += 1

    @property
    def mean(self) -> float:
        return self.total / self.count


class RemoteGuard:
    """A Generator in front of a remote one. Anything else is passed through to it."""

    def __init__(
        self,
        inner: Any,
        *,
        model: str,
        pack: str | None,
        price: Price | None,
        budget: Budget | None = None,
        circuit: CircuitBreaker | None = None,
        boundary: Boundary = "outside",
        egress: EgressSpec | None = None,
        audit: AuditWriter | None = None,
    ) -> None:
        self.inner = inner
        self.circuit = circuit
        self.name = getattr(inner, "name", model)
        self.model = model
        self.pack = pack
        """The masker's pack the payload is re-scanned with; None for a planner on this
        machine (nothing leaves it: no egress check at all)."""
        self.price = price
        self.budget = budget
        self.answer_length = _AnswerLength()
        self.boundary: Boundary = "outside"
        self.independent_check: IndependentCheck = "block"
        self.audit: AuditWriter | None = None
        self._allow: tuple[str, ...] = ()
        self._second: SecondDetector | None = None
        self.configure(boundary=boundary, egress=egress, audit=audit)

    def configure(self, *, boundary: Boundary, egress: EgressSpec | None,
                  audit: AuditWriter | None) -> None:
        """Take the model entry's ``boundary`` and ``egress`` settings, and the audit log that
        records calls to a model inside the boundary (the graph's compiler binds them)."""
        egress = egress if egress is not None else EgressSpec()
        self.boundary = boundary
        self.independent_check = egress.independent_check
        self._allow, self._second = tuple(egress.allow), None
        self.audit = audit

    @property
    def second(self) -> SecondDetector:
        """The independent detector, with the model's ``allow`` words. Its word lists are read
        on first use, so a guard that never checks a payload never loads them."""
        if self._second is None:
            self._second = second_detector(self._allow)
        return self._second

    def __getattr__(self, item: str) -> Any:
        return getattr(self.inner, item)

    # -- the Generator protocol ---------------------------------------------------------------

    async def generate(self, messages: Sequence[Message], *, max_tokens: int = 256,
                       temperature: float = 0.0, timeout_s: float | None = None) -> Generation:
        ticket = await self._before(messages, max_tokens)
        start = time.perf_counter()
        out: Generation | None = None
        try:
            out = await self._call(self.inner.generate(
                messages, max_tokens=max_tokens, temperature=temperature, timeout_s=timeout_s))
            return out
        finally:
            self._after(ticket, out, start)

    async def generate_json(self, messages: Sequence[Message], schema: JsonSchema, *,
                            max_tokens: int = 512, timeout_s: float | None = None
                            ) -> JsonGeneration:
        ticket = await self._before(messages, max_tokens)
        start = time.perf_counter()
        out: JsonGeneration | None = None
        try:
            out = await self._call(self.inner.generate_json(
                messages, schema, max_tokens=max_tokens, timeout_s=timeout_s))
            return out
        finally:
            self._after(ticket, out, start)

    async def _call(self, call: Coroutine[Any, Any, GenT]) -> GenT:
        """Through the circuit breaker: refused at once while open; the outcome recorded."""
        if self.circuit is None:
            return await call
        try:
            self.circuit.before()
        except CircuitOpen:
            call.close()  # never awaited: nothing was sent
            raise
        try:
            out = await call
        except BackendError:
            self.circuit.failure()
            raise
        except OutputValidationError:
            self.circuit.success()  # it answered; the answer was bad
            raise
        self.circuit.success()
        return out

    # -- estimates ----------------------------------------------------------------------------

    def estimate_usd(self, prompt_chars: int) -> float:
        """Price of one call with this much prompt, answered at the mean answer length."""
        return price_of(self.price, estimate_tokens(prompt_chars),
                        round(self.answer_length.mean))

    # -- inside -------------------------------------------------------------------------------

    async def _before(self, messages: Sequence[Message], max_tokens: int) -> Ticket | None:
        running = active()
        node = running[1] if running is not None else None
        await self._scan(messages, node)
        if self.budget is None:
            return None
        prompt_tokens = estimate_tokens(sum(len(m["content"]) for m in messages))
        # Outside a run (a tool calling the model directly) only the process caps apply.
        spend = running[0].spend if running is not None else RunSpend()
        admitted = self.budget.admit(spend, prompt_tokens + max_tokens,
                                     price_of(self.price, prompt_tokens, max_tokens))
        if isinstance(admitted, str):
            raise BudgetExhausted(admitted, node=node)
        return admitted

    def _after(self, ticket: Ticket | None, out: Generation | None, start: float) -> None:
        tokens = out.usage.total_tokens if out is not None else 0
        usd = 0.0
        if out is not None:
            usd = (out.cost_usd if out.cost_usd is not None
                   else price_of(self.price, out.usage.prompt_tokens,
                                 out.usage.completion_tokens))
            self.answer_length.add(out.usage.completion_tokens)
        if ticket is not None and self.budget is not None:
            self.budget.settle(ticket, tokens, usd)
        running = active()
        if running is not None:
            meter = running[0].meter(running[1])
            meter.calls += 1
            meter.ms += (time.perf_counter() - start) * 1000.0
            meter.tokens += tokens
            meter.usd += usd

    async def _scan(self, messages: Sequence[Message], node: str | None) -> None:
        # The system prompt is the graph's own text, not the user's: only the rest is scanned.
        texts = [m["content"] for m in messages if m["role"] != "system"]
        if self.boundary == "inside":
            await self._inside(texts, node)
            return
        if self.pack is None:
            return
        types = await scan_outbound(texts, self.pack)
        if types:
            _log.warning("egress_blocked", node=node, model=self.model, identifiers=types,
                         detector="masker")
            raise EgressBlocked(f"{_summary(types)} survived masking; nothing was sent to "
                                f"{self.model!r}", types=types, node=node, detector="masker")
        if self.independent_check == "off":
            return
        # The masker's detector found nothing: a detector built differently gets a look, since
        # the re-scan cannot see what the masker itself missed.
        found = self.second.counts(texts)
        if not found:
            return
        if self.independent_check == "count":
            _log.warning("egress_flagged", node=node, model=self.model, identifiers=found,
                         detector="independent")
            return
        _log.warning("egress_blocked", node=node, model=self.model, identifiers=found,
                     detector="independent")
        raise EgressBlocked(f"{_summary(found)} found by the independent check; nothing was "
                            f"sent to {self.model!r}", types=found, node=node,
                            detector="independent")

    async def _inside(self, texts: list[str], node: str | None) -> None:
        """A call to a model inside the trust boundary: counted, audited, never blocked."""
        found = self.second.counts(texts) if self.independent_check != "off" else {}
        _log.info("egress_inside_boundary", node=node, model=self.model, identifiers=found)
        running = active()
        if self.audit is None or running is None:
            return
        scope, where = running
        checks = [AuditCheck(f"model:{self.model}", True),
                  AuditCheck("independent_check", not found, count=sum(found.values()),
                             kinds=tuple(found))]
        try:
            await self.audit.aappend(run_id=scope.run_id, record_id=scope.record_id, node=where,
                                     agent=AUDIT_AGENT, decision=INSIDE_DECISION, checks=checks)
        except (OSError, ValueError) as exc:
            # Unaudited, it does not go: the record is the promise that every call is on file.
            raise PolicyViolation(f"cannot write the audit log ({type(exc).__name__}); nothing "
                                  f"was sent to {self.model!r}", policy="audit",
                                  node=node) from exc


def _summary(types: dict[str, int]) -> str:
    return ", ".join(f"{n} {t}" for t, n in sorted(types.items()))
