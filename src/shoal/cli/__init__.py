"""The ``shoal`` command: a thin typer layer over the SDK that maps outcomes to exit codes.

Exit codes: 0 done; 1 a run failed (or, with --fail-on-error, some record did); 2 bad spec or usage.

One module per command group: :mod:`~shoal.cli.run` (validate, run, report),
:mod:`~shoal.cli.draw`, :mod:`~shoal.cli.calibrate`, :mod:`~shoal.cli.train_router`,
:mod:`~shoal.cli.models` (models, agents, train-classifier, planner-server),
:mod:`~shoal.cli.mask`, :mod:`~shoal.cli.outbox` (list, drain), :mod:`~shoal.cli.ledger`,
:mod:`~shoal.cli.review`, :mod:`~shoal.cli.learn` (learn, versions, shadow, promote, rollback),
:mod:`~shoal.cli.audit`, :mod:`~shoal.cli.serve` (serve, keys). The bodies of the bigger commands,
:mod:`~shoal.cli.batch` (JSONL batches) and :mod:`~shoal.cli.drain` (draining the outbox), are
imported only when their command runs, so that ``shoal --help`` stays fast.
"""

from __future__ import annotations

import typer

from shoal.cli import (
    audit,
    calibrate,
    draw,
    learn,
    ledger,
    mask,
    models,
    outbox,
    review,
    run,
    serve,
    train_router,
)
from shoal.errors import ShoalError
from shoal.observability.logging import configure_cli_logging

app = typer.Typer(
    name="shoal",
    help="Run a shoal of small local models as a graph; escalate only the hard nodes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _log_warnings() -> None:
    # shoal the library prints nothing unless configured; the command shows warnings on stderr
    # (readable on a terminal, repeats summarised). Commands with --log-level or --log-file
    # configure their own.
    configure_cli_logging("warning")


# In this order in `shoal --help`.
app.command()(run.validate)
app.command()(draw.draw)
app.command()(run.run)
app.command()(run.report)
app.command()(calibrate.calibrate)
app.command("planner-server")(models.planner_server)
app.command()(models.agents)
app.command()(models.models)
app.command()(mask.mask)
app.add_typer(outbox.outbox_app, name="outbox")
app.add_typer(ledger.ledger_app, name="ledger")
app.add_typer(review.review_app, name="review")
app.command("learn")(learn.learn_command)
app.command("versions")(learn.versions_command)
app.add_typer(learn.shadow_app, name="shadow")
app.command("promote")(learn.promote_command)
app.command("rollback")(learn.rollback_command)
app.add_typer(audit.audit_app, name="audit")
app.command("train-classifier")(models.train_classifier)
app.command("train-router")(train_router.train_router_command)
app.command()(serve.serve)
app.add_typer(serve.keys_app, name="keys")


def main() -> None:
    try:
        app()
    except ShoalError as exc:  # a command that did not catch it: one line with its code
        typer.echo(f"error [{exc.code}]: {exc.message}", err=True)
        raise SystemExit(2) from None


__all__ = ["app", "main"]
