"""Reading FHIR R4 ``Communication`` resources into records.

A file is either one JSON Bundle whose entries are Communications or NDJSON (one Communication a
line). Each resource is validated with ``fhir.resources`` (R4B models, see :mod:`shoal.fhir`)
and becomes a :class:`Message` (a :class:`~shoal.graphs.results.Record` whose text is the
payload's ``contentString`` parts, joined by newlines) or a :class:`Problem`: not JSON, not a
Communication, invalid, no id, a payload that is an attachment or a reference, no text, or an id
seen before. A problem names its place (``12`` for an NDJSON line, ``Bundle.entry[3]``) and never
quotes the resource's values; the rest of the file still runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shoal.errors import ErrorCode, ShoalError
from shoal.extras import require
from shoal.graphs.results import Record

__all__ = ["BUNDLE", "EVENT_STATUS", "Envelope", "FhirInput", "Message", "NDJSON", "Problem",
           "REQUEST_PRIORITY", "describe_errors", "fhir_path", "open_input",
           "parse_communication", "parse_json"]

BUNDLE: Final = "bundle"
NDJSON: Final = "ndjson"
InputKind = Literal["bundle", "ndjson"]

EVENT_STATUS = frozenset({"preparation", "in-progress", "not-done", "on-hold", "stopped",
                          "completed", "entered-in-error", "unknown"})
"""R4's EventStatus, the required binding of ``Communication.status`` (``fhir.resources`` does
not check code bindings)."""
REQUEST_PRIORITY = frozenset({"routine", "urgent", "asap", "stat"})
"""R4's RequestPriority, the required binding of ``Communication.priority``."""
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_RESOURCE_NAME = re.compile(r"[A-Z][A-Za-z]{1,63}")
_URI = re.compile(r"\S{1,4096}")
MAX_ERRORS = 3
"""Validation errors named per resource; more are counted."""


class Envelope(BaseModel):
    """What the reply to a Communication needs from it, besides its text: the reference its
    ``inResponseTo`` points at, and the parties and subject it swaps or keeps."""

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    reference: str
    """``Communication/{id}``, or the Bundle entry's ``fullUrl`` when there is one (references
    inside a Bundle resolve through it)."""
    sender: dict[str, Any] | None = None
    recipients: tuple[dict[str, Any], ...] = ()
    subject: dict[str, Any] | None = None


class Message(Record):
    """A Communication that can run: its id and text, and its :class:`Envelope` (kept in memory
    for the reply, never serialized)."""

    envelope: Envelope = Field(exclude=True, repr=False)


IssueCode = Literal["invalid", "not-supported", "duplicate", "required", "structure"]


@dataclass(frozen=True, slots=True)
class Problem:
    """A resource that cannot run, and why (never quoting its values)."""

    record_id: str
    """The resource's id, else its entry's ``fullUrl``, else a made-up ``line-N`` or
    ``entry-N``."""
    reason: str
    place: str = ""
    """Where it is in its file: an NDJSON line number (``12``) or ``Bundle.entry[3]``; empty
    for a resource on its own (``shoal serve``)."""
    index: int = 0
    """The NDJSON line number or the Bundle entry's index."""
    issue: IssueCode = "invalid"
    """The OperationOutcome issue type: ``invalid``, ``not-supported`` (an attachment or
    reference payload), ``duplicate``, ``required`` (no id, no text), ``structure`` (not
    JSON)."""
    envelope: Envelope | None = None
    """Set when the resource is a valid Communication whose content cannot run: its reply can
    still say so (status ``not-done``)."""
    named: bool = True
    """``record_id`` came from the resource (False: made up from the place)."""


def _communication_model() -> Any:
    require("fhir", "reading FHIR resources")
    from fhir.resources.R4B.communication import Communication  # optional extra [fhir]

    return Communication


def _bundle_model() -> Any:
    require("fhir", "reading FHIR resources")
    from fhir.resources.R4B.bundle import Bundle  # optional extra [fhir]

    return Bundle


def describe_errors(exc: ValidationError) -> str:
    """Field paths and what is wrong with them (``payload[0].contentString: Input should be a
    valid string``), never the values."""
    errors = exc.errors(include_input=False, include_url=False, include_context=False)
    parts = []
    for e in errors[:MAX_ERRORS]:
        where = fhir_path(e.get("loc", ()))
        msg = " ".join(str(e.get("msg", "invalid")).split())
        parts.append(f"{where}: {msg}" if where else msg)
    if len(errors) > MAX_ERRORS:
        parts.append(f"and {len(errors) - MAX_ERRORS} more")
    return "; ".join(parts)


def fhir_path(loc: tuple[int | str, ...] | list[int | str]) -> str:
    """``("payload", 0, "contentString")`` -> ``payload[0].contentString``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def parse_communication(
    data: Any, *, full_url: str | None = None, fallback_id: str = "communication",
    place: str = "", index: int = 0,
) -> Message | Problem:
    """One Communication (parsed JSON) as a :class:`Message`, or the :class:`Problem` that keeps
    it from running."""
    if not isinstance(data, dict):
        return Problem(fallback_id, f"expected a JSON object, got {type(data).__name__}", place,
                       index, "structure", named=False)
    raw_id = data.get("id")
    if isinstance(raw_id, str) and _FHIR_ID.fullmatch(raw_id):
        record_id, named = raw_id, True
    elif full_url is not None:
        record_id, named = full_url, True
    else:
        record_id, named = fallback_id, False

    def problem(reason: str, issue: IssueCode = "invalid",
                envelope: Envelope | None = None) -> Problem:
        return Problem(record_id, reason, place, index, issue, envelope, named)

    kind = data.get("resourceType")
    if kind != "Communication":
        got = (f"a {kind}" if isinstance(kind, str) and _RESOURCE_NAME.fullmatch(kind)
               else "no valid 'resourceType'")
        return problem(f"expected a Communication resource, got {got}")
    try:
        model = _communication_model().model_validate(data)
    except ValidationError as exc:
        return problem(f"not a valid FHIR R4 Communication: {describe_errors(exc)}")
    if model.status not in EVENT_STATUS:
        return problem("status: not an R4 EventStatus code (" + ", ".join(sorted(EVENT_STATUS))
                       + ")")
    if model.priority is not None and model.priority not in REQUEST_PRIORITY:
        return problem("priority: not an R4 RequestPriority code (routine, urgent, asap, stat)")
    if full_url is not None:
        reference = full_url
    elif model.id is not None:
        reference = f"Communication/{model.id}"
    else:
        return problem("no 'id' (nor a Bundle entry 'fullUrl'): its reply could not reference "
                       "it", "required")
    envelope = Envelope(
        reference=reference,
        sender=model.sender.model_dump(mode="json") if model.sender is not None else None,
        recipients=tuple(r.model_dump(mode="json") for r in model.recipient or ()),
        subject=model.subject.model_dump(mode="json") if model.subject is not None else None,
    )
    texts: list[str] = []
    for i, part in enumerate(model.payload or ()):
        if part.contentString is not None:
            texts.append(part.contentString)
            continue
        what = ("an attachment (contentAttachment)" if part.contentAttachment is not None
                else "a reference (contentReference)")
        return problem(f"payload[{i}] is {what}; only text (contentString) is supported",
                       "not-supported", envelope)
    text = "\n".join(texts)
    if not text.strip():
        return problem("no text: payload[].contentString is missing or empty", "required",
                       envelope)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        # JSON can escape a lone surrogate (\ud800) that no real text holds.
        return problem(f"the text holds an unpaired surrogate at character {exc.start}",
                       envelope=envelope)
    return Message(id=record_id, text=text, envelope=envelope)


def parse_json(raw: bytes) -> Message | Problem:
    """One Communication sent on its own (``shoal serve``): the request body's bytes."""
    try:
        data = json.loads(raw)
    except UnicodeDecodeError as exc:
        return Problem("communication", f"not valid UTF-8 (byte {exc.start})", issue="structure",
                       named=False)
    except json.JSONDecodeError as exc:
        return Problem("communication", f"not valid JSON: {exc.msg} (line {exc.lineno}, column "
                       f"{exc.colno})", issue="structure", named=False)
    return parse_communication(data)


@dataclass(frozen=True, slots=True)
class FhirInput:
    """A FHIR input file and its kind; iterating reads (and validates) it again each time."""

    path: Path
    kind: InputKind

    def __iter__(self) -> Iterator[Message | Problem]:
        items = self._bundle() if self.kind == BUNDLE else self._ndjson()
        seen: dict[str, str] = {}
        for item, place, index in items:
            if isinstance(item, Message):
                if item.id in seen:
                    yield Problem(item.id, f"duplicate id (first at {seen[item.id]}); ids must "
                                  "be unique", place, index, "duplicate")
                    continue
                seen[item.id] = place if self.kind == BUNDLE else f"line {place}"
            yield item

    def count(self) -> int:
        """How many resources (places) the file holds, without validating them."""
        if self.kind == BUNDLE:
            return len(_entries(_load_bundle(self.path)))
        return _lines(self.path)

    def _ndjson(self) -> Iterator[tuple[Message | Problem, str, int]]:
        with self.path.open("rb") as fh:
            for line_no, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                fallback = f"line-{line_no}"
                place = str(line_no)
                try:
                    data = json.loads(raw.decode("utf-8"))
                except UnicodeDecodeError as exc:
                    yield (Problem(fallback, f"not valid UTF-8 (byte {exc.start}); the line "
                                   "was skipped", place, line_no, "structure", named=False),
                           place, line_no)
                    continue
                except json.JSONDecodeError as exc:
                    yield (Problem(fallback, f"not valid JSON: {exc.msg} (column {exc.colno})",
                                   place, line_no, "structure", named=False), place, line_no)
                    continue
                yield (parse_communication(data, fallback_id=fallback, place=place,
                                           index=line_no), place, line_no)

    def _bundle(self) -> Iterator[tuple[Message | Problem, str, int]]:
        for i, entry in enumerate(_entries(_load_bundle(self.path))):
            yield _entry(entry, i), f"Bundle.entry[{i}]", i


def _entry(entry: Any, i: int) -> Message | Problem:
    place, fallback = f"Bundle.entry[{i}]", f"entry-{i}"
    if not isinstance(entry, dict):
        return Problem(fallback, f"expected a JSON object, got {type(entry).__name__}", place,
                       i, "structure", named=False)
    full_url = entry.get("fullUrl")
    if full_url is not None and not (isinstance(full_url, str) and _URI.fullmatch(full_url)):
        return Problem(fallback, "fullUrl: not a URI", place, i, named=False)
    resource = entry.get("resource")
    if resource is None:
        return Problem(full_url or fallback, "no 'resource' in the entry", place, i, "required",
                       named=full_url is not None)
    return parse_communication(resource, full_url=full_url, fallback_id=fallback, place=place,
                               index=i)


def _entries(bundle: dict[str, Any]) -> list[Any]:
    entries = bundle.get("entry")
    return entries if isinstance(entries, list) else []


def _load_bundle(path: Path) -> dict[str, Any]:
    """The Bundle document of ``path``, its shell (everything but the entries) validated."""
    try:
        data = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _file_error(path, f"not valid JSON: {_why(exc)}") from None
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        raise _file_error(path, "a JSON document that is not a Bundle; give a Bundle of "
                          "Communications or NDJSON (one Communication a line)")
    if "entry" in data and not isinstance(data["entry"], list):
        raise _file_error(path, "not a valid FHIR R4 Bundle: entry: must be a list")
    try:
        _bundle_model().model_validate({k: v for k, v in data.items() if k != "entry"})
    except ValidationError as exc:
        raise _file_error(path, f"not a valid FHIR R4 Bundle: {describe_errors(exc)}") from None
    return data


def _why(exc: UnicodeDecodeError | json.JSONDecodeError) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 (byte {exc.start})"
    return f"{exc.msg} (line {exc.lineno}, column {exc.colno})"


def _file_error(path: Path, message: str) -> ShoalError:
    return ShoalError(f"{path}: {message}", code=ErrorCode.INPUT_INVALID)


def open_input(path: Path) -> FhirInput:
    """``path`` as a FHIR input: a Bundle when the file is one JSON document holding a Bundle,
    else NDJSON (a first line that is a JSON object, or one that is not JSON at all: that line
    then becomes an error record and the rest still runs). Raises
    :class:`~shoal.errors.ShoalError` (``input_invalid``) naming the file for a JSON document
    that is broken or not a Bundle, or a Bundle that is not valid, and
    :class:`~shoal.errors.MissingExtra` without the extra ``[fhir]``."""
    require("fhir", "--input-format fhir")
    first = _first_line(path)
    if first is None:
        return FhirInput(path, NDJSON)
    try:
        data = json.loads(first.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        data = None
    else:
        if not (isinstance(data, dict) and data.get("resourceType") == "Bundle"):
            return FhirInput(path, NDJSON)
        if _lines(path) > 1:
            return FhirInput(path, NDJSON)  # NDJSON of Bundles: each line an error record
    stripped = first.strip()
    if data is None and stripped not in (b"{", b"["):
        try:
            json.loads(path.read_bytes())
        except (UnicodeDecodeError, json.JSONDecodeError):
            return FhirInput(path, NDJSON)  # a broken first line of NDJSON
    _load_bundle(path)  # a file-level problem is raised here, before anything runs
    return FhirInput(path, BUNDLE)


def _first_line(path: Path) -> bytes | None:
    with path.open("rb") as fh:
        for raw in fh:
            if raw.strip():
                return raw
    return None


def _lines(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for raw in fh if raw.strip())
