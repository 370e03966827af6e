"""An ORACLE planner: an OpenAI-compatible test double that answers every planner request with the
gold label of the message it is asked about. It is a ceiling, not a model: it reads the answer
key, so a run against it measures the routing (which records reach the planner, and whether the
records that stay local are right), never a planner's quality.

Serves, on 127.0.0.1 only:
  POST /v1/chat/completions  the planner answer shoal asks for (``planner_call.py``): a JSON
                             object ``{"answer", "label", "confidence"}`` as the message content,
                             keys taken from the request's ``response_format`` schema when it
                             sends one (both the standard ``json_schema`` form and llama.cpp's
                             ``json_object`` + ``schema`` form), ``label`` = ``answer`` = the gold
                             label, ``confidence`` 1.0; ``usage`` counts words (rough tokens), so
                             shoal's cost accounting has something to add up.
                             A PLAN request (plan mode's splitter: the schema's properties hold
                             ``steps``; see below) gets ``{"steps": [...]}`` instead.
  GET  /v1/models            the one model id (``--model``, default ``oracle``).
  GET  /v1/oracle/stats      how requests were matched to records (counts and record ids only).

Finding the record: the planner gets the run's *masked* working text (``Message:`` section of the
user message), not the raw text. At start every record of ``--data`` (labelled JSONL: ``id``,
``text``, ``label``) is masked once the way the graph's ``privacy_masker`` does it: the process's
detector for the pack (``shoal.policies.privacy.detector``), the masker's mode (``pseudonymize``
unless told), a fresh vault per record (a run's vault is fresh too, so ``[NAME_1]`` numbering
matches). A request is matched
(1) exactly on that masked text; (2) failing that, with every pseudonym (``[NAME_1]``) replaced
by one token on both sides, in case numbering differs; (3) failing that, to the closest masked
text (difflib): the only guess, counted apart as a fallback with its similarity, so a run can
show it did not lean on guesses.

Plan requests (``shoal.agents.plans``: ``plan_messages`` and ``plan_schema``; the user message
has no draft section, the ``Message:`` section runs to its end) get one step per gold part of the
record (``parts`` in the JSONL: ``{"label", "text"}``, each text a substring of the raw text), in
the order the parts appear in the message: ``target`` the target that answers the part's label
(``targets``, ``--targets``: a label -> target JSON map, by default the healthcare cascade's; a
target missing from the request's target enum becomes the enum's first value, counted as
``target_not_in_schema``), ``text`` the part's excerpt of the *masked* message the request
carries, ``why`` the part's label; at most the schema's ``maxItems`` (the first parts). Each part
is masked alone once, at start, as the records are; in a request it is found (1) as that masked
text, pseudonyms matching any pseudonym (``parts_exact`` verbatim, ``parts_pattern`` when only
the pseudonyms differ), or as the raw part text (``parts_exact``); (2) failing that, as difflib's
longest block common to the message and the masked part, when it covers at least half the part
(``parts_fallback``); else it is left out (``parts_missing``). A record without parts (or none of
whose parts is found) gets one step: its label's target and the whole message. Plan steps carry
gold labels: the noisy oracle below answers label requests only.

A NOISY oracle (``wrong_share`` > 0, ``--wrong-share``) answers a seeded share of the records
with another label (the same wrong label every time it is asked about that record, confidence
1.0): a planner that is sometimes sure and wrong, for the learning loop's gate.

It logs nothing of any text (no access log; errors and stats carry counts and record ids only).

Run: python benchmarks/oracle_planner.py --data examples/healthcare/data/test.jsonl [--port 0]
[--pack hipaa_safe_harbor] [--mode pseudonymize] [--model oracle] [--targets JSON]; prints the
base URL (``http://127.0.0.1:PORT/v1``) once it accepts connections, serves until SIGINT/SIGTERM,
then prints the match counts on stderr. In-process: ``with serve_oracle(records) as oracle:
oracle.base_url`` (a thread on a free port).
"""

from __future__ import annotations

import argparse
import difflib
import json
import random
import re
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from shoal.policies import privacy

HOST = "127.0.0.1"
DEFAULT_MODEL = "oracle"
DEFAULT_PACK = "hipaa_safe_harbor"
MESSAGE_START = "\n\nMessage:\n"
DRAFT_START = "\n\nDraft from the local model:\n"
"""The user message shoal's ``planner_messages`` writes: ``Task: ...`` + MESSAGE_START + the
working text + DRAFT_START + the draft. The draft is the last section and is JSON or a local
answer, so the text ends at the *last* DRAFT_START."""
PSEUDONYM = re.compile(r"\[[A-Z_]+_\d+\]")
"""A pseudonym as the masker writes it in ``pseudonymize`` mode (``[NAME_1]``, ``[US_SSN_2]``)."""

ANY_PSEUDONYM = PSEUDONYM.pattern
"""What a pseudonym of a masked part becomes in the pattern it is looked for with."""
PART_COVERAGE = 0.5
"""A part's fallback (difflib's longest common block) must cover this share of the masked part."""
HEALTHCARE_TARGETS: Mapping[str, str] = {
    "emergency": "urgent", "off_topic": "decline", "injection": "decline",
    "appointment": "validate", "billing": "validate", "prescription_refill": "validate",
    "symptom_report": "validate"}
"""Label -> the step target that answers it: the healthcare cascade's ``split`` node."""

MatchKind = Literal["exact", "normalised", "fallback"]
PartKind = Literal["exact", "pattern", "fallback", "missing"]


@dataclass(frozen=True)
class LabelledRecord:
    id: str
    text: str
    label: str
    parts: tuple[tuple[str, str], ...] = ()
    """The message's requests, ``(label, raw text)`` each, the text a substring of ``text``."""


@dataclass(frozen=True)
class Match:
    """The record a request was matched to, and how."""

    record: LabelledRecord
    kind: MatchKind
    similarity: float
    """1.0 for exact and normalised matches; difflib's ratio for a fallback."""
    ambiguous: bool = False
    """The matched text belongs to records with different gold labels (the first one wins)."""
    position: int = 0
    """The record's position in the index."""


def read_records(path: str | Path) -> list[LabelledRecord]:
    """The labelled JSONL's records (``parts`` too, when a row has them); a line without ``id``,
    ``text`` or ``label``, or with malformed ``parts``, is an error naming its line (never its
    text)."""
    records = []
    for line_no, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not isinstance(row, dict) or not all(isinstance(row.get(k), str)
                                                for k in ("id", "text", "label")):
            raise ValueError(f"{path}:{line_no}: needs string 'id', 'text' and 'label'")
        parts = row.get("parts")
        if parts is None:
            parts = []
        if not isinstance(parts, list) or not all(
                isinstance(p, dict) and isinstance(p.get("label"), str)
                and isinstance(p.get("text"), str) for p in parts):
            raise ValueError(f"{path}:{line_no}: 'parts' must be a list of objects with string "
                             "'label' and 'text'")
        records.append(LabelledRecord(row["id"], row["text"], row["label"],
                                      tuple((p["label"], p["text"]) for p in parts)))
    return records


def mask_like_the_graph(texts: Iterable[str], pack: str = DEFAULT_PACK,
                        mode: str = "pseudonymize",
                        score_threshold: float | None = None) -> list[str]:
    """Each text masked as a run's ``privacy_masker`` masks it: the shared detector for ``pack``
    (and the masker's ``score_threshold``) and a fresh vault per text (one run, one vault:
    pseudonym numbering starts at 1 each time). presidio and spaCy load here, on first use."""
    detector = privacy.detector(pack, score_threshold=score_threshold)
    return [detector.mask(text, mode=mode).masked for text in texts]  # type: ignore[arg-type]


def normalise(text: str) -> str:
    """``text`` with every pseudonym replaced by one token: numbering may differ, the rest not."""
    return PSEUDONYM.sub("[*]", text)


def part_pattern(masked: str) -> re.Pattern[str]:
    """``masked`` as a pattern: the text literally, every pseudonym matching any pseudonym."""
    return re.compile(ANY_PSEUDONYM.join(re.escape(piece) for piece in PSEUDONYM.split(masked)))


@dataclass(frozen=True)
class IndexedPart:
    """A record's part, masked alone (once, when the index is built)."""

    label: str
    raw: str
    masked: str
    pattern: re.Pattern[str]


@dataclass(frozen=True)
class FoundPart:
    """Where a part is in a request's message, and how it was found."""

    label: str
    start: int
    end: int
    kind: PartKind


def locate_part(part: IndexedPart, text: str, after: int = 0) -> FoundPart:
    """``part`` in ``text`` (a masked message): its masked text, pseudonyms matching any
    pseudonym; else its raw text; else difflib's longest block common to both, when it covers
    at least PART_COVERAGE of the masked part. Each search tries from ``after`` (the end of the
    part before: a text that repeats is the next one) before the whole text."""
    for start_at in dict.fromkeys((after, 0)):
        found = part.pattern.search(text, start_at)
        if found is not None:
            kind: PartKind = "exact" if found.group() == part.masked else "pattern"
            return FoundPart(part.label, found.start(), found.end(), kind)
    for start_at in dict.fromkeys((after, 0)):
        start = text.find(part.raw, start_at) if part.raw else -1
        if start >= 0:
            return FoundPart(part.label, start, start + len(part.raw), "exact")
    if part.masked.strip():
        matcher = difflib.SequenceMatcher(None, text, part.masked, autojunk=False)
        block = matcher.find_longest_match(0, len(text), 0, len(part.masked))
        start, end = block.a, block.a + block.size
        # A step's text is checked stripped (check_plan): trim the block the same way.
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start and block.size >= PART_COVERAGE * len(part.masked.strip()):
            return FoundPart(part.label, start, end, "fallback")
    return FoundPart(part.label, -1, -1, "missing")


@dataclass
class MatchStats:
    """Counts of how requests were matched. Thread-safe; holds record ids, never text."""

    requests: int = 0
    exact: int = 0
    normalised: int = 0
    fallback: int = 0
    unparsed: int = 0
    """Requests whose user message had no ``Message:`` section (matched on the whole message)."""
    ambiguous: int = 0
    wrong: int = 0
    """Answers the noisy oracle gave wrong on purpose."""
    label_not_in_schema: int = 0
    """The gold label was not in the request's label enum (answered anyway: shoal rejects it)."""
    fallbacks: list[dict[str, Any]] = field(default_factory=list)
    """``{"id", "similarity"}`` per fallback match."""
    plans: int = 0
    """Plan requests (also counted in ``requests`` and how their record was matched)."""
    parts_exact: int = 0
    """Parts found verbatim in a plan request's message (masked alone, or raw)."""
    parts_pattern: int = 0
    """Parts found with their pseudonyms matching other pseudonyms."""
    parts_fallback: int = 0
    """Parts found by difflib's longest common block: a guess."""
    parts_missing: int = 0
    """Parts not found (left out of the plan)."""
    target_not_in_schema: int = 0
    """Steps whose label's target was not in the request's target enum (its first value sent)."""
    part_misses: list[dict[str, Any]] = field(default_factory=list)
    """``{"id", "part", "kind"}`` per part found by fallback or not found (``part`` from 0)."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, match: Match, *, parsed: bool, in_schema: bool) -> None:
        with self._lock:
            self.requests += 1
            setattr(self, match.kind, getattr(self, match.kind) + 1)
            self.unparsed += not parsed
            self.ambiguous += match.ambiguous
            self.label_not_in_schema += not in_schema
            if match.kind == "fallback":
                self.fallbacks.append({"id": match.record.id,
                                       "similarity": round(match.similarity, 4)})

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": self.requests, "exact": self.exact,
                    "normalised": self.normalised, "fallback": self.fallback,
                    "unparsed": self.unparsed, "ambiguous": self.ambiguous,
                    "label_not_in_schema": self.label_not_in_schema, "wrong": self.wrong,
                    "fallbacks": list(self.fallbacks), "plans": self.plans,
                    "parts_exact": self.parts_exact, "parts_pattern": self.parts_pattern,
                    "parts_fallback": self.parts_fallback, "parts_missing": self.parts_missing,
                    "target_not_in_schema": self.target_not_in_schema,
                    "part_misses": list(self.part_misses)}

    def count_plan(self, record_id: str, found: Sequence[FoundPart],
                   off_schema: int) -> None:
        with self._lock:
            self.plans += 1
            self.target_not_in_schema += off_schema
            for i, part in enumerate(found):
                name = f"parts_{part.kind}"
                setattr(self, name, getattr(self, name) + 1)
                if part.kind in ("fallback", "missing"):
                    self.part_misses.append({"id": record_id, "part": i, "kind": part.kind})


class OracleIndex:
    """Masked text -> labelled record, built once, for the oracle's lookups."""

    def __init__(self, records: Sequence[LabelledRecord], *, pack: str = DEFAULT_PACK,
                 mode: str = "pseudonymize", score_threshold: float | None = None,
                 wrong_share: float = 0.0, seed: int = 0,
                 targets: Mapping[str, str] | None = None) -> None:
        if not records:
            raise ValueError("the oracle needs at least one labelled record")
        started = time.perf_counter()
        self.records = list(records)
        self.pack = pack
        self.targets: dict[str, str] = dict(HEALTHCARE_TARGETS if targets is None else targets)
        """Label -> the plan step target that answers it."""
        self.masked = mask_like_the_graph((r.text for r in self.records), pack, mode,
                                          score_threshold)
        # Every part masked alone, once (one detector call per part, as a record's text).
        flat = [part for r in self.records for part in r.parts]
        masked_parts = iter(mask_like_the_graph((text for _, text in flat), pack, mode,
                                                score_threshold) if flat else [])
        self.parts: list[tuple[IndexedPart, ...]] = [
            tuple(IndexedPart(label, raw, masked, part_pattern(masked))
                  for (label, raw), masked in zip(r.parts, masked_parts, strict=False))
            for r in self.records]
        """Per record (same order as ``records``), its parts masked."""
        self.mask_s = time.perf_counter() - started
        self._exact = _group(self.masked)
        self._normal = [normalise(m) for m in self.masked]
        self._by_normal = _group(self._normal)
        self.stats = MatchStats()
        labels = sorted({r.label for r in self.records})
        self.wrong: dict[str, str] = {}
        """record id -> the wrong label the noisy oracle gives for it."""
        for r in self.records:
            rng = random.Random(f"{seed}:{r.id}")
            if rng.random() < wrong_share:
                self.wrong[r.id] = rng.choice([lab for lab in labels if lab != r.label])

    def label_for(self, record: LabelledRecord) -> str:
        """What the oracle answers about ``record``: its gold label, or its wrong one."""
        wrong = self.wrong.get(record.id)
        if wrong is not None:
            with self.stats._lock:
                self.stats.wrong += 1
        return wrong or record.label

    def lookup(self, text: str) -> Match:
        """The record whose masked text is ``text``: exact, then with pseudonym numbering
        ignored, then the closest (difflib ratio over the normalised texts)."""
        hits = self._exact.get(text)
        if hits:
            return self._match(hits, "exact", 1.0)
        query = normalise(text)
        hits = self._by_normal.get(query)
        if hits:
            return self._match(hits, "normalised", 1.0)
        best, best_ratio = 0, -1.0
        matcher = difflib.SequenceMatcher(autojunk=False)
        matcher.set_seq2(query)  # SequenceMatcher caches details about seq2: the fixed side
        for i, candidate in enumerate(self._normal):
            matcher.set_seq1(candidate)
            # The cheap upper bounds first: ratio() is quadratic, the bounds are not.
            if matcher.real_quick_ratio() <= best_ratio or matcher.quick_ratio() <= best_ratio:
                continue
            ratio = matcher.ratio()
            if ratio > best_ratio:
                best, best_ratio = i, ratio
        return self._match([best], "fallback", best_ratio)

    def _match(self, indices: list[int], kind: MatchKind, similarity: float) -> Match:
        first = self.records[indices[0]]
        ambiguous = any(self.records[i].label != first.label for i in indices[1:])
        return Match(first, kind, similarity, ambiguous, indices[0])

    def plan_for(self, match: Match, text: str,
                 schema: Mapping[str, Any]) -> dict[str, Any]:
        """The plan answer (``{"steps": [...]}``) for the record ``match`` found, cut out of
        ``text`` (the request's masked message); counts its parts in the stats."""
        allowed, max_steps = plan_limits(schema)
        found: list[FoundPart] = []
        after = 0
        for part in self.parts[match.position]:
            hit = locate_part(part, text, after)
            found.append(hit)
            if hit.kind != "missing":
                after = hit.end
        located = sorted((f for f in found if f.kind != "missing"), key=lambda f: f.start)
        if not located:  # no parts, or none found: the whole message is one request
            stripped = text.strip()
            start = text.find(stripped) if stripped else 0
            located = [FoundPart(match.record.label, start, start + len(stripped), "exact")]
        if max_steps is not None:
            located = located[:max(max_steps, 1)]
        steps = []
        off_schema = 0
        for step in located:
            target = self.targets.get(step.label)
            if allowed is not None and target not in allowed:
                off_schema += 1
                target = allowed[0]
            steps.append({"target": target if target is not None else step.label,
                          "text": text[step.start:step.end], "why": step.label})
        self.stats.count_plan(match.record.id, found, off_schema)
        return {"steps": steps}


def _group(texts: Sequence[str]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for i, text in enumerate(texts):
        groups.setdefault(text, []).append(i)
    return groups


# --- the request and the answer ----------------------------------------------------------------


def message_text(messages: Any) -> tuple[str, bool]:
    """(the working text a planner request is about, whether the planner layout was found): the
    ``Message:`` section of the last user message (to the last draft section, or to the end when
    there is none: a plan request), else that whole message."""
    user = [m["content"] for m in (messages if isinstance(messages, list) else [])
            if isinstance(m, dict) and m.get("role") == "user"
            and isinstance(m.get("content"), str)]
    if not user:
        return "", False
    content: str = user[-1]
    start = content.find(MESSAGE_START)
    if start < 0:
        return content, False
    start += len(MESSAGE_START)
    end = content.rfind(DRAFT_START)
    return content[start:end if end >= start else len(content)], True


def requested_schema(response_format: Any) -> dict[str, Any] | None:
    """The JSON schema in ``response_format``: ``{"type": "json_schema", "json_schema":
    {"schema"}}`` (OpenAI) or ``{"type": "json_object", "schema"}`` (llama.cpp)."""
    if not isinstance(response_format, dict):
        return None
    inner = response_format.get("json_schema")
    schema = inner.get("schema") if isinstance(inner, dict) else response_format.get("schema")
    return schema if isinstance(schema, dict) else None


def _resolve(schema: Mapping[str, Any], node: Any) -> Any:
    """A ``{"$ref": "#/$defs/X"}`` node replaced by what it points at (local refs only)."""
    while isinstance(node, dict) and isinstance(node.get("$ref"), str):
        target: Any = schema
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        node = target
    return node


def is_plan(schema: Mapping[str, Any] | None) -> bool:
    """Whether ``schema`` asks for a plan (plan mode's ``{"steps": [...]}``)."""
    props = schema.get("properties") if schema is not None else None
    return isinstance(props, dict) and "steps" in props


def plan_limits(schema: Mapping[str, Any]) -> tuple[list[Any] | None, int | None]:
    """(the step target enum, the most steps) of a plan schema; None where it says nothing."""
    props = schema.get("properties")
    steps = _resolve(schema, props.get("steps") if isinstance(props, dict) else None)
    if not isinstance(steps, dict):
        return None, None
    most = steps.get("maxItems")
    item = _resolve(schema, steps.get("items"))
    item_props = item.get("properties") if isinstance(item, dict) else None
    allowed = _enum(schema, item_props.get("target")) if isinstance(item_props, dict) else None
    return (allowed or None,
            most if isinstance(most, int) and not isinstance(most, bool) else None)


def _enum(schema: Mapping[str, Any], prop: Any) -> list[Any] | None:
    prop = _resolve(schema, prop)
    if not isinstance(prop, dict):
        return None
    if isinstance(prop.get("enum"), list):
        return list(prop["enum"])
    for key in ("anyOf", "oneOf", "allOf"):  # Optional[Label] and friends
        options = prop.get(key)
        for option in options if isinstance(options, list) else []:
            values = _enum(schema, option)
            if values is not None:
                return values
    return None


def oracle_answer(label: str, schema: Mapping[str, Any] | None) -> tuple[dict[str, Any], bool]:
    """(the answer object, whether ``label`` fits the schema's label enum). Without a schema:
    shoal's PlannerAnswer keys. With one: exactly its properties (``additionalProperties`` is
    false in what shoal sends), ``label`` and ``answer`` the gold label, ``confidence`` 1.0."""
    default: dict[str, Any] = {"answer": label, "label": label, "confidence": 1.0}
    props = schema.get("properties") if schema is not None else None
    if not isinstance(props, dict) or schema is None:
        return default, True
    answer: dict[str, Any] = {}
    in_schema = True
    for name, prop in props.items():
        if name in default:
            answer[name] = default[name]
            if name == "label":
                allowed = _enum(schema, prop)
                in_schema = allowed is None or label in allowed
            continue
        resolved = _resolve(schema, prop)
        kind = resolved.get("type") if isinstance(resolved, dict) else None
        # Keys shoal does not send today; filled only so a stricter schema still validates.
        answer[name] = (1.0 if kind == "number" else 1 if kind == "integer"
                        else True if kind == "boolean" else label)
    return answer, in_schema


def _words(text: str) -> int:
    return len(text.split())


def completion(index: OracleIndex, body: Mapping[str, Any], model: str) -> dict[str, Any]:
    """The chat completion for one request body."""
    messages = body.get("messages")
    text, parsed = message_text(messages)
    match = index.lookup(text)
    schema = requested_schema(body.get("response_format"))
    answer: dict[str, Any]
    if schema is not None and is_plan(schema):
        answer, in_schema = index.plan_for(match, text, schema), True
    else:
        answer, in_schema = oracle_answer(index.label_for(match.record), schema)
    index.stats.count(match, parsed=parsed, in_schema=in_schema)
    content = json.dumps(answer)
    # Rough tokens (words), so shoal's metering and USD estimates have numbers to add up.
    prompt_tokens = sum(_words(m["content"]) for m in messages or []
                        if isinstance(m, dict) and isinstance(m.get("content"), str))
    completion_tokens = _words(content)
    return {
        "id": f"chatcmpl-oracle-{uuid.uuid4().hex[:12]}", "object": "chat.completion",
        "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def make_app(index: OracleIndex, model: str = DEFAULT_MODEL) -> FastAPI:
    """The FastAPI app answering as the oracle."""
    app = FastAPI(title="shoal oracle planner (test double)", docs_url=None, redoc_url=None,
                  openapi_url=None)

    def _error(status: int, type_: str, code: str) -> JSONResponse:
        # OpenAI's error shape; the message names nothing of the request.
        return JSONResponse({"error": {"message": code.replace("_", " "), "type": type_,
                                       "code": code, "param": None}}, status_code=status)

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": model, "object": "model", "created": 0,
                                            "owned_by": "shoal-oracle"}]}

    @app.get("/v1/oracle/stats")
    def stats() -> dict[str, Any]:
        return index.stats.to_dict() | {"records": len(index.records)}

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: Request) -> dict[str, Any] | JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "invalid_request_error", "body_not_json")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error(400, "invalid_request_error", "messages_missing")
        if body.get("stream"):
            return _error(400, "invalid_request_error", "stream_not_supported")
        # A fallback lookup is CPU work (difflib over every record): off the event loop.
        return await run_in_threadpool(completion, index, body, model)

    return app


# --- serving ------------------------------------------------------------------------------------


class OracleServer:
    """The oracle app under uvicorn in a daemon thread on 127.0.0.1 (port 0: a free one, bound
    before the thread starts, so there is no race for it). ``stop`` shuts it down cleanly."""

    def __init__(self, index: OracleIndex, *, model: str = DEFAULT_MODEL, port: int = 0) -> None:
        self.index = index
        self.model = model
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((HOST, port))
        self.port: int = self._sock.getsockname()[1]
        # No access log: paths only, but a test double should print nothing per request; no
        # websockets (not needed, and their import warns on some versions); no lifespan.
        config = uvicorn.Config(make_app(index, model), log_level="warning", access_log=False,
                                ws="none", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run,
                                        kwargs={"sockets": [self._sock]},
                                        name="oracle-planner", daemon=True)

    @property
    def base_url(self) -> str:
        """What ``SHOAL_PLANNER_URL`` should be (the graph appends ``/chat/completions``)."""
        return f"http://{HOST}:{self.port}/v1"

    def start(self, timeout_s: float = 30.0) -> OracleServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the oracle planner's server thread exited during start-up")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the oracle planner did not start within {timeout_s} s")
            time.sleep(0.02)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self._sock.close()

    def __enter__(self) -> OracleServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def serve_oracle(records: Sequence[LabelledRecord] | str | Path, *, pack: str = DEFAULT_PACK,
                 mode: str = "pseudonymize", score_threshold: float | None = None,
                 model: str = DEFAULT_MODEL, port: int = 0, wrong_share: float = 0.0,
                 seed: int = 0,
                 targets: Mapping[str, str] | None = None) -> Iterator[OracleServer]:
    """The oracle in a thread of this process, on a free port of 127.0.0.1 unless ``port`` is
    given; ``records`` is a labelled JSONL path or the records; ``pack``, ``mode`` and
    ``score_threshold`` are the graph's masker's; ``targets`` maps a label to the plan step
    target answering it (default: the healthcare cascade's). Stopped on exit."""
    if isinstance(records, str | Path):
        records = read_records(records)
    index = OracleIndex(records, pack=pack, mode=mode, score_threshold=score_threshold,
                        wrong_share=wrong_share, seed=seed, targets=targets)
    server = OracleServer(index, model=model, port=port)
    with server:
        yield server


def _targets_arg(value: str) -> dict[str, str]:
    """``--targets``: a JSON object mapping each label to a target name."""
    try:
        targets = json.loads(value)
    except ValueError:
        raise argparse.ArgumentTypeError("not JSON") from None
    if not isinstance(targets, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in targets.items()):
        raise argparse.ArgumentTypeError("must be a JSON object of label -> target name")
    return targets


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="labelled JSONL: id, text, label")
    parser.add_argument("--port", type=int, default=0, help="0: a free port (printed)")
    parser.add_argument("--pack", default=DEFAULT_PACK,
                        help="the identifier pack the graph's privacy_masker uses")
    parser.add_argument("--mode", default="pseudonymize",
                        help="the graph's privacy_masker mode (pseudonymize, redact, hash)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="the model id it answers as")
    parser.add_argument("--wrong-share", type=float, default=0.0,
                        help="answer this share of the records with a wrong label (seeded)")
    parser.add_argument("--seed", type=int, default=0, help="which records get wrong answers")
    parser.add_argument("--targets", type=_targets_arg, default=None,
                        help="plan requests: JSON label -> step target (default: the healthcare "
                             "cascade's)")
    args = parser.parse_args(argv)
    records = read_records(args.data)
    index = OracleIndex(records, pack=args.pack, mode=args.mode, wrong_share=args.wrong_share,
                        seed=args.seed, targets=args.targets)
    print(f"oracle planner: {len(records)} records masked with {args.pack} in "
          f"{index.mask_s:.1f} s", file=sys.stderr, flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with OracleServer(index, model=args.model, port=args.port) as server:
        print(server.base_url, flush=True)  # the one stdout line: what SHOAL_PLANNER_URL gets
        while not stop.wait(0.5):  # a timed wait: the signal handler runs between waits
            pass
    print(json.dumps({k: v for k, v in index.stats.to_dict().items()
                      if k not in ("fallbacks", "part_misses")}),
          file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
