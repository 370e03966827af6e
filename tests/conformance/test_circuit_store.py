"""One contract for both circuit breakers: this process's own (``CircuitBreaker``) and the one
whose state lives in Postgres (``SharedCircuitBreaker``, a real server from the ``pgserver``
wheel). The circuit opens after N consecutive failures, fails fast while open, lets one probe
through after the cooldown, closes on its success and opens again on its failure. Then what only
a shared breaker does: handles of one name (as in two processes) see each other's failures, only
one of them probes, a probe whose process died is taken over, and a database that cannot be
reached is an error, never a guess.

A cooldown a test waits out is short (0.2 s); a test that needs the circuit to stay open while it
looks uses one of a minute and never waits. Nothing here times how fast anything is.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

import shoal
from shoal import StoreError
from shoal.errors import BackendError
from shoal.graphs.spec import EscalationSpec
from shoal.policies.escalation import (
    CircuitBreaker,
    CircuitOpen,
    PostgresOutbox,
    SharedCircuitBreaker,
    open_circuit,
)
from shoal.policies.escalation import circuit as circuit_module
from shoal.policies.escalation.circuit import circuits
from shoal.testing import FakeBackend
from tests.conformance.threads import together

COOLDOWN = 0.2
"""For tests that wait a cooldown out."""
LONG = 60.0
"""For tests that need the circuit to stay open while they look: never waited out."""
FAILURES = 3
Factory = Callable[..., CircuitBreaker]


@pytest.fixture(autouse=True)
def _own_circuits(monkeypatch: pytest.MonkeyPatch) -> None:
    # circuits() asks every breaker of the process for its state: a shared breaker left behind
    # on a database a later test no longer has would make that test's circuits() fail.
    monkeypatch.setattr(circuit_module, "_registry", {})


@pytest.fixture(params=["process", "postgres"])
def make(request: pytest.FixtureRequest) -> Factory:
    """``make(cooldown_s)``: a breaker of this test's name. For ``postgres`` each call is another
    handle on one shared state (as another process would have); the contract uses one."""
    name = f"conformance:{uuid.uuid4().hex[:8]}"
    if request.param == "process":
        return lambda cooldown_s: CircuitBreaker(name, failures=FAILURES, cooldown_s=cooldown_s)
    url = request.getfixturevalue("postgres_url")
    return lambda cooldown_s: SharedCircuitBreaker(name, url=url, failures=FAILURES,
                                                   cooldown_s=cooldown_s, probe_lease_s=LONG)


def _state(b: CircuitBreaker) -> str:
    """The breaker's state, read anew (a ``str``: each read may differ from the last)."""
    return b.state


def _open(b: CircuitBreaker) -> None:
    for _ in range(FAILURES):
        b.before()
        b.failure()
    assert _state(b) == "open"


def _after(seconds: float = COOLDOWN) -> None:
    time.sleep(seconds * 1.5)



# --- the contract -----------------------------------------------------------------------------


def test_opens_after_n_consecutive_failures_only(make: Factory) -> None:
    b = make(LONG)
    assert _state(b) == "closed"
    for _ in range(FAILURES - 1):
        b.before()
        b.failure()
    b.before()
    b.success()  # a success between failures: they are not consecutive
    for _ in range(FAILURES - 1):
        b.before()
        b.failure()
    assert _state(b) == "closed" and b.opened_count == 0
    b.before()
    b.failure()
    assert _state(b) == "open" and b.opened_count == 1
    assert circuits() == {b.name: "open"}


def test_fails_fast_while_open(make: Factory) -> None:
    b = make(LONG)
    _open(b)
    for _ in range(3):
        with pytest.raises(CircuitOpen) as caught:
            b.before()
        assert 0 < caught.value.retry_in_s <= LONG
        assert caught.value.code == "backend_failed"
    assert _state(b) == "open" and b.opened_count == 1


def test_one_probe_after_the_cooldown_and_its_success_closes(make: Factory) -> None:
    b = make(COOLDOWN)
    _open(b)
    _after()
    b.before()  # the probe
    assert _state(b) == "half_open"
    with pytest.raises(CircuitOpen):
        b.before()  # a second caller while the probe is out
    b.success()
    assert _state(b) == "closed" and b.opened_count == 1
    b.before()
    # Closed afresh: the failures before the probe no longer count.
    for _ in range(FAILURES - 1):
        b.failure()
    assert _state(b) == "closed"


def test_a_failed_probe_opens_the_circuit_again(make: Factory) -> None:
    b = make(COOLDOWN)
    _open(b)
    _after()
    b.before()
    b.failure()
    assert _state(b) == "open" and b.opened_count == 2  # for a whole cooldown again
    _after()
    b.before()
    b.success()
    assert _state(b) == "closed"


# --- shared only ------------------------------------------------------------------------------


@pytest.fixture
def shared(postgres_url: str) -> Callable[..., SharedCircuitBreaker]:
    """``shared(**settings)``: another handle on one shared breaker (another process's)."""
    name = f"shared:{uuid.uuid4().hex[:8]}"

    def handle(**kw: Any) -> SharedCircuitBreaker:
        return SharedCircuitBreaker(name, url=postgres_url, **{
            "failures": FAILURES, "cooldown_s": COOLDOWN, "probe_lease_s": LONG, **kw})

    return handle


def test_failures_in_one_process_open_the_circuit_for_another(
        shared: Callable[..., SharedCircuitBreaker]) -> None:
    a, b = shared(cooldown_s=LONG), shared(cooldown_s=LONG)
    a.before()
    a.failure()
    b.before()
    b.failure()  # consecutive across processes
    a.before()
    assert _state(b) == "closed"
    a.failure()
    assert _state(b) == "open" and b.opened_count == 1
    with pytest.raises(CircuitOpen):
        b.before()


def test_only_one_of_many_processes_gets_the_probe(
        shared: Callable[..., SharedCircuitBreaker]) -> None:
    handles = [shared() for _ in range(6)]
    _open(handles[0])

    def race() -> int:
        got: list[int] = []
        start = threading.Barrier(len(handles))

        def call(k: int) -> None:
            start.wait()
            try:
                handles[k].before()
            except CircuitOpen:
                return
            got.append(k)

        together(call, len(handles))
        assert len(got) == 1
        assert {h.state for h in handles} == {"half_open"}
        return got[0]

    _after()
    prober = race()
    handles[prober].failure()  # the probe failed: open for everyone, a new cooldown
    assert {h.state for h in handles} == {"open"}
    assert handles[(prober + 1) % len(handles)].opened_count == 2
    _after()
    prober = race()
    handles[prober].success()  # the probe answered: closed for everyone
    assert {h.state for h in handles} == {"closed"}
    for h in handles:
        h.before()


def test_a_probe_whose_process_died_is_taken_over_after_its_lease(
        shared: Callable[..., SharedCircuitBreaker]) -> None:
    lease = 1.0
    dead, alive = shared(probe_lease_s=lease), shared(probe_lease_s=lease)
    _open(dead)
    _after()
    dead.before()  # takes the probe, then its process dies: no success(), no failure()
    with pytest.raises(CircuitOpen):
        alive.before()
    _after(lease)  # the lease ran out
    alive.before()
    alive.success()
    assert _state(dead) == "closed"


def test_an_unreachable_database_is_a_store_error(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shoal.store.postgres.CONNECT_TIMEOUT_S", 1.0)
    url = f"postgresql://shoal:CANARY-pw-7710@/nodb?host={tmp_path}"
    b = SharedCircuitBreaker("nowhere:planner", url=url)
    for attempt in (b.before, lambda: b.state, b.failure):
        with pytest.raises(StoreError) as caught:
            attempt()
        assert caught.value.code == "store_unavailable"
        assert "CANARY" not in str(caught.value) and "***" in str(caught.value)


def test_a_database_that_goes_away_is_a_store_error(
        postgres_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pool is open and the breaker has its row; then the database is gone (its server
    dropped it, every connection cut): the next call says so instead of letting calls through
    or refusing them on a guess."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = postgres_server.replace("/postgres?", f"/{name}?", 1)
    b = SharedCircuitBreaker("gone:planner", url=url, failures=FAILURES, cooldown_s=COOLDOWN)
    b.before()
    b.failure()
    monkeypatch.setattr("shoal.store.postgres.CONNECT_TIMEOUT_S", 1.0)
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
    for _ in range(2):  # a cut connection first, then no connection to be had
        with pytest.raises(StoreError, match="database unavailable") as caught:
            b.before()
        assert caught.value.code == "store_unavailable"


def test_shoal_db_chooses_the_breaker(postgres_url: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    local = open_circuit("choose:planner", failures=2, cooldown_s=1.0)
    assert type(local) is CircuitBreaker
    monkeypatch.setenv("SHOAL_DB", postgres_url)
    remote = open_circuit("choose:planner", failures=2, cooldown_s=1.0, probe_lease_s=5.0)
    assert isinstance(remote, SharedCircuitBreaker) and remote.probe_lease_s == 5.0
    assert _state(remote) == "closed" and circuits()["choose:planner"] == "closed"


class Down(FakeBackend):
    """A planner that is down: every call fails as an unreachable server's would."""

    def __init__(self) -> None:
        super().__init__(handler=lambda _m: json.dumps({"label": "billing"}))

    async def generate_json(self, messages: Any, schema: Any, **kw: Any) -> Any:
        self.calls.append(("down", None))
        raise BackendError("connection refused", backend="fake-planner")


async def test_two_graphs_on_one_database_share_the_planners_circuit(
        postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two replicas of one graph: the failures one of them meets open the circuit for the
    other, whose escalations then wait in the outbox without calling the planner at all."""
    monkeypatch.setenv("SHOAL_DB", postgres_url)
    spec = shoal.GraphSpec.model_validate({
        "name": f"shared-circuit-{uuid.uuid4().hex[:6]}",
        "models": {"big": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m",
                           "boundary": "inside", "circuit_failures": 2,
                           "circuit_cooldown_s": 60}},
        "nodes": {"triage": {"agent": "keyword_classifier", "escalate_below": 0.99,
                             "labels": {"billing": ["invoice"], "appointment": ["visit"]}}},
    }).model_copy(update={"escalation": EscalationSpec(planner="big")})
    first, second = Down(), Down()
    one = shoal.Graph(spec, models={"big": first})
    two = shoal.Graph(spec, models={"big": second})
    for i in range(2):
        result = await one.arun(f"question {i} about my visit", id=f"a{i}")
        assert result.status == "pending_escalation"
    assert len(first.calls) == 2
    result = await two.arun("a question about my visit", id="b0")
    assert result.status == "pending_escalation"
    assert second.calls == []  # the circuit the first replica opened
    queued = {r.record_id: r.last_error for r in PostgresOutbox(postgres_url).rows()}
    assert sorted(queued) == ["a0", "a1", "b0"]
    assert "circuit open" in (queued["b0"] or "") and "circuit open" not in (queued["a0"] or "")
