"""``Graph``: a checked, compiled spec you can run on one text or a batch of thousands."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

from shoal.agents.base import get_agent
from shoal.errors import BackendError, ErrorCode, InputError, ShoalError, SpecError
from shoal.graphs.compiler import Compiled, check, compile_spec
from shoal.graphs.loader import load_spec, spec_issues
from shoal.graphs.node import NodeRunner, ShadowModel
from shoal.graphs.results import (
    ErrorInfo,
    NodeEvent,
    NodeTrace,
    Record,
    RunCost,
    RunResult,
    Status,
)
from shoal.graphs.spec import GraphSpec
from shoal.graphs.state import RunState
from shoal.models.base import Backend, Classifier, Generator, SignalClassifier
from shoal.models.kinds import build_model, is_remote, validate_spec
from shoal.models.router import DeferralRouter, load_router
from shoal.models.specs import OnnxClassifierModelSpec
from shoal.observability.logging import get_logger
from shoal.policies.escalation import (
    BASE_VERSION,
    Budget,
    BudgetSpec,
    Escalator,
    ModelRegistry,
    ModelVersion,
    NodeRule,
    RemoteGuard,
    open_budget,
    open_circuit,
    open_ledger,
    open_outbox,
    open_registry,
    outbox_path,
    resolve_rules,
    version_rule,
)
from shoal.policies.privacy import DEFAULT_PACK
from shoal.policies.scope import RunScope
from shoal.yaml_source import SourceMap

DEFAULT_CONCURRENCY = max(4, 4 * (os.cpu_count() or 1))
"""Runs in flight per batch. Model calls are bounded separately by the model pool's executor;
this only bounds memory and keeps the event loop responsive."""

_log = get_logger()

BatchItem = Record | tuple[str, str] | Mapping[str, Any]


class Graph:
    """A graph ready to run. Build with :func:`shoal.load_graph` or ``Graph(spec)``."""

    def __init__(
        self,
        spec: GraphSpec,
        *,
        base_dir: str | Path | None = None,
        source: SourceMap | None = None,
        models: Mapping[str, Backend] | None = None,
        checked: bool = False,
        rules: Mapping[str, NodeRule | None] | None = None,
        budget: BudgetSpec | None = None,
        halt_on_refusal: bool = True,
        shadows: bool = True,
    ) -> None:
        """``models`` overrides backends by model name (a pre-built or shared backend, or a
        fake in unit tests); every other model a node names is built from the spec, each model
        file loaded once per process. Remote models (``kind: openai``) are wrapped either way in
        the privacy boundary's guard (egress scan, budget, metering). ``rules`` and ``budget``
        replace the escalation rules of some nodes and the budget (for tools; graphs say it in
        YAML). ``halt_on_refusal=False`` is for tools that collect what later nodes read
        (training data): a refused record goes on through the graph. ``shadows=False`` runs no
        shadow version (tools that read the graph's data must not add shadow records)."""
        base = Path(base_dir) if base_dir else None
        self._halt_on_refusal = halt_on_refusal
        self._shadows = shadows
        if not checked:
            problems = check(spec, base_dir=base)
            if problems:
                raise SpecError(spec_issues(problems, source, spec.name))
        self.spec = spec
        self.source = source
        self.base_dir = base
        self.rules = resolve_rules(spec.nodes, spec.escalation, base)
        if rules is not None:
            # Tools such as ``shoal calibrate`` decide per node; the compiler's privacy check
            # already ran on the graph's own rules.
            self.rules.nodes.update(rules)
        self.budget = open_budget(budget if budget is not None else self.rules.budget,
                                  graph=spec.name)
        self.models = _build_models(spec, base, models or {}, self.budget)
        self._metered = any(isinstance(m, RemoteGuard) for m in self.models.values())
        self.escalator: Escalator | None = None
        if spec.escalation is not None:
            planner = self.models[spec.escalation.planner]
            if not isinstance(planner, Generator):
                raise BackendError(f"the planner {spec.escalation.planner!r} is not a Generator",
                                   backend=spec.escalation.planner)
            self.escalator = Escalator(planner, budget=self.budget,
                                       system=spec.escalation.system_prompt,
                                       max_tokens=spec.escalation.max_tokens,
                                       timeout_s=spec.escalation.timeout_s,
                                       outbox=open_outbox(self.outbox_path),
                                       ledger=open_ledger(self.outbox_path), graph=spec.name)
        self._registry: ModelRegistry | None = None
        self._registry_state = 0
        if self.learnable_nodes:
            registry = open_registry(self.outbox_path)
            # Only an existing store can hold promotions: a graph never creates a file to look.
            if registry.exists():
                self._registry = registry
                self._registry_state = registry.state(spec.name)
        self._runners: dict[str, NodeRunner] = {}
        self._compiled: Compiled = compile_spec(spec, self._runner)
        self._recursion_limit = 2 * len(spec.nodes) + 10
        self._outputs = spec.outputs if spec.output is not None else None

    @classmethod
    def from_yaml(cls, path: str | Path, *, env: Mapping[str, str] | None = None) -> Graph:
        spec, source = load_spec(path, env)
        return cls(spec, base_dir=Path(path).parent, source=source, checked=True)

    @property
    def learnable_nodes(self) -> list[str]:
        """Nodes with a ``learn:`` block whose model is a trained classifier file (kind
        ``onnx-classifier``): the ones ``shoal learn`` can retrain and ``shoal promote`` can
        switch."""
        return [name for name, node in self.spec.nodes.items()
                if node.model is not None and node.learn is not None
                and isinstance(self.spec.models.get(node.model), OnnxClassifierModelSpec)]

    def _versions(self, name: str) -> tuple[str, str | None]:
        """The node's champion and shadow versions in the store (``v1``, None without one)."""
        if self._registry is None or name not in self.learnable_nodes:
            return BASE_VERSION, None
        return (self._registry.champion(self.spec.name, name),
                self._registry.shadow(self.spec.name, name) if self._shadows else None)

    def _version_model(self, name: str, version: str) -> tuple[Backend, ModelVersion | None]:
        """The node's classifier at ``version`` and that version's registry row (None for
        ``v1``: the graph file's model, router and floors)."""
        node = self.spec.nodes[name]
        assert node.model is not None
        if version == BASE_VERSION:
            return self.models[node.model], None
        assert self._registry is not None
        row = self._registry.version(self.spec.name, name, version)
        if row is None:
            raise BackendError(f"node {name!r}: version {version!r} is not in the store "
                               f"{self._registry.where}", backend=node.model)
        spec = self.spec.models[node.model]
        assert isinstance(spec, OnnxClassifierModelSpec)
        try:
            model = build_model(spec.model_copy(update={"path": row.model_path}), self.base_dir)
        except ShoalError as exc:
            raise BackendError(f"node {name!r} version {version}: {exc.message}",
                               backend=node.model) from exc
        return model, row

    def refresh_models(self) -> list[str]:
        """Pick up promotions, rollbacks and shadow changes made since the graph was built
        (``shoal promote`` in another process, say): the nodes whose champion or shadow
        changed now run it, from their next call on. One small query when nothing changed;
        blocking (a new version's file is loaded): call it off the event loop."""
        if self._registry is None:
            if not self.learnable_nodes:
                return []
            registry = open_registry(self.outbox_path)
            if not registry.exists():
                return []
            self._registry = registry
        state = self._registry.state(self.spec.name)
        if state == self._registry_state:
            return []
        self._registry_state = state
        changed = []
        for name, runner in list(self._runners.items()):
            champion, shadow = self._versions(name)
            now = runner.shadow.version if runner.shadow is not None else None
            if (champion, shadow) == (runner.version, now) or name not in self.learnable_nodes:
                continue
            runner.adopt(self._build_runner(name))
            changed.append(name)
            _log.info("model_changed", graph=self.spec.name, node=name, version=champion,
                      shadow=shadow)
        return changed

    def model_versions(self) -> dict[str, str]:
        """node -> the version of its learned model running now (learnable nodes only)."""
        return {name: runner.version for name, runner in self._runners.items()
                if runner.version is not None}

    def _runner(self, name: str) -> NodeRunner:
        runner = self._build_runner(name)
        self._runners[name] = runner
        return runner

    def _build_runner(self, name: str) -> NodeRunner:
        node = self.spec.nodes[name]
        cls = get_agent(node.agent)
        assert cls is not None, "checked specs name registered agents"
        config = cls.Config.model_validate(node.agent_config)
        route_labels = None
        for edge in self.spec.edges:
            if getattr(edge, "source", None) == name and edge.default is None:  # type: ignore[union-attr]
                route_labels = frozenset(edge.labelled)  # type: ignore[union-attr]
        learnable = name in self.learnable_nodes
        champion, shadow_version = self._versions(name)
        model: Backend | None = self.models.get(node.model) if node.model else None
        row: ModelVersion | None = None
        if learnable and champion != BASE_VERSION:
            model, row = self._version_model(name, champion)
        shadow: ShadowModel | None = None
        if shadow_version is not None and shadow_version != champion:
            assert self._registry is not None
            candidate, _ = self._version_model(name, shadow_version)
            assert isinstance(candidate, Classifier)
            shadow = ShadowModel(version=shadow_version, model=candidate,
                                 registry=self._registry, graph=self.spec.name)
        labels = cls.labels(config)
        if labels is None and isinstance(model, Classifier):
            labels = frozenset(model.labels)  # a trained classifier knows its own labels
        rule = version_rule(self.rules.nodes.get(name), row)
        router = None
        if rule is not None and rule.router is not None:
            path = row.router_path if row is not None and row.router_path else rule.router.model
            router = self._router(name, path, model)
        sha = getattr(model, "model_sha256", None) or getattr(
            getattr(model, "sidecar", None), "model_sha256", None)
        tag = f"{node.model}:{champion}" if learnable else node.model
        version = f"{tag}@{sha[:12]}" if isinstance(sha, str) and node.model else tag
        agent = cls(config, node=name, model=model)
        agent.bind_escalator(self.escalator)
        return NodeRunner(
            node=name,
            agent=agent,
            agent_name=node.agent,
            model=node.model,
            model_version=version,
            rule=rule,
            router=router,
            timeout_s=node.timeout_s,
            escalator=self.escalator,
            route_labels=route_labels,
            labels=labels,
            metered=self._metered,
            version=champion if learnable else None,
            shadow=shadow,
            halt_on_refusal=self._halt_on_refusal,
        )

    @staticmethod
    def _router(node: str, path: str, model: object) -> DeferralRouter:
        """The node's learned router, checked against the node's classifier: the same labels,
        the model file it was trained for, and the signals it reads."""
        router = load_router(path)
        if not isinstance(model, SignalClassifier):
            raise BackendError(f"node {node!r}: a learned router needs a trained classifier "
                               "model (kind onnx-classifier)", backend=router.name)
        sidecar = getattr(model, "sidecar", None)
        problem = router.check_for(model.labels, getattr(sidecar, "model_sha256", None))
        if problem is not None:
            raise BackendError(f"node {node!r}: {problem}", backend=router.name)
        return router

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def outbox_path(self) -> Path:
        """Where this graph's escalations wait when the planner is down: ``escalation.outbox``
        (relative to the graph file), else ``$SHOAL_OUTBOX``, else ``.shoal/outbox.sqlite``."""
        configured = self.spec.escalation.outbox if self.spec.escalation is not None else None
        return outbox_path(configured, self.base_dir)

    def node_labels(self, name: str) -> frozenset[str] | None:
        """The labels node ``name`` may answer with (its agent's, else its classifier's), as
        its runner checks the planner's; None when they are not known or there is no such
        node."""
        runner = self._compiled.runners.get(name)
        return runner.labels if runner is not None else None

    @property
    def langgraph(self) -> Any:
        """The compiled LangGraph graph, for inspection (``.get_graph().draw_mermaid()``)."""
        return self._compiled.graph

    # --- one input ------------------------------------------------------------------------------

    def _initial(self, text: str, scope: RunScope) -> RunState:
        return {"meta": {"run_id": scope.run_id, "record_id": scope.record_id, "input": text,
                         "scope": scope},
                "text": text, "results": {}}

    def _config(self) -> dict[str, Any]:
        return {"recursion_limit": self._recursion_limit}

    async def arun(self, text: str, *, id: str | None = None) -> RunResult:
        """Run the graph on one text. Never raises for a bad input or a failing agent: the
        result's ``status`` is ``error`` and ``error`` says why and where."""
        run_id = uuid.uuid4().hex
        record_id = id if id is not None else run_id
        start = time.perf_counter()
        bad = _check_text(text, record_id)
        if bad is not None:
            return _error_result(record_id, run_id, bad, start)
        scope = RunScope(run_id, record_id)
        try:
            final = await self._compiled.graph.ainvoke(self._initial(text, scope), self._config())
            result = self._result(final, record_id, run_id, start, scope)
        except Exception as exc:  # a graph fault fails this record only
            info = ErrorInfo(code=ErrorCode.AGENT_FAILED,
                             message=f"graph failed: {type(exc).__name__}")
            return _error_result(record_id, run_id, info, start)
        finally:
            scope.close()
        _log.info("run_finished", run_id=run_id, record_id=record_id, status=result.status,
                  latency_ms=round(result.latency_ms or 0.0, 3), nodes=len(result.nodes))
        return result

    def run(self, text: str, *, id: str | None = None) -> RunResult:
        """Blocking :meth:`arun`, for scripts. Inside an event loop, await ``arun`` instead."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.arun(text, id=id))
        raise RuntimeError("Graph.run() was called inside a running event loop; "
                           "use 'await graph.arun(...)'")

    async def astream(
        self, text: str, *, id: str | None = None
    ) -> AsyncIterator[NodeEvent | RunResult]:
        """Yield a NodeEvent as each node finishes, then the RunResult."""
        run_id = uuid.uuid4().hex
        record_id = id if id is not None else run_id
        start = time.perf_counter()
        bad = _check_text(text, record_id)
        if bad is not None:
            yield _error_result(record_id, run_id, bad, start)
            return
        scope = RunScope(run_id, record_id)
        state: RunState = self._initial(text, scope)
        merged: dict[str, Any] = dict(state)
        try:
            async for chunk in self._compiled.graph.astream(
                state, self._config(), stream_mode="updates"
            ):
                for update in chunk.values():
                    if not update:
                        continue
                    _merge(merged, update)
                    for trace in update.get("results", {}).values():
                        yield NodeEvent.model_construct(run_id=run_id, record_id=record_id,
                                                        **dict(trace))
            result = self._result(merged, record_id, run_id, start, scope)  # vault still open
        except Exception as exc:
            info = ErrorInfo(code=ErrorCode.AGENT_FAILED,
                             message=f"graph failed: {type(exc).__name__}")
            yield _error_result(record_id, run_id, info, start)
            return
        finally:
            scope.close()
        yield result

    # --- batches --------------------------------------------------------------------------------

    async def astream_batch(
        self,
        records: Iterable[BatchItem] | AsyncIterable[BatchItem],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> AsyncIterator[RunResult]:
        """Run many inputs, at most ``concurrency`` at once, yielding results as they finish.

        Inputs are pulled lazily, so a file of millions of lines never sits in memory. A bad
        record (no text, wrong type) comes back as an ``error`` result with its id.
        """
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        queue: asyncio.Queue[RunResult | None] = asyncio.Queue()
        slots = asyncio.Semaphore(concurrency)
        pending: set[asyncio.Task[None]] = set()

        async def one(item: BatchItem, index: int) -> None:
            try:
                result = await self._run_item(item, index)
            finally:
                slots.release()
            await queue.put(result)

        async def feed() -> None:
            try:
                index = 0
                async for item in _aiter(records):
                    await slots.acquire()
                    task = asyncio.create_task(one(item, index))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                    index += 1
                if pending:
                    await asyncio.gather(*pending)
            finally:
                # Always wake the consumer; a failing input iterator re-raises from ``feeder``.
                await queue.put(None)

        feeder = asyncio.create_task(feed())
        try:
            while (result := await queue.get()) is not None:
                yield result
            await feeder  # re-raises an error of the input iterator itself
        finally:
            if not feeder.done():
                feeder.cancel()
                for task in list(pending):
                    task.cancel()

    async def abatch(
        self,
        records: Iterable[BatchItem] | AsyncIterable[BatchItem],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> list[RunResult]:
        """Run many inputs with bounded concurrency; results in input order, one per input."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        slots = asyncio.Semaphore(concurrency)

        async def one(item: BatchItem, index: int) -> RunResult:
            async with slots:
                return await self._run_item(item, index)

        items = [item async for item in _aiter(records)]
        return list(await asyncio.gather(*(one(item, i) for i, item in enumerate(items))))

    async def _run_item(self, item: BatchItem, index: int) -> RunResult:
        try:
            rec = _as_record(item, index)
        except InputError as exc:
            _log.warning("record_invalid", record_id=exc.record_id, error=exc.message)
            return RunResult(id=exc.record_id, status="error",
                             error=ErrorInfo(code=exc.code, message=exc.message))
        return await self.arun(rec.text, id=rec.id)

    # --- results --------------------------------------------------------------------------------

    def _result(
        self, final: Mapping[str, Any], record_id: str, run_id: str, start: float,
        scope: RunScope | None = None,
    ) -> RunResult:
        records: dict[str, NodeTrace] = final.get("results", {})
        order = list(records)
        nodes = list(records.values())
        latency_ms = (time.perf_counter() - start) * 1000.0
        halt = final.get("halt")
        if halt and halt["error"] is not None:
            return RunResult(id=record_id, run_id=run_id, status="error", nodes=nodes,
                             error=ErrorInfo(**halt["error"]), latency_ms=latency_ms)
        status: Status = "refused" if halt else "ok"
        if status == "ok" and any(n.pending for n in nodes):
            status = "pending_escalation"
        elif status == "ok" and any(n.escalated for n in nodes):
            status = "escalated"
        if status == "refused":
            # The refusing node's own output says why (a guard's verdict, a failed check).
            output_record = records.get(order[-1]) if order else None
        elif self._outputs is not None:
            output_record = next((records[n] for n in self._outputs if n in records), None)
        else:
            output_record = records.get(order[-1]) if order else None
        output = output_record.output if output_record is not None else None
        reply = None
        if scope is not None and status != "refused":
            answer = output if isinstance(output, str) else (
                output.get("answer") if isinstance(output, dict) else None)
            # The run's vault holds only the sender's own values: reversing its pseudonyms
            # gives them back to the one person who wrote them, in this reply only.
            reply = scope.vault.unmask(answer) if isinstance(answer, str) and answer else None
        return RunResult(id=record_id, run_id=run_id, status=status, output=output, nodes=nodes,
                         latency_ms=latency_ms, cost=_cost(records.values(), latency_ms),
                         reply=reply)


def _cost(traces: Iterable[NodeTrace], latency_ms: float) -> RunCost:
    calls = tokens = 0
    planner_ms = usd = estimate = 0.0
    for t in traces:
        c = t.cost
        if c is not None:
            calls += c.calls
            tokens += c.tokens
            planner_ms += c.planner_ms
            usd += c.usd
            estimate += c.estimate_usd
    return RunCost(local_ms=max(0.0, latency_ms - planner_ms), planner_ms=planner_ms,
                   planner_calls=calls, planner_tokens=tokens, planner_usd=usd,
                   all_planner_usd_estimate=estimate)


def _build_models(
    spec: GraphSpec, base_dir: Path | None, given: Mapping[str, Backend], budget: Budget
) -> dict[str, Backend]:
    used = {node.model for node in spec.nodes.values() if node.model is not None}
    if spec.escalation is not None:
        used.add(spec.escalation.planner)
    pack = _masker_pack(spec)
    built: dict[str, Backend] = {}
    for name in sorted(used):
        model: Backend
        try:
            # A plugin kind's entry is a PluginModelSpec until validated into its kind's spec.
            model_spec = validate_spec(spec.models[name])
            model = given[name] if name in given else build_model(model_spec, base_dir)
        except ShoalError as exc:
            raise BackendError(f"model {name!r}: {exc.message}", backend=name) from exc
        if is_remote(model_spec) and not isinstance(model, RemoteGuard):
            # Shared by every process of the graph with $SHOAL_DB. A shared probe may be out
            # as long as the model's client can spend on one call (every attempt timing out)
            # before another process may probe.
            breaker = open_circuit(
                f"{spec.name}:{name}", failures=getattr(model_spec, "circuit_failures", 5),
                cooldown_s=getattr(model_spec, "circuit_cooldown_s", 30.0),
                probe_lease_s=getattr(model_spec, "timeout_s", 30.0)
                * (1 + getattr(model_spec, "max_retries", 0)))
            model = RemoteGuard(model, model=name, pack=pack,
                                price=getattr(model_spec, "price", None), budget=budget,
                                circuit=breaker)
        elif (spec.escalation is not None and name == spec.escalation.planner
              and not isinstance(model, RemoteGuard)):
            # A planner on this machine: no egress scan and no breaker, but its calls are
            # metered and budgeted like a remote one's (one place measures a planner's cost).
            model = RemoteGuard(model, model=name, pack=None, price=None, budget=budget)
        built[name] = model
    return built


def _masker_pack(spec: GraphSpec) -> str:
    """The pack the egress scan uses: the graph's first ``packs:`` entry, else the first
    masker's, else the default Safe Harbor pack."""
    if spec.packs:
        return spec.packs[0]
    for node in spec.nodes.values():
        if node.agent == "privacy_masker":
            pack = node.agent_config.get("pack")
            if isinstance(pack, str):
                return pack
            break
    return DEFAULT_PACK


def _merge(merged: dict[str, Any], update: Mapping[str, Any]) -> None:
    for key, value in update.items():
        if key == "results":
            merged["results"] = {**merged.get("results", {}), **value}
        else:
            merged[key] = value


def _check_text(text: Any, record_id: str) -> ErrorInfo | None:
    if not isinstance(text, str):
        return ErrorInfo(code=ErrorCode.INPUT_INVALID,
                         message=f"record {record_id!r}: text must be a string, "
                                 f"got {type(text).__name__}")
    if not text.strip():
        return ErrorInfo(code=ErrorCode.INPUT_INVALID,
                         message=f"record {record_id!r}: text is empty")
    return None


def _error_result(record_id: str, run_id: str, info: ErrorInfo, start: float) -> RunResult:
    _log.warning("run_failed", run_id=run_id, record_id=record_id, code=info.code,
                 error=info.message)
    return RunResult(id=record_id, run_id=run_id, status="error", error=info,
                     latency_ms=(time.perf_counter() - start) * 1000.0)


def _as_record(item: BatchItem, index: int) -> Record:
    if isinstance(item, Record):
        return item
    if isinstance(item, tuple) and len(item) == 2:
        if not isinstance(item[1], str):
            raise InputError("text must be a string", record_id=str(item[0]))
        return Record(id=str(item[0]), text=item[1])
    if isinstance(item, Mapping):
        rid = str(item["id"]) if item.get("id") is not None else str(index)
        text = item.get("text")
        if not isinstance(text, str):
            raise InputError("needs a string 'text'", record_id=rid)
        return Record(id=rid, text=text)
    raise InputError(f"expected Record, (id, text) or mapping, got {type(item).__name__}",
                     record_id=str(index))


async def _aiter(items: Iterable[BatchItem] | AsyncIterable[BatchItem]) -> AsyncIterator[BatchItem]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


