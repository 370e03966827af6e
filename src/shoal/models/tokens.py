"""Completion tokens generated in this process, per backend.

``shoal serve`` exports the count as ``shoal_model_generated_tokens_total{backend}``: with it a
load test compares what the server generated per second with what the model can generate alone.
Both the in-process llama.cpp models and the OpenAI-compatible backends (the planner, as seen
from this process: the tokens its answers reported) are counted.
"""

from __future__ import annotations

import threading

__all__ = ["count_generated", "generated_tokens"]

_generated: dict[str, int] = {}
_lock = threading.Lock()  # llama.cpp counts from model-pool threads


def count_generated(backend: str, tokens: int) -> None:
    """Add ``tokens`` completion tokens to ``backend``'s count."""
    if tokens <= 0:
        return
    with _lock:
        _generated[backend] = _generated.get(backend, 0) + tokens


def generated_tokens() -> dict[str, int]:
    """Completion tokens generated so far in this process, per backend."""
    with _lock:
        return dict(_generated)
