"""``shoal audit``: the hash-chained audit log."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from shoal.cli._common import _fail

audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)


@audit_app.command("verify")
def audit_verify(
    path: Annotated[Path | None, typer.Argument(
        help="An audit log (JSONL) written by shoal; without it, the chain in $SHOAL_DB.")]
    = None,
    expect_head: Annotated[str | None, typer.Option(
        help="The last record's hash, kept elsewhere: also catches lines cut from the end.")]
    = None,
) -> None:
    """Check every record's hash, chain and sequence; exit 1 naming the first bad line."""
    from shoal.policies.audit import (  # startup: loads only for `shoal audit verify`
        PostgresAuditLog,
        verify,
    )
    from shoal.store import state_url  # startup, as above

    if path is None:
        url = state_url()
        if url is None:
            _fail("give an audit log file, or set SHOAL_DB to verify the chain in Postgres")
            raise typer.Exit(2)
        chain = PostgresAuditLog(url)
        with tempfile.TemporaryDirectory(prefix="shoal-audit-") as tmp:
            exported = Path(tmp) / "audit.jsonl"
            chain.export(exported)
            report = verify(exported, expect_head=expect_head)
        shown = str(report).replace(str(exported), chain.where)
        if report.ok:
            typer.echo(shown)
            return
        _fail(shown)
        raise typer.Exit(1)
    if not path.is_file():
        _fail(f"{path}: no such file")
        raise typer.Exit(2)
    report = verify(path, expect_head=expect_head)
    if report.ok:
        typer.echo(str(report))
        return
    _fail(str(report))
    raise typer.Exit(1)
