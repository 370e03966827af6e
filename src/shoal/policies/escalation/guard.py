"""The machine boundary: every call to a remote model, and every call to the planner wherever it
runs, goes through a :class:`RemoteGuard` (a local planner's has no egress scan and no breaker).

The guard does three things no agent can forget to do:

- **egress scan**: the outbound messages are re-scanned with the graph's masker pack; an
  identifier outside a pseudonym blocks the call (:class:`~shoal.errors.EgressBlocked`, logged
  with types and counts only);
- **budget**: the call's tokens and dollars are reserved against the graph's caps first (the run's
  share in its :class:`~shoal.policies.scope.RunScope`)
  (:class:`~shoal.errors.BudgetExhausted` when a cap would be passed);
- **metering**: time, tokens and dollars are added to the running node's
  :class:`~shoal.policies.scope.Meter`: the one place a planner call's cost is measured.

The system prompt is the graph's own text (never user input), so only user and assistant messages
are scanned.
"""

from __future__ import annotations

import time
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from shoal.errors import BackendError, BudgetExhausted, EgressBlocked, OutputValidationError
from shoal.models.base import Generation, JsonGeneration, JsonSchema, Message
from shoal.models.specs import Price
from shoal.observability.logging import get_logger
from shoal.policies.escalation.budget import Budget, Ticket, estimate_tokens
from shoal.policies.escalation.circuit import CircuitBreaker, CircuitOpen
from shoal.policies.privacy import scan_outbound
from shoal.policies.scope import RunSpend, active

GenT = TypeVar("GenT", bound=Generation)

__all__ = ["RemoteGuard", "price_of"]

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
    ) -> None:
        self.inner = inner
        self.circuit = circuit
        self.name = getattr(inner, "name", model)
        self.model = model
        self.pack = pack
        self.price = price
        self.budget = budget
        self.answer_length = _AnswerLength()

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
        if self.pack is None:
            return
        # The system prompt is the graph's own text, not the user's: only the rest is scanned.
        types = await scan_outbound(
            (m["content"] for m in messages if m["role"] != "system"), self.pack)
        if types:
            summary = ", ".join(f"{n} {t}" for t, n in sorted(types.items()))
            _log.warning("egress_blocked", node=node, model=self.model, identifiers=types)
            raise EgressBlocked(f"{summary} survived masking; nothing was sent to "
                                f"{self.model!r}", types=types, node=node)
