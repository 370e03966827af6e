"""``shoal run --output`` killed with SIGKILL mid-batch, then ``--resume``d: every input id once.

The batch runs in a real ``shoal`` process (``python -m shoal.cli``, what the ``shoal`` console
script calls) on a graph whose agent is slow enough to be killed halfway: ``resume_slow`` from
``resume_agents.py``, found through a ``shoal.agents`` entry point on ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration

RECORDS = 300
BAD = {40: "not json", 150: '{"id": "no-text"}'}
"""Input line number -> a line that becomes an ``error`` result (ids ``line-40``, ``no-text``)."""


@pytest.fixture
def batch(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    """Writes the plugin's dist-info, the graph and the input; returns the expected ids in
    input order and the subprocess environment."""
    dist = tmp_path / "site" / "shoal_resume_test-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shoal-resume-test\n"
                                   "Version: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[shoal.agents]\nresume_slow = resume_agents:slow_echo\n")
    (tmp_path / "graph.yaml").write_text(
        "shoal: 1\nname: resume_test\nnodes:\n  slow: {agent: resume_slow, delay_s: 0.04}\n")
    lines: list[str] = []
    expected: list[str] = []
    for n in range(1, RECORDS + 1):
        if n in BAD:
            lines.append(BAD[n])
            expected.append("no-text" if "no-text" in BAD[n] else f"line-{n}")
        else:
            lines.append(json.dumps({"id": f"r{n:04d}", "text": f"message number {n}"}))
            expected.append(f"r{n:04d}")
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(tmp_path / "site"), str(REPO / "tests" / "integration"), str(REPO / "src"),
         env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return expected, env


def _cmd(tmp_path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "shoal.cli", "run", str(tmp_path / "graph.yaml"),
            "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.jsonl"),
            "--concurrency", "4", "--no-progress", *extra]


def _complete_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _run_and_kill(tmp_path: Path, env: dict[str, str], *, at_least: int, resume: bool) -> int:
    """Start a run, SIGKILL it once the output has ``at_least`` complete lines; return how many
    complete lines the killed run left."""
    proc = subprocess.Popen(_cmd(tmp_path, *(["--resume"] if resume else [])), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    out = tmp_path / "out.jsonl"
    try:
        deadline = time.monotonic() + 60
        while _complete_lines(out) < at_least:
            if proc.poll() is not None:
                assert proc.stderr is not None
                pytest.fail(f"the run ended before it could be killed: "
                            f"{proc.stderr.read().decode()}")
            assert time.monotonic() < deadline, "no progress within 60 s"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        assert proc.stderr is not None
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, "the run finished before the kill"
    left = _complete_lines(out)
    assert at_least <= left < RECORDS, "the kill did not land mid-batch"
    return left


def _resume_to_end(tmp_path: Path, env: dict[str, str], left: int) -> str:
    proc = subprocess.run(_cmd(tmp_path, "--resume"), env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    match = re.search(r"(\d+) already done, (\d+) to run", proc.stderr)
    assert match, proc.stderr
    already, to_run = int(match[1]), int(match[2])
    # Every complete line the kill left counts; only a cut-off last line is run again.
    assert already == left and already + to_run == RECORDS, proc.stderr
    return proc.stderr


def _assert_complete(tmp_path: Path, expected: list[str]) -> None:
    out = tmp_path / "out.jsonl"
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == RECORDS
    assert [r["id"] for r in rows] == expected  # each id exactly once, in input order
    for row in rows:
        if row["id"] in {"line-40", "no-text"}:
            assert row["status"] == "error" and f"{tmp_path / 'in.jsonl'}:" in (
                row["error"]["message"])
        else:
            assert row["status"] == "ok" and row["output"] == f"done {row['id']}"


def test_killed_run_resumes_to_every_id_once_in_order(tmp_path: Path, batch):
    expected, env = batch
    left = _run_and_kill(tmp_path, env, at_least=60, resume=False)
    assert _ids_prefix_ok(tmp_path, expected)
    _resume_to_end(tmp_path, env, left)
    _assert_complete(tmp_path, expected)


def test_run_killed_twice_still_ends_correct(tmp_path: Path, batch):
    expected, env = batch
    left = _run_and_kill(tmp_path, env, at_least=30, resume=False)
    assert _ids_prefix_ok(tmp_path, expected)
    # The second kill hits a resumed run: what it appended must extend the same prefix.
    left = _run_and_kill(tmp_path, env, at_least=left + 60, resume=True)
    assert _ids_prefix_ok(tmp_path, expected)
    _resume_to_end(tmp_path, env, left)
    _assert_complete(tmp_path, expected)


def test_resume_of_a_finished_run_runs_nothing(tmp_path: Path, batch):
    expected, env = batch
    first = subprocess.run(_cmd(tmp_path), env=env, capture_output=True, text=True,
                           timeout=120, check=False)
    assert first.returncode == 0, first.stderr
    before = (tmp_path / "out.jsonl").read_bytes()
    again = subprocess.run(_cmd(tmp_path, "--resume"), env=env, capture_output=True, text=True,
                           timeout=120, check=False)
    assert again.returncode == 0, again.stderr
    assert f"{RECORDS} already done, 0 to run" in again.stderr
    assert (tmp_path / "out.jsonl").read_bytes() == before
    _assert_complete(tmp_path, expected)


def _ids_prefix_ok(tmp_path: Path, expected: list[str]) -> bool:
    """The complete lines of a killed run's output are a prefix of the expected ids."""
    data = (tmp_path / "out.jsonl").read_bytes()
    complete = data[: data.rfind(b"\n") + 1].decode("utf-8")
    ids = [json.loads(line)["id"] for line in complete.splitlines()]
    return ids == expected[: len(ids)]
