"""The learning loop's data and bookkeeping, without a model load: the ledger's training rows
(a person's label over the planner's, the latest among equals), shadow statistics joined with
the ledger by run, the node setup of the healthcare cascade, and rollback / shadow start and
stop with their events and audit record."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shoal.errors import LearningError
from shoal.graphs.loader import load_spec
from shoal.graphs.spec import GraphSpec
from shoal.learning.data import NodeData, concat_node_data, ledger_rows, text_key
from shoal.learning.learn import NodeSetup, node_setup
from shoal.learning.promote import rollback, start_shadow, stop_shadow
from shoal.learning.shadow import shadow_stats
from shoal.policies.escalation import SqliteLedger, SqliteModelRegistry
from tests.conftest import REPO

CASCADE = REPO / "examples" / "healthcare" / "cascade.yaml"
LABELS = ["appointment", "billing", "emergency"]
G = "g"
N = "triage"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "outbox.sqlite"


@pytest.fixture
def ledger(store: Path) -> Iterator[SqliteLedger]:
    led = SqliteLedger(store)
    yield led
    led.close()


@pytest.fixture
def registry(store: Path) -> Iterator[SqliteModelRegistry]:
    reg = SqliteModelRegistry(store)
    yield reg
    reg.close()


def add(ledger: SqliteLedger, text: str, planner: str | None, *, human: str | None = None,
        run_id: str | None = None, node: str = N, graph: str = G) -> str:
    entry_id = ledger.append(graph=graph, node=node, record_id=f"rec-{text}",
                             run_id=run_id or f"run-{text}-{planner}", text=text,
                             local_label="billing", local_confidence=0.3, p_wrong=None,
                             planner_label=planner, planner_answer="masked answer",
                             planner_confidence=0.9, model_version="v1")
    if human is not None:
        assert ledger.set_human_label(entry_id, human) is not None
    return entry_id


def rows_of(ledger: SqliteLedger) -> dict[str, tuple[str, str]]:
    rows = ledger_rows(ledger.entries(graph=G, node=N), LABELS)
    return {t: (lab, src) for t, lab, src in zip(rows.texts, rows.labels, rows.sources,
                                                  strict=True)}


# --- ledger_rows ----------------------------------------------------------------------------------


def test_a_persons_label_beats_a_later_planner_label(ledger: SqliteLedger) -> None:
    first = add(ledger, "move my visit", "billing", human="appointment")
    add(ledger, "move my visit", "billing")  # later, planner only
    rows = ledger_rows(ledger.entries(graph=G, node=N), LABELS)
    assert rows.texts == ["move my visit"]
    assert rows.labels == ["appointment"]
    assert rows.sources == ["human"]
    assert rows.ids == [first]
    assert (rows.duplicates, rows.conflicts, rows.outside, rows.unlabelled) == (1, 1, 0, 0)
    assert rows.counts() == {"human": 1}


def test_a_later_persons_label_beats_an_earlier_planner_label(ledger: SqliteLedger) -> None:
    add(ledger, "move my visit", "billing")
    add(ledger, "move my visit", "billing", human="appointment")
    assert rows_of(ledger) == {"move my visit": ("appointment", "human")}


def test_latest_planner_label_wins_and_conflicts_are_counted(ledger: SqliteLedger) -> None:
    add(ledger, "chest pain", "billing")
    add(ledger, "chest pain", "appointment")
    last = add(ledger, "chest pain", "emergency")
    add(ledger, "my bill", "billing")
    add(ledger, "my bill", "billing")  # a duplicate that agrees: no conflict
    rows = ledger_rows(ledger.entries(graph=G, node=N), LABELS)
    assert dict(zip(rows.texts, rows.labels, strict=True)) == {"chest pain": "emergency",
                                                                "my bill": "billing"}
    assert rows.ids[rows.texts.index("chest pain")] == last
    assert rows.sources == ["planner", "planner"]
    assert rows.duplicates == 3
    assert rows.conflicts == 1


def test_rows_do_not_depend_on_the_order_runs_finished_in(ledger: SqliteLedger) -> None:
    """Concurrent runs append to the ledger in any order; the same labels must give the same
    training rows (and so the same model and folds)."""
    texts = [f"message number {i}" for i in range(8)]
    for t in texts:
        add(ledger, t, "billing")
    forward = ledger_rows(ledger.entries(graph=G, node=N), LABELS)
    backward = ledger_rows(list(reversed(ledger.entries(graph=G, node=N))), LABELS)
    assert forward.texts == backward.texts == sorted(texts, key=text_key)


def test_label_outside_the_nodes_labels_is_left_out_and_counted(ledger: SqliteLedger) -> None:
    add(ledger, "weather today?", "off_topic")
    add(ledger, "my bill", "billing")
    # A person's label outside the set is left out too (it outranks the planner's inside one).
    add(ledger, "odd one", "billing", human="injection")
    rows = ledger_rows(ledger.entries(graph=G, node=N), LABELS)
    assert rows.texts == ["my bill"]
    assert rows.outside == 2
    assert (rows.duplicates, rows.conflicts, rows.unlabelled) == (0, 0, 0)


def test_entries_without_any_label_are_counted_as_unlabelled(ledger: SqliteLedger) -> None:
    add(ledger, "no answer", None)
    add(ledger, "no answer either", None)
    add(ledger, "labelled later", None, human="billing")
    rows = ledger_rows(ledger.entries(graph=G, node=N), LABELS)
    assert rows.unlabelled == 2
    assert rows.texts == ["labelled later"]
    assert rows.sources == ["human"]
    assert ledger_rows([], LABELS).texts == []


# --- shadow_stats ---------------------------------------------------------------------------------


def shadow(registry: SqliteModelRegistry, run_id: str, champion: str, candidate: str, *,
           version: str = "v2", node: str = N, champion_version: str = "v1") -> None:
    registry.add_shadow(graph=G, node=node, record_id=f"rec-{run_id}", run_id=run_id,
                        champion_version=champion_version, champion_label=champion,
                        champion_confidence=0.4, candidate_version=version,
                        candidate_label=candidate, candidate_confidence=0.8)


def test_shadow_stats_joins_labels_by_run(registry: SqliteModelRegistry,
                                          ledger: SqliteLedger) -> None:
    shadow(registry, "r1", "billing", "appointment")       # labelled appointment: candidate right
    shadow(registry, "r2", "billing", "billing")           # a person says billing: both right
    shadow(registry, "r3", "billing", "appointment")       # never escalated: no label
    shadow(registry, "r4", "appointment", "appointment")   # escalated, planner gave no label
    shadow(registry, "r5", "billing", "emergency", champion_version="v3")
    shadow(registry, "r6", "billing", "billing", version="v9")  # another candidate
    shadow(registry, "r7", "billing", "billing", node="guard")  # another node
    add(ledger, "t1", "appointment", run_id="r1")
    add(ledger, "t2", "appointment", human="billing", run_id="r2")
    add(ledger, "t4", None, run_id="r4")
    add(ledger, "t5", "billing", run_id="r5")
    add(ledger, "t6", "appointment", run_id="r6")
    add(ledger, "t7", "emergency", run_id="r7", node="guard")
    stats = shadow_stats(registry, ledger, G, N, "v2")
    assert stats.version == "v2"
    assert stats.n == 5
    assert stats.champions == ["v1", "v3"]
    assert stats.agreement == pytest.approx(2 / 5)
    assert stats.labelled == 3
    assert stats.human == 1
    assert stats.champion_accuracy == pytest.approx(2 / 3)   # r2, r5
    assert stats.candidate_accuracy == pytest.approx(2 / 3)  # r1, r2
    assert stats.as_dict()["champion_accuracy"] == 0.6667


def test_shadow_stats_without_records(registry: SqliteModelRegistry,
                                      ledger: SqliteLedger) -> None:
    add(ledger, "t1", "billing", run_id="r1")
    stats = shadow_stats(registry, ledger, G, N, "v2")
    assert (stats.n, stats.labelled, stats.human) == (0, 0, 0)
    assert stats.agreement is None
    assert stats.champion_accuracy is None and stats.candidate_accuracy is None
    assert stats.champions == []


def test_shadow_stats_with_records_but_no_labels(registry: SqliteModelRegistry,
                                                 ledger: SqliteLedger) -> None:
    shadow(registry, "r1", "billing", "billing")
    stats = shadow_stats(registry, ledger, G, N, "v2")
    assert (stats.n, stats.agreement, stats.labelled) == (1, 1.0, 0)
    assert stats.champion_accuracy is None and stats.candidate_accuracy is None


# --- node_setup -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cascade() -> GraphSpec:
    spec, _ = load_spec(CASCADE)
    return spec


@pytest.fixture
def setup(cascade: GraphSpec) -> NodeSetup:
    return node_setup(cascade, CASCADE.parent, "triage")


def with_node(spec: GraphSpec, node: str, **changes: Any) -> GraphSpec:
    nodes = dict(spec.nodes)
    nodes[node] = nodes[node].model_copy(update=changes)
    return spec.model_copy(update={"nodes": nodes})


def test_node_setup_of_the_cascade_triage(setup: NodeSetup) -> None:
    assert (setup.graph, setup.node, setup.model_name) == ("healthcare-cascade", "triage",
                                                          "triage")
    assert "emergency" in setup.labels and "billing" in setup.labels
    assert setup.base_model == CASCADE.parent / "models" / "triage.onnx"
    assert setup.train_paths() == [CASCADE.parent / "data" / "train.jsonl",
                                   CASCADE.parent / "data" / "lookalikes_train.jsonl"]
    assert setup.eval_path() == CASCADE.parent / "data" / "dev.jsonl"
    assert setup.rule is not None and "emergency" in setup.rule.critical
    assert setup.max_share is not None and 0 < setup.max_share <= 1
    assert setup.learn.min_shadow >= 1


def test_node_setup_files(setup: NodeSetup, registry: SqliteModelRegistry) -> None:
    v1 = setup.files(registry, "v1")
    assert (v1.model, v1.router, v1.rule) == (setup.base_model, None, setup.rule)
    registry.register(graph=setup.graph, node=setup.node, model_path="learned/v2.onnx",
                      router_path=None, parent="v1", lineage={})
    v2 = setup.files(registry, "v2")
    assert (v2.model, v2.router, v2.rule) == (Path("learned/v2.onnx"), None, setup.rule)
    with pytest.raises(LearningError, match="no version 'v3'"):
        setup.files(registry, "v3")


def test_a_version_runs_behind_its_own_thresholds(setup: NodeSetup,
                                                  registry: SqliteModelRegistry) -> None:
    """A floor or a confidence threshold belongs to one model's probabilities: the version's
    lineage carries its own; red flags and min_recall stay the rule's."""
    assert setup.rule is not None and setup.rule.below is not None
    registry.register(graph=setup.graph, node=setup.node, model_path="learned/v2.onnx",
                      router_path=None, parent="v1",
                      lineage={"rule": {"below": 0.25, "critical": {"emergency": 0.2}}})
    rule = setup.files(registry, "v2").rule
    assert rule is not None and rule.below == 0.25
    was, now = setup.rule.critical["emergency"], rule.critical["emergency"]
    assert now.floor == 0.2 and was.floor != 0.2
    assert (now.red_flags, now.min_recall, now.action) == (was.red_flags, was.min_recall,
                                                          was.action)
    # A floor the rule does not have (None: red flags only) is never invented.
    registry.register(graph=setup.graph, node=setup.node, model_path="learned/v3.onnx",
                      router_path=None, parent="v1",
                      lineage={"rule": {"critical": {"emergency": None}}})
    assert setup.files(registry, "v3").rule == setup.rule


def test_node_setup_without_a_learn_block(cascade: GraphSpec) -> None:
    with pytest.raises(LearningError, match="no 'learn:' block"):
        node_setup(with_node(cascade, "triage", learn=None), CASCADE.parent, "triage")
    with pytest.raises(LearningError, match="no 'learn:' block"):
        node_setup(cascade, CASCADE.parent, "guard")


def test_node_setup_of_an_unknown_node(cascade: GraphSpec) -> None:
    with pytest.raises(LearningError, match="has no node 'nope'"):
        node_setup(cascade, CASCADE.parent, "nope")


def test_node_setup_needs_an_onnx_classifier(cascade: GraphSpec) -> None:
    with pytest.raises(LearningError, match="onnx-classifier"):
        node_setup(with_node(cascade, "triage", model="slm"), CASCADE.parent, "triage")
    with pytest.raises(LearningError, match="onnx-classifier"):
        node_setup(cascade, CASCADE.parent, "mask")  # no model at all


# --- rollback, shadow start and stop --------------------------------------------------------------


def audit_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_rollback_at_v1_raises(setup: NodeSetup, registry: SqliteModelRegistry,
                               tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    with pytest.raises(LearningError, match="nothing to roll back"):
        rollback(setup, registry=registry, audit_path=audit)
    assert registry.events(setup.graph, setup.node) == []
    assert audit_lines(audit) == []


def test_rollback_restores_v1_and_audits(setup: NodeSetup, registry: SqliteModelRegistry,
                                         tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    registry.register(graph=setup.graph, node=setup.node, model_path="learned/v2.onnx",
                      router_path=None, parent="v1", lineage={})
    registry.add_event(graph=setup.graph, node=setup.node, action="promote", version="v2")
    assert registry.champion(setup.graph, setup.node) == "v2"
    assert rollback(setup, registry=registry, audit_path=audit) == ("v2", "v1")
    assert registry.champion(setup.graph, setup.node) == "v1"
    last = registry.events(setup.graph, setup.node)[-1]
    assert (last.action, last.version, last.detail) == ("rollback", "v1", {"from": "v2"})
    [record] = audit_lines(audit)
    assert record["node"] == "triage" and record["agent"] == "model_rollback"
    assert "v2" in record["decision"] and "v1" in record["decision"]


def test_start_shadow_of_an_unknown_version_raises(setup: NodeSetup,
                                                   registry: SqliteModelRegistry) -> None:
    with pytest.raises(LearningError, match="no version 'v2'"):
        start_shadow(setup, "v2", registry=registry)
    assert registry.shadow(setup.graph, setup.node) is None
    assert registry.state(setup.graph) == 0


def test_start_and_stop_shadow(setup: NodeSetup, registry: SqliteModelRegistry) -> None:
    registry.register(graph=setup.graph, node=setup.node, model_path="learned/v2.onnx",
                      router_path=None, parent="v1", lineage={})
    assert stop_shadow(setup, registry=registry) is None
    assert registry.state(setup.graph) == 0  # nothing to stop: no event
    start_shadow(setup, "v2", registry=registry)
    assert registry.shadow(setup.graph, setup.node) == "v2"
    assert registry.champion(setup.graph, setup.node) == "v1"
    assert stop_shadow(setup, registry=registry) == "v2"
    assert registry.shadow(setup.graph, setup.node) is None
    assert [e.action for e in registry.events(setup.graph, setup.node)] == [
        "shadow_start", "shadow_stop"]


def test_the_champion_cannot_shadow_itself(setup: NodeSetup,
                                           registry: SqliteModelRegistry) -> None:
    registry.register(graph=setup.graph, node=setup.node, model_path="learned/v2.onnx",
                      router_path=None, parent="v1", lineage={})
    registry.add_event(graph=setup.graph, node=setup.node, action="promote", version="v2")
    with pytest.raises(LearningError, match="is the champion"):
        start_shadow(setup, "v2", registry=registry)
    assert registry.shadow(setup.graph, setup.node) is None


def _part(source: str, ids: list[str]) -> NodeData:
    return NodeData(source=source, sha256=source * 4, ids=ids, texts=[f"t {i}" for i in ids],
                    labels=["billing"] * len(ids), groups=ids, skipped=1)


def test_several_base_files_are_one_set_that_names_them_all() -> None:
    one = _part("a.jsonl", ["1", "2"])
    assert concat_node_data([one]) is one
    both = concat_node_data([one, _part("b.jsonl", ["3"])])
    assert both.source == "a.jsonl + b.jsonl"
    assert both.ids == ["1", "2", "3"] and both.texts[-1] == "t 3" and both.skipped == 2
    # The lineage hash depends on each file and their order.
    swapped = concat_node_data([_part("b.jsonl", ["3"]), one])
    assert both.sha256 != swapped.sha256 and len(both.sha256) == 64


def test_a_record_id_in_two_base_files_is_an_error_naming_it() -> None:
    with pytest.raises(LearningError, match=r"b.jsonl: record id '2' is also in an earlier"):
        concat_node_data([_part("a.jsonl", ["1", "2"]), _part("b.jsonl", ["2"])])
