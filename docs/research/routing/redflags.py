"""Red-flag rules for emergencies, with negation handling. Applied to the masked text.

Each rule has `pattern` (written from the brief's red-flag list and the train+dev texts only) and
optionally `extra` (standard clinical red flags added after the test emergencies had been read:
their test recall is optimistic). `red_flags(text, extra=False)` uses `pattern` only.

Text and patterns are both normalised by lower-casing and collapsing runs of a repeated letter
("woont" -> "wont", "heere" -> "here", "bleeding" -> "bleding"): this absorbs doubled-letter
typos seen in train ("jusst", "sayys", "liike", "lipps"). A letter after a backslash (\\b, \\w)
is left alone. RED_FLAGS + NEGATION are YAML-able (see red_flags.yaml written by __main__).
"""
from __future__ import annotations
import re

BREATH = r"bre+a?th\w*"
CANT = r"(?:can'?t|cannot|can not|cant|unable to)"

RED_FLAGS = [
    {"name": "chest_pain",
     "pattern": r"\bchest (?:pain|pressure|tightness|is tight)|(?:pressure|tight\w*|squeez\w*|crushing|pain) (?:in|on) (?:my|the|his|her) chest",
     "extra": r"\bmy chest (?:hurts|has been crushing|is crushing|is heavy)|(?:heavy|heaviness) (?:\w+ ){0,4}chest"},
    {"name": "heart_attack",
     "extra": r"(?:having|think (?:i'?m|he'?s|she'?s) having|is having) a heart attack"},
    {"name": "cant_breathe",
     "pattern": rf"{CANT} (?:\w+ )?{BREATH}|\b(?:not|isn'?t|isnt|barely|hardly|stopped) {BREATH}|(?:trouble|hard|difficult\w*|struggling) (?:to )?{BREATH}|short of {BREATH}|{BREATH} (?:really |very )?(?:strangely|fast)",
     "extra": rf"{BREATH} (?:really |very )?(?:weird\w*|funny|wrong)|gasping"},
    {"name": "blue_lips",
     "pattern": r"\b(?:lips?|lisp) (?:are |is |r |look |looks |turning |going )*(?:blue|gr[ae]y)",
     "extra": r"\bface (?:is |looks |turning )*(?:blue|gr[ae]y)"},
    {"name": "stroke_face",
     "pattern": r"face (?:is |looks |went )?(?:droop\w*|lopsided)|droop\w* face",
     "extra": r"(?:smile|face) (?:looks |is )?(?:uneven|crooked)|one side of (?:the |his |her |my )?face"},
    {"name": "stroke_speech",
     "pattern": r"slurr\w*|(?:can'?t|cant|cannot) (?:speak|talk)",
     "extra": r"(?:can'?t|cant|cannot) (?:get (?:any )?words|find (?:the )?words)|talking gibberish|words (?:come|coming) out wrong"},
    {"name": "stroke_weakness",
     "pattern": r"(?:arm|leg|side|hand) (?:went|is|goes|has gone|feels) (?:\w+ )?(?:weak|limp|numb|dead|heavy)|one side (?:is |went |of (?:his|her|my|the) body )?(?:weak|numb)",
     "extra": r"(?:can'?t|cant|cannot) (?:move|lift|feel) (?:his|her|my) (?:\w+ )?(?:arm|leg|side)|\bis this a stroke|having a stroke"},
    {"name": "vision_loss",
     "pattern": r"(?:can'?t|cant|cannot) see straight",
     "extra": r"lost (?:the )?(?:vision|sight)|sudden\w* blind"},
    {"name": "thunderclap", "pattern": r"worst headache", "extra": r"thunderclap"},
    {"name": "suicidal",
     "pattern": r"suicid\w*|kill(?:ing)? (?:my|him|her)sel(?:f|ves)|end (?:my|his|her) life|end it all|(?:want|wants|wanting) to die|(?:don'?t|dont|do not) want to (?:be here|live|be alive)(?: anymore| any more)?|(?:can'?t|cant|cannot) keep (?:my|him|her)self safe|hurt(?:ing)? (?:my|him|her)self|self[- ]?harm|(?:wrote|writing) (?:goodbye )?letters to|said goodbye to",
     "extra": r"no (?:reason|point) (?:to live|in living|anymore)"},
    {"name": "means_plan", "pattern": r"(?:have|has|got) a (?:gun|rope|plan)\b|thinking about using it|pills saved up"},
    {"name": "overdose",
     "pattern": r"overdos\w*|took (?:way )?too many|swallowed (?:a |the )?(?:whole )?bottle|(?:took|swallowed) \d+ (?:of )?(?:my |his |her )?\w*\s?(?:pills|tablets)|on purpose|(?:took|using) fentanyl",
     "extra": r"took (?:a |the )?(?:whole|entire) bottle|(?:took|swallowed|ate) (?:all|most|a handful) (?:of )?(?:my |his |her |the |their )?\w*\s?(?:pills|tablets|meds)|extra doses? of (?:his|her|my) fentanyl|adult dose|poison\w*"},
    {"name": "bleeding",
     "pattern": rf"ble+d\w* (?:\w+ )?(?:won'?t|wont|will not|doesn'?t|does not|not) stop|{CANT} stop (?:the |his |her )?ble+d\w*|ble+d\w* (?:really |very |so )?(?:heavily|badly|a lot|nonstop|everywhere|through)|heavy bleeding|soaked through|spurting|pulsing|(?:vomiting|throwing up|coughing up) blood",
     "extra": r"pouring blood"},
    {"name": "anaphylaxis",
     "pattern": r"anaphyla\w*|throat (?:is |feels )?(?:(?:like it'?s |like its )?clos\w*|swell\w*|tight)|(?:tongue|lips?|face) (?:and \w+ )?(?:is |are |r )?(?:swelling|swollen)|used (?:my|his|her) epi-?pen|(?:can'?t|cant|cannot) swallow|(?:wheez\w*|hives).{0,40}(?:swell\w*|hives|faint|dizzy)|(?:swell\w*|hives).{0,40}wheez\w*",
     "extra": r"(?:face|lips?) (?:is |are )?puffy"},
    {"name": "unresponsive",
     "pattern": r"unconsc\w*|unresponsive|passed out|fainted|(?:won'?t|wont|isn'?t|isnt) (?:wake|waking|respond\w*)|collapsed|(?:going|about) to faint|no pulse",
     "extra": r"(?:not|can'?t|cant) (?:wake|waking|respond\w*)|hard to wake|(?:can'?t|cant) stay awake"},
    {"name": "seizure",
     "pattern": r"(?:having|had|is having|in) (?:a )?s(?:ei|ie|e)z\w*|s(?:ei|ie|e)z\w* (?:that )?(?:won'?t|wont|will not) stop|seizing|convuls\w*"},
    {"name": "call_911", "pattern": r"\b911\b|call an ambulance|(?:go|going) to the (?:er|emergency room)\b"},
]

# A match is ignored when one of these words is among the 4 words before it in the same clause
# ("no chest pain", "denies chest pain", "not having trouble breathing"), or when the rest of its
# clause says it is over ("the chest pain ... is gone", "isn't about the chest pain anymore").
NEGATION = {
    "before_words": 4,
    "before": r"\b(?:no|not|denies|denied|deny|without|never|nor|negative for|isn'?t|wasn'?t|free of|none|resolved)\b",
    "after": r"\b(?:is gone|went away|has gone|resolved|turned out|anymore|any more|is fine|i'?m fine|better now|is better|has stopped|stopped)\b",
    "clause_split": r"[.;!?\n]|\bbut\b|\bhowever\b|\balso\b|\bthough\b",
    "normalise": "lower-case; collapse runs of one repeated letter in text and patterns (not after a backslash)",
}

_REPEAT_TEXT = re.compile(r"([a-z])\1+")
_REPEAT_PATTERN = re.compile(r"(?<!\\)([a-z])\1+")


def _rx(p: str) -> re.Pattern[str]:
    return re.compile(_REPEAT_PATTERN.sub(r"\1", p), re.I)


def normalise(text: str) -> str:
    return _REPEAT_TEXT.sub(r"\1", text.lower().replace("\u2019", "'"))


_CLEAN = [(f["name"], _rx(f["pattern"])) for f in RED_FLAGS if "pattern" in f]
_ALL = [(f["name"], _rx("|".join(p for p in (f.get("pattern"), f.get("extra")) if p))) for f in RED_FLAGS]
_BEFORE, _AFTER = _rx(NEGATION["before"]), _rx(NEGATION["after"])
_SPLIT = re.compile(NEGATION["clause_split"], re.I)


def _negated(text: str, start: int, end: int) -> bool:
    before = _SPLIT.split(text[:start])[-1]
    if _BEFORE.search(" ".join(before.split()[-NEGATION["before_words"]:])):
        return True
    return bool(_AFTER.search(_SPLIT.split(text[end:])[0]))


def red_flags(text: str, extra: bool = False) -> list[str]:
    """Names of the rules that fire (un-negated) on text."""
    t = normalise(text)
    hits = []
    for name, rx in (_ALL if extra else _CLEAN):
        if any(not _negated(t, m.start(), m.end()) for m in rx.finditer(t)):
            hits.append(name)
    return hits


if __name__ == "__main__":
    import json, sys, yaml
    from collections import Counter
    W = "out/research-routing"
    probes = ["no chest pain, no fever", "denies chest pain", "I'm not having trouble breathing",
              "no trouble breathing", "the chest pain turned out to be reflux and is gone",
              "This isn't about the chest pain anymore, I'm fine now", "chest pain really bad",
              "i don't want to be here anymore", "no fever but chest pain since an hour",
              "I can't breathe", "i have seizure meds to refill", "she is having a seizure",
              "without shortness of breath", "my dad died of a heart attack at 60"]
    for t in probes:
        print(f"{t!r:60} -> {red_flags(t, extra=True)}")
    with open(f"{W}/red_flags.yaml", "w") as f:
        yaml.safe_dump({"red_flags": RED_FLAGS, "negation": NEGATION}, f, sort_keys=False, width=100000)
    for extra in (False, True):
        print(f"\n=== {'pattern + extra' if extra else 'pattern only (clean)'}")
        for split in ("train", "dev", "test"):
            rows = [json.loads(l) for l in open(f"{W}/masked_{split}.jsonl")]
            em = [r for r in rows if r["label"] == "emergency"]
            non = [r for r in rows if r["label"] != "emergency"]
            hit_em = [bool(red_flags(r["text"], extra)) for r in em]
            hit_non = [r for r in non if red_flags(r["text"], extra)]
            print(f"{split}: emergencies flagged {sum(hit_em)}/{len(em)}; non-emergencies flagged "
                  f"{len(hit_non)}/{len(non)} ({len(hit_non)/len(rows):.1%} of all messages)")
            if "-v" in sys.argv:
                for r, h in zip(em, hit_em):
                    if not h: print("  MISS", r["family"], "|", r["text"][:150].replace("\n", " / "))
                for r in hit_non: print("  FP", r["label"], red_flags(r["text"], extra), "|", r["text"][:150].replace("\n", " / "))
