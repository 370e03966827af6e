"""structlog setup: JSON lines, PHI-safe, cheap when a level is filtered out."""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import orjson
import structlog

from shoal.observability.phi import drop_raw_text

LOGGER_NAME = "shoal"


def _dumps(obj: Any, **_: Any) -> str:
    # orjson renders an event in a third of the stdlib's time; events are per node, per run.
    return orjson.dumps(obj, default=str).decode()


_generation = 0
"""Bumped by configure_logging. 0: shoal never configured logging, so nothing is cached and
whatever the application configured applies on every call."""


class ShoalLogger:
    """shoal's logger: a structlog bound logger, rebuilt only when configure_logging runs.

    structlog's lazy proxy rebuilds the logger (processors, output, lock) on every call unless
    caching is on, and caching would pin the first configuration forever. Events are emitted per
    node, so the difference is most of a run's logging cost.
    """

    __slots__ = ("_bound", "_gen")

    def __init__(self) -> None:
        self._bound: Any = None
        self._gen = -1

    def _logger(self) -> Any:
        if _generation == 0:
            return structlog.get_logger(LOGGER_NAME)
        if self._gen != _generation:
            self._bound = structlog.get_logger(LOGGER_NAME).bind()
            self._gen = _generation
        return self._bound

    def debug(self, event: str, **kw: Any) -> None:
        self._logger().debug(event, **kw)

    def info(self, event: str, **kw: Any) -> None:
        self._logger().info(event, **kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._logger().warning(event, **kw)

    def error(self, event: str, **kw: Any) -> None:
        self._logger().error(event, **kw)


def get_logger() -> ShoalLogger:
    return ShoalLogger()


def processors() -> list[Any]:
    """The processor chain shoal expects: context, level, time, PHI filter, then JSON."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # Tracebacks are rendered before the PHI filter so it scrubs them too, and without frame
        # locals, which would hold prompts and inputs.
        structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)),
        drop_raw_text,
        structlog.processors.JSONRenderer(serializer=_dumps),
    ]


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """Send shoal's events as JSON lines to ``stream`` (stderr by default).

    Applications that configure structlog themselves should include
    :func:`shoal.observability.drop_raw_text` in their chain before the renderer instead (and
    not mix the two: shoal caches its logger per ``configure_logging`` call).
    """
    global _generation
    numeric = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=processors(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.WriteLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
    _generation += 1
