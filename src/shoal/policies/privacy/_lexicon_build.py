"""Builds the word lists of :mod:`shoal.policies.privacy.lexicon` (maintainers only; see its
docstring for what is kept). Needs the ``dev`` extra (Faker) and an English word list with proper
nouns capitalised, such as SCOWL's as Debian's ``wamerican`` package installs it::

    python -m shoal.policies.privacy._lexicon_build --words <english word list>
    python -m shoal.policies.privacy._lexicon_build --drugs   # the drug names (medical extra)

Nothing here runs when shoal runs, and nothing is downloaded.
"""

from __future__ import annotations

import argparse
import bz2
import importlib
import pickle
from importlib.resources import files
from pathlib import Path

import regex  # type: ignore[import-untyped]
from faker.config import AVAILABLE_LOCALES

from shoal.policies.privacy.lexicon import DATA, WORD_TAG

__all__ = ["build", "main"]

_LATIN_WORD = regex.compile(r"\p{Latin}[\p{Latin}\p{M}'’-]*")


def _entries(value: object) -> list[str]:
    """Strings held by a Faker provider attribute: a list, a weighted dict, tuples of spellings."""
    items = list(value.keys()) if isinstance(value, dict) else value
    out: list[str] = []
    if isinstance(items, (list, tuple, set, frozenset)):
        for item in items:
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, tuple):
                out.extend(x for x in item if isinstance(x, str))
    return out


def _english_words(word_list: Path) -> frozenset[str]:
    """The lower-case entries of a word list (one word a line): ordinary words. Capitalised
    entries are proper nouns and are left out."""
    lines = word_list.read_text(encoding="utf-8", errors="replace").splitlines()
    return frozenset(w.strip() for w in lines if w.strip() and w.strip().islower())


def build(out_dir: Path, word_list: Path) -> dict[str, int]:
    """Write the lists from the installed Faker, tagging the entries ``word_list`` has in lower
    case; returns the number of entries per file."""
    english = _english_words(word_list)
    given: set[str] = set()
    family: set[str] = set()
    places: set[str] = set()
    for locale in AVAILABLE_LOCALES:
        for kind in ("person", "address"):
            try:
                provider = importlib.import_module(f"faker.providers.{kind}.{locale}").Provider
            except ModuleNotFoundError:
                continue
            for attr, value in vars(provider).items():
                if kind == "person" and attr.startswith(("first_name", "middle_name",
                                                         "first_romanized")):
                    given.update(_entries(value))
                elif kind == "person" and ("last_name" in attr
                                           or attr.startswith("last_romanized")):
                    family.update(_entries(value))
                elif kind == "address" and attr == "countries":
                    places.update(_entries(value))

    def single_words(entries: set[str]) -> set[str]:
        # "Ana Carolina" and "van der Berg" are split; particles are the rules' business.
        words = {w for e in entries for w in regex.split(r"[ \t]+", e.strip())}
        return {w for w in words if len(w) >= 3 and _LATIN_WORD.fullmatch(w)
                and w[0].isupper() and not w.isupper()}

    counts: dict[str, int] = {}
    out_dir.mkdir(parents=True, exist_ok=True)
    for filename, entries, split in (("given_names.txt", given, True),
                                     ("surnames.txt", family, True),
                                     ("countries.txt", places, False)):
        kept = single_words(entries) if split else {
            e.strip() for e in entries if _LATIN_WORD.match(e.strip())}
        lines = [f"{e}\t{WORD_TAG}" if e.casefold() in english else e for e in sorted(kept)]
        header = (f"# {filename}: built by `python -m shoal.policies.privacy._lexicon_build` "
                  f"from the locale lists of Faker (MIT licence).\n# A tab and '{WORD_TAG}' marks "
                  f"an entry that is also an ordinary English word (lower case in SCOWL's word "
                  f"list).\n")
        (out_dir / filename).write_text(header + "\n".join(lines) + "\n", encoding="utf-8")
        counts[filename] = len(lines)
    return counts


def build_drugs(out_dir: Path) -> int:
    """Write ``drug_names.txt`` from the ``drug-named-entity-recognition`` package's dictionary
    (the ``medical`` extra): its single-word variants of four letters or more, lower case."""
    import drug_named_entity_recognition  # type: ignore[import-untyped]

    table_path = (Path(drug_named_entity_recognition.__file__).parent
                  / "drug_ner_dictionary.pkl.bz2")
    with bz2.open(table_path) as handle:
        # The package's own data file, read the way the package reads it.
        table = pickle.load(handle)
    kept = sorted({v.casefold() for v in table["drug_variant_to_canonical"]
                   if isinstance(v, str) and len(v) >= 4 and _LATIN_WORD.fullmatch(v)})
    header = ("# drug_names.txt: built by `python -m shoal.policies.privacy._lexicon_build "
              "--drugs` from the dictionary of drug-named-entity-recognition (MIT licence).\n")
    (out_dir / "drug_names.txt").write_text(header + "\n".join(kept) + "\n", encoding="utf-8")
    return len(kept)


def main() -> None:
    parser = argparse.ArgumentParser(description="Build the masker's word lists.")
    parser.add_argument("--words", type=Path,
                        help="an English word list, one word a line (proper nouns capitalised): "
                             "rebuilds the name and country lists from Faker")
    parser.add_argument("--drugs", action="store_true",
                        help="rebuild the drug-name list (needs the medical extra)")
    args = parser.parse_args()
    if args.words is None and not args.drugs:
        parser.error("give --words, --drugs or both")
    target = Path(str(files(DATA[0]).joinpath(DATA[1])))
    if args.words is not None:
        for name, count in build(target, args.words).items():
            print(f"{name}: {count}")
    if args.drugs:
        print(f"drug_names.txt: {build_drugs(target)}")


if __name__ == "__main__":
    main()
