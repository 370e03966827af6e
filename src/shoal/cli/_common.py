"""What the commands share: plain error lines on stderr and loading a graph with exit code 2."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import typer
from rich.console import Console

from shoal.errors import ShoalError, SpecError
from shoal.graphs.loader import load_spec
from shoal.graphs.runtime import Graph
from shoal.graphs.spec import GraphSpec
from shoal.policies.escalation import LedgerStore, open_ledger, outbox_path

_err = Console(stderr=True)
"""Progress bars and summaries that must not mix with results on stdout."""


def _fail(message: str) -> None:
    # Plain text, never wrapped: error lines are FILE:LINE:COL for editors and scripts.
    typer.echo(message, err=True)


@contextlib.contextmanager
def _graph_errors(path: Path) -> Iterator[None]:
    """Exit 2 for a graph file that cannot run: each problem as ``FILE:LINE:COL`` and their
    count, or the one error (a model that cannot be loaded) after the file's name."""
    try:
        yield
    except SpecError as exc:
        for issue in exc.issues:
            _fail(str(issue))
        _fail(f"{len(exc.issues)} error(s)")
        raise typer.Exit(2) from None
    except ShoalError as exc:
        _fail(f"{path}: {exc.message}")
        raise typer.Exit(2) from None


def _load(path: Path) -> Graph:
    with _graph_errors(path):
        return Graph.from_yaml(path)


def _spec_and_store(path: Path) -> tuple[GraphSpec, Path]:
    """The checked graph spec and where its outbox and ledger are; no model is loaded."""
    with _graph_errors(path):
        spec, _ = load_spec(path)
    configured = spec.escalation.outbox if spec.escalation is not None else None
    return spec, outbox_path(configured, path.parent)


def _ledger(path: Path) -> tuple[GraphSpec, LedgerStore | None]:
    """The checked spec and its ledger; None (and a line saying so) when nothing was ever
    answered."""
    spec, store = _spec_and_store(path)
    ledger = open_ledger(store)
    if not ledger.exists():
        typer.echo(f"{store}: no ledger yet (no escalation was ever answered)")
        return spec, None
    return spec, ledger
