"""Helpers the store conformance suites share."""

from __future__ import annotations

import threading
from collections.abc import Callable


def together(target: Callable[[int], None], n: int) -> None:
    """``target(0)`` ... ``target(n - 1)`` in threads at the same time; back when all are done
    (each thread stands in for another process on the same store)."""
    threads = [threading.Thread(target=target, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
