"""An append-only, hash-chained audit log of policy decisions (one JSON object per line).

Each line is one decision, written in canonical JSON (sorted keys, no whitespace, ASCII only)::

    {"agent":"compliance_checker","checks":[{"count":0,"name":"no_identifiers","passed":true}],
     "decision":"pass","hash":"<64 hex>","node":"comply","prev_hash":"<64 hex>",
     "record_id":"r1","run_id":"9f0c...","seq":1,"ts":"2025-01-01T12:00:00.000000+00:00"}

``hash = sha256(prev_hash + canonical_json(record without "hash"))`` (both UTF-8), and each
record's ``prev_hash`` is the previous record's ``hash``; the first record chains to
:data:`GENESIS`. ``seq`` counts from 1 and equals the line number, so a removed, inserted or
reordered line breaks both the sequence and the chain, and an edited line no longer hashes to
what it says. :func:`verify` names the first line where that happens.

What a record may hold is enforced here, not left to callers: ids, node and agent names, a
decision verdict, and per check a name, a pass flag, an optional count and optional entity-type
names. Every string is checked against a narrow pattern, so free text (and with it personal data)
cannot be written by mistake.

Writes are one ``os.write`` of one whole line to a descriptor opened with ``O_APPEND``, so a line
is never interleaved with another and there is no user-space buffer to flush; ``fsync`` after
each line is on by default (``fsync=False`` trades durability on power loss for speed). A
threading lock serialises appends within the process and an advisory ``flock`` across processes;
before each append the log checks whether the file grew under it (another writer) and, if so,
resumes the chain from the file's last line, as it does when it is opened.

What the chain cannot show on its own: a file cut back by whole lines at its end is still a valid,
shorter chain. Keep :attr:`AuditLog.head` (the last hash) somewhere else, for example in the
run report, and pass it to :func:`verify` as ``expect_head`` to detect that too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shoal.errors import PolicyViolation
from shoal.store import Migration, PostgresTables, connection, state_url

if sys.platform != "win32":  # advisory locks between processes; Windows gets the thread lock only
    import fcntl

__all__ = [
    "GENESIS",
    "AuditCheck",
    "AuditLog",
    "AuditWriter",
    "PostgresAuditLog",
    "VerifyReport",
    "audit_log",
    "record_hash",
    "verify",
]

GENESIS = "0" * 64
"""The ``prev_hash`` of the first record of every log."""

POLICY = "audit"
FIELDS = frozenset({"seq", "ts", "run_id", "record_id", "node", "agent", "decision", "checks",
                    "prev_hash", "hash"})
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$")
"""Node, agent, decision and check names: identifiers, never sentences."""
_ID = re.compile(r"^[A-Za-z0-9_.:@/+=-]{1,256}$")
"""Run and record ids: caller-chosen keys, but no spaces, so no sentence fits."""
_ENTITY = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_TAIL_BLOCK = 8192


def canonical(record: Mapping[str, Any]) -> str:
    """The one serialisation hashed and written: sorted keys, no whitespace, ASCII."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


def record_hash(record: Mapping[str, Any]) -> str:
    """The hash a record must carry: over ``prev_hash`` then the record without ``hash``."""
    body = {k: v for k, v in record.items() if k != "hash"}
    prev = str(record.get("prev_hash", ""))
    return hashlib.sha256((prev + canonical(body)).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditCheck:
    """One check's outcome as the audit log keeps it: no detail text, only name and numbers."""

    name: str
    passed: bool
    count: int | None = None
    """How many things the check found (identifiers, cues); never what they were."""
    kinds: tuple[str, ...] = ()
    """Entity types involved (``PHONE_NUMBER``), never values."""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "passed": self.passed}
        if self.count is not None:
            out["count"] = self.count
        if self.kinds:
            out["kinds"] = sorted(set(self.kinds))
        return out


def _checked_name(what: str, value: str, pattern: re.Pattern[str] = _NAME) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        # The value itself is not quoted: a misused field may hold exactly what must not leak.
        raise ValueError(f"audit {what} must match {pattern.pattern} (value not shown)")
    return value


def _checked_checks(checks: Sequence[AuditCheck]) -> list[dict[str, Any]]:
    out = []
    for check in checks:
        if not isinstance(check, AuditCheck):
            raise TypeError(f"audit checks must be AuditCheck, got {type(check).__name__}")
        _checked_name("check name", check.name)
        if check.count is not None and (isinstance(check.count, bool) or check.count < 0):
            raise ValueError("audit check count must be a non-negative int")
        for kind in check.kinds:
            _checked_name("check kind", kind, _ENTITY)
        out.append(check.as_dict())
    return out


class AuditLog:
    """One audit file. Safe to share between threads and asyncio tasks; prefer :func:`audit_log`,
    which gives one instance per file per process.

    Opening never rewrites the file. A file whose last line is cut off or unreadable is refused
    (:class:`~shoal.errors.PolicyViolation`) rather than extended: appending after a broken line
    would hide where the damage is. Run :func:`verify` on it and move it aside.
    """

    def __init__(self, path: str | Path, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # O_APPEND: every write lands at the end even with other writers; 0o600: decisions about
        # patients' messages are nobody else's business, ids included.
        # O_RDWR only so the chain head can be read back through the same descriptor.
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._seq = 0
        self._head = GENESIS
        self._end = -1  # file size after our last write; -1 forces a resume on first append
        try:
            with self._lock, self._file_lock():
                self._resume()
        except BaseException:
            os.close(self._fd)
            self._fd = -1
            raise

    # -- state ---------------------------------------------------------------------------------

    @property
    def head(self) -> str:
        """The hash of the last record (``GENESIS`` for an empty log)."""
        return self._head

    @property
    def seq(self) -> int:
        """The ``seq`` of the last record (0 for an empty log)."""
        return self._seq

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r}, seq={self._seq})"

    # -- appending -----------------------------------------------------------------------------

    def append(
        self,
        *,
        run_id: str,
        record_id: str,
        node: str,
        agent: str,
        decision: str,
        checks: Sequence[AuditCheck] = (),
    ) -> dict[str, Any]:
        """Append one decision and return the record as written. Blocks for the fsync."""
        body = _body(run_id=run_id, record_id=record_id, node=node, agent=agent,
                     decision=decision, checks=checks)
        with self._lock:
            if self._fd < 0:
                raise ValueError("audit log is closed")
            with self._file_lock():
                size = os.fstat(self._fd).st_size
                if size != self._end:
                    self._resume()  # another writer appended since our last line
                record = {"seq": self._seq + 1,
                          "ts": datetime.now(UTC).isoformat(timespec="microseconds"),
                          **body, "prev_hash": self._head}
                record["hash"] = record_hash(record)
                line = (canonical(record) + "\n").encode("ascii")
                written = os.write(self._fd, line)
                if written != len(line):  # regular files write whole; a full disk may not
                    raise PolicyViolation(f"short write to the audit log ({written} of "
                                          f"{len(line)} bytes)", policy=POLICY)
                if self.fsync:
                    os.fsync(self._fd)
                self._seq = record["seq"]
                self._head = record["hash"]
                self._end = size + written
        return record

    async def aappend(
        self,
        *,
        run_id: str,
        record_id: str,
        node: str,
        agent: str,
        decision: str,
        checks: Sequence[AuditCheck] = (),
    ) -> dict[str, Any]:
        """:meth:`append` in a worker thread, so the fsync does not stall the event loop."""
        return await asyncio.to_thread(self.append, run_id=run_id, record_id=record_id,
                                       node=node, agent=agent, decision=decision, checks=checks)

    # -- internals -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        if sys.platform == "win32":  # pragma: no cover
            yield
            return
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _resume(self) -> None:
        """Take ``seq`` and ``head`` from the file's last line (caller holds both locks)."""
        size, last = _last_line(self._fd)
        self._end = size
        if last is None:
            if size:
                raise PolicyViolation(f"{self.path}: the audit log does not end with a complete "
                                      "line; run `shoal audit verify` on it", policy=POLICY)
            self._seq, self._head = 0, GENESIS
            return
        try:
            record = json.loads(last)
            seq, head = record["seq"], record["hash"]
            ok = type(seq) is int and isinstance(head, str) and _HEX64.match(head) is not None
        except (ValueError, TypeError, KeyError):
            ok = False
        if not ok:
            raise PolicyViolation(f"{self.path}: the audit log's last line is not a record; "
                                  "run `shoal audit verify` on it", policy=POLICY)
        self._seq, self._head = seq, head


def _body(*, run_id: str, record_id: str, node: str, agent: str, decision: str,
          checks: Sequence[AuditCheck]) -> dict[str, Any]:
    """A record's fields, each checked against its narrow pattern (no free text)."""
    return {
        "run_id": _checked_name("run_id", run_id, _ID),
        "record_id": _checked_name("record_id", record_id, _ID),
        "node": _checked_name("node", node),
        "agent": _checked_name("agent", agent),
        "decision": _checked_name("decision", decision),
        "checks": _checked_checks(checks),
    }


AUDIT_MIGRATIONS = (
    Migration(1, """
CREATE TABLE IF NOT EXISTS shoal_audit (
    seq BIGINT PRIMARY KEY,
    line TEXT NOT NULL,
    hash TEXT NOT NULL
);
"""),
)


class PostgresAuditLog(PostgresTables):
    """The audit chain in the Postgres database of ``SHOAL_DB``: one chain for every process and
    machine. The same records, hashes and rules as the file (each row is one canonical line);
    one writer at a time, under an advisory lock held for the transaction that reads the head
    and inserts the next record, so the chain never forks. ``shoal audit verify`` checks it."""

    component = "audit"
    migrations = AUDIT_MIGRATIONS

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._seq = 0
        self._head = GENESIS

    @property
    def head(self) -> str:
        """The hash of the last record this process wrote (``GENESIS`` before any)."""
        return self._head

    @property
    def seq(self) -> int:
        return self._seq

    def append(self, *, run_id: str, record_id: str, node: str, agent: str, decision: str,
               checks: Sequence[AuditCheck] = ()) -> dict[str, Any]:
        """Append one decision at the head of the shared chain; the record as written."""
        body = _body(run_id=run_id, record_id=record_id, node=node, agent=agent,
                     decision=decision, checks=checks)
        with connection(self._migrated()) as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('shoal-audit'))")
            last = conn.execute("SELECT seq, hash FROM shoal_audit ORDER BY seq DESC LIMIT 1"
                                ).fetchone()
            seq, prev = (int(last["seq"]), str(last["hash"])) if last else (0, GENESIS)
            record = {"seq": seq + 1,
                      "ts": datetime.now(UTC).isoformat(timespec="microseconds"),
                      **body, "prev_hash": prev}
            record["hash"] = record_hash(record)
            conn.execute("INSERT INTO shoal_audit (seq, line, hash) VALUES (%s, %s, %s)",
                         (record["seq"], canonical(record), record["hash"]))
        self._seq, self._head = record["seq"], record["hash"]
        return record

    async def aappend(self, *, run_id: str, record_id: str, node: str, agent: str,
                      decision: str, checks: Sequence[AuditCheck] = ()) -> dict[str, Any]:
        """:meth:`append` in a worker thread: the round trip does not stall the event loop."""
        return await asyncio.to_thread(self.append, run_id=run_id, record_id=record_id,
                                       node=node, agent=agent, decision=decision, checks=checks)

    def export(self, path: str | Path) -> int:
        """Write the whole chain to ``path`` as the JSONL a file log would hold (for
        :func:`verify` and for archiving); the number of records."""
        with connection(self._migrated()) as conn:
            lines = [str(r["line"]) for r in conn.execute(
                "SELECT line FROM shoal_audit ORDER BY seq")]
        Path(path).write_text("".join(line + "\n" for line in lines), encoding="ascii")
        return len(lines)


AuditWriter = AuditLog | PostgresAuditLog
"""What :func:`audit_log` returns: the file, or the shared chain in Postgres."""


def _last_line(fd: int) -> tuple[int, bytes | None]:
    """(file size, its last complete line without the newline) — None if empty or cut off.

    Reads through the log's own descriptor, so a file renamed or replaced under the log is not
    confused with the one it writes to."""
    size = os.fstat(fd).st_size
    if size == 0:
        return 0, None
    if os.pread(fd, 1, size - 1) != b"\n":
        return size, None
    pos = size - 1  # the final newline; the line is everything before it back to a newline
    chunks: list[bytes] = []
    while pos > 0:
        step = min(_TAIL_BLOCK, pos)
        pos -= step
        block = os.pread(fd, step, pos)
        cut = block.rfind(b"\n")
        if cut >= 0:
            chunks.append(block[cut + 1:])
            break
        chunks.append(block)
    return size, b"".join(reversed(chunks))


_logs: dict[tuple[str, bool], AuditLog] = {}
_logs_lock = threading.Lock()


def audit_log(path: str | Path, *, fsync: bool = True) -> AuditWriter:
    """The process's :class:`AuditLog` for ``path`` (one per file, so every node writing to the
    same file shares one lock and one chain head); with ``$SHOAL_DB``, the one chain in that
    Postgres database (:class:`PostgresAuditLog`) instead, wherever the file would have been."""
    url = state_url()
    if url is not None:
        return PostgresAuditLog(url)
    key = (str(Path(path).resolve()), fsync)
    with _logs_lock:
        log = _logs.get(key)
        if log is None or log._fd < 0:
            log = _logs[key] = AuditLog(path, fsync=fsync)
        return log


# --- verification --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What :func:`verify` found. ``problems`` are ``(line number, message)``, first one first;
    line 0 means the file as a whole. Messages name fields and line numbers, never values."""

    path: str
    ok: bool
    records: int
    """Lines that parsed as records (valid or not)."""
    problems: list[tuple[int, str]] = field(default_factory=list)
    head: str = GENESIS
    """The hash of the last readable record."""

    @property
    def first_problem(self) -> tuple[int, str] | None:
        return self.problems[0] if self.problems else None

    def __str__(self) -> str:
        if self.ok:
            return f"{self.path}: ok, {self.records} record(s), head {self.head[:16]}"
        lines = [f"{self.path}: {len(self.problems)} problem(s) in {self.records} record(s)"]
        lines += [f"{self.path}:{line}: {message}" for line, message in self.problems]
        return "\n".join(lines)


def verify(path: str | Path, *, expect_head: str | None = None,
           max_problems: int = 100) -> VerifyReport:
    """Check every line of an audit log: form, hash, chain and sequence.

    Detects an edited line (its hash no longer matches, or it is no longer canonical JSON), a
    removed or inserted line (``seq`` gap and broken ``prev_hash``), reordered lines, and a cut-off
    or garbled line (not JSON, no final newline). With ``expect_head`` (a hash kept elsewhere) it
    also detects whole lines cut from the end. Never raises for a bad file.
    """
    label = str(path)
    problems: list[tuple[int, str]] = []
    records = 0
    prev_hash = GENESIS
    expected_seq = 1

    def problem(line: int, message: str) -> None:
        if len(problems) < max_problems:
            problems.append((line, message))
        elif len(problems) == max_problems:
            problems.append((line, "too many problems; stopped listing"))

    try:
        f = Path(path).open("rb")  # noqa: SIM115 - closed below; opening errors are reported
    except OSError as exc:
        return VerifyReport(label, False, 0, [(0, f"cannot read: {exc.strerror or 'I/O error'}")])
    with f:
        lineno = 0
        for lineno, raw in enumerate(f, 1):
            issues: list[str] = []
            if not raw.endswith(b"\n"):
                issues.append("no final newline: the last write was cut off")
            text = raw.rstrip(b"\n")
            try:
                record = json.loads(text.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                problem(lineno, "; ".join([*issues, "not a JSON record (garbled or truncated)"]))
                continue
            if not isinstance(record, dict):
                problem(lineno, "not a JSON object")
                continue
            records += 1
            missing = sorted(FIELDS - record.keys())
            extra = sorted(record.keys() - FIELDS)
            if missing:
                issues.append(f"missing field(s): {', '.join(missing)}")
            if extra:
                issues.append(f"unexpected field(s): {', '.join(extra)}")
            seq = record.get("seq")
            if type(seq) is not int:
                issues.append("seq is not an integer")
            elif seq != expected_seq:
                issues.append(f"seq {seq}, expected {expected_seq} (line removed, inserted or "
                              "moved)")
            if record.get("prev_hash") != prev_hash:
                issues.append("prev_hash does not match the previous record's hash (chain broken)")
            stored = record.get("hash")
            try:
                computed = record_hash(record)
                form_ok = canonical(record).encode("ascii") == text
            except (TypeError, ValueError):
                computed, form_ok = "", False
            if stored != computed:
                issues.append("hash does not match the record's content (edited)")
            elif not form_ok:
                issues.append("not in canonical form (edited)")
            if issues:
                problem(lineno, "; ".join(issues))
            # Chain on from what this line claims, so one bad line is not blamed on every later one.
            prev_hash = stored if isinstance(stored, str) else ""
            expected_seq = (seq if type(seq) is int else expected_seq) + 1
        if expect_head is not None and prev_hash != expect_head:
            problem(lineno, "the log does not end at the expected head hash (lines cut from the "
                            "end, or a different log)")
    return VerifyReport(label, not problems, records, problems,
                        prev_hash if _HEX64.match(prev_hash or "") else GENESIS)
