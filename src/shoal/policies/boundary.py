"""The machine boundary: every call to a remote model goes through a :class:`RemoteGuard`.

The guard does three things no agent can forget to do:

- **egress scan**: the outbound messages are re-scanned with the graph's masker pack; an
  identifier outside a pseudonym blocks the call (:class:`~shoal.errors.EgressBlocked`, logged
  with types and counts only);
- **budget**: the call's tokens and dollars are reserved against the graph's caps first
  (:class:`~shoal.errors.BudgetExhausted` when a cap would be passed);
- **metering**: time, tokens and dollars are added to the current node's :class:`Meter`, which
  the node turns into its cost record.

The system prompt is ours and constant, so only user and assistant messages are scanned.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Coroutine, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from shoal.errors import BackendError, BudgetExhausted, EgressBlocked, OutputValidationError
from shoal.graphs.spec import Price
from shoal.models.base import Generation, JsonGeneration, JsonSchema, Message
from shoal.observability.logging import get_logger
from shoal.policies.budget import Budget, Ticket, estimate_tokens
from shoal.policies.circuit import CircuitBreaker, CircuitOpen

GenT = TypeVar("GenT", bound=Generation)

__all__ = ["Meter", "RemoteGuard", "current_meter", "mask_leftovers", "metering", "price_of"]

_log = get_logger()


@dataclass
class Meter:
    """What one node spent on remote models."""

    run_id: str
    node: str | None = None
    calls: int = 0
    ms: float = 0.0
    tokens: int = 0
    usd: float = 0.0


_meter: ContextVar[Meter | None] = ContextVar("shoal_meter", default=None)


def current_meter() -> Meter | None:
    return _meter.get()


@contextlib.contextmanager
def metering(run_id: str, node: str) -> Iterator[Meter]:
    """Count remote calls made by the code inside (the node's agent and its escalation)."""
    meter = Meter(run_id=run_id, node=node)
    token = _meter.set(meter)
    try:
        yield meter
    finally:
        _meter.reset(token)


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
        meter = _meter.get()
        node = meter.node if meter is not None else None
        await self._scan(messages, node)
        if self.budget is None:
            return None
        prompt_tokens = estimate_tokens(sum(len(m["content"]) for m in messages))
        admitted = self.budget.admit(meter.run_id if meter is not None else "-",
                                     prompt_tokens + max_tokens,
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
        meter = _meter.get()
        if meter is not None:
            meter.calls += 1
            meter.ms += (time.perf_counter() - start) * 1000.0
            meter.tokens += tokens
            meter.usd += usd

    async def _scan(self, messages: Sequence[Message], node: str | None) -> None:
        if self.pack is None:
            return
        from shoal.policies import privacy

        detector = await _detector(self.pack)
        types: Counter[str] = Counter()
        for message in messages:
            if message["role"] == "system" or not message["content"].strip():
                continue
            found = await detector.ascan(message["content"])
            for hit in privacy.outside_pseudonyms(message["content"], found, detector.pack):
                types[hit.type] += 1
        if types:
            summary = ", ".join(f"{n} {t}" for t, n in sorted(types.items()))
            _log.warning("egress_blocked", node=node, model=self.model, identifiers=dict(types))
            raise EgressBlocked(f"{summary} survived masking; nothing was sent to "
                                f"{self.model!r}", types=dict(types), node=node)


async def _detector(pack: str) -> Any:
    from shoal.models.pool import run_blocking
    from shoal.policies import privacy

    # Building it loads spaCy once per process: in the pool, like every blocking model load.
    return await run_blocking(privacy.detector, pack, backend=privacy.BACKEND, timeout_s=None)


async def mask_leftovers(text: str, pack: str, run_id: str) -> str:
    """Mask what a scan finds outside pseudonyms, with the run's vault (so ``[NAME_1]`` stays
    ``[NAME_1]``). For texts a local model wrote from masked input, such as a draft about to go
    to the planner: it should hold no identifier, and if it copied or invented one, it goes out
    masked rather than not at all."""
    from shoal.policies import privacy

    detector = await _detector(pack)
    found = privacy.outside_pseudonyms(text, await detector.ascan(text), detector.pack)
    if not found:
        return text
    return privacy.apply_mask(text, found, vault=privacy.vault_for(run_id)).masked
