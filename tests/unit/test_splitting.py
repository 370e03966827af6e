"""The local splitter: where a message is cut, what carries no request, how labelled segments
become parts, and the ``intent_splitter`` agent on the healthcare triage model."""

from __future__ import annotations

import pytest

from shoal.agents import AgentContext, AgentResult
from shoal.agents.splitter import IntentSplitter, SplitterConfig, _Draft, _with_critical
from shoal.agents.splitting import CriticalRule, critical_label, group_parts, is_filler, segments
from shoal.errors import AgentError
from shoal.graphs.spec import OnnxClassifierModelSpec
from shoal.models.base import Backend
from shoal.models.kinds import build_model
from tests.conftest import REPO

LABELS = ("appointment", "billing", "emergency", "off_topic", "prescription_refill")


def _probs(label: str, p: float) -> dict[str, float]:
    rest = (1.0 - p) / (len(LABELS) - 1)
    return {k: (p if k == label else rest) for k in LABELS}


@pytest.mark.parametrize(("text", "expected"), [
    ("I'm out of lisinopril. Can we move Thursday's visit? Also the bill charged me twice",
     ["I'm out of lisinopril.", "Can we move Thursday's visit?", "the bill charged me twice"]),
    ("Please refill my [DRUG], and can you check my bill", ["Please refill my [DRUG]",
                                                            "and can you check my bill"]),
    ("I need my refill, but also my chest hurts", ["I need my refill", "my chest hurts"]),
    ("Quick ones: 1) refill 2) bill 3) appt", ["Quick ones:", "1) refill", "2) bill", "3) appt"]),
    ("Thanks Dr. [NAME_1] for the visit.\n\n[NAME_2]", ["Thanks Dr. [NAME_1] for the visit.",
                                                         "[NAME_2]"]),
    ("one sentence without a cut", ["one sentence without a cut"]),
    ("  \n ", []),
])
def test_segments_cut_where_requests_start_and_keep_exact_offsets(text: str,
                                                                   expected: list[str]):
    found = segments(text)
    assert [s.text for s in found] == expected
    assert all(text[s.start:s.end] == s.text for s in found)


@pytest.mark.parametrize(("text", "filler"), [
    ("Thanks, [NAME_1]", True), ("[PHONE_1]", True), ("Call me at [PHONE_1].", True),
    ("Hi dr.", True), ("sent from my iPhone", True), ("DOB: [DATE_1]", True),
    ("I need my refill", False), ("my chest hurts", False), ("why was I charged twice?", False),
])
def test_greetings_sign_offs_and_lone_identifiers_carry_no_request(text: str, filler: bool):
    assert is_filler(text) is filler


def _split(text: str, labelled: list[tuple[str, float]], **kw: object) -> tuple[object, ...]:
    segs = segments(text)
    assert len(segs) == len(labelled), [s.text for s in segs]
    options: dict[str, object] = {"new_part": 0.8, "follow_below": 0.5, **kw}
    split = group_parts(segs, [_probs(label, p) for label, p in labelled],
                        **options)  # type: ignore[arg-type]
    return split.labels, split.sure, [p.excerpt(text) for p in split.parts]


def test_sure_segments_start_parts_and_unsure_ones_follow_the_part_before():
    text = "Please refill my lisinopril. I run out Friday. Also why was I charged twice?"
    labels, sure, excerpts = _split(text, [("prescription_refill", 0.9), ("billing", 0.3),
                                           ("billing", 0.95)])
    assert labels == ("prescription_refill", "billing") and sure
    assert excerpts == ["Please refill my lisinopril. I run out Friday.",
                        "why was I charged twice?"]  # "Also" announces it and is left out


def test_a_segment_between_sure_and_unsure_makes_the_split_unsure():
    text = "Please refill my lisinopril. Can I come in on Monday to talk about it?"
    labels, sure, _ = _split(text, [("prescription_refill", 0.9), ("appointment", 0.65)])
    assert labels == ("prescription_refill",) and not sure


def test_a_critical_floor_starts_an_emergency_part_however_unsure():
    text = "Please refill my lisinopril. My chest has been crushing for twenty minutes."
    labelled = [("prescription_refill", 0.9), ("emergency", 0.4)]
    assert _split(text, labelled)[0] == ("prescription_refill",)
    labels, sure, _ = _split(text, labelled, critical=CriticalRule({"emergency": 0.3}))
    assert labels == ("prescription_refill", "emergency") and sure


def test_a_quiet_label_needs_more_to_start_a_part_and_in_between_is_unsure():
    text = "Random but did the Cubs win last night? Anyway I need my insulin refilled."
    labelled = [("off_topic", 0.7), ("prescription_refill", 0.9)]
    labels, sure, excerpts = _split(text, labelled, quiet=frozenset({"off_topic"}))
    # An aside the model is fairly sure of is a question for the planner (plan mode), not a
    # part of its own and not nothing.
    assert labels == ("prescription_refill",) and not sure
    assert excerpts == [text]  # the aside leads: it goes with the first request after it
    labelled = [("off_topic", 0.3), ("prescription_refill", 0.9)]
    assert _split(text, labelled, quiet=frozenset({"off_topic"}))[1]  # unsure of it: sure
    labelled = [("off_topic", 0.97), ("prescription_refill", 0.9)]
    assert _split(text, labelled, quiet=frozenset({"off_topic"}))[0] == (
        "off_topic", "prescription_refill")


def test_one_label_in_two_places_is_one_part_with_two_spans():
    text = "Please refill my lisinopril. Also my bill is wrong. And the refill should go to CVS."
    labels, _, excerpts = _split(text, [("prescription_refill", 0.9), ("billing", 0.9),
                                        ("prescription_refill", 0.9)])
    assert labels == ("prescription_refill", "billing")
    assert excerpts[0] == ("Please refill my lisinopril. … And the refill should go to CVS.")


def test_fillers_take_no_part_and_a_message_of_fillers_has_none():
    text = "Hi dr. [NAME_1]\nThanks, [NAME_2]"
    labels, sure, _ = _split(text, [("off_topic", 0.99), ("off_topic", 0.99)])
    assert labels == () and sure


# --- the agent, on the healthcare example's triage model -----------------------------------------


TRIAGE = REPO / "examples" / "healthcare" / "models" / "triage.onnx"


@pytest.fixture(scope="module")
def triage_model() -> Backend:
    return build_model(OnnxClassifierModelSpec(kind="onnx-classifier", path=str(TRIAGE)))


def _agent(model: Backend, **config: object) -> IntentSplitter:
    settings: dict[str, object] = {"of": "triage", "floors": {"emergency": 0.35},
                                   "quiet": ["off_topic"], **config}
    return IntentSplitter(SplitterConfig.model_validate(settings), node="split", model=model)


async def _run(agent: IntentSplitter, text: str, label: str = "prescription_refill"
               ) -> AgentResult:
    ctx = AgentContext(node="split", run_id="r", record_id="x", text=text,
                       results={"triage": AgentResult(label=label, confidence=0.6)})
    return await agent.run(ctx)


async def test_three_requests_become_three_parts_and_the_label_stays_the_classifiers(
        triage_model: Backend):
    text = ("I'm completely out of my lisinopril, can you send a refill to the pharmacy? "
            "Also I need to reschedule my appointment on Thursday. "
            "And why was I charged twice for my last visit?")
    result = await _run(_agent(triage_model), text)
    assert result.label == "prescription_refill"  # routes exactly as the classifier said
    assert result.output["labels"] == ["prescription_refill", "appointment", "billing"]
    assert result.output["sure"] and result.confidence == 1.0
    spans = [s for part in result.output["parts"] for s in part["spans"]]
    assert all(0 <= a < b <= len(text) for a, b in spans)


async def test_a_single_request_stays_one_part(triage_model: Backend):
    text = ("Hi, this is [NAME_1]. I have had a cough with fever for three days and it is "
            "getting worse.\nThanks, [NAME_1]")
    result = await _run(_agent(triage_model), text, label="symptom_report")
    assert result.output["labels"] == ["symptom_report"] and result.label == "symptom_report"


async def test_the_splitter_needs_its_classifier_node_to_have_run(triage_model: Backend):
    ctx = AgentContext(node="split", run_id="r", record_id="x", text="refill please")
    with pytest.raises(AgentError, match="'triage' has no label"):
        await _agent(triage_model).run(ctx)


def test_floors_must_name_the_models_labels(triage_model: Backend):
    with pytest.raises(AgentError, match="not the model's"):
        _agent(triage_model, floors={"emergencies": 0.3})
    with pytest.raises(ValueError, match="must not exceed"):
        SplitterConfig.model_validate({"of": "t", "new_part": 0.5, "follow_below": 0.6})


# --- the whole message's emergency -------------------------------------------------------------


WITH_CRITICAL_TEXT = "Refill my inhaler. Also move my visit. My chest feels odd."
TARGET_OF = {"emergency": "urgent", "prescription_refill": "answer", "appointment": "answer",
             "billing": "answer", "off_topic": "decline"}


def _drafts(*labels: str) -> list[_Draft]:
    return [_Draft(TARGET_OF[label], label, ((i, i + 1),), "", "local")
            for i, label in enumerate(labels)]


def test_an_emergency_the_whole_message_had_becomes_a_step_on_its_likeliest_segment():
    segs = segments(WITH_CRITICAL_TEXT)
    probs = [_probs("prescription_refill", 0.9), _probs("appointment", 0.9),
             {**_probs("appointment", 0.6), "emergency": 0.15}]
    out = _with_critical(_drafts("prescription_refill", "appointment"), "emergency", segs,
                         probs, TARGET_OF, {"emergency": 0.2})
    assert [(d.label, d.target) for d in out] == [
        ("prescription_refill", "answer"), ("appointment", "answer"), ("emergency", "urgent")]
    assert WITH_CRITICAL_TEXT[slice(*out[-1].spans[0])] == "My chest feels odd."


@pytest.mark.parametrize(("labels", "whole"), [
    (("prescription_refill",), "emergency"),                  # one part: the whole route stands
    (("prescription_refill", "emergency"), "emergency"),      # a part has it already
    (("prescription_refill", "appointment"), "appointment"),  # not a critical label
])
def test_no_emergency_step_is_added_when_none_is_missing_or_nothing_splits(labels, whole):
    segs = segments(WITH_CRITICAL_TEXT)
    probs = [_probs("prescription_refill", 0.9)] * len(segs)
    drafts = _drafts(*labels)
    assert _with_critical(drafts, whole, segs, probs, TARGET_OF, {"emergency": 0.2}) == drafts


# --- a critical label on a clause needs a red flag below flag_below -----------------------------


def _flag(text: str) -> bool:
    return "chest pain" in text


@pytest.mark.parametrize(("text", "p", "expected"), [
    ("I have chest pain", 0.15, (0.15, "emergency")),     # at the floor, the flag bears it out
    ("I don't understand the charges", 0.39, None),        # at the floor, no flag: not critical
    ("I don't understand the charges", 0.55, (0.55, "emergency")),  # past flag_below
    ("I have chest pain", 0.05, None),                      # under the floor, flag or not
])
def test_a_critical_label_at_its_floor_needs_the_flag_below_flag_below(text, p, expected):
    probs = {**_probs("billing", 1.0 - p), "emergency": p}
    assert critical_label(text, probs, {"emergency": 0.1}, sure=0.5, confirm=_flag) == expected


def test_without_a_confirmation_the_floor_alone_decides():
    probs = {**_probs("billing", 0.61), "emergency": 0.39}
    assert critical_label("I don't understand the charges", probs, {"emergency": 0.1},
                          sure=0.5) == (0.39, "emergency")


def test_group_parts_takes_a_flagged_clause_as_an_emergency_and_not_an_unflagged_one():
    text = "Can someone explain this bill? I don't understand the charges. I have chest pain."
    segs = segments(text)
    probs = [_probs("billing", 0.9), {**_probs("billing", 0.6), "emergency": 0.39},
             {**_probs("billing", 0.7), "emergency": 0.3}]
    rule = CriticalRule({"emergency": 0.1}, sure=0.5, confirm=_flag)
    split = group_parts(segs, probs, new_part=0.6, follow_below=0.5, critical=rule)
    assert [p.label for p in split.parts] == ["billing", "emergency"]
    assert text[slice(*split.parts[1].spans[0])] == "I have chest pain."


# --- critical_top: a critical label the model ranks first -----------------------------------------


@pytest.mark.parametrize(("probs", "expected"), [
    ({"emergency": 0.41, "symptom_report": 0.35, "appointment": 0.24}, (0.41, "emergency")),
    ({"emergency": 0.38, "symptom_report": 0.40, "appointment": 0.22}, None),  # second: no
])
def test_with_critical_top_a_critical_label_ranked_first_is_taken_however_unsure(probs,
                                                                                  expected):
    text = "My father is suddenly confused"
    assert critical_label(text, probs, {"emergency": 0.0}, sure=0.5, confirm=_flag,
                          top=True) == expected
    # Without it, the same clause needs a flag (none fires) or flag_below.
    assert critical_label(text, probs, {"emergency": 0.0}, sure=0.5, confirm=_flag) is None


def test_a_floor_of_zero_with_a_red_flag_takes_any_flagged_clause():
    probs = {**_probs("billing", 0.97), "emergency": 0.03}
    assert critical_label("and I have chest pain", probs, {"emergency": 0.0}, sure=0.5,
                          confirm=_flag) == (0.03, "emergency")
    assert critical_label("and I have a question", probs, {"emergency": 0.0}, sure=0.5,
                          confirm=_flag) is None


def test_group_parts_with_critical_top_starts_an_emergency_part_at_its_first_label():
    text = "Can you refill my metformin? My father is suddenly confused."
    segs = segments(text)
    probs = [_probs("prescription_refill", 0.9),
             {**_probs("symptom_report", 0.3), "emergency": 0.41}]
    rule = CriticalRule({"emergency": 0.0}, sure=0.5, confirm=_flag)
    top = CriticalRule({"emergency": 0.0}, sure=0.5, confirm=_flag, top=True)
    assert group_parts(segs, probs, new_part=0.6, follow_below=0.4, critical=top).labels == (
        "prescription_refill", "emergency")
    assert group_parts(segs, probs, new_part=0.6, follow_below=0.4,
                       critical=rule).labels == ("prescription_refill",)
    # The rule's own label() is the predicate both calls used.
    assert top.label(text, probs[1]) == (0.41, "emergency") and rule.label(text, probs[1]) is None


# --- the healthcare example's clause model: emergency words that are no emergency ----------------


CLAUSE = REPO / "examples" / "healthcare" / "models" / "clause.onnx"


@pytest.fixture(scope="module")
def clause_model() -> Backend:
    return build_model(OnnxClassifierModelSpec(kind="onnx-classifier", path=str(CLAUSE)))


def _shipped(model: Backend) -> IntentSplitter:
    """The split node as examples/healthcare/cascade.yaml configures it (no targets)."""
    import yaml
    node = yaml.safe_load((REPO / "examples" / "healthcare" / "cascade.yaml").read_text(
        encoding="utf-8"))["nodes"]["split"]
    config = {k: v for k, v in node.items() if k not in ("agent", "model", "targets", "plan")}
    return IntentSplitter(SplitterConfig.model_validate(config), node="split", model=model)


# Written for this test, in no generator's families. The triage model (the splitter's model
# before) gives each calm message an emergency step: "Nothing urgent." 0.53, "Not an
# emergency!" 0.71.
CALM = [
    "Nothing urgent. Could you send more of my metformin to the pharmacy? Also can I move my "
    "physical to next week?",
    "Not an emergency! I'd like to book a flu shot. And why was I charged twice in March?",
]
HIDDEN = [
    "Can you refill my metformin? Also my wife suddenly can't lift her left arm and her speech "
    "is slurred.",
    "I need to reschedule Tuesday. Also my dad is sweating and says his chest feels crushed.",
]


@pytest.mark.parametrize("text", CALM)
async def test_the_clause_model_gives_no_emergency_step_to_emergency_words_that_are_none(
        clause_model: Backend, text: str):
    result = await _run(_shipped(clause_model), text)
    assert "emergency" not in result.output["labels"], result.output["parts"]
    assert len(result.output["labels"]) == 2  # the two requests


@pytest.mark.parametrize("text", HIDDEN)
async def test_the_clause_model_still_finds_an_emergency_inside_a_longer_message(
        clause_model: Backend, text: str):
    result = await _run(_shipped(clause_model), text)
    assert "emergency" in result.output["labels"], result.output["parts"]
    assert len(result.output["labels"]) >= 2


# --- run-on markers and small talk ----------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("First reschedule pls Second, do you have a self-pay price?",
     ["reschedule pls", "do you have a self-pay price?"]),
    ("appt tomorrow Then can my inhaler go to the other pharmacy",
     ["appt tomorrow", "can my inhaler go to the other pharmacy"]),
    ("send it to the usual pharmacy btw my wife fell down the stairs",
     ["send it to the usual pharmacy", "my wife fell down the stairs"]),
    ("Refill please. One more thing, can you check my bill?",
     ["Refill please.", "can you check my bill?"]),
    ("Last, why was I charged twice?", ["why was I charged twice?"]),
    ("And one last one: who painted the ceiling?", ["who painted the ceiling?"]),
    ("One more thing", []),
    # The same words where they start no request stay where they are.
    ("I had chest pain last night and then it stopped.",
     ["I had chest pain last night and then it stopped."]),
    ("Last night I fell. Next week is my visit.", ["Last night I fell.", "Next week is my visit."]),
    ("It was my first visit there.", ["It was my first visit there."]),
])
def test_run_on_markers_cut_and_are_left_out_of_the_segment(text: str, expected: list[str]):
    found = segments(text)
    assert [s.text for s in found] == expected
    assert all(text[s.start:s.end] == s.text for s in found)


def test_a_segment_the_model_calls_an_aside_is_left_out_unless_a_red_flag_fires(
        clause_model: Backend):
    agent = _shipped(clause_model)
    text = "Hope you are well. Also my father has crushing chest pain, sweating."
    segs = segments(text)
    aside = {**{k: 0.02 for k in clause_model.labels}, "aside": 0.88}
    kept, probs = agent.requests(segs, [aside, aside])
    # Small talk goes; the emergency stays though the model called it small talk too.
    assert [s.text for s in kept] == ["my father has crushing chest pain, sweating."]
    assert probs and all("aside" not in p for p in probs)
    assert agent.split(segs, [aside, aside]).labels == ("emergency",)


# Written for this test, in no generator's families: small talk beside one request.
CHATTY = [
    ("Congrats on the new building, it looks amazing! Could you send my metformin refill to "
     "the pharmacy?", "prescription_refill"),
    ("I need to move my physical to next week. We finally adopted a rescue dog, he is a "
     "handful!", "appointment"),
    ("Happy birthday to Dr. [NAME_1] from all of us! Why was I charged twice in March?",
     "billing"),
]


@pytest.mark.parametrize(("text", "label"), CHATTY)
async def test_small_talk_beside_a_single_request_makes_no_second_part(
        clause_model: Backend, text: str, label: str):
    result = await _run(_shipped(clause_model), text, label=label)
    assert result.output["labels"] == [label], result.output["parts"]
    assert result.output["asides"] == 1


def test_asides_must_be_the_models_labels_and_no_floor_or_quiet_label(
        triage_model: Backend, clause_model: Backend):
    with pytest.raises(AgentError, match="not the model's"):
        _agent(triage_model, asides=["aside"])
    with pytest.raises(AgentError, match="cannot be asides"):
        _agent(clause_model, asides=["off_topic"])
    # An aside label needs no step target: the cascade's targets leave it out.
    import yaml
    node = yaml.safe_load((REPO / "examples" / "healthcare" / "cascade.yaml").read_text(
        encoding="utf-8"))["nodes"]["split"]
    assert "aside" in clause_model.labels
    assert all("aside" not in t["labels"] for t in node["targets"].values())
    config = {k: v for k, v in node.items() if k not in ("agent", "model", "plan")}
    IntentSplitter(SplitterConfig.model_validate(config), node="split", model=clause_model)
    with pytest.raises(AgentError, match=r"\['aside'\] of the model are in no target"):
        IntentSplitter(SplitterConfig.model_validate({**config, "asides": []}), node="split",
                       model=clause_model)
