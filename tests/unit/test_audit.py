"""The hash-chained audit log: appends across opens, tamper detection, concurrent writers."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

from shoal import PolicyViolation
from shoal.policies.audit import GENESIS, AuditCheck, AuditLog, audit_log, record_hash, verify


def append(log: AuditLog, i: int, *, decision: str = "pass") -> dict:
    return log.append(run_id=f"run{i}", record_id=f"rec-{i}", node="comply",
                      agent="compliance_checker", decision=decision,
                      checks=[AuditCheck("no_identifiers", True, count=0),
                              AuditCheck("disclaimer", decision == "pass", count=i % 3,
                                         kinds=("PERSON",))])


@pytest.fixture
def hundred(tmp_path: Path) -> Path:
    """100 records written through two opens of the same file (fsync off to keep it quick)."""
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, fsync=False) as log:
        for i in range(60):
            append(log, i)
    with AuditLog(path, fsync=False) as log:
        assert log.seq == 60  # the chain resumed from the last line
        for i in range(60, 100):
            append(log, i)
    return path


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_records_have_the_documented_form(tmp_path: Path):
    path = tmp_path / "a.jsonl"
    with AuditLog(path) as log:
        first = append(log, 1)
        second = append(log, 2, decision="fail")
    assert set(first) == {"seq", "ts", "run_id", "record_id", "node", "agent", "decision",
                          "checks", "prev_hash", "hash"}
    assert first["seq"] == 1 and first["prev_hash"] == GENESIS
    assert second["prev_hash"] == first["hash"] and second["seq"] == 2
    assert first["ts"].endswith("+00:00")
    assert first["checks"][1] == {"name": "disclaimer", "passed": True, "count": 1,
                                  "kinds": ["PERSON"]}
    # The line on disk is the canonical JSON, and the hash is recomputable by anyone.
    line = lines_of(path)[0]
    assert line == (json.dumps(first, sort_keys=True, separators=(",", ":")) + "\n").encode()
    assert record_hash(first) == first["hash"]
    assert path.stat().st_mode & 0o777 == 0o600


def test_hundred_records_across_two_opens_verify(hundred: Path):
    report = verify(hundred)
    assert report.ok, report.problems
    assert report.records == 100 and report.problems == []
    last = json.loads(lines_of(hundred)[-1])
    assert report.head == last["hash"]
    assert verify(hundred, expect_head=last["hash"]).ok


def test_one_changed_character_names_its_line(hundred: Path):
    lines = lines_of(hundred)
    line = lines[36]  # line 37
    at = line.index(b'"decision":"pass"') + len(b'"decision":"')
    lines[36] = line[:at] + b"q" + line[at + 1:]  # pass -> qass
    hundred.write_bytes(b"".join(lines))
    report = verify(hundred)
    assert not report.ok
    assert report.first_problem is not None and report.first_problem[0] == 37
    assert "edited" in report.first_problem[1]
    assert [line for line, _ in report.problems] == [37]  # later lines are not blamed


def test_a_changed_hash_is_caught_at_its_line_and_the_next(hundred: Path):
    lines = lines_of(hundred)
    at = lines[36].index(b'"hash":"') + len(b'"hash":"')
    flipped = b"1" if lines[36][at:at + 1] != b"1" else b"2"
    lines[36] = lines[36][:at] + flipped + lines[36][at + 1:]
    hundred.write_bytes(b"".join(lines))
    assert [line for line, _ in verify(hundred).problems] == [37, 38]


def test_a_removed_line_is_detected(hundred: Path):
    lines = lines_of(hundred)
    del lines[49]  # line 50
    hundred.write_bytes(b"".join(lines))
    report = verify(hundred)
    assert not report.ok and report.records == 99
    line, message = report.problems[0]
    assert line == 50
    assert "seq 51, expected 50" in message and "chain broken" in message


def test_swapped_lines_are_detected(hundred: Path):
    lines = lines_of(hundred)
    lines[19], lines[20] = lines[20], lines[19]  # lines 20 and 21
    hundred.write_bytes(b"".join(lines))
    report = verify(hundred)
    assert report.problems[0][0] == 20
    assert "seq 21, expected 20" in report.problems[0][1]


def test_a_truncated_last_line_is_detected_and_refused_for_appending(hundred: Path):
    data = hundred.read_bytes()
    hundred.write_bytes(data[:-25])  # cut mid-record
    report = verify(hundred)
    assert not report.ok
    assert report.problems == [(100, "no final newline: the last write was cut off; "
                                     "not a JSON record (garbled or truncated)")]
    with pytest.raises(PolicyViolation, match="does not end with a complete line"):
        AuditLog(hundred)


def test_a_garbled_last_line_is_refused(tmp_path: Path):
    path = tmp_path / "a.jsonl"
    with AuditLog(path) as log:
        append(log, 1)
    with path.open("ab") as f:
        f.write(b"\x00\xffnot json\n")
    assert verify(path).problems[0][0] == 2
    with pytest.raises(PolicyViolation, match="last line is not a record"):
        AuditLog(path)


def test_lines_cut_from_the_end_need_the_kept_head(hundred: Path):
    head = verify(hundred).head
    hundred.write_bytes(b"".join(lines_of(hundred)[:-3]))
    assert verify(hundred).ok  # a shorter chain is still a chain...
    report = verify(hundred, expect_head=head)
    assert not report.ok and "expected head" in report.problems[0][1]  # ...unless the head is kept


def test_resume_reads_the_last_line_back_across_blocks(hundred: Path, monkeypatch):
    from shoal.policies import audit

    monkeypatch.setattr(audit, "_TAIL_BLOCK", 7)  # many tiny backwards reads
    with AuditLog(hundred, fsync=False) as log:
        assert log.seq == 100 and log.head == verify(hundred).head
        append(log, 100)
    assert verify(hundred).ok and verify(hundred).records == 101


def test_missing_file_is_a_problem_not_an_exception(tmp_path: Path):
    report = verify(tmp_path / "nope.jsonl")
    assert not report.ok and report.problems[0][0] == 0


def test_free_text_cannot_be_written(tmp_path: Path):
    with AuditLog(tmp_path / "a.jsonl") as log:
        with pytest.raises(ValueError, match="value not shown") as info:
            log.append(run_id="r", record_id="John Smith 555-867-5309", node="n", agent="a",
                       decision="pass")
        assert "John" not in str(info.value)
        with pytest.raises(ValueError, match="check name"):
            log.append(run_id="r", record_id="x", node="n", agent="a", decision="fail",
                       checks=[AuditCheck("leaked John Smith", False)])
        with pytest.raises(ValueError, match="check kind"):
            log.append(run_id="r", record_id="x", node="n", agent="a", decision="fail",
                       checks=[AuditCheck("no_identifiers", False, kinds=("john",))])
    assert (tmp_path / "a.jsonl").read_bytes() == b""


async def test_concurrent_asyncio_tasks_and_threads_keep_one_chain(tmp_path: Path):
    path = tmp_path / "a.jsonl"
    log = audit_log(path)
    assert audit_log(path) is log  # one instance per file per process
    # A second, independent instance on the same file: the file lock and the resume-on-growth
    # check must keep its records in the same chain.
    other = AuditLog(path, fsync=False)

    def worker(t: int) -> None:
        for i in range(25):
            (other if i % 2 else log).append(run_id=f"thread{t}", record_id=f"t{t}-{i}",
                                             node="comply", agent="compliance_checker",
                                             decision="pass")

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    await asyncio.gather(*(log.aappend(run_id=f"task{i}", record_id=f"a{i}", node="comply",
                                       agent="compliance_checker", decision="fail")
                           for i in range(50)))
    for thread in threads:
        thread.join()
    other.close()
    report = verify(path)
    assert report.ok, report.problems[:3]
    assert report.records == 50 + 4 * 25
    seqs = [json.loads(line)["seq"] for line in lines_of(path)]
    assert seqs == list(range(1, 151))
    log.close()
