"""Finding the requests in a message: sentence and clause segments, each labelled by the node's
classifier, grouped into parts (one per label).

A patient writes "I'm out of lisinopril, and can we move Thursday's appointment? Also the bill
charged me twice": three requests a single label would reduce to one. The splitter cuts the
(masked) text where a new request usually starts (a sentence end, a line break, "also", "and
can you", a numbered item), skips what carries no request (greetings, sign-offs, a name or a
phone number alone), labels every other segment with the classifier in one batch, and groups
the segments by label. A segment too unsure to start a request of its own belongs to the request
before it ("I run out Friday." after a refill); a segment between sure and unsure makes the whole
split unsure, which is when plan mode asks the planner.

Pure functions over text and probabilities: the agent (:mod:`shoal.agents.splitter`) runs the
model; the benchmark and the tests call these directly.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["NO_CRITICAL", "Confirm", "CriticalRule", "Part", "Segment", "Split",
           "critical_label", "group_parts", "is_filler", "segments"]

Confirm = Callable[[str], bool]
"""Whether a segment's text bears out a critical label below ``new_part`` (a red flag fires)."""

_ABBREVIATIONS = "".join(rf"(?<!\b{re.escape(a)})" for a in (
    "Dr.", "Mr.", "Mrs.", "Ms.", "St.", "vs.", "e.g.", "i.e.", "approx.", "appt."))
_ORDINALS = "First|Second|Secondly|Third|Thirdly|Then|Finally|Lastly"
"""Capitalised inside a sentence, these start the next item of a list typed without stops."""
_MARKERS = (r"btw|by the way|one more thing|another thing|on a separate note|separately|"
            r"and one last (?:one|thing)|one last (?:one|thing)|p\.?s\.?(?=[\s:,])")
"""Whatever their case and wherever they are, these open another request."""
_LEAD = re.compile(
    r"(?:(?:and|but|oh|ok|okay|so)\s+)?"
    rf"(?:(?:{_ORDINALS}|also|anyway|anyways)(?:\s+(?:thing|one|of all))?\s*[,:.]?"
    rf"|(?:last|next)(?:\s+(?:thing|one))?\s*[,:]|(?:{_MARKERS})\s*[,:.!-]?)(?:\s+|$)",
    re.IGNORECASE,
)
"""Words that announce a request and say nothing of it ("Second thing:", "Also", "btw"): left
out of the segment, so the classifier reads the request (it never saw them in its training
messages) and an excerpt starts at it."""
_CUTS = re.compile(
    r"\n+"                                              # a line break
    rf"|(?<=[.?!]){_ABBREVIATIONS}\s+"                  # a sentence end (not after "Dr.")
    r"|;\s+"
    r"|\s+[-–—]+\s+"                                    # a dash between clauses
    r"|(?<!\band)(?<!\bbut)(?:,\s*|\s+)(?=(?:and\s+|but\s+)?also\b)"  # ", also", "and also"
    r"|,?\s+(?=(?:and|but)\s+(?:can|could|would|will|please|pls|i|i'm|im|my|is|are|why|what|"
    r"how|when|right now|more importantly|first)\b)"
    r"|\s+(?=\(?\d\)\s)"                                # "1) ... 2) ..."
    # A marker that starts the next request in a run-on message ("appt tomorrow Then can my
    # albuterol ...", "reschedule pls Second, do you ...", "... refill btw my wife is ...").
    rf"|(?<=[\w\])])\s+(?=(?-i:{_ORDINALS})\b)"
    rf"|,?\s+(?=(?:{_ORDINALS}|last|lastly|next)\s*[,:])"
    rf"|(?<!\band)(?<!\bbut),?\s+(?=(?:{_MARKERS})\b)",
    re.IGNORECASE,
)
_PLACEHOLDER = re.compile(r"\[[A-Z][A-Z_]*_\d+\]|<[A-Z_]+>")
_WORD = re.compile(r"[a-z][a-z']+", re.IGNORECASE)
_FILLER_WORDS = frozenset(re.findall(r"\S+", """
hi hello hey dear good morning afternoon evening thanks thank you thx ty regards best cheers
sincerely kind warm care team doctor dr office again sent from my iphone android phone this
is it's its it is name me at call number email mrn dob born sorry ok okay lol so and but also
a the to of re sir madam all sign signed yours nurse staff
"""))
_CONTENT_WORDS = 2
"""A segment with fewer words than this beside greetings, sign-offs and placeholders carries no
request of its own."""


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of the text between two cuts, ``text[start:end]`` with its spaces trimmed."""

    start: int
    end: int
    text: str


@dataclass(frozen=True, slots=True)
class Part:
    """One request: its label, how sure the classifier was of its surest segment, and where it
    is in the text (``spans``: one per run of adjacent segments of the label)."""

    label: str
    confidence: float
    spans: tuple[tuple[int, int], ...]

    def excerpt(self, text: str) -> str:
        """The part's words: its spans of ``text``, joined with " … " when there are several."""
        return " … ".join(text[a:b] for a, b in self.spans)


@dataclass(frozen=True, slots=True)
class Split:
    """The parts of a message in order of first appearance, and whether every segment was
    either sure enough to start a part or unsure enough to follow one (``sure``)."""

    parts: tuple[Part, ...]
    sure: bool
    unsure_segments: int = 0

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(p.label for p in self.parts)

    @property
    def multi(self) -> bool:
        return len(self.parts) > 1


def segments(text: str) -> list[Segment]:
    """``text`` cut at sentence and clause boundaries; empty stretches dropped."""
    out: list[Segment] = []
    start = 0
    for cut in (*_CUTS.finditer(text), None):
        end = cut.start() if cut is not None else len(text)
        piece = text[start:end]
        stripped = piece.strip()
        lead = len(piece) - len(piece.lstrip())
        while (marker := _LEAD.match(stripped)) is not None:
            lead += marker.end()
            stripped = stripped[marker.end():]
        if stripped:
            out.append(Segment(start + lead, start + lead + len(stripped), stripped))
        if cut is not None:
            start = cut.end()
    return out


def is_filler(text: str) -> bool:
    """Whether a segment carries no request: a greeting, a sign-off, a name or a number."""
    words = [w for w in _WORD.findall(_PLACEHOLDER.sub(" ", text))
             if w.lower() not in _FILLER_WORDS]
    return len(words) < _CONTENT_WORDS


def critical_label(text: str, probs: Mapping[str, float], floors: Mapping[str, float], *,
                   sure: float, confirm: Confirm | None = None,
                   top: bool = False) -> tuple[float, str] | None:
    """The critical label a segment takes, with its probability: one at its floor, when the
    text bears it out (``confirm``, e.g. a red flag) or the model is ``sure`` of it; with
    ``top``, also one the model ranks first, however unsure; None.

    Why the confirmation: the classifier was trained on whole messages, and on a clause alone
    ("and I'm also dealing with trouble sleeping", "not an emergency") it gives emergency 0.4 to
    0.7 where the whole message gives 0.02. A floor alone put "call 911" on top of one reply in
    ten to single questions about a bill; a red flag on the clause keeps the emergencies
    (benchmarks/plan.py --tune), and the whole message's critical label is kept as a step
    besides (:mod:`shoal.agents.splitter`)."""
    first = max(sorted(probs), key=lambda k: probs[k]) if top and probs else None
    found = [(p, label) for label, floor in floors.items()
             if ((p := probs.get(label, 0.0)) >= floor
                 and (confirm is None or p >= sure or confirm(text))) or label == first]
    return max(found) if found else None


@dataclass(frozen=True, slots=True)
class CriticalRule:
    """When a segment takes a critical label (:func:`critical_label`): the labels' ``floors``,
    the check that bears a label out below ``sure`` (``confirm``: a red flag) and whether the
    model's first label is taken however unsure (``top``). One object, so the splitter's parts,
    its plan-cache groups and its planned steps all apply the same rule."""

    floors: Mapping[str, float] = field(default_factory=dict)
    sure: float = 1.0
    confirm: Confirm | None = None
    top: bool = False

    def label(self, text: str, probs: Mapping[str, float]) -> tuple[float, str] | None:
        return critical_label(text, probs, self.floors, sure=self.sure, confirm=self.confirm,
                              top=self.top)


NO_CRITICAL = CriticalRule()
"""No critical label: every segment is labelled by its probabilities alone."""


def group_parts(
    segs: Sequence[Segment],
    probabilities: Sequence[Mapping[str, float]],
    *,
    new_part: float,
    follow_below: float,
    critical: CriticalRule = NO_CRITICAL,
    quiet: frozenset[str] = frozenset(),
    quiet_new_part: float = 0.95,
) -> Split:
    """Group labelled segments into parts.

    A segment whose label's probability reaches ``new_part`` may start a part of that label; one
    below ``follow_below`` belongs to the part before it (or after it, at the start). In between
    the segment is unsure: it follows too, and the split is marked unsure. A segment that takes
    a critical label by the ``critical`` rule (emergency at its floor, borne out by a red flag;
    :class:`CriticalRule`) starts a part of it, sure.
    ``quiet`` labels (off_topic) need ``quiet_new_part`` (below it and from ``follow_below``
    on, the segment is unsure like any other).
    Fillers (:func:`is_filler`) take no part. No segment at all: no part.
    """
    labelled: list[tuple[Segment, str | None, float]] = []
    unsure = 0
    for seg, probs in zip(segs, probabilities, strict=True):
        if is_filler(seg.text):
            continue
        taken = critical.label(seg.text, probs)
        if taken is not None:
            labelled.append((seg, taken[1], taken[0]))
            continue
        top = max(sorted(probs), key=lambda k: probs[k])
        p = probs[top]
        needed = quiet_new_part if top in quiet else new_part
        if p >= needed:
            labelled.append((seg, top, p))
        else:
            if p >= follow_below:
                unsure += 1
            labelled.append((seg, None, p))
    # Following segments take the label before them; leading ones the first label after.
    first = next((label for _, label, _ in labelled if label is not None), None)
    spans: dict[str, list[list[int]]] = {}
    best: dict[str, float] = {}
    current = first
    previous_label: str | None = None
    for seg, found, p in labelled:
        if found is not None:
            current = found
            best[found] = max(best.get(found, 0.0), p)
        if current is None:
            continue
        runs = spans.setdefault(current, [])
        if previous_label == current and runs:
            runs[-1][1] = seg.end  # adjacent: one span from the first segment to this one
        else:
            runs.append([seg.start, seg.end])
        previous_label = current
    parts = tuple(Part(label, best.get(label, 0.0), tuple((a, b) for a, b in runs))
                  for label, runs in spans.items())
    return Split(parts=parts, sure=unsure == 0, unsure_segments=unsure)
