"""The reply checker (shoal.policies.replies): each check on replies the embedded responder really
wrote (tests/data/responder_replies.jsonl, captured from `make demo`, masked) and on hand-written
cases; reasons never quote the reply; the claims pack's mistakes name FILE:LINE:COL."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from shoal.errors import SpecError
from shoal.policies.replies import (
    CHECKS,
    CODES,
    ClaimsPack,
    ReplyContext,
    ReplyFailure,
    ReplyLimits,
    builtin_claims_names,
    check_reply,
    claims_matcher,
    claims_path,
    find_placeholders,
    load_claims,
)
from tests.conftest import REPO

DATA = REPO / "tests" / "data" / "responder_replies.jsonl"
ROWS: list[dict[str, Any]] = [json.loads(line) for line in DATA.read_text().splitlines()]
BY_ID = {row["id"]: row for row in ROWS}

# The healthcare cascade's fixed emergency reply (examples/healthcare/cascade.yaml, node urgent).
URGENT = ("This may be an emergency. Call 911 or go to the nearest emergency department now. Do "
          "not wait for a reply to this message. Our on-call clinician has been notified.")
FINE = ("Thank you for your message. The clinic has received your request and a member of the "
        "care team will reply within one business day.")


def verdict_for(row: dict[str, Any]) -> tuple[str, ...]:
    return check_reply(row["reply"], label=row["label"], vault_pseudonyms=row["vault"],
                       needs_emergency=row["needs_emergency"],
                       needs_crisis=row["needs_crisis"]).codes


# ------------------------------------------------------------------------- captured replies


@pytest.mark.parametrize("row", ROWS, ids=[r["id"] for r in ROWS])
def test_captured_reply_fails_exactly_the_expected_checks(row: dict[str, Any]) -> None:
    assert sorted(verdict_for(row)) == sorted(row["expected"])


def test_captured_data_has_a_positive_and_a_negative_for_each_code() -> None:
    for code in ("placeholder_left", "made_up_pseudonym", "scaffolding", "cut_off",
                 "repetition", "forbidden_claim", "pointer_missing"):
        hits = [r["id"] for r in ROWS if code in r["expected"]]
        misses = [r["id"] for r in ROWS if code not in r["expected"]]
        assert hits and misses, code
    assert sum(not r["expected"] for r in ROWS) >= 5  # replies fit to send, by these checks
    assert 20 <= len(ROWS) <= 40


def test_captured_data_holds_pseudonyms_not_raw_identifiers() -> None:
    raw = re.compile(r"[\w.+-]+@[\w-]+\.\w+|\b\d{3}[-. ]\d{3}[-. ]\d{4}\b|\b\d{3}-\d{2}-\d{4}\b")
    for row in ROWS:
        assert not raw.search(row["reply"]), row["id"]
        assert all(re.fullmatch(r"\[[A-Z_]+_\d+\]", p) for p in row["vault"]), row["id"]


def test_a_pseudonym_outside_the_vault_is_made_up_not_left() -> None:
    row = BY_ID["hc-01505"]  # "... reschedule the appointment for [DATE_1] ..."
    assert check_reply(row["reply"], vault_pseudonyms=["[DATE_1]"]).codes == ("placeholder_left",)
    assert check_reply(row["reply"], vault_pseudonyms=["[DATE_2]"]).codes == (
        "made_up_pseudonym",)
    failure = check_reply(row["reply"]).failures[0]
    assert failure.kinds == ("DATE",) and "1 placeholder" in failure.reason


def test_pseudonyms_the_model_made_up_beside_real_ones() -> None:
    row = BY_ID["hc-01332"]  # [NAME_1] and [DATE_1] from the message, [ADDRESS_1] invented
    verdict = check_reply(row["reply"], vault_pseudonyms=row["vault"])
    failures = {f.code: f for f in verdict.failures}
    assert failures["placeholder_left"].kinds == ("DATE", "NAME")
    assert failures["made_up_pseudonym"].kinds == ("ADDRESS",)


# ------------------------------------------------------------------------------ placeholders


@pytest.mark.parametrize(("text", "kind"), [
    ("Hello [NAME], your visit is confirmed for next week.", "NAME"),
    ("Hello [Name_1], your visit is confirmed for next week.", "NAME"),
    ("Hello {NAME_1}, your visit is confirmed for next week.", "NAME"),
    ("Hello <NAME_1>, your visit is confirmed for next week.", "NAME"),
    ("Hello {{name}}, your visit is confirmed for next week.", "NAME"),
    ("Hello, your visit is confirmed for [Date] at the clinic.", "DATE"),
    ("Please bring your [DOCUMENT_1] to the front desk next week.", "DOCUMENT"),
    ("Hello [Your Name], your visit is confirmed for next week.", "YOUR_NAME"),
    ("We will call you at [TIME_LIMIT]pm on the day of your visit.", "other"),
])
def test_near_misses_and_invented_shapes_are_made_up(text: str, kind: str) -> None:
    verdict = check_reply(text, vault_pseudonyms=["[NAME_1]", "[DATE_1]"])
    assert verdict.codes == ("made_up_pseudonym",)
    assert verdict.failures[0].kinds == (kind,)


def test_hash_tokens_count_as_pseudonyms() -> None:
    reply = "Thank you [NAME:1a2b3c4d], the clinic will call you back tomorrow."
    assert check_reply(reply, vault_pseudonyms=["[NAME:1a2b3c4d]"]).codes == ("placeholder_left",)
    assert [s for _, _, s in find_placeholders(reply)] == [True]


def test_text_without_placeholders_passes() -> None:
    assert check_reply(FINE).ok
    assert find_placeholders("Your visit (on the 9th) is at 3 pm; see you then.") == []


# ------------------------------------------------------------------------------- scaffolding


@pytest.mark.parametrize(("text", "kind"), [
    ("Category: billing\nThe clinic will review your bill and call you.", "category_header"),
    ("assistant: The clinic will review your bill and call you this week.", "role_tag"),
    ("<|im_start|>The clinic will review your bill and call you this week.", "role_tag"),
    ("As an AI, I cannot see your bill, but the clinic will call you.", "as_an_ai"),
    ('{"label": "billing"} The clinic will review your bill and call you this week.', "json"),
    ("The clinic will respond with: a call about your bill this week.", "clinic_will_header"),
    ("Reply to the patient: the clinic will review your bill this week.", "system_prompt"),
    ("You are a clinic's assistant. The clinic will review your bill soon.", "system_prompt"),
])
def test_scaffolding_patterns(text: str, kind: str) -> None:
    verdict = check_reply(text)
    assert verdict.codes == ("scaffolding",)
    assert kind in verdict.failures[0].kinds


def test_a_plain_reply_is_not_scaffolding() -> None:
    assert "scaffolding" not in check_reply(FINE).codes
    assert "scaffolding" not in check_reply(URGENT, needs_emergency=True).codes


# ---------------------------------------------------------------------------------- length


def test_too_short_and_too_long() -> None:
    assert check_reply("Thanks, noted.").codes == ("too_short",)
    long = " ".join(f"Item {i} is noted." for i in range(80))
    assert len(long) > 600
    assert check_reply(long).codes == ("too_long",)
    assert check_reply(long, limits=ReplyLimits(max_chars=5000)).ok
    # A real reply that fits the default bound, measured against a tighter one.
    reply = BY_ID["hc-01388"]["reply"]
    assert check_reply(reply).ok
    assert check_reply(reply, limits=ReplyLimits(max_chars=100)).codes == ("too_long",)
    assert check_reply(reply, limits=ReplyLimits(min_words=40)).codes == ("too_short",)


def test_cut_off_reply() -> None:
    row = BY_ID["hc-01305"]  # stopped at max_tokens mid-sentence
    assert "cut_off" in check_reply(row["reply"]).codes
    relaxed = ReplyLimits(require_final_punctuation=False)
    assert "cut_off" not in check_reply(row["reply"], limits=relaxed).codes
    assert "cut_off" not in check_reply(FINE).codes


# ------------------------------------------------------------------------------- repetition


def test_repetition_loops() -> None:
    assert check_reply("Please call us today. Please call us today. We are open.").codes == (
        "repetition",)
    looped = "We will call you soon and we will call you soon and we will call you soon and thanks."
    assert check_reply(looped).codes == ("repetition",)
    # Twice the same phrase in different sentences is not a loop.
    assert "repetition" not in check_reply(BY_ID["hc-01905"]["reply"]).codes
    assert "repetition" in check_reply(BY_ID["hc-01305"]["reply"]).codes


# --------------------------------------------------------------------------- forbidden claims


@pytest.mark.parametrize(("text", "fired"), [
    ("Stop taking your lisinopril until we call you.", ["dose_change"]),
    ("Please double your dose of metformin tonight.", ["dose_change"]),
    ("You likely have a sinus infection, rest and drink water.", ["diagnosis"]),
    ("This is probably a migraine and it will pass.", ["diagnosis"]),
    ("Your order has shipped and will arrive tomorrow.", ["order_or_purchase", "shipping"]),
    ("We guarantee you will feel better by Friday.", ["guarantee"]),
    ("Your visit costs $120 and we will refund the rest.", ["price", "refund_or_billing_promise"]),
    ("Use code SAVE10 for 10% off your next visit.", ["discount"]),
    # Negated: what a clinic may say.
    ("We cannot offer a discount, but billing will call you.", []),
    ("Please do not stop taking your medication before you talk to your doctor.", []),
    ("We can't promise a refund; the billing team will review it.", []),
    (FINE, []),
])
def test_forbidden_claims_with_negation(text: str, fired: list[str]) -> None:
    assert claims_matcher().fired(text) == fired
    assert ("forbidden_claim" in check_reply(text).codes) == bool(fired)


def test_claims_reason_names_the_claims() -> None:
    failure = check_reply(BY_ID["hc-01853"]["reply"]).failures[0]
    assert failure.kinds == ("order_or_purchase", "shipping")
    assert failure.reason == "2 forbidden claim(s): order_or_purchase, shipping"


def test_a_pack_of_ones_own() -> None:
    pack = ClaimsPack.model_validate({"forbidden_claims": 1, "name": "mine",
                                      "claims": [{"name": "weekend", "pattern": r"\bsaturday\b"}]})
    assert check_reply("The clinic will call you on Saturday morning.", claims=pack).codes == (
        "forbidden_claim",)
    assert check_reply(BY_ID["hc-01313"]["reply"], claims=pack).ok  # no discount rule in it


# ----------------------------------------------------------------------------------- pointers


def test_emergency_pointer() -> None:
    row = BY_ID["hc-01633"]  # gold emergency (chest pain), triaged billing: a routine reply
    assert check_reply(row["reply"], needs_emergency=True).codes == ("pointer_missing",)
    assert check_reply(row["reply"], needs_emergency=False).ok
    assert check_reply(row["reply"], label="emergency").codes == ("pointer_missing",)
    assert check_reply(URGENT, needs_emergency=True).ok
    er = "Please go to the nearest emergency room now; the clinic has been told."
    assert check_reply(er, needs_emergency=True).ok


def test_crisis_pointer_needs_988_and_911() -> None:
    reply = BY_ID["hc-01633"]["reply"]
    failure = check_reply(reply, needs_crisis=True).failures[0]
    assert failure.code == "pointer_missing" and failure.kinds == ("988", "911")
    assert check_reply(URGENT, needs_crisis=True).failures[0].kinds == ("988",)
    crisis = ("You are not alone. Call or text 988 now, or call 911 if you are in danger. Our "
              "on-call clinician has been told.")
    assert check_reply(crisis, needs_crisis=True, needs_emergency=True).ok


# ----------------------------------------------------------------------- privacy of reasons


def test_reasons_never_quote_the_reply() -> None:
    canary = "Zorblatt7319"
    long = (f"The message was classified as: {canary}. Patient message: {canary} "
            f"[{canary.upper()}_1] [{canary}] [NAME_1] you likely have a {canary} infection and "
            f"a discount of ${canary}. {canary} {canary} {canary} {canary} {canary} {canary} "
            f"{canary} {canary} {canary} {canary} {canary} {canary}")
    short = f"{canary}"
    verdicts = [
        check_reply(long, label=canary, vault_pseudonyms=["[NAME_1]"], needs_crisis=True),
        check_reply(long, label=canary, limits=ReplyLimits(max_chars=50)),
        check_reply(short, label=canary, needs_emergency=True),
    ]
    codes = {c for v in verdicts for c in v.codes}
    assert codes == set(CODES)  # every check failed at least once on canary text
    for verdict in verdicts:
        for failure in verdict.failures:
            for text in (failure.reason, *failure.kinds):
                assert canary.lower() not in text.lower(), failure
        assert canary.lower() not in repr(verdict).lower()


# ------------------------------------------------------------------------------- pack files


def test_a_bad_claims_pack_is_a_file_line_col_error(tmp_path: Path) -> None:
    bad = tmp_path / "claims.yaml"
    bad.write_text("forbidden_claims: 1\nname: mine\nclaims:\n  - {name: a, pattern: 'off (er'}\n")
    with pytest.raises(SpecError) as err:
        load_claims(bad)
    assert f"{bad}:4:" in str(err.value) and "regular expression" in str(err.value)
    twice = tmp_path / "twice.yaml"
    twice.write_text("forbidden_claims: 1\nname: mine\nclaims:\n  - {name: a, pattern: x}\n"
                     "  - {name: a, pattern: y}\n")
    with pytest.raises(SpecError, match="defined twice"):
        load_claims(twice)
    flags = tmp_path / "flags.yaml"
    flags.write_text("red_flags: 1\nname: f\nflags: []\n")
    with pytest.raises(SpecError) as err:
        load_claims(flags)
    assert f"{flags}:1:1" in str(err.value) and "not a forbidden-claims pack" in str(err.value)


def test_pack_by_name_or_path(tmp_path: Path) -> None:
    assert "forbidden_claims" in builtin_claims_names()
    assert claims_path("forbidden_claims").is_file()
    with pytest.raises(SpecError, match="no built-in forbidden-claims pack"):
        claims_path("no_such_pack")
    own = tmp_path / "own.yaml"
    own.write_text("forbidden_claims: 1\nname: own\nclaims:\n  - {name: w, pattern: weekend}\n")
    assert claims_matcher("own.yaml", tmp_path).fired("See you this weekend.") == ["w"]


def test_the_builtin_pack_is_package_data() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["shoal"]
    pack = claims_path("forbidden_claims")
    relative = pack.relative_to(REPO / "src" / "shoal").as_posix()
    assert any(fnmatch.fnmatch(relative, g) for g in globs), relative


# -------------------------------------------------------------------------- extension point


def test_more_checks_plug_in() -> None:
    seen: list[ReplyContext] = []

    def on_topic(ctx: ReplyContext) -> Sequence[ReplyFailure]:
        seen.append(ctx)
        return [ReplyFailure("on_topic", "off_topic", "similarity 0.10 below 0.35")]

    reply = BY_ID["hc-01539"]["reply"]  # "a new shoe with a removable heel": passes the rest
    assert check_reply(reply).ok
    verdict = check_reply(reply, label="symptom_report", extra=[("on_topic", on_topic)])
    assert verdict.codes == ("off_topic",) and verdict.checks == (*CHECKS, "on_topic")
    assert seen[0].label == "symptom_report" and seen[0].reply == reply
