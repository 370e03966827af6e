"""``shoal run --resume`` on output files cut short by hand: what is kept, dropped, refused, rerun.

The real kill-and-resume cycle runs in tests/integration/test_resume.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shoal.cli import app
from shoal.cli.batch import _OrderedWriter, read_done
from shoal.errors import ShoalError
from shoal.graphs.results import RunResult
from tests.conftest import REPO

QUICKSTART = REPO / "examples" / "quickstart" / "graph.yaml"
runner = CliRunner()

INPUT = (
    b'{"id": "a", "text": "book an appointment"}\n'
    b'not json at all\n'
    b'{"id": "b"}\n'
    b'\n'
    b'{"id": "a", "text": "duplicate id"}\n'
    b'{"id": "c", "text": "caf\xe9 latin-1 bytes"}\n'
    b'{"id": "d", "text": "chest pain"}\n'
    b'{"id": "e", "text": "   "}\n'
    b'{"id": "f", "text": "my bill is wrong"}\n'
    b'[1, 2]\n'
    b'{"id": 7, "text": "refill my inhaler"}\n'
)
IDS = ["a", "line-2", "b", "a", "line-6", "d", "e", "f", "line-10", "7"]


def _run(tmp_path: Path, *extra: str) -> tuple[int, str]:
    result = runner.invoke(app, ["run", str(QUICKSTART), "--input", str(tmp_path / "in.jsonl"),
                                 "--output", str(tmp_path / "out.jsonl"), "--no-progress",
                                 "--concurrency", "3", *extra])
    return result.exit_code, result.stderr


def _stable(path: Path) -> list[tuple[str, str, object]]:
    """What must not depend on which run wrote a line: id, status, output."""
    return [(r["id"], r["status"], r["output"])
            for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())]


@pytest.fixture
def finished(tmp_path: Path) -> bytes:
    (tmp_path / "in.jsonl").write_bytes(INPUT)
    code, err = _run(tmp_path)
    assert code == 0, err
    full = (tmp_path / "out.jsonl").read_bytes()
    assert [json.loads(line)["id"] for line in full.splitlines()] == IDS
    return full


def test_every_cut_of_the_output_resumes_to_the_same_results(tmp_path: Path, finished: bytes):
    # Cuts at every line end and in the middle of every line, as a kill could leave the file;
    # bad input lines (line-2, the duplicate "a", ...) must come back exactly once too.
    reference = _stable(tmp_path / "out.jsonl")
    ends = [i + 1 for i, byte in enumerate(finished) if byte == ord("\n")]
    cuts = sorted({0, *ends, *(end - 7 for end in ends)})
    for cut in cuts:
        (tmp_path / "out.jsonl").write_bytes(finished[:cut])
        code, err = _run(tmp_path, "--resume")
        assert code == 0, (cut, err)
        kept = finished[:cut].count(b"\n")
        assert f"{kept} already done, {len(IDS) - kept} to run" in err, (cut, err)
        assert ("dropped an incomplete last line" in err) == (cut not in ends and cut > 0)
        assert _stable(tmp_path / "out.jsonl") == reference, cut


def test_partial_last_line_is_truncated_and_rerun(tmp_path: Path, finished: bytes):
    lines = finished.splitlines(keepends=True)
    (tmp_path / "out.jsonl").write_bytes(b"".join(lines[:4]) + lines[4][:20])
    done = read_done(tmp_path / "out.jsonl")
    assert (done.lines, done.dropped_line) == (4, 5)
    assert done.keep_bytes == len(b"".join(lines[:4]))
    code, err = _run(tmp_path, "--resume")
    assert code == 0, err
    assert f"{tmp_path / 'out.jsonl'}:5: dropped an incomplete last line" in err
    assert [json.loads(line)["id"] for line in (tmp_path / "out.jsonl").read_bytes()
            .splitlines()] == IDS


def test_unreadable_newline_terminated_last_line_is_dropped_too(tmp_path: Path,
                                                                finished: bytes):
    lines = finished.splitlines(keepends=True)
    (tmp_path / "out.jsonl").write_bytes(b"".join(lines[:3]) + b"\x00\x00\x00\n\n")
    code, err = _run(tmp_path, "--resume")
    assert code == 0, err
    assert "3 already done, 7 to run" in err
    assert [json.loads(line)["id"] for line in (tmp_path / "out.jsonl").read_bytes()
            .splitlines()] == IDS


def test_corrupt_middle_line_is_refused_naming_it_and_nothing_changes(tmp_path: Path,
                                                                      finished: bytes):
    lines = finished.splitlines(keepends=True)
    lines[2] = b'{"id": "b", "stat\n'
    broken = b"".join(lines[:6]) + lines[6][:10]
    (tmp_path / "out.jsonl").write_bytes(broken)
    code, err = _run(tmp_path, "--resume")
    assert code == 2
    assert f"{tmp_path / 'out.jsonl'}:3: not valid JSON" in err
    assert "nothing was changed" in err
    assert (tmp_path / "out.jsonl").read_bytes() == broken
    with pytest.raises(ShoalError, match=r"out\.jsonl:3: "):
        read_done(tmp_path / "out.jsonl")


def test_a_line_without_an_id_in_the_middle_is_refused(tmp_path: Path, finished: bytes):
    lines = finished.splitlines(keepends=True)
    lines[1] = b'{"status": "ok"}\n'
    (tmp_path / "out.jsonl").write_bytes(b"".join(lines))
    code, err = _run(tmp_path, "--resume")
    assert code == 2
    assert f"{tmp_path / 'out.jsonl'}:2: not a result" in err


def test_resume_when_all_are_done_runs_nothing(tmp_path: Path, finished: bytes):
    log = tmp_path / "events.jsonl"
    code, err = _run(tmp_path, "--resume", "--log-file", str(log), "--log-level", "info")
    assert code == 0, err
    assert f"{len(IDS)} already done, 0 to run" in err
    assert (tmp_path / "out.jsonl").read_bytes() == finished
    events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
    assert "run_finished" not in events and "record_invalid" not in events


def test_bad_input_lines_are_not_duplicated_on_resume(tmp_path: Path, finished: bytes):
    lines = finished.splitlines(keepends=True)
    (tmp_path / "out.jsonl").write_bytes(b"".join(lines[:5]))  # a, line-2, b, a (dup), line-6
    log = tmp_path / "events.jsonl"
    code, err = _run(tmp_path, "--resume", "--log-file", str(log))
    assert code == 0, err
    ids = [json.loads(line)["id"] for line in (tmp_path / "out.jsonl").read_bytes()
           .splitlines()]
    assert ids == IDS and ids.count("line-2") == 1 and ids.count("a") == 2
    # Only the bad lines still to write are logged (8: empty text, 10), not those already kept.
    invalid = [json.loads(line) for line in log.read_text().splitlines()
               if json.loads(line)["event"] == "record_invalid"]
    assert [e["line"] for e in invalid] == [8, 10]


def test_fail_on_error_counts_errors_already_in_the_file(tmp_path: Path):
    (tmp_path / "in.jsonl").write_bytes(b'{"id": "a", "text": "my bill"}\nnot json\n'
                                        b'{"id": "c", "text": "book an appointment"}\n')
    code, err = _run(tmp_path)
    assert code == 0, err
    lines = (tmp_path / "out.jsonl").read_bytes().splitlines(keepends=True)
    (tmp_path / "out.jsonl").write_bytes(b"".join(lines[:2]))  # a, line-2 (an error)
    code, err = _run(tmp_path, "--resume", "--fail-on-error")
    assert "2 already done, 1 to run" in err
    assert code == 1, err  # c is ok, but line-2 in the file is an error


def test_results_matching_no_input_line_are_noted(tmp_path: Path, finished: bytes):
    lines = finished.splitlines(keepends=True)
    (tmp_path / "in.jsonl").write_bytes(INPUT.replace(b"not json at all",
                                                      b'{"id": "x", "text": "fine now"}'))
    (tmp_path / "out.jsonl").write_bytes(b"".join(lines[:2]))  # a, line-2
    code, err = _run(tmp_path, "--resume")
    assert code == 0, err
    assert "1 already done, 9 to run" in err
    assert f"note: 1 result(s) in {tmp_path / 'out.jsonl'} match no line of" in err


def test_resume_needs_input_and_output(tmp_path: Path):
    (tmp_path / "in.jsonl").write_bytes(INPUT)
    no_output = runner.invoke(app, ["run", str(QUICKSTART), "-i", str(tmp_path / "in.jsonl"),
                                    "--resume"])
    assert no_output.exit_code == 2 and "--resume needs --input and --output" in no_output.stderr
    text = runner.invoke(app, ["run", str(QUICKSTART), "-t", "hi", "-o",
                               str(tmp_path / "o.jsonl"), "--resume"])
    assert text.exit_code == 2 and "--resume needs --input and --output" in text.stderr


def test_resume_without_an_output_file_is_a_normal_run(tmp_path: Path):
    (tmp_path / "in.jsonl").write_bytes(INPUT)
    code, err = _run(tmp_path, "--resume")
    assert code == 0, err
    assert "resuming" not in err
    assert [json.loads(line)["id"] for line in (tmp_path / "out.jsonl").read_bytes()
            .splitlines()] == IDS


def test_without_resume_a_non_empty_output_is_overwritten_with_a_note(tmp_path: Path,
                                                                      finished: bytes):
    (tmp_path / "out.jsonl").write_bytes(finished + finished)
    code, err = _run(tmp_path)
    assert code == 0, err
    assert err.splitlines()[0] == (f"note: overwriting {tmp_path / 'out.jsonl'} (not empty); "
                                   "--resume would continue it instead")
    assert len((tmp_path / "out.jsonl").read_bytes().splitlines()) == len(IDS)
    (tmp_path / "out.jsonl").write_bytes(b"")
    code, err = _run(tmp_path)
    assert code == 0 and "note: overwriting" not in err


def _result(i: int) -> RunResult:
    return RunResult(id=f"r{i}", status="ok")


def test_writer_hands_each_ready_line_to_the_os_and_fsyncs_at_most_every_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import shoal.cli.batch as batch

    synced: list[int] = []
    monkeypatch.setattr(batch.os, "fsync", synced.append)
    clock = [100.0]
    monkeypatch.setattr(batch.time, "monotonic", lambda: clock[0])
    path = tmp_path / "out.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        writer = _OrderedWriter(fh, durable=True, fsync_every_s=0.5)
        writer.put(1, _result(1))
        assert path.read_bytes() == b""  # waits for result 0: input order
        writer.put(0, _result(0))
        assert [json.loads(line)["id"] for line in path.read_bytes().splitlines()] == ["r0", "r1"]
        assert synced == []  # readable by other processes, but not fsynced yet
        clock[0] += 0.6
        writer.put(2, _result(2))
        assert synced == [fh.fileno()]
        writer.put(3, _result(3))
        assert len(synced) == 1 and path.read_bytes().count(b"\n") == 4
        writer.close()
        assert len(synced) == 2
        writer.close()
        assert len(synced) == 2  # nothing new to sync
