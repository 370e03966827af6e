"""Each model file loaded once per process, and one bounded thread pool for blocking model calls.

Model libraries (llama.cpp, ONNX Runtime) block and release the GIL while they compute, so they
run in threads; the pool is sized to the machine so that a batch of thousands queues instead of
oversubscribing two cores. A call that times out raises at once; its thread finishes in the
background (a backend that can, such as llama.cpp, is also told to stop early).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from shoal.errors import BackendError, BackendTimeout, ShoalError

T = TypeVar("T")

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()
_instances: dict[Hashable, Any] = {}
_instance_locks: dict[Hashable, threading.Lock] = {}
_registry_lock = threading.Lock()


def pool_size() -> int:
    """Threads for model calls: the machine's cores, overridable with SHOAL_MODEL_THREADS."""
    configured = os.environ.get("SHOAL_MODEL_THREADS")
    if configured:
        return max(1, int(configured))
    return max(1, os.cpu_count() or 1)


def executor() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=pool_size(),
                                           thread_name_prefix="shoal-model")
        return _executor


async def run_blocking(
    fn: Callable[..., T],
    *args: Any,
    backend: str,
    timeout_s: float | None,
    on_timeout: Callable[[], None] | None = None,
    **kwargs: Any,
) -> T:
    """Run ``fn`` in the model pool; raise BackendTimeout after ``timeout_s``.

    ``on_timeout`` is called when the caller gives up (time-out or cancellation), so a backend can
    ask its library to stop; the pool thread is then freed as soon as the library returns.
    """
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(executor(), functools.partial(fn, *args, **kwargs))
    try:
        if timeout_s is None:
            return await future
        return await asyncio.wait_for(future, timeout_s)
    except TimeoutError:
        if on_timeout is not None:
            on_timeout()
        raise BackendTimeout(backend=backend, timeout_s=timeout_s or 0.0) from None
    except asyncio.CancelledError:
        if on_timeout is not None:
            on_timeout()
        raise


def shared(key: Hashable, factory: Callable[[], T]) -> T:
    """The one instance for ``key`` in this process, made by ``factory`` on first use.

    Two callers asking for the same key at once wait for one load, not two.
    """
    with _registry_lock:
        if key in _instances:
            return _instances[key]  # type: ignore[no-any-return]
        lock = _instance_locks.setdefault(key, threading.Lock())
    with lock:
        with _registry_lock:
            if key in _instances:
                return _instances[key]  # type: ignore[no-any-return]
        instance = factory()
        with _registry_lock:
            _instances[key] = instance
        return instance


def peek(key: Hashable) -> Any | None:
    """The instance for ``key`` if it is loaded already, else None (never loads)."""
    with _registry_lock:
        return _instances.get(key)


def loaded() -> list[Hashable]:
    """Keys of the models loaded in this process (for readiness checks and tests)."""
    with _registry_lock:
        return list(_instances)


def forget(key: Hashable) -> None:
    """Drop a shared instance (tests; reloading a file that changed on disk)."""
    with _registry_lock:
        _instances.pop(key, None)


@contextlib.contextmanager
def map_errors(backend: str) -> Iterator[None]:
    """Turn a model library's exceptions into shoal errors, chained to the original.

    The message keeps only the exception's type and, for OS errors, the OS's reason: library
    messages can quote the prompt.
    """
    try:
        yield
    except ShoalError:
        raise
    except FileNotFoundError as exc:
        raise BackendError(f"model file not found: {exc.filename}", backend=backend) from exc
    except OSError as exc:
        raise BackendError(f"{type(exc).__name__}: {exc.strerror or 'I/O error'}",
                           backend=backend) from exc
    except (ValueError, RuntimeError, TypeError, KeyError, IndexError) as exc:
        raise BackendError(f"{type(exc).__name__} from the model library",
                           backend=backend) from exc
