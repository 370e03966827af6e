"""``shoal run --engine ray`` on a real local Ray cluster: a head and a worker node, each a
``ray start`` process with one CPU, started and stopped here.

The same input gives the same per-record statuses, labels and masks as the local engine (the
planner a real llama_cpp.server); ``--resume`` finishes a cut-off output; a graph actor killed
in the middle of a batch is restarted by Ray and its records run again, none lost or written
twice."""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from shoal.cli import app
from shoal.models.local_server import free_port
from tests.conftest import REPO
from tests.integration.recording_proxy import RecordingProxy

pytestmark = [pytest.mark.integration, pytest.mark.slow]
HEALTH = REPO / "examples" / "healthcare"
BIN = Path(sys.executable).parent
runner = CliRunner()


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A Ray head and one worker node on 127.0.0.1 (one CPU each, token authentication with a
    token of this test's own); yields the environment a driver needs, with the address in
    ``SHOAL_TEST_RAY_ADDRESS``. ``ray stop`` ends both at the end."""
    if importlib.util.find_spec("ray") is None:  # not imported here: the drivers use Ray
        pytest.skip("needs the extra [ray]")
    port = free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
           "RAY_BACKEND_LOG_LEVEL": "fatal", "RAY_USAGE_STATS_ENABLED": "0"}
    temp = tmp_path_factory.mktemp("ray")
    common = ["--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    try:
        subprocess.run([str(BIN / "ray"), "start", "--head", "--port", str(port),
                        "--include-dashboard", "false", "--temp-dir", str(temp), *common],
                       env=env, check=True, capture_output=True, timeout=120)
        subprocess.run([str(BIN / "ray"), "start", "--address", f"127.0.0.1:{port}", *common],
                       env=env, check=True, capture_output=True, timeout=120)
        yield {**env, "SHOAL_TEST_RAY_ADDRESS": f"127.0.0.1:{port}"}
    finally:
        subprocess.run([str(BIN / "ray"), "stop", "--force"], env=env, capture_output=True,
                       timeout=120, check=False)


def _records(n: int, offset: int = 0) -> list[dict[str, str]]:
    seen: set[str] = set()
    out: list[dict[str, str]] = []
    for line in (HEALTH / "data" / "test.jsonl").read_text().splitlines()[offset:]:
        row = json.loads(line)
        if row["text"] not in seen and len(out) < n:
            seen.add(row["text"])
            out.append({"id": row["id"], "text": row["text"]})
    return out


def _graph(tmp_path: Path, *, output: str | None = None, escalation: bool = True) -> Path:
    """The healthcare triage graph with absolute paths (it runs from a temporary directory);
    ``output: mask`` makes the masker's output the result; without escalation, no planner."""
    text = (HEALTH / "triage.yaml").read_text().replace(
        "path: models/triage.onnx", f"path: {HEALTH / 'models' / 'triage.onnx'}").replace(
        "policies: [policies/triage-calibrated.yaml]",
        f"policies: [{HEALTH / 'policies' / 'triage-calibrated.yaml'}]")
    if not escalation:
        text = text[:text.index("\nescalation:")] + "\n"
    if output is not None:
        text += f"output: {output}\n"
    path = tmp_path / "graph.yaml"
    path.write_text(text)
    return path


def _run_ray(graph: Path, data: Path, out: Path, env: dict[str, str], *extra: str,
             workers: int = 2) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "shoal"), "run", str(graph), "--engine", "ray", "--address",
         env["SHOAL_TEST_RAY_ADDRESS"], "--workers", str(workers), "--input", str(data),
         "--output", str(out), "--no-progress", *extra],
        env=env, capture_output=True, text=True, timeout=600, check=False)


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _label(row: dict[str, Any]) -> Any:
    output = row.get("output")
    return output.get("label") if isinstance(output, dict) else output


def test_ray_gives_the_local_statuses_and_labels_with_a_real_planner(
        tmp_path: Path, ray_cluster: dict[str, str], planner_server: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_PLANNER_URL", planner_server.base_url)
    graph = _graph(tmp_path)
    rows = _records(24)
    data = tmp_path / "in.jsonl"
    lines = [json.dumps(r) for r in rows]
    lines.insert(7, '{"id": "bad-1", "text": 42}')  # a bad line keeps its place, names itself
    data.write_text("\n".join(lines) + "\n")

    local = runner.invoke(app, ["run", str(graph), "--input", str(data), "--output",
                                str(tmp_path / "local.jsonl"), "--no-progress"])
    assert local.exit_code == 0, local.output
    with RecordingProxy(planner_server.base_url) as proxy:
        env = {**ray_cluster, "SHOAL_PLANNER_URL": proxy.base_url,
               "SHOAL_OUTBOX": str(tmp_path / "o.sqlite")}
        ran = _run_ray(graph, data, tmp_path / "ray.jsonl", env, "--planner-concurrency", "1")
    assert ran.returncode == 0, ran.stderr[-3000:]
    # Two actors, each with runs in flight, and one planner call at a time for them all.
    assert len(proxy.answered) >= 2 and proxy.max_in_flight == 1

    here, there = _rows(tmp_path / "local.jsonl"), _rows(tmp_path / "ray.jsonl")
    assert [r["id"] for r in there] == [r["id"] for r in here] == [
        json.loads(line)["id"] for line in lines]
    assert [(r["status"], _label(r)) for r in there] == [(r["status"], _label(r)) for r in here]
    statuses = {r["status"] for r in there}
    assert {"ok", "escalated", "error"} <= statuses, statuses  # the planner answered some
    bad = next(r for r in there if r["id"] == "bad-1")
    assert f"{data}:8" in bad["error"]["message"]
    # Ray's notes stay off the command's stderr: the report is what is there.
    assert "Token authentication" not in ran.stderr and "healthcare-triage" in ran.stderr


def test_resume_on_ray_appends_only_the_missing_results(
        tmp_path: Path, ray_cluster: dict[str, str]) -> None:
    env = {**ray_cluster, "SHOAL_OUTBOX": str(tmp_path / "o.sqlite")}
    graph = _graph(tmp_path, escalation=False)
    rows = _records(40, offset=300)
    data, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    first = runner.invoke(app, ["run", str(graph), "--input", str(data), "--output", str(out),
                                "--no-progress"])
    assert first.exit_code == 0, first.output
    full = out.read_text().splitlines(keepends=True)
    # An interrupted run: 15 results and half of the 16th.
    out.write_text("".join(full[:15]) + full[15][: len(full[15]) // 2])
    again = _run_ray(graph, data, out, env, "--resume")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "15 already done, 25 to run" in again.stderr
    resumed = _rows(out)
    assert [r["id"] for r in resumed] == [r["id"] for r in rows]
    assert out.read_text().splitlines(keepends=True)[:15] == full[:15]
    assert [(r["status"], _label(r)) for r in resumed] == [
        (r["status"], _label(r)) for r in map(json.loads, full)]


def _map_workers() -> dict[int, str]:
    """pid -> process title of every Ray Data graph actor on this machine (Ray titles an
    actor's process ``ray::MapWorker(...)``, with ``.submit`` while it runs a batch)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"MapWorker(MapBatches(GraphWorker))" in title:
            found[int(entry.name)] = title.decode(errors="replace").strip()
    return found


def test_an_actor_killed_mid_batch_has_its_records_run_again_none_lost_or_twice(
        tmp_path: Path, ray_cluster: dict[str, str]) -> None:
    env = {**ray_cluster, "SHOAL_OUTBOX": str(tmp_path / "o.sqlite")}
    graph = _graph(tmp_path, output="mask", escalation=False)
    rows = _records(150, offset=100)
    data, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    process = subprocess.Popen(
        [str(BIN / "shoal"), "run", str(graph), "--engine", "ray", "--address",
         env["SHOAL_TEST_RAY_ADDRESS"], "--workers", "2", "--input", str(data), "--output",
         str(out), "--no-progress"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed: tuple[int, str] | None = None
    try:
        deadline = time.monotonic() + 300
        while killed is None and process.poll() is None and time.monotonic() < deadline:
            done = len(out.read_text().splitlines()) if out.exists() else 0
            busy = {pid: title for pid, title in _map_workers().items() if ".submit" in title}
            if done >= 10 and busy:
                pid, title = next(iter(busy.items()))
                os.kill(pid, signal.SIGKILL)
                killed = (pid, title)
            time.sleep(0.05)
        _, stderr = process.communicate(timeout=600)
    finally:
        if process.poll() is None:
            process.kill()
    assert killed is not None, "no busy graph actor was found while the batch ran"
    assert process.returncode == 0, stderr[-3000:]
    results = _rows(out)
    assert [r["id"] for r in results] == [r["id"] for r in rows]  # each once, in input order
    assert all(r["status"] == "ok" for r in results)
    # The masks are the local engine's.
    local = runner.invoke(app, ["run", str(graph), "--input", str(data), "--output",
                                str(tmp_path / "local.jsonl"), "--no-progress"])
    assert local.exit_code == 0, local.output
    assert [r["output"]["masked"] for r in results] == [
        r["output"]["masked"] for r in _rows(tmp_path / "local.jsonl")]
