"""structlog setup: quiet unless the application asks, PHI-safe, cheap when a level is filtered
out.

shoal is a library: it emits events and the application decides where they go (structlog's rule
for libraries, and the stdlib's NullHandler pattern). Each event goes, decided at each call
because the application may configure logging after importing shoal:

1. after :func:`configure_logging` (or the CLI's :func:`configure_cli_logging`), while
   structlog still holds the chain it installed: to that stream;
2. else, if the application configured structlog: through the application's configuration;
3. else: to the stdlib logger ``shoal`` as one PHI-filtered JSON string per record. That logger
   has a ``NullHandler``, so nothing prints unless the application configured ``logging``.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import sys
from typing import Any, TextIO

import orjson
import structlog
from structlog.typing import Processor

from shoal.observability.phi import drop_raw_text
from shoal.observability.repeats import RepeatSummary, Summary

LOGGER_NAME = "shoal"

_stdlib = logging.getLogger(LOGGER_NAME)
if not any(isinstance(handler, logging.NullHandler) for handler in _stdlib.handlers):
    # Handlers are the application's business. This one also keeps logging.lastResort from
    # printing shoal's warnings to stderr when the application configured nothing.
    _stdlib.addHandler(logging.NullHandler())


def _dumps(obj: Any, **_: Any) -> str:
    # orjson renders an event in a third of the stdlib's time; events are per node, per run.
    return orjson.dumps(obj, default=str).decode()


def _chain(exceptions: Processor, renderer: Processor) -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # Tracebacks are rendered before the PHI filter so it scrubs them too, and without frame
        # locals, which would hold prompts and inputs.
        exceptions,
        drop_raw_text,
        renderer,
    ]


def processors() -> list[Any]:
    """The processor chain shoal expects: context, level, time, PHI filter, then JSON."""
    return _chain(
        structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)),
        structlog.processors.JSONRenderer(serializer=_dumps),
    )


_STDLIB_CHAIN = processors()
"""The stdlib route's chain (3. above), built once: no configuration changes it."""

_installed: object = None
"""The processor list shoal last gave ``structlog.configure``. While structlog holds this very
list, shoal's configuration applies; once the application configures structlog, its own does."""

_repeats: RepeatSummary | None = None
"""The CLI's summariser of repeated warnings, flushed when the command ends."""

_atexit_registered = False


def _to_stdlib(level: int, method: str, event: str, kw: dict[str, Any]) -> None:
    # Checked before anything is built: with no logging configured only warnings get this far.
    if not _stdlib.isEnabledFor(level):
        return
    rendered: Any = {"event": event, **kw}
    for step in _STDLIB_CHAIN:
        rendered = step(_stdlib, method, rendered)
    # No exc_info on the record: a handler would print the raw traceback past the PHI filter;
    # the rendered event carries the filtered one. stacklevel: the record names shoal's caller.
    _stdlib.log(level, rendered, stacklevel=3)


class ShoalLogger:
    """shoal's logger: routes each event (see the module's docstring); shoal's own structlog
    logger is rebuilt only when shoal configures logging.

    structlog's lazy proxy rebuilds the logger (processors, output, lock) on every call unless
    caching is on, and caching would pin the first configuration forever. Events are emitted per
    node, so the difference is most of a run's logging cost.
    """

    __slots__ = ("_bound", "_for")

    def __init__(self) -> None:
        self._bound: Any = None
        self._for: object = None

    def _structlog(self) -> Any:
        """The structlog logger to use, or None for the stdlib logger."""
        if not structlog.is_configured():
            return None
        chain = structlog.get_config()["processors"]
        if chain is not _installed:
            return structlog.get_logger(LOGGER_NAME)
        if self._for is not chain:
            self._bound = structlog.get_logger(LOGGER_NAME).bind()
            self._for = chain
        return self._bound

    def debug(self, event: str, **kw: Any) -> None:
        log = self._structlog()
        if log is None:
            _to_stdlib(logging.DEBUG, "debug", event, kw)
        else:
            log.debug(event, **kw)

    def info(self, event: str, **kw: Any) -> None:
        log = self._structlog()
        if log is None:
            _to_stdlib(logging.INFO, "info", event, kw)
        else:
            log.info(event, **kw)

    def warning(self, event: str, **kw: Any) -> None:
        log = self._structlog()
        if log is None:
            _to_stdlib(logging.WARNING, "warning", event, kw)
        else:
            log.warning(event, **kw)

    def error(self, event: str, **kw: Any) -> None:
        log = self._structlog()
        if log is None:
            _to_stdlib(logging.ERROR, "error", event, kw)
        else:
            log.error(event, **kw)


def get_logger() -> ShoalLogger:
    return ShoalLogger()


def _install(chain: list[Processor], level: str, stream: TextIO,
             repeats: RepeatSummary | None) -> None:
    global _installed, _repeats
    numeric = logging.getLevelNamesMapping()[level.upper()]
    flush_repeats()  # what the previous configuration was still counting
    structlog.configure(
        processors=chain,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    _installed, _repeats = chain, repeats


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """Send shoal's events as JSON lines to ``stream`` (stderr by default).

    Without this call shoal prints nothing: its events go to the stdlib logger ``shoal``, or
    through the application's structlog configuration if it has one. Applications that
    configure structlog themselves should include :func:`shoal.observability.drop_raw_text` in
    their chain before the renderer.
    """
    _install(processors(), level, stream or sys.stderr, None)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def configure_cli_logging(level: str = "warning", stream: TextIO | None = None, *,
                          summarise: bool = True) -> None:
    """The ``shoal`` command's logging: events at ``level`` and above to ``stream`` (stderr by
    default), PHI-filtered. JSON lines, or readable lines when the stream is a terminal. With
    ``summarise``, repeated warnings are summarised (:class:`RepeatSummary`); the summary still
    pending is written by :func:`flush_repeats`, which also runs at exit.
    """
    global _atexit_registered
    out = stream or sys.stderr
    renderer: Processor
    exceptions: Processor
    if _is_terminal(out):
        renderer = structlog.dev.ConsoleRenderer(colors=False)
        # ConsoleRenderer prints a string traceback; the PHI filter drops it if it quotes input.
        exceptions = structlog.processors.format_exc_info
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_dumps)
        exceptions = structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False))
    chain = _chain(exceptions, renderer)
    repeats = None
    if summarise:
        writer = structlog.WriteLogger(out)

        def emit(summary: Summary) -> None:
            writer.msg(str(renderer(None, str(summary["level"]), summary)))

        repeats = RepeatSummary(emit)
        chain.insert(-1, repeats)
    _install(chain, level, out, repeats)
    if not _atexit_registered:
        atexit.register(flush_repeats)
        _atexit_registered = True


def flush_repeats() -> None:
    """Write the summary of the repeated warnings still being counted, if any."""
    if _repeats is None:
        return
    # The stream may be closed already: a finished command's log file, a test's capture.
    with contextlib.suppress(ValueError, OSError):
        _repeats.flush()
