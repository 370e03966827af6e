"""Names the statistical model misses, found from word shapes, name lists and position.

The rules read the text itself (words are cut with a regular expression, so a word glued to
punctuation, as in ``Valerie:"I'm``, is still a word) and, where a rule needs it, the tag that
the analyser's spaCy doc gave the token starting at the same place (no second model run):

* **a run of capitalised words holding a known name** ("Zrina Ivanović", "Ella Mikkelsen",
  "Anneke van den Broek", "Cornelis Hendrik de Vries"): two to five capitalised words, with name
  particles (van, de, bin, ní...) between them, where the first is a given name of the gazetteer
  or the last a surname, or a word has the shape of a surname (patronymics such as -dóttir,
  -sson, -ović, -ski); leading and trailing words without such evidence are trimmed;
* **a lone given name** of the gazetteer ("Roza", "Philipp's", "Ria") inside a sentence, or
  opening one before a verb, a comma, a colon or a possessive; given names that are also English
  words ("Grace", "Will") need the tagger to call them proper nouns; a name followed by a
  disease word is an eponym ("Addison's disease") and is left alone;
* **a speaker before quoted speech** ("Crystal: "What...", ``Valerie:"I'm``);
* the older token rules: a proper name opening a sentence before a verb ("Ilse had called"),
  addressed before a comma ("Ilse, can you..."), dialogue speaker labels at a line start;
* **words in another script** (Greek, Cyrillic, Arabic, Han...) in an English text: names and
  places as a rule; a run of them is one hit, all capitals read as a place ("ΛΑΡΝΑΚΑ").

Label words of the pack, institution words, stop words, months and weekdays are never taken.
Every hit is ambiguous or barely confident, so a confident pattern over the same span names the
type. Nothing here logs or raises with the text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import regex  # type: ignore[import-untyped]

from shoal.policies.privacy.lexicon import given_names, surnames

__all__ = ["NameHit", "NameRules", "eponym_at"]


@dataclass(frozen=True, slots=True)
class NameHit:
    """A span a rule found: ``entity`` is PERSON or LOCATION."""

    entity: str
    start: int
    end: int
    score: float


# A word: letters (with combining marks), joined by inner apostrophes or hyphens ("O'Neil",
# "Vasquez-Lindahl"); a possessive "'s" is not part of it.
_WORD = regex.compile(
    r"(?<![\p{L}\p{M}\p{N}])\p{L}[\p{L}\p{M}]*(?:['’-](?![sS]\b)\p{L}[\p{L}\p{M}]*)*")
# Capitalised the way names are: "Zrina", "Guðþórsson", "Raman-Holt", "O'Brien", "McDonald",
# "IJssel" (Dutch capitalises the IJ digraph).
_NAME_SHAPE = regex.compile(
    r"(?:\p{Lu}[\p{Ll}\p{M}]+|(?:Mc|Mac|O['’]|D['’]|Fitz)\p{Lu}[\p{Ll}\p{M}]+|IJ[\p{Ll}\p{M}]+)"
    r"(?:['’-]\p{Lu}?[\p{Ll}\p{M}]+)*")
# Words between the parts of one name: "Anneke van den Broek", "Ahmad bin Yusuf".
_PARTICLES = frozenset({
    "van", "von", "der", "den", "de", "del", "della", "degli", "dei", "di", "da", "das", "do",
    "dos", "du", "des", "la", "le", "ter", "ten", "te", "zu", "zum", "af", "av", "bin", "binti",
    "bint", "ibn", "al", "el", "ben", "bat", "y", "e", "ní", "nic", "mac", "ó", "ua", "st",
})
_INITIAL = regex.compile(r"\p{Lu}")
# Surname and patronymic endings of many languages: evidence of a family name by shape alone.
_SURNAME_SHAPE = regex.compile(
    r"\p{L}{3,}(?:dóttir|dottir|sdóttir|sson|ić|ič|ovic|evic|wicz|ewicz|owski|"
    r"owska|ewski|ewska|inski|inska|cki|cka|dzki|dzka|ová|ovna|evna|ovich|evich|enko|escu|"
    r"oglu|oğlu|opoulos|opoulou|akis|idis|ashvili|adze)$")
# After a name, these make it an eponym (a disease, sign or test named after someone).
_EPONYM_HEADS = frozenset({
    "disease", "syndrome", "sign", "signs", "test", "palsy", "phenomenon", "reflex", "score",
    "criteria", "scale", "maneuver", "manoeuvre", "procedure", "operation", "esophagus",
    "oesophagus", "ulcer", "lymphoma", "sarcoma", "tumor", "tumour", "fracture", "node", "nodes",
    "cell", "cells", "law", "triad", "classification", "disorder", "anomaly", "membrane",
    "sphincter", "canal", "duct", "gland", "body", "bodies", "ring", "line", "lines", "point",
    "position", "solution", "stain", "catheter", "tube", "forceps", "incision", "repair", "block",
    "rule", "rules", "formula", "equation", "index", "method", "technique", "view", "angle",
    "space", "pouch", "fascia", "gangrene", "contracture", "deformity", "aneurysm", "arthritis",
    "encephalopathy", "thyroiditis", "chorea", "dementia", "dystrophy", "neuroma", "paralysis",
    "angina", "hernia", "murmur", "ataxia", "neuralgia", "anemia", "anaemia", "cyst",
})
_MONTHS_DAYS = frozenset({
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december", "monday", "tuesday", "wednesday", "thursday", "friday",
    "saturday", "sunday", "easter", "christmas", "thanksgiving", "halloween", "hanukkah",
    "passover", "ramadan", "diwali", "eid",
})
_DETERMINERS = frozenset({"the", "a", "an", "this", "that", "these", "those", "our", "your",
                          "my", "his", "her", "their", "its", "every", "each", "any", "no"})
# Tags of the word after a sentence-initial name: a finite verb, participle or modal.
_VERB_TAGS = frozenset({"VBD", "VBZ", "VBP", "VBN", "MD"})
# Tags that may follow "Name," when it is a vocative ("Ilse, can you...", "Ilse, you...").
_VOCATIVE_NEXT = frozenset({"MD", "PRP", "UH", "VB", "VBZ", "VBP", "VBD"})
# Endings of drug, lab, anatomy and disease words: not names for the tag-based rules (the
# gazetteer rules do not need this: a listed given name is a name whatever it ends with).
_CLINICAL_SUFFIXES = (
    "ol", "il", "in", "ine", "ide", "ate", "one", "mab", "nib", "pam", "lam", "pine", "zole",
    "cillin", "mycin", "statin", "sartan", "pril", "olol", "itis", "osis", "emia", "ectomy",
    "otomy", "oscopy", "gram", "graphy", "ase", "ism", "algia", "oma", "pathy", "plasty", "ium",
    "ics", "ogy", "ment", "tion", "sion", "ness", "ity", "ure", "ance", "ence", "al",
)
_SPOKEN = regex.compile(r"[ \t]*[\"“‘']?\p{L}")
_QUOTE_AFTER_COLON = regex.compile(r":[ \t]*[\"“‘'«]")
# A run of words in scripts other than Latin (two letters or more each, so "μg" or "β" alone are
# not taken), joined by spaces.
_FOREIGN_WORD = r"(?:(?!\p{Latin})[\p{L}\p{M}]){2,}"
_FOREIGN_RUN = regex.compile(
    rf"(?<![\p{{L}}\p{{M}}]){_FOREIGN_WORD}(?:[ \t]+{_FOREIGN_WORD})*(?![\p{{L}}\p{{M}}])")


@dataclass(frozen=True, slots=True)
class _Word:
    start: int
    end: int
    text: str
    tok: Any  # the spaCy token starting here, or None


class NameRules:
    """The rules above, for one pack's blocked words (label and institution words)."""

    def __init__(self, label_words: frozenset[str], org_words: frozenset[str],
                 not_names: frozenset[str]) -> None:
        self.labels = label_words
        self.orgs = org_words
        self.blocked = label_words | org_words | not_names | _MONTHS_DAYS
        self.given = given_names()
        self.family = surnames()

    # -- evidence ------------------------------------------------------------------------------

    def _nameish(self, word: str) -> bool:
        return (len(word) >= 2 and _NAME_SHAPE.fullmatch(word) is not None
                and word.casefold() not in self.blocked)

    def _given(self, w: _Word, *, strict: bool) -> bool:
        if w.text in self.given.names:
            return True
        if strict:
            return False
        return w.text in self.given.words and _proper(w.tok)

    def _clean_surname(self, w: _Word) -> bool:
        return w.text in self.family.names or _SURNAME_SHAPE.match(w.text.casefold()) is not None

    def _surname(self, w: _Word) -> bool:
        return (w.text in self.family.names or _SURNAME_SHAPE.match(w.text.casefold()) is not None
                or (w.text in self.family.words and _proper(w.tok)))

    # -- rules ---------------------------------------------------------------------------------

    def find(self, text: str, doc: Any | None) -> list[NameHit]:
        """Every name the rules find in ``text`` (``doc``: spaCy's doc of the same text)."""
        by_start = {t.idx: t for t in doc} if doc is not None else {}
        words = [_Word(m.start(), m.end(), m.group(0), by_start.get(m.start()))
                 for m in _WORD.finditer(text)]
        hits: list[NameHit] = []
        taken: set[int] = set()
        for run in self._runs(text, words):
            hit = self._full_name(text, run)
            if hit is not None:
                hits.append(hit)
                taken.update(range(hit.start, hit.end))
        for i, w in enumerate(words):
            if w.start in taken or not self._nameish(w.text):
                continue
            hit = self._lone_name(text, words, i)
            if hit is not None:
                hits.append(hit)
        hits.extend(self._speakers(text, words))
        if doc is not None:
            hits.extend(self._tagged(text, doc))
        hits.extend(_foreign_script(text))
        return hits

    def _runs(self, text: str, words: list[_Word]) -> Iterator[list[_Word]]:
        """Maximal runs of capitalised words (with particles inside), one line, spaces only."""
        run: list[_Word] = []
        for w in words:
            joined = bool(run) and regex.fullmatch(r"[ \t]+", text[run[-1].end:w.start])
            if run and not joined:
                yield run
                run = []
            if self._nameish(w.text) or (run and (w.text.casefold() in _PARTICLES
                                                  or _INITIAL.fullmatch(w.text))):
                run.append(w)
            elif run:
                yield run
                run = []
        if run:
            yield run

    def _full_name(self, text: str, run: list[_Word]) -> NameHit | None:
        # Particles and initials sit inside a name ("Willemine W ten Pas") but are no evidence.
        names = [w for w in run if w.text.casefold() not in _PARTICLES
                 and not _INITIAL.fullmatch(w.text)]
        if len(names) < 2:
            return None
        given = [self._given(w, strict=False) for w in names]
        family = [self._surname(w) for w in names]
        evidence = [g or f for g, f in zip(given, family, strict=True)]
        if not any(evidence):
            return None
        # Words without evidence at either end are not part of the name ("Interpreter Đorđe
        # Petrović"), except one next to a lone piece of evidence: a given name takes the word
        # after it as the surname ("Mikayla Weld"), a surname the word before it.
        first = evidence.index(True)
        last = len(evidence) - 1 - evidence[::-1].index(True)
        if first == last:
            if given[first] and first + 1 < len(names):
                last = first + 1
            elif family[first] and first > 0 and (
                    self._clean_surname(names[first])
                    or _whole_line(text, names[first - 1].start, names[first].end)):
                # A surname that is also a word ("Rust", "Love") takes the word before it only
                # when the two make up a line ("Lukacs Smit" heading a letter), not in a
                # sentence ("Write Rust code").
                first -= 1
            else:
                return None
        kept = names[first:last + 1]
        strong_first = self._given(kept[0], strict=True)
        strong_last = self._surname(kept[-1])
        if not (strong_first or strong_last or sum(evidence[first:last + 1]) >= 2):
            return None
        if not any(w.text in self.given.names or self._clean_surname(w) for w in kept):
            return None  # only words that are also English words: "Princess Royal"
        after = _next_word(text, kept[-1].end)
        if after is not None and after.casefold() in self.orgs:
            return None  # "Isabel Fenton Hospital" names an institution
        score = 0.55 if (strong_first and strong_last) else 0.5
        return NameHit("PERSON", kept[0].start, kept[-1].end, score)

    def _lone_name(self, text: str, words: list[_Word], i: int) -> NameHit | None:
        w = words[i]
        if len(w.text) < 3:
            return None
        listed = w.text in self.given.names
        shaped = w.text not in self.given and _SURNAME_SHAPE.match(w.text.casefold()) is not None
        inside = _inside_sentence(text, w.start)
        # A given name that is also a word ("Love", "Crystal") counts only as a proper noun inside
        # a sentence of ordinary words, not in a Title Case Heading ("You Secretly Love").
        word_name = (w.text in self.given.words and _proper(w.tok) and inside
                     and not _titled_neighbour(text, words, i))
        if not (listed or shaped or word_name):
            return None
        after = _next_word(text, w.end)
        if eponym_at(text, w.end) or (after is not None and after.casefold() in self.orgs):
            return None  # "Addison's disease", "Victoria Hospital"
        if i > 0 and words[i - 1].text.casefold() in _DETERMINERS and regex.fullmatch(
                r"[ \t]+", text[words[i - 1].end:w.start]):
            return None  # "the Victoria line"
        if inside:
            return NameHit("PERSON", w.start, w.end, 0.5 if listed else 0.49)
        # Opening a sentence or a line, a capitalised word may be any word: a name only before
        # a verb, a comma, a colon or a possessive.
        nxt = words[i + 1].tok if i + 1 < len(words) else None
        follow = text[w.end:w.end + 2]
        if ((nxt is not None and nxt.tag_ in _VERB_TAGS) or follow[:1] in (",", ":")
                or follow in ("'s", "’s")):
            return NameHit("PERSON", w.start, w.end, 0.49)
        return None

    def _speakers(self, text: str, words: list[_Word]) -> Iterator[NameHit]:
        """A capitalised word right before a colon and an opening quote is who speaks."""
        for w in words:
            if self._nameish(w.text) and _QUOTE_AFTER_COLON.match(text, w.end) is not None:
                yield NameHit("PERSON", w.start, w.end, 0.49)

    def _tagged(self, text: str, doc: Any) -> Iterator[NameHit]:
        """The tagger-based rules: a proper noun opening a sentence before a verb, addressed
        before a comma, or labelling a line of dialogue."""

        def candidate(tok: Any) -> bool:
            word = tok.text
            return (len(word) >= 3 and word[0].isupper() and word[1:].islower() and tok.is_alpha
                    and not tok.is_stop and word.lower() not in self.blocked
                    and not word.lower().endswith(_CLINICAL_SUFFIXES))

        speakers: list[Any] = []
        named_speaker = False
        n = len(doc)
        for i, tok in enumerate(doc):
            if i + 1 >= n or not candidate(tok):
                continue
            nxt = doc[i + 1]
            if (nxt.text == ":" and _line_start(text, tok.idx)
                    and _SPOKEN.match(text, nxt.idx + 1) is not None):
                # "Ilse: Where ..." at a line start: a speaker label unless it is a header word;
                # what follows is words, not a value ("Zofran: 4 mg").
                speakers.append(tok)
                if tok.pos_ == "PROPN" or tok.ent_type_ == "PERSON":
                    named_speaker = True
                continue
            if not _sentence_start(text, tok.idx):
                continue
            before_verb = tok.pos_ == "PROPN" and nxt.tag_ in _VERB_TAGS
            vocative = (nxt.text == "," and i + 2 < n
                        and (doc[i + 2].tag_ in _VOCATIVE_NEXT if tok.pos_ == "PROPN"
                             else tok.pos_ == "NOUN" and doc[i + 2].tag_ == "MD"))
            if before_verb or vocative:
                yield NameHit("PERSON", tok.idx, tok.idx + len(tok), 0.49)
        # A transcript (two or more labels, one of them a name) makes every label a speaker; a
        # single label counts only when the tagger calls it a proper noun.
        dialogue = named_speaker and len(speakers) >= 2
        for tok in speakers:
            if dialogue or tok.pos_ == "PROPN":
                yield NameHit("PERSON", tok.idx, tok.idx + len(tok), 0.49)


def _proper(tok: Any) -> bool:
    return tok is not None and (tok.pos_ == "PROPN" or tok.ent_type_ == "PERSON")


def _line_start(text: str, idx: int) -> bool:
    before = text[:idx].rstrip(" \t")
    return not before or before.endswith("\n")


def _titled_neighbour(text: str, words: list[_Word], i: int) -> bool:
    """Whether the word before or after ``words[i]`` on its line is capitalised."""
    for j in (i - 1, i + 1):
        if 0 <= j < len(words):
            lo, hi = ((words[j].end, words[i].start) if j < i
                      else (words[i].end, words[j].start))
            if "\n" not in text[lo:hi] and words[j].text[:1].isupper():
                return True
    return False


def _whole_line(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` is all there is on its line (but punctuation)."""
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end < 0 else line_end
    return not regex.search(r"[\p{L}\p{N}]", text[line_start:start] + text[end:line_end])


def _sentence_start(text: str, idx: int) -> bool:
    """First on a line or after a full stop (the tagger-based rules' notion: a colon does not
    start a sentence, so "concern: Stomach has been off" is not taken)."""
    before = text[:idx].rstrip(" \t\"'“‘")
    return not before or before.endswith(("\n", ".", "!", "?"))


def _inside_sentence(text: str, idx: int) -> bool:
    """Whether a word at ``idx`` stands inside a sentence (not first on a line or after a full
    stop): a capital there is the word's own, not the sentence's."""
    before = text[:idx].rstrip(" \t\"'“‘(")
    return bool(before) and not before.endswith(("\n", ".", "!", "?", ":", ";", "-", "•", "*"))


def _next_word(text: str, end: int) -> str | None:
    """The word after ``end`` on the same line, past a possessive and spaces."""
    m = regex.match(r"(?:['’]s)?[ \t]+(\p{L}[\p{L}\p{M}'’-]*)", text[end:end + 60])
    return m.group(1) if m else None


def eponym_at(text: str, end: int) -> bool:
    """Whether the name ending at ``end`` is an eponym: "Addison's disease", "Bell palsy"."""
    after = _next_word(text, end)
    return after is not None and after.casefold() in _EPONYM_HEADS


def _foreign_script(text: str) -> Iterator[NameHit]:
    for m in _FOREIGN_RUN.finditer(text):
        value = m.group(0)
        entity = "LOCATION" if value.isupper() else "PERSON"
        yield NameHit(entity, m.start(), m.end(), 0.49)

