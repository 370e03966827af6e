"""Builds the word lists of :mod:`.name_gazetteer` (maintainers only; see its docstring for the
sources and what is kept). Needs the ``dev`` and ``medical`` extras and an English word list with
proper nouns capitalised (Debian's ``wamerican``)::

    python -m shoal.policies.privacy._gazetteer_build --words /usr/share/dict/american-english

Nothing imports this module when shoal runs (its libraries are development ones), and nothing
is downloaded.
"""

from __future__ import annotations

import argparse
import bz2
import importlib
import pickle
import pkgutil
import re
import sys
import unicodedata
from collections.abc import Iterable
from pathlib import Path

import drug_named_entity_recognition  # type: ignore[import-untyped]
import faker.providers.person as person
import simple_icd_10_cm as icd  # type: ignore[import-untyped]
from faker.providers.address.en_US import Provider as Address

from shoal.policies.privacy.name_gazetteer import FIRST_NAMES_FILE, VOCABULARY_FILE, data_path

__all__ = ["build", "main"]

_MONTHS_AND_DAYS = ("january february march april may june july august september october "
                    "november december monday tuesday wednesday thursday friday saturday sunday")
_EXTRA_WORDS = (
    # Titles and abbreviations that stand before a name, never for one.
    "dr mr mrs ms mx prof sr jr st nurse doc pa np rn md do "
    # Words of shoal's own payloads (task, draft headings) and of greetings.
    "draft task message answer label confidence probabilities planner local model team "
    "everyone everybody folks all there again guys "
    # Text-speak of patient portals: a sign-off "Thx" is no name.
    "thx thnx tnx ty pls plz tmrw tmr appt appts asap fyi btw lol idk ok okay ya yea yeah yep "
    "nope hmm rx dx abt bc cuz msg info docs dept ur im ive dont cant wont didnt doesnt isnt "
    # Institutions a patient names next to a greeting or a sign-off ("Hi, Walgreens says ...").
    "aetna cigna anthem humana kaiser medicare medicaid tricare walgreens cvs walmart costco "
    "amazon optum covid mychart"
)


_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
_NO_SPACES = ("CJK", "HIRAGANA", "KATAKANA", "THAI", "LAO", "KHMER", "MYANMAR", "TIBETAN")


def _spaced_script(word: str) -> bool:
    """Whether ``word`` is written in a script that puts spaces between words."""
    first = unicodedata.name(word[0], "")
    return not first.startswith(_NO_SPACES)


def _faker_first_names() -> set[str]:
    names: set[str] = set()
    for info in pkgutil.iter_modules(person.__path__):
        provider = importlib.import_module(f"{person.__name__}.{info.name}").Provider
        for attr in dir(provider):
            if not attr.startswith("first_name"):
                continue
            value = getattr(provider, attr, None)
            if not isinstance(value, tuple | list | set | frozenset | dict):
                continue  # a method or a format string, not a list (a dict: names -> weights)
            for entry in value:
                if isinstance(entry, str):
                    names.update(_WORD.findall(entry))
    return {n.casefold() for n in names if _spaced_script(n)}


def _places() -> set[str]:
    words: set[str] = set()
    for place in (*Address.states, *Address.countries):
        words.update(w.casefold() for w in _WORD.findall(place))
    return words


def _icd_words() -> set[str]:
    words: set[str] = set()
    for code in icd.get_all_codes(True):
        words.update(w.casefold() for w in _WORD.findall(icd.get_description(code)))
    return words


def _drug_names() -> set[str]:
    drugs = Path(drug_named_entity_recognition.__file__).parent / "drug_ner_dictionary.pkl.bz2"
    with bz2.open(drugs) as handle:
        # The package's own data file, read the way the package reads it.
        table = pickle.load(handle)
    return {variant.casefold() for variant in table["drug_variant_to_canonical"]
            if isinstance(variant, str) and _WORD.fullmatch(variant) and len(variant) >= 4}


def _english_words(word_list: Path) -> set[str]:
    words: set[str] = set()
    with word_list.open(encoding="utf-8") as handle:
        for line in handle:
            word = line.strip()
            # Lower-case entries only: the capitalised ones are proper nouns (first names too).
            if word and word[0].islower() and _WORD.fullmatch(word) and "'" not in word:
                words.add(word.casefold())
    return words


def _write(path: Path, header: Iterable[str], words: Iterable[str]) -> int:
    ordered = sorted(set(words))
    lines = [f"# {line}" for line in header]
    path.write_text("\n".join([*lines, *ordered]) + "\n", encoding="utf-8")
    return len(ordered)


def build(word_list: Path, out_dir: Path) -> dict[str, int]:
    """Write the gazetteer and the vocabulary into ``out_dir``; returns their sizes."""
    extra = set(_EXTRA_WORDS.split()) | set(_MONTHS_AND_DAYS.split())
    vocabulary_words = _english_words(word_list) | _icd_words() | extra
    # Drug names leave the gazetteer but stay out of the shipped vocabulary: some 30,000 mostly
    # chemical words, for a check that rarely meets a drug name after "Hi" or "called".
    not_names = vocabulary_words | _drug_names() | _places()
    names = {n for n in _faker_first_names() if len(n) >= 3 and n not in not_names}
    out_dir.mkdir(parents=True, exist_ok=True)
    return {
        FIRST_NAMES_FILE: _write(out_dir / FIRST_NAMES_FILE, [
            "First names of every Faker person locale (MIT), casefolded, split into words,",
            "without the words of vocabulary.txt, one-word drug names",
            "(drug-named-entity-recognition, MIT), US states and countries, and without names",
            "under three letters. Built by shoal.policies.privacy._gazetteer_build.",
        ], names),
        VOCABULARY_FILE: _write(out_dir / VOCABULARY_FILE, [
            "Ordinary words, casefolded: the lower-case entries of an English word list",
            "(SCOWL via Debian's wamerican), the words of ICD-10-CM descriptions",
            "(simple-icd-10-cm), months, weekdays, titles and a few institutions.",
            "Built by shoal.policies.privacy._gazetteer_build.",
        ], vocabulary_words),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the independent egress check's word "
                                                 "lists (maintainers only).")
    parser.add_argument("--words", type=Path, required=True,
                        help="an English word list, one word a line, proper nouns capitalised "
                             "(Debian: /usr/share/dict/american-english from wamerican)")
    parser.add_argument("--out", type=Path, default=data_path(""),
                        help="folder to write into (default: the package's data folder)")
    args = parser.parse_args(argv)
    sizes = build(args.words, args.out)
    for name, size in sizes.items():
        sys.stdout.write(f"{name}: {size} words\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
