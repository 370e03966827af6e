"""Files shipped inside the package: identifier packs, escalation policies, red-flag packs, trained
models.

One place finds them, so a built-in name means the same thing to the loader, the compiler's
checks and the CLI.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from shoal.errors import SourceLocation, SpecError, SpecIssue

__all__ = ["AGENT_DATA", "PACKS", "POLICIES", "RED_FLAG_PACKS", "REPLY_CLAIM_PACKS", "builtin_file",
           "builtin_names",
           "builtin_path", "builtin_or_file"]

PACKS = ("shoal.policies.privacy", "packs")
"""Identifier packs (``packs: [hipaa_safe_harbor]``)."""
POLICIES = ("shoal.policies.escalation", "policies")
"""Escalation policies (``escalation: {policies: [planner_share_20]}``)."""
RED_FLAG_PACKS = ("shoal.policies.escalation", "red_flags_packs")
"""Red-flag packs (``critical: {emergency: {red_flags: clinical_red_flags}}``)."""
REPLY_CLAIM_PACKS = ("shoal.policies.replies", "packs")
"""Forbidden-claims packs for the reply checker (``forbidden_claims``)."""
AGENT_DATA = ("shoal.agents", "data")
"""Agents' own data: the input guard's trained model, the validator's dose table."""


def builtin_names(where: tuple[str, str], suffix: str = ".yaml") -> list[str]:
    """The names (file stems) of the built-in files in ``where`` (a package and a folder)."""
    folder = files(where[0]).joinpath(where[1])
    if not folder.is_dir():
        return []
    return sorted(p.name.removesuffix(suffix) for p in folder.iterdir()
                  if p.name.endswith(suffix))


def builtin_path(where: tuple[str, str], filename: str) -> Path:
    """The path of ``filename`` in ``where``, whether or not it exists. ``files()`` on a folder of
    a regular package is a real path for an installed or editable shoal, which model loaders
    need (a model's sidecar sits beside it)."""
    return Path(str(files(where[0]).joinpath(where[1]))) / filename


def builtin_file(where: tuple[str, str], name: str, suffix: str = ".yaml") -> Path | None:
    """The built-in file ``name`` in ``where``, or None when there is none by that name."""
    path = builtin_path(where, f"{name}{suffix}")
    return path if path.is_file() else None


def builtin_or_file(where: tuple[str, str], entry: str, base_dir: Path | None, what: str) -> Path:
    """Where a YAML entry naming a ``what`` is: a file (a ``.yaml`` ending or a ``/``; relative
    to ``base_dir``, the file that names it) or a built-in name in ``where``. SpecError for a
    name that is neither, listing the built-in ones."""
    if entry.endswith((".yaml", ".yml")) or "/" in entry:
        path = Path(entry).expanduser()
        return path if path.is_absolute() or base_dir is None else base_dir / path
    found = builtin_file(where, entry)
    if found is None:
        known = ", ".join(builtin_names(where)) or "none"
        raise SpecError([SpecIssue(SourceLocation(f"<{what} {entry}>"), "",
                                   f"no built-in {what} {entry!r} (built-in: {known}; a file "
                                   "needs a .yaml ending)")])
    return found
