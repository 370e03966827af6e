"""GGUF models run in-process by llama.cpp (llama-cpp-python): chat, constrained JSON, label scores.

One ``llama_cpp.Llama`` per (real file path, ``n_ctx``, threads) per process, shared by every
:class:`LlamaCppModel` over that file. A ``Llama`` is not thread-safe, so each loaded file has one
lock, taken inside the pool thread: calls to one file run one at a time, queued in the pool.

Chat format, in order: ``chat_format`` when given; else the file's own template (SmolLM2 carries
ChatML); else the catalog's format for that file (``"gemma"`` for the Gemma base model). A file
with none of these cannot chat: llama-cpp-python would silently fall back to the llama-2 format, so
``generate`` refuses instead. Label scoring needs no chat format.

Time-outs: the caller gets :class:`shoal.BackendTimeout` at once, and the running call is told to
stop (a per-call event checked after every sampled token, and between prompt batches and label
evaluations when scoring), so the pool thread and the file's lock are freed within a token or so.
Evaluating one prompt batch (up to ``n_batch`` = 512 tokens) cannot be interrupted.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import atexit
import functools
import json
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import ValidationError

from shoal.errors import BackendError, OutputValidationError
from shoal.models import catalog, pool
from shoal.models.base import (
    Generation,
    JsonGeneration,
    JsonSchema,
    Message,
    Usage,
    json_schema_of,
    validate_json,
)
from shoal.models.queue import ModelQueue, QueueSettings
from shoal.models.specs import LlamaCppModelSpec, resolve_path
from shoal.models.tokens import count_generated
from shoal.observability.logging import get_logger

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["LlamaCppModel"]

_log = get_logger()

THREADS_ENV = "SHOAL_LLAMA_THREADS"
_FORMATS_WITHOUT_SYSTEM = frozenset({"gemma"})
"""llama-cpp-python chat formats that silently drop ``system`` messages."""


class _Abandoned(Exception):
    """The caller gave up (time-out or cancellation); nobody reads this result."""


@dataclass(slots=True, weakref_slot=True)
class _Loaded:
    """One file loaded in this process, with the lock that serialises calls into it."""

    llm: Any  # llama_cpp.Llama: its annotations are partial, so it stays Any at this boundary
    lock: threading.Lock
    file_format: str | None
    """The format llama-cpp-python picked from the file's own template; None without one."""
    load_ms: float


def default_threads() -> int:
    """Threads per llama.cpp call: $SHOAL_LLAMA_THREADS, else every core."""
    configured = os.environ.get(THREADS_ENV)
    if configured:
        try:
            value = int(configured)
        except ValueError:
            value = 0
        if value < 1:
            raise BackendError(f"{THREADS_ENV} must be a positive integer",
                               backend="llamacpp")
        return value
    return max(1, os.cpu_count() or 1)


@functools.cache
def _llama_class() -> type[Any]:
    """A ``Llama`` whose completions stop when the running call's event is set.

    ``create_chat_completion`` accepts no ``stopping_criteria``, but its chat handlers all call
    ``create_completion`` by keyword; adding ours there keeps llama-cpp-python's own templating,
    stop strings and grammar handling. Defined lazily so ``import shoal`` does not need llama_cpp.
    """
    import llama_cpp

    class StoppableLlama(llama_cpp.Llama):
        stop_event: threading.Event | None = None
        """Set only while a call holds the file's lock; each call brings its own event."""

        def create_completion(self, *args: Any, **kwargs: Any) -> Any:
            event = self.stop_event
            if event is not None:
                criteria = llama_cpp.StoppingCriteriaList(kwargs.get("stopping_criteria") or [])
                criteria.append(lambda _ids, _logits: event.is_set())
                kwargs["stopping_criteria"] = criteria
            return super().create_completion(*args, **kwargs)

    return StoppableLlama


def _gpu_layers(requested: int, backend: str) -> int:
    """``requested`` if this llama.cpp build can offload to a GPU, else 0 with a warning event
    (the model then runs on the CPU, as it would have without the setting)."""
    if requested == 0:
        return 0
    import llama_cpp

    if llama_cpp.llama_supports_gpu_offload():
        return requested
    _log.warning("gpu_unavailable", backend=backend, n_gpu_layers=requested,
                 fallback="cpu", reason="this llama-cpp-python build has no GPU offload")
    return 0


def _load(path: Path, n_ctx: int, threads: int, backend: str, n_gpu_layers: int = 0) -> _Loaded:
    started = time.perf_counter()
    with pool.map_errors(backend):
        cls = _llama_class()
        try:
            # swa_full (llama.cpp's default today, pinned here): a sliding-window cache trimmed to
            # the window cannot be rewound, and score_labels and the prompt cache both rewind.
            llm = cls(model_path=str(path), n_ctx=n_ctx, n_threads=threads,
                      n_threads_batch=threads, n_gpu_layers=n_gpu_layers, swa_full=True,
                      verbose=False)
        except ValueError as exc:
            # llama-cpp-python reports every load failure (bad magic, truncated file, unknown
            # architecture) as ValueError("Failed to load model from file: ...").
            raise BackendError(f"cannot load {path}: not a GGUF model llama.cpp can read",
                               backend=backend) from exc
    has_template = "tokenizer.chat_template" in llm.metadata
    loaded = _Loaded(llm=llm, lock=threading.Lock(),
                     file_format=llm.chat_format if has_template else None,
                     load_ms=(time.perf_counter() - started) * 1000)
    atexit.register(_close_at_exit, weakref.ref(loaded))
    _log.info("model_loaded", backend=backend, path=str(path), n_ctx=n_ctx, threads=threads,
              load_ms=round(loaded.load_ms, 1))
    return loaded


def _close_at_exit(ref: weakref.ref[_Loaded]) -> None:
    """Free the model before interpreter teardown: ``Llama.__del__`` run during teardown finds
    llama_cpp's module globals gone and prints a TypeError for every loaded model."""
    loaded = ref()
    # Pool threads are joined before atexit handlers run; the timeout only guards a stuck call.
    if loaded is not None and loaded.lock.acquire(timeout=5):
        try:
            loaded.llm.close()
        finally:
            loaded.lock.release()


def _catalog_format(path: Path) -> str | None:
    """The catalog's chat format for a file it ships, also when given by path."""
    for e in catalog.CATALOG.values():
        if e.filename == path.name and e.chat_format:
            return e.chat_format
    return None


def _is_known_format(llm: Any, name: str) -> bool:
    from llama_cpp import llama_chat_format

    if name in getattr(llm, "_chat_handlers", {}):  # the file's named templates
        return True
    try:
        llama_chat_format.get_chat_completion_handler(name)
    except llama_chat_format.LlamaChatCompletionHandlerNotFoundException:
        return False
    return True


def _fold_system(messages: Sequence[Message]) -> list[dict[str, str]]:
    """Put system text at the start of the first user message, for formats that drop it."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    rest = [{"role": m["role"], "content": m["content"]} for m in messages
            if m["role"] != "system"]
    if not system:
        return rest
    for m in rest:
        if m["role"] == "user":
            m["content"] = f"{system}\n\n{m['content']}"
            return rest
    return [{"role": "user", "content": system}, *rest]


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class LlamaCppModel:
    """A GGUF model as a :class:`~shoal.models.Generator` and :class:`~shoal.models.LabelScorer`.

    Give exactly one of ``path`` (a GGUF file) or ``model`` (an embedded catalog name, such as
    ``"smollm2-135m-instruct"`` or ``"gemma3-270m"``). The file is loaded here, once per process.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        model: str | None = None,
        n_ctx: int = 2048,
        threads: int | None = None,
        chat_format: str | None = None,
        queue: QueueSettings | None = None,
        n_gpu_layers: int = 0,
    ) -> None:
        if path is not None and model is None:
            resolved = Path(path).expanduser()
            catalog_format = _catalog_format(resolved)
        elif model is not None and path is None:
            resolved = catalog.resolve(model)
            catalog_format = catalog.entry(model).chat_format
        else:
            raise ValueError("give exactly one of path (a GGUF file) or model (catalog name)")
        self.name = f"llamacpp:{resolved.stem}"
        if not resolved.is_file():
            raise BackendError(f"model file not found: {resolved}", backend=self.name)
        self.path = resolved.resolve()
        self.n_ctx = n_ctx
        self.threads = threads or default_threads()
        self.n_gpu_layers = _gpu_layers(n_gpu_layers, self.name)
        self._loaded: _Loaded = pool.shared(
            ("llamacpp", str(self.path), n_ctx, self.threads, self.n_gpu_layers),
            lambda: _load(self.path, n_ctx, self.threads, self.name, self.n_gpu_layers),
        )
        settings = queue or QueueSettings()
        self.queue: ModelQueue = pool.shared(
            ("llamacpp-queue", str(self.path), n_ctx, self.threads, self.n_gpu_layers, settings),
            lambda: ModelQueue(self.name, settings))
        if chat_format is not None and not _is_known_format(self._loaded.llm, chat_format):
            raise BackendError(f"unknown chat_format {chat_format!r}", backend=self.name)
        self.chat_format: str | None = chat_format or self._loaded.file_format or catalog_format
        """The llama-cpp-python chat format used by ``generate``; None: this file cannot chat."""

    @classmethod
    def from_spec(cls, spec: LlamaCppModelSpec, base_dir: Path | None) -> LlamaCppModel:
        """The model of a ``kind: llamacpp`` spec entry; a relative path is relative to
        ``base_dir`` (the YAML file's folder)."""
        path: Path | None = None
        if spec.path is not None:
            path = resolve_path(spec.path, base_dir)
        return cls(path, model=spec.model, n_ctx=spec.n_ctx, threads=spec.threads,
                   chat_format=spec.chat_format,
                   queue=QueueSettings(max_concurrency=spec.max_concurrency,
                                       max_queue=spec.max_queue),
                   n_gpu_layers=spec.n_gpu_layers)

    @property
    def load_ms(self) -> float:
        """How long loading the file took (in whichever instance loaded it first)."""
        return self._loaded.load_ms

    def __repr__(self) -> str:
        return f"LlamaCppModel({self.name!r}, n_ctx={self.n_ctx}, threads={self.threads})"

    # --- Generator ------------------------------------------------------------------------------

    async def generate(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        timeout_s: float | None = None,
    ) -> Generation:
        started = time.perf_counter()
        completion = await self._call(self._chat, messages, timeout_s=timeout_s,
                                      max_tokens=max_tokens, temperature=temperature,
                                      response_format=None)
        text, finish_reason, usage = self._unpack(completion)
        return Generation(text=text, model=self.name, usage=usage, finish_reason=finish_reason,
                          latency_ms=(time.perf_counter() - started) * 1000)

    async def generate_json(
        self,
        messages: Sequence[Message],
        schema: JsonSchema,
        *,
        max_tokens: int = 512,
        timeout_s: float | None = None,
    ) -> JsonGeneration:
        started = time.perf_counter()
        response_format = {"type": "json_object", "schema": json_schema_of(schema)}
        completion = await self._call(self._chat, messages, timeout_s=timeout_s,
                                      max_tokens=max_tokens, temperature=0.0,
                                      response_format=response_format)
        text, finish_reason, usage = self._unpack(completion)
        # The grammar guarantees well-formed JSON only if generation ran to its end.
        cut = (f" (cut off by max_tokens={max_tokens})" if finish_reason == "length" else "")
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            # exc.msg and exc.pos describe the failure without quoting the output.
            raise OutputValidationError(
                f"output is not valid JSON{cut}: {exc.msg} at char {exc.pos}",
                node=self.name, attempts=1) from None
        try:
            data = validate_json(schema, parsed)
        except ValidationError as exc:
            where = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '$'}: {e['type']}"
                for e in exc.errors(include_input=False)[:5])
            # Not chained: the pydantic error's text may quote the output.
            raise OutputValidationError(f"output does not match the schema{cut}: {where}",
                                        node=self.name, attempts=1) from None
        except ValueError as exc:
            # validate_json's own checks never quote the data (see shoal.models.base).
            raise OutputValidationError(f"output does not match the schema{cut}: {exc}",
                                        node=self.name, attempts=1) from None
        return JsonGeneration(text=text, model=self.name, usage=usage, data=data,
                              finish_reason=finish_reason,
                              latency_ms=(time.perf_counter() - started) * 1000)

    # --- LabelScorer ----------------------------------------------------------------------------

    async def score_labels(
        self, prompt: str, labels: Sequence[str], *, timeout_s: float | None = None
    ) -> dict[str, float]:
        """P(label | prompt) over ``labels``, from the model's own next-token probabilities.

        Each label is scored as the text that continues the prompt: trailing spaces of the prompt
        move onto the label, and a space is put before the label unless the prompt ends in
        whitespace (a newline) or the label starts with it. A label's score is the sum of its
        tokens' log-probabilities, i.e. log P(label text | prompt); the softmax over labels of
        these sums is the returned distribution. The prompt is evaluated once; each label then
        costs one model step per token after its first.

        Sum, not mean per token: on a 14-message, 7-label triage probe with Gemma 3 270M
        (few-shot prompt, labels of 1-2 tokens) the sum ranked 10/14 right and the mean 8/14; the
        mean favours multi-word labels, whose later tokens are near-certain once the first word
        is chosen. The sum's own bias is towards short labels: keep a label set's lengths alike.
        """
        labels = list(labels)
        if not labels:
            raise ValueError("score_labels needs at least one label")
        if any(not label.strip() for label in labels):
            raise ValueError("labels must be non-empty")
        if len(set(labels)) != len(labels):
            raise ValueError("labels must be distinct")
        if not prompt.strip():
            raise ValueError("score_labels needs a non-empty prompt")
        logprobs = await self._call(self._score, prompt, labels, timeout_s=timeout_s)
        top = max(logprobs)
        # Shifted by the maximum: a softmax that cannot overflow.
        weights = [math.exp(lp - top) for lp in logprobs]
        total = sum(weights)
        return {label: w / total for label, w in zip(labels, weights, strict=True)}

    # --- blocking work, in the model pool -------------------------------------------------------

    async def _call(self, fn: Callable[..., Any], *args: Any, timeout_s: float | None,
                    **kwargs: Any) -> Any:
        """Run ``fn(*args, stop, **kwargs)`` in the pool with a fresh stop event for this call,
        once the model's queue lets it through (no pool thread is held while it waits)."""
        stop = threading.Event()
        return await self.queue.run(fn, *args, stop, timeout_s=timeout_s, on_timeout=stop.set,
                                    **kwargs)

    def _chat(self, messages: Sequence[Message], stop: threading.Event, *, max_tokens: int,
              temperature: float, response_format: dict[str, Any] | None) -> dict[str, Any]:
        fmt = self.chat_format
        if fmt is None:
            raise BackendError(f"{self.path.name} has no chat template: set chat_format "
                               "(for example 'gemma' or 'chatml')", backend=self.name)
        if fmt in _FORMATS_WITHOUT_SYSTEM:
            chat = _fold_system(messages)
        else:
            chat = [{"role": m["role"], "content": m["content"]} for m in messages]
        loaded = self._loaded
        with loaded.lock:
            if stop.is_set():
                raise _Abandoned
            llm = loaded.llm
            # The Llama is shared by every model over this file, each maybe with its own format;
            # setting it under the lock makes it this call's.
            llm.chat_format = fmt
            llm.stop_event = stop
            try:
                with pool.map_errors(self.name):
                    try:
                        result: dict[str, Any] = llm.create_chat_completion(
                            messages=chat, max_tokens=max_tokens, temperature=temperature,
                            response_format=response_format, stream=False)
                    except ValueError as exc:
                        # The one ValueError worth a message of its own (counts, no text).
                        if "exceed context window" not in str(exc):
                            raise
                        raise BackendError(f"the prompt does not fit the context window "
                                           f"(n_ctx={self.n_ctx})", backend=self.name) from exc
            finally:
                llm.stop_event = None
        return result

    def _unpack(self, completion: dict[str, Any]) -> tuple[str, str | None, Usage]:
        try:
            choice = completion["choices"][0]
            text = choice["message"].get("content") or ""
            usage = completion.get("usage") or {}
            made = int(usage.get("completion_tokens", 0))
            count_generated(self.name, made)
            return text, choice.get("finish_reason"), Usage(
                prompt_tokens=int(usage.get("prompt_tokens", 0)), completion_tokens=made)
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise BackendError("unexpected completion shape from llama-cpp-python",
                               backend=self.name) from exc

    def _score(self, prompt: str, labels: list[str], stop: threading.Event) -> list[float]:
        """Summed log-probabilities of each label's tokens after the prompt.

        Not the library's ``logprobs`` path: that needs ``logits_all=True`` and sorts the whole
        vocabulary in Python for every token (seconds on Gemma's 262k vocabulary). With
        ``logits_all=False`` llama.cpp keeps only the last position's logits, so the prompt is
        evaluated once and each label is fed one token at a time after a rewind to the prompt.
        """
        loaded = self._loaded
        with loaded.lock:
            if stop.is_set():
                raise _Abandoned
            llm = loaded.llm
            try:
                with pool.map_errors(self.name):
                    return self._score_locked(llm, prompt, labels, stop)
            except BaseException:
                # A failed or interrupted decode leaves the cache in an unknown state; n_tokens=0
                # makes the next call start from scratch.
                llm.reset()
                raise

    def _score_locked(self, llm: Any, prompt: str, labels: list[str],
                      stop: threading.Event) -> list[float]:
        context = prompt.rstrip(" ")
        sep = "" if context[-1:].isspace() else " "
        # Tokenise prompt+label whole and take the suffix: a tokenizer may merge across the
        # boundary, and P(prompt+label) is what the labels are compared by. special=False: text
        # that looks like a control token stays text.
        fulls = [llm.tokenize((context + ("" if label[0].isspace() else sep) + label).encode(),
                              add_bos=True, special=False) for label in labels]
        ctx = llm.tokenize(context.encode(), add_bos=True, special=False)
        shared = min(_common_prefix(ctx, full) for full in fulls)
        # Every label keeps at least one token of its own to score.
        shared = min(shared, *(len(full) - 1 for full in fulls))
        if shared < 1:
            raise BackendError("prompt too short to score labels", backend=self.name)
        if max(len(full) for full in fulls) > llm.n_ctx():
            raise BackendError(f"prompt and label exceed n_ctx={llm.n_ctx()} tokens",
                               backend=self.name)

        # Reuse what the cache already holds (same prompt as the last call), but always decode
        # at least the prompt's last token so the logits buffer belongs to it.
        keep = min(_common_prefix(list(llm.input_ids[: llm.n_tokens]), fulls[0][:shared]),
                   shared - 1)
        self._rewind(llm, keep)
        batch = int(llm.n_batch)
        for i in range(keep, shared, batch):
            if stop.is_set():
                raise _Abandoned
            llm.eval(fulls[0][i:min(shared, i + batch)])
        after_prompt = _log_softmax(_last_logits(llm, self.name))

        # Invariant: the logits buffer belongs to position n_tokens - 1 (needed by the library's
        # own prompt cache, which samples from it when a later prompt matches exactly).
        scores: list[float] = []
        for full in fulls:
            cont = full[shared:]
            total = float(after_prompt[cont[0]])
            for k in range(1, len(cont)):
                if stop.is_set():
                    raise _Abandoned
                self._rewind(llm, shared + k - 1)
                llm.eval([cont[k - 1]])
                total += float(_log_softmax(_last_logits(llm, self.name))[cont[k]])
            scores.append(total)
        return scores

    def _rewind(self, llm: Any, n: int) -> None:
        """Drop cached positions from ``n`` on (no-op when the cache is already that short)."""
        if n >= llm.n_tokens:
            return
        import llama_cpp

        memory = llama_cpp.llama_get_memory(llm.ctx)
        if memory is None or not llama_cpp.llama_memory_seq_rm(memory, -1, n, -1):
            # Memory that cannot drop a suffix (recurrent models): start over; correct, slower.
            tokens = list(llm.input_ids[:n])
            llm.reset()
            if tokens:
                llm.eval(tokens)
            return
        llm.n_tokens = n


def _last_logits(llm: Any, backend: str) -> npt.NDArray[np.float64]:
    """The logits after the last decoded token, copied (the next decode overwrites them)."""
    import llama_cpp

    ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
    if not ptr:
        raise BackendError("llama.cpp returned no logits", backend=backend)
    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).astype(np.float64)


def _log_softmax(logits: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    shifted = logits - logits.max()
    out: npt.NDArray[np.float64] = shifted - np.log(np.exp(shifted).sum())
    return out
