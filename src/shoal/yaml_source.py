"""YAML with its source positions: plain data, a line and column for every key and value, and
every mistake as a :class:`~shoal.errors.SpecIssue` at ``FILE:LINE:COL``.

PyYAML's composer gives nodes with marks; we build plain Python data from them ourselves so that
duplicate keys are caught (PyYAML silently keeps the last) and every value keeps its position.
Graph specs, identifier packs and escalation policies are all read through here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from shoal.errors import SourceLocation, SpecError, SpecIssue

MAX_SPEC_NODES = 200_000
"""Caps what aliases may expand to (the "billion laughs" document)."""

Loc = tuple[str | int, ...]
_ENV = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True, slots=True)
class Problem:
    """A mistake found at a spec path, before it is given a place in a file."""

    loc: Loc
    message: str
    at_key: bool = False


@dataclass
class SourceMap:
    """Positions (1-based line, column) of each key and value, by spec path."""

    file: str
    keys: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    values: dict[Loc, tuple[int, int]] = field(default_factory=dict)

    def locate(self, loc: Loc, *, at_key: bool = False) -> SourceLocation:
        """The position of ``loc``, or of its nearest ancestor that is in the source."""
        matched: Loc = ()
        for part in loc:
            candidate = (*matched, part)
            if candidate in self.values:
                matched = candidate
            # Parts that are not keys (pydantic's union tags) are skipped, not fatal.
        table = self.keys if at_key and matched == tuple(loc) and matched in self.keys else None
        line, col = (table or self.values).get(matched, (1, 1))
        return SourceLocation(self.file, line, col)


def format_loc(loc: Iterable[str | int], tags: frozenset[str] = frozenset()) -> str:
    """``nodes.triage.model``; ``tags`` are pydantic's union tags, which are not keys."""
    parts = [p for p in loc if not (isinstance(p, str) and p in tags)]
    return ".".join(str(p) for p in parts)


def problems_to_issues(
    problems: Iterable[Problem], source: SourceMap | None, name: str,
    tags: frozenset[str] = frozenset(),
) -> list[SpecIssue]:
    issues = []
    for p in problems:
        if source is None:
            location = SourceLocation(f"<graph {name}>")
        else:
            location = source.locate(p.loc, at_key=p.at_key)
        issues.append(SpecIssue(location=location, path=format_loc(p.loc, tags),
                                message=p.message))
    return issues


def validation_problems(exc: ValidationError, prefix: Loc = ()) -> list[Problem]:
    """Turn pydantic's error list into Problems pointing at the offending key or value."""
    problems = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = (*prefix, *err["loc"])
        kind = err["type"]
        if kind == "extra_forbidden":
            problems.append(Problem(loc, f"unknown key {loc[-1]!r}", at_key=True))
        elif kind == "missing":
            problems.append(Problem(loc[:-1], f"missing required key {loc[-1]!r}"))
        else:
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(Problem(loc, msg))
    return problems


class _Builder:
    """Builds plain data from a composed YAML node tree, recording positions and problems."""

    def __init__(self, source: SourceMap, env: Mapping[str, str]) -> None:
        self.source = source
        self.env = env
        self.problems: list[Problem] = []
        self.count = 0
        self.constructor = yaml.SafeLoader("")

    def build(self, node: yaml.Node, loc: Loc) -> Any:
        self.count += 1
        if self.count > MAX_SPEC_NODES:
            raise _TooLarge
        self.source.values.setdefault(loc, _pos(node.start_mark))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, loc)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*loc, i)) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        value = self.constructor.construct_object(node, deep=True)
        if isinstance(value, str) and "$" in value:
            value = self._interpolate(value, loc)
        return value

    def _mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        first_seen: dict[Any, tuple[int, int]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.problems.append(
                    Problem(loc, "merge keys ('<<') are not supported: write the keys out")
                )
                continue
            key = self.constructor.construct_object(key_node, deep=True)
            if not isinstance(key, str | int) or isinstance(key, bool):
                self.problems.append(Problem(loc, f"keys must be strings, got {key!r}"))
                continue
            here = _pos(key_node.start_mark)
            if key in first_seen:
                line, _ = first_seen[key]
                self.problems.append(
                    Problem((*loc, key), f"duplicate key {key!r} (first at line {line})",
                            at_key=True)
                )
                # Record the duplicate's own position so the problem points at it.
                self.source.keys[(*loc, key)] = here
                self.source.values[(*loc, key)] = here
                continue
            first_seen[key] = here
            self.source.keys[(*loc, key)] = here
            out[key] = self.build(value_node, (*loc, key))
        return out

    def _interpolate(self, text: str, loc: Loc) -> str:
        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            if name in self.env:
                return self.env[name]
            if default is not None:
                return default
            self.problems.append(
                Problem(loc, f"environment variable {name} is not set "
                             f"(set it, or write ${{{name}:-default}})")
            )
            return ""

        return _ENV.sub(replace, text)


class _TooLarge(Exception):
    pass


def _pos(mark: yaml.Mark) -> tuple[int, int]:
    return mark.line + 1, mark.column + 1


def parse_yaml(
    text: str, file: str, env: Mapping[str, str] | None = None
) -> tuple[Any, SourceMap, list[Problem]]:
    """Parse one YAML document into plain data, its source map and the problems met on the way."""
    source = SourceMap(file)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = _pos(mark) if mark is not None else (1, 1)
        source.values[()] = (line, col)
        problem = exc.problem or "invalid YAML"
        context = f" ({exc.context})" if exc.context else ""
        return None, source, [Problem((), f"invalid YAML: {problem}{context}")]
    except yaml.reader.ReaderError as exc:
        # A character YAML does not allow (NUL, most control characters): place it.
        before = text[:exc.position]
        source.values[()] = (before.count("\n") + 1, len(before) - before.rfind("\n"))
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return None, source, [Problem((), f"invalid YAML: character {code:#x} "
                                          "is not allowed in YAML")]
    except yaml.YAMLError as exc:
        return None, source, [Problem((), f"invalid YAML: {str(exc).splitlines()[0]}")]
    except RecursionError:
        source.values[()] = _deepest(text)
        return None, source, [Problem((), "invalid YAML: nested too deeply")]
    if root is None:
        return None, source, [Problem((), "the file is empty")]
    builder = _Builder(source, os.environ if env is None else env)
    try:
        data = builder.build(root, ())
    except _TooLarge:
        return None, source, [Problem((), f"the document expands to over {MAX_SPEC_NODES} "
                                          "values (aliases?); refusing to build it")]
    except yaml.MarkedYAMLError as exc:  # an unknown tag (!custom, !!python/...)
        mark = exc.problem_mark or exc.context_mark
        source.values[()] = _pos(mark) if mark is not None else (1, 1)
        return None, source, [Problem((), f"invalid YAML: {exc.problem or 'unsupported value'}")]
    except RecursionError:
        source.values[()] = _deepest(text)
        return None, source, [Problem((), "invalid YAML: nested too deeply")]
    return data, source, builder.problems


def _deepest(text: str, limit: int = 100) -> tuple[int, int]:
    """Where flow brackets first nest ``limit`` deep (a place to point at for a RecursionError;
    block nesting that deep would need a line per level)."""
    depth = 0
    for i, ch in enumerate(text):
        depth += (ch in "[{") - (ch in "]}")
        if depth >= limit:
            before = text[:i]
            return before.count("\n") + 1, i - before.rfind("\n")
    return 1, 1


ModelT = TypeVar("ModelT", bound=BaseModel)


def load_yaml_model(path: Path, label: str, model: type[ModelT], what: str,
                    refuse: Callable[[dict[str, Any]], str | None] | None = None) -> ModelT:
    """Read one YAML mapping file (a pack, a policy) into ``model``; every mistake is a SpecError
    naming ``label``:LINE:COL. ``refuse`` may name a reason the document is the wrong kind."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise SpecError([SpecIssue(SourceLocation(label), "",
                                   f"cannot read the {what}: {reason or 'I/O error'}")]) from None
    # Packs and policies take no ${ENV} values: regular expressions hold `$`.
    data, source, problems = parse_yaml(text, label, env={})
    if not problems:
        if not isinstance(data, dict):
            raise SpecError([SpecIssue(SourceLocation(label, 1, 1), "",
                                       f"a {what} must be a mapping")])
        wrong = refuse(data) if refuse is not None else None
        if wrong is not None:
            raise SpecError([SpecIssue(SourceLocation(label, 1, 1), "", wrong)])
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            problems = validation_problems(exc)
    raise SpecError(problems_to_issues(problems, source, label))
