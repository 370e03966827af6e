"""Repeated warnings, summarised: the first one is shown, the rest are counted.

During a planner outage every retry of every record logs a warning (``planner_retry``,
``escalation_queued``), hundreds per batch between the progress bar's updates. The command line
wants to know that it is happening, how often and since when, not each occurrence.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import structlog

KEY_FIELDS = ("backend", "node")
"""Besides the event name, what tells two warnings apart: one planner's outage is not another's,
and a node's repeated failure is not another node's. Per-record fields (record_id, attempt) are
left out on purpose: they differ on every repeat."""

Summary = dict[str, Any]


@dataclass(slots=True)
class _Burst:
    fields: dict[str, Any]
    level: str
    repeated: int = 0
    first: Any = None
    last: Any = None
    since: float = 0.0
    """Monotonic time of the first counted repeat, for the interval."""

    def summary(self) -> Summary:
        return {**self.fields, "repeated": self.repeated, "first": self.first,
                "last": self.last, "level": self.level}


@dataclass(slots=True)
class RepeatSummary:
    """A structlog processor (put it after the PHI filter, before the renderer).

    Only events at ``levels`` take part; others pass untouched. A warning whose key (event name
    plus the ``backend`` and ``node`` fields it has) is not held yet passes and is held from
    then on; repeats of a held key are dropped and counted. A summary line, ``{"event": name,
    (backend, node,) "repeated": N, "first": ts, "last": ts, "level": "warning"}``, goes to
    ``emit`` and releases the key (its next occurrence is shown in full again):

    - for every held key with repeats, when a warning with a key not held yet arrives (what
      changed is shown after what repeated before it);
    - for one key, at its first repeat more than ``interval_s`` after its first counted one (a
      server's outage still shows up while it lasts);
    - for every held key with repeats, on :meth:`flush` (the end of a command).

    ``repeated`` counts only the dropped events: N identical warnings are the first one plus a
    summary with ``repeated`` = N - 1; ``first`` and ``last`` are the timestamps of the first and
    last dropped one.
    """

    emit: Callable[[Summary], None]
    levels: frozenset[str] = frozenset({"warning"})
    interval_s: float | None = 60.0
    clock: Callable[[], float] = time.monotonic
    _held: dict[tuple[Any, ...], _Burst] = field(default_factory=dict)
    # Events come from the event loop and from worker threads (asyncio.to_thread).
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, logger: Any, method_name: str,
                 event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        level = event_dict.get("level", method_name)
        if level not in self.levels:
            return event_dict
        present = {name: event_dict[name] for name in KEY_FIELDS if name in event_dict}
        # repr: a field's value need not be hashable, and 1 and "1" are different backends.
        key = (level, event_dict.get("event"), *(repr(present.get(n)) for n in KEY_FIELDS))
        with self._lock:
            burst = self._held.get(key)
            if burst is None:
                due = self._release(k for k, b in self._held.items() if b.repeated)
                self._held[key] = _Burst({"event": event_dict.get("event"), **present}, level)
                self._write(due)
                return event_dict
            now = self.clock()
            stamp = event_dict.get("timestamp")
            if not burst.repeated:
                burst.first, burst.since = stamp, now
            burst.repeated += 1
            burst.last = stamp
            if self.interval_s is not None and now - burst.since >= self.interval_s:
                self._write(self._release([key]))
        raise structlog.DropEvent

    def flush(self) -> None:
        """Emit the summary of every key with repeats still being counted."""
        with self._lock:
            self._write(self._release(k for k, b in self._held.items() if b.repeated))

    def _release(self, keys: Iterable[tuple[Any, ...]]) -> list[_Burst]:
        return [self._held.pop(key) for key in list(keys)]

    def _write(self, bursts: list[_Burst]) -> None:
        for burst in bursts:
            self.emit(burst.summary())
