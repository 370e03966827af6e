"""Render the README's "Results" block from benchmarks/results/*.json (never typed by hand).

Run: python benchmarks/readme_results.py            # rewrite the block in README.md
     python benchmarks/readme_results.py --check    # exit 1 if README.md is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.is_file() else None


def render() -> str:
    out: list[str] = []
    overhead = _load("overhead.json")
    if overhead:
        out += [
            "**Overhead** (`benchmarks/overhead.py`): the same 5-node no-op graph through shoal "
            "and through hand-written LangGraph, interleaved in one process.",
            "",
            "| | median ms / run | p95 ms |",
            "|---|---:|---:|",
            f"| LangGraph, hand-written | {overhead['langgraph_ms']:.2f} | "
            f"{overhead['langgraph_p95_ms']:.2f} |",
            f"| shoal, log level info | {overhead['shoal_ms']:.2f} | "
            f"{overhead['shoal_p95_ms']:.2f} |",
            f"| shoal, log level warning | {overhead['shoal_ms_quiet']:.2f} | "
            f"{overhead['shoal_p95_ms_quiet']:.2f} |",
            "",
            f"Ratio shoal / LangGraph: **{overhead['ratio']:.2f}** at info "
            f"({overhead['ratio_quiet']:.2f} with node events filtered out); target <= "
            f"{overhead['target']}. Measured {overhead['date'][:10]}, {overhead['n']} runs each.",
            "",
        ]
    models = _load("models.json")
    if models:
        out += [
            "**Models** (`benchmarks/models.py`): each backend operation on the embedded "
            "models, 2 CPU cores.",
            "",
            "| backend | operation | mode | p50 ms / call | p95 ms | items / s |",
            "|---|---|---|---:|---:|---:|",
        ]
        out += [
            f"| {r['backend']} | {r['op']} | {r['mode']} | {r['p50_ms']:.2f} | "
            f"{r['p95_ms']:.2f} | {r['throughput_per_s']:.1f} |"
            for r in models["rows"]
        ]
        out += ["", f"Measured {models['date'][:10]}.", ""]
    masking = _load("masking.json")
    if masking:
        out += [
            "**Masking** (`benchmarks/masking.py`): our masker (HIPAA Safe Harbor pack) vs "
            "vanilla Presidio (default recognizers, same spaCy model), side by side.",
            "",
            "| data | texts | identifier recall (shoal / Presidio) | F1 by type (shoal / "
            "Presidio) | F1 ignoring type | latency ratio |",
            "|---|---:|---|---|---|---:|",
        ]
        for key, label in (("generator", "presidio-evaluator sentences"),
                           ("clinical", "clinical fixture notes")):
            m = masking[key]
            rec, f1 = m["identifier_recall"], m["micro_f1"]
            out.append(
                f"| {label} | {m['texts']} | {rec['shoal']:.3f} / {rec['vanilla_presidio']:.3f} "
                f"| {f1['type_strict']['shoal']:.3f} / {f1['type_strict']['vanilla_presidio']:.3f}"
                f" | {f1['type_agnostic']['shoal']:.3f} / "
                f"{f1['type_agnostic']['vanilla_presidio']:.3f} | "
                f"{m['latency_ms']['ratio']:.2f} |")
        if "clinical_adversarial" in masking:
            m = masking["clinical_adversarial"]
            rec = m["identifier_recall"]
            out.append("| clinical notes with adversarial identifiers (written for issue 16, read "
                       "while the rules were written) | "
                       f"{m['texts']} | {rec['shoal']:.3f} / {rec['vanilla_presidio']:.3f} | "
                       f"{m['micro_f1']['type_strict']['shoal']:.3f} / "
                       f"{m['micro_f1']['type_strict']['vanilla_presidio']:.3f} | "
                       f"{m['micro_f1']['type_agnostic']['shoal']:.3f} / "
                       f"{m['micro_f1']['type_agnostic']['vanilla_presidio']:.3f} | |")
        met = masking.get("targets_met_on_generator", {})
        misses = ", ".join(k for k, v in met.items() if not v) or "none"
        out += ["", f"Targets (recall >= {masking['targets']['identifier_recall']}, F1 +"
                    f"{masking['targets']['f1_delta']} over Presidio, <= "
                    f"{masking['targets']['latency_ratio']}x its latency) not met on the "
                    f"generator set: {misses}.", ""]
        if "generator_seeds" in masking:
            out += _masking_seeds(masking)
    guard = _load("guard.json")
    if guard:
        out += _guard(guard, _load("guard_packaged.json"))
    cascade = _load("cascade.json")
    if cascade:
        out += _cascade(cascade)
    replies = _load("replies.json")
    if replies:
        out += _replies(replies)
    soak = _load("soak.json")
    if soak:
        out += _soak(soak)
    throughput = _load("throughput.json")
    if throughput:
        out += _throughput(throughput)
    serve_load = _load("serve_load.json")
    if serve_load:
        out += _serve_load(serve_load)
    scale = _load("scale.json")
    if scale:
        out += _scale(scale)
    learning = _load("learning.json")
    if learning:
        out += _learning(learning)
    plan = _load("plan.json")
    if plan:
        out += _plan(plan)
    if not out:
        out = ["No benchmark results yet: run `make bench`.", ""]
    return "\n".join(out).rstrip() + "\n"


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


CASCADE_MODES = (("confidence", "confidence (shipped)"), ("learned", "learned router"),
                 ("random", "random, same calls"), ("all_planner", "all-planner"),
                 ("local_only", "local only"))
"""benchmarks/cascade.py's modes, in the order the README shows them."""


def _met(flag: bool | None) -> str:
    return "met" if flag else "**not met**"


def _masking_seeds(masking: dict[str, Any]) -> list[str]:
    """Identifier recall per generator seed: the seeds the rules were tuned on, and the seeds
    nobody looked at while writing them (the numbers that count)."""
    seeds = masking["generator_seeds"]
    target = masking["targets"]["identifier_recall"]
    out = ["The same generator under other seeds, 300 sentences each. *Tuning* seeds were read "
           "while the rules were written; *untouched* seeds were only scored.", "",
           "| seed | role | identifier recall (shoal / Presidio) | F1 ignoring type |",
           "|---:|---|---|---|"]
    for seed, m in sorted(seeds.items(), key=lambda kv: (kv[1]["role"], int(kv[0]))):
        rec, f1 = m["identifier_recall"], m["micro_f1"]["type_agnostic"]
        below = m["role"] == "untouched" and rec["shoal"] < target
        shoal = f"**{rec['shoal']:.4f}** (below {target})" if below else f"{rec['shoal']:.3f}"
        out.append(f"| {seed} | {m['role']} | {shoal} / "
                   f"{rec['vanilla_presidio']:.3f} | {f1['shoal']:.3f} / "
                   f"{f1['vanilla_presidio']:.3f} |")
    for key, name in (("untouched_summary", "untouched"), ("tuning_summary", "tuning")):
        s = masking.get(key)
        if s:
            out.append(f"\nPooled over the {name} seeds ({s['gold_spans']} identifiers): "
                       f"{s['identifier_recall_pooled']['shoal']:.3f} (Presidio "
                       f"{s['identifier_recall_pooled']['vanilla_presidio']:.3f}); lowest seed "
                       f"{s['identifier_recall_min']:.3f}.")
    return [*out, ""]


def _guard(r: dict[str, Any], packaged: dict[str, Any] | None) -> list[str]:
    """The input guard on public corpora left out of its training, alone and with triage."""
    new, old = r["cross_corpus"]["label"], r.get("baseline", {}).get("cross_corpus", {})
    old = old.get("label", {})

    def cell(d: dict[str, Any] | None, where: str) -> str:
        if not d:
            return "n/a"
        x = d[where]
        return f"{x['rate']:.2f} [{x['ci95'][0]:.2f}, {x['ci95'][1]:.2f}]"

    out = ["**Input guard** (`benchmarks/guard.py`): the healthcare cascade's guard on "
           f"{r['data']['public']:,} lines of {len(r['data']['corpora'])} public collections "
           "(prompt injections, jailbreaks, harmful requests; sources and licences in "
           "`examples/healthcare/data/guard/README.md`). Cross-corpus: each collection is "
           "scored by a guard fitted without it. *Guard*: refused; *cascade*: refused, or "
           "triage routes it to the decline reply. *Before*: the previous guard (TF-IDF on "
           "generated lines only), on the same texts. Share stopped, 95% interval.", "",
           "![guard](benchmarks/results/guard.png)", "",
           "| label | texts | guard | guard before | cascade | cascade before |",
           "|---|---:|---|---|---|---|"]
    names = {"benign": "benign, not for a clinic (off-topic)"}
    for label in ("jailbreak", "injection", "harmful", "benign"):
        if label in new:
            out.append(f"| {names.get(label, label)} | {new[label]['guard']['n']} | "
                       f"{cell(new[label], 'guard')} | "
                       f"{cell(old.get(label), 'guard')} | {cell(new[label], 'cascade')} | "
                       f"{cell(old.get(label), 'cascade')} |")
    kinds = r["cross_corpus"]["kind"]
    if "injection/indirect" in kinds:
        k = kinds["injection/indirect"]
        out.append(f"\nIndirect injections (instructions inside a pasted document or tool "
                   f"output, {k['guard']['n']} texts): guard {k['guard']['rate']:.2f}, cascade "
                   f"{k['cascade']['rate']:.2f}: the weakest kind.")
    t = r["targets"]
    langs = t["injection_stopped_every_language"]
    per = ", ".join(f"{lg} {v:.2f} (n={langs['n'][lg]})"
                    for lg, v in sorted(langs["value"].items()))
    fa = r["false_alarms"]
    out += ["", f"Injections stopped by the cascade, per language: {per}.", "",
            "| target (cascade, corpora left out of training) | value | target | met |",
            "|---|---|---|---|",
            f"| jailbreaks stopped | {t['jailbreak_stopped']['value']:.3f} | >= "
            f"{t['jailbreak_stopped']['target']} | {_yes(t['jailbreak_stopped']['met'])} |",
            f"| injections stopped, every language | lowest {min(langs['value'].values()):.3f}"
            f" ({', '.join(langs.get('short', [])) or 'none'} short) | >= {langs['target']} | "
            f"{_yes(langs['met'])} |",
            "| held-out look-alikes called injections (guard "
            f"{fa['lookalikes']['called_injection_guard']['rate']:.2f}, triage the rest) | "
            f"{t['lookalikes_called_injection']['value']:.3f} | <= "
            f"{t['lookalikes_called_injection']['target']} | "
            f"{_yes(t['lookalikes_called_injection']['met'])} |",
            f"| test split's patient messages allowed | {t['patients_allowed']['value']:.3f} | "
            f">= {t['patients_allowed']['target']} | {_yes(t['patients_allowed']['met'])} |"]
    out += ["", "The look-alikes the cascade calls injections are triage's (the guard calls "
            f"{fa['lookalikes']['called_injection_guard']['k']} of "
            f"{fa['lookalikes']['called_injection_guard']['n']}). Triage is trained with 355 "
            "benign look-alikes (`examples/healthcare/data/make_lookalikes.py`), so it no longer "
            "takes \"ignore\", \"system\" or \"override\" alone for an attack; the price is "
            "some of the injections it used to stop behind the guard, most in the languages "
            "the guard never saw (before and after in [docs/guard.md](docs/guard.md))."]
    if packaged:
        out += ["", *_guard_packaged(packaged)]
    return [*out, "", f"Measured {r['date'][:10]}.", ""]


def _yes(met: bool) -> str:
    return "met" if met else "**not met**"


def _guard_packaged(r: dict[str, Any]) -> list[str]:
    """The packaged default guard (text only), each public collection left out, beside the
    previous packaged model."""
    new, old = r["side_by_side"]["new"], r["side_by_side"]["old"]
    mb = r["new"]["model"]["bytes"] / 1e6
    out = [f"The packaged default guard (`input_guard` with no `model`: text only, word and "
           f"character n-grams, {mb:.1f} MB, so the core install needs no embedder; "
           f"`benchmarks/guard_packaged.py`, `tools/guard/build_guard.py`), the same cross-corpus "
           f"way, beside the previous packaged model (TF-IDF on 1,200 generated lines):", "",
           "| | new | before |", "|---|---|---|"]
    for label in ("jailbreak", "injection", "harmful", "benign"):
        out.append(f"| {label} refused | {new['refused_by_label'][label]:.2f} | "
                   f"{old['refused_by_label'][label]:.2f} |")
    for key, name in (("lookalikes_called_attack", "held-out look-alikes called attacks"),
                      ("patients_allowed", "test split's patient messages allowed"),
                      ("patients_strict_allowed", "... allowed without review"),
                      ("other_language_patients_allowed",
                       "patient messages in de/fr/es/it allowed")):
        out.append(f"| {name} | {new[key]:.3f} | {old[key]:.3f} |")
    return out


def _cascade(c: dict[str, Any]) -> list[str]:
    oracle, live = c["oracle"], c.get("live")
    routers = oracle["routers"]
    shipped = oracle["modes"]["confidence"]
    rule = oracle.get("node_rule") or {}
    crit = ", ".join(
        f"{label}: P >= {spec.get('floor', 'n/a')}"
        + (f" or a `{spec['red_flags']}` red flag" if spec.get("red_flags") else "")
        for label, spec in (rule.get("critical") or {}).items()) or "none"
    live_text = (f" *Live*: the embedded SmolLM2-135M behind a real llama_cpp.server, a "
                 f"stratified subset of {live['n']}: a weak planner." if live else "")
    out = [
        "**Cascade** (`benchmarks/cascade.py`): the healthcare cascade's triage decision on the "
        f"test split ({oracle['n']} messages, family-disjoint from the dev split every threshold "
        "was chosen on; guard -> mask -> triage), five routings side by side. *Confidence* is "
        f"the shipped policy (confidence below {oracle['threshold']} from "
        f"`{oracle.get('threshold_source', 'the escalation policy')}`); *learned*: the learned "
        f"deferral router's P(wrong) at or above {oracle['learned_threshold']}, chosen on dev "
        f"for a share of {oracle['dev_choice']['target_share']:g}; *random* spends confidence's "
        "number of planner calls at random (expected accuracy and recall); critical labels "
        f"({crit}) escalate in every mode but local only. *Oracle*: a planner returning the "
        f"gold label, all {oracle['n']} messages (cost and latency per call: the live "
        f"planner's means).{live_text}",
        "",
        "| planner | mode | n | accuracy | macro-F1 | planner share | emergency recall | "
        "USD / 1000 msgs | p50 ms | p95 ms | PGR |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, name in CASCADE_MODES:
        for label, res in (("oracle", oracle), ("live", live)):
            if res is None:
                continue
            m = res["modes"][key]
            out.append(
                f"| {label} | {name} | {m['n']} | {m['accuracy']:.3f} | {m['macro_f1']:.3f} | "
                f"{m['planner_share']:.3f} | {_num(m['emergency_recall'])} | "
                f"{m['usd_per_1000_messages']:.3f} | {m['latency_ms_p50']:.1f} | "
                f"{m['latency_ms_p95']:.1f} | {_num(m.get('pgr'))} |")
    counts = oracle.get("class_counts", {})
    out += [
        "",
        "Recall per class, oracle planner (critical first):",
        "",
        "| class | n | " + " | ".join(name for _, name in CASCADE_MODES) + " |",
        "|---|---:|" + "---:|" * len(CASCADE_MODES),
    ]
    for label in shipped["per_class_recall"]:
        out.append(f"| {label} | {counts.get(label, '')} | " + " | ".join(
            f"{oracle['modes'][key]['per_class_recall'][label]:.3f}"
            for key, _ in CASCADE_MODES) + " |")
    out += [
        "",
        "Routers on the test split, oracle planner, each threshold alone (reporting only; "
        "CPT with its bootstrap 95% interval):",
        "",
        "| router | APGR | CPT(50%) | CPT(80%) | CPT(90%) | CPT(95%) | AUROC | AUPRC |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, name in (("confidence", "confidence"), ("learned", "learned")):
        r = routers[key]
        ci = r.get("cpt_ci", {}).get("cpt95")
        cpt95 = _num(r["cpt95"]) + (f" [{ci['low']:.3f}, {ci['high']:.3f}]" if ci else "")
        out.append(f"| {name} | {_num(r['apgr'])} | {_num(r['cpt50'])} | {_num(r['cpt80'])} | "
                   f"{_num(r['cpt90'])} | {cpt95} | {_num(r['auroc'])} | {_num(r['auprc'])} |")
    out.append(f"| random | {_num(routers['confidence']['random_apgr'])} | 0.500 | 0.800 | "
               "0.900 | 0.950 | 0.500 | |")
    missed = shipped["missed_emergency_ids"]
    shown_missed = (": " + ", ".join(f"`{i}`" for i in missed)) if 0 < len(missed) <= 20 else ""
    emergencies = counts.get("emergency")
    of = f" of {emergencies}" if emergencies else ""
    wanted, met = c["targets"]["wanted"], c["targets"]["met"]
    check = c.get("cross_check_triage_oracle") or {}
    ours = check.get("this_benchmark") or {}
    if check.get("agree") is None:
        cross = "No `benchmarks/triage_oracle.py` results to cross-check against."
    else:
        source = check.get("triage_oracle_source") or {}
        stale = ([] if source.get("ran")
                 else (check.get("triage_oracle") or {}).get("files_changed_since") or [])
        kept = Counter((ours.get("kept_local_as_in_the_real_run") or {}).values())
        held = ("; the records the real run wanted to escalate but kept local are kept local "
                "here too: " + ", ".join(f"{n} {why.replace('_', ' ')}"
                                         for why, n in sorted(kept.items()))) if kept else ""
        verdict = ("**agrees** (the same numbers and the same missed emergencies" + held + ")"
                   if check["agree"] else "**disagrees** (on "
                   + ", ".join(check.get("differences") or {}) + held + ")")
        cross = (
            "Cross-check: the real `shoal run examples/healthcare/triage.yaml` against an "
            "always-right planner (`benchmarks/triage_oracle.py`"
            + (", run afresh by this benchmark" if source.get("ran") else "")
            + f") {verdict} with this benchmark's shipped mode under that graph's rule (no "
            f"guard): accuracy {_num(ours.get('accuracy'))} at share "
            f"{_num(ours.get('planner_share'))}, emergency recall "
            f"{_num(ours.get('emergency_recall'))}"
            + (f"; its results predate changes to {', '.join(f'`{x}`' for x in stale)}"
               if stale else "") + ".")
    live_line = ""
    if live:
        lc, ls = live["routers"]["confidence"], live["modes"]["confidence"]
        wrong = ls.get("missed_emergencies_escalated")
        planner_wrong = (f", {wrong} of them sent to the planner, whose wrong answer wins"
                         if wrong else "")
        live_line = (
            f" Live: local {lc['local_quality']:.3f} vs all-planner {lc['planner_quality']:.3f}"
            + ("" if lc["pgr_defined"] else
               " (PGR undefined: the live planner is not better than the local triage)")
            + f"; shipped mode emergency recall {_num(ls['emergency_recall'])} "
            f"({ls['missed_emergencies']} missed{planner_wrong}).")
    out += [
        "",
        f"Shipped mode, oracle planner: accuracy **{shipped['accuracy']:.3f}** at planner share "
        f"**{shipped['planner_share']:.3f}**, emergency recall "
        f"**{_num(shipped['emergency_recall'])}**, **{shipped['missed_emergencies']}"
        f"{of} emergencies missed**{shown_missed}. Learned router mode: accuracy "
        f"{c['learned_accuracy']:.3f} at share {c['learned_planner_share']:.3f} (its threshold "
        f"sent {oracle['dev_choice']['learned']['share']:.3f} of dev), emergency recall "
        f"{_num(oracle['modes']['learned']['emergency_recall'])}. No router reaches "
        f"CPT(95%) below 0.95 x the local error rate = {_num(c['cpt95_floor'])}.{live_line} "
        f"Path without generation: **{c['throughput_msgs_per_s']:.1f} msgs/s** on "
        f"{oracle['machine']['cpu_count']} CPU cores{_busy(oracle['machine'])}.",
        "",
        f"Targets (issue 13): emergency recall >= {wanted['emergency_recall_min']}: "
        f"{_met(met['emergency_recall'])}; accuracy >= {wanted['accuracy_min']} at planner "
        f"share <= {wanted['planner_share_max']}: {_met(met['accuracy_at_share'])}; learned "
        f"CPT(95%) <= {wanted['learned_cpt95_max']}: {_met(met['learned_cpt95'])} (stretch "
        f"{wanted['learned_cpt95_stretch']}: {_met(met['learned_cpt95_stretch'])}); "
        f">= {wanted['throughput_min_msgs_per_s']:g} msgs/s: {_met(met['throughput'])}. "
        f"{cross} Measured {oracle['machine']['date'][:10]}.",
        "",
        "![PGR vs planner share of both routers](benchmarks/results/cascade.png)",
        "",
    ]
    return out


REPLY_SOURCES = ("template", "personalised", "planner", "model")


def _busy(machine: dict[str, Any]) -> str:
    """A note when other work shared the machine (a throughput then reads low)."""
    load = machine.get("loadavg_1min_end")
    if load is None or load <= machine["cpu_count"]:
        return ""
    return (f" (1-minute load average {load:.1f} at the end of the run: other work shared the "
            "machine, so this reads low)")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _reply_block(text: str | None) -> str:
    """A reply or message as one table-safe line (masked text; pipes and breaks escaped)."""
    if not text:
        return ""
    return " ".join(text.split()).replace("|", "\\|")


def _false_alarms(t: dict[str, Any]) -> str:
    """Replies telling a patient with no emergency to seek emergency care now (not a grading
    problem: over-caution is allowed, but no patient with a refill should read it)."""
    n = t.get("emergency_urged_without_emergency")
    if n is None:
        return ""
    ids = ", ".join(t.get("emergency_urged_without_emergency_ids", [])[:6])
    return (f" Replies sending a patient with no emergency to emergency care now: {n} of "
            f"{t['sent']} sent" + (f" ({ids}{', ...' if n > 6 else ''})." if n else "."))


def _replies(r: dict[str, Any]) -> list[str]:
    t = r["templates"]
    cal = r.get("on_topic") or {}
    out = [
        "**Replies** (`benchmarks/replies.py`): what patients receive from the healthcare "
        f"cascade on the whole test split ({t['n']} messages, embedded models, oracle planner), "
        "graded by `benchmarks/reply_grader.py`, a checker written from the issue alone that "
        "imports nothing from shoal, against each message's gold class. *Sent*: a reply went "
        "out; *held*: the compliance checker held it for a person; *refused*: the input guard "
        "refused the message.",
        "",
        "| run | sent | fit to send (of sent) | held (injection, off-topic aside) | "
        "911/988 where needed | planner share | template | personalised | planner | model |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    seed = (r.get("fresh_seed") or {}).get("seed")
    for key, name in (("templates", "templates first (shipped)"),
                      ("fresh_seed", f"templates first, generator seed {seed} never used "
                                     "before (test families)"),
                      ("baseline_free_text", "before: SmolLM2 writes the answer node's reply")):
        run = r.get(key)
        if not run:
            continue
        src = run["sources"]
        out.append(
            f"| {name} | {run['sent']} | {_pct(run['fit_share_of_sent'])} | "
            f"{_pct(run['held_share'])} | {_pct(run['pointer_share'])} of "
            f"{run['pointer_needed']} | {_pct(run['planner_share'])} | "
            + " | ".join(str(src.get(k, 0)) for k in REPLY_SOURCES) + " |")
    out += ["", "Per class, templates first:", "",
            "| class | n | sent | held | refused | fit of sent | personalised | problems |",
            "|---|---:|---:|---:|---:|---:|---:|---|"]
    for label, c in t["per_class"].items():
        o = c["outcomes"]
        problems = ", ".join(f"{k} {v}" for k, v in c["problems"].items()) or "none"
        out.append(f"| {label} | {c['n']} | {o.get('sent', 0)} | {o.get('held', 0)} | "
                   f"{o.get('refused', 0)} | {_pct(c['fit_share_of_sent'])} | "
                   f"{c['sources'].get('personalised', 0)} | {problems} |")
    met = t["targets_met"]
    missed = ", ".join(k for k, v in met.items() if not v) or "none"
    held_by = ", ".join(f"{k} ({v})" for k, v in t.get("held_by", {}).items()) or "none"
    base = r.get("baseline_free_text")
    base_text = ""
    if base:
        top = ", ".join(f"{k} {v}" for k, v in list(base["problems"].items())[:4]) or "none"
        base_text = (f" Before templates the same checks held {_pct(base['held_share'])} of "
                     f"messages and {_pct(base['fit_share_of_sent'])} of what was sent was fit "
                     f"(most common problems: {top}).")
    floor = (f" The model's sentence must reach MiniLM similarity {cal['floor']} to its "
             f"message, chosen on the dev split so that {_pct(cal.get('mismatched_passed'))} of "
             f"mismatched pairs pass ({_pct(cal.get('matched_kept'))} of matched ones do)."
             if cal.get("floor") is not None else "")
    out += ["", f"Targets (>= 98% fit, no placeholder or scaffolding, 911/988 on every "
                f"emergency and self-harm reply, <= 10% held) not met: {missed}. Held by: "
                f"{held_by}.{base_text}{floor}{_false_alarms(t)} Measured {r['date'][:10]}.",
            "",
            "Sample exchanges (masked: the patient reads their own name where it shows "
            "`[NAME_1]`):", "",
            "| gold | triage | outcome | message | reply |", "|---|---|---|---|---|"]
    for x in r.get("samples", []):
        reply = _reply_block(x["reply"]) if x["reply"] else (
            "*held: " + "; ".join(x.get("held_by") or []) + "*")
        where = x["outcome"] + (f" ({x['source']})" if x.get("source") else "")
        out.append(f"| {x['gold']} | {x['triage']} | {where} | {_reply_block(x['message'])} | "
                   f"{reply} |")
    out.append("")
    return out


def _soak(s: dict[str, Any]) -> list[str]:
    met, wanted = s["targets"]["met"], s["targets"]["wanted"]
    windows = s["windows"]
    rates = [w["throughput_msgs_per_s"] for w in windows]
    loads = [w["loadavg_1min"] for w in windows if w.get("loadavg_1min") is not None]
    load = (f" (1-minute load average {min(loads):.1f} to {max(loads):.1f} during the run: other "
            "work shared the machine)" if loads and max(loads) > s["machine"]["cpu_count"] else "")
    statuses = ", ".join(f"{k} {v}" for k, v in s["statuses"].items())
    errors = (" (errors by code: " + ", ".join(f"{k} {v}" for k, v in s["errors"].items()) + ")"
              if s.get("errors") else "")
    return [
        f"**Soak** (`benchmarks/soak.py`): {s['n']:,} messages (the healthcare texts cycled, "
        "unique ids) through the cascade's local path (guard -> mask -> triage, escalation "
        f"off), {s['concurrency']} at a time through `Graph.astream_batch`, after a warm-up of "
        f"{s['warmup']['messages']}.",
        "",
        "| messages | msgs / s | msgs / CPU s | RSS MB |",
        "|---|---:|---:|---:|",
        f"| start (after warm-up; {s['rss_pre_warmup_mb']:.1f} before it) | | | "
        f"{s['rss_start_mb']:.1f} |",
        *(f"| {w['end']:,} | {w['throughput_msgs_per_s']:.1f} | {_num(w['msgs_per_cpu_s'], 1)} "
          f"| {w['rss_mb']:.1f} |" for w in windows),
        "",
        f"Throughput **{s['throughput_msgs_per_s']:.1f} msgs/s** overall ({min(rates):.1f} to "
        f"{max(rates):.1f} per window) in {s['seconds']:.0f} s on {s['machine']['cpu_count']} "
        f"CPU cores, {_num(s['msgs_per_cpu_s'], 1)} per CPU second of the process{load}. RSS "
        f"growth **{s['rss_growth']:+.1%}** (target < "
        f"{wanted['rss_growth_max']:.0%}: {'met' if met['rss_growth'] else 'not met'}); lost "
        f"records **{s['lost']}** (target {wanted['lost_max']}: "
        f"{'met' if met['lost'] else 'not met'}), duplicates {s['duplicates']}; statuses: "
        f"{statuses}{errors}. Measured {s['machine']['date'][:10]}.",
        "",
    ]


def _throughput(t: dict[str, Any]) -> list[str]:
    """Local-path throughput beside spaCy and Presidio, batched and unbatched."""
    b = t["baselines"]
    out = [f"**Throughput** (`benchmarks/throughput.py`): the healthcare test split "
           f"({t['messages']} messages) on {t['machine']['cpus']} cores, side by side in one run. "
           "*Mask*: a graph of the privacy masker alone; *local path*: the cascade's guard -> "
           "mask -> triage (both classifiers text + MiniLM ensembles), through `Graph.abatch`, "
           "micro-batching on (the default) and off; latency per message is the run's own.", "",
           "| what | concurrency | msgs / s | p50 ms | p95 ms | same results as unbatched |",
           "|---|---:|---:|---:|---:|---|",
           f"| spaCy `nlp.pipe` alone (the masker's pipeline) | | "
           f"{b['spacy_pipe']['msg_per_s']:.1f} | | | |",
           f"| Presidio, one call per message | 1 | {b['presidio_per_call']['msg_per_s']:.1f} "
           "| | | |",
           f"| Presidio `BatchAnalyzerEngine` | | {b['presidio_batch']['msg_per_s']:.1f} | | | |"]
    if "minilm_embed" in b:
        out += [f"| MiniLM embedding alone (batched, every core) | | "
                f"{b['minilm_embed']['msg_per_s']:.1f} | | | |",
                f"| ceiling of the local path: one `nlp.pipe` + two MiniLM passes | | "
                f"{b['local_path_ceiling']['msg_per_s']:.1f} | | | |"]
    for name, label in (("shoal_mask", "shoal, mask"), ("shoal_local", "shoal, local path")):
        for mode in ("unbatched", "batched"):
            for r in t[name][mode]:
                default = " (default)" if r["concurrency"] == t["default_concurrency"] else ""
                out.append(f"| {label}, {mode} | {r['concurrency']}{default} | "
                           f"{r['msg_per_s']:.1f} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | "
                           f"{'yes' if r['same_results_as_unbatched'] else '**no**'} |")
    tg = t["targets"]
    out += ["", f"Local path with default settings: **{tg['local_vs_spacy_pipe']['value']:.2f}x** "
                f"spaCy `nlp.pipe` (target >= {tg['local_vs_spacy_pipe']['target']}: "
                f"{_yes(tg['local_vs_spacy_pipe']['met'])}); the mask alone "
                f"{t['shoal_mask']['vs_spacy_pipe']:.2f}x. p95 at concurrency 8, batched over "
                f"unbatched: {tg['p95_c8_vs_unbatched']['value']:.2f} (target <= "
                f"{tg['p95_c8_vs_unbatched']['target']}: "
                f"{_yes(tg['p95_c8_vs_unbatched']['met'])}). Same labels, masks and verdicts "
                f"batched and unbatched: {_yes(tg['identical_results']['met'])}. Measured "
                f"{t['date'][:10]}.", ""]
    if "local_path_ceiling" in b:
        ceiling = b["local_path_ceiling"]["msg_per_s"]
        default = next(r for r in t["shoal_local"]["batched"]
                       if r["concurrency"] == t["default_concurrency"])
        out += [f"Why the local path stays far from the target: its guard and triage are text + "
                f"MiniLM ensembles, and it embeds each message twice (the raw text for the "
                f"guard, the masked text for triage). MiniLM alone embeds "
                f"{b['minilm_embed']['msg_per_s']:.0f} msg/s on these cores, so one `nlp.pipe` "
                f"pass and two MiniLM passes, with nothing else, already cap the path at "
                f"{ceiling:.0f} msg/s ({ceiling / b['spacy_pipe']['msg_per_s']:.2f}x `nlp.pipe`); "
                f"batched at the default concurrency it reaches {default['msg_per_s']:.1f} "
                f"({default['msg_per_s'] / ceiling:.2f} of that cap). At concurrency 1 batching "
                "costs a few milliseconds a model (it waits for calls that never come): a strictly "
                "sequential caller can set `batch: {max_size: 1}`.", ""]
    return out


def _scale(s: dict[str, Any]) -> list[str]:
    runs, cores = s["throughput"], s["machine"]["cpu_count"]
    names = {"local": "local (one process)", "ray_1": "Ray, 1 worker", "ray_2": "Ray, 2 workers"}
    rows = [
        f"| {names[k]} | {r['wall_s']:.1f} | {r['first_result_s']:.1f} | "
        f"{_num(r['msg_per_s_steady'], 1)} | {r.get('steady_ratio_vs_local', 1.0):.2f} | "
        f"{'yes' if r['same_statuses_and_labels_as_local'] else 'NO'} |"
        for k, r in runs.items() if k in names]
    out = [
        "**Scale-out** (`benchmarks/scale.py`): the triage graph's local path (masker -> triage) "
        f"over the {runs['local']['records']} test messages with `shoal run`, the local engine "
        f"and `--engine ray` (a local Ray started by the command, one CPU per graph actor), on "
        f"{cores} cores, where Ray's own processes share the cores with the actors. Wall time "
        "includes start-up (Ray's and the model loads); the steady rate counts the results "
        "after the first.",
        "",
        "| engine | wall s | first result s | steady msg/s | vs local | same statuses and labels "
        "|",
        "|---|---:|---:|---:|---:|---|",
        *rows,
        "",
    ]
    pg = s.get("postgres")
    if pg:
        shipped, every = pg["as_shipped"], pg["every_message"]
        budget = pg["budget_decisions"]
        out += [
            "Postgres load of the shared state (`SHOAL_DB`, `pg_stat_database` around each run, "
            f"a real planner): {shipped['per_message']['xact_commit']:.2f} transactions per "
            f"message with the triage graph as shipped ({shipped['planner_calls']} planner calls "
            f"in {shipped['messages']} messages), {every['per_message']['xact_commit']:.2f} when "
            f"every message goes to the planner ({every['planner_calls']} calls in "
            f"{every['messages']}). One graph's shared planner-share window decides "
            f"{budget['threads_1']['per_s']:,.0f} times a second from one thread and "
            f"{budget['threads_4']['per_s']:,.0f} from four "
            f"({budget['threads_1']['ms_each']:.2f} ms each, serialised by its advisory lock): "
            "the ceiling of decisions per second for that graph across every process, on this "
            "database. The model at N machines is in "
            "[docs/scaling.md](docs/scaling.md).",
            "",
        ]
    return out


def _serve_load(s: dict[str, Any]) -> list[str]:
    levels, metrics, cores = s["levels"], s["metrics"], s["machine"]["cpu_count"]
    first = levels[0]
    answer_ms = first["node_ms_mean"].get("answer")
    shares = first.get("server_ms_share") or {}
    dominated = ""
    if answer_ms is not None and shares:
        answer, planner = shares.get("answer", 0.0), shares.get("planner", 0.0)
        dominated = (
            f" Where the server's run time went at concurrency {first['concurrency']}: the "
            f"planner {planner:.0%} ({first['planner_answers']} nodes asked it: low-confidence "
            "triage and every emergency's hand-off; another SmolLM2 in its own process, "
            f"{_num(first['planner_node_ms_mean'], 0)} ms a call), `answer` {answer:.0%} (SmolLM2 "
            f"writing the reply for {first['generated_replies']} of {first['requests']} "
            f"messages, {answer_ms:.0f} ms each), everything else {1 - answer - planner:.0%}. "
            f"The server, the planner and the client share {cores} CPU cores, so requests/s "
            "barely moves with concurrency; beyond the server's "
            f"{s['server_concurrency']} runs in flight, requests wait in the server (client p50 "
            "minus server p50).")
    counted = ", ".join(f"{k} {v}" for k, v in metrics["by_status"].items()) or "nothing"
    cross = ("matching what the client sent, warm-up included" if metrics["matches"] else
             "NOT matching what the client sent ("
             + ", ".join(f"{k} {v}" for k, v in metrics["sent_by_status"].items()) + ")")
    errors = s["errors_total"]
    loads = [x for x in (s["machine"].get("loadavg_1min", {}).get("start"),
                         *(r.get("loadavg_1min_end") for r in levels)) if x is not None]
    load = (f" The 1-minute load average reached {max(loads):.1f} during the run: other work "
            "shared the machine." if loads and max(loads) > cores + 1 else "")
    server = s["server"]
    return [
        f"**Serve load** (`benchmarks/serve_load.py`): `shoal serve {s['graph']}` (the whole "
        f"cascade; {s['auth']}; the planner: {s['planner']}) under {s['requests_per_level']} "
        "`POST /v1/runs` per level from a second process over loopback (httpx), at most "
        f"*concurrency* in flight (the server runs {s['server_concurrency']} at once, the rest "
        f"wait), after {s['warmup']['requests']} warm-up requests. Latency is the client's, "
        "queueing included; *server p50* is the run latency the server reports.",
        "",
        "| concurrency | requests | req / s | p50 ms | p95 ms | p99 ms | server p50 ms | errors "
        "| statuses |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        *(f"| {r['concurrency']} | {r['requests']} | {r['rps']:.2f} | {r['p50_ms']:.0f} | "
          f"{r['p95_ms']:.0f} | {r['p99_ms']:.0f} | "
          f"{_num((r.get('server_latency_ms') or {}).get('p50'), 0)} | {r['errors']} | "
          + ", ".join(f"{k} {v}" for k, v in r["statuses"].items()) + " |" for r in levels),
        "",
        f"Errors **{errors}** (non-200, transport failures, RunResults with status error or "
        f"the wrong id; target 0: {'met' if errors == 0 else 'not met'}). The server's "
        f"`/metrics` ({metrics['metric']}) counted {counted}, {cross}.{dominated}{load} "
        f"Server ready in {server['startup_s']:.1f} s, exited {server['exit_code']} on "
        f"SIGTERM. Measured {s['machine']['date'][:10]}.",
        "",
        *_generation(s),
    ]


def _rates(raw: dict[str, Any]) -> str:
    return " and ".join(str(r["tokens_per_s"]) for r in raw.get("runs", [raw]))


def _generation(s: dict[str, Any]) -> list[str]:
    raw = s.get("raw_generation")
    if not raw:
        return []
    ratios = s.get("generation_vs_raw", {})
    local = s.get("in_process_vs_raw", {})
    per = ", ".join(f"concurrency {r['concurrency']}: {r.get('generated_tokens_per_s')} tokens/s "
                    f"({_num(ratios.get(str(r['concurrency'])), 2)}x; the in-process responder "
                    f"alone {r.get('in_process_tokens_per_s')}, "
                    f"{_num(local.get(str(r['concurrency'])), 2)}x)" for r in s["levels"])
    return [f"Against the model's own capacity: the responder's model alone ({raw['model']}, the "
            f"responder's prompt and {raw['max_tokens']}-token limit, {raw['messages']} messages "
            f"one after another, the planner idle) generates **{raw['tokens_per_s']} tokens/s** "
            f"(mean of {_rates(raw)}, measured before and after the server ran). "
            f"Under load the server and its planner (the same SmolLM2 file in a second process "
            f"on the same two cores) generated {per}, counted by `shoal_model_generated_tokens_"
            "total` before and after each level. Target at concurrency 8: >= 0.8x.", ""]


def _learning(r: dict[str, Any]) -> list[str]:
    oracle = r["oracle"]["rounds"]
    t = r["targets"]

    def verdict(row: dict[str, Any]) -> str:
        gate = row.get("gate")
        if gate is None:
            return ""
        if gate["promoted"]:
            return f"{gate['version']} promoted"
        return f"{gate['version']} refused: " + ", ".join(gate["failed"])

    out = [
        f"**Learning loop** (`benchmarks/learning.py`): {r['stream']} through the cascade "
        "(guard -> mask -> triage); an always-right planner answers what escalates; after each "
        "round the candidate that shadowed it goes through the promotion gate "
        f"(frozen split: {r['frozen_split']}) and a new one is learned from the ledger.",
        "",
        "| round | version | planner share | of it: emergency net | accuracy | emergency "
        "recall | gate after the round |",
        "|---:|---|---:|---:|---:|---:|---|",
    ]
    for row in oracle:
        esc = round(row["planner_share"] * row["reached_triage"])
        out.append(
            f"| {row['round']} | {row['version']} | {row['planner_share']:.3f} | "
            f"{row['critical_escalations']} of {esc} | {row['accuracy']:.3f} | "
            f"{_num(row['emergency_recall'])} | {verdict(row)} |")
    first, last = oracle[0], oracle[-1]
    out += ["", f"Targets: final share <= half of round 1's ({last['planner_share']:.3f} vs "
                f"{first['planner_share']:.3f}): {_met(t['share_halved'])}; accuracy not lower "
                f"than round 1's: {_met(t['accuracy_kept'])}; emergency recall >= 0.99 in every "
                f"round: {_met(t['emergency_recall_every_round'])}."]
    noisy = r.get("noisy")
    if noisy:
        reasons = Counter(name for refusal in noisy["refusals"] for name in refusal["failed"])
        out += ["", f"With a planner wrong on {noisy['wrong_share']:.0%} of its answers, the "
                    f"gate refused {noisy['refused']} of {noisy['gates']} candidates ("
                    + (", ".join(f"{k}: {v}" for k, v in reasons.most_common()) or "none")
                    + f"); final share {noisy['rounds'][-1]['planner_share']:.3f}, accuracy "
                    f"{noisy['rounds'][-1]['accuracy']:.3f}, emergency recall >= 0.99 in every "
                    f"round: {_met(noisy['targets']['emergency_recall_every_round'])} (a "
                    "sure planner's answer replaces a critical label, so its wrong answers on "
                    "escalated emergencies count as misses)."
                + (" No candidate went live: its share curve is v1's on the same rounds."
                   if noisy["refused"] == noisy["gates"] else "")]
    out += ["", "![planner share and accuracy per round](benchmarks/results/learning.png)", "",
            f"Measured {r['date'][:10]} (`{r['command'].strip()}`, {r['seconds']:.0f} s).", ""]
    return out


def splice(readme: str, block: str) -> str:
    if START not in readme or END not in readme:
        raise SystemExit(f"README.md lacks the {START} / {END} markers")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{block}{END}{tail}"


PLAN_MODES = (("single_label", "single label (triage only)"), ("splitter", "local splitter"),
              ("plan_mode", "plan mode"), ("plan_mode_oracle", "plan mode, ORACLE planner"))


def _chatty(r: dict[str, Any]) -> str:
    """The single requests again with one sentence of small talk put in (asides of families
    the clause model never saw)."""
    chatty = r.get("single_requests_with_asides")
    if not chatty:
        return ""
    return (f" The same with one sentence of small talk put in (`{r['data']['asides']}`): "
            f"{chatty['split_share']:.1%} split into steps, {chatty['label_changed']} whose "
            f"label changed, triage accuracy {chatty['triage_accuracy']:.3f}.")


def _plan(r: dict[str, Any]) -> list[str]:
    """benchmarks/plan.py: requests routed right per mode, planner calls, the plan cache."""
    t = r["targets"]
    out = [f"**Several requests in one message** (`benchmarks/plan.py`): "
           f"{r['data']['multi_messages']} held-out messages of two or three requests "
           f"(`{r['data']['multi']}`); a request is handled when a step with its label reaches "
           f"its specialist. Planner: {r['planner']}.", "",
           "| mode | requests handled | emergency requests | extra steps / message | "
           "messages exactly right | planner calls / message | plan cache hit rate |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for key, name in PLAN_MODES:
        m = r.get(key)
        if not m:
            continue
        hit = (m.get("cache") or {}).get("hit_rate")
        out.append(f"| {name} | {m['intents_handled']:.3f} | {_num(m['emergency_recall'])} | "
                   f"{m['extra_per_message']:.3f} | {m['exact_share']:.3f} | "
                   f"{m['planner_calls_per_message']:.3f} | {_num(hit)} |")
    single = r["single_requests"]
    met = t["met"]
    out += ["", f"Single-request messages ({single['messages']} of `{r['data']['single']}`): "
                f"{single['split_share']:.1%} split into steps, {single['label_changed']} "
                f"whose label changed, triage accuracy {single['triage_accuracy']:.3f}."
                + _chatty(r), "",
            f"Targets (plan mode): requests handled >= {t['intents_handled']}: "
            f"{_met(met['intents_handled'])}; <= {t['planner_calls_per_message']} planner call "
            f"per message: {_met(met['planner_calls_per_message'])}; single requests unaffected "
            f"(no label changed, at most {t['single_split_max']:.0%} split): "
            f"{_met(met['single_requests_unaffected'])}."]
    oracle = t.get("met_oracle")
    if oracle:
        out[-1] += (f" With an always-right planner (the ORACLE row: what a strong planner "
                    f"approaches), requests handled: {_met(oracle['intents_handled'])}, planner "
                    f"calls: {_met(oracle['planner_calls_per_message'])}.")
    tune = _load("plan_tune.json")
    shipped = next((g for g in (tune or {}).get("grid", []) if g.get("shipped")), None)
    before = next((g for g in (tune or {}).get("grid", []) if g["model"] == "triage"
                   and g["floor"] == 0.1 and not g["critical_top"]), None)
    if shipped and before:
        out += ["", f"The splitter's thresholds were chosen on the dev splits "
                    f"(`python benchmarks/plan.py --tune`, `benchmarks/results/plan_tune.json`): "
                    f"clause model as shipped: requests handled {shipped['intents_handled']:.3f}, "
                    f"emergency requests {shipped['emergency_recall']:.3f}, alarm look-alikes "
                    f"given a false emergency {shipped['alarms_false_emergency']}, single "
                    f"requests {shipped['single_false_emergency']}"
                    + (f", single requests with small talk put in split "
                       f"{shipped['aside_split_share']:.1%}" if "aside_split_share" in shipped
                       else "")
                    + f"; the triage model as before: "
                    f"{before['intents_handled']:.3f}, {before['emergency_recall']:.3f}, "
                    f"{before['alarms_false_emergency']}, {before['single_false_emergency']}"
                    + (f", {before['aside_split_share']:.1%}" if "aside_split_share" in before
                       else "") + "."]
    out += ["", f"Measured {r['machine']['when'][:10]} (`python benchmarks/plan.py`, "
                + ", ".join(f"{k} {v:.0f} s" for k, v in r["seconds"].items()) + ").", ""]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    current = README.read_text()
    updated = splice(current, render())
    if args.check:
        if updated != current:
            print("README.md results are out of date: run python benchmarks/readme_results.py")
            sys.exit(1)
        return
    README.write_text(updated)
    print("README.md results updated")


if __name__ == "__main__":
    main()
