"""``shoal audit``: the hash-chained audit log."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shoal.cli._common import _fail

audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)


@audit_app.command("verify")
def audit_verify(
    path: Annotated[Path, typer.Argument(help="An audit log (JSONL) written by shoal.")],
    expect_head: Annotated[str | None, typer.Option(
        help="The last record's hash, kept elsewhere: also catches lines cut from the end.")]
    = None,
) -> None:
    """Check every record's hash, chain and sequence; exit 1 naming the first bad line."""
    from shoal.policies.audit import verify  # startup: loads only for `shoal audit verify`

    if not path.is_file():
        _fail(f"{path}: no such file")
        raise typer.Exit(2)
    report = verify(path, expect_head=expect_head)
    if report.ok:
        typer.echo(str(report))
        return
    _fail(str(report))
    raise typer.Exit(1)
