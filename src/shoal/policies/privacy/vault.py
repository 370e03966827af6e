"""A run's pseudonyms: ``[NAME_1]`` <-> the value it stands for, in memory only.

The runtime gives every run its own :class:`Vault` (held by the run's scope, dropped with it), so
pseudonyms are consistent across the nodes of a run and reversible locally, and nothing outlives
the run. ``repr`` shows counts, never values.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading

__all__ = ["TOKEN", "Vault", "unmask"]

TOKEN = re.compile(r"\[[A-Z][A-Z0-9_]*(?:_\d+|:[0-9a-f]{8})\]")
"""Any pseudonym or hash token shoal writes (``[NAME_1]``, ``[NAME:1a2b3c4d]``)."""


class Vault:
    """One run's pseudonyms: ``[NAME_1]`` <-> the value it stands for, kept in memory only.

    The same value (same label, same exact text) always gets the same pseudonym within the vault;
    different values get different numbers. Hash-mode tokens are also remembered so a hashed text
    can be reversed locally. ``repr`` shows counts, never values.
    """

    def __init__(self, run_id: str | None = None) -> None:
        self.run_id = run_id
        self._salt = secrets.token_bytes(16)
        self._by_value: dict[tuple[str, str], str] = {}
        self._originals: dict[str, str] = {}
        self._counters: dict[str, int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._originals)

    def __repr__(self) -> str:
        return f"Vault(run_id={self.run_id!r}, entries={len(self)})"

    def pseudonym(self, label: str, value: str, *, avoid: str = "") -> str:
        """``[LABEL_N]`` for ``value``; a new N skips tokens already present in ``avoid`` (the
        text being masked), so a literal ``[NAME_1]`` in the input never unmasks wrongly."""
        with self._lock:
            key = (label, value)
            found = self._by_value.get(key)
            if found is not None:
                return found
            n = self._counters.get(label, 0)
            while True:
                n += 1
                token = f"[{label}_{n}]"
                if token not in self._originals and token not in avoid:
                    break
            self._counters[label] = n
            self._by_value[key] = token
            self._originals[token] = value
            return token

    def hashed(self, label: str, value: str) -> str:
        """``[LABEL:8hex]``: an HMAC of the value under this vault's salt (stable within the run,
        unlinkable across runs)."""
        digest = hmac.new(self._salt, f"{label}\x00{value}".encode(), hashlib.sha256).hexdigest()
        token = f"[{label}:{digest[:8]}]"
        with self._lock:
            self._originals.setdefault(token, value)
        return token

    def original(self, token: str) -> str | None:
        """The value behind a pseudonym or hash token, or None if this vault did not make it."""
        return self._originals.get(token)

    def holds(self, value: str) -> bool:
        """Whether ``value`` is one this vault masked (the run's own input held it)."""
        with self._lock:
            return value in self._originals.values()

    def pseudonyms(self) -> frozenset[str]:
        """Every pseudonym and hash token this vault made (tokens only, never the values)."""
        with self._lock:
            return frozenset(self._originals)

    def unmask(self, text: str) -> str:
        """Put the original values back for every token this vault made; others stay as they are."""
        return TOKEN.sub(lambda m: self._originals.get(m.group(0), m.group(0)), text)

    def clear(self) -> None:
        with self._lock:
            self._by_value.clear()
            self._originals.clear()
            self._counters.clear()



def unmask(masked: str, vault: Vault) -> str:
    """Reverse the pseudonyms (and hash tokens) ``vault`` made. Redacted spans stay redacted."""
    return vault.unmask(masked)


