"""API keys of ``shoal serve``: a JSON file that holds only hashes.

One file, version 1::

    {"shoal_keys": 1,
     "keys": [{"name": "ops", "sha256": "<64 hex>", "graphs": ["*"], "scopes": ["run"],
               "created": "2026-..."}]}

A key is ``shoal_`` plus ``secrets.token_urlsafe(32)``; it is shown once by ``shoal keys add``
and only its SHA-256 is stored. ``graphs`` lists the graph names (``name:`` in the YAML) the key
may call, or ``*`` for any. ``scopes`` lists what it may do there: ``run`` (the run and chat
routes) and ``review`` (the ``/v1/review`` routes: read masked ledger text, set a person's
label); an entry without ``scopes`` (a file written before scopes existed) has ``run``. The
file is rewritten atomically (a temporary file in the same folder, fsynced, renamed over the old
one) with mode 0600. :class:`KeyStore` re-reads it when it changes,
so a key added or removed while the server runs takes effect on the next request; a file that
goes missing or breaks lets no key in.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shoal.errors import ErrorCode, ShoalError
from shoal.observability.logging import get_logger

__all__ = ["ANY_GRAPH", "ApiKey", "DEFAULT_SCOPES", "KeyStore", "KeysFileError", "SCOPES",
           "SCOPE_REVIEW", "SCOPE_RUN", "add_key", "check_name", "check_scopes",
           "default_keys_path", "hash_key", "new_key", "read_keys", "remove_key", "write_keys"]

KEYS_ENV = "SHOAL_KEYS"
KEY_PREFIX = "shoal_"
ANY_GRAPH = "*"
SCOPE_RUN = "run"
"""The run and chat routes (every key made before scopes existed has it)."""
SCOPE_REVIEW = "review"
"""The review routes: masked ledger text and a person's labels."""
SCOPES = (SCOPE_RUN, SCOPE_REVIEW)
DEFAULT_SCOPES = (SCOPE_RUN,)
VERSION = 1
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_log = get_logger()


class KeysFileError(ShoalError):
    """The keys file cannot be read, is not a keys file, or a name given for it is invalid."""

    def __init__(self, message: str, *, file: str) -> None:
        super().__init__(f"{file}: {message}", code=ErrorCode.SPEC_INVALID)
        self.file = file


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One stored key: its name, the SHA-256 of the key, the graphs it may call, when made, and
    what it may do (its scopes)."""

    name: str
    sha256: str
    graphs: tuple[str, ...]
    created: str
    scopes: tuple[str, ...] = DEFAULT_SCOPES

    def allows(self, graph: str) -> bool:
        return ANY_GRAPH in self.graphs or graph in self.graphs

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "graphs": list(self.graphs),
                "scopes": list(self.scopes), "created": self.created}


def default_keys_path() -> Path:
    """``$SHOAL_KEYS``, else ``.shoal/keys.json`` under the working directory."""
    return Path(os.environ.get(KEYS_ENV) or Path(".shoal") / "keys.json")


def new_key() -> str:
    """A fresh random key: ``shoal_`` and 43 URL-safe characters (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def check_name(name: str, what: str = "key name") -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"invalid {what} {name!r}: use 1-64 letters, digits and _ . : @ -, "
                         "starting with a letter or digit")
    return name


def check_scopes(scopes: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """``scopes`` without repeats (None or empty: the default, ``run``); ValueError for one
    that is not a known scope."""
    if not scopes:
        return DEFAULT_SCOPES
    for scope in scopes:
        if scope not in SCOPES:
            shown = repr(scope) if isinstance(scope, str) and _NAME.fullmatch(scope) else "?"
            raise ValueError(f"unknown scope {shown} (known: {', '.join(SCOPES)})")
    return tuple(dict.fromkeys(scopes))


def read_keys(path: Path) -> list[ApiKey]:
    """The keys in ``path``; :class:`KeysFileError` when it is missing or malformed."""
    where = str(path)
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise KeysFileError("no such keys file", file=where) from None
    except OSError as exc:
        raise KeysFileError(f"cannot read: {exc.strerror or exc}", file=where) from None
    except ValueError:
        raise KeysFileError("not a JSON keys file", file=where) from None
    if not isinstance(data, dict) or data.get("shoal_keys") != VERSION \
            or not isinstance(data.get("keys"), list):
        raise KeysFileError(f"not a version {VERSION} keys file (written by `shoal keys add`)",
                            file=where)
    keys: list[ApiKey] = []
    for i, entry in enumerate(data["keys"]):
        try:
            graphs = entry["graphs"]
            key = ApiKey(name=check_name(entry["name"]), sha256=entry["sha256"],
                         graphs=tuple(check_name(g, "graph name") if g != ANY_GRAPH else g
                                      for g in graphs),
                         created=str(entry.get("created", "")))
            ok = isinstance(key.sha256, str) and _HEX64.fullmatch(key.sha256) is not None \
                and isinstance(graphs, list) and bool(graphs)
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise KeysFileError(f"entry {i} is malformed (needs name, sha256, graphs)",
                                file=where)
        scopes = entry.get("scopes")  # absent in files written before scopes: run
        if scopes is not None:
            try:
                if not isinstance(scopes, list) or not scopes:
                    raise ValueError("scopes must be a non-empty list")
                key = dataclasses.replace(key, scopes=check_scopes(scopes))
            except ValueError as exc:
                raise KeysFileError(f"entry {i}: {exc}", file=where) from None
        keys.append(key)
    return keys


def write_keys(path: Path, keys: list[ApiKey]) -> None:
    """Replace ``path`` with ``keys``, atomically, mode 0600 (its folder made 0700 if new)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    body = json.dumps({"shoal_keys": VERSION, "keys": [k.as_dict() for k in keys]}, indent=2)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(body + "\n")
            out.flush()
            os.fsync(out.fileno())
        tmp.chmod(0o600)  # whatever the umask did
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def add_key(path: Path, name: str, graphs: list[str] | None = None,
            scopes: list[str] | tuple[str, ...] | None = None) -> str:
    """Make a key named ``name`` for ``graphs`` (default: any) with ``scopes`` (default:
    ``run``; ValueError for an unknown one), store its hash in ``path`` (created if missing) and
    return the key itself: the only time it is ever available."""
    check_name(name)
    granted = check_scopes(scopes)
    allowed = tuple(graphs) if graphs else (ANY_GRAPH,)
    for g in allowed:
        if g != ANY_GRAPH:
            check_name(g, "graph name")
    keys = read_keys(path) if path.exists() else []
    if any(k.name == name for k in keys):
        raise ValueError(f"a key named {name!r} exists already (remove it first to replace it)")
    key = new_key()
    created = datetime.now(UTC).isoformat(timespec="seconds")
    write_keys(path, [*keys, ApiKey(name=name, sha256=hash_key(key), graphs=allowed,
                                    created=created, scopes=granted)])
    return key


def remove_key(path: Path, name: str) -> bool:
    """Drop the key named ``name``; False if there was none."""
    keys = read_keys(path)
    kept = [k for k in keys if k.name != name]
    if len(kept) == len(keys):
        return False
    write_keys(path, kept)
    return True


class KeyStore:
    """The keys of one file, looked up by the key a client sends. Re-reads the file when its
    inode, size or mtime changes; a file that goes missing or turns unreadable matches no key
    at all (fail closed, with an error event) until it is fixed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self._keys = read_keys(path)

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)  # a rewrite is a new inode

    def keys(self) -> list[ApiKey]:
        stamp = self._stat()
        with self._lock:
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._keys = read_keys(self.path)
                    _log.info("keys_reloaded", keys=len(self._keys))
                except KeysFileError as exc:
                    self._keys = []
                    _log.error("keys_file_invalid", error=exc.message)
            return self._keys

    def lookup(self, presented: str) -> ApiKey | None:
        """The stored key whose hash matches ``presented``, compared in constant time."""
        digest = hash_key(presented)
        found: ApiKey | None = None
        for key in self.keys():
            if hmac.compare_digest(key.sha256, digest):
                found = key
        return found
