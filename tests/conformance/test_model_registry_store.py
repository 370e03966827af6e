"""One contract for every model registry: the embedded SQLite file and Postgres (a real server
from the ``pgserver`` wheel). Versions round-trip, promote pushes and rollback pops (never below
v1), shadows and shadow records are seen by every handle, and promotions and rollbacks made at
the same time from several handles leave a history whose every event agrees with the stack it
changed."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest

import shoal
from shoal.errors import LearningError
from shoal.graphs.runtime import Graph
from shoal.policies.escalation import (
    BASE_VERSION,
    ModelRegistry,
    PostgresModelRegistry,
    SqliteModelRegistry,
    open_registry,
)
from shoal.policies.escalation.model_registry import champion_stacks
from tests.conformance.threads import together
from tests.conftest import REPO

Factory = Callable[[], ModelRegistry]
G, N = "g", "triage"


@pytest.fixture(params=["sqlite", "postgres"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    """A factory of handles on one store: each call is another connection, as another process
    would have."""
    if request.param == "sqlite":
        return lambda: SqliteModelRegistry(tmp_path / "outbox.sqlite")
    url = request.getfixturevalue("postgres_url")
    return lambda: PostgresModelRegistry(url)



def _register(reg: ModelRegistry, version: str | None = None, *, node: str = N) -> str:
    return reg.register(graph=G, node=node, model_path=f"/models/{node}/{version}.onnx",
                        router_path=None, parent="v1", lineage={}, version=version).version


# --- versions ---------------------------------------------------------------------------------


def test_a_version_comes_back_whole_to_another_handle(make: Factory) -> None:
    reg = make()
    lineage = {"data": {"base": {"n": 120, "sha256": "ab" * 32}}, "rule": {"below": 0.41},
               "metrics": {"candidate": {"accuracy": 0.9375, "critical_recall": {
                   "emergency": None, "urgent": float("nan")}}}}
    row = reg.register(graph=G, node=N, model_path="/models/triage/v2.onnx",
                       router_path="/models/triage/v2-router.onnx", parent="v1",
                       lineage=lineage)
    assert row.version == "v2" and row.thresholds == {"below": 0.41}
    got = make().version(G, N, "v2")
    assert got is not None
    assert (got.graph, got.node, got.model_path, got.router_path, got.parent) == (
        G, N, "/models/triage/v2.onnx", "/models/triage/v2-router.onnx", "v1")
    assert got.created == pytest.approx(row.created)
    recall = got.lineage["metrics"]["candidate"]["critical_recall"]
    assert recall["emergency"] is None and math.isnan(recall["urgent"])  # NaN survives
    assert got.lineage["data"] == lineage["data"] and got.thresholds == {"below": 0.41}
    assert make().version(G, N, "v3") is None and make().version(G, "other", "v2") is None
    assert reg.exists()


def test_versions_number_per_node_from_v2(make: Factory) -> None:
    reg = make()
    assert reg.next_version(G, N) == "v2"
    assert [_register(reg), _register(reg), _register(reg, "v7")] == ["v2", "v3", "v7"]
    assert make().next_version(G, N) == "v8"
    assert _register(reg, node="guard") == "v2"
    assert [v.version for v in make().versions(G, N)] == ["v2", "v3", "v7"]
    assert [(v.node, v.version) for v in make().versions(G)] == [
        ("guard", "v2"), (N, "v2"), (N, "v3"), (N, "v7")]
    assert make().versions("other") == []
    with pytest.raises(ValueError, match="already has a version 'v3'"):
        _register(make(), "v3")
    with pytest.raises(ValueError, match="learned versions start at v2"):
        _register(reg, "v1")
    with pytest.raises(ValueError, match="not a version name"):
        _register(reg, "latest")


def test_two_learners_at_once_get_two_numbers(make: Factory) -> None:
    got: list[str] = []

    def learn(_: int) -> None:
        got.append(_register(make()))

    together(learn, 4)
    assert sorted(got) == ["v2", "v3", "v4", "v5"]


# --- champion and shadow ----------------------------------------------------------------------


def test_promote_pushes_and_rollback_pops_never_below_v1(make: Factory) -> None:
    reg, other = make(), make()
    assert reg.champion(G, N) == BASE_VERSION and reg.champions(G) == {}
    reg.add_event(graph=G, node=N, action="promote", version="v2")
    other.add_event(graph=G, node=N, action="promote", version="v3",
                    detail={"over": "v2", "checks": [1, 2]})
    assert reg.champion(G, N) == "v3" and reg.champions(G) == {N: ["v1", "v2", "v3"]}
    reg.add_event(graph=G, node=N, action="rollback", version="v2")
    assert other.champion(G, N) == "v2"
    other.add_event(graph=G, node=N, action="rollback", version="v1")
    reg.add_event(graph=G, node=N, action="rollback", version="v1")  # kept, pops nothing
    assert other.champions(G) == {N: ["v1"]} and other.champion(G, N) == "v1"
    reg.add_event(graph=G, node="guard", action="promote", version="v4")
    assert make().champions(G) == {N: ["v1"], "guard": ["v1", "v4"]}
    events = make().events(G, N)
    assert [(e.action, e.version) for e in events] == [
        ("promote", "v2"), ("promote", "v3"), ("rollback", "v2"), ("rollback", "v1"),
        ("rollback", "v1")]
    assert events[1].detail == {"over": "v2", "checks": [1, 2]} and events[0].detail is None
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    assert len(make().events(G)) == 6


def test_a_stale_expectation_is_refused_and_appends_nothing(make: Factory) -> None:
    reg = make()
    seen = reg.champions(G).get(N, [BASE_VERSION])
    assert seen == ["v1"]
    reg.add_event(graph=G, node=N, action="promote", version="v2", expect=seen)
    # Another process promoted v3 after this one read [v1, v2]: its rollback must not land.
    stale = reg.champions(G)[N]
    make().add_event(graph=G, node=N, action="promote", version="v3", expect=stale)
    with pytest.raises(LearningError, match="changed while this was decided"):
        reg.add_event(graph=G, node=N, action="rollback", version="v1", expect=stale)
    assert reg.champions(G) == {N: ["v1", "v2", "v3"]} and len(reg.events(G)) == 2
    # Another node's stack is its own.
    reg.add_event(graph=G, node="guard", action="promote", version="v2", expect=["v1"])
    assert reg.champion(G, "guard") == "v2"


def test_shadow_start_and_stop_and_the_state_number(make: Factory) -> None:
    reg, server = make(), make()
    assert server.state(G) == 0 and server.shadow(G, N) is None
    start = reg.add_event(graph=G, node=N, action="shadow_start", version="v2")
    assert server.shadow(G, N) == "v2" and server.champion(G, N) == "v1"
    assert server.state(G) == start.seq > 0
    stop = reg.add_event(graph=G, node=N, action="shadow_stop", version="v2",
                         detail={"why": "test"})
    assert server.shadow(G, N) is None and server.state(G) == stop.seq > start.seq
    # Another graph's events leave this graph's number alone; versions and records are no
    # events.
    reg.add_event(graph="other", node=N, action="promote", version="v2")
    _register(reg)
    reg.add_shadow(graph=G, node=N, record_id="r", run_id="x", champion_version="v1",
                   champion_label=None, champion_confidence=None, candidate_version="v2",
                   candidate_label=None, candidate_confidence=None)
    assert server.state(G) == stop.seq and server.state("other") > 0


def test_shadow_records_round_trip_and_filter(make: Factory) -> None:
    reg = make()
    for run, candidate, label in (("a", "v2", "appointment"), ("b", "v2", "billing"),
                                  ("c", "v3", "billing")):
        reg.add_shadow(graph=G, node=N, record_id=f"r-{run}", run_id=run,
                       champion_version="v1", champion_label="billing",
                       champion_confidence=0.6, candidate_version=candidate,
                       candidate_label=label, candidate_confidence=0.7)
    reg.add_shadow(graph=G, node="guard", record_id="r", run_id="d", champion_version="v1",
                   champion_label=None, champion_confidence=None, candidate_version="v2",
                   candidate_label=None, candidate_confidence=None)
    reader = make()
    assert sorted(r.run_id for r in reader.shadow_records(G, N, "v2")) == ["a", "b"]
    assert [r.run_id for r in reader.shadow_records(G, N, "v3")] == ["c"]
    assert reader.shadow_records(G, N, "v4") == [] and len(reader.shadow_records(G, N)) == 3
    [a] = [r for r in reader.shadow_records(G, N, "v2") if r.run_id == "a"]
    assert (a.record_id, a.champion_version, a.champion_label, a.candidate_label) == (
        "r-a", "v1", "billing", "appointment")
    assert a.champion_confidence == pytest.approx(0.6)
    assert a.candidate_confidence == pytest.approx(0.7)
    [guard] = reader.shadow_records(G, "guard")
    assert guard.champion_label is None and guard.candidate_confidence is None


def test_concurrent_promotions_and_rollbacks_leave_a_consistent_history(make: Factory) -> None:
    """Four handles (four processes' worth of connections) each promote their own version and
    roll back, five times, reading the stack and deciding as ``shoal promote`` does; a decision
    made on a stack that changed meanwhile is refused and made again. Every event must agree
    with the stack it changed: a promotion names the champion it was decided over, a rollback
    the version it popped and the one it restored."""
    rounds, done = 5, [0] * 4

    def operator(k: int) -> None:
        reg = make()
        mine = f"v{k + 2}"
        wanted = ["promote", "rollback"] * rounds
        while wanted:
            stack = reg.champions(G).get(N, [BASE_VERSION])
            action = wanted[0]
            if action == "rollback" and len(stack) < 2:
                wanted.pop(0)  # another operator's rollback got there first: nothing to undo
                continue
            try:
                if action == "promote":
                    reg.add_event(graph=G, node=N, action="promote", version=mine,
                                  detail={"over": stack[-1]}, expect=stack)
                else:
                    reg.add_event(graph=G, node=N, action="rollback", version=stack[-2],
                                  detail={"from": stack[-1]}, expect=stack)
            except LearningError:
                continue  # decided on a stale stack: look again
            wanted.pop(0)
            done[k] += 1

    together(operator, 4)
    events = make().events(G, N)
    assert len(events) == sum(done) >= 4 * rounds  # every promotion landed
    stack = [BASE_VERSION]
    for e in events:
        assert e.detail is not None
        if e.action == "promote":
            assert e.detail["over"] == stack[-1], e
            stack.append(e.version)
        else:
            assert len(stack) > 1 and e.detail["from"] == stack[-1], e
            stack.pop()
            assert e.version == stack[-1], e
    assert champion_stacks(events) == {N: stack}
    assert make().champion(G, N) == stack[-1]
    assert make().state(G) == events[-1].seq


# --- Postgres only ----------------------------------------------------------------------------


def test_shoal_db_chooses_the_registry(postgres_url: str, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    local = open_registry(tmp_path / "o.sqlite")
    assert isinstance(local, SqliteModelRegistry) and not local.exists()
    monkeypatch.setenv("SHOAL_DB", postgres_url)
    shared = open_registry(tmp_path / "o.sqlite")
    assert isinstance(shared, PostgresModelRegistry) and shared.exists()
    assert shared.champion(G, N) == "v1" and not (tmp_path / "o.sqlite").exists()
    assert "postgres" in shared.where


TRIAGE = REPO / "examples" / "healthcare" / "models" / "triage.onnx"


@pytest.mark.slow
def test_graphs_follow_a_promotion_made_in_the_database(
        postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two graphs (two replicas' worth) on one database switch to a version promoted there, and
    back on a rollback; no SQLite file is made."""
    monkeypatch.setenv("SHOAL_DB", postgres_url)
    path = tmp_path / "graph.yaml"
    path.write_text(
        "shoal: 1\nname: versions-pg\n"
        f"models:\n  triage: {{kind: onnx-classifier, path: {TRIAGE}}}\n"
        "nodes:\n  triage:\n    agent: classifier\n    model: triage\n"
        "    labels: [appointment, billing, emergency, injection, off_topic, "
        "prescription_refill, symptom_report]\n"
        "    learn: {train: train.jsonl, eval: dev.jsonl}\n"
        "output: triage\n")
    replicas: list[Graph] = [shoal.load_graph(path), shoal.load_graph(path)]
    assert [g.model_versions() for g in replicas] == [{"triage": "v1"}] * 2
    registry = PostgresModelRegistry(postgres_url)
    registry.register(graph="versions-pg", node="triage", model_path=str(TRIAGE),
                      router_path=None, parent="v1", lineage={})
    registry.add_event(graph="versions-pg", node="triage", action="promote", version="v2",
                       expect=["v1"])
    assert [g.refresh_models() for g in replicas] == [["triage"]] * 2
    assert [g.model_versions() for g in replicas] == [{"triage": "v2"}] * 2
    assert [g.refresh_models() for g in replicas] == [[], []]
    registry.add_event(graph="versions-pg", node="triage", action="rollback", version="v1")
    assert [g.refresh_models() for g in replicas] == [["triage"]] * 2
    assert [g.model_versions() for g in replicas] == [{"triage": "v1"}] * 2
    assert not any(tmp_path.glob("*.sqlite")) and not (tmp_path / ".shoal").exists()
