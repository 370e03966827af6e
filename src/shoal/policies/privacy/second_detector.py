"""The independent egress check: a second detector, built differently from the masker's, run on
every payload before it leaves for a remote model.

The masker's re-scan (:func:`~shoal.policies.privacy.egress.scan_outbound`) uses the masker's
own detector, so it cannot see what the masker missed. This one shares nothing with it: no
presidio, no spaCy, no pack recognizers or context scores. It looks at a text in three ways:

- **names from a gazetteer**: a capitalised (or all-capitals) word that is a first name in one
  of Faker's 86 person locales and not an ordinary English or medical word
  (:mod:`.name_gazetteer`): "Zsófia", "Wojciech", "Hrvoje", "Guðrún", wherever they stand;
- **names next to a cue**: after a greeting (``Hi``, ``Dear``), a self-introduction (``this
  is``, ``I'm``), a title (``Dr``), a nickname cue (``called``, ``goes by``, ``aka``, ``known
  as``) or a sign-off (``Thanks,``, ``- ``) at the end of a line, a capitalised word that is
  not an ordinary word, a lower-case first name, or anything in quotes after a nickname cue;
- **patterns without context**: e-mail addresses, URLs and web domains, phone numbers, numbers
  of seven or more digits (grouped or not), SSN-shaped numbers, numeric dates, ZIP codes after a
  state code, and street addresses in any case ("12 elm street").

Pseudonyms the masker wrote (``[NAME_1]``, ``[EMAIL:1a2b3c4d]``, ``[NAME]``) are blanked first:
they never count. A hit is reported as its type and position; callers report types and counts
only, never the text.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from shoal.policies.privacy.name_gazetteer import first_names, vocabulary

__all__ = ["HIT_TYPES", "Hit", "SecondDetector", "second_detector"]

HIT_TYPES = ("ADDRESS", "DATE", "EMAIL", "ID_NUMBER", "NAME", "NAME_CUE", "PHONE", "SSN",
             "URL", "ZIP")
"""What a hit can be. ``NAME`` is a gazetteer name, ``NAME_CUE`` a word placed as a name."""

PSEUDONYM = re.compile(r"\[[A-Z][A-Z0-9_]*(?:_\d+|:[0-9a-f]{8})?\]")
"""Any pseudonym, hash token or redaction a masker writes."""
_BLANK = "\ufffc"
"""What a pseudonym is blanked with: no pattern here matches it, and offsets stay put."""


@dataclass(frozen=True, slots=True)
class Hit:
    """One identifier found in the clear: its type and where (never its text)."""

    type: str
    start: int
    end: int


_Add = Callable[[str, int, int], None]
"""Records a hit (type, start, end) unless it overlaps an earlier one."""

# --- patterns without context ------------------------------------------------------------------

_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}")
_URL = re.compile(
    r"(?i)\b(?:https?://|www\.)[^\s<>\"')\]]+"
    r"|\b(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+(?:com|org|net|edu|gov|info|biz|io|co|us|uk|"
    r"ca|de|fr|au|me|health|app|online|site)\b(?:/[^\s<>\"')\]]*)?")
_SSN = re.compile(r"(?<![\w.-])\d{3}-\d{2}-\d{4}(?![\w-]|\.\d)")
_DATE = re.compile(r"(?<![\w./-])(?:\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})|(?:19|20)\d{2}-\d{1,2}-"
                   r"\d{1,2})(?![\w/-]|\.\d)")
# Digits in groups: "(415) 555-0182", "+44 20 7946 0958", "4471-2290-118", "55810327". The
# look-arounds keep decimals ("0.1234567", probabilities in a draft) out.
_NUMBER = re.compile(r"(?<![\w.,-])(?:\+\s?)?(?:\(\d{1,4}\)[ \t.-]?)?\d+(?:(?:[ \t]|[.-][ \t]?)"
                     r"\d+)*(?![\w-]|[.,]\d)")
_DECIMAL = re.compile(r"\d+\.\d+")
_ID_CUE = re.compile(r"(?i)(?:\b(?:id|no|nr|number|mrn|acct|account|member|policy|claim|case|"
                     r"ref|reference|record|chart|zip|postcode|invoice|order)\b|#)[\s.:#-]*\Z")
_ZIP = re.compile(r"\b(?:A[KLRZ]|C[AOT]|D[CE]|FL|GA|HI|I[ADLN]|K[SY]|LA|M[ADEINOST]|N[CDEHJMVY]|"
                  r"O[HKR]|PA|RI|S[CD]|T[NX]|UT|V[AT]|W[AIVY])[ \t]+(\d{5}(?:-\d{4})?)\b")
_STREET_SUFFIX = (r"street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|terrace|"
                  r"ter|crescent|cres|place|pl|highway|hwy|parkway|pkwy|circle|cir|way|trail|trl|"
                  r"square|sq|close|row|alley")
_ADDRESS = re.compile(rf"(?i)\b\d{{1,6}}[a-z]?[ \t]+((?:[^\W\d_][\w'.-]*[ \t]+){{1,3}})"
                      rf"(?:{_STREET_SUFFIX})\b\.?")
_ADDRESS_NO_NUMBER = re.compile(r"(?i)\b(?:live[sd]?\s+(?:on|at)|lives?\s+on|address\s+is|on|at)"
                                r"\s+([^\W\d_][\w'-]*)[ \t]+(?:street|avenue|road|boulevard|lane|"
                                r"drive|terrace|crescent|parkway)\b")
# Words between a number and a street suffix that make it a distance or a count, not an address.
_NOT_STREET = frozenset(re.findall(r"\S+", """
    the a an of to and or in on at for my your our his her their this that more other same few
    several hour hours hr hrs minute minutes min mins mile miles km block blocks day days week
    weeks month months year years time times mg ml tablet tablets pill pills dose doses unit
    units long short"""))
_NOT_STREET_NAME = frozenset(re.findall(r"\S+", """
    the a an my your our his her their this that same other long short wrong right way"""))

# --- names -------------------------------------------------------------------------------------

_TOKEN = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
_GREETING = re.compile(r"(?im)^[ \t>*-]*(?:dear|hi|hello|hey|hiya|greetings|good[ \t]+(?:morning|"
                       r"afternoon|evening))\b[ \t,!:.-]*")
_INTRO = re.compile(r"(?i)\b(?:this[ \t]+is|it'?s|it[ \t]+is|i[ \t]+am|i'm|my[ \t]+name[ \t]+is|"
                    r"my[ \t]+name's|name:)[ \t]+")
_TITLE = re.compile(r"\b(?:Dr|Mr|Mrs|Ms|Mx|Miss|Prof|Nurse)\.?[ \t]+")
_NICKNAME = re.compile(
    r"(?i)\b(?:(?:prefers?|likes?|wants?|asks?)[ \t]+(?:to[ \t]+be[ \t]+)?called|goes[ \t]+by|"
    r"go[ \t]+by|going[ \t]+by|a\.?k\.?a\.?|also[ \t]+known[ \t]+as|known[ \t]+as|nick-?named|"
    r"nickname(?:[ \t]+is)?|call[ \t]+(?:me|her|him|them)|calls[ \t]+(?:me|her|him|them)|"
    r"called|named)\b[ \t:,-]*")
_STRONG_NICKNAME = re.compile(r"(?i)\A(?:prefer|like|want|ask|go|aka|a\.|also|known|nick)")
"""Cues that announce a name and nothing else: after them even a lower-case word that is no
ordinary word counts ("goes by kiki"); "called" and "call me" are too common for that ("called
back", "call me bak")."""
_QUOTED = re.compile(r"[\"'“‘«]([^\"“”‘’«»\n]{1,40}?)[\"'”’»]")
_SIGNOFF = re.compile(
    r"(?i)(?:\b(?:thanks|thank[ \t]+you|thx|ty|regards|best(?:[ \t]+(?:wishes|regards))?|cheers|"
    r"sincerely|respectfully|cordially|warmly|love|take[ \t]+care|yours(?:[ \t]+truly)?|"
    r"kind[ \t]+regards|warm[ \t]+regards|many[ \t]+thanks|thanks[ \t]+again)[ \t]*[,.!]*\s+"
    r"|(?:^|[ \t])[-–—~][ \t]*)")
_SIGNATURE = re.compile(r"([^\W\d_][\w'’.-]*(?:[ \t]+[^\W\d_][\w'’.-]*){0,2})[ \t]*[.!]?[ \t]*"
                        r"(?:$|\n|,|\Z)", re.MULTILINE)


def _shape(word: str) -> str:
    if word.isupper():
        return "upper"
    if word[0].isupper():
        return "title"
    return "lower"


@dataclass(frozen=True)
class SecondDetector:
    """The independent detector over a gazetteer and a vocabulary (the shipped ones by
    default). ``allow`` holds words never taken for a name (a clinic's or a product's name)."""

    names: frozenset[str]
    words: frozenset[str]
    allow: frozenset[str] = frozenset()

    def with_allow(self, allow: Iterable[str]) -> SecondDetector:
        extra = frozenset(w.casefold() for w in allow)
        return self if extra <= self.allow else SecondDetector(self.names, self.words,
                                                               self.allow | extra)

    # -- words ------------------------------------------------------------------------------

    def _parts(self, word: str) -> list[str]:
        base = re.sub(r"['’]s\Z", "", word)
        return [p for p in re.split(r"[-'’]", base) if p]

    def _in(self, word: str, table: frozenset[str]) -> bool:
        # Written with or without its accents ("zsofia" for Zsófia): the lists hold both forms.
        folded = word.casefold()
        return folded in table or _unaccented(folded) in table

    def is_name(self, word: str) -> bool:
        """A gazetteer first name (any part of a hyphenated word) that is not allowed."""
        if self._in(word, self.allow):
            return False
        return any(self._in(p, self.names) and not self._in(p, self.allow)
                   for p in self._parts(word))

    def is_word(self, word: str) -> bool:
        """An ordinary word (every part of a hyphenated word), or an allowed one."""
        if self._in(word, self.allow) or self._in(word, self.words):
            return True
        parts = self._parts(word)
        return bool(parts) and all(self._in(p, self.words) for p in parts)

    def _named(self, word: str, *, lower_ok: bool, strong: bool = False) -> bool:
        """Whether ``word``, standing where a name stands, is one. After a ``strong`` cue
        ("goes by", "aka") a capitalised ordinary word is a name too ("goes by Moose")."""
        shape = _shape(word)
        if shape == "upper":
            return len(word) >= 3 and not self.is_word(word) and self.is_name(word)
        if shape == "title":
            return strong or not self.is_word(word) or self.is_name(word)
        return self.is_name(word) or (lower_ok and not self.is_word(word))

    # -- scanning ---------------------------------------------------------------------------

    def scan(self, text: str) -> list[Hit]:
        """Identifiers in the clear in ``text``, sorted by position; pseudonyms never count."""
        clear = PSEUDONYM.sub(lambda m: _BLANK * len(m.group(0)), text)
        hits: list[Hit] = []
        taken: list[tuple[int, int]] = []

        def add(kind: str, start: int, end: int) -> None:
            if any(s < end and start < e for s, e in taken):
                return
            taken.append((start, end))
            hits.append(Hit(kind, start, end))

        for m in _EMAIL.finditer(clear):
            add("EMAIL", m.start(), m.end())
        for m in _URL.finditer(clear):
            add("URL", m.start(), m.end())
        for m in _SSN.finditer(clear):
            add("SSN", m.start(), m.end())
        for m in _DATE.finditer(clear):
            add("DATE", m.start(), m.end())
        for m in _ZIP.finditer(clear):
            add("ZIP", m.start(1), m.end(1))
        self._numbers(clear, add)
        self._addresses(clear, add)
        self._names(clear, add)
        return sorted(hits, key=lambda h: (h.start, h.end))

    def counts(self, texts: Iterable[str]) -> dict[str, int]:
        """Hit types and counts over ``texts``: what a caller may log."""
        found: Counter[str] = Counter()
        for text in texts:
            found.update(h.type for h in self.scan(text))
        return dict(found)

    @staticmethod
    def _numbers(clear: str, add: _Add) -> None:
        for m in _NUMBER.finditer(clear):
            value = m.group(0)
            if _DECIMAL.fullmatch(value):
                continue  # a measurement or a probability, not an identifier
            digits = sum(c.isdigit() for c in value)
            grouped = value != value.strip("+( ") or not value.isdigit()
            if digits >= 7:
                phone_like = grouped and 7 <= digits <= 15
                add("PHONE" if phone_like else "ID_NUMBER", m.start(), m.end())
            elif digits >= 5 and _ID_CUE.search(clear[max(0, m.start() - 24):m.start()]):
                add("ID_NUMBER", m.start(), m.end())

    @staticmethod
    def _addresses(clear: str, add: _Add) -> None:
        for m in _ADDRESS.finditer(clear):
            between = m.group(1).split()
            if not any(w.casefold().strip(".") in _NOT_STREET for w in between):
                add("ADDRESS", m.start(), m.end())
        for m in _ADDRESS_NO_NUMBER.finditer(clear):
            if m.group(1).casefold() not in _NOT_STREET_NAME:
                add("ADDRESS", m.start(1), m.end())

    def _names(self, clear: str, add: _Add) -> None:
        # A gazetteer name anywhere, in capitals.
        for m in _TOKEN.finditer(clear):
            word = m.group(0)
            if _shape(word) != "lower" and self._named_alone(word):
                add("NAME", m.start(), m.end())
        # Words placed as names.
        for cue in (_GREETING, _INTRO, _TITLE):
            for m in cue.finditer(clear):
                self._after(clear, m.end(), add, lower_ok=False)
        for m in _NICKNAME.finditer(clear):
            rest = clear[m.end():m.end() + 48]
            quoted = _QUOTED.match(rest)
            words = _TOKEN.findall(quoted.group(1)) if quoted is not None else []
            if quoted is not None and words:
                # Whatever is quoted after a nickname cue is the name, ordinary word or not.
                if not all(self._in(w, self.allow) for w in words):
                    add("NAME_CUE", m.end() + quoted.start(1), m.end() + quoted.end(1))
                continue
            strong = _STRONG_NICKNAME.match(m.group(0)) is not None
            self._after(clear, m.end(), add, lower_ok=strong, strong=strong)
        for m in _SIGNOFF.finditer(clear):
            sig = _SIGNATURE.match(clear, m.end())
            if sig is None:
                continue
            # A signature closes a line: even a lower-case word there that is no ordinary word
            # is taken for a name ("thanks, wojtek").
            for w in _TOKEN.finditer(sig.group(1)):
                if self._named(w.group(0), lower_ok=True):
                    add("NAME_CUE", sig.start(1) + w.start(), sig.start(1) + w.end())

    def _named_alone(self, word: str) -> bool:
        if _shape(word) == "upper" and len(word) < 4:
            return False
        return self.is_name(word) and not self.is_word(word)

    def _after(self, clear: str, at: int, add: _Add, *, lower_ok: bool,
               strong: bool = False) -> None:
        """The word right after a cue (and a second one, for a surname), if it is a name."""
        pos = at
        for _ in range(2):
            m = _TOKEN.match(clear, pos)
            if m is None or not self._named(m.group(0), lower_ok=lower_ok, strong=strong):
                return
            add("NAME_CUE", m.start(), m.end())
            gap = re.match(r"[ \t]+", clear[m.end():])
            if gap is None:
                return
            pos = m.end() + gap.end()
            lower_ok = strong = False  # a second word is a surname only if it looks like one


def _unaccented(word: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", word)
                   if not unicodedata.combining(c))


def _both_forms(words: frozenset[str]) -> frozenset[str]:
    return words | {_unaccented(w) for w in words}


@functools.cache
def _shared() -> SecondDetector:
    return SecondDetector(_both_forms(first_names()), _both_forms(vocabulary()))


def second_detector(allow: Iterable[str] = ()) -> SecondDetector:
    """The process's independent detector (its word lists are read once), with ``allow``."""
    return _shared().with_allow(allow)
