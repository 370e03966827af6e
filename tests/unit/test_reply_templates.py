"""Reply templates: the shipped pack, filling with any subset of slots, and what is refused."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from shoal.agents.reply_templates import (
    CRISIS,
    EMERGENCY,
    SLOTS,
    ReplyFillError,
    ReplyPack,
    builtin_reply_template_names,
    load_reply_templates,
    reply_templates_path,
    templates_for,
)
from shoal.errors import SpecError
from shoal.policies.privacy.vault import TOKEN
from tests.conftest import REPO

WriteYaml = Callable[..., Path]

VALUES = {"name": "Maria", "drug": "lisinopril", "dose": "10 mg", "when": "Tuesday at 3 pm"}
PERSONAL = "I am sorry the wait has been frustrating"
LEFTOVER = re.compile(r"[{}\[\]]")


def _healthcare_labels() -> list[str]:
    spec = yaml.safe_load((REPO / "examples" / "healthcare" / "cascade.yaml").read_text())
    labels = [node["labels"] for node in spec["nodes"].values() if "labels" in node]
    assert len(labels) == 1
    return list(labels[0])


@pytest.fixture(scope="module")
def pack() -> ReplyPack:
    return templates_for("clinic_replies")


def _subsets() -> list[dict[str, str | None]]:
    keys = sorted(VALUES)
    return [{k: (VALUES[k] if k in chosen else None) for k in keys}
            for r in range(len(keys) + 1) for chosen in itertools.combinations(keys, r)]


# --- the shipped pack ----------------------------------------------------------------------------


def test_shipped_pack_is_built_in_and_loads_from_its_file():
    assert "clinic_replies" in builtin_reply_template_names()
    path = reply_templates_path("clinic_replies", None)
    loaded = load_reply_templates(path)
    assert loaded.name == "clinic_replies" and loaded.templates == 1
    assert loaded.version and loaded.reviewed


def test_shipped_pack_covers_every_healthcare_label_and_emergency_and_crisis(pack: ReplyPack):
    labels = _healthcare_labels()
    assert "emergency" in labels and "symptom_report" in labels
    assert pack.missing([*labels, EMERGENCY, CRISIS]) == []
    assert pack.missing(["refund"]) == ["refund"]


@pytest.mark.parametrize("crisis", [False, True])
@pytest.mark.parametrize("personal", [None, PERSONAL])
def test_every_template_reads_whole_with_every_subset_of_slots(
        pack: ReplyPack, crisis: bool, personal: str | None):
    for label, slots in itertools.product(pack.labels, _subsets()):
        reply = pack.fill(label, slots, crisis=crisis, personal=personal)
        text = reply.text
        assert not LEFTOVER.search(text), (label, slots, text)
        assert not TOKEN.search(text)
        assert "  " not in text and " ." not in text and ".." not in text, text
        assert text.rstrip().endswith((".", "!", "?")), text
        given = {k for k, v in slots.items() if v is not None}
        assert set(reply.used_slots) <= given | {"personal"}
        for slot in reply.used_slots:
            if slot != "personal":
                assert VALUES[slot] in text
        key = CRISIS if crisis else label
        assert reply.template_id == f"clinic_replies/{key}" and reply.version == pack.version
        if pack.replies[key].greeting:
            assert text.startswith("Hello Maria," if "name" in given else "Hello,")
        else:  # the emergency reply: the instruction comes first
            assert text.startswith("This may be an emergency.")
        if key in (EMERGENCY, CRISIS):
            assert "911" in text
            assert "emergency department" in text
            assert not reply.personalised
        if key == CRISIS:
            assert "988" in text and "Suicide & Crisis Lifeline" in text
        if key in ("appointment", "billing", "prescription_refill", "symptom_report"):
            assert "one business day" in text
            assert "911" in text


def test_slots_fill_where_they_are_given(pack: ReplyPack):
    refill = pack.fill("prescription_refill", VALUES, personal=PERSONAL)
    assert "refill lisinopril 10 mg." in refill.text
    assert PERSONAL + "." in refill.text and refill.personalised
    assert refill.used_slots == ("dose", "drug", "name", "personal")
    assert "refill lisinopril." in pack.fill("prescription_refill", {"drug": "lisinopril"}).text
    # A dose without its drug says nothing about either.
    dose_only = pack.fill("prescription_refill", {"dose": "10 mg"})
    assert "10 mg" not in dose_only.text and dose_only.used_slots == ()
    assert "for Tuesday at 3 pm." in pack.fill("appointment", {"when": "Tuesday at 3 pm"}).text


def test_personal_sentence_only_where_the_template_allows_it(pack: ReplyPack):
    assert not pack.replies[EMERGENCY].personalise and not pack.replies[CRISIS].personalise
    emergency = pack.fill(EMERGENCY, {}, personal=PERSONAL)
    assert PERSONAL not in emergency.text and not emergency.personalised
    crisis = pack.fill("symptom_report", {}, crisis=True, personal=PERSONAL)
    assert PERSONAL not in crisis.text


def test_values_are_made_one_line_and_put_in_as_they_are(pack: ReplyPack):
    reply = pack.fill("appointment", {"name": "  Ana\n  María ", "when": "May 2 at 9:30 %s"})
    assert reply.text.startswith("Hello Ana María,\n\n")
    assert "for May 2 at 9:30 %s." in reply.text


# --- what fill refuses ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["[NAME_1]", "Maria [NAME_2]", "[NAME:1a2b3c4d]", "[DATE]",
                                   "[name_1]", "[ DATE_1 ]", "{name}", "{when", "NAME_1]"])
@pytest.mark.parametrize("slot", sorted(SLOTS - {"personal"}))
def test_a_pseudonym_looking_value_is_refused(pack: ReplyPack, slot: str, value: str):
    with pytest.raises(ReplyFillError, match="pseudonym or placeholder"):
        pack.fill("prescription_refill", {slot: value})


def test_a_pseudonym_in_the_model_sentence_is_refused(pack: ReplyPack):
    with pytest.raises(ReplyFillError, match="pseudonym or placeholder"):
        pack.fill("billing", {}, personal="We will contact [NAME_1] at [ADDRESS_1].")


def test_unknown_label_lists_the_known_ones(pack: ReplyPack):
    with pytest.raises(ReplyFillError, match=r"no reply template for class 'refund'") as err:
        pack.fill("refund", {})
    for label in pack.labels:
        assert label in str(err.value)


def test_unknown_slot_keys_and_too_long_values_are_refused(pack: ReplyPack):
    with pytest.raises(ReplyFillError, match="unknown slot 'patient'"):
        pack.fill("billing", {"patient": "Maria"})
    with pytest.raises(ReplyFillError, match="personal="):
        pack.fill("billing", {"personal": "Hi."})
    with pytest.raises(ReplyFillError, match="over 60 characters"):
        pack.fill("billing", {"name": "M" * 61})


def test_blank_values_count_as_missing(pack: ReplyPack):
    reply = pack.fill("prescription_refill", {"name": "  ", "drug": "", "dose": None})
    assert reply.text.startswith("Hello,\n") and reply.used_slots == ()


# --- bad packs -----------------------------------------------------------------------------------


GOOD = """\
templates: 1
name: tiny
version: "0.1"
reviewed: not yet
greeting: {text: "Hello {name},", requires: [name], fallback: [{text: "Hello,"}]}
replies:
  billing:
    sentences:
      - text: "Thanks about {when}."
        requires: [when]
        fallback:
          - text: "Thanks."
  emergency:
    sentences:
      - text: "Call 911 now."
  crisis:
    sentences:
      - text: "Call or text 988; call 911 in immediate danger."
"""


def test_a_small_good_pack_loads_and_fills(write_yaml: WriteYaml):
    pack = load_reply_templates(write_yaml(GOOD, "tiny.yaml"))
    assert pack.fill("billing", {"when": "May 2"}).text == "Hello,\n\nThanks about May 2."
    assert pack.fill("billing", {}).text == "Hello,\n\nThanks."


def _error(write_yaml: WriteYaml, text: str) -> tuple[str, str]:
    path = write_yaml(text, "bad.yaml")
    with pytest.raises(SpecError) as err:
        load_reply_templates(path)
    return str(path), str(err.value)


def test_an_unknown_slot_fails_at_load_with_file_line_col(write_yaml: WriteYaml):
    path, message = _error(write_yaml, GOOD.replace(
        '- text: "Thanks about {when}."\n        requires: [when]',
        '- text: "Thanks about {appointment}."\n        requires: [appointment]'))
    assert f"{path}:9:9:" in message
    assert "unknown slot {appointment}" in message and "allowed: dose, drug, name" in message


@pytest.mark.parametrize(("old", "new", "line", "says"), [
    ('    sentences:\n      - text: "Thanks about', '    personalise: maybe\n    sentences:\n'
     '      - text: "Thanks about', 8, "valid boolean"),
    ("        requires: [when]\n", "", 9, "requires does not list it"),
    ('          - text: "Thanks."\n', '          - text: "Thanks {name}."\n'
     "            requires: [name]\n", 9, "add a fallback without slots"),
    ("  emergency:", "  billing:\n    sentences: [{text: Hi.}]\n  emergency:", 13,
     "duplicate key 'billing'"),
    ('      - text: "Call 911 now."', '      - text: "Call 911 now, [NAME_1]."', 15,
     "square brackets"),
    ('      - text: "Call 911 now."', '      - text: "Call 911 now }."', 15, "lone"),
    ('    sentences:\n      - text: "Thanks about', '    sentences:\n      - {text: "{personal}",'
     ' requires: [personal], optional: true}\n      - text: "Thanks about', 8,
     "only allowed with personalise: true"),
    ("reviewed: not yet\n", "", 1, "missing required key 'reviewed'"),
    ("replies:\n", "replies:\n  bad key:\n    sentences: [{text: Hi.}]\n", 8,
     "should match pattern"),
])
def test_a_bad_pack_is_refused_with_file_line_col(
        write_yaml: WriteYaml, old: str, new: str, line: int, says: str):
    assert old in GOOD
    path, message = _error(write_yaml, GOOD.replace(old, new, 1))
    assert f"{path}:{line}:" in message, message
    assert says in message, message


def test_a_pack_without_the_crisis_reply_is_refused(write_yaml: WriteYaml):
    cut = GOOD.index("  crisis:")
    path, message = _error(write_yaml, GOOD[:cut])
    assert f"{path}:7:3:" in message and "replies needs 'crisis'" in message


def test_invalid_yaml_and_a_red_flag_pack_are_placed(write_yaml: WriteYaml):
    path, message = _error(write_yaml, GOOD.replace("name: tiny", "name: [tiny"))
    assert f"{path}:" in message and "invalid YAML" in message
    path, message = _error(write_yaml, "red_flags: 1\nname: x\nflags: []\n")
    assert "not a reply-templates pack" in message


# --- where packs are found -----------------------------------------------------------------------


def test_a_path_is_relative_to_the_file_that_names_it(tmp_path: Path, write_yaml: WriteYaml):
    write_yaml(GOOD, "tiny.yaml")
    assert reply_templates_path("tiny.yaml", tmp_path) == tmp_path / "tiny.yaml"
    pack = templates_for("tiny.yaml", tmp_path)
    assert pack.name == "tiny" and templates_for("tiny.yaml", tmp_path) is pack


def test_an_unknown_builtin_name_lists_the_built_in_packs():
    with pytest.raises(SpecError,
                       match=r"no built-in reply-template pack 'clinic'.*clinic_replies"):
        reply_templates_path("clinic", None)
