"""Write **asides**: sentences of a patient message that ask for nothing ("Hope you had a good
weekend!", "Sorry for the typos, I'm on my phone.", "The weather has been awful here."):
``asides_train.jsonl``, ``asides_dev.jsonl`` and ``asides_test.jsonl`` next to this file. Every
template was written for shoal; nothing is downloaded.

Why: the splitter labels a message clause by clause, and its clause model knew only requests. A
pleasantry alone got whatever label it looked most like: "Hope you are doing well." was an
``injection`` at 0.93 and "The weather has been awful here." a ``symptom_report`` at 0.82, so a
refill request with a kind word in it got a second step, and the patient a decline or a triage
answer to small talk. These sentences train the clause model's ``aside`` label
(``build_models.py``), which the ``split`` node treats like a greeting: no request, no step
(``intent_splitter``'s ``asides``).

Records, one JSON object a line: ``{"id": "as-00001", "text": ..., "label": "aside",
"family": "weather", "split": "train"}``. Families are split **by family** with a fixed seed:
:data:`DEV_FAMILIES` and :data:`TEST_FAMILIES` families each to dev and test, the rest to train.
Dev chooses settings (``benchmarks/plan.py --tune``: dev's single requests with a dev aside put
in); test is only measured (``benchmarks/plan.py``: test's single requests with a test aside).
No template holds a request, a symptom or an emergency word (:func:`check`).

    python examples/healthcare/data/make_asides.py [OUT_DIR] [--seed S]

Deterministic: the same seed writes byte-identical files.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

OUT_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(OUT_DIR))
import make_messages as mm  # noqa: E402  (this folder's generator: writes the splits)

SEED = 20261206
SPLITS = ("train", "dev", "test")
DEV_FAMILIES = 4
TEST_FAMILIES = 4
PER_FAMILY = {"train": 24, "dev": 12, "test": 12}
"""Sentences per family in each split (fewer when a family has fewer distinct fillings)."""

SLOTS: dict[str, list[str]] = {
    "day": ["day", "week", "weekend", "Monday", "Friday", "morning", "afternoon"],
    "good": ["good", "great", "nice", "relaxing", "lovely", "restful"],
    "holiday": ["Thanksgiving", "holidays", "New Year", "Easter", "Fourth of July",
                "Christmas", "Hanukkah"],
    "weather": ["awful", "so hot", "freezing", "rainy", "gorgeous", "humid", "snowy"],
    "place": ["the lake", "Florida", "my sister's", "the mountains", "vacation", "Ohio",
              "the beach"],
    "relative": ["daughter", "son", "husband", "wife", "mom", "grandson", "neighbor"],
    "doctor": ["Dr. Patel", "Dr. Kim", "Dr. Alvarez", "Dr. Okafor", "Dr. Smith", "Dr. Chen"],
    "staff": ["front desk", "nurses", "whole team", "staff", "receptionist", "office"],
    "pet": ["dog", "cat", "puppy", "parrot", "kitten"],
    "team": ["Packers", "Yankees", "Lakers", "Eagles", "Cubs", "Celtics"],
    "device": ["phone", "tablet", "work laptop", "kid's iPad"],
    "busy": ["crazy", "hectic", "long", "busy", "wild"],
}

FAMILIES: dict[str, list[str]] = {
    "well_wishes": [
        "Hope you are doing well.", "Hope you had a {good} {day}!", "Hope your {day} is going "
        "well.", "Hope all is well with you and the {staff}.", "I hope everyone there is "
        "staying well.", "hope ur {day} is {good}", "Hope this finds you well."],
    "thanks_general": [
        "Thanks so much for all you do.", "I really appreciate everything you all do.",
        "You all have been wonderful to me.", "Thank you for always being so patient with me.",
        "thx for everything, u guys rock", "I'm so grateful for the {staff}."],
    "apology": [
        "Sorry to bother you again.", "Sorry for the long message.", "Apologies for the "
        "typos, I'm on my {device}.", "sorry if this is a dumb question", "Sorry, I know "
        "you're busy.", "Forgive me for writing so late."],
    "weather": [
        "The weather has been {weather} here.", "It's been {weather} all {day}.", "What a "
        "strange summer it has been.", "weather's been {weather} lately", "Finally some sun "
        "today!"],
    "busy_life": [
        "It's been a {busy} {day} at work.", "Things have been {busy} with the kids.",
        "Work has been {busy} lately.", "life has been {busy} lol", "We're in the middle of "
        "moving, so it's been {busy}."],
    "holidays": [
        "Happy {holiday} to the {staff}!", "Happy {holiday}!", "Wishing you all a happy "
        "{holiday}.", "happy {holiday} everyone", "Hope you all enjoy the {holiday}."],
    "family_news": [
        "My {relative} says hi.", "My {relative} just started a new job.", "We just got back "
        "from {place}.", "My {relative} is visiting this {day}.", "my {relative} says thank "
        "you too"],
    "meta_channel": [
        "I hope this is the right place to ask.", "Not sure who else to ask.", "I'm writing "
        "from my {device}.", "first time using this portal", "I wasn't sure whether to call "
        "or write."],
    "closing": [
        "Looking forward to hearing from you.", "Talk soon.", "Have a {good} {day}!",
        "No rush on this.", "Take care.", "have a {good} one"],
    "compliments": [
        "{doctor} is the best.", "The new {staff} is so friendly.", "The new office looks "
        "great.", "{doctor} was so kind last time.", "love the new waiting room"],
    "pets": [
        "My {pet} just knocked my coffee over, ha.", "My {pet} says hi too.", "Sorry, my "
        "{pet} keeps walking on the keyboard.", "the {pet} is keeping me company today"],
    "sports": [
        "Go {team}!", "Did you catch the {team} game?", "Rough season for the {team}.",
        "the {team} finally won lol"],
    "status_ok": [
        "Otherwise I'm doing okay.", "Everything else has been fine.", "Other than that, all "
        "good here.", "I'm hanging in there.", "otherwise things are good"],
    "gratitude_past": [
        "Thanks again for squeezing me in last time.", "The {staff} was really helpful last "
        "{day}.", "Thank you for the quick reply last time.", "{doctor}'s advice last time "
        "really helped."],
    "small_talk": [
        "Traffic was terrible this morning.", "I finally finished that novel you mentioned.",
        "My garden is finally blooming.", "We're going to {place} next {day}.",
        "coffee hasn't kicked in yet haha"],
    "reassurance": [
        "Nothing to reply to in this part.", "Just keeping you in the loop.", "Just wanted you "
        "to know.", "fyi only", "Nothing else from me."],
    "patience": [
        "Whenever you get a chance is fine.", "I know you all are swamped.", "Take your "
        "time.", "No hurry at all.", "whenever works"],
    "greeting_long": [
        "I hope you and your family are doing well.", "It's been a while since I wrote!",
        "Long time no see!", "Good to be back in touch.", "it's me again lol"],
}

REQUEST_WORDS = re.compile(
    r"\b(?:refill|prescription|appointment|appt|schedule|book|bill|charge|pay|insurance|pain|"
    r"hurt|fever|sick|bleed|chest|breath|emergency|urgent|911|medication|dose|pill|test|"
    r"results?|cancel|reschedule|call me|can you|could you|please|need)\b", re.IGNORECASE)
"""What no aside may hold: a request, a symptom or an emergency word (:func:`check`)."""


def check(families: Mapping[str, Sequence[str]] = FAMILIES) -> None:
    """Every template asks for nothing and fills from known slots."""
    for name, templates in families.items():
        for template in templates:
            if found := REQUEST_WORDS.search(template):
                raise ValueError(f"family {name}: {template!r} holds {found.group()!r}")
            for slot in re.findall(r"\{(\w+)\}", template):
                if slot not in SLOTS:
                    raise ValueError(f"family {name}: unknown slot {slot!r}")


def split_families(names: Sequence[str], rng: random.Random) -> dict[str, str]:
    """Family name -> split: shuffled, the first to dev, the next to test, the rest to train."""
    order = sorted(names)
    rng.shuffle(order)
    return {name: ("dev" if i < DEV_FAMILIES else "test"
                   if i < DEV_FAMILIES + TEST_FAMILIES else "train")
            for i, name in enumerate(order)}


def fill(template: str, rng: random.Random) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: rng.choice(SLOTS[m.group(1)]), template)


def build(seed: int = SEED) -> dict[str, list[dict[str, Any]]]:
    """Every record by split: distinct fillings of each family's templates, numbered in split
    order (train, dev, test)."""
    check()
    split_of = split_families(list(FAMILIES), random.Random(seed))
    rows: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    number = 0
    for split in SPLITS:
        rng = random.Random(f"{seed}-{split}")
        for name in sorted(n for n in FAMILIES if split_of[n] == split):
            seen: set[str] = set()
            for _ in range(PER_FAMILY[split] * 20):  # distinct fillings, a bounded number of draws
                if len(seen) >= PER_FAMILY[split]:
                    break
                seen.add(fill(rng.choice(FAMILIES[name]), rng))
            for text in sorted(seen):
                number += 1
                rows[split].append({"id": f"as-{number:05d}", "text": text, "label": "aside",
                                    "family": name, "split": split})
    return rows


def insert_aside(text: str, aside: str, rng: random.Random) -> str:
    """``text`` with ``aside`` put in as a sentence of its own: first, last, or after its first
    sentence, as patients put small talk."""
    where = rng.choice(("first", "last", "middle"))
    if where == "first":
        return f"{aside} {text}"
    if where == "last":
        return f"{text.rstrip()} {aside}"
    cut = re.search(r"[.?!]\s+", text)
    if cut is None:
        return f"{text.rstrip()} {aside}"
    return f"{text[:cut.end()]}{aside} {text[cut.end():]}"


def with_asides(rows: Sequence[Mapping[str, Any]], asides: Sequence[Mapping[str, Any]],
                seed: int) -> list[dict[str, Any]]:
    """Each row with one aside put in (its text changed, everything else kept): how
    ``benchmarks/plan.py`` checks that small talk adds no step."""
    rng = random.Random(seed)
    return [{**row, "text": insert_aside(str(row["text"]), str(rng.choice(asides)["text"]), rng)}
            for row in rows]


def main(argv: Sequence[str] | None = None,
         echo: Callable[[str], object] = print) -> dict[str, Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("out_dir", nargs="?", type=Path, default=OUT_DIR)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    rows = build(args.seed)
    paths = mm.write(args.out_dir, rows, prefix="asides_")
    for split, records in rows.items():
        families = sorted({r["family"] for r in records})
        echo(f"{paths[split].name}: {len(records)} asides from {len(families)} families")
    return paths


if __name__ == "__main__":
    main()
