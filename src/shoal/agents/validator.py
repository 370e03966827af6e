"""``medical_validator``: check medications, doses and ICD-10-CM codes in a text or a draft.

No model: a drug dictionary (``drug-named-entity-recognition``, 107k name variants with DrugBank
and MeSH ids), ICD-10-CM (``simple-icd-10-cm``), regular expressions for doses and frequencies,
and a reference table kept as data (``agents/data/dose_ranges.yaml``). It flags; it does not
prescribe.

What it reads: the working text, or with ``from_node`` that node's output: a string, a dict with
a text field (``text_field``), or a list of ``{drug, dose, unit[, frequency]}`` items (rendered
one per line, so finding spans then point into that rendering; ``output["source"]`` says which).

Checks and severities (each finding is ``{check, severity, message, span: [start, end]}``;
messages carry drug names, codes and table numbers only, never the text or a dose from it):

============== ======== =====================================================================
check          severity when
============== ======== =====================================================================
code_invalid   error    a code-shaped token that ICD-10-CM does not know (dotted codes always;
                        undotted ones only after a cue such as "ICD", "dx", "code": "B12" in
                        "vitamin B12" must not count)
code_category  info     a valid code that is a category, not a billable leaf
drug_fuzzy     info     a drug name recognised only approximately (typo) next to a dose
drug_unknown   warning  a draft item whose drug the dictionary does not know
dose_unparsed  warning  a draft item whose dose and unit could not be read
dose_no_drug   info     a dose with no drug nearby (same line/sentence)
range_unknown  info     a dose for a recognised drug that the table does not cover
dose_unit      error    a unit of the wrong kind for the drug ("lisinopril 10 units")
dose_low       warning  a single dose below the table's typical minimum
dose_high      warning  a single dose above the typical maximum single dose
dose_max       error    a single dose above the table's maximum daily dose
daily_max      error    single dose x stated frequency above the maximum daily dose
============== ======== =====================================================================

Confidence: 1.0 with no findings. Each info costs 0.05 (not below 0.8); any warning caps it at
0.6 and each further warning costs 0.05 (not below 0.35); any error caps it at 0.3, each further
error 0.05 (not below 0.05). Label ``ok`` when there is no warning or error, else ``flagged``; any
error also sets ``escalate`` with a reason naming the checks (a node's ``escalate_below`` applies
on top, in the runtime).

The dictionaries take about 2.5 s each to load: they are imported on first use, in the model
pool, once per process (:func:`preload` does it ahead of time, for readiness checks).
"""

from __future__ import annotations

import bisect
import functools
import math
import re
import warnings
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shoal.agents.base import Agent, AgentConfig, AgentContext, AgentResult, register
from shoal.errors import AgentError
from shoal.models.pool import map_errors, run_blocking, shared
from shoal.resources import AGENT_DATA, builtin_path

AGENT_NAME = "medical_validator"
LABELS = frozenset({"ok", "flagged"})

Severity = Literal["info", "warning", "error"]


class Finding(TypedDict):
    check: str
    severity: Severity
    message: str
    span: list[int]


# --- the reference table -------------------------------------------------------------------------


class _Range(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    unit: str
    single_min: float = Field(gt=0)
    single_max: float = Field(gt=0)
    daily_max: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> _Range:
        if not self.single_min <= self.single_max <= self.daily_max:
            raise ValueError("needs single_min <= single_max <= daily_max")
        if self.unit not in _FAMILY:
            raise ValueError(f"unknown unit {self.unit!r}")
        return self


class DrugRange(BaseModel):
    """One drug of ``dose_ranges.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    aliases: list[str] = Field(default_factory=list)
    units: list[str] = Field(min_length=1)
    ranges: list[_Range] = Field(default_factory=list)
    source: str

    @model_validator(mode="after")
    def _known_units(self) -> DrugRange:
        for unit in self.units:
            if unit not in _FAMILY:
                raise ValueError(f"{self.name}: unknown unit {unit!r}")
        return self

    @property
    def families(self) -> frozenset[str]:
        return frozenset(_FAMILY[u] for u in self.units)

    def range_for(self, unit: str) -> _Range | None:
        family = _FAMILY[unit]
        return next((r for r in self.ranges if _FAMILY[r.unit] == family), None)


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int
    drugs: list[DrugRange]


@functools.cache
def dose_table() -> dict[str, DrugRange]:
    """The packaged table keyed by lower-case canonical name and every alias."""
    raw = yaml.safe_load(builtin_path(AGENT_DATA, "dose_ranges.yaml").read_text(encoding="utf-8"))
    try:
        table = _Table.model_validate(raw)
    except ValidationError as exc:  # a packaging bug, not user input: the details are safe
        raise AgentError(f"dose_ranges.yaml is invalid: {exc}", node="-", agent=AGENT_NAME) from exc
    index: dict[str, DrugRange] = {}
    for drug in table.drugs:
        for key in (drug.name, *drug.aliases):
            index[key.lower()] = drug
    return index


# --- units, doses, frequencies -------------------------------------------------------------------

_UNIT_NAMES = {
    "mg": "mg", "mgs": "mg", "milligram": "mg", "milligrams": "mg",
    "g": "g", "gm": "g", "gram": "g", "grams": "g",
    "mcg": "mcg", "µg": "mcg", "μg": "mcg", "ug": "mcg", "microgram": "mcg", "micrograms": "mcg",
    "unit": "units", "units": "units", "iu": "units", "u": "units",
    "ml": "mL", "mls": "mL", "cc": "mL", "milliliter": "mL", "milliliters": "mL",
    "millilitre": "mL", "millilitres": "mL",
    "tablet": "tablet", "tablets": "tablet", "tab": "tablet", "tabs": "tablet", "pill": "tablet",
    "pills": "tablet", "capsule": "capsule", "capsules": "capsule", "cap": "capsule",
    "caps": "capsule", "puff": "puff", "puffs": "puff", "inhalation": "puff",
    "inhalations": "puff", "drop": "drop", "drops": "drop", "gtt": "drop", "gtts": "drop",
    "spray": "spray", "sprays": "spray", "patch": "patch", "patches": "patch",
    "meq": "mEq", "mmol": "mmol",
}
_FAMILY = {
    "mg": "mass", "g": "mass", "mcg": "mass", "units": "units", "mL": "volume",
    "tablet": "form", "capsule": "form", "puff": "puff", "drop": "drop", "spray": "spray",
    "patch": "patch", "mEq": "mEq", "mmol": "mmol",
}
_MG_PER = {"mg": 1.0, "g": 1000.0, "mcg": 0.001}

_NUM = r"\d{1,3}(?:,\d{3})+(?![\d])|\d+(?:\.\d+)?|\.\d+"
# Longest alternatives first; the lookahead keeps "g" from matching the start of "get".
_UNIT_RX = "|".join(sorted((re.escape(u) for u in _UNIT_NAMES), key=len, reverse=True))
_DOSE = re.compile(
    rf"(?<![\d.,])(?P<value>{_NUM})(?:\s*(?:-|–|to)\s*(?P<value_max>{_NUM}))?"
    rf"\s*(?P<unit>{_UNIT_RX})(?![\w])(?:\s*/\s*(?P<per>[a-z0-9]+)\b)?",
    re.IGNORECASE,
)
_PER_DAY = frozenset({"day", "d", "24h", "daily"})
_PER_NOT_A_DOSE = frozenset({"dl", "l", "ml", "mmol", "mol"})
"""mg/dL and the like are lab values or concentrations: not doses at all."""

_FREQUENCIES: list[tuple[re.Pattern[str], float]] = [
    (re.compile(p, re.IGNORECASE), n)
    for p, n in [
        (r"\b(?:twice|two\s+times|2\s*(?:x|times))\s*(?:a\s+|per\s+|/\s*)?(?:day|daily)\b", 2),
        (r"\b(?:three|3)\s*(?:x|times)\s*(?:a\s+|per\s+|/\s*)?(?:day|daily)\b", 3),
        (r"\b(?:four|4)\s*(?:x|times)\s*(?:a\s+|per\s+|/\s*)?(?:day|daily)\b", 4),
        (r"\b(?:b\.?i\.?d|bd)\b", 2),
        (r"\b(?:t\.?i\.?d|t\.?d\.?s)\b", 3),  # tds, qds: British usage
        (r"\b(?:q\.?i\.?d|q\.?d\.?s)\b", 4),
        (r"\b(?:once\s+(?:a\s+|per\s+)?(?:day|daily)|daily|q\.?d|od|qam|qpm|q\.?h\.?s|nightly"
         r"|at\s+bedtime|every\s+(?:morning|evening|night|day))\b", 1),
        (r"\b(?:once\s+(?:a\s+|per\s+)?week|weekly)\b", 1 / 7),
        (r"\btwice\b", 2),
        (r"\bonce\b", 1),
    ]
]
# "q8h", "q4-6h", "every 6 hours", "every 4 to 6 hours": the shortest interval counts, so the
# daily estimate is the most that the instruction allows.
_INTERVAL = re.compile(
    r"\b(?:q\s*(?P<q>\d{1,2})(?:\s*-\s*\d{1,2})?\s*(?:h|hr|hrs|hours?)\b"
    r"|every\s+(?P<e>\d{1,2})(?:\s*(?:-|to)\s*\d{1,2})?\s*(?:h|hr|hrs|hours?)\b)",
    re.IGNORECASE,
)
_FREQ_WINDOW = 40

# --- drugs and codes -----------------------------------------------------------------------------

_TOKEN = re.compile(r"[^\W\d_]+")  # letters only: "atorvastatin40mg" still yields the name
_HYPHENATED = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)+")  # "co-amoxiclav" is one variant
_CODE = re.compile(r"(?<![\w.])(?P<code>[A-Z][0-9][0-9AB](?P<rest>\.[0-9A-Z]{1,4}|[0-9A-Z]{1,4})?)"
                   r"(?![\w])")
_CODE_CUE = re.compile(r"\b(?:icd(?:-?10)?(?:-?cm)?|codes?|dx|diagnos[ie]s|diagnosed)\b\W*$",
                       re.IGNORECASE)
_BREAK = re.compile(r"\n|[.;!?](?:\s|$)")
_FUZZY_MIN_LEN = 5
_FUZZY_MIN_SIMILARITY = 0.45
"""Trigram Jaccard from the dictionary's own matcher; 0.45 keeps "metforman", "ibuprofin" and
"amlodopine" and drops "patient" -> zepatier (0.375). Only tried right before a dose."""
_NOT_DRUGS = frozenset({"take", "takes", "taking", "dose", "doses", "total", "given", "start",
                        "started", "increase", "increased", "reduce", "reduced", "daily"})


def _load_drug_ner() -> Any:
    # The import itself builds the 107k-variant index (about 2.5 s): do it once per process.
    import drug_named_entity_recognition.drugs_finder as finder  # type: ignore[import-untyped]

    return finder


def _load_icd() -> Any:
    # About 2.5 s to load the code tree. Its loader calls importlib.resources.read_text (and
    # open_text), deprecated, which warn on import: silence just those (once per process;
    # catch_warnings touches global state, hence only around this import).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(read|open)_text is deprecated",
                                category=DeprecationWarning)
        import simple_icd_10_cm as icd  # type: ignore[import-untyped]

    return icd


def _drugs() -> Any:
    return shared((AGENT_NAME, "drug_named_entity_recognition"), _load_drug_ner)


def _icd() -> Any:
    return shared((AGENT_NAME, "simple_icd_10_cm"), _load_icd)


def preload() -> None:
    """Load both dictionaries and the table now (blocking) instead of on the first note."""
    _drugs()
    _icd()
    dose_table()


@dataclass(slots=True)
class _Mention:
    start: int
    end: int
    name: str
    drugbank_id: str | None
    mesh_id: str | None
    match: str
    entry: DrugRange | None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "drugbank_id": self.drugbank_id, "mesh_id": self.mesh_id,
                "match": self.match, "in_table": self.entry is not None,
                "span": [self.start, self.end]}


def _to_float(text: str) -> float:
    return float(text.replace(",", ""))


def _mention(data: dict[str, Any], start: int, end: int, match: str) -> _Mention:
    name = str(data.get("name") or "").lower()
    entry = dose_table().get(name)
    # The table's name is canonical: Synthroid comes back from the dictionary as "thyroxine".
    return _Mention(start=start, end=end, name=entry.name if entry else name,
                    drugbank_id=data.get("drugbank_id"), mesh_id=data.get("mesh_id"),
                    match=match, entry=entry)


def _find_drugs(text: str) -> tuple[list[_Mention], list[re.Match[str]]]:
    finder = _drugs()
    tokens = list(_TOKEN.finditer(text))
    best: dict[tuple[int, int], _Mention] = {}
    # The library's own fuzzy mode is slow (tens of ms per token), matches ordinary words
    # ("daily" -> MDAI) and can crash on bigrams: exact lookups only here, typos near doses later.
    for data, first, last in finder.find_drugs([t.group() for t in tokens]):
        start, end = tokens[first].start(), tokens[last - 1].end()
        found = _mention(data, start, end, "exact")
        current = best.get((start, end))
        # One variant can name several canonical drugs: prefer the one the table covers.
        if current is None or (current.entry is None and found.entry is not None):
            best[(start, end)] = found
    for hyphenated in _HYPHENATED.finditer(text):
        variant = hyphenated.group().lower()
        for canonical in finder.drug_variant_to_canonical.get(variant) or []:
            data = dict(finder.drug_canonical_to_data.get(canonical, {}))
            data |= finder.drug_variant_to_variant_data.get(variant, {})
            data.setdefault("name", canonical)
            start, end = hyphenated.span()
            # The whole hyphenated name replaces what its parts matched on their own.
            best = {k: v for k, v in best.items() if k[1] <= start or k[0] >= end}
            best[(start, end)] = _mention(data, start, end, "exact")
            break
    return sorted(best.values(), key=lambda m: m.start), tokens


def _fuzzy_before(text: str, dose_start: int, tokens: list[re.Match[str]],
                  token_ends: list[int], drugs: _DrugIndex) -> _Mention | None:
    """A misspelt drug name directly before a dose ("metforman 500 mg")."""
    index = bisect.bisect_right(token_ends, dose_start) - 1
    if index < 0:
        return None
    token = tokens[index]
    if text[token.end():dose_start].strip(" \t:") != "":
        return None
    word = token.group().lower()
    if (len(word) < _FUZZY_MIN_LEN or word in _NOT_DRUGS or word in _UNIT_NAMES
            or drugs.covers(token.start())):
        return None
    finder = _drugs()
    if word in finder.stopwords:
        return None
    variant, similarity = finder.get_fuzzy_match(word)
    if variant is None or similarity < _FUZZY_MIN_SIMILARITY:
        return None
    for canonical in finder.drug_variant_to_canonical.get(variant) or []:
        data = dict(finder.drug_canonical_to_data.get(canonical, {}))
        data.setdefault("name", canonical)
        return _mention(data, token.start(), token.end(), "fuzzy")
    return None


def _frequency(window: str) -> float | None:
    hits: list[tuple[int, float]] = []
    for rx, per_day in _FREQUENCIES:
        found = rx.search(window)
        if found:
            hits.append((found.start(), per_day))
    interval = _INTERVAL.search(window)
    if interval:
        hours = int(interval.group("q") or interval.group("e"))
        if 1 <= hours <= 168:
            hits.append((interval.start(), 24 / hours))
    if not hits:
        return None
    # The earliest mention wins; on a tie the list order (specific before generic) does.
    return min(hits, key=lambda h: h[0])[1]


class _DrugIndex:
    """Mentions sorted by position (they never overlap), for nearest-drug lookups by bisection."""

    def __init__(self, mentions: list[_Mention]) -> None:
        self.mentions = sorted(mentions, key=lambda m: m.start)
        self.starts = [m.start for m in self.mentions]

    def add(self, mention: _Mention) -> None:
        index = bisect.bisect_left(self.starts, mention.start)
        self.starts.insert(index, mention.start)
        self.mentions.insert(index, mention)

    def covers(self, pos: int) -> bool:
        index = bisect.bisect_right(self.starts, pos) - 1
        return index >= 0 and self.mentions[index].end > pos

    def nearest(self, text: str, start: int, end: int, window: int,
                previous_dose_end: int | None) -> _Mention | None:
        index = bisect.bisect_right(self.starts, start) - 1
        if index >= 0:
            m = self.mentions[index]
            # An earlier dose of this drug closes its instruction unless this dose restates it
            # right away: "Tylenol 500 mg (1-2 tablets)" are Tylenol's; in "lisinopril 10 mg
            # daily and metforman 500 mg" or "glargine 10 units at bedtime, 2 tablets" they
            # are not lisinopril's or glargine's.
            closed = (previous_dose_end is not None and previous_dose_end > m.end
                      and _RESTATES.fullmatch(text, previous_dose_end, start) is None)
            if (m.end <= start and start - m.end <= window and not closed
                    and not _BREAK.search(text, m.end, start)):
                return m
        # "500 mg of metformin", "500 mg metformin"
        after = bisect.bisect_left(self.starts, end)
        if after < len(self.mentions):
            m = self.mentions[after]
            if m.start - end <= 12 and _OF.fullmatch(text, end, m.start):
                return m
        return None


_OF = re.compile(r"\s*(?:of\s+)?", re.IGNORECASE)
_RESTATES = re.compile(r"[\s,(=/-]*")


def _fmt(value: float) -> str:
    return f"{value:g}"


def _convert(value: float, unit: str, to: str) -> float:
    if unit in _MG_PER and to in _MG_PER:
        return value * _MG_PER[unit] / _MG_PER[to]
    return value  # same family, no scale (tablet/capsule, units/IU)


@dataclass(slots=True)
class Analysis:
    medications: list[dict[str, Any]]
    doses: list[dict[str, Any]]
    codes: list[dict[str, Any]]
    findings: list[Finding]
    drug_spans: list[tuple[int, int]]
    dose_spans: list[tuple[int, int]]


def _finding(check: str, severity: Severity, message: str, start: int, end: int) -> Finding:
    return {"check": check, "severity": severity, "message": message, "span": [start, end]}


def _check_dose(drug: _Mention, dose: dict[str, Any], start: int, end: int) -> list[Finding]:
    entry = drug.entry
    unit: str = dose["unit"]
    if entry is None:
        return [_finding("range_unknown", "info",
                         f"{drug.name}: no reference range in the table", start, end)]
    if _FAMILY[unit] not in entry.families:
        accepted = ", ".join(entry.units)
        return [_finding("dose_unit", "error",
                         f"{entry.name}: unit '{unit}' is implausible (expected {accepted})",
                         start, end)]
    row = entry.range_for(unit)
    if row is None or dose.get("per") not in (None, "day"):
        return []  # a form (tablets) or a weight-based dose: nothing to compare with
    low = _convert(dose["value"], unit, row.unit)
    high = _convert(dose["value_max"], unit, row.unit)
    u = row.unit
    out: list[Finding] = []
    if dose.get("per") == "day":
        dose["daily"] = high
        dose["daily_unit"] = u
        if high > row.daily_max:
            out.append(_finding("daily_max", "error",
                                f"{entry.name}: daily dose above the table's maximum of "
                                f"{_fmt(row.daily_max)} {u}/day", start, end))
        return out
    if high > row.daily_max:
        out.append(_finding("dose_max", "error",
                            f"{entry.name}: single dose above the table's maximum daily dose "
                            f"({_fmt(row.daily_max)} {u})", start, end))
    elif high > row.single_max:
        out.append(_finding("dose_high", "warning",
                            f"{entry.name}: single dose above the typical maximum of "
                            f"{_fmt(row.single_max)} {u}", start, end))
    if low < row.single_min:
        out.append(_finding("dose_low", "warning",
                            f"{entry.name}: single dose below the typical minimum of "
                            f"{_fmt(row.single_min)} {u} (decimal or unit slip?)", start, end))
    per_day = dose.get("per_day")
    if per_day is not None:
        daily = high * per_day
        dose["daily"] = round(daily, 6)
        dose["daily_unit"] = u
        if daily > row.daily_max and high <= row.daily_max:
            out.append(_finding("daily_max", "error",
                                f"{entry.name}: dose x frequency above the table's maximum of "
                                f"{_fmt(row.daily_max)} {u}/day", start, end))
    return out


def _codes(text: str) -> tuple[list[dict[str, Any]], list[Finding]]:
    icd = None
    codes: list[dict[str, Any]] = []
    findings: list[Finding] = []
    for found in _CODE.finditer(text):
        code = found.group("code")
        dotted = (found.group("rest") or "").startswith(".")
        icd = icd or _icd()
        valid = bool(icd.is_valid_item(code))
        start, end = found.span()
        if not valid:
            cued = _CODE_CUE.search(text, max(0, start - 30), start) is not None
            if not dotted and not cued:
                continue  # "B12", "A1C"-like tokens are not claimed to be codes
            codes.append({"code": code, "valid": False, "description": None, "billable": None,
                          "span": [start, end]})
            findings.append(_finding("code_invalid", "error",
                                     f"{code} is not an ICD-10-CM code", start, end))
            continue
        leaf = bool(icd.is_leaf(code))
        codes.append({"code": code, "valid": True, "description": str(icd.get_description(code)),
                      "billable": leaf, "span": [start, end]})
        if not leaf:
            findings.append(_finding("code_category", "info",
                                     f"{code} is an ICD-10-CM category, not a billable code",
                                     start, end))
    return codes, findings


def analyse(text: str, *, fuzzy: bool = True, window: int = 60) -> Analysis:
    """Find and check medications, doses and codes in ``text`` (blocking; run it in the pool)."""
    found_drugs, tokens = _find_drugs(text)
    drugs = _DrugIndex(found_drugs)
    token_ends = [t.end() for t in tokens]
    findings: list[Finding] = []
    doses: list[dict[str, Any]] = []
    dose_spans: list[tuple[int, int]] = []
    matches = [m for m in _DOSE.finditer(text)
               if (m.group("per") or "").lower() not in _PER_NOT_A_DOSE]
    for i, found in enumerate(matches):
        start, end = found.span()
        unit = _UNIT_NAMES[found.group("unit").lower()]
        value = _to_float(found.group("value"))
        value_max = _to_float(found.group("value_max")) if found.group("value_max") else value
        if not (math.isfinite(value) and math.isfinite(value_max)):
            continue
        per = (found.group("per") or "").lower() or None
        per = "day" if per in _PER_DAY else per
        limit = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        line_end = text.find("\n", end)
        limit = min(limit, end + _FREQ_WINDOW, line_end if line_end >= 0 else len(text))
        per_day = _frequency(text[end:limit]) if per is None else None
        previous_end = dose_spans[-1][1] if dose_spans else None
        drug = drugs.nearest(text, start, end, window, previous_end)
        if drug is None and fuzzy:
            drug = _fuzzy_before(text, start, tokens, token_ends, drugs)
            if drug is not None:
                drugs.add(drug)
                findings.append(_finding("drug_fuzzy", "info",
                                         f"drug name read approximately as {drug.name}",
                                         drug.start, drug.end))
        dose: dict[str, Any] = {
            "value": value, "value_max": value_max, "unit": unit, "per": per,
            "per_day": per_day, "drug": drug.name if drug else None, "daily": None,
            "daily_unit": None, "span": [start, end],
        }
        if drug is None:
            findings.append(_finding("dose_no_drug", "info", "dose with no drug nearby",
                                     start, end))
        else:
            findings.extend(_check_dose(drug, dose, start, end))
        doses.append(dose)
        dose_spans.append((start, end))
    codes, code_findings = _codes(text)
    findings.extend(code_findings)
    findings.sort(key=lambda f: (f["span"][0], f["check"]))
    return Analysis(
        medications=[m.as_dict() for m in drugs.mentions], doses=doses, codes=codes,
        findings=findings, drug_spans=[(m.start, m.end) for m in drugs.mentions],
        dose_spans=dose_spans,
    )


def _render_items(items: list[Any], *, node: str) -> tuple[str, list[tuple[int, int, int]]]:
    """One line per draft item; returns the text and each item's (line start, drug end, end)."""
    lines: list[str] = []
    spans: list[tuple[int, int, int]] = []
    offset = 0
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise AgentError(f"draft item {index} is {type(item).__name__}, not a dict",
                             node=node, agent=AGENT_NAME)
        drug = str(item.get("drug") or item.get("name") or "").strip()
        dose = item.get("dose")
        parts = [drug, "" if dose is None else str(dose), str(item.get("unit") or "").strip(),
                 str(item.get("frequency") or "").strip()]
        line = " ".join(p for p in parts if p)
        spans.append((offset, offset + len(drug), offset + len(line)))
        lines.append(line)
        offset += len(line) + 1
    return "\n".join(lines), spans


def confidence_for(findings: list[Finding]) -> float:
    """The documented confidence rule (see the module docstring)."""
    counts = {s: sum(1 for f in findings if f["severity"] == s) for s in ("info", "warning",
                                                                          "error")}
    confidence = max(0.8, 1.0 - 0.05 * counts["info"]) if counts["info"] else 1.0
    if counts["warning"]:
        confidence = min(confidence, max(0.35, 0.6 - 0.05 * (counts["warning"] - 1)))
    if counts["error"]:
        confidence = min(confidence, max(0.05, 0.3 - 0.05 * (counts["error"] - 1)))
    return round(confidence, 4)


class MedicalValidatorConfig(AgentConfig):
    from_node: str | None = None
    """Validate this earlier node's output instead of the working text."""
    text_field: str = "text"
    """The text key when ``from_node``'s output is a dict."""
    fuzzy: bool = True
    """Read misspelt drug names directly before a dose ("metforman 500 mg")."""
    drug_window: int = Field(default=60, ge=0, le=500)
    """How many characters before a dose its drug may be (same line and sentence)."""


class MedicalValidator(Agent):
    """Checks medications, doses and ICD-10-CM codes; flags, never rewrites the text."""

    name = AGENT_NAME
    extra = "medical"
    Config = MedicalValidatorConfig
    config: MedicalValidatorConfig

    @classmethod
    def labels(cls, config: AgentConfig) -> frozenset[str] | None:
        return LABELS

    def _source(self, ctx: AgentContext) -> tuple[str, list[Any] | None, str]:
        node = self.config.from_node
        if node is None:
            return ctx.text, None, "text"
        result = ctx.results.get(node)
        if result is None:
            raise AgentError(f"from_node {node!r} has no result in this run", node=ctx.node,
                             agent=AGENT_NAME)
        output = result.output
        if isinstance(output, str):
            return output, None, node
        if isinstance(output, dict):
            value = output.get(self.config.text_field)
            if isinstance(value, str):
                return value, None, node
            items = output.get("medications")
            if isinstance(items, list):
                return "", items, node
            raise AgentError(f"output of {node!r} has no string field "
                             f"{self.config.text_field!r}", node=ctx.node, agent=AGENT_NAME)
        if isinstance(output, list):
            return "", output, node
        raise AgentError(f"cannot validate the output of {node!r} "
                         f"({type(output).__name__})", node=ctx.node, agent=AGENT_NAME)

    async def run(self, ctx: AgentContext) -> AgentResult:
        text, items, source = self._source(ctx)
        item_spans: list[tuple[int, int, int]] = []
        if items is not None:
            text, item_spans = _render_items(items, node=ctx.node)
        with map_errors(AGENT_NAME):
            analysis = await run_blocking(analyse, text, fuzzy=self.config.fuzzy,
                                          window=self.config.drug_window, backend=AGENT_NAME,
                                          timeout_s=None)
        findings = analysis.findings
        for line_start, drug_end, line_end in item_spans:
            # A structured item must name a known drug and a readable dose; free text cannot
            # be held to that (an unknown word is not known to be a drug).
            if not any(line_start <= s < line_end for s, _ in analysis.drug_spans):
                findings.append(_finding("drug_unknown", "warning",
                                         "draft item names a drug the dictionary does not know",
                                         line_start, drug_end))
            if not any(line_start <= s < line_end for s, _ in analysis.dose_spans):
                findings.append(_finding("dose_unparsed", "warning",
                                         "draft item has no readable dose with a unit",
                                         line_start, line_end))
        findings.sort(key=lambda f: (f["span"][0], f["check"]))
        serious = [f for f in findings if f["severity"] != "info"]
        errors = sorted({f["check"] for f in findings if f["severity"] == "error"})
        ok = not serious
        output = {
            "medications": analysis.medications, "doses": analysis.doses,
            "codes": analysis.codes, "findings": findings, "ok": ok,
            # What the spans point into: the working text, or "<node>:text" / "<node>:items"
            # (a rendered draft list, one item per line).
            "source": source if source == "text" else
            f"{source}:{'items' if items is not None else 'text'}",
        }
        reason = None
        if errors:
            count = sum(1 for f in findings if f["severity"] == "error")
            reason = f"{count} error finding(s): {', '.join(errors)}"
        elif serious:
            reason = f"{len(serious)} warning finding(s)"
        return AgentResult(output=output, label="ok" if ok else "flagged",
                           confidence=confidence_for(findings), escalate=bool(errors),
                           reason=reason)


register(AGENT_NAME, MedicalValidator)
