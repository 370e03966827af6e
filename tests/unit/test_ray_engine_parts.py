"""The parts of the Ray engine that need no cluster: errors that cross process boundaries, the
planner proxy's answers, the workers' environment, and the command's checks before Ray starts
(tests/integration/test_ray_engine.py runs the engine on a real cluster)."""

from __future__ import annotations

import asyncio
import inspect
import pickle
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import shoal.errors as errors_module
from shoal.cli import app
from shoal.engines.planner_stage import PlannerProxy
from shoal.engines.ray_batch import RayOptions, _worker_env
from shoal.errors import BackendError, BackendTimeout, EgressBlocked, ShoalError
from shoal.models.base import Generation

runner = CliRunner()


def _every_error() -> list[type[ShoalError]]:
    return [cls for _, cls in inspect.getmembers(errors_module, inspect.isclass)
            if issubclass(cls, ShoalError)]


def test_every_shoal_error_survives_pickle_with_its_attributes() -> None:
    samples: list[ShoalError] = [
        ShoalError("plain"), BackendError("down", backend="planner"),
        BackendTimeout(backend="planner", timeout_s=3.0),
        EgressBlocked("found", types={"SSN": 1}, node="triage", detector="independent")]
    assert {type(s) for s in samples} <= set(_every_error())
    for error in samples:
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is type(error)
        assert str(back) == str(error) and back.code == error.code
        assert back.__dict__ == error.__dict__


class _FakeRemote:
    """A fake Ray actor method for fault injection: ``.remote()`` returns an awaitable of a
    fixed answer, as an ObjectRef does."""

    def __init__(self, answer: object) -> None:
        self.answer = answer
        self.calls: list[tuple[Any, ...]] = []

    def remote(self, *args: Any) -> Any:
        self.calls.append(args)
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        future.set_result(self.answer)
        return future


class _FakeStage:
    def __init__(self, answer: object) -> None:
        self.generate = _FakeRemote(answer)
        self.generate_json = _FakeRemote(answer)


def test_the_planner_proxy_raises_the_stage_s_error_as_the_planner_would() -> None:
    down = BackendError("unreachable", backend="planner")
    proxy = PlannerProxy(_FakeStage(down), "planner")
    with pytest.raises(BackendError) as caught:
        asyncio.run(proxy.generate([{"role": "user", "content": "hi"}], max_tokens=8))
    assert caught.value is down  # the escalator queues it in the outbox, as locally


def test_the_planner_proxy_passes_the_call_and_returns_the_generation() -> None:
    answer = Generation(text="ok", model="planner", latency_ms=1.0)
    stage = _FakeStage(answer)
    out = asyncio.run(PlannerProxy(stage, "planner").generate(
        [{"role": "user", "content": "hi"}], max_tokens=8, timeout_s=5.0))
    assert out is answer
    (messages, kwargs), = stage.generate.calls
    assert messages == [{"role": "user", "content": "hi"}]
    assert kwargs == {"max_tokens": 8, "temperature": 0.0, "timeout_s": 5.0}


def test_the_planner_proxy_refuses_an_answer_that_is_not_a_generation() -> None:
    proxy = PlannerProxy(_FakeStage({"text": "ok"}), "planner")
    with pytest.raises(BackendError, match="answered dict"):
        asyncio.run(proxy.generate([{"role": "user", "content": "hi"}]))


def test_workers_get_absolute_store_paths_and_threads_pinned_to_their_cpus(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SHOAL_OUTBOX", "state/outbox.sqlite")
    monkeypatch.setenv("SHOAL_AUDIT_LOG", "audit.jsonl")
    monkeypatch.delenv("SHOAL_MODEL_THREADS", raising=False)
    monkeypatch.delenv("SHOAL_LLAMA_THREADS", raising=False)
    env = _worker_env(RayOptions(cpus_per_worker=2))
    assert env["SHOAL_OUTBOX"] == str(tmp_path / "state" / "outbox.sqlite")
    assert env["SHOAL_AUDIT_LOG"] == str(tmp_path / "audit.jsonl")
    assert env["SHOAL_MODEL_THREADS"] == env["SHOAL_LLAMA_THREADS"] == "2"
    assert not any(k.startswith("PATH") or k == "HOME" for k in env)  # only shoal's own


@pytest.mark.parametrize(("args", "message"), [
    (["--engine", "ray", "--text", "hello"], "--engine ray runs --input files"),
    (["--workers", "2", "--text", "hello"], "need --engine ray"),
    (["--engine", "spark", "--text", "hello"], "unknown engine 'spark'"),
])
def test_run_refuses_options_that_do_not_fit_the_engine(
        args: list[str], message: str, write_yaml: Any) -> None:
    graph = write_yaml("shoal: 1\nname: g\nnodes:\n  m: {agent: privacy_masker}\nedges: []\n")
    result = runner.invoke(app, ["run", str(graph), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_a_bad_graph_is_named_by_file_line_and_column_before_ray_starts(
        write_yaml: Any, tmp_path: Path) -> None:
    graph = write_yaml("shoal: 1\nname: g\nnodes:\n  m: {agent: no_such_agent}\nedges: []\n")
    data = tmp_path / "in.jsonl"
    data.write_text('{"id": "1", "text": "hello"}\n')
    result = runner.invoke(app, ["run", str(graph), "--engine", "ray", "--input", str(data)])
    assert result.exit_code == 2
    assert f"{graph}:4:" in result.output and "no_such_agent" in result.output
