"""``shoal learn``: a candidate version of a node's model from its base data and the ledger.

1. The training rows: the node's base data (``learn.train``, as the node reads it) plus one row
   per distinct text the ledger holds a label for (a person's over the planner's); class
   balance and every count per source go into the lineage.
2. The node's recipe (the champion's sidecar: kind and hyperparameters, the same embedder) is
   trained on them; when the node's escalation rule has a learned router, the router is
   retrained too, out of fold, for the new model.
3. Champion and candidate are measured on the frozen evaluation split (``learn.eval``) by
   :func:`~shoal.learning.evaluate.evaluate_version`.
4. ``vN.onnx`` (+ sidecar), ``vN-router.onnx`` (+ sidecar) and ``vN.lineage.json`` are written
   under the output folder and the version is registered in the store. Nothing the graph runs
   changes: that takes ``shoal promote``.

Blocking (training); not from inside an event loop.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoal.errors import BackendError, LearningError
from shoal.graphs.spec import GraphSpec, LearnSpec
from shoal.learning.data import LedgerRows, NodeData, ledger_rows, rows_sha256
from shoal.learning.evaluate import EvalMetrics, evaluate_version
from shoal.models.onnx import (
    KIND_ENSEMBLE,
    KIND_TFIDF,
    checked_embedder,
    file_sha256,
    read_sidecar,
)
from shoal.models.specs import OnnxClassifierModelSpec, resolve_path
from shoal.models.train import TfidfHyperparameters, train_text_classifier
from shoal.models.train_ensemble import EnsembleHyperparameters, train_ensemble_classifier
from shoal.models.train_router import train_router
from shoal.policies.escalation import (
    BASE_VERSION,
    LedgerStore,
    ModelRegistry,
    ModelVersion,
    NodeRule,
    resolve_rules,
)

__all__ = ["Candidate", "NodeSetup", "learn", "node_setup"]


@dataclass(frozen=True)
class NodeSetup:
    """What the learning loop needs to know about one node of a graph file."""

    graph: str
    node: str
    base_dir: Path
    model_name: str
    labels: list[str]
    learn: LearnSpec
    rule: NodeRule | None
    base_model: Path
    """The graph file's model for the node: version ``v1``."""
    max_share: float | None
    """The graph budget's cap on the planner share, the router's target."""

    def train_path(self) -> Path:
        return resolve_path(self.learn.train, self.base_dir)

    def eval_path(self) -> Path:
        return resolve_path(self.learn.eval, self.base_dir)

    def files(self, registry: ModelRegistry, version: str) -> tuple[Path, Path | None]:
        """The classifier and router files of ``version`` (``v1``: the graph file's, with the
        escalation rule's router)."""
        rule_router = (Path(self.rule.router.model) if self.rule is not None
                       and self.rule.router is not None else None)
        if version == BASE_VERSION:
            return self.base_model, rule_router
        row = registry.version(self.graph, self.node, version)
        if row is None:
            raise LearningError(f"node {self.node!r} has no version {version!r} (see "
                             "`shoal versions`)")
        router = Path(row.router_path) if row.router_path else rule_router
        return Path(row.model_path), router


def node_setup(spec: GraphSpec, base_dir: Path, node: str) -> NodeSetup:
    """The node's learning setup; LearningError naming what is missing."""
    found = spec.nodes.get(node)
    if found is None:
        raise LearningError(f"graph {spec.name!r} has no node {node!r} (nodes: "
                         f"{', '.join(spec.nodes)})")
    model_spec = spec.models.get(found.model or "")
    if not isinstance(model_spec, OnnxClassifierModelSpec) or found.model is None:
        raise LearningError(f"node {node!r} needs a trained classifier model (kind "
                         "onnx-classifier) to learn")
    if found.learn is None:
        raise LearningError(f"node {node!r} has no 'learn:' block: add "
                         "learn: {train: TRAIN.jsonl, eval: EVAL.jsonl} to it in the graph")
    base_model = resolve_path(model_spec.path, base_dir)
    rules = resolve_rules(spec.nodes, spec.escalation, base_dir)
    labels = list(read_sidecar(base_model).labels)
    return NodeSetup(graph=spec.name, node=node, base_dir=base_dir, model_name=found.model,
                     labels=labels, learn=found.learn, rule=rules.nodes.get(node),
                     base_model=base_model, max_share=rules.budget.max_share)


@dataclass(frozen=True)
class Candidate:
    version: ModelVersion
    champion: str
    champion_metrics: EvalMetrics
    metrics: EvalMetrics
    rows: LedgerRows
    balance: dict[str, int]
    seconds: float

    def summary(self) -> str:
        c, m = self.champion_metrics, self.metrics
        counts = self.version.lineage["data"]
        return (f"{self.version.version} of {self.version.node} (parent {self.champion}): "
                f"{counts['base']['n']} base + {counts['ledger']['planner']} planner + "
                f"{counts['ledger']['human']} human rows; frozen split "
                f"({m.n}): accuracy {c.accuracy:.3f} -> {m.accuracy:.3f}, planner share "
                f"{c.share:.3f} -> {m.share:.3f}"
                + "".join(f", {k} recall {c.critical_recall.get(k) or 0:.3f} -> {v or 0:.3f}"
                          for k, v in m.critical_recall.items())
                + f" ({self.seconds:.0f} s)")


def _write_jsonl(path: Path, ids: list[str], texts: list[str], labels: list[str]) -> None:
    path.write_text("".join(json.dumps({"id": i, "text": t, "label": lab}) + "\n"
                            for i, t, lab in zip(ids, texts, labels, strict=True)),
                    encoding="utf-8")


def _train(base_model: Path, data: Path, out: Path, eval_data: Path, seed: int,
           progress: Callable[[str], None] | None) -> None:
    sidecar = read_sidecar(base_model)
    if sidecar.kind == KIND_ENSEMBLE:
        train_ensemble_classifier(
            data, out, checked_embedder(sidecar, base_model, "learn"), seed=seed,
            eval_data=eval_data,
            hyperparameters=EnsembleHyperparameters.model_validate(
                sidecar.hyperparameters or {}),
            progress=progress)
    elif sidecar.kind == KIND_TFIDF:
        train_text_classifier(data, out, seed=seed,
                              hyperparameters=TfidfHyperparameters.model_validate(
                                  sidecar.hyperparameters or {}))
    else:
        raise BackendError(f"{base_model}: shoal learn retrains {KIND_ENSEMBLE} and "
                           f"{KIND_TFIDF} classifiers, not {sidecar.kind!r}", backend="learn")


def learn(setup: NodeSetup, *, base: NodeData, evaluation: NodeData, ledger: LedgerStore,
          registry: ModelRegistry, out_dir: Path, seed: int = 0,
          progress: Callable[[str], None] | None = None) -> Candidate:
    """Build, measure and register the next version of ``setup.node``; see the module doc."""
    start = time.perf_counter()

    def stage(what: str) -> None:
        if progress is not None:
            progress(what)

    champion = registry.champion(setup.graph, setup.node)
    champion_model, champion_router = setup.files(registry, champion)
    rows = ledger_rows(ledger.entries(graph=setup.graph, node=setup.node), setup.labels)
    ids = base.ids + [f"ledger:{i}" for i in rows.ids]
    texts = base.texts + rows.texts
    labels = base.labels + rows.labels
    groups = base.groups + [f"ledger:{i}" for i in rows.ids]
    balance = dict(sorted(Counter(labels).items()))
    version = registry.next_version(setup.graph, setup.node)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / f"{version}.onnx"
    router_path: Path | None = None
    with tempfile.TemporaryDirectory() as tmp:
        data, eval_data = Path(tmp) / "train.jsonl", Path(tmp) / "eval.jsonl"
        _write_jsonl(data, ids, texts, labels)
        _write_jsonl(eval_data, evaluation.ids, evaluation.texts, evaluation.labels)
        stage(f"training {version} on {len(texts)} rows")
        _train(champion_model, data, model_path, eval_data, seed, progress)
        if setup.rule is not None and setup.rule.router is not None:
            stage(f"training {version}'s router")
            router_path = out_dir / f"{version}-router.onnx"
            train_router(texts, labels, groups, model_path, router_path,
                         data_sha256=rows_sha256(texts, labels), seed=seed, progress=progress)
    stage("measuring champion and candidate on the frozen split")
    champion_metrics = asyncio.run(evaluate_version(
        champion_model, evaluation.texts, evaluation.labels, setup.rule,
        router_path=champion_router))
    metrics = asyncio.run(evaluate_version(model_path, evaluation.texts, evaluation.labels,
                                           setup.rule, router_path=router_path))
    lineage: dict[str, Any] = {
        "graph": setup.graph, "node": setup.node, "version": version, "parent": champion,
        "parent_model_sha256": file_sha256(champion_model),
        "model_sha256": file_sha256(model_path),
        "router_sha256": file_sha256(router_path) if router_path is not None else None,
        "seed": seed,
        "data": {
            "base": {"file": base.source, "sha256": base.sha256, "n": len(base.texts),
                     "skipped": base.skipped},
            "ledger": {"planner": rows.counts().get("planner", 0),
                       "human": rows.counts().get("human", 0),
                       "duplicates": rows.duplicates, "conflicts": rows.conflicts,
                       "outside_labels": rows.outside, "unlabelled": rows.unlabelled},
            "rows_sha256": rows_sha256(texts, labels),
            "class_balance": balance,
        },
        "eval": {"file": evaluation.source, "sha256": evaluation.sha256,
                 "n": len(evaluation.texts)},
        "metrics": {"champion": champion_metrics.as_dict(), "candidate": metrics.as_dict()},
    }
    lineage_path = out_dir / f"{version}.lineage.json"
    lineage_path.write_text(json.dumps(lineage, indent=2) + "\n", encoding="utf-8")
    row = registry.register(graph=setup.graph, node=setup.node, version=version,
                            model_path=str(model_path.resolve()),
                            router_path=str(router_path.resolve()) if router_path else None,
                            parent=champion, lineage=lineage)
    return Candidate(version=row, champion=champion, champion_metrics=champion_metrics,
                     metrics=metrics, rows=rows, balance=balance,
                     seconds=time.perf_counter() - start)

