"""Word lists the name and address rules consult: given names, surnames and country names from
many languages.

The lists are committed files in ``policies/privacy/lexicon_data/`` (one entry a line), built
once by a maintainer from the locale name and address lists of Faker (MIT licence; a development
dependency, never needed at run time)::

    python -m shoal.policies.privacy._lexicon_build --words <english word list>

Only Latin-script entries of three letters or more are kept: words in other scripts are found by
their script alone (see :mod:`shoal.policies.privacy.names`). These lists are the masker's own;
the egress check's second detector keeps separate ones so the two stay independent.

An entry that is also an ordinary English word ("Grace", "Will", "Iris", "Mark") carries the tag
``word``: the rules take such a word as a name only with more evidence than its spelling (the
tagger calls it a proper noun, a surname follows it). Ordinary words are the lower-case entries of
the word list given to the build (SCOWL's, as Debian's ``wamerican`` package installs it: its
capitalised entries are proper nouns, names among them, so they do not count).

Nothing here reads or logs the texts being scanned.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib.resources import files

__all__ = [
    "DATA",
    "WORD_TAG",
    "Lexicon",
    "countries",
    "drug_names",
    "given_names",
    "is_drug_name",
    "surnames",
]

DATA = ("shoal.policies.privacy", "lexicon_data")
"""Where the lists are: a package and a folder."""
WORD_TAG = "word"
"""The tag (after a tab) of an entry that is also an ordinary English word."""


@dataclass(frozen=True, slots=True)
class Lexicon:
    """Entries of one list, split by whether they are also English words."""

    names: frozenset[str]
    """Entries that are not English words: their spelling is evidence enough."""
    words: frozenset[str]
    """Entries that are also English words (``Grace``, ``Mark``)."""

    def __contains__(self, word: object) -> bool:
        return word in self.names or word in self.words


def _read(filename: str) -> Lexicon:
    names: set[str] = set()
    words: set[str] = set()
    text = files(DATA[0]).joinpath(DATA[1], filename).read_text(encoding="utf-8")
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        entry, _, tag = line.partition("\t")
        (words if tag == WORD_TAG else names).add(entry)
    return Lexicon(frozenset(names), frozenset(words))


@functools.cache
def given_names() -> Lexicon:
    """Given names (and middle names) of Faker's locales, Latin script, three letters or more."""
    return _read("given_names.txt")


@functools.cache
def surnames() -> Lexicon:
    """Family names of Faker's locales, Latin script, three letters or more."""
    return _read("surnames.txt")


@functools.cache
def countries() -> frozenset[str]:
    """Country names as Faker's locales write them (``Norway``, ``Norge``, ``Deutschland``),
    compared in lower case."""
    lexicon = _read("countries.txt")
    return frozenset(w.casefold() for w in lexicon.names | lexicon.words)


@functools.cache
def drug_names() -> frozenset[str]:
    """Single-word drug names, brand and generic (``advil``, ``xanax``, ``metformin``), in lower
    case: the variants of the ``drug-named-entity-recognition`` package's dictionary (MIT
    licence), four letters or more."""
    lexicon = _read("drug_names.txt")
    return lexicon.names | lexicon.words


@functools.cache
def _name_words() -> frozenset[str]:
    # Given names, surnames and countries: words that may identify someone or somewhere.
    return frozenset(w.casefold() for lex in (given_names(), surnames())
                     for w in lex.names | lex.words) | countries()


_WORDS = re.compile(r"[^\W\d_][\w'’-]*")


def is_drug_name(value: str) -> bool:
    """Whether ``value`` is made only of drug names, none of them also a given name, surname
    or country of the lists. The statistical model reads a capitalised brand as a person
    ("Advil", "Xanax") or a place ("Nexium"); masking it hides the drug from the validator and
    the reply and protects no one. A word that is both ("Allegra", "Cipro") stays masked:
    privacy first."""
    words = [w.casefold() for w in _WORDS.findall(value)]
    drugs, names = drug_names(), _name_words()
    return bool(words) and all(w in drugs and w not in names for w in words)
