"""The word lists of the independent egress check (:mod:`.second_detector`): first names of many
languages, and the ordinary words a capitalised token next to a name cue is compared with.

Both are plain text files shipped in ``shoal/policies/privacy/data/`` (one casefolded word a
line, ``#`` comments naming the sources) and read once per process. A maintainer builds them
with :mod:`._gazetteer_build`, never at run time and never from the network::

    python -m shoal.policies.privacy._gazetteer_build --words /usr/share/dict/american-english

Sources (all installed locally; nothing is downloaded):

- first names: every ``first_names*`` list of every person locale of Faker (MIT), split into
  words; scripts written without spaces between words (Han, kana, Thai) are left out, since a
  token match means nothing there;
- English words: the lower-case entries of a system word list (Debian's ``wamerican``, SCOWL,
  permissive licence); its capitalised entries are proper nouns, first names among them, so they
  are not ordinary words;
- medical words: the words of every ICD-10-CM description (``simple-icd-10-cm``, the ``medical``
  extra), eponyms included (Crohn, Addison, Graves); the one-word drug names of
  ``drug-named-entity-recognition`` (MIT) are taken out of the gazetteer but not shipped.

The gazetteer keeps a first name only when it is not an ordinary word (Will, Grace, May, Bunny
are words first), not a drug or a medical word, not a month or a weekday, a US state or a
country (none of those identifies anyone), and at least three letters long. Cities stay: a city
left in a masked text is an identifier too.
"""

from __future__ import annotations

import functools
from importlib.resources import files
from pathlib import Path

__all__ = ["FIRST_NAMES_FILE", "VOCABULARY_FILE", "data_path", "first_names", "vocabulary"]

FIRST_NAMES_FILE = "first_names.txt"
VOCABULARY_FILE = "vocabulary.txt"


def data_path(name: str) -> Path:
    """Where the shipped word list ``name`` is (the package's ``data`` folder)."""
    return Path(str(files("shoal.policies.privacy").joinpath("data", name)))


def _read(name: str) -> frozenset[str]:
    words = set()
    with data_path(name).open(encoding="utf-8") as handle:
        for line in handle:
            word = line.strip()
            if word and not word.startswith("#"):
                words.add(word)
    return frozenset(words)


@functools.cache
def first_names() -> frozenset[str]:
    """Casefolded first names that are not ordinary English or medical words."""
    return _read(FIRST_NAMES_FILE)


@functools.cache
def vocabulary() -> frozenset[str]:
    """Casefolded ordinary words: English, ICD-10-CM descriptions, months and weekdays, titles."""
    return _read(VOCABULARY_FILE)
