"""The model registry: learned versions, the champion stack (promote pushes, rollback pops, never
below v1), the shadow, the state number a server polls, and shadow records. Plain SQLite in
tmp_path: no model is loaded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shoal.policies.escalation import BASE_VERSION, SqliteModelRegistry, version_number
from shoal.policies.escalation.model_registry import EventAction

G = "g"
N = "triage"


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[SqliteModelRegistry]:
    reg = SqliteModelRegistry(tmp_path / "store.sqlite")
    yield reg
    reg.close()


def register(reg: SqliteModelRegistry, version: str | None = None, *, node: str = N,
             graph: str = G, lineage: dict[str, Any] | None = None, parent: str = "v1") -> str:
    row = reg.register(graph=graph, node=node, model_path=f"models/{node}-{version}.onnx",
                       router_path=None, parent=parent, lineage=lineage or {}, version=version)
    return row.version


def shadow_record(reg: SqliteModelRegistry, run_id: str, candidate: str, *,
                  champion_label: str = "billing", candidate_label: str = "billing") -> str:
    return reg.add_shadow(graph=G, node=N, record_id=f"r-{run_id}", run_id=run_id,
                          champion_version="v1", champion_label=champion_label,
                          champion_confidence=0.6, candidate_version=candidate,
                          candidate_label=candidate_label, candidate_confidence=0.7)


# --- versions -------------------------------------------------------------------------------------


def test_version_number() -> None:
    assert version_number("v1") == 1
    assert version_number("v42") == 42
    for bad in ("v0", "v01", "2", "V2", "v", "v2a", "version2", ""):
        with pytest.raises(ValueError, match="not a version name"):
            version_number(bad)


def test_next_version_numbers_from_v2(registry: SqliteModelRegistry) -> None:
    assert registry.next_version(G, N) == "v2"
    assert register(registry) == "v2"
    assert registry.next_version(G, N) == "v3"
    assert register(registry) == "v3"
    assert [v.version for v in registry.versions(G, N)] == ["v2", "v3"]
    # Numbering is per node and per graph.
    assert registry.next_version(G, "other") == "v2"
    assert registry.next_version("other-graph", N) == "v2"


def test_next_version_is_one_past_the_highest(registry: SqliteModelRegistry) -> None:
    register(registry, "v7")
    assert registry.next_version(G, N) == "v8"
    register(registry, "v3")
    assert registry.next_version(G, N) == "v8"
    # Sorted by number, not as text (v10 after v9, not after v1).
    register(registry, "v10")
    register(registry, "v9")
    assert [v.version for v in registry.versions(G, N)] == ["v3", "v7", "v9", "v10"]


def test_duplicate_version_is_a_value_error(registry: SqliteModelRegistry) -> None:
    register(registry, "v2")
    with pytest.raises(ValueError, match="already has a version 'v2'"):
        register(registry, "v2")
    assert len(registry.versions(G, N)) == 1
    # The same name on another node is a different version.
    assert register(registry, "v2", node="other") == "v2"


@pytest.mark.parametrize("bad", ["v0", "2", "latest", "v2 ", "v-1"])
def test_bad_version_name_is_a_value_error(registry: SqliteModelRegistry, bad: str) -> None:
    with pytest.raises(ValueError, match="not a version name"):
        register(registry, bad)
    assert registry.versions(G, N) == []


def test_version_lookup_and_versions_filter(registry: SqliteModelRegistry) -> None:
    register(registry, "v2")
    register(registry, "v2", node="guard")
    row = registry.version(G, N, "v2")
    assert row is not None
    assert (row.graph, row.node, row.version, row.parent) == (G, N, "v2", "v1")
    assert row.model_path == f"models/{N}-v2.onnx" and row.router_path is None
    assert registry.version(G, N, "v3") is None
    assert registry.version("other-graph", N, "v2") is None
    assert [(v.node, v.version) for v in registry.versions(G)] == [("guard", "v2"), (N, "v2")]


def test_lineage_round_trips(registry: SqliteModelRegistry) -> None:
    lineage: dict[str, Any] = {
        "parent": "v1", "seed": 0, "router_sha256": None, "ratio": 0.8125,
        "data": {"base": {"file": "train.jsonl", "n": 412},
                 "ledger": {"planner": 3, "human": 1}, "class_balance": {"b": 2, "a": 1}},
        "eval": {"sha256": "ab" * 32, "n": 100}, "labels": ["x", "é", "✓"],
    }
    returned = registry.register(graph=G, node=N, model_path="m.onnx", router_path="r.onnx",
                                 parent="v1", lineage=lineage)
    assert returned.lineage == lineage
    stored = registry.version(G, N, returned.version)
    assert stored is not None
    assert stored.lineage == lineage
    assert stored.router_path == "r.onnx"
    assert stored.created == pytest.approx(returned.created)


# --- champion and shadow --------------------------------------------------------------------------


def test_champion_is_v1_by_default(registry: SqliteModelRegistry) -> None:
    assert BASE_VERSION == "v1"
    assert registry.champion(G, N) == "v1"
    register(registry)  # a registered candidate is not the champion until promoted
    assert registry.champion(G, N) == "v1"
    assert registry.champions(G) == {}
    assert registry.shadow(G, N) is None


def test_promote_pushes_and_rollback_pops_never_below_v1(registry: SqliteModelRegistry) -> None:
    register(registry)
    register(registry)
    registry.add_event(graph=G, node=N, action="promote", version="v2")
    assert registry.champion(G, N) == "v2"
    registry.add_event(graph=G, node=N, action="promote", version="v3")
    assert registry.champion(G, N) == "v3"
    assert registry.champions(G) == {N: ["v1", "v2", "v3"]}
    registry.add_event(graph=G, node=N, action="rollback", version="v2")
    assert registry.champion(G, N) == "v2"
    registry.add_event(graph=G, node=N, action="rollback", version="v1")
    assert registry.champion(G, N) == "v1"
    # Rolling back at v1 is kept as an event but never empties the stack.
    registry.add_event(graph=G, node=N, action="rollback", version="v1")
    assert registry.champion(G, N) == "v1"
    assert registry.champions(G) == {N: ["v1"]}
    registry.add_event(graph=G, node=N, action="promote", version="v3")
    assert registry.champion(G, N) == "v3"
    assert [e.action for e in registry.events(G, N)] == [
        "promote", "promote", "rollback", "rollback", "rollback", "promote"]


def test_champions_stacks_per_node(registry: SqliteModelRegistry) -> None:
    registry.add_event(graph=G, node=N, action="promote", version="v2")
    registry.add_event(graph=G, node="guard", action="promote", version="v2")
    registry.add_event(graph=G, node=N, action="promote", version="v4")
    registry.add_event(graph=G, node="guard", action="rollback", version="v1")
    registry.add_event(graph=G, node="mask", action="shadow_start", version="v2")
    registry.add_event(graph="other", node=N, action="promote", version="v9")
    assert registry.champions(G) == {N: ["v1", "v2", "v4"], "guard": ["v1"], "mask": ["v1"]}
    assert registry.champion(G, "guard") == "v1"
    assert registry.champion("other", N) == "v9"
    assert registry.champions("other") == {N: ["v1", "v9"]}


def test_shadow_start_and_stop(registry: SqliteModelRegistry) -> None:
    registry.add_event(graph=G, node=N, action="shadow_start", version="v2")
    assert registry.shadow(G, N) == "v2"
    assert registry.shadow(G, "guard") is None
    assert registry.champion(G, N) == "v1"  # a shadow never changes the champion
    registry.add_event(graph=G, node=N, action="shadow_start", version="v3")
    assert registry.shadow(G, N) == "v3"
    registry.add_event(graph=G, node=N, action="shadow_stop", version="v3",
                       detail={"why": "test"})
    assert registry.shadow(G, N) is None
    last = registry.events(G, N)[-1]
    assert (last.action, last.version, last.detail) == ("shadow_stop", "v3", {"why": "test"})


def test_state_changes_on_each_event_and_is_per_graph(registry: SqliteModelRegistry) -> None:
    assert registry.state(G) == 0
    seen = [registry.state(G)]
    steps: list[tuple[EventAction, str]] = [("promote", "v2"), ("shadow_start", "v3"),
                                            ("shadow_stop", "v3"), ("rollback", "v1")]
    for action, version in steps:
        event = registry.add_event(graph=G, node=N, action=action, version=version)
        state = registry.state(G)
        assert state not in seen
        assert state == event.seq
        seen.append(state)
    # Another graph's events leave this graph's state alone, and the other graph has its own.
    before = registry.state(G)
    assert registry.state("other") == 0
    registry.add_event(graph="other", node=N, action="promote", version="v2")
    assert registry.state(G) == before
    assert registry.state("other") > 0
    # Registering a version or adding a shadow record is not an event.
    register(registry)
    shadow_record(registry, "run1", "v2")
    assert registry.state(G) == before


# --- shadow records -------------------------------------------------------------------------------


def test_shadow_records_filtered_by_candidate_version(registry: SqliteModelRegistry) -> None:
    shadow_record(registry, "a", "v2", champion_label="billing", candidate_label="appointment")
    shadow_record(registry, "b", "v2")
    shadow_record(registry, "c", "v3")
    registry.add_shadow(graph=G, node="guard", record_id="r", run_id="d", champion_version="v1",
                        champion_label=None, champion_confidence=None, candidate_version="v2",
                        candidate_label=None, candidate_confidence=None)
    assert sorted(r.run_id for r in registry.shadow_records(G, N, "v2")) == ["a", "b"]
    assert [r.run_id for r in registry.shadow_records(G, N, "v3")] == ["c"]
    assert registry.shadow_records(G, N, "v4") == []
    assert sorted(r.run_id for r in registry.shadow_records(G, N)) == ["a", "b", "c"]
    [guard] = registry.shadow_records(G, "guard")
    assert guard.champion_label is None and guard.candidate_confidence is None
    [a] = [r for r in registry.shadow_records(G, N, "v2") if r.run_id == "a"]
    assert (a.record_id, a.champion_version, a.champion_label, a.candidate_label) == (
        "r-a", "v1", "billing", "appointment")
    assert a.champion_confidence == pytest.approx(0.6)
    assert a.candidate_confidence == pytest.approx(0.7)


# --- two processes, one store ---------------------------------------------------------------------


def test_two_registries_on_one_file_see_each_others_writes(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    learner, server = SqliteModelRegistry(path), SqliteModelRegistry(path)
    try:
        assert server.state(G) == 0  # the server opened the file first
        register(learner, "v2")
        assert server.version(G, N, "v2") is not None
        assert server.next_version(G, N) == "v3"
        learner.add_event(graph=G, node=N, action="promote", version="v2")
        assert server.champion(G, N) == "v2"
        assert server.state(G) == learner.state(G) > 0
        server.add_event(graph=G, node=N, action="shadow_start", version="v3")
        assert learner.shadow(G, N) == "v3"
        shadow_record(server, "run1", "v3")
        assert [r.run_id for r in learner.shadow_records(G, N, "v3")] == ["run1"]
        # A second writer of the same name loses cleanly.
        with pytest.raises(ValueError, match="already has"):
            register(server, "v2")
    finally:
        learner.close()
        server.close()
    reopened = SqliteModelRegistry(path)
    try:
        assert reopened.champion(G, N) == "v2"
        assert reopened.shadow(G, N) == "v3"
    finally:
        reopened.close()
