"""`shoal report --html`: one self-contained page with the summary's numbers, plots, and recall
per class from gold labels; no input text, no output, nothing loaded from anywhere."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shoal.cli import app
from shoal.graphs.report import summarize_file
from shoal.graphs.report_html import (
    NO_LABEL,
    REFUSED,
    ClassRecall,
    label_report,
    read_gold,
    read_run_labels,
    render_html,
)
from shoal.graphs.results import NodeTrace, RunCost, RunResult

runner = CliRunner()

CANARY = "Zq-CANARY-7731 Jane Roe"
"""In every input text and output: it must never reach the page."""

VOID = {"meta", "br", "hr", "img", "input", "link", "area", "base", "col", "wbr", "source"}


class _Checked(HTMLParser):
    """Parses a page and checks that every element that is opened is closed, in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.problems: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)  # <line/> in the SVG
        self.attrs += attrs

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parsed(page: str) -> _Checked:
    parser = _Checked()
    parser.feed(page)
    parser.close()
    assert parser.problems == [] and parser.stack == []
    return parser


def _trace(node: str, label: str | None, *, agent: str = "classifier",
           escalated: bool = False, critical: str | None = None) -> NodeTrace:
    return NodeTrace(node=node, agent=agent, label=label, latency_ms=1.0, escalate=escalated,
                     escalated=escalated, critical=critical,
                     reason=f"note on {CANARY}" if escalated else None)


# (id, gold label, triage's label or None, status, latency ms). Triage recall by hand:
# emergency 2 of 3 (e3 answered billing), billing 1 of 2 (b2 answered appointment),
# appointment 0 of 1 (a1 refused by the guard before triage ran).
CASES = [
    ("e1", "emergency", "emergency", "escalated", 10.0),
    ("e2", "emergency", "emergency", "ok", 20.0),
    ("e3", "emergency", "billing", "ok", 30.0),
    ("b1", "billing", "billing", "ok", 40.0),
    ("b2", "billing", "appointment", "ok", 50.0),
    ("a1", "appointment", None, "refused", 60.0),
]


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    results, gold = tmp_path / "results.jsonl", tmp_path / "gold.jsonl"
    lines = []
    for record_id, _, label, status, latency in CASES:
        nodes = [_trace("guard", "allow" if label else "refuse", agent="input_guard")]
        if label is not None:
            nodes.append(_trace("triage", label, escalated=status == "escalated",
                                critical="emergency" if status == "escalated" else None))
        spent = 0.02 if status == "escalated" else 0.0
        result = RunResult(id=record_id, status=status,  # type: ignore[arg-type]
                           output=f"Dear {CANARY}, see you", nodes=nodes, latency_ms=latency,
                           cost=RunCost(planner_usd=spent, all_planner_usd_estimate=0.01,
                                        local_ms=latency, planner_calls=int(spent > 0)))
        lines.append(result.model_dump_json() + "\n")
    results.write_text("".join(lines), encoding="utf-8")
    # The labelled input file itself: its text is there, and must stay out of the page.
    gold.write_text("".join(json.dumps({"id": i, "text": f"{CANARY} says hi", "label": g}) + "\n"
                            for i, g, *_ in CASES), encoding="utf-8")
    assert CANARY in results.read_text() and CANARY in gold.read_text()
    return results, gold


def test_recall_per_class_on_a_hand_made_example(files: tuple[Path, Path]):
    results, gold_path = files
    gold, bad = read_gold(gold_path)
    assert bad == 0 and gold["e3"] == "emergency"
    report = label_report(gold, read_run_labels(results))
    assert report is not None
    assert report.node == "triage"  # not the guard: its verdicts are never a gold label
    assert report.classes == [ClassRecall("emergency", 3, 2, critical=True),
                              ClassRecall("appointment", 1, 0),
                              ClassRecall("billing", 2, 1)]
    assert [c.recall for c in report.classes] == [2 / 3, 0.0, 0.5]
    assert report.confusion["emergency"] == {"emergency": 2, "billing": 1}
    assert report.confusion["appointment"] == {REFUSED: 1}
    assert report.columns == ["emergency", "appointment", "billing", REFUSED]
    assert report.missed == {"emergency": ["e3"]}
    assert (report.matched, report.missing, report.unlabelled) == (6, 0, 0)
    assert report.accuracy == 3 / 6


def test_recall_counts_missing_and_unlabelled_records_apart(files: tuple[Path, Path]):
    results, _ = files
    runs = read_run_labels(results)
    report = label_report({"e1": "emergency", "zz": "billing", "b1": "other"}, runs,
                          node="guard")
    assert report is not None
    assert (report.matched, report.missing, report.unlabelled) == (2, 1, 4)
    assert report.confusion["emergency"] == {"allow": 1}
    assert report.columns == ["allow"]
    runs["e1"].labels.pop("triage")
    assert _predicted_of(label_report({"e1": "emergency"}, runs, node="triage")) == NO_LABEL


def _predicted_of(report: object) -> str:
    assert report is not None
    [(label, _)] = report.confusion["emergency"].items()  # type: ignore[attr-defined]
    return str(label)


def test_the_page_has_the_numbers_parses_and_holds_no_text(files: tuple[Path, Path],
                                                           tmp_path: Path):
    results, gold = files
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["report", str(results), "--html", str(out),
                                 "--labels", str(gold)])
    assert result.exit_code == 0, result.output
    assert "statuses" not in result.stderr and f"wrote {out}" in result.stderr
    assert "status" in result.stdout  # the text report still prints
    page = out.read_text(encoding="utf-8")
    parsed = _parsed(page)
    text = " ".join(" ".join(parsed.text).split())
    # Statuses, per node shares, latency, money: the summary's numbers.
    assert "ok 4 66.7%" in text and "refused 1 16.7%" in text
    assert "triage 5 20.0% 20.0% 0.0% 20.0%" in text
    assert "p50 p95 6 30.00 ms 60.00 ms" in text  # nearest rank over 10..60
    assert "planner spent $0.020000" in text and "all-planner estimate $0.060000" in text
    assert "saving 66.7%" in text
    # Plots: three inline SVGs, nothing fetched.
    assert parsed.tags.count("svg") == 3
    assert not re.search(r"https?://", page)
    assert not {name for name, _ in parsed.attrs} & {"src", "href"}
    assert not {"img", "script", "link", "iframe", "object"} & set(parsed.tags)
    assert ("content", "default-src 'none'; style-src 'unsafe-inline'; img-src data:") \
        in parsed.attrs  # and the browser is told so: no fetch of any kind
    # Emergency first and highlighted, with its missed id.
    assert text.index("emergency recall: 66.7% (2 of 3, node triage)") < text.index("Statuses")
    assert "missed ids: e3" in text
    assert re.search(r'<tr class=critical><td>emergency</td><td class=num>3</td>', page)
    assert "appointment 1 0 0.0%" in text and "billing 2 1 50.0%" in text
    # No input text, no output, no reason (which may quote the masked input).
    assert CANARY not in page and "Jane" not in page and "CANARY" not in page


def test_everything_from_the_files_is_escaped(tmp_path: Path):
    evil = '<script>alert("x")</script>'
    results = tmp_path / "r.jsonl"
    result = RunResult(id="x1", status="ok", nodes=[_trace(evil, evil)], latency_ms=1.0)
    results.write_text(result.model_dump_json() + "\n", encoding="utf-8")
    report = label_report({"x1": f"{evil}gold"}, read_run_labels(results),
                          critical=(f"{evil}gold",))
    page = render_html(summarize_file(results), title=f"report {evil}", labels=report)
    _parsed(page)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page


def test_a_page_without_labels_costs_or_runs_still_renders(tmp_path: Path):
    results = tmp_path / "r.jsonl"
    results.write_text('{"id": "a", "status": "error", "nodes": []}\nnot json\n',
                       encoding="utf-8")
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", str(results), "--html", str(out), "--json"])
    assert result.exit_code == 1  # the unreadable line
    assert json.loads(result.stdout)["runs"] == 1  # stdout stays one JSON object
    assert f"{results}:2: not valid JSON" in result.stderr
    page = out.read_text(encoding="utf-8")
    _parsed(page)
    assert "1 runs, 1 unreadable line(s)" in page
    assert "Latency: n/a" in page and "Money: n/a" in page
    assert "Recall per class" not in page


def test_labels_need_html_and_a_readable_file(files: tuple[Path, Path], tmp_path: Path):
    results, gold = files
    result = runner.invoke(app, ["report", str(results), "--labels", str(gold)])
    assert result.exit_code == 2 and "--labels and --label-node go with --html" in result.stderr
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", str(results), "--html", str(out),
                                 "--labels", str(tmp_path / "none.jsonl")])
    assert result.exit_code == 2 and "none.jsonl: no such file" in result.stderr
    result = runner.invoke(app, ["report", str(results), "--html", str(out),
                                 "--labels", str(gold), "--label-node", "nope"])
    assert result.exit_code == 2 and "no run has a node 'nope'" in result.stderr
    with gold.open("a", encoding="utf-8") as fh:
        fh.write('{"id": "q", "text": "' + CANARY + '"}\n')
    result = runner.invoke(app, ["report", str(results), "--html", str(out),
                                 "--labels", str(gold), "--label-node", "triage"])
    assert result.exit_code == 1
    assert f"{gold}:7: missing 'label'" in result.stderr and CANARY not in result.stderr
    assert "emergency recall" in out.read_text(encoding="utf-8")
