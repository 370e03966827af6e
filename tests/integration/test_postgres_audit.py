"""The audit chain in a real Postgres (``SHOAL_DB``): processes appending at once make one
unbroken chain, and ``shoal audit verify`` checks it and finds an edited record."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import psycopg
import pytest
from typer.testing import CliRunner

from shoal.cli import app
from shoal.policies.audit import AuditCheck, AuditWriter, PostgresAuditLog, audit_log, verify

pytestmark = [pytest.mark.integration]
runner = CliRunner()


def _append(log: AuditWriter, worker: int, n: int) -> str:
    for i in range(n):
        log.append(run_id=f"run-{worker}", record_id=f"r{worker}-{i}", node="comply",
                   agent="compliance_checker", decision="pass",
                   checks=(AuditCheck("no_identifiers", True, count=0),))
    return log.head


def append_many(url: str, worker: int, n: int, path: str) -> str:
    """In a worker process: ``n`` decisions through ``audit_log`` with ``SHOAL_DB`` set; the
    head this process saw last."""
    os.environ["SHOAL_DB"] = url  # the worker's own environment
    return _append(audit_log(path), worker, n)


def test_three_processes_write_one_unbroken_chain(postgres_url: str, tmp_path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    with ProcessPoolExecutor(3, mp_context=multiprocessing.get_context("spawn")) as pool:
        heads = list(pool.map(append_many, [postgres_url] * 3, range(3), [30] * 3,
                              [str(tmp_path / "file-log.jsonl")] * 3))
    exported = tmp_path / "audit.jsonl"
    assert PostgresAuditLog(postgres_url).export(exported) == 90
    report = verify(exported)
    assert report.ok and report.records == 90
    last = exported.read_text().splitlines()[-1]
    assert any(h in last for h in heads)  # the chain's head is one writer's last record
    assert not (tmp_path / "file-log.jsonl").exists()  # the chain went to Postgres only
    monkeypatch.setenv("SHOAL_DB", postgres_url)
    checked = runner.invoke(app, ["audit", "verify"])
    assert checked.exit_code == 0, checked.output
    assert "90" in checked.output and "postgresql://" in checked.output


def test_an_edited_record_is_found(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _append(PostgresAuditLog(postgres_url), 0, 5)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE shoal_audit SET line = replace(line, '\"pass\"', '\"fail\"') "
                     "WHERE seq = 3")
    monkeypatch.setenv("SHOAL_DB", postgres_url)
    checked = runner.invoke(app, ["audit", "verify"])
    assert checked.exit_code == 1
    assert ":3: hash does not match" in checked.output  # the record an UPDATE edited


def test_without_a_file_or_shoal_db_verify_says_what_to_give() -> None:
    checked = runner.invoke(app, ["audit", "verify"])
    assert checked.exit_code == 2 and "SHOAL_DB" in checked.output
