"""Run a graph over a batch on Ray (``shoal run --engine ray``): one pipeline of Ray Data.

The records go into a Ray Dataset; ``map_batches`` runs the graph on them in a pool of
``workers`` actors. Each actor loads the graph once (every model file once per actor, as in any
process) and runs its batches with the same :meth:`Graph.abatch` as the local engine, so the
micro-batching of the ONNX models and the per-model queues work inside each actor unchanged.
Results stream back to the caller as they finish, each with its input's index; the caller
writes them in input order.

Why the whole graph per actor, and not one stage per node: a node after an escalated one reads
the planner's answer (the responder writes from the planner's label), so splitting a run
between stages would change what later nodes see. The planner is still its own stage: the
workers' planner calls all go through one low-concurrency actor (:mod:`.planner_stage`).

Resources, honestly: each worker actor asks for ``cpus_per_worker`` CPUs (Ray's actors default
to none, and would then oversubscribe the machine), and its model threads are pinned to that
many (``SHOAL_MODEL_THREADS``, ``SHOAL_LLAMA_THREADS``; ONNX Runtime sessions already use one
intra-op thread each). On two cores Ray's own processes (GCS, raylet, the object store) compete
with the models: expect little or no speed-up there (``benchmarks/scale.py`` measures it).

Fault tolerance is Ray's: Ray Data restarts a worker actor that dies and runs its unfinished
batch again on the new one, so every record yields exactly one result. A record whose batch ran
twice may have escalated twice (each attempt is a run of its own, with its own run id in the
ledger); its result line is written once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections.abc import Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoal.engines.planner_stage import PlannerProxy, PlannerStage
from shoal.errors import BackendError, SpecError
from shoal.extras import require
from shoal.graphs.compiler import check
from shoal.graphs.loader import load_spec, spec_issues
from shoal.graphs.results import Record, RunResult
from shoal.graphs.runtime import DEFAULT_CONCURRENCY, Graph
from shoal.graphs.spec import GraphSpec
from shoal.observability.logging import get_logger
from shoal.policies.escalation.outbox import default_outbox_path

__all__ = ["GraphWorker", "RayOptions", "connect", "disconnect", "load_checked", "run_on_ray"]

_log = get_logger()

CHUNK = 4096
"""Records put into Ray's object store per block while the input is read: the driver never holds
more than this many texts at once (the object store holds the rest, spilling to disk)."""

LOCAL_OBJECT_STORE_BYTES = 512 * 1024 * 1024
"""The object store of a Ray started by shoal itself: Ray's default is 30% of memory, which on a
small machine competes with the models; the inputs and results of a batch are small and spill
to disk beyond this."""


@dataclass(frozen=True)
class RayOptions:
    """How a batch runs on Ray."""

    address: str | None = None
    """A running cluster (``ray://host:10001`` or ``host:6379``); None starts a local Ray."""
    workers: int = 1
    """Graph actors (each loads every model of the graph once)."""
    cpus_per_worker: float = 1.0
    """CPUs Ray reserves for each graph actor; its model threads are pinned to as many."""
    batch_size: int = 16
    """Records per Ray Data batch handed to an actor (a batch that fails runs again whole)."""
    concurrency: int = DEFAULT_CONCURRENCY
    """Runs in flight inside one actor (as ``shoal run --concurrency`` locally)."""
    planner_concurrency: int = 2
    """Planner calls in flight at once for the whole cluster."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment for the workers (the driver's ``SHOAL_*`` variables are passed on)."""
    ray_log_level: int | None = None
    """The level of Ray's own ``ray`` logger in this process (``import ray`` sets it to INFO
    and ``ray.init`` again); None leaves it as Ray sets it. ``shoal run`` passes ERROR."""


def _worker_env(options: RayOptions) -> dict[str, str]:
    """What the actors need of the driver's environment: its ``SHOAL_*`` variables (the shared
    store, the planner's keys), with relative paths made absolute (actors run elsewhere), and
    model threads pinned to the actor's CPUs."""
    env = {k: v for k, v in os.environ.items() if k.startswith("SHOAL_")}
    env["SHOAL_OUTBOX"] = str(default_outbox_path().resolve())
    if env.get("SHOAL_AUDIT_LOG"):
        env["SHOAL_AUDIT_LOG"] = str(Path(env["SHOAL_AUDIT_LOG"]).resolve())
    threads = str(max(1, int(options.cpus_per_worker)))
    env.setdefault("SHOAL_MODEL_THREADS", threads)
    env.setdefault("SHOAL_LLAMA_THREADS", threads)
    env.update(options.env)
    return env


def load_checked(path: Path) -> tuple[GraphSpec, Path]:
    """The graph file's spec, checked as :class:`Graph` checks it, without loading a model (the
    driver runs no node); raises :class:`SpecError` naming ``FILE:LINE:COL``."""
    spec, source = load_spec(path)
    base_dir = path.parent.resolve()
    problems = check(spec, base_dir=base_dir)
    if problems:
        raise SpecError(spec_issues(problems, source, spec.name))
    return spec, base_dir


class GraphWorker:
    """One graph per actor; Ray Data calls it with a batch of records (a dict of columns)."""

    def __init__(self, spec: GraphSpec, base_dir: str, planner: Any, concurrency: int) -> None:
        models: dict[str, Any] = {}
        if planner is not None and spec.escalation is not None:
            models[spec.escalation.planner] = PlannerProxy(planner, spec.escalation.planner)
        self.graph = Graph(spec, base_dir=base_dir, models=models, checked=True)
        self.concurrency = concurrency
        # One event loop for the actor's life: the models' micro-batchers and queues live on it.
        self._runner = asyncio.Runner()

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        records = [Record(id=str(i), text=str(t)) for i, t in zip(batch["id"], batch["text"],
                                                                  strict=True)]
        results = self._runner.run(self.graph.abatch(records, concurrency=self.concurrency))
        return {"index": [int(i) for i in batch["index"]],
                "result": [r.model_dump_json() for r in results]}


def _chunks(records: Iterable[tuple[int, Record]]) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for index, record in records:
        chunk.append({"index": index, "id": record.id, "text": record.text})
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _quiet_ray(ray: Any) -> None:
    """Ray Data's progress bars and execution notes would interleave with shoal's own progress
    bar; its loggers' warnings still reach the application's logging."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.verbose_stats_logs = False
    # Ray Data warns, on every run, that the bars it draws are off: we turned them off.
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def connect(options: RayOptions) -> bool:
    """Join the cluster at ``options.address``, or start a local Ray sized for the graph actors;
    True when this call started or joined it (and :func:`disconnect` should end it), False when
    the process was connected already (an application's own ``ray.init``). Call it from the main
    thread: Ray installs its signal handlers there."""
    require("ray", "shoal run --engine ray")
    if options.workers < 1 or options.cpus_per_worker <= 0 or options.batch_size < 1:
        raise ValueError("workers and batch_size must be >= 1 and cpus_per_worker > 0")
    # Ray's C++ core writes notes to the driver's stderr (one error-level line per actor whose
    # constructor arguments Ray Data keeps in the object store, as it always does); failures
    # that matter reach us as Python exceptions, and every process's log is in Ray's log files.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    import ray
    import ray.data

    _quiet_ray(ray)
    if options.ray_log_level is not None:
        logging.getLogger("ray").setLevel(options.ray_log_level)
    if ray.is_initialized():
        return False
    init: dict[str, Any] = {
        "include_dashboard": False, "configure_logging": False, "log_to_driver": False,
        "runtime_env": {"env_vars": _worker_env(options)}, "namespace": "shoal",
        # ray.init sets the "ray" logger's level (INFO unless told): keep the application's.
        "logging_level": logging.getLogger("ray").getEffectiveLevel()}
    if options.address is None:
        # A local Ray sized for the graph actors, plus one CPU for the driver's reading and
        # writing and Ray's own tasks.
        init.update(num_cpus=math.ceil(options.workers * options.cpus_per_worker) + 1,
                    object_store_memory=LOCAL_OBJECT_STORE_BYTES)
    else:
        init["address"] = options.address
    try:
        ray.init(**init)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise BackendError(f"cannot start or join Ray at {options.address or 'a local node'}: "
                           f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}",
                           backend="ray") from exc
    return True


def disconnect() -> None:
    import ray

    ray.shutdown()


def run_on_ray(
    graph_path: Path, records: Iterable[tuple[int, Record]], options: RayOptions
) -> Generator[tuple[int, RunResult], None, None]:
    """Run the graph at ``graph_path`` over ``(index, record)`` pairs on Ray; yield
    ``(index, result)`` as results finish (not in input order), one per record.

    Connects as :func:`connect` does unless the process is connected already, and then
    disconnects at the end. Raises :class:`SpecError` for a bad graph file before Ray starts,
    and :class:`BackendError` (backend ``ray``) when the pipeline itself fails (a worker that
    cannot load the graph, a cluster that goes away).
    """
    spec, base_dir = load_checked(graph_path)
    started = connect(options)
    import ray

    try:
        yield from _pipeline(ray, spec, base_dir, records, options)
    finally:
        if started:
            disconnect()


def _pipeline(ray: Any, spec: GraphSpec, base_dir: Path, records: Iterable[tuple[int, Record]],
              options: RayOptions) -> Iterator[tuple[int, RunResult]]:
    blocks = [ray.data.from_items(chunk) for chunk in _chunks(records)]
    if not blocks:
        return
    dataset = blocks[0].union(*blocks[1:]) if len(blocks) > 1 else blocks[0]
    stage = None
    if spec.escalation is not None:
        # No CPU reserved: the stage waits on the planner's answers. Restarted if it dies, its
        # calls in flight retried (such a call may reach the planner twice; one answer is used).
        stage = ray.remote(PlannerStage).options(
            num_cpus=0, max_concurrency=options.planner_concurrency,
            max_restarts=-1, max_task_retries=-1,
        ).remote(spec, str(base_dir))
    mapped = dataset.map_batches(
        GraphWorker,
        fn_constructor_kwargs={"spec": spec, "base_dir": str(base_dir), "planner": stage,
                               "concurrency": options.concurrency},
        compute=ray.data.ActorPoolStrategy(size=options.workers),
        num_cpus=options.cpus_per_worker,
        batch_size=options.batch_size, batch_format="numpy")
    _log.info("ray_batch_started", graph=spec.name, workers=options.workers,
              cpus_per_worker=options.cpus_per_worker, batch_size=options.batch_size)
    try:
        for row in mapped.iter_rows():
            yield int(row["index"]), RunResult.model_validate_json(row["result"])
    except ray.exceptions.RayError as exc:
        raise BackendError(f"the Ray pipeline failed: {_cause(exc)}", backend="ray") from exc
    finally:
        if stage is not None:
            ray.kill(stage)


def _cause(exc: BaseException) -> str:
    """The first line of the innermost error Ray wrapped (its message is the remote traceback)."""
    inner: BaseException = exc
    while getattr(inner, "cause", None) is not None:
        inner = inner.cause  # type: ignore[attr-defined]
    text = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {text[-1] if text else ''}"
