"""Structured events: where they go (nowhere until the application configures logging), the PHI
filter, and the CLI's summary of repeated warnings. Every event is free of raw input. (Summaries
of run results are :mod:`shoal.graphs.report`.)"""

from shoal.observability.logging import configure_logging, get_logger, processors
from shoal.observability.phi import TEXT_FIELDS, drop_raw_text, guarding

__all__ = [
    "TEXT_FIELDS",
    "configure_logging",
    "drop_raw_text",
    "get_logger",
    "guarding",
    "processors",
]
