"""The privacy masker: every HIPAA Safe Harbor kind masked, consistent pseudonyms, exact offsets,
whole long texts, no network, and no identifier in a run's trace or logs.

The fixture notes (tests/data/clinical_notes.json) are written for these tests; every identifier
in them is a canary value (made up, unique) so that "absent from the masked text" is a plain
substring check. The masking benchmark (benchmarks/masking.py) reads the same file as its
clinical set.
"""

from __future__ import annotations

import io
import itertools
import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import shoal
from shoal.agents import AgentContext
from shoal.errors import SpecError
from shoal.policies import privacy
from shoal.policies.privacy.detector import _chunks
from shoal.policies.privacy.packs import load_pack
from shoal.policies.scope import RunScope

# tests/data/clinical_notes.json: [{"id", "text", "canaries": [[kind id, canary], ...]}]; each
# canary occurs in its note's text.
NOTES: list[dict[str, Any]] = json.loads(
    (Path(__file__).resolve().parent.parent / "data" / "clinical_notes.json").read_text(
        encoding="utf-8"))

HIPAA_KINDS = {"names", "geography", "dates", "phone", "fax", "email", "ssn", "medical_record",
               "health_plan", "account", "license", "vehicle", "device", "url", "ip",
               "biometric", "photo", "other_id"}


# --- no model needed ----------------------------------------------------------------------------


def test_fixtures_cover_all_18_kinds():
    pack = load_pack("hipaa_safe_harbor")
    assert {k.id for k in pack.kinds} == HIPAA_KINDS
    assert sorted(k.number for k in pack.kinds) == list(range(1, 19))
    covered = {kind for note in NOTES for kind, _ in note["canaries"]}
    assert covered == HIPAA_KINDS
    for note in NOTES:
        for _, canary in note["canaries"]:
            assert canary in note["text"], canary


def test_importing_the_agent_does_not_import_spacy():
    code = ("import sys, shoal.agents.masker; "
            "print('spacy' in sys.modules or 'presidio_analyzer' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_bad_pack_names_its_file_and_line(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("pack: 1\nname: x\nkinds:\n  - id: a\n    name: A\n    label: lower\n"
                   "    entities: [A]\n    colour: red\n", encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_pack(bad)
    message = str(info.value)
    assert f"{bad}:6" in message and "UPPER_SNAKE" in message
    assert f"{bad}:8" in message and "colour" in message
    with pytest.raises(SpecError, match="no built-in pack"):
        load_pack("no_such_pack")


def test_chunks_cover_the_text_and_cut_at_whitespace():
    text = " ".join(f"word{i}" for i in range(5000))
    pieces = list(_chunks(text, 1000, 100))
    assert pieces[0][0] == 0 and pieces[-1][0] + len(pieces[-1][1]) == len(text)
    for (start, piece), (nxt, _) in itertools.pairwise(pieces):
        assert text[start:start + len(piece)] == piece
        assert nxt < start + len(piece)  # overlap, no gap
        assert start + len(piece) - nxt >= 90
        assert text[start + len(piece)] == " " and text[nxt - 1] == " "


def test_vault_is_consistent_and_avoids_literal_tokens():
    vault = privacy.Vault("r")
    assert vault.pseudonym("NAME", "Ann", avoid="see [NAME_1]") == "[NAME_2]"
    assert vault.pseudonym("NAME", "Ann") == "[NAME_2]"
    assert vault.pseudonym("NAME", "Bob") == "[NAME_3]"
    assert "Ann" not in repr(vault)
    assert vault.unmask("[NAME_2] and [NAME_3] and [NAME_9]") == "Ann and Bob and [NAME_9]"
    vault.clear()
    assert len(vault) == 0 and vault.unmask("[NAME_2]") == "[NAME_2]"


def test_the_runs_scope_owns_its_vault_and_closes_it():
    scope = RunScope("run-x")
    token = scope.vault.pseudonym("NAME", "Ann")
    assert AgentContext(node="n", run_id="run-x", record_id="r", text="",
                        scope=scope).scope.vault.original(token) == "Ann"
    assert "Ann" not in repr(scope)
    scope.close()
    assert scope.vault.original(token) is None
    # A context built by hand gets a scope (and vault) of its own.
    ctx = AgentContext(node="n", run_id="r2", record_id="r2", text="")
    assert ctx.scope.run_id == "r2" and len(ctx.scope.vault) == 0


def test_mask_records_reports_bad_lines_and_runs_the_rest(tmp_path: Path, monkeypatch):
    from shoal.agents import masker

    class FakeDetector:
        def mask(self, text: str, mode: str = "pseudonymize") -> privacy.MaskResult:
            return privacy.MaskResult(masked=text.replace("Ann", "[NAME_1]"), entities=[])

    monkeypatch.setattr(privacy, "detector", lambda *a, **k: FakeDetector())
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "text": "Ann came"}\n{broken Ann\n\n{"id": "c"}\n'
                   '{"id": "d", "text": "fine"}\n', encoding="utf-8")
    out = tmp_path / "out.jsonl"
    counts = masker.mask_records(src, out)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert counts == {"records": 4, "masked": 2, "errors": 2}
    assert [r["id"] for r in rows] == ["a", "line-2", "c", "d"]
    assert rows[0]["masked"] == "[NAME_1] came"
    assert f"{src}:2" in rows[1]["error"]["message"] and "Ann" not in rows[1]["error"]["message"]
    assert f"{src}:4" in rows[2]["error"]["message"] and "'c'" in rows[2]["error"]["message"]


def test_confidence_rule():
    from shoal.agents.masker import confidence_for

    assert confidence_for([], 0.5) == 1.0
    assert confidence_for([{"score": 0.9}, {"score": 0.7}], 0.5) == 1.0
    assert confidence_for([{"score": 0.9}, {"score": 0.3}], 0.5) == 0.75


# --- real spaCy model ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def det() -> privacy.Detector:
    return privacy.detector()


@pytest.mark.slow
@pytest.mark.parametrize("note", NOTES, ids=[n["id"] for n in NOTES])
def test_no_canary_survives_masking(det: privacy.Detector, note: dict[str, Any]):
    result = det.mask(note["text"])
    leaked = [(kind, c) for kind, c in note["canaries"] if c in result.masked]
    assert leaked == []
    # Clinical words stay readable.
    for word in ("CHF", "COVID-19", "metoprolol", "triage", "Insulin pump"):
        if word in note["text"]:
            assert word in result.masked


@pytest.mark.slow
def test_same_value_same_pseudonym_different_values_different(det: privacy.Detector):
    text = ("Jane Canary-Doe was seen today. Dr. Marcus Whitfield examined Jane Canary-Doe. "
            "Call Jane Canary-Doe at (555) 867-5309.")
    vault = privacy.Vault("r1")
    result = det.mask(text, vault=vault)
    names = [e["replacement"] for e in result.entities if text[e["start"]:e["end"]]
             == "Jane Canary-Doe"]
    assert len(names) == 3 and len(set(names)) == 1
    other = next(e["replacement"] for e in result.entities
                 if text[e["start"]:e["end"]] == "Marcus Whitfield")
    assert other != names[0] and other.startswith("[NAME_")
    # Same run, second text: the same person keeps the same pseudonym.
    again = det.mask("Follow up with Jane Canary-Doe next week.", vault=vault)
    assert names[0] in again.masked


@pytest.mark.slow
@pytest.mark.parametrize("note", NOTES, ids=[n["id"] for n in NOTES])
def test_offsets_round_trip(det: privacy.Detector, note: dict[str, Any]):
    text = note["text"]
    vault = privacy.Vault("r2")
    result = det.mask(text, vault=vault)
    assert privacy.unmask(result.masked, vault) == text
    for e in result.entities:
        assert vault.original(e["replacement"]) == text[e["start"]:e["end"]]
        assert set(e) >= {"type", "start", "end", "replacement", "score"}
    ends = [(e["start"], e["end"]) for e in result.entities]
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(ends))


@pytest.mark.slow
def test_redact_and_hash_modes(det: privacy.Detector):
    text = NOTES[0]["text"]
    redacted = det.mask(text, mode="redact")
    assert "[NAME]" in redacted.masked and "[SSN]" in redacted.masked
    assert "_1]" not in redacted.masked
    assert all(c not in redacted.masked for _, c in NOTES[0]["canaries"])
    vault = privacy.Vault("r3")
    hashed = det.mask(text, mode="hash", vault=vault)
    tokens = [e["replacement"] for e in hashed.entities]
    assert all(len(t.split(":")[1]) == 9 for t in tokens)  # 8 hex + "]"
    assert all(c not in hashed.masked for _, c in NOTES[0]["canaries"])
    assert privacy.unmask(hashed.masked, vault) == text
    # Per-run salt: another run hashes the same value differently.
    other = det.mask(text, mode="hash", vault=privacy.Vault("r4"))
    assert other.entities[0]["replacement"] != hashed.entities[0]["replacement"]


@pytest.mark.slow
def test_field_labels_are_not_names(det: privacy.Detector):
    text = ("MRN: 4471902\nSSN: 123-45-6789\nDOB: 01/02/1950\nPhone: 555-867-5309\n"
            "Patient Tomasz Wierzbicki reports chest pain.")
    result = det.mask(text)
    for label in ("MRN:", "SSN:", "DOB:", "Phone:"):
        assert label in result.masked
    for e in result.entities:
        value = text[e["start"]:e["end"]]
        assert not any(lbl in value for lbl in ("MRN", "SSN", "DOB", "Phone")), e["type"]
    assert "Wierzbicki" not in result.masked


# Held-out strings for the pack's general recognizers (written for these tests; none comes from
# the benchmark's generator). Each pair is (text, values that must not survive masking).
INTERNATIONAL: list[tuple[str, list[str]]] = [
    ("Call her on +44 20 7946 0958 after six.", ["7946 0958"]),
    ("Office line +41 (0)44 668 18 00, ask for reception.", ["668 18 00"]),
    ("Reachable at 020 7946 0321 or 0612 34 56 78.", ["7946 0321", "34 56 78"]),
    ("Home phone 555 0198, mobile 0176 2849 1130.", ["555 0198", "2849 1130"]),
    ("Please forward to Kirkevegen 14, Drammen.", ["Kirkevegen 14", "Drammen"]),
    ("Billing address: Hauptstraße 27, 10115 Berlin.", ["Hauptstraße 27", "10115"]),
    ("She moved to Via Garibaldi 9 last spring.", ["Via Garibaldi 9"]),
    ("Sent to 40 Rue de la Paix, Apt. 12\nNORVILLE\nFrance 75002", ["Rue de la Paix", "Apt. 12",
                                                                      "NORVILLE", "75002"]),
    ("Lives at 18 Tolpuddle Gardens Heights, Flat 3, Exeter EX4 6PX.", ["Tolpuddle Gardens",
                                                                      "Flat 3", "EX4 6PX"]),
    ("Mail to PSC 4120, Box 3318, APO AE 09021.", ["PSC 4120", "Box 3318", "APO AE 09021"]),
    ("Ship it to K1A 0B1 today.", ["K1A 0B1"]),
    ("The family relocated from Tarbes in March.", ["Tarbes"]),
    ("Consent reviewed by Ingrid Solvang and witnessed.", ["Ingrid Solvang"]),
    ("Pt: Tomas R Lindqvist. Later Lindqvist reported dizziness.", ["Lindqvist"]),
    ("Visitors: Odalys Fenwick and Brannagh came at noon.", ["Brannagh"]),
    ("Sample drawn 2023-11-04 07:45:12.331 in clinic.", ["07:45:12"]),
    ("Card on file 4929183746502291 was declined.", ["4929183746502291"]),
    ('{"note": "Pt name: Wendeline Okafor\\nAddress: Strandvejen 88\\n Suite 4\\n Hellerup"}',
     ["Okafor", "Strandvejen 88", "Hellerup"]),
]


@pytest.mark.slow
@pytest.mark.parametrize(("text", "values"), INTERNATIONAL, ids=[f"intl-{i}" for i in
                                                           range(len(INTERNATIONAL))])
def test_general_recognizers_mask_held_out_examples(det: privacy.Detector, text: str,
                                                      values: list[str]):
    masked = det.mask(text).masked
    assert [v for v in values if v in masked] == []


@pytest.mark.slow
def test_phone_types_do_not_borrow_a_label_from_another_line(det: privacy.Detector):
    text = "+33 1 45 67 89 10 fax\n020 7946 0321 mobile\nCard 4929183746502291"
    kinds = {text[e.start:e.end]: e.kind for e in det.scan(text)}
    assert kinds["020 7946 0321"] == "phone"
    assert kinds["4929183746502291"] == "account"


@pytest.mark.slow
def test_general_recognizers_leave_clinical_text_alone(det: privacy.Detector):
    text = ("Started metformin 1000 mg and vitamin D 2000 units daily. In 2019 she had "
            "Hepatitis B Vaccine x3. BP 128/82, HR 76. Stage 2 disease, Factor V Leiden negative.")
    masked = det.mask(text).masked
    for kept in ("1000 mg", "2000 units", "2019", "Hepatitis B Vaccine", "128/82",
                 "Factor V Leiden"):
        assert kept in masked, kept


def _token_rule_hits(det: privacy.Detector, text: str) -> list[tuple[str, str]]:
    """What shoal's own rules found (the name rules read from the analyzer's spaCy doc, the
    address rules, the pack's patterns), not spaCy's statistical model."""
    results = det._analyzer.analyze(text=text, language="en", entities=det._requested)
    return [(text[r.start:r.end], r.entity_type) for r in results
            if (r.recognition_metadata or {}).get("recognizer_name", "").startswith("shoal_")]


# (text, value the token rules must find and masking must remove). Written for these tests.
TOKEN_RULES: list[tuple[str, str]] = [
    # A single proper name opening a sentence, before a verb.
    ("Ilse had called the clinic twice.", "Ilse"),
    # A proper name addressed before a comma, then a modal or pronoun.
    ("Thanks. Bertrand, could you check the chart?", "Bertrand"),
    ("Renske, you forgot your coat.", "Renske"),
    # Dialogue speaker labels at a line start.
    ("Wren: Did you sign it?\nTobiah: Not yet, sorry.", "Tobiah"),
    ("Halvard: Is it raining?\nSolveig: Only a little.", "Solveig"),
    # A town alone on its line above a country line.
    ("Tomas Brandt\nKelsby\nNorway", "Kelsby"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("text", "value"), TOKEN_RULES,
                         ids=[f"token-{i}" for i in range(len(TOKEN_RULES))])
def test_token_rules_find_names_the_model_misses(det: privacy.Detector, text: str, value: str):
    assert value in [v for v, _ in _token_rule_hits(det, text)]
    assert value not in det.mask(text).masked


PORTAL_NAMES: list[tuple[str, str, str]] = [
    # (message, the name, a word that must stay)
    ("Hi, Rosalind Featherstonehaugh here. I need to move my appointment.",
     "Featherstonehaugh", "appointment"),
    ("Hello, this is Ann Lee. I'm worried about my cough.", "Ann Lee", "worried"),
    ("My name is Ike Obiora and my refill ran out.", "Ike Obiora", "refill"),
    ("The bill is wrong. - Ottoline Marchbanks", "Marchbanks", "bill"),
    ("Please call me back. Thanks, Ada Quist", "Ada Quist", "Please"),
    ("Hi Doctor, I need help with my inhaler.", "", "Doctor"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("text", "name", "kept"), PORTAL_NAMES,
                         ids=[f"portal-{i}" for i in range(len(PORTAL_NAMES))])
def test_names_in_greetings_and_signatures_are_masked(det: privacy.Detector, text: str,
                                                      name: str, kept: str):
    masked = det.mask(text).masked
    if name:
        assert name not in masked and "[NAME_1]" in masked
    assert kept in masked


@pytest.mark.slow
def test_place_in_an_institution_name_is_masked(det: privacy.Detector):
    masked = det.mask("She graduated from the University of Tarrowby in 2010. "
                      "He trained at the College of Nursing.").masked
    assert "Tarrowby" not in masked
    assert "University of" in masked and "College of Nursing" in masked


@pytest.mark.slow
def test_six_digit_phone_needs_phone_context(det: privacy.Detector):
    text = "Reach me on my mobile 44 81 27 after six."
    kinds = {text[e.start:e.end]: e.kind for e in det.scan(text)}
    assert kinds.get("44 81 27") == "phone"
    assert "phone" not in {e.kind for e in det.scan("Sutures 12 34 56 were placed.")}


@pytest.mark.slow
def test_clinical_headers_and_sentences_are_not_names(det: privacy.Detector):
    headers = ("Plan: Continue current regimen.\nImpression: Improving.\nAssessment: Stable.\n"
               "HPI: Cough for a week.\nMedications: See list.\nDisposition: Home.\n"
               "Subjective: Patient says she feels better.\nObjective: Afebrile.")
    assert _token_rule_hits(det, headers) == []
    assert det.mask(headers).masked == headers
    clinical = ("Troponin is negative. Patient is stable. Pain improved. Cellulitis has "
                "resolved. Nausea, vomiting and diarrhea resolved.")
    assert _token_rule_hits(det, clinical) == []
    assert det.mask(clinical).masked == clinical


@pytest.mark.slow
def test_one_megabyte_text_is_masked_whole(det: privacy.Detector):
    filler = "The patient reports mild fatigue and was advised to rest and hydrate. "
    base = (filler * (1_000_000 // len(filler) + 2))[:1_000_000]
    # Put identifiers across the cut points the chunker will choose for the filler text.
    cuts = [start + len(piece) for start, piece in
            _chunks(base, det.chunk_chars, det.overlap)][:-1]
    canaries = ["123-45-6789", "jane.canary@example.org", "(555) 867-5309", "MRN: 99887766"]
    pieces, cursor, placed = [], 0, []
    for i, cut in enumerate(cuts[::25]):
        canary = canaries[i % len(canaries)]
        at = base.rfind(" ", 0, cut - len(canary) // 2) + 1
        pieces.append(base[cursor:at])
        pieces.append(canary + " ")
        placed.append(canary.removeprefix("MRN: "))
        cursor = at
    pieces.append(base[cursor:])
    text = "".join(pieces)
    assert len(text) >= 1_000_000 and len(placed) >= 8
    result = det.mask(text)
    assert result.masked.count("[SSN_1]") == placed.count("123-45-6789")
    for canary in set(placed):
        assert canary not in result.masked
    assert result.masked.endswith(text[-40:])  # nothing truncated


@pytest.mark.slow
def test_no_network_while_building_and_scanning(monkeypatch):
    from shoal.models import pool

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    for key in pool.loaded():
        if isinstance(key, tuple) and key[0] in ("spacy-nlp-engine", "presidio-analyzer",
                                                  "shoal-detector"):
            pool.forget(key)
    fresh = privacy.Detector()
    result = fresh.mask("Email jane.canary@example.org or visit https://example.org/x today.")
    assert "jane.canary@example.org" not in result.masked


@pytest.mark.slow
def test_masker_node_in_a_graph_leaks_nothing(log_stream: io.StringIO):
    text = NOTES[0]["text"]
    spec = shoal.GraphSpec(name="mask-only",
                           nodes={"mask": shoal.NodeSpec(agent="privacy_masker")})
    result = shoal.Graph(spec).run(text, id="rec-mask")
    assert result.status == "ok", result.error
    output = result.output
    assert isinstance(output, dict) and "[NAME_1]" in output["masked"]
    trace = json.dumps([n.model_dump() for n in result.nodes])
    logs = log_stream.getvalue()
    for _, canary in NOTES[0]["canaries"]:
        assert canary not in output["masked"]
        assert canary not in trace
        assert canary not in logs
        assert canary not in json.dumps(output["entities"])
    node = result.nodes[0]
    assert node.agent == "privacy_masker" and 0.5 <= node.confidence <= 1.0

