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
from shoal.learning.data import LedgerRows, NodeData, ledger_rows, rows_sha256, text_key
from shoal.learning.evaluate import EvalMetrics, choose_below, evaluate_version
from shoal.models.onnx import (
    KIND_ENSEMBLE,
    KIND_TFIDF,
    checked_embedder,
    file_sha256,
    read_sidecar,
)
from shoal.models.refit import refitter
from shoal.models.specs import OnnxClassifierModelSpec, resolve_path
from shoal.models.train import TfidfHyperparameters, train_text_classifier
from shoal.models.train_ensemble import EnsembleHyperparameters, train_ensemble_classifier
from shoal.models.train_router import out_of_fold, train_router
from shoal.policies.escalation import (
    BASE_VERSION,
    LedgerStore,
    ModelRegistry,
    ModelVersion,
    NodeRule,
    matcher_for,
    resolve_rules,
    version_rule,
)
from shoal.policies.escalation.calibration import Example, choose_floor

__all__ = ["Candidate", "NodeSetup", "VersionFiles", "choose_floors", "learn", "node_setup"]


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

    def train_paths(self) -> list[Path]:
        files = [self.learn.train] if isinstance(self.learn.train, str) else self.learn.train
        return [resolve_path(f, self.base_dir) for f in files]

    def eval_path(self) -> Path:
        return resolve_path(self.learn.eval, self.base_dir)

    def files(self, registry: ModelRegistry, version: str) -> VersionFiles:
        """The classifier, router and escalation rule of ``version`` (``v1``: the graph
        file's model, with the escalation rule's router and floors)."""
        rule_router = (Path(self.rule.router.model) if self.rule is not None
                       and self.rule.router is not None else None)
        if version == BASE_VERSION:
            return VersionFiles(self.base_model, rule_router, self.rule)
        row = registry.version(self.graph, self.node, version)
        if row is None:
            raise LearningError(f"node {self.node!r} has no version {version!r} (see "
                             "`shoal versions`)")
        router = Path(row.router_path) if row.router_path else rule_router
        return VersionFiles(Path(row.model_path), router, version_rule(self.rule, row))


@dataclass(frozen=True)
class VersionFiles:
    """What one version of a node runs: its classifier, its router, its escalation rule."""

    model: Path
    router: Path | None
    rule: NodeRule | None


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
                + self._thresholds() + f" ({self.seconds:.0f} s)")

    def _thresholds(self) -> str:
        rule = self.version.thresholds
        parts = [f"below {rule['below']:.4f}"] if rule.get("below") is not None else []
        parts += [f"{label} floor {floor:.4f}"
                  for label, floor in (rule.get("critical") or {}).items() if floor is not None]
        return f"; its thresholds: {', '.join(parts)}" if parts else ""


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


def choose_floors(setup: NodeSetup, texts: list[str], labels: list[str], groups: list[str],
                  model_path: Path, rows: list[int], *, seed: int = 0,
                  progress: Callable[[str], None] | None = None
                  ) -> tuple[dict[str, float | None], dict[str, Any]]:
    """The floor of each critical label (with ``min_recall`` and a floor in the node's rule)
    for the model at ``model_path``: the largest floor whose recall (local label, floor or red
    flag) reaches ``min_recall``, as ``shoal calibrate`` chooses one, but on *out-of-fold*
    probabilities of the model's training rows (refitted on the other folds, groups kept
    whole, for each one), so that the gate's recall check on the frozen split is a judge the
    floor never saw. ``rows``: the indices counted (one per distinct row: a ledger row's
    weighted copies are trained on, counted once). Returns the floors and what each does out
    of fold."""
    rule = setup.rule
    wanted = {label: crit for label, crit in (rule.critical.items() if rule else [])
              if crit.min_recall is not None and crit.floor is not None}
    if not wanted:
        return {}, {}
    refit = refitter(model_path)
    if progress is not None:
        progress("choosing critical floors out of fold")
    oof = out_of_fold(texts, labels, groups, model_path, seed=seed, k=0,
                      embeddings=refit.embed(texts), progress=progress)
    names = list(refit.labels)
    floors: dict[str, float | None] = {}
    choice: dict[str, Any] = {}
    for label, crit in wanted.items():
        assert crit.min_recall is not None
        matcher = matcher_for(crit.red_flags) if crit.red_flags else None
        examples = []
        for i in rows:
            probs = {n: float(p) for n, p in zip(names, oof.probabilities[i], strict=True)}
            local = names[int(oof.predicted[i])]
            examples.append(Example(
                id=str(i), confidence=min(1.0, probs[local]), local_correct=local == labels[i],
                planner_correct=True, label=labels[i], local_label=local, probabilities=probs,
                red_flag=bool(matcher is not None and matcher.fired(texts[i]))))
        # Red flags left out: every training emergency may carry one (they do in the cascade's
        # data), which would make any floor look enough; the model alone must reach the target.
        picked = choose_floor(examples, label, crit.min_recall, red_flags=False)
        floors[label] = picked.floor
        choice[label] = {"floor": picked.floor, "min_recall": crit.min_recall, "n": picked.n,
                         "recall_out_of_fold": picked.recall, "met": picked.met,
                         "share_out_of_fold": picked.share}
    return floors, choice


def learn(setup: NodeSetup, *, base: NodeData, evaluation: NodeData, ledger: LedgerStore,
          registry: ModelRegistry, out_dir: Path, seed: int = 0,
          progress: Callable[[str], None] | None = None) -> Candidate:
    """Build, measure and register the next version of ``setup.node``; see the module doc."""
    start = time.perf_counter()

    def stage(what: str) -> None:
        if progress is not None:
            progress(what)

    champion = registry.champion(setup.graph, setup.node)
    was = setup.files(registry, champion)
    rows = ledger_rows(ledger.entries(graph=setup.graph, node=setup.node), setup.labels)
    # A ledger row counts ``ledger_weight`` times; its copies share one group, so a router's
    # out-of-fold scores never see a copy of the row they score.
    weight = setup.learn.ledger_weight
    ids = base.ids + [f"ledger:{i}:{k}" if k else f"ledger:{i}"
                      for i in rows.ids for k in range(weight)]
    texts = base.texts + [t for t in rows.texts for _ in range(weight)]
    labels = base.labels + [label for label in rows.labels for _ in range(weight)]
    groups = base.groups + [f"ledger:{text_key(t)}" for t in rows.texts for _ in range(weight)]
    balance = dict(sorted(Counter(base.labels + rows.labels).items()))  # distinct rows
    version = registry.next_version(setup.graph, setup.node)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / f"{version}.onnx"
    router_path: Path | None = None
    with tempfile.TemporaryDirectory() as tmp:
        data, eval_data = Path(tmp) / "train.jsonl", Path(tmp) / "eval.jsonl"
        _write_jsonl(data, ids, texts, labels)
        _write_jsonl(eval_data, evaluation.ids, evaluation.texts, evaluation.labels)
        stage(f"training {version} on {len(texts)} rows")
        _train(was.model, data, model_path, eval_data, seed, progress)
        if setup.rule is not None and setup.rule.router is not None:
            stage(f"training {version}'s router")
            router_path = out_dir / f"{version}-router.onnx"
            train_router(texts, labels, groups, model_path, router_path,
                         data_sha256=rows_sha256(texts, labels), seed=seed, progress=progress)
    distinct = list(range(len(base.texts))) + [len(base.texts) + k * weight
                                               for k in range(len(rows.texts))]
    # The candidate as it would run, behind its own thresholds (a floor or a confidence
    # threshold belongs to one model's probabilities; version_rule reads them from the
    # lineage): floors out of fold, then the confidence threshold for the node's target.
    floors, floor_choice = choose_floors(setup, texts, labels, groups, model_path, distinct,
                                         seed=seed, progress=progress)
    chosen: dict[str, Any] = {"critical": floors}
    rule_choice: dict[str, Any] = {"critical": floor_choice}

    def candidate_rule() -> NodeRule | None:
        return version_rule(setup.rule, ModelVersion(
            graph=setup.graph, node=setup.node, version=version, model_path=str(model_path),
            router_path=None, parent=champion, created=0.0, lineage={"rule": chosen}))

    rule = candidate_rule()
    target = setup.learn.target_accuracy
    if rule is not None and rule.below is not None and target is not None:
        stage("choosing the confidence threshold for the node's target")
        below = asyncio.run(choose_below(model_path, evaluation.texts, evaluation.labels, rule,
                                         target, router_path=router_path))
        chosen["below"] = below.below
        rule_choice["below"] = below.as_dict()
        rule = candidate_rule()
    stage("measuring champion and candidate on the frozen split")
    champion_metrics = asyncio.run(evaluate_version(
        was.model, evaluation.texts, evaluation.labels, was.rule, router_path=was.router))
    metrics = asyncio.run(evaluate_version(model_path, evaluation.texts, evaluation.labels,
                                           rule, router_path=router_path))
    lineage: dict[str, Any] = {
        "graph": setup.graph, "node": setup.node, "version": version, "parent": champion,
        "parent_model_sha256": file_sha256(was.model),
        "model_sha256": file_sha256(model_path),
        "router_sha256": file_sha256(router_path) if router_path is not None else None,
        "seed": seed,
        "data": {
            "base": {"file": base.source, "sha256": base.sha256, "n": len(base.texts),
                     "skipped": base.skipped},
            "ledger": {"planner": rows.counts().get("planner", 0),
                       "human": rows.counts().get("human", 0),
                       "weight": weight, "duplicates": rows.duplicates,
                       "conflicts": rows.conflicts,
                       "outside_labels": rows.outside, "unlabelled": rows.unlabelled},
            "rows_sha256": rows_sha256(texts, labels),
            "class_balance": balance,
        },
        "rule": chosen,
        "rule_choice": rule_choice,
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

