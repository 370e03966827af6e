"""The masker's known gaps (issue 16), each closed by a rule that generalises, each with a test.

Gaps: nicknames and aliases, emails at any domain (reserved ones, plus and sub-addressing), names
of other languages and scripts (diacritics, particles, patronymics), lone first names in
greetings, sign-offs and dialogue, addresses with foreign street names and towns, short postal
codes.

Every value here is a canary written for these tests (made up, and none of them comes from the
masking benchmark's generator), so "absent from the masked text" is a substring check. The
adversarial fixture notes (tests/data/clinical_notes_adversarial.json) are shared with the
masking benchmark (benchmarks/masking.py), which scores them as its ``clinical_adversarial`` set.

The first part needs no model (the name and address rules and the pack's patterns are plain
text rules); the second runs the real detector.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import regex

import shoal
from shoal.policies import privacy
from shoal.policies.privacy.addresses import AddressRules
from shoal.policies.privacy.lexicon import countries, given_names, surnames
from shoal.policies.privacy.names import NameRules
from shoal.policies.privacy.packs import load_pack

# [{"id", "text", "canaries": [[kind id, canary], ...], "keep": [words that must stay]}]
NOTES: list[dict[str, Any]] = json.loads(
    (Path(__file__).resolve().parent.parent / "data" / "clinical_notes_adversarial.json"
     ).read_text(encoding="utf-8"))

PACK = load_pack("hipaa_safe_harbor")
LABELS = frozenset(w.lower().strip(".:") for w in PACK.ner.label_words)
ORGS = frozenset(w.lower() for w in PACK.ner.organization_words)


def _pattern(recognizer: str, name: str) -> Any:
    """One of the pack's regular expressions, compiled as presidio compiles it."""
    for kind in PACK.kinds:
        for spec in kind.recognizers:
            if spec.name == recognizer:
                for p in spec.patterns:
                    if p.name == name:
                        return regex.compile(p.regex, regex.DOTALL | regex.MULTILINE)
    raise KeyError(name)


def _found(hits: list[Any], text: str) -> list[str]:
    return [text[h.start:h.end] for h in hits]


# --- no model needed ----------------------------------------------------------------------------


def test_fixture_canaries_occur_in_their_notes():
    assert len(NOTES) >= 8
    for note in NOTES:
        for _, canary in note["canaries"]:
            assert canary in note["text"], canary
        for kept in note["keep"]:
            assert kept in note["text"], kept


def test_lexicons_hold_names_of_many_languages_and_tag_english_words():
    given, family = given_names(), surnames()
    for name in ("Zsófia", "Wojciech", "Hrvoje", "Guðrún", "Maarten", "Piotr"):
        assert name in given.names, name
    for name in ("Kowalczyk", "Horváth", "Kovačević", "Bakker", "Einarsson"):
        assert name in family.names, name
    # A name that is also an ordinary word is kept apart: it needs more than its spelling.
    assert "Grace" in given.words and "Grace" not in given.names
    assert "iceland" in countries() and "deutschland" in countries()


NAME_RULES: list[tuple[str, list[str]]] = [
    # A given name of the gazetteer and the capitalised word after it.
    ("The form was signed by Radka Vondrušková yesterday.", ["Radka Vondrušková"]),
    # A surname of the gazetteer and the word before it; a patronymic by shape alone.
    ("Witness: Tomislav Kovačević. Next of kin Halla Sigurðardóttir.",
     ["Tomislav Kovačević", "Halla Sigurðardóttir"]),
    # Particles inside a name.
    ("Her neighbour Femke van der Heijden and Ahmad bin Khalid waited outside.",
     ["Femke van der Heijden", "Ahmad bin Khalid"]),
    # A lone given name inside a sentence, also with a possessive.
    ("Yesterday Wojciech's sister drove him; she said Eszter would come too.",
     ["Wojciech", "Eszter"]),
    # A speaker right before quoted speech.
    ('Then Quarmby: "Where is the key?"', ["Quarmby"]),
    # Initials and particles inside, the Dutch IJ capital.
    ("Signed by Marijke J van der IJsseldijk on the ward.", ["Marijke J van der IJsseldijk"]),
]


@pytest.mark.parametrize(("text", "values"), NAME_RULES,
                         ids=[f"names-{i}" for i in range(len(NAME_RULES))])
def test_name_rules_without_a_model(text: str, values: list[str]):
    rules = NameRules(LABELS, ORGS, frozenset())
    found = _found(rules.find(text, None), text)
    for value in values:
        assert value in found, (value, found)


def test_name_rules_leave_eponyms_months_and_ordinary_words_alone():
    rules = NameRules(LABELS, ORGS, frozenset())
    text = ("Addison's disease was excluded. Grace period ends in May. Bell palsy resolved. "
            "The Victoria Hospital team called.")
    assert _found(rules.find(text, None), text) == []


def test_words_in_another_script_are_names_or_places():
    rules = NameRules(LABELS, ORGS, frozenset())
    text = "Seen with Наталья Орлова, who lives in ΚΑΛΑΜΑΤΑ. Dose 5 μg/kg, β-blocker held."
    hits = {text[h.start:h.end]: h.entity for h in rules.find(text, None)}
    assert hits.get("Наталья Орлова") == "PERSON"
    assert hits.get("ΚΑΛΑΜΑΤΑ") == "LOCATION"
    assert not any("μ" in v or "β" in v for v in hits)


ADDRESSES: list[tuple[str, list[str]]] = [
    # Numbers around street words, lower-case words inside.
    ("Post goes to 418 Calle de los Almendros 22 now.", ["418 Calle de los Almendros 22"]),
    ("Stay at 6021 Trg bana Jelačića 7 until Friday.", ["6021 Trg bana Jelačića 7"]),
    # Type first, type last, a type glued on.
    ("Her flat is on ul. Wiosenna 14/2, 31-401 Kraków.", ["ul. Wiosenna 14/2", "31-401",
                                                           "Kraków"]),
    ("Office: Rákóczi Ferenc utca 31., 7621 Pécs.", ["Rákóczi Ferenc utca 31.", "7621", "Pécs"]),
    ("He rents Lindengracht 112, 1015 KH Amsterdam.", ["Lindengracht 112", "1015 KH",
                                                       "Amsterdam"]),
    ("She moved to Pärnu maantee 58 last year.", ["Pärnu maantee 58"]),
    # An address cue and lower-case street words.
    ("He lives on Dlouhá třída 9 with his son.", ["Dlouhá třída 9"]),
    # The town after a street and a comma, in capitals; the lines of an address block.
    ("Deliver to 77 Quenby Road, LITTLE SNORING", ["77 Quenby Road", "LITTLE SNORING"]),
    ("9 Orchard Lane\nKirkwhelpington\n, NB\n 40417", ["9 Orchard Lane", "Kirkwhelpington",
                                                       "40417"]),
    # A town alone on its line above a country line.
    ("Ylva Marklund\nSkellefteå\nSweden", ["Skellefteå"]),
    # A town after a unit on the same line; a region code on its own line.
    ("Ship to 5 Kastanienallee 12 Apt. 3 Bad Sooden, please.", ["Kastanienallee 12", "Apt. 3",
                                                                "Bad Sooden"]),
    ("48 Birchwood Close\nThornaby\n, TS\n 17702", ["Thornaby", "TS", "17702"]),
    # Short postcodes before a town.
    ("Summer address: Hafnarstræti 4, 600 Akureyri.", ["600", "Akureyri"]),
    ("Registered in Qaqortoq 3920 since birth.", ["Qaqortoq", "3920"]),
]


@pytest.mark.parametrize(("text", "values"), ADDRESSES,
                         ids=[f"address-{i}" for i in range(len(ADDRESSES))])
def test_address_rules_without_a_model(text: str, values: list[str]):
    hits = AddressRules(LABELS | ORGS).find(text)
    covered = [False] * len(text)
    for h in hits:
        for i in range(h.start, h.end):
            covered[i] = True
    for value in values:
        start = text.index(value)
        assert all(covered[start:start + len(value)]), (value, _found(hits, text))


@pytest.mark.parametrize(("text", "value"), [
    ("Right now I'm in KIRKENES, at the hotel.", "KIRKENES"),
    ("She grew up in Nova Vas pri Ptuju.", "Nova Vas pri Ptuju"),
    ("Her son is staying at Hvidbjerg this week.", "Hvidbjerg"),
])
def test_place_cue_patterns(text: str, value: str):
    found = [_pattern("address_city", name).search(text)
             for name in ("whereabouts", "after_movement")]
    assert value in [m.group(0) for m in found if m is not None]


def test_address_rules_leave_doses_times_and_years_alone():
    text = ("Take 2 Tylenol every 4 hours. Started metformin 1000 mg in 2019. Stage 2 disease. "
            "In Room 305 since Monday 12. BP 128/82, HR 76.\nRecheck in 3 days.")
    assert _found(AddressRules(LABELS | ORGS).find(text), text) == []


@pytest.mark.parametrize("email", [
    "quillon.ashby@example.org", "nd+labs@example.com", "a.b+c.d@sub.mail.example.net",
    "ward7@clinic.test", "x_y-z@host.invalid", "renée.dubois@exemple.fr",
    "jo=tag@relay.example.co.uk"])
def test_email_pattern_takes_any_domain_and_the_whole_local_part(email: str):
    pattern = _pattern("any_email", "dotted_domain")
    text = f"Reply to <{email}>, please."
    m = pattern.search(text)
    assert m is not None and m.group(0) == email


def test_email_pattern_needs_an_at_sign_and_a_domain():
    pattern = _pattern("any_email", "dotted_domain")
    assert pattern.search("see notes@ the chart, v2.1 and a@b") is None


@pytest.mark.parametrize(("text", "value"), [
    ('She prefers to be called "Pip" by staff.', "Pip"),
    ("Her son goes by 'the Colonel' at home.", "the Colonel"),
    ("He is aka “Ironside” on the ward.", "Ironside"),
])
def test_quoted_nickname_pattern(text: str, value: str):
    m = _pattern("titled_name", "nickname_quoted").search(text)
    assert m is not None and m.group(0) == value


def test_nickname_pattern_skips_what_is_no_name():
    pattern = _pattern("titled_name", "nickname")
    for text in ("She called the clinic twice.", "He called Monday about it.",
                 "Also known as Type 2 diabetes.", "a so-called safe dose"):
        assert pattern.search(text) is None, text
    m = pattern.search("Everyone calls him Bartholomew, and he goes by Barty Quince.")
    assert m is not None and m.group(0) == "Barty Quince"


# --- real spaCy model ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def det() -> privacy.Detector:
    return privacy.detector()


@pytest.mark.slow
@pytest.mark.parametrize("note", NOTES, ids=[n["id"] for n in NOTES])
def test_no_canary_of_the_adversarial_notes_survives(det: privacy.Detector,
                                                     note: dict[str, Any]):
    masked = det.mask(note["text"]).masked
    assert [(k, c) for k, c in note["canaries"] if c in masked] == []
    for kept in note["keep"]:
        assert kept in masked, kept


GAPS: dict[str, list[tuple[str, list[str]]]] = {
    "nicknames": [
        ('Pt Hortensia Fairweather, who prefers to be called "Tansy", is stable.', ["Tansy"]),
        ("Her grandson goes by Wolfie and visits daily.", ["Wolfie"]),
        ("Also present: his brother, aka 'Moose', and a cousin known as Dodger.",
         ["Moose", "Dodger"]),
    ],
    "emails": [
        ("Results sent to hortensia.fw+results@example.org and to lab@pathology.test.",
         ["hortensia.fw+results@example.org", "lab@pathology.test"]),
        ("Caregiver: wolfie_f+care-team@mx.example.invalid",
         ["wolfie_f+care-team@mx.example.invalid"]),
    ],
    "other_languages": [
        ("Seen with her husband Bolesław Wróblewski and Ingibjörg Halldórsdóttir.",
         ["Bolesław Wróblewski", "Ingibjörg Halldórsdóttir"]),
        ("Referral from Dr. Dagmar van Oosterhout-Spijker and Gergő Fazekas.",
         ["Dagmar van Oosterhout-Spijker", "Gergő Fazekas"]),
        ("Translator: Светлана Миронова.", ["Светлана Миронова"]),
    ],
    "lone_first_names": [
        ("Hi Solveig,\nthe rash is worse today.\nThanks,\nBirgitta", ["Solveig", "Birgitta"]),
        ('Nurse: "Can you hear me, Jorunn?"\nJorunn: "Yes."', ["Jorunn"]),
        ("Yesterday Dorota brought the pills and Kamil stayed overnight.", ["Dorota", "Kamil"]),
    ],
    "addresses": [
        ("Home: Carrer de la Riera 73, 08911 Badalona.", ["Carrer de la Riera 73", "08911",
                                                          "Badalona"]),
        ("She lives at 4 Kossuth Lajos tér 2., 9400 Sopron.", ["Kossuth Lajos tér 2.", "9400",
                                                                "Sopron"]),
        ("Send to 12 Strada delle Vigne 8\n Apt. 3\n Montefalco\n Italy",
         ["Strada delle Vigne 8", "Apt. 3", "Montefalco"]),
    ],
    "postcodes": [
        ("ZIP: 7020", ["7020"]),
        ("Her postal code is 392 41.", ["392 41"]),
        ("Mail: Brovej 3, 4300 Holbæk.", ["4300"]),
    ],
}


@pytest.mark.slow
@pytest.mark.parametrize(("gap", "text", "values"),
                         [(gap, t, v) for gap, cases in GAPS.items() for t, v in cases],
                         ids=[f"{gap}-{i}" for gap, cases in GAPS.items()
                              for i in range(len(cases))])
def test_each_gap_is_closed(det: privacy.Detector, gap: str, text: str, values: list[str]):
    masked = det.mask(text).masked
    assert [v for v in values if v in masked] == [], gap


BRANDS = ("Advil", "Xanax", "Zoloft", "Eliquis", "Benadryl", "Nexium", "Pepcid", "Ozempic",
          "Mounjaro", "Synthroid")


@pytest.mark.slow
@pytest.mark.parametrize("template", [
    "Can I take {} with my other pills?",
    "{} is not working for me anymore.",
    "Is it ok to take {} twice a day?",
])
def test_brand_drug_names_are_not_masked_as_people_or_places(det: privacy.Detector,
                                                              template: str):
    # spaCy reads a capitalised brand as PERSON or LOCATION; masked, the validator and the reply
    # lose the drug and no one's privacy gains.
    kept = [b for b in BRANDS if b in det.mask(template.format(b)).masked]
    assert kept == list(BRANDS)


@pytest.mark.slow
def test_a_name_that_is_also_a_drug_stays_masked_and_so_do_people_beside_a_drug(
        det: privacy.Detector):
    masked = det.mask("Allegra Wójcik asked whether Xanax is safe with Zoloft. Dorota Kamińska "
                      "agreed.").masked
    assert "Allegra" not in masked  # a given name first: privacy wins the tie
    assert "Wójcik" not in masked and "Dorota" not in masked and "Kamińska" not in masked
    assert "Xanax" in masked and "Zoloft" in masked


def test_drug_name_lookup():
    from shoal.policies.privacy.lexicon import is_drug_name

    assert is_drug_name("Advil") and is_drug_name("xanax") and is_drug_name("Pepcid AC") is False
    assert not is_drug_name("Allegra")  # also a given name
    assert not is_drug_name("Cipro")  # also a country's name (Italian for Cyprus)
    assert not is_drug_name("Maria")
    assert not is_drug_name("")


@pytest.mark.slow
def test_clinical_words_next_to_the_new_rules_stay(det: privacy.Detector):
    text = ("Addison's disease ruled out; Bell palsy improving. Started metformin 1000 mg and "
            "vitamin D 2000 units. Take 2 tablets every 4 hours. Grace period for refills ends "
            "soon. Stage 2 disease, Factor V Leiden negative.")
    masked = det.mask(text).masked
    for kept in ("Addison's disease", "Bell palsy", "metformin 1000 mg", "2000 units",
                 "2 tablets every 4 hours", "Grace period", "Factor V Leiden"):
        assert kept in masked, kept


@pytest.mark.slow
def test_adversarial_note_through_a_graph_leaks_nothing(log_stream: io.StringIO):
    note = NOTES[0]
    spec = shoal.GraphSpec(name="mask-only",
                           nodes={"mask": shoal.NodeSpec(agent="privacy_masker")})
    result = shoal.Graph(spec).run(note["text"], id="rec-gaps")
    assert result.status == "ok", result.error
    output = result.output
    assert isinstance(output, dict)
    trace = json.dumps([n.model_dump() for n in result.nodes])
    logs = log_stream.getvalue()
    for _, canary in note["canaries"]:
        assert canary not in output["masked"]
        assert canary not in trace
        assert canary not in logs
