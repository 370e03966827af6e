"""Model kinds: what a ``models:`` entry's ``kind`` names, and how its backend is built.

A :class:`ModelKind` ties a kind name to its pydantic spec class (``kind: Literal[name]``), the
protocols its backends serve, whether it sends data off the machine, the optional extra it
needs, and the function that builds a backend from a validated spec. The four built-in kinds
are registered here; a package adds one through the entry-point group ``shoal.models``::

    [project.entry-points."shoal.models"]
    my-kind = "my_pkg.models:KIND"        # a ModelKind, or a function returning one

Plugins are looked up lazily, the first time a graph names a kind that is not registered.
Building is lazy too: the backend modules import llama.cpp, ONNX Runtime or an HTTP client only
when a model is built.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeAlias, TypeVar, Union, get_args

from pydantic import BaseModel, Discriminator, Tag, ValidationError, WithJsonSchema

from shoal import extras
from shoal.errors import BackendError
from shoal.models.base import PROTOCOLS, Backend, Classifier, Embedder, Generator, LabelScorer
from shoal.models.ensemble import EnsembleClassifier  # noqa: F401  registers its kind
from shoal.models.llamacpp import LlamaCppModel
from shoal.models.onnx import OnnxEmbedder, load_classifier
from shoal.models.openai_compat import OpenAICompatModel
from shoal.models.specs import (
    LlamaCppModelSpec,
    OnnxClassifierModelSpec,
    OnnxEmbedderModelSpec,
    OpenAIModelSpec,
    PluginModelSpec,
    ort_settings,
    resolve_path,
)

__all__ = [
    "BUILTIN_KINDS",
    "ENTRY_POINT_GROUP",
    "MODEL_KINDS",
    "MODEL_SPEC_TAGS",
    "ModelKind",
    "ModelSpec",
    "PluginModelSpec",
    "build_model",
    "get_kind",
    "is_remote",
    "kind_load_error",
    "kind_name_of",
    "kind_names",
    "kinds_serving",
    "register_kind",
    "reset_plugin_cache",
    "unregister_kind",
    "validate_spec",
]

ENTRY_POINT_GROUP = "shoal.models"

SpecT = TypeVar("SpecT", bound=BaseModel)

_KIND_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelKind(Generic[SpecT]):
    """One kind of ``models:`` entry.

    ``spec`` is a pydantic model with ``kind: Literal[name]`` (unknown keys should fail: give it
    ``extra="forbid"``); its validation errors are reported at ``FILE:LINE:COL`` like every other
    mistake in a graph. ``protocols`` are the ones of :mod:`shoal.models.base` (``Generator``,
    ``LabelScorer``, ``Classifier``, ``Embedder``) every backend of the kind implements; the
    compiler checks a node's agent against them. ``remote`` means the backend sends what it is
    given off this machine: the compiler then demands a privacy masker on every path to it, and
    the runtime puts it behind the egress guard. ``extra`` is the key of
    :data:`shoal.extras.EXTRAS` (``shoal[extra]``) the kind needs; a graph using it fails to
    compile, naming the extra, while it is not installed. ``build(spec, base_dir)`` makes the
    backend from a validated spec; ``base_dir`` is the graph file's folder (None for a spec built
    in Python), for relative paths.
    """

    name: str
    spec: type[SpecT]
    protocols: tuple[type, ...]
    build: Callable[[SpecT, Path | None], Backend]
    remote: bool = False
    extra: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _KIND_NAME.match(self.name):
            raise ValueError(f"model kind name {self.name!r} must start with a letter and hold "
                             "only letters, digits, '_', '-' or '.'")
        where = f"model kind {self.name!r}"
        if not (isinstance(self.spec, type) and issubclass(self.spec, BaseModel)):
            raise TypeError(f"{where}: spec must be a pydantic model class, got {self.spec!r}")
        field = self.spec.model_fields.get("kind")
        if field is None or get_args(field.annotation) != (self.name,):
            raise TypeError(f"{where}: {self.spec.__name__} must declare "
                            f"kind: Literal[{self.name!r}]")
        if not self.protocols or any(p not in PROTOCOLS for p in self.protocols):
            known = ", ".join(p.__name__ for p in PROTOCOLS)
            raise TypeError(f"{where}: protocols must be one or more of {known}")
        if not callable(self.build):
            raise TypeError(f"{where}: build must be callable")
        if self.extra is not None and self.extra not in extras.EXTRAS:
            raise ValueError(f"{where}: unknown extra {self.extra!r}; known: "
                             f"{', '.join(sorted(extras.EXTRAS))}")

    def serves(self, protocol: type) -> bool:
        return protocol in self.protocols


def _build_onnx_classifier(spec: OnnxClassifierModelSpec, base_dir: Path | None) -> Backend:
    # Any classifier kind the sidecar names: tfidf-logreg, embedding-centroid, or
    # text-embedding-ensemble (registered by the import of shoal.models.ensemble above, which
    # `import shoal.models` always runs).
    return load_classifier(resolve_path(spec.path, base_dir), batch=spec.batch,
                           ort=ort_settings(spec))


def _build_openai(spec: OpenAIModelSpec, base_dir: Path | None) -> Backend:
    return OpenAICompatModel.from_spec(spec)


BUILTIN_KINDS: tuple[ModelKind[Any], ...] = (
    ModelKind(name="llamacpp", spec=LlamaCppModelSpec, protocols=(Generator, LabelScorer),
              build=LlamaCppModel.from_spec, extra="llamacpp"),
    ModelKind(name="onnx-classifier", spec=OnnxClassifierModelSpec, protocols=(Classifier,),
              build=_build_onnx_classifier),
    ModelKind(name="onnx-embedder", spec=OnnxEmbedderModelSpec, protocols=(Embedder,),
              build=OnnxEmbedder.from_spec),
    ModelKind(name="openai", spec=OpenAIModelSpec, protocols=(Generator,),
              build=_build_openai, remote=True),
)
MODEL_KINDS: tuple[str, ...] = tuple(k.name for k in BUILTIN_KINDS)
"""The built-in kinds. Every registered kind, plugins included: :func:`kind_names`."""

# --- the spec union -----------------------------------------------------------------------------

_PLUGIN_TAG = "<plugin>"
MODEL_SPEC_TAGS: frozenset[str] = frozenset({*MODEL_KINDS, _PLUGIN_TAG})
"""The union tags pydantic puts into the error locations of a ``models:`` entry."""


def _spec_tag(value: Any) -> str:
    kind = value.get("kind") if isinstance(value, Mapping) else getattr(value, "kind", None)
    return kind if isinstance(kind, str) and kind in MODEL_KINDS else _PLUGIN_TAG


def _plugin_json_schema() -> dict[str, Any]:
    # Any kind but a built-in one, so that exactly one branch of the union matches an entry.
    schema = PluginModelSpec.model_json_schema()
    schema["properties"]["kind"]["not"] = {"enum": list(MODEL_KINDS)}
    return schema


if TYPE_CHECKING:  # the same classes, spelled out for type checkers
    ModelSpec: TypeAlias = (LlamaCppModelSpec | OnnxClassifierModelSpec | OnnxEmbedderModelSpec
                            | OpenAIModelSpec | PluginModelSpec)
else:
    ModelSpec = Annotated[
        Union[(  # built at run time from the built-in kinds
            *(Annotated[k.spec, Tag(k.name)] for k in BUILTIN_KINDS),
            Annotated[PluginModelSpec, Tag(_PLUGIN_TAG), WithJsonSchema(_plugin_json_schema())],
        )],
        Discriminator(_spec_tag),
    ]
"""A ``models:`` entry: the spec of a built-in kind, or a :class:`PluginModelSpec` for any other
kind (validated against that kind's own spec by the compiler)."""

# --- the registry -------------------------------------------------------------------------------

_registry: dict[str, ModelKind[Any]] = {}
_lock = threading.Lock()
_entry_points_loaded = False
_load_errors: dict[str, str] = {}


def register_kind(kind: ModelKind[Any], *, replace: bool = False) -> None:
    """Register a model kind under its name. Re-registering the same object is a no-op."""
    if not isinstance(kind, ModelKind):
        raise TypeError(f"register_kind needs a ModelKind, got {type(kind).__name__}")
    with _lock:
        existing = _registry.get(kind.name)
        if existing is not None and existing is not kind and not replace:
            raise ValueError(f"model kind {kind.name!r} is already registered")
        _registry[kind.name] = kind
        _load_errors.pop(kind.name, None)


def unregister_kind(name: str) -> None:
    """Forget a registered kind (for tests). Built-in kinds cannot be removed."""
    if name in MODEL_KINDS:
        raise ValueError(f"model kind {name!r} is built in")
    with _lock:
        _registry.pop(name, None)
        _load_errors.pop(name, None)


def _load_entry_points() -> None:
    """Each ``shoal.models`` entry point names a ModelKind, or a function returning one, under
    the kind's own name. One that fails to load is remembered (:func:`kind_load_error`), so a
    broken plugin makes only the graphs that use it fail."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _registry:
            continue
        try:
            target = ep.load()
            kind = target if isinstance(target, ModelKind) else target()
            if not isinstance(kind, ModelKind):
                raise TypeError(f"{ep.value} is not a ModelKind or a function returning one")
            if kind.name != ep.name:
                raise ValueError(f"{ep.value} is model kind {kind.name!r}, not {ep.name!r}")
            register_kind(kind)
        except Exception as exc:  # a plugin's bug must not break graphs that do not use it
            _load_errors[ep.name] = f"{type(exc).__name__}: {exc}"


def get_kind(name: str) -> ModelKind[Any] | None:
    """The kind registered as ``name``, looking at built-ins, then at plugins."""
    found = _registry.get(name)
    if found is None:
        _load_entry_points()
        found = _registry.get(name)
    return found


def kind_load_error(name: str) -> str | None:
    """Why the ``shoal.models`` entry point ``name`` failed to load, if it did."""
    get_kind(name)
    return _load_errors.get(name)


def kind_names() -> list[str]:
    """Every registered kind, plugins included, sorted."""
    _load_entry_points()
    return sorted(_registry)


def kinds_serving(protocol: type) -> list[str]:
    """The registered kinds (plugins included) whose backends serve ``protocol``, sorted."""
    _load_entry_points()
    return sorted(name for name, kind in _registry.items() if kind.serves(protocol))


def reset_plugin_cache() -> None:
    """Look at the ``shoal.models`` entry points again on the next miss (after installs)."""
    global _entry_points_loaded
    _entry_points_loaded = False
    _load_errors.clear()


for _kind in BUILTIN_KINDS:
    register_kind(_kind)

# --- specs --------------------------------------------------------------------------------------


def kind_name_of(spec: object) -> str | None:
    """The ``kind`` of a ``models:`` entry: a spec, or raw data that failed validation."""
    kind = spec.get("kind") if isinstance(spec, Mapping) else getattr(spec, "kind", None)
    return kind if isinstance(kind, str) else None


def is_remote(spec: object) -> bool:
    """Whether the model of a ``models:`` entry sends what it is given off this machine."""
    name = kind_name_of(spec)
    kind = get_kind(name) if name is not None else None
    return kind is not None and kind.remote


def _raw(spec: object) -> Any:
    if isinstance(spec, PluginModelSpec):
        return spec.config
    return spec


def validate_spec(spec: object) -> BaseModel:
    """A ``models:`` entry as an instance of its kind's spec class (a plugin's entry arrives as
    a :class:`PluginModelSpec`). Raises BackendError for an unknown kind or a bad entry."""
    name = kind_name_of(spec)
    kind = get_kind(name) if name is not None else None
    if kind is None:
        raise BackendError(f"unknown model kind {name!r}", backend=str(name))
    if isinstance(spec, BaseModel) and isinstance(spec, kind.spec):
        return spec
    try:
        typed: BaseModel = kind.spec.model_validate(_raw(spec))
    except ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'entry'}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False))
        raise BackendError(f"bad {kind.name!r} model entry: {errors}",
                           backend=kind.name) from None
    return typed


def build_model(spec: object, base_dir: Path | None = None) -> Backend:
    """The backend for one ``models:`` entry; a relative path in it is relative to
    ``base_dir``. Raises MissingExtra when the kind's extra is not installed."""
    typed = validate_spec(spec)
    kind = get_kind(str(kind_name_of(typed)))
    assert kind is not None, "validate_spec found it"
    if kind.extra is not None:
        extras.require(kind.extra, f"model kind {kind.name!r}")
    return kind.build(typed, base_dir)
