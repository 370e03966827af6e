"""Write the healthcare example's **multi-intent** patient messages: ``multi_dev.jsonl`` and
``multi_test.jsonl`` next to this file. Every template was written for shoal; nothing is
downloaded.

A patient often puts two or three errands into one portal message ("I need my refill. Also, my
dad's face is drooping."). Such a message here is a **connector family** (a pattern such as
``{a} Also, {b}``, ``Two things: {a} And {b}`` or ``Quick ones: 1) {a} 2) {b} 3) {c}``, a few
variants each) filled with **parts**: the core text of single-intent templates of
``make_messages.py`` (no greeting or signature) with their slots filled. Parts come from its
ordinary families of the labels appointment, prescription_refill, symptom_report, billing,
emergency and off_topic (never injection, never the form-like families that are not wrapped),
one part per label, so a message's parts have distinct labels. A connector may lower-case a
part's first letter or drop its final period; parts keep their own family's styling (``heavy``
text-speak always, ``normal`` casing, punctuation and typos sometimes). Most messages get
make_messages' greetings and signatures, with Faker personal data filled into the whole message
at once (a part carries the same values as the text around it).

Records, one JSON object a line::

    {"id": "hm-00001", "text": ..., "label": "emergency",
     "labels": ["appointment", "emergency"],
     "parts": [{"label": "appointment", "text": ...}, {"label": "emergency", "text": ...}],
     "family": "conn_also", "part_families": ["appt_missed", "em_bleeding"],
     "split": "dev", "multi": true, "has_pii": true, "pii": ["name", "phone"]}

``labels`` are the parts' labels in order of appearance; ``label`` is the first of them in
``make_messages.PRIORITY`` (off_topic after billing), the rule of the ``hard_multi_*`` families;
each ``parts[].text`` is the exact substring of ``text`` (after wrapping, styling and personal
data), in order and not overlapping; ``family`` is the connector family.

Splits are **family-disjoint** twice over: parts of ``multi_test`` come only from the families
``make_messages.split_families`` puts in test, parts of ``multi_dev`` only from its dev
families (no training family appears in either), and each connector family is in exactly one
file (about a third dev, the rest test). About 30% of messages have three parts.

    python examples/healthcare/data/make_multi.py [OUT_DIR]

Deterministic, with its own seed and random generators, so ``make_messages.py``'s files do not
change: the same seed and the same Faker version write byte-identical files.
"""

from __future__ import annotations

import random
import re
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faker import Faker

OUT_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(OUT_DIR))
import make_messages as mm  # noqa: E402  (this folder's generator: families, pools, styling)

SEED = 20261114
SPLITS = ("dev", "test")
SIZES = {"dev": 120, "test": 240}
"""Messages per split."""
MIN_SIZE = {"dev": 80, "test": 160}
MIN_TEST_PER_LABEL = 20
"""Test messages with a part of each label at least (the unit tests hold the files to these)."""
MIN_TEST_EMERGENCY = 25
"""Test messages with an emergency part at least: the safety-critical case."""
DEV_SHARE = 1 / 3
"""Share of the connector families in dev (per group: with and without three-part variants)."""
THREE_SHARE = 0.3
"""Chance that a message has three parts rather than two."""
WRAP_SHARE = 0.8
"""Chance of a greeting and signature (make_messages' lists, which include empty ones)."""
PART_STYLE_SHARE = 0.4
"""Chance that a part of a ``normal`` family gets make_messages' styling (``heavy``: always)."""
LOWER_SHARE = 0.1
"""Chance that the whole message is typed in lower case."""

LABELS = ("appointment", "prescription_refill", "symptom_report", "billing", "emergency",
          "off_topic")
"""The labels parts are drawn from (make_messages' labels without injection)."""
ORDER = (*mm.PRIORITY, "off_topic")
"""Which part's label is the message's ``label``: the first of ``labels`` in this order."""
LABEL_WEIGHT = {"appointment": 1.2, "prescription_refill": 1.2, "symptom_report": 1.1,
                "billing": 1.0, "emergency": 1.0, "off_topic": 0.6}
"""Relative chance of each label per part (off-topic asides are rarer)."""

PROPER_SLOTS = {"doctor", "pharmacy_cap", "mail", "insurer", "drug", "drug_dose", "pharmacy",
                "controlled", "kid_drug", "place", "city", "specialty", "team", "event"}
"""Slots whose fillers are names: a part that starts with one keeps its capital letter."""
_GREETING = re.compile(r"^(?:Hi|Hello|Hey|Good (?:morning|afternoon|evening))[,.]?\s+(?:-\s+)?")
_SLOT = re.compile(r"\{([abc])((?:\|(?:lc|np))*)\}")
_LEAD_SLOT = re.compile(r"^\{(\w+)\}")
_LIST_START = ("- ", "* ", "1) ", "1. ")


@dataclass(frozen=True, slots=True)
class Connector:
    """One connector family: a way of joining requests, in a few variants. ``{a}``, ``{b}``,
    ``{c}`` are the parts in order; ``|lc`` lower-cases a part's first letter where natural,
    ``|np`` drops its final period (and refuses a part ending in ``?`` or ``!``)."""

    name: str
    templates: tuple[str, ...]

    def variants(self, n_parts: int) -> list[str]:
        return [t for t in self.templates if len(set(_SLOT.findall(t))) == n_parts]


def conn(name: str, *templates: str) -> Connector:
    return Connector(name, templates)


CONNECTORS = [
    conn("conn_also", "{a} Also, {b|lc}", "{a} Also {b|lc}",
         "{a} Also, {b|lc} And {c|lc}"),
    conn("conn_two_things", "Two things: {a} And {b|lc}",
         "Two things. First, {a|lc} Second, {b|lc}", "Three things: {a} {b} And {c|lc}"),
    conn("conn_blank_line", "{a}\n\n{b}", "{a}\n{b}", "{a}\n\n{b}\n\n{c}"),
    conn("conn_oh_and", "{a} Oh and {b|lc}", "{a} Oh, and {b|lc}", "{a} oh and {b|lc}"),
    conn("conn_comma_and", "{a|np}, and {b|lc}", "{a|np} and {b|lc}",
         "{a|np}, {b|lc|np}, and {c|lc}"),
    conn("conn_numbered", "Quick ones: 1) {a} 2) {b}", "Quick ones: 1) {a} 2) {b} 3) {c}",
         "1) {a}\n2) {b}\n3) {c}", "1. {a}\n2. {b}"),
    conn("conn_separately", "{a} Separately - {b|lc}", "{a} Separately, {b|lc}",
         "{a} On a separate note, {b|lc}"),
    conn("conn_while_here", "{a} While I have you, {b|lc}", "{a} While I'm writing, {b|lc}",
         "{a} Since I'm messaging anyway, {b|lc}"),
    conn("conn_ps", "{a}\nP.S. {b}", "{a} PS {b|lc}", "{a} P.S. {b} P.P.S. {c}"),
    conn("conn_one_more", "{a} Another thing: {b}", "{a} One more thing, {b|lc}",
         "{a} One more thing - {b|lc} And one last one: {c|lc}"),
    conn("conn_bullets", "- {a}\n- {b}", "- {a}\n- {b}\n- {c}", "* {a}\n* {b}"),
    conn("conn_first_second", "First, {a|lc} Then {b|lc}", "First thing: {a} Second thing: {b}",
         "First {a|lc} Second, {b|lc} Last, {c|lc}"),
    conn("conn_sorry_several", "Sorry, a few things. {a} {b} {c}",
         "Sorry for the long message. {a} {b}", "Sorry to send so many questions. {a} {b} {c}"),
    conn("conn_dash", "{a|np} - and {b|lc}", "{a|np} -- also {b|lc}", "{a|np}; {b|lc}"),
    conn("conn_plus", "{a} Plus {b|lc}", "{a} + {b|lc}", "{a} Plus, {b|lc} Plus {c|lc}"),
    conn("conn_btw", "{a} Btw {b|lc}", "{a} BTW, {b|lc}", "{a} By the way, {b|lc}",
         "{a} btw {b|lc|np} and {c|lc}"),
    conn("conn_anyway", "{a} Anyway, {b|lc}", "{a} Anyways {b|lc}",
         "{a} Anyway - {b|lc} Also {c|lc}"),
]


@dataclass(frozen=True, slots=True)
class Part:
    """One request: slots filled, personal data fields still ``{name}``-style."""

    family: mm.Family
    text: str
    lowerable: bool
    """Whether its first letter may be lower-cased (not a name, not ``I``, not ``Dr``)."""


def split_connectors(connectors: Sequence[Connector], rng: random.Random) -> dict[str, str]:
    """Connector family name -> dev or test: per group (with and without three-part variants),
    shuffled, a third (at least one) to dev, the rest to test."""
    out: dict[str, str] = {}
    for three in (True, False):
        names = [c.name for c in connectors if bool(c.variants(3)) == three]
        rng.shuffle(names)
        n_dev = max(1, round(len(names) * DEV_SHARE))
        out.update({name: "dev" if i < n_dev else "test" for i, name in enumerate(names)})
    return out


def part_families(split: str) -> dict[str, list[mm.Family]]:
    """make_messages' families of ``split`` (its own family split) per label, as parts may use
    them: ordinary (not hard), wrapped (no forms), not injection."""
    split_of = mm.split_families(mm.FAMILIES, random.Random(mm.SEED + 1))
    out: dict[str, list[mm.Family]] = {label: [] for label in LABELS}
    for f in mm.FAMILIES:
        if split_of[f.name] == split and f.label in out and not f.hard and f.wrap:
            out[f.label].append(f)
    return out


def _natural_lower(text: str) -> bool:
    first = text.split(" ", 1)[0]
    return first[1:2].islower() and not first.startswith(("I'", "Dr"))


def _lower(text: str) -> str:
    return text[0].lower() + text[1:]


def make_part(family: mm.Family, rng: random.Random) -> Part:
    """A filled template of ``family`` without its greeting, styled like its family."""
    template = rng.choice(family.templates)
    stripped = _GREETING.sub("", template)
    if stripped != template:
        stripped = stripped[0].upper() + stripped[1:]
    lead = _LEAD_SLOT.match(stripped)
    lowerable = not (lead and (lead.group(1) in PROPER_SLOTS or lead.group(1) in mm.PII_KINDS))
    text = mm._fill_slots(stripped, family, rng)
    if family.style == "heavy" or rng.random() < PART_STYLE_SHARE:
        text = mm.style(text, rng, family.style)
    return Part(family, re.sub(r"[ \t]{2,}", " ", text).strip(), lowerable)


def _draw_labels(n: int, rng: random.Random) -> list[str]:
    labels: list[str] = []
    while len(labels) < n:
        left = [label for label in LABELS if label not in labels]
        labels.append(rng.choices(left, [LABEL_WEIGHT[label] for label in left])[0])
    return labels


def _compose(template: str, parts: Sequence[Part]) -> list[tuple[int | None, str]] | None:
    """The connector filled: segments (part index or None for connector text, text); None when
    a part cannot take the connector's modifiers."""
    segments: list[tuple[int | None, str]] = []
    pos = 0
    for m in _SLOT.finditer(template):
        if m.start() > pos:
            segments.append((None, template[pos:m.start()]))
        i = "abc".index(m.group(1))
        text, mods = parts[i].text, m.group(2).split("|")[1:]
        if "np" in mods:
            if text.endswith(("?", "!")):
                return None
            text = text.rstrip(".")
        if "lc" in mods and parts[i].lowerable and _natural_lower(text):
            text = _lower(text)
        segments.append((i, text))
        pos = m.end()
    if pos < len(template):
        segments.append((None, template[pos:]))
    return segments


def _wrap(segments: list[tuple[int | None, str]], parts: Sequence[Part], block: bool,
          rng: random.Random) -> list[tuple[int | None, str]]:
    """Greeting and signature as make_messages' ``_message`` adds them."""
    family = parts[0].family
    has_pii = any(k in mm.PII_KINDS for p in parts for k in mm._FIELD.findall(p.text))
    add_pii = not has_pii and rng.random() < max(p.family.pii for p in parts)
    greeting = rng.choice(mm.PII_GREETINGS if add_pii and rng.random() < 0.4 else mm.GREETINGS)
    if add_pii and not any(k in mm.PII_KINDS for k in mm._FIELD.findall(greeting)):
        signature = rng.choice(mm.PII_SIGNATURES)
    else:
        signature = rng.choice(mm.SIGNATURES + mm.PII_SIGNATURES[:3])
    first_index, first = segments[0]
    lowerable = parts[first_index].lowerable if first_index is not None else True
    if greeting.endswith(", ") and lowerable and _natural_lower(first):
        segments = [(first_index, _lower(first)), *segments[1:]]
    greeting = mm._fill_slots(greeting, family, rng)
    if block and greeting:  # a list starts on its own line
        greeting = greeting.rstrip(" ,-")
        greeting += ("" if greeting.endswith((".", ":")) else ",") + "\n"
    if block and signature.startswith(" "):
        signature = "\n" + signature.lstrip()
    out = [(None, greeting)] if greeting else []
    return [*out, *segments, *([(None, signature)] if signature else [])]


def message(connector: Connector, n_parts: int, families: Mapping[str, Sequence[mm.Family]],
            rng: random.Random, fake: Faker, seen: set[str]) -> dict[str, Any] | None:
    """One record (no id) of ``n_parts`` requests joined by a variant of ``connector``; None if
    the draw does not fit the connector or repeats a message in ``seen``."""
    template = rng.choice(connector.variants(n_parts))
    labels = _draw_labels(n_parts, rng)
    parts = [make_part(rng.choice(families[label]), rng) for label in labels]
    segments = _compose(template, parts)
    if segments is None:
        return None
    key = mm.normalise(mm._FIELD.sub("", "".join(text for _, text in segments)))
    if key in seen:
        return None
    seen.add(key)
    if rng.random() < WRAP_SHARE:
        segments = _wrap(segments, parts, template.startswith(_LIST_START), rng)
    if rng.random() < LOWER_SHARE:
        segments = [(i, text.lower()) for i, text in segments]
    person = mm.Person(fake, rng)  # filled segment by segment in text order: as one text
    kinds: set[str] = set()
    part_texts: dict[int, str] = {}
    pieces: list[str] = []
    for i, raw in segments:
        text, found = mm._fill_pii(raw, person)
        kinds.update(found)
        pieces.append(text)
        if i is not None:
            part_texts[i] = text
    text = "".join(pieces)
    if text != text.strip() or re.search(r"[ \t]{2,}", text):
        raise RuntimeError(f"connector {connector.name}: stray whitespace in {text!r}")
    return {"text": text, "label": min(labels, key=ORDER.index), "labels": labels,
            "parts": [{"label": labels[i], "text": part_texts[i]} for i in range(n_parts)],
            "family": connector.name, "part_families": [p.family.name for p in parts],
            "multi": True, "has_pii": bool(kinds), "pii": sorted(kinds)}


def build(seed: int = SEED) -> dict[str, list[dict[str, Any]]]:
    """Every record by split (dev, test), ids numbered through both."""
    rng = random.Random(seed)
    fake = Faker("en_US")
    fake.seed_instance(seed)
    connector_split = split_connectors(CONNECTORS, random.Random(seed + 1))
    seen: set[str] = set()
    rows: dict[str, list[dict[str, Any]]] = {}
    for split in SPLITS:
        families = part_families(split)
        connectors = [c for c in CONNECTORS if connector_split[c.name] == split]
        rows[split] = []
        attempts = 0
        while len(rows[split]) < SIZES[split]:
            attempts += 1
            if attempts > 50 * SIZES[split]:
                raise RuntimeError(f"{split}: only {len(rows[split])} distinct messages")
            n_parts = 3 if rng.random() < THREE_SHARE else 2
            connector = rng.choice([c for c in connectors if c.variants(n_parts)])
            record = message(connector, n_parts, families, rng, fake, seen)
            if record is not None:
                rows[split].append({**record, "split": split})
    number = 0
    for split in SPLITS:
        for i, row in enumerate(rows[split]):
            number += 1
            rows[split][i] = {"id": f"hm-{number:05d}", "text": row["text"],
                              "label": row["label"], "labels": row["labels"],
                              "parts": row["parts"], "family": row["family"],
                              "part_families": row["part_families"], "split": split,
                              "multi": True, "has_pii": row["has_pii"], "pii": row["pii"]}
    check(rows)
    return rows


def check(rows: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    """The sizes and coverage the unit tests hold the files to."""
    for split, records in rows.items():
        if len(records) < MIN_SIZE[split]:
            raise RuntimeError(f"{split}: {len(records)} messages, fewer than {MIN_SIZE[split]}")
    covered = Counter(label for r in rows["test"] for label in r["labels"])
    short = {label: covered[label] for label in LABELS if covered[label] < MIN_TEST_PER_LABEL}
    if short or covered["emergency"] < MIN_TEST_EMERGENCY:
        raise RuntimeError(f"test: too few messages with parts of {short or covered}")


def main(out_dir: Path = OUT_DIR, *, seed: int = SEED,
         echo: Callable[[str], object] = print) -> dict[str, Path]:
    rows = build(seed)
    paths = mm.write(out_dir, rows, prefix="multi_")
    for split, records in rows.items():
        parts = Counter(label for r in records for label in r["labels"])
        three = sum(len(r["parts"]) == 3 for r in records)
        echo(f"{paths[split]}: {len(records)} messages ({three} with three parts), parts: "
             + ", ".join(f"{label} {parts[label]}" for label in LABELS))
    return paths


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT_DIR)
