"""structlog setup: JSON lines, PHI-safe, cheap when a level is filtered out."""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

from shoal.observability.phi import drop_raw_text

LOGGER_NAME = "shoal"


def get_logger() -> Any:
    return structlog.get_logger(LOGGER_NAME)


def processors() -> list[Any]:
    """The processor chain shoal expects: context, level, time, PHI filter, then JSON."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        drop_raw_text,
        structlog.processors.dict_tracebacks,
        structlog.processors.JSONRenderer(),
    ]


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """Send shoal's events as JSON lines to ``stream`` (stderr by default).

    Applications that configure structlog themselves should include
    :func:`shoal.observability.drop_raw_text` in their chain before the renderer instead.
    """
    numeric = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=processors(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.WriteLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
