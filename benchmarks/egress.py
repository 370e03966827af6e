"""The independent egress check (``shoal.policies.privacy.second_detector``): how often it blocks
an escalation it should have let go, and how much of what the masker misses it catches.

Graph: examples/healthcare/cascade.yaml, its real masker (``privacy_masker``, Safe Harbor pack).
Data: examples/healthcare/data/test.jsonl (635 messages; ``pii`` names the kinds of personal data
each one holds, from the generator).

1. **Upper bound** (every record as if it escalated): each test message's masked working text as
   triage reads it (``shoal.graphs.node_inputs``, refused records included), scanned by the
   independent detector. A block is *false* when none of its hits has a type the record's gold
   ``pii`` kinds can explain (name -> NAME/NAME_CUE, phone -> PHONE, email -> EMAIL, dob -> DATE,
   address -> ADDRESS/ZIP, mrn and member_id -> ID_NUMBER); "any block" counts every block as
   false (the strictest reading: it includes names the masker missed).
2. **Actual escalations**: the whole cascade, run with the planner replaced by
   :class:`PayloadRecorder` (a named stand-in behind the real ``RemoteGuard``, with the graph's
   real egress settings: the masker's re-scan, then the independent check in ``block`` mode) and
   no budget caps, so every escalation the graph decides reaches the guard. The recorder answers
   with the local model's own label, so the graph takes the path it takes without a planner;
   what is measured is what the guard lets out. Per escalation: sent, blocked by the masker's
   re-scan, blocked by the independent check (false or not, as in 1).
3. **Catch rate**: seeded messages carrying identifiers of kinds the masker is known to miss
   (a nickname in quotes after "prefers to be called", e-mail addresses at example.org and
   plus-addressed ones, lone first names of other languages, lower-case street addresses and
   sign-off names, international phone numbers, long numbers, URLs), masked by the same masker.
   An identifier *survives* when one of its words (3+ letters or digits) is still in the clear
   in the masked text; it is *caught* when an independent hit overlaps a surviving word. For
   names, whether the name is in the shipped gazetteer is reported beside (names that are not
   show what the cues catch without it).

Values are never written to the results: counts, rates and record ids only. ``--show`` prints
the hits (type and text) of part 1 to the terminal, for a person checking the judgement.

    .venv/bin/python benchmarks/egress.py [--out benchmarks/results/egress.json] [--skip-cascade]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from shoal.graphs.loader import load_spec
from shoal.graphs.node_inputs import node_inputs
from shoal.graphs.results import Record, RunResult
from shoal.graphs.runtime import Graph
from shoal.models.base import Generation, JsonGeneration, JsonSchema, Message, Usage, validate_json
from shoal.observability import configure_logging
from shoal.policies.escalation.budget import BudgetSpec
from shoal.policies.privacy.name_gazetteer import first_names
from shoal.policies.privacy.second_detector import Hit, second_detector

ROOT = Path(__file__).resolve().parent.parent
GRAPH = ROOT / "examples" / "healthcare" / "cascade.yaml"
TEST = ROOT / "examples" / "healthcare" / "data" / "test.jsonl"
OUT = ROOT / "benchmarks" / "results" / "egress.json"

EXPLAINS = {
    "name": {"NAME", "NAME_CUE"}, "phone": {"PHONE"}, "email": {"EMAIL"}, "dob": {"DATE"},
    "address": {"ADDRESS", "ZIP"}, "mrn": {"ID_NUMBER"}, "member_id": {"ID_NUMBER"},
}
"""Gold ``pii`` kind -> the hit types it explains."""
BLOCKED = re.compile(r"egress blocked \((?P<kinds>[^)]*) (?P<how>found by the independent check|"
                     r"survived masking)\)")


MASKER_FILES = ("src/shoal/policies/privacy/detector.py", "src/shoal/policies/privacy/masking.py",
                "src/shoal/policies/privacy/packs/hipaa_safe_harbor.yaml")
"""The masker's own files: the results depend on what it misses, so they name its version."""


def masker_version(root: Path = ROOT) -> dict[str, str]:
    """The first 12 hex digits of the sha256 of each of the masker's files."""
    return {name: hashlib.sha256((root / name).read_bytes()).hexdigest()[:12]
            for name in MASKER_FILES}


def explained(types: set[str], pii: Sequence[str]) -> bool:
    """Whether one of the hit types is a kind of personal data the record holds."""
    return any(types & EXPLAINS.get(kind, set()) for kind in pii)


def rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


# --- part 1: every masked text ----------------------------------------------------------------


async def upper_bound(records: list[dict[str, Any]], show: bool) -> dict[str, Any]:
    inputs = await node_inputs(GRAPH, "triage", [Record(id=r["id"], text=r["text"])
                                                 for r in records], past_refusals=True)
    detector = second_detector()
    gold = {r["id"]: r["pii"] for r in records}
    blocked: list[str] = []
    false_blocks: list[str] = []
    types: Counter[str] = Counter()
    start = time.perf_counter()
    for rid, text in sorted(inputs.texts.items()):
        hits = detector.scan(text)
        if not hits:
            continue
        blocked.append(rid)
        kinds = {h.type for h in hits}
        types.update(kinds)
        if not explained(kinds, gold[rid]):
            false_blocks.append(rid)
        if show:
            shown = ", ".join(f"{h.type}={text[h.start:h.end]!r}" for h in hits)
            sys.stderr.write(f"{rid} pii={gold[rid]} {shown}\n")
    scan_ms = (time.perf_counter() - start) * 1000.0 / max(1, len(inputs.texts))
    n = len(inputs.texts)
    return {
        "records": n,
        "skipped": len(inputs.skipped),
        "blocked": len(blocked),
        "block_rate": rate(len(blocked), n),
        "false_blocks": len(false_blocks),
        "false_block_rate": rate(len(false_blocks), n),
        "false_block_ids": false_blocks,
        "blocked_with_gold_pii": len(blocked) - len(false_blocks),
        "hit_types_per_blocked_record": dict(sorted(types.items())),
        "mean_scan_ms": round(scan_ms, 3),
    }


# --- part 2: the escalations the cascade makes ------------------------------------------------


class PayloadRecorder:
    """A named stand-in for the planner: it records what it is sent (in memory) and answers
    with the local model's own label (read from the draft), so the graph goes the way it goes
    without a planner. It proves nothing about a planner; it stands where one stands so that the
    real guard decides what leaves."""

    def __init__(self) -> None:
        self.name = "payload-recorder"
        self.payloads: list[list[Message]] = []

    async def generate(self, messages: Sequence[Message], *, max_tokens: int = 256,
                       temperature: float = 0.0, timeout_s: float | None = None) -> Generation:
        self.payloads.append(list(messages))
        return Generation(text="", model=self.name, usage=Usage())

    async def generate_json(self, messages: Sequence[Message], schema: JsonSchema, *,
                            max_tokens: int = 512, timeout_s: float | None = None
                            ) -> JsonGeneration:
        self.payloads.append(list(messages))
        draft = messages[-1]["content"].rsplit("Draft from the local model:\n", 1)[-1]
        try:
            parsed = json.loads(draft)
        except ValueError:
            parsed = draft
        label = parsed.get("label") if isinstance(parsed, dict) else None
        answer = parsed.get("answer") if isinstance(parsed, dict) else parsed
        data = {"answer": answer if isinstance(answer, str) else "", "label": label,
                "confidence": 0.9}
        allowed = _labels(schema)
        if allowed is not None and label not in allowed:
            data["label"] = allowed[0]
        return JsonGeneration(text=json.dumps(data), model=self.name,
                              data=validate_json(schema, data), usage=Usage())


def _labels(schema: JsonSchema) -> list[str] | None:
    """The label enum of a planner answer schema, if it has one."""
    if not isinstance(schema, type):
        return None
    defs = schema.model_json_schema().get("$defs", {})
    enum = defs.get("Label", {}).get("enum")
    return list(enum) if enum else None


async def cascade(records: list[dict[str, Any]]) -> dict[str, Any]:
    spec, _ = load_spec(GRAPH)
    recorder = PayloadRecorder()
    graph = Graph(spec, base_dir=GRAPH.parent, models={"planner": recorder},
                  budget=BudgetSpec(), shadows=False, checked=True)
    gold = {r["id"]: r["pii"] for r in records}
    results: list[RunResult] = await graph.abatch([(r["id"], r["text"]) for r in records],
                                                  concurrency=4)
    outcome: Counter[str] = Counter()
    per_node: dict[str, Counter[str]] = {}
    false_blocks: list[str] = []
    records_with_escalation: set[str] = set()
    blocked_records: set[str] = set()
    for result in results:
        for trace in result.nodes:
            if not trace.escalate:
                continue
            reason = trace.reason or ""
            found = BLOCKED.search(reason)
            if trace.escalated:
                kind = "sent"
            elif found is not None and found["how"].startswith("found"):
                kind = "blocked_independent"
                types = {part.split(" ", 1)[1] for part in found["kinds"].split(", ")}
                if not explained(types, gold[result.id]):
                    false_blocks.append(f"{result.id}:{trace.node}")
            elif found is not None:
                kind = "blocked_masker_rescan"
            elif "critical" in reason and "route" in reason:
                kind = "routed_without_call"
            else:
                kind = "not_sent_other"
            outcome[kind] += 1
            per_node.setdefault(trace.node, Counter())[kind] += 1
            if kind in ("sent", "blocked_independent", "blocked_masker_rescan"):
                records_with_escalation.add(result.id)
            if kind.startswith("blocked"):
                blocked_records.add(result.id)
    reached = outcome["sent"] + outcome["blocked_independent"] + outcome["blocked_masker_rescan"]
    return {
        "records": len(results),
        "statuses": dict(Counter(r.status for r in results)),
        "escalations_reaching_the_guard": reached,
        "outcomes": dict(sorted(outcome.items())),
        "per_node": {n: dict(sorted(c.items())) for n, c in sorted(per_node.items())},
        "independent_block_rate": rate(outcome["blocked_independent"], reached),
        "false_blocks": len(false_blocks),
        "false_block_rate": rate(len(false_blocks), reached),
        "false_block_ids": sorted(false_blocks),
        "records_with_an_escalation": len(records_with_escalation),
        "payloads_recorded": len(recorder.payloads),
    }


# --- part 3: identifiers the masker misses -----------------------------------------------------

NICKNAMES = ["Bunny", "Kiki", "Tink", "Bear", "Sunny", "Pip", "Coco", "Bubba", "Scout", "Birdie",
             "Moose", "Peanut", "Ziggy", "Lulu"]
FOREIGN = ["Zsófia", "Wojciech", "Hrvoje", "Guðrún", "Siobhán", "Oluwaseun", "Bongani",
           "Þorsteinn", "Małgorzata", "Jürgen", "Dagný", "Eszter", "Tadeusz", "Radovan", "Aoife",
           "Niamh", "Chidinma", "Kwabena", "Søren", "Ioana", "Zdeněk", "Grzegorz", "Ingibjörg",
           "Nnamdi", "Teodora", "Mihaela", "Bartłomiej", "Vuyelwa", "Thandiwe", "Ólafur"]
LOWER_NAMES = ["tiffany", "zsofia", "mateo", "priya", "wojtek", "hrvoje", "aoife", "bongani"]
STREETS = [("12", "elm", "street"), ("48", "maple", "avenue"), ("7", "birch", "lane"),
           ("230", "old mill", "road"), ("19", "harbor view", "drive"), ("5", "cedar", "court"),
           ("88", "willow", "street"), ("301", "pine ridge", "road")]
EMAILS = ["jdoe@example.org", "zsofia.nagy+portal@example.org", "mom+rx@example.org",
          "w.kowalski+clinic@mail.example.com", "bunny.h@example.org",
          "g.jonsdottir+2024@example.net", "pat.lee+appt@sub.example.org", "kiki99@example.org"]
PHONES = ["+44 20 7946 0958", "+36 1 234 5678", "+48 22 123 45 67", "0049 30 1234567",
          "+353 1 555 0142", "+27 21 555 0199"]
NUMBERS = ["9876543210", "20240517883", "4111 1111 1111 1111", "77 1234 5678"]
URLS = ["https://example.org/u/jdoe", "www.example.org/patients/zsofia", "jdoe.example.com"]


def seeded() -> list[dict[str, Any]]:
    """The catch-rate set: (id, text, category, canary). Written for this benchmark."""
    items: list[tuple[str, str, str]] = []
    for i, nick in enumerate(NICKNAMES):
        template = ['My mom has her follow-up Tuesday; she prefers to be called "{v}".',
                    "Please note my son prefers to be called '{v}' at his visits.",
                    "Refill for my dad, he goes by {v} these days.",
                    "Appointment for my daughter (aka {v}) next week please."][i % 4]
        items.append(("nickname", template.format(v=nick), nick))
    for i, name in enumerate(FOREIGN):
        template = ["{v} has had a fever since Monday, can someone call back?",
                    "Can {v} get the flu shot this week?",
                    "I am writing for my grandmother, {v} needs her refill.",
                    "My neighbour {v} drove me to the ER yesterday, now I need a follow-up."][i % 4]
        items.append(("lone_foreign_name", template.format(v=name), name))
    for i, name in enumerate(LOWER_NAMES):
        template = ["can i move my appt to friday\nthanks, {v}", "need a refill of my inhaler "
                    "pls\nregards, {v}"][i % 2]
        items.append(("lower_case_signoff", template.format(v=name), name))
    for i, (number, street, suffix) in enumerate(STREETS):
        value = f"{number} {street} {suffix}"
        template = ["i live at {v} and need my bill sent there", "can you mail the forms to {v} "
                    "apt 2", "we moved to {v} last month, please update"][i % 3]
        items.append(("lower_case_street", template.format(v=value), value))
    for i, email in enumerate(EMAILS):
        template = ["Please send the receipt to {v} thanks", "my new email is {v}",
                    "portal login is {v}, it keeps failing"][i % 3]
        items.append(("email", template.format(v=email), email))
    for i, phone in enumerate(PHONES):
        template = ["I'm abroad, reach me on {v}", "call my sister at {v} if I miss it"][i % 2]
        items.append(("phone_international", template.format(v=phone), phone))
    for i, number in enumerate(NUMBERS):
        template = ["my insurance number is {v}", "reference {v} for the claim",
                    "paid with card {v}", "policy {v} was charged twice"][i % 4]
        items.append(("long_number", template.format(v=number), number))
    for i, url in enumerate(URLS):
        template = ["my documents are at {v}", "see {v} for my records"][i % 2]
        items.append(("url", template.format(v=url), url))
    return [{"id": f"seed-{i:03d}", "text": text, "category": cat, "canary": canary}
            for i, (cat, text, canary) in enumerate(items)]


_IDENTIFYING = re.compile(r"[^\W_]{3,}")
_NOT_IDENTIFYING = frozenset({"example", "org", "com", "net", "www", "https", "http", "mail",
                              "sub", "street", "avenue", "lane", "road", "drive", "court",
                              "patients", "clinic", "portal", "appt"})


def survivors(canary: str, masked: str) -> list[tuple[int, int]]:
    """Where the canary's identifying words are still in the clear in ``masked``."""
    spans = []
    for word in _IDENTIFYING.findall(canary):
        if word.casefold() in _NOT_IDENTIFYING:
            continue
        for m in re.finditer(rf"(?<![^\W_]){re.escape(word)}(?![^\W_])", masked):
            spans.append((m.start(), m.end()))
    return spans


async def catch_rate() -> dict[str, Any]:
    items = seeded()
    inputs = await node_inputs(GRAPH, "triage", [Record(id=s["id"], text=s["text"])
                                                 for s in items], past_refusals=True)
    detector = second_detector()
    names = first_names()
    per: dict[str, Counter[str]] = {}
    totals: Counter[str] = Counter()
    for item in items:
        masked = inputs.texts.get(item["id"])
        c = per.setdefault(item["category"], Counter())
        c["seeded"] += 1
        if masked is None:
            c["not_reached"] += 1
            continue
        left = survivors(item["canary"], masked)
        if not left:
            c["masked_by_masker"] += 1
            continue
        c["missed_by_masker"] += 1
        hits: list[Hit] = detector.scan(masked)
        caught = any(h.start < e and s < h.end for h in hits for s, e in left)
        c["caught"] += int(caught)
        if item["category"] in ("lone_foreign_name", "lower_case_signoff", "nickname"):
            in_gazetteer = item["canary"].casefold() in names
            c["missed_in_gazetteer"] += int(in_gazetteer)
            c["caught_not_in_gazetteer"] += int(caught and not in_gazetteer)
            c["missed_not_in_gazetteer"] += int(not in_gazetteer)
    for c in per.values():
        totals.update({k: v for k, v in c.items() if k in ("seeded", "missed_by_masker",
                                                             "caught", "masked_by_masker")})
    return {
        "seeded": totals["seeded"],
        "missed_by_masker": totals["missed_by_masker"],
        "caught": totals["caught"],
        "catch_rate": rate(totals["caught"], totals["missed_by_masker"]),
        "per_category": {
            k: {**dict(sorted(v.items())),
                "catch_rate": rate(v["caught"], v["missed_by_masker"])}
            for k, v in sorted(per.items())},
    }


async def held_out(n: int, seed: int) -> dict[str, Any]:
    """Masker misses on sentences this check was never tuned on: presidio-evaluator's offline
    generator (as benchmarks/masking.py uses it, with another seed), masked by the cascade's
    masker; per gold kind, how many spans survived and how many of those were caught."""
    from masking import NON_IDENTIFYING, generator_samples  # benchmarks/masking.py

    samples = generator_samples(n, seed)
    inputs = await node_inputs(GRAPH, "triage", [Record(id=f"gen-{i}", text=text)
                                                 for i, (text, _, _) in enumerate(samples)],
                               past_refusals=True)
    detector = second_detector()
    per: dict[str, Counter[str]] = {}
    for i, (text, gold, _) in enumerate(samples):
        masked = inputs.texts.get(f"gen-{i}")
        if masked is None:
            continue
        hits = detector.scan(masked)
        for start, end, kind in gold:
            c = per.setdefault(kind, Counter())
            c["spans"] += 1
            value = " ".join(w for w in re.findall(r"[^\W_]+", text[start:end])
                             if w.lower() not in NON_IDENTIFYING)
            left = survivors(value, masked) if value else []
            if not left:
                continue
            c["missed_by_masker"] += 1
            c["caught"] += int(any(h.start < e and s < h.end for h in hits for s, e in left))
    missed = sum(c["missed_by_masker"] for c in per.values())
    caught = sum(c["caught"] for c in per.values())
    return {
        "source": f"presidio-evaluator PresidioSentenceFaker, {n} sentences, seed {seed}",
        "gold_spans": sum(c["spans"] for c in per.values()),
        "missed_by_masker": missed,
        "caught": caught,
        "catch_rate": rate(caught, missed),
        "per_kind": {k: {**dict(sorted(v.items())),
                         "catch_rate": rate(v["caught"], v["missed_by_masker"])}
                     for k, v in sorted(per.items())},
    }


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--skip-cascade", action="store_true",
                        help="leave out part 2 (the whole cascade, with its generation model)")
    parser.add_argument("--sentences", type=int, default=300,
                        help="generated sentences for the held-out catch rate")
    parser.add_argument("--seed", type=int, default=7,
                        help="their seed (benchmarks/masking.py uses 42)")
    parser.add_argument("--show", action="store_true",
                        help="print part 1's hits (type and text) to stderr, never to results")
    args = parser.parse_args(argv)
    # The graphs log one line per node; a benchmark only wants its numbers.
    configure_logging("critical", stream=io.StringIO())
    records = [json.loads(line) for line in TEST.read_text(encoding="utf-8").splitlines()
               if line.strip()]
    started = time.perf_counter()
    out: dict[str, Any] = {
        "note": "see benchmarks/egress.py docstring; counts and ids only, never values",
        "data": "examples/healthcare/data/test.jsonl",
        "graph": "examples/healthcare/cascade.yaml",
        "masker_sha256": masker_version(),
        "upper_bound_every_masked_text": await upper_bound(records, args.show),
    }
    if not args.skip_cascade:
        out["cascade_escalations"] = await cascade(records)
    out["catch_rate_on_masker_misses"] = await catch_rate()
    out["catch_rate_held_out"] = await held_out(args.sentences, args.seed)
    out["seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    structlog.reset_defaults()
    sys.stdout.write(json.dumps({k: v for k, v in out.items() if k != "note"}, indent=2,
                                ensure_ascii=False)[:4000] + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
