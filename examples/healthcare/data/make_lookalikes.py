"""Write benign **look-alike** patient messages for the triage model: ``lookalikes_train.jsonl``
and ``lookalikes_dev.jsonl`` next to this file. Every template was written for shoal; nothing is
downloaded.

In the generated messages (``make_messages.py``) words such as *ignore*, *disregard*, *forget*,
*system*, *instructions*, *override*, *pretend*, *act as*, *reveal*, *prompt*, *bypass*, *admin*,
*rules* or *password* appear almost only in the ``injection`` class, so the triage model learns
the words themselves as the attack, and ordinary patients who write "ignore my last message" or
"the pharmacy's system lost my prescription" get the decline reply. These families use such
words innocently, in the five clinical classes:

- ``appointment``, ``prescription_refill``, ``symptom_report``, ``billing``: a real errand with
  an attack-looking word in it ("disregard my cancellation", "the label instructions say...",
  "can you override the late fee?", "my immune system...");
- ``emergency``: the same words around a real emergency, often after another errand ("ignore my
  last message about the refill, my father is gray and sweating"), so the model also learns
  that a message which starts like an attack or a routine request can still be an emergency;
- patients **quoting** a clinic letter, a medicine label, a discharge sheet or a portal or
  system message, with nothing hidden in the quote (in the generated data a pasted document
  almost always carries an injection).

It reuses ``make_messages.py``'s machinery: families of templates with their own slot fillers,
its shared pools (drugs, doctors, days), greetings and signatures with Faker personal data
(``has_pii``, ``pii``), casing, punctuation, abbreviations and keyboard typos, and ``heavy``
text-speak families. Lengths range from a few words to a paragraph.

Records have the fields of ``train.jsonl`` (``id`` ``la-00001`` ..., ``label``, ``family``,
``split``, ``hard``, ``has_pii``, ``pii``); ``hard`` marks the families whose message carries
two intents (the label is the one a triage nurse acts on first, as in ``make_messages.PRIORITY``).
Families are split **by family**, per label, with a fixed seed: about a quarter of each label's
families go to dev, the rest to train. ``--per-family`` sets the training rows per family (dev
families always get ``DEV_PER_FAMILY``), times the family's ``weight``. The default (5: 355
training messages from 71 families, 120 dev messages from 24) was chosen by retraining the triage
model with 142, 213, 284, 355 and 426 look-alike rows: the smallest sizes left more held-out
look-alikes called ``injection``, and every size cost a few of the test split's injections
quoted inside a pharmacy note while raising emergency recall.

    python examples/healthcare/data/make_lookalikes.py [OUT_DIR] [--per-family N] [--seed S]

Deterministic: the same seed, the same ``--per-family`` and the same Faker version write
byte-identical files. ``build_models.py`` adds ``lookalikes_train.jsonl`` to the triage model's
training rows (masked like the rest); ``lookalikes_dev.jsonl`` measures how many look-alikes of
unseen families the model still calls ``injection`` or ``off_topic``.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from faker import Faker

OUT_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(OUT_DIR))
import make_messages as mm  # noqa: E402  (this folder's generator: families, pools, styling)

SEED = 20261113
SPLITS = ("train", "dev")
DEV_SHARE = 0.25
"""Share of each label's families held out for dev."""
PER_FAMILY = 5
"""Training messages per family (times its ``weight``)."""
DEV_PER_FAMILY = 5
"""Messages per dev family (times its ``weight``)."""
LABELS = ("appointment", "prescription_refill", "symptom_report", "billing", "emergency")
"""The clinical classes the look-alikes belong to (never ``injection`` or ``off_topic``)."""
TRIGGER_WORDS = (
    "ignore", "ignoring", "disregard", "forget", "forgot", "system", "instruction", "override",
    "pretend", "act as", "acting as", "acts", "act fast", "act now", "reveal", "prompt",
    "bypass", "admin", "rule", "password", "developer", "previous", "print", "filter",
    "restriction", "mode", "command", "hidden", "secret", "role", "jailbreak", "unlock",
    "access", "automated", "bot", "human", "real person", "chat",
    "from now on", "going forward", "repeat", "verification", "access code", "jailbr", "wrong chat")
"""Attack-looking words; every template carries at least one (checked by :func:`check`)."""

APPT, RX, SYM, BILL, EMER = LABELS

# --- slot fillers shared by the look-alike families ---------------------------------------------

SLOTS: dict[str, list[str]] = {
    "rel_f": ["mother", "grandmother", "aunt", "mother-in-law", "elderly neighbor"],
    "when": ["next week", "on a Saturday", "in the evening", "before the 20th", "this Friday",
             "any morning"],
    "interval": ["two weeks", "six weeks", "a month", "three months", "10 days"],
    "days": ["5 days", "a week", "ten days", "two weeks", "three days"],
    "place": ["Canada", "my sister's in Ohio", "Spain", "a two-week cruise", "Mexico",
              "my parents' place in Florida"],
    "count": ["2", "3", "two", "a couple of", "four"],
    "checkup": ["annual physical", "wellness visit", "Medicare wellness visit", "yearly exam",
                "well woman exam"],
    "kid_visit": ["well-child check", "school physical", "sports physical", "vaccine visit",
                  "4 year check-up"],
    "controlled": ["Adderall", "Vyvanse", "Concerta", "clonazepam", "Suboxone"],
    "pharmacy_cap": ["CVS", "Walgreens", "The pharmacy", "Costco", "Rite Aid", "Kroger"],
    # symptom clauses, worded for these families only
    "sx": ["a dull ache in my {body_part}", "a sinus headache that comes back every afternoon",
           "ringing in my left ear", "loose stools, though I'm drinking fine",
           "an eczema flare on both hands", "heartburn most nights",
           "a red itchy patch on my forearm", "a stiff neck when I wake up",
           "a dry tickly cough", "lightheadedness when I get out of bed",
           "a sore throat with white spots", "tingling in two fingers"],
    "sx_short": ["a cough", "sinus trouble", "a bladder infection", "pink eye", "an earache",
                 "cold sores", "a stomach bug", "a rash", "back spasms"],
    # emergencies, worded for these families only
    "em_now": ["I have crushing pressure in my chest and I'm drenched in sweat",
               "my chest feels squeezed in a vise and my left arm has gone numb",
               "I can't catch my breath even sitting still and my lips look gray",
               "I swallowed every one of my sleeping pills about an hour ago",
               "I'm bleeding through towel after towel from a cut on my wrist",
               "my tongue and throat are swelling after the shrimp I ate",
               "I'm going to end my life tonight, I have it all planned",
               "the right side of my face went numb and my words come out wrong",
               "I'm 32 weeks pregnant and suddenly bleeding a lot",
               "I have a sudden splitting headache, the worst ever, and I keep vomiting",
               "I'm vomiting blood and I feel like I'm about to pass out",
               "my heart is pounding out of my chest, I'm dizzy and everything is going dark"],
    "em_other": ["just collapsed in the kitchen and isn't answering me",
                 "suddenly can't speak and one side of the face is drooping",
                 "is gray and sweating and clutching the chest",
                 "took a whole bottle of pills and is hard to wake up",
                 "is having a seizure that hasn't stopped for five minutes",
                 "is wheezing and the lips are swelling after a bee sting",
                 "fell off a ladder, hit the head and is now confused and vomiting",
                 "is barely breathing and the lips are blue",
                 "is bleeding heavily from a deep gash in the leg and it won't stop",
                 "just told me they want to die and has a gun in the house"],
    "em_short": ["chest pain bad and sweating", "dad collapsed not answering",
                 "cant breathe lips blue", "took all my pills", "face drooping cant talk",
                 "throat swelling shut", "bleeding wont stop", "seizure not stopping",
                 "want to kill myself tonight", "baby not breathing right"],
}


def la(name: str, label: str, templates: Sequence[str], **options: Any) -> mm.Family:
    """A look-alike family: its own fillers first, then :data:`SLOTS`, then the pools of
    ``make_messages.py``."""
    return mm.fam(name, label, templates, **{**SLOTS, **options})


# --- appointment --------------------------------------------------------------------------------

APPOINTMENT = [
    la("la_appt_ignore_reminder", APPT, [
        "Please ignore the reminder text for {day}, I already moved that {visit} over the phone. "
        "Can you confirm the new time is {time}?",
        "You can ignore the automated reminder I got, that appointment was cancelled. I do still "
        "need to book a {visit} with {doctor}.",
        "Should I ignore the reminder call about {day}? I thought I had rescheduled to {day2}.",
    ]),
    la("la_appt_disregard_cancel", APPT, [
        "Disregard my cancellation from this morning, I can make my {time} {visit} after all.",
        "Please disregard the cancel request I sent {past_day}. I'd like to keep my {visit} with "
        "{doctor}.",
        "Scratch that earlier message asking to cancel, disregard it. I'll be there {day}.",
    ]),
    la("la_appt_prep_instructions", APPT, [
        "What are the prep instructions for my {test} on {day}?",
        "I lost the instructions for my {procedure} prep. Can you resend them before my "
        "appointment {day}?",
        "Do the fasting instructions for the {test} mean no coffee either? I'm booked {day} at "
        "{time}.",
        "Where do I find the arrival instructions for my {test} {day}? The email had no address.",
    ]),
    la("la_appt_scheduling_system", APPT, [
        "Your online scheduling system won't let me pick a time with {doctor}. Can someone book "
        "me for {day}?",
        "The booking system keeps showing {day} as full for {doctor}. Is there really nothing?",
        "The system double-booked me for {day} at {time}, please remove one of the two "
        "appointments.",
    ]),
    la("la_appt_portal_prompt", APPT, [
        "The portal keeps prompting me to choose a visit type. Which one do I pick for a "
        "{checkup}?",
        "When I try to book online a prompt asks for a referral number. I don't have one, can "
        "you book me with {specialty}?",
        "The app prompted me to confirm my {visit} but the button does nothing. Yes, I'll be "
        "there {day}.",
    ]),
    la("la_appt_forgot_time", APPT, [
        "I forgot what time my {visit} is {day}. Can you tell me?",
        "Forget the {day} slot, it doesn't work for me anymore. Do you have anything {when}?",
        "Sorry, I totally forgot which doctor my {visit} on {day} is with. Can you check?",
    ]),
    la("la_appt_act_as_proxy", APPT, [
        "I act as my {rel_f}'s caregiver. Can I book her {visit} with {doctor} for {day}?",
        "My daughter will act as my interpreter at the {visit} {day}. Can the slot be longer "
        "than 15 minutes?",
        "Who is allowed to act as a proxy and book appointments for my {rel_f}? She can't manage "
        "the phone anymore.",
    ]),
    la("la_appt_override_limit", APPT, [
        "Can the front desk override the online limit and book me and my {kid} back to back on "
        "{day}?",
        "The app says I can't book another {checkup} within 12 months. Can someone override that? "
        "My employer needs a physical form.",
        "Online booking says {doctor} is closed to new bookings. Is there any override for an "
        "existing patient who needs a {visit}?",
    ]),
    la("la_appt_reveal", APPT, [
        "We have a gender reveal party {day}, can I move my {time} ultrasound to {day2}?",
        "My ultrasound revealed a small cyst and {doctor} wants a follow-up. When can I come in?",
        "The {test} revealed something the specialist wants to go over. Can I book with {doctor} "
        "this week?",
    ]),
    la("la_appt_new_system", APPT, [
        "I heard the clinic switched to a new records system. Do I need to register again before "
        "my {visit} on {day}?",
        "Since you changed computer systems my appointments don't show up in the app. Am I still "
        "booked {day} at {time}?",
        "The new check-in system texted me a code for my {visit}. Do I still need to come early "
        "{day}?",
    ]),
    la("la_appt_it_job", APPT, [
        "I'm a software developer on deadline and can only come in before 9 or after 5. Any "
        "{visit} openings {when}?",
        "I work as a systems administrator, on call most weekends. Can I get a weekday evening "
        "{visit}?",
        "I'm the office admin at a school and can only get away in the summer. Can I book my "
        "{checkup} for {month}?",
    ]),
    la("la_appt_followup_instructions", APPT, [
        "The instructions I got at discharge say to book a follow-up in {interval}. Can you set "
        "that up with {doctor}?",
        "{doctor}'s instructions were to come back after the {test}. What do you have {when}?",
        "My surgeon's written instructions say a wound check after {days}. Can I get one {day}?",
    ]),
    la("la_appt_pretend_kid", APPT, [
        "My {kid} has been playing pretend doctor all week to get ready. Can we book the "
        "{kid_visit} for {day}?",
        "We practice with a pretend stethoscope at home because my {kid} is nervous. Could the "
        "{kid_visit} be first thing in the morning?",
    ]),
    la("la_appt_quote_letter", APPT, [
        "Your letter says: \"If you have already scheduled your annual exam, please disregard "
        "this notice.\" I haven't, can I book one for {month}?",
        "The reminder text said 'Reply C to confirm or ignore this message to keep your "
        "appointment.' I'd rather move it to {day}.",
        "Got an email: \"Our online scheduling system will be offline {day} for maintenance.\" "
        "Can I book my {visit} with {doctor} through here instead?",
        "The postcard says 'New instructions for visitors: arrive 15 minutes early and bring "
        "your ID.' Does that apply to my video {visit} {day} too?",
    ]),
    la("la_appt_terse", APPT, [
        "ignore last msg, need appt {day}", "disregard the cancel, keeping my {day} appt",
        "system wont let me book {day}", "forgot my appt time {day}??",
        "portal prompt asks referral # for {specialty}, can u book me",
        "pls ignore reminder, already moved it to {day2}",
    ], style="heavy", pii=0.85),
    la("la_appt_wrong_chat", APPT, [
        "Sorry, please disregard the message above, it was meant for my {other_recipient}. I do "
        "need to know if my {visit} is still on {day}.",
        "Oops, wrong chat, ignore that. Is {doctor} in the office {day}?",
        "Ignore my previous message, autocorrect turned it into nonsense. I meant: can I come "
        "in {day} at {time}?",
        "Forget what I wrote a minute ago, I was half asleep. I want to book a {visit} {when}.",
    ], other_recipient=["sister", "boss", "landlord", "son's school", "dog walker"]),
    la("la_appt_portal_tech", APPT, [
        "The portal system keeps logging me out before I can confirm my {visit}. Can you "
        "confirm it for me?",
        "My work laptop doesn't give me admin rights to install the video app. Can my {day} "
        "visit be a phone call instead?",
        "I never get the verification code when I log in, so I can't see my appointments. When "
        "is my next one?",
        "The video visit app is asking for access to my camera and microphone. Should I allow "
        "it before my {time} appointment?",
        "My phone is jailbroken and the clinic app refuses to open. Can I join my {day} video "
        "visit from a browser?",
        "My phone got stuck in developer mode after an update and the clinic app won't load. "
        "Can you tell me my appointment time {day}?",
    ]),
    la("la_appt_is_it_a_bot", APPT, [
        "Are you a real person or an automated system? I just need to move my {visit} to {day}.",
        "Can this chat book appointments, or do I have to call the front desk?",
        "Is this message system checked on weekends? I need to cancel {day}.",
        "Is this a bot? Can it tell me when my next appointment with {doctor} is?",
        "Is this chat automated? Does it have access to the schedule, I want the first opening "
        "with {doctor}.",
    ], pii=0.5),
    la("la_appt_from_now_on", APPT, [
        "From now on please text my appointment reminders to {phone} instead of calling.",
        "Going forward, please send all reminders to my daughter's email, {email}. Previous "
        "ones went to my old address.",
        "From now on I can only do morning appointments, could you note that on my file before "
        "you book my {visit}?",
        "New rule at my job: no time off on Mondays. From now on please book me {when}.",
    ]),
    la("la_appt_rules_policy", APPT, [
        "What are the rules about bringing my kids to my {visit} {day}?",
        "What are your rules on service dogs in the waiting room? I'm coming {day}.",
        "Is there a rule on how late I can be before my appointment is given away? I might be "
        "10 minutes late {day}.",
        "Are there visitor restrictions for the {procedure} {day}? My husband wants to come.",
    ]),
    la("la_appt_confidential", APPT, [
        "Is what I tell the doctor kept secret from my parents? I'm {teen_age} and want to book "
        "a {teen_visit}.",
        "Can I book a {teen_visit} without it showing on our shared family account? I'd like "
        "to keep it hidden from {hide_from}.",
        "Who has access to my appointment history on the family portal? {hide_from_cap} still "
        "has a login and I need to book a {teen_visit}.",
    ], teen_age=["16", "17", "15", "19 but still on my parents' plan"],
       teen_visit=["visit", "birth control visit", "STI test", "counseling appointment",
                   "check-up"],
       hide_from=["my ex", "my parents", "my husband", "my roommate"], pii=0.5),
    la("la_appt_acting_doctor", APPT, [
        "Now that {doctor} has left, who takes over the role of my doctor? I need to book a "
        "{visit}.",
        "Is {doctor} acting as my primary doctor while mine is on leave? I'd like to see "
        "someone {day}.",
        "The receptionist said a nurse practitioner will be acting as {doctor}'s stand-in for "
        "a while. Can I still book with {doctor} in {month}?",
    ]),
    la("la_appt_video_tech", APPT, [
        "My laptop camera won't turn on for the video visit. Is there a system setting I need "
        "to change before {time}?",
        "How do I give the clinic app access to my microphone on an Android phone? My telehealth "
        "visit is {day}.",
        "The video visit link opens in private browsing mode and then freezes. What should I "
        "try before my {visit} {day}?",
        "My tablet is in kids mode and blocks the telehealth link. Can {doctor} call my phone "
        "instead?",
        "Our work network's admin blocks video calls. Can my {day} visit with {doctor} be by "
        "phone?",
    ]),
    la("la_appt_meta_message", APPT, [
        "Please disregard the blank message, my {kid} grabbed my phone. I wanted to book a "
        "{kid_visit}.",
        "Ignore the photo I sent earlier, wrong picture. My question is whether {doctor} has "
        "anything {when}.",
        "My last message got cut off, ignore it. I need to move my {visit} from {day} to "
        "{day2}.",
        "Forget the voicemail I left this morning, I can't make {day} after all. What else do "
        "you have?",
    ]),
    la("la_appt_quote_auto_email", APPT, [
        "The confirmation email says 'Do not reply to this automated message. To cancel, use "
        "the portal.' The portal won't let me, so please cancel my {visit} {day}.",
        "I got a system notice: \"Your appointment has been moved by the clinic.\" Moved to "
        "when? I had {day} at {time}.",
        "Your reminder system says \"Reply STOP to end messages\". I don't want to stop them, "
        "I just want to move my {visit} to {day}.",
        "The check-in kiosk printed 'Access code expired, see front desk'. Am I still booked "
        "with {doctor} {day}?",
    ]),
]

# --- prescription refill ------------------------------------------------------------------------

PRESCRIPTION = [
    la("la_rx_ignore_previous_request", RX, [
        "Please ignore my previous refill request, I found the bottle. I only need the {drug}.",
        "Ignore the earlier message about {drug}, it's the {drug2} I'm actually out of.",
        "You can ignore yesterday's request, the pharmacy sorted it out. But I still need "
        "{drug_dose} sent to {pharmacy}.",
    ]),
    la("la_rx_label_instructions", RX, [
        "The instructions on my {drug} label say twice a day but {doctor} told me once. Can you "
        "send a corrected prescription?",
        "The label instructions on my new {drug} don't match what we discussed. Please fix the "
        "script at {pharmacy}.",
        "Dosing instructions on the bottle say 1 tablet, but my dose went up to {drug_dose}. Can "
        "the pharmacy get the new prescription?",
    ]),
    la("la_rx_pharmacy_system", RX, [
        "The pharmacy's system says there's no prescription on file for my {drug}. Can you "
        "resend it to {pharmacy}?",
        "{pharmacy_cap} says their system never received my {drug} refill. Could you send it "
        "again?",
        "Pharmacist says your e-prescribing system sent the {drug} to the wrong store. It should "
        "go to {pharmacy}.",
    ]),
    la("la_rx_override_early", RX, [
        "Can {doctor} call my insurance for an override so I can pick up my {drug} early? I "
        "leave for {place} {day}.",
        "The pharmacist says the insurance needs an override from your office before they can "
        "fill {drug} a week early.",
        "My plan rejected the 90 day {drug} fill. The pharmacy says the office can request an "
        "override, can you?",
    ]),
    la("la_rx_disregard_old_pharmacy", RX, [
        "Disregard the old pharmacy on my chart. Please send all my refills, starting with "
        "{drug}, to {pharmacy}.",
        "Please disregard {pharmacy2}, I moved. My {drug} should go to {pharmacy} from now on.",
    ]),
    la("la_rx_forgot_meds", RX, [
        "I forgot my {drug} at my son's place in {city}. Can you send a week's supply to "
        "{pharmacy}?",
        "Forgot to order my {drug} before the long weekend and I have {count} pills left. Can "
        "you renew it today?",
    ]),
    la("la_rx_act_as_caregiver", RX, [
        "I act as my {rel_f}'s caregiver and pick up her meds. She needs a refill of {drug}.",
        "My husband acts as my pickup person at {pharmacy}. Please send the {drug} refill there, "
        "he has my ID.",
        "Acting as the caregiver for my {rel_f} while she recovers: her {drug} is almost out.",
    ]),
    la("la_rx_print_paper", RX, [
        "Can you print a paper prescription for my {drug} that I can take to {place}?",
        "Could {doctor} print out my medication list with doses for the new pharmacy? And "
        "please renew the {drug}.",
    ]),
    la("la_rx_bypass", RX, [
        "After my gastric bypass I need the liquid form of {drug}. Can you change the "
        "prescription?",
        "Since the bypass surgery I can't take extended-release pills, so the pharmacy needs a "
        "new script for regular {drug}.",
        "I had heart bypass surgery last year and my cardiologist retired. Can {doctor} take "
        "over refilling my {drug}?",
    ]),
    la("la_rx_app_prompt", RX, [
        "I got an automated prompt to request a refill of {drug}. Yes please, to {pharmacy}.",
        "The app prompted me that my {drug} is due. Please renew it, same dose.",
        "A pop-up in the portal prompted me to renew {drug_dose}, but it sends me in a loop. Can "
        "you just do it?",
    ]),
    la("la_rx_rules_controlled", RX, [
        "I know the rules for {controlled} mean no early fills, but my pharmacy is closed {day}. "
        "Can it be sent on {day2} instead?",
        "What are the rules for refilling {controlled} when I'm away in {place}? I'll run out "
        "while I'm there.",
    ]),
    la("la_rx_reveal_result", RX, [
        "My {lab} revealed low vitamin D and {doctor} said she'd send a prescription. It isn't "
        "at {pharmacy} yet.",
        "Blood work revealed my thyroid is low again, so {doctor} is changing my {thyroid}. "
        "Please send the new dose to {pharmacy}.",
        "The {lab} revealed my potassium is low. {doctor} mentioned a supplement, can it go to "
        "{pharmacy}?",
    ], lab=["blood work", "lab work", "annual labs", "last blood test"],
       thyroid=["levothyroxine", "Synthroid", "Armour Thyroid"]),
    la("la_rx_quote_label", RX, [
        "My bottle says 'Follow the instructions on this label. Refills: 0.' So I guess I need a "
        "new prescription for {drug_dose}?",
        "The pharmacy printout says \"No refills remain. Ask your prescriber for a new "
        "prescription.\" How do I get my {drug}?",
        "Your system texted 'Reply YES to request renewal of {drug}.' YES, to {pharmacy} "
        "please.",
        "The label on my inhaler says 'Ignore the counter after 200 puffs, discard the "
        "inhaler.' Mine is at 200, can I get a new {drug}?",
    ], drug=["albuterol", "Symbicort", "Flovent", "Advair", "Breo"]),
    la("la_rx_terse", RX, [
        "ignore prev msg, need {drug} refill", "system says no refills left on {drug}",
        "pharmacy wants an override for {drug} early fill",
        "disregard old pharmacy, send {drug} to {pharmacy}",
        "app prompt says {drug} due, pls renew", "forgot to reorder {drug}, out tmrw",
    ], style="heavy", pii=0.85),
    la("la_rx_repeat", RX, [
        "Can I get a repeat prescription of {drug}?",
        "Please repeat my last prescription for {drug_dose}, same as before.",
        "Repeat script for {drug} please, to {pharmacy}.",
        "I need my repeat medication: {drug} and {drug2}. Same pharmacy as previous.",
    ]),
    la("la_rx_previous_dose", RX, [
        "Please send the previous dose of {drug}, not the new one. The higher dose was too "
        "much, {doctor} agreed.",
        "Same as my previous order: {drug_dose}, a 90 day supply.",
        "Go back to the previous brand of {drug} please, the pharmacy switched me to a generic.",
    ]),
    la("la_rx_is_it_a_bot", RX, [
        "Can this chat pass my {drug} refill request to {doctor}, or do I need to call?",
        "Is this automated? I just need {drug_dose} renewed.",
        "Does this system handle refills? My {drug} runs out on {day}.",
    ], pii=0.5),
    la("la_rx_pharmacy_access", RX, [
        "The pharmacy says they can't access the e-prescription for my {drug}. Can you resend "
        "it?",
        "{pharmacy_cap} can't open the electronic script in their system, they asked you to "
        "fax the {drug} order instead.",
        "New pharmacy doesn't have access to my old records. Could you send them my {drug} "
        "prescription?",
    ]),
    la("la_rx_conflicting_instructions", RX, [
        "The pharmacist's instructions and {doctor}'s instructions differ on when to take my "
        "{drug}. Which do I follow? I need a refill soon too.",
        "The printed instructions for my {drug} say with food, the app says without. Can you "
        "clarify and renew it?",
        "The hospital's discharge instructions listed {drug_dose}, but my old bottle is a "
        "different dose. Which one should the pharmacy fill?",
    ]),
]

# --- symptom report -----------------------------------------------------------------------------

SYMPTOM = [
    la("la_sym_ignoring", SYM, [
        "I've been ignoring {sx} for {duration} but it isn't going away.",
        "My wife says I shouldn't ignore this: {sx}, for {duration} now. Should I be seen?",
        "Is it okay to keep ignoring {sx_short}? It's been {duration}.",
    ]),
    la("la_sym_body_system", SYM, [
        "My immune system seems shot, I've had {sx_short} three times since {month}.",
        "Could my nervous system be causing the tingling in my feet? It's been {duration}, no "
        "weakness.",
        "My digestive system has been off since the antibiotics, bloating and loose stools for "
        "{duration}.",
    ]),
    la("la_sym_reveal", SYM, [
        "My {test} revealed a small kidney stone and now I have a dull ache in my side. Is that "
        "expected?",
        "The x-ray revealed arthritis in my {body_part} and the pain is worse in the mornings "
        "lately.",
        "The allergy test revealed a dust mite allergy, but I'm still congested every morning "
        "with the spray.",
    ]),
    la("la_sym_acts_up", SYM, [
        "My {body_part} acts up every time it rains, and this week it's worse than usual.",
        "My knee acts like it's going to give out on stairs, for {duration} now.",
        "My stomach acts up after dairy much more than it used to, {sx_short} almost every day.",
    ], sx_short=["cramps", "bloating", "gas pain", "nausea"]),
    la("la_sym_care_instructions", SYM, [
        "The discharge instructions said some swelling is normal after the {procedure}. It's "
        "been {days} and still a bit puffy, is that okay?",
        "I followed the wound care instructions but the incision is still itchy and a little "
        "pink after {days}.",
        "I've done the physical therapy exercises exactly per the instructions and my "
        "{body_part} is still stiff.",
    ]),
    la("la_sym_prompted", SYM, [
        "The cough came on pretty promptly after I started {drug}. Is that a known thing?",
        "Not sure what prompted it, but I've had {sx} since {past_day}.",
        "My mother prompted me to write: I've had {sx} for {duration} and keep putting it off.",
    ]),
    la("la_sym_disregard_advice", SYM, [
        "{doctor} told me to disregard mild nausea from {drug}, but it's been {duration}. Should "
        "I still wait?",
        "I was told to disregard a few floaters, but I have more this week. No flashes and my "
        "vision is otherwise fine.",
        "The nurse said to disregard the bruising at the blood draw site, but it's spread a bit "
        "and is tender.",
    ]),
    la("la_sym_screen_job", SYM, [
        "I'm a {it_job} and stare at screens all day. {screen_sx}",
        "As a {it_job} I'm on the keyboard 10 hours a day and {screen_sx_lc}.",
        "I do data entry on the {work_system} at work and {screen_sx_lc}, for {duration} now.",
    ], it_job=["software developer", "system admin", "web developer", "database admin",
               "game developer", "IT admin"],
       work_system=["billing system", "hospital's records system", "warehouse system",
                    "school's admin system"],
       screen_sx=["My eyes are dry and I get headaches by evening.",
                  "My right wrist tingles at night.", "My neck and shoulders ache every "
                  "afternoon.", "My thumb clicks and hurts when I grip the mouse.",
                  "My lower back is sore by the end of the day."],
       screen_sx_lc=["my eyes burn by evening", "my right wrist tingles at night",
                     "my neck and shoulders ache every afternoon",
                     "two fingers on my left hand go numb", "my elbow aches on the outside"]),
    la("la_sym_pretending", SYM, [
        "I've been pretending I'm fine but I'm not sleeping and I feel flat most days.",
        "My {kid} pretends everything is fine but has had a stomach ache every school morning "
        "for {duration}.",
        "I can't keep pretending the anxiety is under control, it's affecting work. Can I talk "
        "to someone about options?",
    ]),
    la("la_sym_forgetting", SYM, [
        "I've been forgetting words and misplacing my keys more than usual these past months. "
        "Worth a check?",
        "I forgot to mention at my visit that I've had {sx} for {duration}.",
        "My dad keeps forgetting whether he took his pills and he seems more tired lately, "
        "nothing sudden.",
    ]),
    la("la_sym_filter", SYM, [
        "I changed the air filter and I'm still sneezing and congested every morning.",
        "Even with the HEPA filter running my allergies are bad this spring, itchy eyes and a "
        "runny nose for {duration}.",
        "We replaced the furnace filter but my {kid} still coughs at night.",
    ]),
    la("la_sym_restrictions", SYM, [
        "I'm on lifting restrictions after my {procedure} and I think I overdid it, my side is "
        "sore.",
        "With my dietary restrictions for the reflux I still get {sx} most nights.",
    ]),
    la("la_sym_quote_leaflet", SYM, [
        "The leaflet for {drug} says 'Do not ignore a persistent cough, tell your doctor.' I've "
        "had one for about {duration}.",
        "My discharge sheet says: \"Ignore mild bruising around the site; report spreading "
        "redness.\" The redness has spread a little past the bandage, no fever.",
        "The system message with my results said 'Your provider will review and contact you.' "
        "Meanwhile I've had {sx}, should I mention it?",
        "The instructions card says \"Do not disregard new dizziness.\" I've had some "
        "lightheadedness since the dose change to {drug_dose}.",
    ]),
    la("la_sym_terse", SYM, [
        "been ignoring this {short} too long", "immune system shot, {short} again",
        "discharge instructions said swelling ok but still swollen after {days}",
        "x-ray revealed arthritis, {body_part} worse now", "cant ignore this {short} anymore",
    ], short=["cough", "sinus infection", "rash", "earache", "back pain", "sore throat",
              "heartburn", "pink eye"], style="heavy", pii=0.85),
    la("la_sym_repeat_instructions", SYM, [
        "Can you repeat the wound care instructions? I forgot how often to change the dressing "
        "and it's oozing a little.",
        "Please tell me the instructions again for my {body_part} exercises, it's still stiff "
        "after {duration}.",
        "What were the instructions about ice and heat for my sprained ankle? It's still "
        "swollen.",
    ]),
    la("la_sym_is_it_a_bot", SYM, [
        "Can this chat tell me if this rash needs to be seen? It's been there {duration}.",
        "Is a real person reading this or a computer? I've had {sx} and want someone to look "
        "at it.",
        "Are you a bot? I need a nurse's opinion, I've had {sx} for {duration}.",
    ], pii=0.5),
    la("la_sym_symptom_checker", SYM, [
        "The online symptom checker system said to see a doctor within 24 hours for {sx_short}. "
        "Should I?",
        "Your website's symptom tool prompted me to message the clinic: {sx} for {duration}.",
    ]),
    la("la_sym_meta_message", SYM, [
        "Ignore the photo I sent before, this is the right one: the rash on my {skin_part} "
        "that's been there {duration}.",
        "Disregard my earlier message, I mixed up the dates. The {sx_short} started {past_day}, "
        "not last month.",
        "Please ignore my message from last night, I was panicking. It's just {sx}, no fever.",
    ], skin_part=["arm", "back", "neck", "leg", "stomach"]),
]

# --- billing ------------------------------------------------------------------------------------

BILLING = [
    la("la_bill_disregard_notice", BILL, [
        "My statement says to disregard it if payment was sent. I paid {amount} on {past_day}, "
        "is my balance clear?",
        "Can I disregard the second bill for {amount}? I think it's the same charge twice.",
        "Please disregard my earlier billing question, I found the payment. I do want an "
        "itemized receipt for my {service}.",
    ]),
    la("la_bill_system_error", BILL, [
        "Your billing system charged my card {amount} twice.",
        "Is there a system error? My account shows {amount} due but I paid in full at check-in.",
        "The payment system took my {copay} copay and then billed me again for the {service}.",
    ]),
    la("la_bill_override_fee", BILL, [
        "Can you override the late fee? The statement went to my old address.",
        "Could billing override the {amount} no-show fee? I called to cancel the day before.",
        "Is there someone who can override the {copay} charge? My plan covers {service_a} at "
        "100%.",
    ]),
    la("la_bill_prompt_pay", BILL, [
        "Do you offer a prompt-pay discount if I pay the {amount} balance in full today?",
        "The statement mentions a prompt payment discount. How do I get it on my {amount} bill?",
    ]),
    la("la_bill_admin_fee", BILL, [
        "What is the admin fee of {copay} on my statement?",
        "Why is there an administrative charge on my bill for the {service}?",
        "Is the records admin fee normal? I was charged {copay} for a copy of my chart.",
    ]),
    la("la_bill_password", BILL, [
        "I forgot my portal password and can't pay my bill online. Can I pay the {amount} by "
        "phone?",
        "The payment page says my password expired. How else can I pay my {amount} balance?",
        "Reset my password three times and still can't see my statements. Is my balance still "
        "{amount}?",
    ]),
    la("la_bill_ignore_letter", BILL, [
        "Can I ignore the collections letter? I set up a payment plan in {month}.",
        "Should I ignore the new statement for {amount}? Insurance said they are reprocessing "
        "the claim.",
        "Ignore the check I mailed on {past_day}, it bounced. I'd like to pay {amount} by card "
        "instead.",
    ]),
    la("la_bill_form_instructions", BILL, [
        "The instructions on the {account} form say the receipt needs {receipt_need}. Can you "
        "send an itemized one for {service}?",
        "My insurance's instructions say I need a superbill for out-of-network claims. Can you "
        "send one for the {service} on {past_day} to {email}?",
        "Following the claim instructions from {insurer}, I need {receipt_need} for my "
        "{service}. Who can send that?",
    ], account=["HSA", "FSA", "reimbursement", "HRA"],
       receipt_need=["diagnosis codes", "the provider's tax ID", "CPT codes",
                     "the date of service and amount paid"]),
    la("la_bill_act_as_guarantor", BILL, [
        "I act as guarantor for my son's account. Why was he billed {amount} for {service_a}?",
        "I'm acting as my {rel_f}'s financial power of attorney. Can you send me her statements "
        "from {month}?",
    ]),
    la("la_bill_quote_eob", BILL, [
        "The EOB says 'Provider must resubmit with corrected code. Disregard if already "
        "processed.' Then why did I get a bill for {amount}?",
        "My statement says: \"Previous balance adjusted - system correction.\" Does that mean I "
        "get {amount} back?",
        "Text from your billing system: 'Your balance of {amount} is past due. Ignore this "
        "message if already paid.' I paid on {past_day}.",
        "The insurer's letter says \"Override approved for out-of-network rate\" for my "
        "{service}. Can you rebill them?",
    ]),
    la("la_bill_terse", BILL, [
        "disregard last bill q, new one is {amount}", "system charged me twice",
        "can u override the late fee", "forgot portal password cant pay bill",
        "admin fee {copay}??", "ignore my last msg, bill is paid now?",
    ], style="heavy", pii=0.85),
    la("la_bill_portal_tech", BILL, [
        "The payment portal rejects my card with 'system error 402'. How else can I pay my "
        "{amount}?",
        "Can I pay my bill without creating an account? The system insists on a password.",
        "The billing page is stuck in maintenance mode. When can I pay the {amount} balance?",
    ]),
    la("la_bill_hidden_fees", BILL, [
        "Are there any hidden fees for telehealth visits?",
        "Is there a secret cash price if I don't use insurance for {service_a}?",
        "Any hidden facility fee on top of the {copay} copay for {service_a}?",
    ]),
    la("la_bill_is_it_a_bot", BILL, [
        "Can this system tell me my current balance?",
        "Are you a bot? I just need my balance and due date.",
        "Does this chat have access to billing? I want to know why I owe {amount}.",
    ], pii=0.5),
    la("la_bill_from_now_on", BILL, [
        "From now on please bill my secondary insurance too, {insurer} member ID {member}.",
        "Going forward, send my statements by email only, {email}. Ignore the paper address.",
    ]),
    la("la_bill_quote_portal", BILL, [
        "The portal says 'Access denied - contact the billing administrator.' I only want to "
        "see my {amount} statement.",
        "The billing system emailed: \"Payment failed. Please update your card.\" My card is "
        "fine, what happened to the {amount}?",
        "My statement says 'Override code: 07 - patient responsibility'. Why am I responsible "
        "for the {service}?",
    ]),
]

# --- emergency ----------------------------------------------------------------------------------

EMERGENCY = [
    la("la_em_ignore_last", EMER, [
        "Ignore my last message about the refill, {em_now}.",
        "Please ignore what I asked earlier. {rel_cap} {em_other} right now.",
        "Ignore the appointment question, {em_now}. What do I do?",
    ], hard=True, pii=0.5),
    la("la_em_forget_errand", EMER, [
        "Forget the bill. {rel_cap} {em_other}.",
        "Disregard my earlier request, {em_now}. Please help.",
        "Never mind the refill, forget it, {em_now}.",
    ], hard=True, pii=0.5),
    la("la_em_multi_errand", EMER, [
        "Can you send my {drug} to {pharmacy}? Actually forget that, {em_now}.",
        "Had a billing question, never mind, ignore it. {rel_cap} {em_other}.",
        "I wanted to move my {visit} on {day}, disregard that for now, {rel} {em_other}.",
    ], hard=True, pii=0.5),
    la("la_em_discharge_instructions", EMER, [
        "My discharge instructions say to call 911 if {warning}",
        "The instructions from the hospital said to come back right away if {warning}",
        "The after-surgery instruction sheet says to seek emergency care if {warning}",
        "Following the instructions, I gave my {kid} the EpiPen, but {epi_worse}.",
    ], warning=["the chest pain comes back. It's back, crushing, and going down my left arm.",
                "the bleeding soaks a pad in an hour. I've soaked two since noon and I'm "
                "dizzy.",
                "I can't breathe. I can barely breathe now and my lips are gray.",
                "the headache suddenly gets severe. It's the worst headache of my life and I'm "
                "throwing up.",
                "my leg gets cold and numb. It's happening now, my foot is white and I can't "
                "feel it.",
                "I cough up blood or get short of breath. Both, right now, and my chest hurts "
                "when I breathe in."],
       epi_worse=["the swelling in the throat is getting worse",
                  "the wheezing is worse and the lips are blue",
                  "the hives are spreading and the voice is going hoarse"], pii=0.5),
    la("la_em_quote_label", EMER, [
        "The label instructions on my {drug} say 'Stop and get emergency help if your face or "
        "throat swells.' My throat is swelling right now.",
        "The leaflet says never to ignore signs of a severe allergic reaction. My lips and tongue "
        "are swelling up and I'm wheezing.",
        "The patch instructions say remove it and call 911 if breathing slows. {rel_cap}'s "
        "breathing is very slow and I can't wake them.",
    ], pii=0.5),
    la("la_em_system_down", EMER, [
        "Your system wouldn't let me book, and now {rel} {em_other}.",
        "The portal system keeps timing out, I'm writing here because {em_now}.",
        "The phone system put me on hold forever. {rel_cap} {em_other}.",
    ], pii=0.5),
    la("la_em_rules", EMER, [
        "I know the rules say not to use the portal for emergencies, but {em_now}.",
        "I know the instructions say don't message about emergencies, but {rel} {em_other}.",
        "Sorry to break the rules, I'm not sure who else to tell. {em_now_cap}.",
    ], pii=0.5),
    la("la_em_pretending", EMER, [
        "I've been pretending I'm okay but {si_plan}.",
        "I can't pretend anymore. {si_plan_cap}.",
        "Everyone thinks I'm fine because I pretend. I'm not. {si_plan_cap}.",
        "My {who_young} has been pretending to be fine, but just told me {od}.",
    ], si_plan=["I have the pills counted out and I'm taking them tonight",
                "I've decided to end my life this weekend and I have the means",
                "I have a plan to kill myself tonight", "I wrote goodbye notes this afternoon",
                "I'm sitting in the car with the engine running in the garage",
                "I don't think I can keep myself safe tonight"],
       who_young=["son", "daughter", "teenager", "roommate", "brother"],
       od=["they swallowed a bottle of pills an hour ago",
           "they took all of their antidepressants after school",
           "they cut their wrists and the bleeding won't stop",
           "they have a plan to end it tonight"], pii=0.4),
    la("la_em_act_fast", EMER, [
        "Please act fast, {rel} {em_other}.",
        "I'm acting as caregiver for my neighbor tonight and she just collapsed and isn't "
        "breathing normally.",
        "Need someone to act now, {em_now}.",
    ], pii=0.4),
    la("la_em_reveal", EMER, [
        "{rel_cap} just revealed {od_3p}. {od_state}",
        "The scan at urgent care revealed a bleed and now {rel} is {head_state}. Should we go "
        "straight to the ER?",
        "My {who_young} finally revealed {self_harm}.",
    ], od_3p=["taking all of the heart pills an hour ago", "swallowing a handful of oxy pills",
              "drinking antifreeze this morning", "taking a whole pack of Tylenol last night"],
       od_state=["Now dizzy with a very slow pulse.", "Now very drowsy and hard to wake.",
                 "Now vomiting and confused.", "The breathing is slow and shallow."],
       head_state=["vomiting and confused", "very sleepy and slurring words",
                   "complaining of the worst headache ever"],
       who_young=["daughter", "son", "teenager"],
       self_harm=["cutting and tonight it won't stop bleeding",
                  "taking pills tonight to end it all",
                  "having a plan and a date to kill themselves, which is today"], pii=0.4),
    la("la_em_prompt", EMER, [
        "The automated phone prompt says press 1 for emergencies but no one answers. "
        "{em_now_cap}.",
        "Your app prompted me to rate my pain. It's 10 out of 10, crushing in my chest, and I'm "
        "sweating and nauseous.",
        "The symptom checker prompted me to contact the clinic right away: {em_now}.",
    ], pii=0.4),
    la("la_em_previous_instructions", EMER, [
        "The previous instructions {doctor} gave me were to take a second nitro if the pain "
        "doesn't ease. I've taken three and the chest pressure is getting worse.",
        "Following {doctor}'s instructions I used the inhaler four times and I still can't get "
        "a breath in.",
        "Per the seizure plan instructions I waited five minutes, {rel} is still seizing.",
    ], pii=0.4),
    la("la_em_bypass", EMER, [
        "I had bypass surgery {interval} ago and now {cardiac}.",
        "{rel_cap} had heart bypass {interval} ago. Now {cardiac_3p}.",
        "After my gastric bypass I've been {gi_bleed} and I feel faint.",
    ], cardiac=["I have crushing chest pain and I'm short of breath",
                "my chest is tight, I'm sweating and my jaw aches",
                "my heart is racing and I nearly blacked out",
                "I can't breathe lying down and my lips look blue"],
       cardiac_3p=["the face is gray, sweating, and the chest is tight",
                   "there's crushing pain going into the left arm",
                   "they collapsed and are hard to wake",
                   "they're gasping for air and confused"],
       gi_bleed=["vomiting blood since this morning", "passing black tarry stools all day",
                 "throwing up what looks like coffee grounds"], pii=0.4),
    la("la_em_quote_portal", EMER, [
        "The portal says 'If this is an emergency, call 911. Do not use this system for urgent "
        "needs.' I'm sorry, {em_now}.",
        "Auto-reply said \"This system is not monitored after hours\" but I have no one else. "
        "{em_now_cap}.",
        "Your message system says reply within 2 business days, but {rel} {em_other}.",
    ], pii=0.4),
    la("la_em_terse", EMER, [
        "ignore last msg {em_short}", "forget the refill {em_short} help",
        "system wont load {em_short}", "disregard appt q, {em_short}",
        "pls act fast {em_short}", "ignore my bill question {em_short}",
    ], style="heavy", hard=True, pii=0.4),
    la("la_em_is_anyone_there", EMER, [
        "Is a human reading this?? {em_now}.",
        "If this is an automated system please get a human: {rel} {em_other}.",
        "Are you a real person? {em_now_cap}, please answer.",
        "Does this chat reach a nurse? {rel_cap} {em_other}.",
    ], pii=0.3),
    la("la_em_wrong_chat", EMER, [
        "Sorry, ignore the last message, wrong chat. But {em_now}.",
        "Forget what I wrote before, {rel} {em_other} right now.",
    ], hard=True, pii=0.3),
]

FAMILIES: list[mm.Family] = [*APPOINTMENT, *PRESCRIPTION, *SYMPTOM, *BILLING, *EMERGENCY]


# --- build --------------------------------------------------------------------------------------


def check(families: Sequence[mm.Family]) -> None:
    """Family names are unique, labels clinical, and every template, however filled, carries a
    trigger word."""
    names = [f.name for f in families]
    if len(set(names)) != len(names):
        raise ValueError("duplicate family names")
    for f in families:
        if f.label not in LABELS:
            raise ValueError(f"family {f.name}: label {f.label} is not a clinical class")
        rng = random.Random(0)
        for t in f.templates:
            for _ in range(20):
                text = mm._fill_slots(t, f, rng).lower()
                if not any(w in text for w in TRIGGER_WORDS):
                    raise ValueError(f"family {f.name}: no attack-looking word in {text!r}")


def split_families(families: Sequence[mm.Family], rng: random.Random) -> dict[str, str]:
    """Family name -> split: per label, shuffled, :data:`DEV_SHARE` to dev (at least one),
    the rest to train."""
    out: dict[str, str] = {}
    for label in LABELS:
        names = [f.name for f in families if f.label == label]
        rng.shuffle(names)
        n_dev = max(1, int(len(names) * DEV_SHARE + 0.5))
        out.update({name: "dev" if i < n_dev else "train" for i, name in enumerate(names)})
    return out


def build(seed: int = SEED, per_family: float = PER_FAMILY,
          dev_per_family: float = DEV_PER_FAMILY, *,
          families: Sequence[mm.Family] | None = None,
          checked: Callable[[Sequence[mm.Family]], None] = check,
          prefix: str = "la") -> dict[str, list[dict[str, Any]]]:
    """Every record by split. Dev is made first, from its own seeded generators, and numbered
    first (``la-00001`` ...), so ``--per-family`` changes only the training file. Other
    look-alike generators (``make_alarms.py``) pass their own ``families``, check and id
    ``prefix``."""
    families = FAMILIES if families is None else families
    checked(families)
    split_of = split_families(families, random.Random(seed + 1))
    seen: set[str] = set()
    rows: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    number = 0
    for offset, split in enumerate(("dev", "train")):
        rng = random.Random(seed + 10 * offset)
        fake = Faker("en_US")
        fake.seed_instance(seed + 10 * offset)
        per = dev_per_family if split == "dev" else per_family
        for family in (f for f in families if split_of[f.name] == split):
            rows[split] += mm.family_rows(family, max(1, round(per * family.weight)), split,
                                          rng, fake, seen)
        rng.shuffle(rows[split])
        for i, row in enumerate(rows[split]):
            number += 1
            rows[split][i] = {"id": f"{prefix}-{number:05d}", **row}
    return rows


def main(argv: Sequence[str] | None = None,
         echo: Callable[[str], object] = print) -> dict[str, Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("out_dir", nargs="?", type=Path, default=OUT_DIR)
    parser.add_argument("--per-family", type=float, default=PER_FAMILY,
                        help=f"training messages per family (default {PER_FAMILY})")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    rows = build(args.seed, args.per_family)
    paths = mm.write(args.out_dir, rows, prefix="lookalikes_")
    for split, records in rows.items():
        counts = Counter(r["label"] for r in records)
        families = len({r["family"] for r in records})
        echo(f"{paths[split]}: {len(records)} messages, {families} families; "
             + ", ".join(f"{label} {counts[label]}" for label in LABELS))
    return paths


if __name__ == "__main__":
    main()
