"""Write **alarm look-alike** patient messages: ``alarms_train.jsonl`` and ``alarms_dev.jsonl``
next to this file. Every template was written for shoal; nothing is downloaded.

Patients use emergency words in messages that are no emergency: a disclaimer ("nothing urgent",
"not an emergency"), a past emergency ("since my ER visit for chest pain"), a negated symptom
("no chest pain, no trouble breathing, just..."), a resolved scare ("the numbness was a pinched
nerve"), a hypothetical ("what should I do if the swelling comes back?") or a bill for one. Cut
into clauses by the splitter, "Nothing urgent." or "the chest pain was reflux" alone looks like
an emergency to a classifier trained on whole messages (it gave 0.5 to 0.96), and a request for
a refill got a "call 911" step. These families put such words around the four ordinary errands,
and, so that a hedge never hides a real one, around real emergencies ("I don't want to
overreact, but...", "no fever or anything, but my chest is crushing").

They train the splitter's clause model (``build_models.py``: ``models/clause.onnx``) and
measure it on families it never saw (``alarms_dev.jsonl``: ``benchmarks/plan.py --tune``). Not
the triage model: its thresholds were calibrated on dev (``shoal calibrate``) and stay as they
are.

Records have the fields of ``lookalikes_*.jsonl`` (``id`` ``al-00001`` ..., ``label``,
``family``, ``split``, ``hard``, ``has_pii``, ``pii``). Families are split **by family**, per
label, with a fixed seed (``make_lookalikes.split_families``: a quarter of each label's families
to dev).

    python examples/healthcare/data/make_alarms.py [OUT_DIR] [--seed S]

Deterministic: the same seed and the same Faker version write byte-identical files.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

OUT_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(OUT_DIR))
import make_lookalikes as la  # noqa: E402  (this folder's look-alike generator: splits)
import make_messages as mm  # noqa: E402  (this folder's generator: families, pools, styling)

SEED = 20261205
PER_FAMILY = 8
"""Training messages per family (times its ``weight``)."""
DEV_PER_FAMILY = 10
"""Messages per dev family."""
ALARM_WORDS = (
    "emergency", "urgent", "911", "er ", "e.r.", "emergency room", "ambulance", "chest",
    "breath", "stroke", "heart attack", "suicid", "bleed", "faint", "passed out", "seizure",
    "overdose", "numb", "swell", "allerg", "collapse", "blood", "pain", "epipen", "nitro",
    "reaction", "rescue", "crisis", "hurting myself", "nosebleed", "lightheaded", "heart",
    "ekg", "cpr")
"""Emergency-looking words; every template carries at least one (checked by :func:`check`)."""

APPT, RX, SYM, BILL, EMER = la.LABELS

SLOTS: dict[str, list[str]] = {
    "calm": ["Not an emergency", "Nothing urgent", "Not urgent", "No emergency here",
             "This isn't urgent", "Non-urgent question", "Not an emergency at all",
             "Nothing serious, not an emergency"],
    "past_em": ["my ER visit for chest pain", "the ambulance ride last month",
                "my trip to the emergency room", "the allergic reaction in the spring",
                "my fainting spell at work", "the seizure I had in January",
                "my hospital stay for the blood clot", "the asthma attack that put me in the ER"],
    "ruled_out": ["the chest pain was only heartburn", "the numbness was a pinched nerve",
                  "the shortness of breath was my asthma acting up",
                  "the fainting was from skipping lunch", "it wasn't a stroke, just a migraine",
                  "the chest tightness was a pulled muscle",
                  "the bleeding was from a hemorrhoid, nothing serious"],
    "no_red": ["no chest pain", "no trouble breathing", "no numbness or weakness",
               "no bleeding", "nothing like a heart attack", "no swelling in my throat",
               "no fainting"],
    "mild": ["a dry cough that won't quit", "a sore lower back", "itchy eyes",
             "a rash on my elbow", "trouble sleeping", "a mild headache most afternoons",
             "some heartburn after dinner", "a stuffy nose"],
    "em_now": ["I have crushing chest pain and my left arm is numb",
               "I can't breathe and my lips are turning blue",
               "my face is drooping on one side and I can't get words out",
               "I took a whole bottle of my pills on purpose",
               "I'm bleeding heavily and it won't stop with pressure",
               "my throat is swelling shut after a bee sting",
               "I'm having the worst headache of my life and I keep vomiting",
               "I want to kill myself and I have a plan for tonight"],
    "em_other": ["collapsed and isn't responding", "is having a seizure that won't stop",
                 "is gray, sweating and clutching his chest", "can't breathe and is wheezing",
                 "suddenly can't move her right arm or speak"],
    "rel_cap": ["My husband", "My wife", "My dad", "My mom", "My son", "My grandmother"],
    "bp": ["150/90", "145/92", "138/88", "155/95"],
}


def al(name: str, label: str, templates: Sequence[str], **options: Any) -> mm.Family:
    """An alarm look-alike family: its own fillers first, then :data:`SLOTS`, then the pools of
    ``make_messages.py``."""
    return mm.fam(name, label, templates, **{**SLOTS, **options})


APPOINTMENT = [
    al("al_appt_calm_book", APPT, [
        "{calm}. I'd like to book a {visit} with {doctor} {day}.",
        "{calm}, but can I get in to see {doctor} sometime next week?",
        "{calm} - just need to move my {visit} on {day} to later in the week.",
    ]),
    al("al_appt_er_followup", APPT, [
        "The hospital told me to book a follow-up after {past_em}. Is {day} open?",
        "I need a follow-up visit after {past_em}. Anything with {doctor} this week?",
        "Following up after {past_em}: when can I see {doctor}?",
    ]),
    al("al_appt_ruled_out", APPT, [
        "Turns out {ruled_out}, but the ER wants me to see my own doctor. Can I book for {day}?",
        "Good news, {ruled_out}. I still need to reschedule my {visit} on {day} though.",
        "The urgent care said {ruled_out}. Can you fit me in with {doctor} to go over it?",
    ]),
    al("al_appt_cardio_referral", APPT, [
        "{doctor} referred me to cardiology for chest pain testing, the non-urgent kind. Who "
        "do I call to book?",
        "I need to schedule the stress test for the chest pain workup. Is {day} possible?",
        "Can I book the heart monitor fitting for {day}? No chest pain lately, it's just the "
        "follow-up.",
    ]),
    al("al_appt_stroke_clinic", APPT, [
        "My dad has a follow-up at the stroke clinic, he's doing well now. Can we move it to "
        "{day}?",
        "The neurologist wants to see me a year after my stroke. Can I book that {visit}?",
        "Checking on the appointment for my mom's stroke rehab follow-up, is it still {day}?",
    ]),
    al("al_appt_not_er", APPT, [
        "I don't think this needs the emergency room, I'd just like a same-day visit for {mild}.",
        "Not bad enough for urgent care, can I get a {visit} {day} for {mild}?",
        "It's not a 911 thing. Is there a walk-in slot {day} for {mild}?",
    ]),
    al("al_appt_cpr_class", APPT, [
        "Do you still run the CPR and heart attack first aid class? I'd like to sign up for "
        "{day}.",
        "Is the allergy shot clinic open {day}? I need to book my next injection.",
        "Can I book the blood pressure check the nurse mentioned for {day}? No symptoms, just "
        "routine.",
    ]),
    al("al_appt_cancel_better", APPT, [
        "Please cancel my urgent appointment {day}, the chest pain went away and it was just a "
        "pulled muscle.",
        "You can cancel the same-day slot {day}, the swelling went down overnight.",
        "Cancel my {visit} {day}, I went to the ER instead and they sorted it out.",
    ]),
]

PRESCRIPTION = [
    al("al_rx_calm_refill", RX, [
        "{calm}. I'm almost out of {drug}, could you send a refill to {pharmacy}?",
        "{calm}, just need my {drug} renewed before the weekend.",
        "{calm} - I have about five {drug} left, can you call in more?",
    ]),
    al("al_rx_epipen", RX, [
        "My EpiPen expires next month. No reactions lately, can I get a new one sent to "
        "{pharmacy}?",
        "Can you renew my {kid}'s EpiPens for school? No allergic reaction since {month}.",
        "I need a refill on my emergency inhaler, the rescue one, at {pharmacy}. I'm fine, just "
        "running low.",
    ]),
    al("al_rx_nitro", RX, [
        "Could I get a refill of the nitroglycerin at {pharmacy}? No chest pain, I just like to "
        "have it on hand.",
        "My nitro tablets expired in {month}. I haven't needed them, but can you send a fresh "
        "bottle?",
        "Please renew my blood thinner before {day}, I haven't had any bleeding problems on it.",
    ]),
    al("al_rx_after_er", RX, [
        "After {past_em} they started me on {drug}. Can {doctor} keep refilling it?",
        "The ER gave me a 5 day supply of {drug} after {past_em}. I need more, please.",
        "Since {past_em} I take {drug} every day. I'm down to two pills.",
    ]),
    al("al_rx_ruled_out", RX, [
        "They said {ruled_out}. Can I get a refill of the {drug} you prescribed for it?",
        "Since {ruled_out}, the ER said to keep taking {drug}. Could you renew it?",
        "{ruled_out}, so I'm back on my usual {drug}. Refill to {pharmacy}, please.",
    ]),
    al("al_rx_seizure_meds", RX, [
        "No seizures in over a year, but I need my levetiracetam refilled before {day}.",
        "My {kid}'s seizure rescue spray expired, no seizures since {month}. Can you renew it?",
        "Please refill my epilepsy medicine at {pharmacy}, I have three days left and no "
        "seizures lately.",
    ]),
    al("al_rx_urgent_admin", RX, [
        "Kind of urgent only because I leave on a trip {day}: can you refill my {drug}?",
        "Semi-urgent: the pharmacy needs your okay to refill my {drug} today.",
        "Urgent-ish, my {drug} runs out tomorrow and {pharmacy} still has no refill.",
    ]),
]

SYMPTOM = [
    al("al_sym_no_red", SYM, [
        "{no_red} and {no_red2}, just {mild} for a week. Should I come in?",
        "To be clear, {no_red}. I've had {mild} since {past_day} and wanted to ask about it.",
        "{no_red_cap}, nothing scary, but {mild} is wearing me down.",
    ], no_red2=["no fever", "no dizziness", "no vomiting", "no chest tightness"],
       no_red_cap=["No chest pain", "No trouble breathing", "No numbness", "No bleeding"]),
    al("al_sym_calm", SYM, [
        "{calm}, but I've had {mild} for a couple of weeks.",
        "{calm}. My {body_part} has been sore since {past_day}, is that normal?",
        "{calm}, just curious whether {mild} could be from my {drug}.",
    ]),
    al("al_sym_ruled_out_still", SYM, [
        "The ER said {ruled_out}, but I still feel off. Should I see {doctor}?",
        "They told me {ruled_out}. It still bothers me after meals, what should I try?",
        "I went in and {ruled_out}. Now I have {mild}, related?",
    ]),
    al("al_sym_hypothetical", SYM, [
        "What should I watch for after {past_em}? When is it serious enough for the ER?",
        "If the swelling in my {body_part} comes back, should I go to the emergency room or "
        "call you?",
        "At what blood pressure reading should I worry? Mine was {bp} this morning and I feel "
        "fine.",
    ]),
    al("al_sym_not_suicidal", SYM, [
        "I'm not suicidal or anything, but I've felt low and tired for {duration}.",
        "No thoughts of hurting myself, just anxious all the time for {duration}. Can we talk "
        "about options?",
        "I'm safe, not in crisis, but my mood has been down since {past_day}.",
    ]),
    al("al_sym_minor_bleed", SYM, [
        "Small nosebleed {past_day}, stopped after five minutes of pressure. Anything I should "
        "do?",
        "My gums bleed a little when I brush. Not a lot, is it the {drug}?",
        "I cut my finger cooking {past_day}, the bleeding stopped, but it looks a bit red today.",
    ]),
    al("al_sym_faint_old", SYM, [
        "I felt faint in the shower {past_day} but I'm fine now. Should I get checked?",
        "I got a little lightheaded standing up, didn't pass out. Is it the {drug}?",
        "Nearly fainted at the gym {past_day}, fine since. Do I need to come in?",
    ]),
]

BILLING = [
    al("al_bill_ambulance", BILL, [
        "I was billed {amount} for an ambulance ride in {month}. Is that covered by {insurer}?",
        "Why is there a {amount} ambulance charge on my statement? It was a false alarm and I "
        "wasn't transported.",
        "The ambulance company billed me twice for the same trip on {past_day}.",
    ]),
    al("al_bill_er_visit", BILL, [
        "The bill for {past_em} came to {amount}. Can I set up a payment plan?",
        "{insurer} denied the emergency room claim from {past_day}. Can you resubmit it?",
        "I got charged for an ER visit in {month} that should have been under my copay.",
    ]),
    al("al_bill_calm", BILL, [
        "{calm}, just a billing question: why was I charged {amount} on {past_day}?",
        "{calm}. My statement shows a {service} I never had.",
        "{calm} - can someone explain the {amount} balance on my account?",
    ]),
    al("al_bill_cardiac_tests", BILL, [
        "My stress test for the chest pain workup was billed {amount} as out of network. Can "
        "you fix the code?",
        "How much will the heart monitor cost with {insurer}? I want to know before the visit.",
        "The EKG from my {visit} shows up twice on my bill.",
    ]),
    al("al_bill_epipen_cost", BILL, [
        "The pharmacy wants {amount} for the EpiPens. Is there a coupon or a cheaper version?",
        "Does {insurer} cover the emergency inhaler? I was charged full price, {amount}.",
        "Why did my blood thinner copay go up to {amount}?",
    ]),
]

EMERGENCY = [
    al("al_em_dont_overreact", EMER, [
        "I don't want to overreact, but {em_now}.",
        "Sorry if this is nothing, {em_now}.",
        "Probably silly to write here, but {em_now}. What do I do?",
    ], pii=0.5),
    al("al_em_not_sure", EMER, [
        "Not sure if this counts as an emergency: {em_now}.",
        "Is this an emergency? {rel_cap} {em_other}.",
        "I don't know if I should call 911, {rel} {em_other}.",
    ], pii=0.5),
    al("al_em_no_but", EMER, [
        "No fever or anything, but {em_now}.",
        "I'm not in pain exactly, but {em_now}.",
        "No history of heart trouble, but {em_now} right now.",
    ], pii=0.5),
    al("al_em_after_errand", EMER, [
        "I was going to ask about my bill, but {em_now}.",
        "Not about my refill anymore: {rel} {em_other}.",
        "Forget my appointment question, {rel} {em_other}.",
    ], hard=True, pii=0.5),
    al("al_em_again", EMER, [
        "It's happening again like {past_em}: {em_now}.",
        "Same as last time, {em_now}. Should I go back to the ER?",
        "{rel_cap} {em_other}, just like before the last ambulance ride.",
    ], pii=0.5),
]

FAMILIES: list[mm.Family] = [*APPOINTMENT, *PRESCRIPTION, *SYMPTOM, *BILLING, *EMERGENCY]


def check(families: Sequence[mm.Family]) -> None:
    """Family names are unique and not make_messages' or make_lookalikes', labels clinical, and
    every template of a non-emergency family, however filled, carries an emergency-looking
    word (the emergency families carry a real emergency)."""
    names = [f.name for f in families]
    if len(set(names)) != len(names):
        raise ValueError("duplicate family names")
    if clash := set(names) & {f.name for f in (*mm.FAMILIES, *la.FAMILIES)}:
        raise ValueError(f"family names used by the other generators: {sorted(clash)}")
    for f in families:
        if f.label not in la.LABELS:
            raise ValueError(f"family {f.name}: label {f.label} is not a clinical class")
        if f.label == EMER:
            continue
        rng = random.Random(0)
        for t in f.templates:
            for _ in range(20):
                text = mm._fill_slots(t, f, rng).lower()
                if not any(w in text for w in ALARM_WORDS):
                    raise ValueError(f"family {f.name}: no emergency-looking word in {text!r}")


def build(seed: int = SEED) -> dict[str, list[dict[str, Any]]]:
    """Every record by split, dev numbered first (``al-00001`` ...): make_lookalikes' build
    with these families."""
    return la.build(seed, PER_FAMILY, DEV_PER_FAMILY, families=FAMILIES, checked=check,
                    prefix="al")


def main(argv: Sequence[str] | None = None,
         echo: Callable[[str], object] = print) -> dict[str, Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("out_dir", nargs="?", type=Path, default=OUT_DIR)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    rows = build(args.seed)
    paths = mm.write(args.out_dir, rows, prefix="alarms_")
    for split, records in rows.items():
        counts = Counter(r["label"] for r in records)
        families = len({r["family"] for r in records})
        echo(f"{paths[split]}: {len(records)} messages, {families} families; "
             + ", ".join(f"{label} {counts[label]}" for label in la.LABELS))
    return paths


if __name__ == "__main__":
    main()
