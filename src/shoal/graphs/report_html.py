"""``shoal report --html``: one self-contained HTML page of a results file, with plots.

The numbers are :class:`~shoal.graphs.report.Summary`'s, as the text report shows them; with gold
labels (``--labels``: a JSONL of ``{"id", "label"}`` lines, such as the input file itself) it adds
per-class recall and a confusion table, critical labels (``emergency``) first and highlighted.

What the page may show: counts, shares, latencies, money, node names, labels and record ids.
Never a result's ``output`` (read_results drops it), never an input's text (read_gold keeps only
``id`` and ``label``). Every string from a file is escaped; the page loads nothing (inline CSS,
plots as inline SVG drawn here, a Content-Security-Policy that forbids any fetch), so it can be
mailed or archived as it is and opened offline.
"""

from __future__ import annotations

import html
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shoal.graphs.report import Summary, Unreadable, percentile, read_results
from shoal.graphs.results import STATUSES, Status

__all__ = [
    "ClassRecall",
    "ERROR",
    "LabelReport",
    "NO_LABEL",
    "REFUSED",
    "RunLabels",
    "label_report",
    "read_gold",
    "read_run_labels",
    "render_html",
]

REFUSED = "(refused)"
ERROR = "(error)"
NO_LABEL = "(no label)"
"""What a run predicted when the label node gave no label: the run was refused before it (an
input guard), failed, or went another way. Parenthesised so they do not read as labels."""

MAX_LISTED_IDS = 50
"""Ids of missed critical records listed on the page, at most (the count is always given)."""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


# --- gold labels and predictions ----------------------------------------------------------------


def read_gold(path: Path, *, on_unreadable: Callable[[Unreadable], None] | None = None
              ) -> tuple[dict[str, str], int]:
    """Gold labels by record id from a JSONL of ``{"id", "label"}`` objects (other keys, an
    input's ``text`` among them, are ignored and never kept), and how many lines were not such an
    object (each handed to ``on_unreadable``; reasons never quote the line). A repeated id keeps
    its last label. Raises ``OSError`` when the file cannot be read."""
    gold: dict[str, str] = {}
    bad = 0
    with path.open("rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            reason = None
            try:
                data = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                reason = "not valid UTF-8"
            except json.JSONDecodeError as exc:
                reason = f"not valid JSON: {exc.msg} (column {exc.colno})"
            else:
                if not isinstance(data, dict):
                    reason = f"expected a JSON object, got {type(data).__name__}"
                elif not isinstance(data.get("id"), str) or not data["id"]:
                    reason = "missing 'id' (a non-empty string)"
                elif not isinstance(data.get("label"), str) or not data["label"]:
                    reason = "missing 'label' (a non-empty string)"
                else:
                    gold[data["id"]] = data["label"]
            if reason is not None:
                bad += 1
                if on_unreadable is not None:
                    on_unreadable(Unreadable(path, line_no, reason))
    return gold, bad


@dataclass(frozen=True, slots=True)
class RunLabels:
    """What one run of a results file said: its status and each node's label."""

    status: Status
    labels: dict[str, str | None]


def read_run_labels(path: Path) -> dict[str, RunLabels]:
    """Each run's status and node labels by record id, from a results JSONL (unreadable lines
    are skipped: ``summarize_file`` names them). A repeated id (a resumed run) keeps the last."""
    runs: dict[str, RunLabels] = {}
    for item in read_results(path):
        if isinstance(item, Unreadable):
            continue
        runs[item.id] = RunLabels(item.status, {n.node: n.label for n in item.nodes})
    return runs


# --- recall -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClassRecall:
    label: str
    n: int
    """Records of this gold label found in the results."""
    correct: int
    """Of those, how many the label node answered with this label."""
    critical: bool = False

    @property
    def recall(self) -> float | None:
        return self.correct / self.n if self.n else None


@dataclass
class LabelReport:
    """Per-class recall and confusion of one node's labels against gold labels."""

    node: str
    """The node whose label is the prediction."""
    classes: list[ClassRecall]
    """Critical labels first (in the order given), then the rest sorted."""
    confusion: dict[str, Counter[str]]
    """gold label -> predicted label (or REFUSED / ERROR / NO_LABEL) -> records."""
    columns: list[str]
    """Predicted values in table order: the gold labels' order, other labels, then the
    parenthesised outcomes."""
    matched: int
    """Gold records found in the results."""
    missing: int
    """Gold records with no result (not run yet, or an id that differs)."""
    unlabelled: int
    """Results without a gold label."""
    missed: dict[str, list[str]] = field(default_factory=dict)
    """Per critical label, the ids of its records not answered with it (sorted)."""

    @property
    def accuracy(self) -> float | None:
        correct = sum(c.correct for c in self.classes)
        return correct / self.matched if self.matched else None


def _choose_node(gold: Mapping[str, str], runs: Mapping[str, RunLabels]) -> str | None:
    """The node whose labels are most often one of the gold labels: the classifier the gold
    labels are for (in the healthcare cascade, triage: the guard's verdicts and the validator's
    ok/flagged never match). Ties go to the node that appeared first."""
    known = set(gold.values())
    hits: Counter[str] = Counter()
    order: dict[str, int] = {}
    for record_id, run in runs.items():
        for node, label in run.labels.items():
            order.setdefault(node, len(order))
            if record_id in gold and label in known:
                hits[node] += 1
    if not order:
        return None
    return max(order, key=lambda node: (hits[node], -order[node]))


def _predicted(run: RunLabels, node: str) -> str:
    label = run.labels.get(node)
    if label is not None:
        return label
    if run.status == "refused":
        return REFUSED
    if run.status == "error":
        return ERROR
    return NO_LABEL


def label_report(gold: Mapping[str, str], runs: Mapping[str, RunLabels], *,
                 node: str | None = None, critical: Sequence[str] = ("emergency",)
                 ) -> LabelReport | None:
    """Recall per gold label of ``node``'s labels (default: :func:`_choose_node`'s pick), the
    labels in ``critical`` first and marked; None when no run has a node."""
    node = node if node is not None else _choose_node(gold, runs)
    if node is None:
        return None
    confusion: dict[str, Counter[str]] = {}
    missed: dict[str, list[str]] = {}
    matched = missing = 0
    for record_id, label in gold.items():
        run = runs.get(record_id)
        if run is None:
            missing += 1
            continue
        matched += 1
        predicted = _predicted(run, node)
        confusion.setdefault(label, Counter())[predicted] += 1
        if label in critical and predicted != label:
            missed.setdefault(label, []).append(record_id)
    order = [label for label in dict.fromkeys(critical) if label in confusion]
    order += sorted(label for label in confusion if label not in order)
    classes = [ClassRecall(label, sum(confusion[label].values()), confusion[label][label],
                           critical=label in critical) for label in order]
    seen = {p for row in confusion.values() for p in row}
    outcomes = [REFUSED, ERROR, NO_LABEL]
    columns = [label for label in order if label in seen]
    columns += sorted(p for p in seen if p not in columns and p not in outcomes)
    columns += [p for p in outcomes if p in seen]
    unlabelled = sum(1 for record_id in runs if record_id not in gold)
    return LabelReport(node, classes, confusion, columns, matched, missing, unlabelled,
                       {label: sorted(ids) for label, ids in missed.items()})


# --- formatting ---------------------------------------------------------------------------------


def _share(n: int, of: int) -> float | None:
    return n / of if of else None


def _pct(share: float | None) -> str:
    return "–" if share is None else f"{share:.1%}"


def _usd(value: float) -> str:
    return f"${value:,.2f}" if value >= 100 else f"${value:.6f}"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.2f} ms"


def _table(head: Sequence[str], rows: Iterable[Sequence[str]], *, numeric_from: int = 1,
           row_class: Sequence[str] | None = None, caption: str | None = None) -> str:
    """An HTML table; cells are escaped here, so callers pass plain text."""
    out = ["<table>"]
    if caption:
        out.append(f"<caption>{_e(caption)}</caption>")
    out.append("<thead><tr>" + "".join(
        f'<th{" class=num" if i >= numeric_from else ""}>{_e(h)}</th>'
        for i, h in enumerate(head)) + "</tr></thead><tbody>")
    for r, row in enumerate(rows):
        cls = row_class[r] if row_class is not None and row_class[r] else ""
        out.append(f'<tr{f" class={cls}" if cls else ""}>' + "".join(
            f'<td{" class=num" if i >= numeric_from else ""}>{_e(cell)}</td>'
            for i, cell in enumerate(row)) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


# --- inline SVG plots ---------------------------------------------------------------------------
# Drawn by hand: a handful of rectangles needs no plotting library (matplotlib is not one of
# shoal's dependencies), and the SVG is small, sharp at any zoom and searchable.

_BLUE = "#4e79a7"
_LIGHT = "#a0cbe8"
_ORANGE = "#f28e2b"
_RED = "#d62728"
_GREY = "#777777"


def _svg(width: int, height: int, body: list[str], label: str) -> str:
    # No xmlns: inline SVG in HTML needs none, and the page then holds no URL at all.
    return (f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'role="img" aria-label="{_e(label)}"><title>{_e(label)}</title>'
            + "".join(body) + "</svg>")


def _text(x: float, y: float, text: str, *, anchor: str = "start", size: int = 12,
          color: str = "#222", weight: str = "normal") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" '
            f'fill="{color}" font-weight="{weight}">{_e(text)}</text>')


def _rect(x: float, y: float, w: float, h: float, color: str, tip: str) -> str:
    return (f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0.0):.1f}" height="{h:.1f}" '
            f'fill="{color}"><title>{_e(tip)}</title></rect>')


def _escalation_chart(summary: Summary) -> str:
    """Per node, horizontal bars: the share that wanted the planner, and the share it answered."""
    nodes = list(summary.node_runs)
    left, width, bar, gap = 150, 420, 11, 10
    height = 40 + len(nodes) * (2 * bar + gap) + 20
    body = [_text(left, 16, "share of the node's runs", size=11, color=_GREY)]
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        x = left + tick * width
        body.append(f'<line x1="{x:.1f}" y1="24" x2="{x:.1f}" y2="{height - 20}" '
                    'stroke="#ddd"/>')
        body.append(_text(x, height - 6, f"{tick:.0%}", anchor="middle", size=10,
                          color=_GREY))
    y = 30.0
    for name in nodes:
        n = summary.node_runs[name]
        wanted = _share(summary.node_escalate[name], n) or 0.0
        went = _share(summary.node_escalated[name], n) or 0.0
        body.append(_text(left - 8, y + bar + 3, name, anchor="end"))
        body.append(_rect(left, y, wanted * width, bar, _LIGHT,
                          f"{name}: wanted the planner {wanted:.1%} of {n} runs"))
        body.append(_rect(left, y + bar, went * width, bar, _BLUE,
                          f"{name}: answered by the planner {went:.1%} of {n} runs"))
        body.append(_text(left + wanted * width + 4, y + bar - 2, f"{wanted:.1%}", size=10,
                          color=_GREY))
        body.append(_text(left + went * width + 4, y + 2 * bar - 2, f"{went:.1%}", size=10,
                          color=_GREY))
        y += 2 * bar + gap
    legend_x = left + width - 230
    body += [_rect(legend_x, 6, 10, 10, _LIGHT, "wanted the planner"),
             _text(legend_x + 14, 15, "wanted the planner", size=11),
             _rect(legend_x + 130, 6, 10, 10, _BLUE, "answered by the planner"),
             _text(legend_x + 144, 15, "escalated", size=11)]
    return _svg(left + width + 50, int(height), body, "escalation share per node")


def _latency_histogram(latencies: Sequence[float]) -> str:
    """Runs per latency bin, with the p50 and p95 marked."""
    left, width, top, plot_h = 50, 520, 20, 160
    lo, hi = min(latencies), max(latencies)
    bins = max(5, min(30, math.ceil(math.sqrt(len(latencies)))))
    span = (hi - lo) or 1.0
    counts = [0] * bins
    for value in latencies:
        counts[min(bins - 1, int((value - lo) / span * bins))] += 1
    peak = max(counts)
    body: list[str] = []
    step = width / bins
    for i, count in enumerate(counts):
        h = count / peak * plot_h
        a, b = lo + i * span / bins, lo + (i + 1) * span / bins
        body.append(_rect(left + i * step + 1, top + plot_h - h, step - 2, h, _BLUE,
                          f"{a:,.1f}–{b:,.1f} ms: {count} runs"))
    base = top + plot_h
    body.append(f'<line x1="{left}" y1="{base}" x2="{left + width}" y2="{base}" stroke="#999"/>')
    body.append(_text(left, base + 16, f"{lo:,.1f} ms", size=10, color=_GREY))
    body.append(_text(left + width, base + 16, f"{hi:,.1f} ms", anchor="end", size=10,
                      color=_GREY))
    body.append(_text(left - 6, top + 8, str(peak), anchor="end", size=10, color=_GREY))
    body.append(_text(left - 6, base, "0", anchor="end", size=10, color=_GREY))
    for q, color in ((50, _ORANGE), (95, _RED)):
        at = percentile(list(latencies), q)
        if at is None:
            continue
        x = left + (at - lo) / span * width
        body.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{base}" '
                    f'stroke="{color}" stroke-width="2" stroke-dasharray="5 3"/>')
        right = x > left + width * 0.7  # near the right edge the label goes on the left
        body.append(_text(x - 4 if right else x + 4, top + (6 if q == 50 else 20),
                          f"p{q} {at:,.1f} ms", anchor="end" if right else "start",
                          size=11, color=color, weight="bold"))
    body.append(_text(left + width / 2, base + 32, "latency per run (ms)", anchor="middle",
                      size=11, color=_GREY))
    return _svg(left + width + 60, int(base + 40), body, "latency histogram")


def _spend_chart(summary: Summary) -> str:
    """Two bars: what the planner cost, and what sending everything to it would have cost."""
    left, width, bar = 170, 380, 22
    top = max(summary.all_planner_usd_estimate, summary.planner_usd) or 1.0
    body: list[str] = []
    rows = (("planner spent", summary.planner_usd, _BLUE),
            ("all-planner estimate", summary.all_planner_usd_estimate, _LIGHT))
    for i, (name, value, color) in enumerate(rows):
        y = 10 + i * (bar + 12)
        w = value / top * width
        body.append(_text(left - 8, y + bar / 2 + 4, name, anchor="end"))
        body.append(_rect(left, y, w, bar, color, f"{name}: {_usd(value)}"))
        body.append(_text(left + w + 6, y + bar / 2 + 4, _usd(value), size=11))
    saving = summary.saving_percent
    if saving is not None:
        body.append(_text(left, 2 * (bar + 12) + 22, f"saving {saving:.1f}%", size=13,
                          color=_BLUE, weight="bold"))
    return _svg(left + width + 110, 2 * (bar + 12) + 34, body,
                "planner spend vs all-planner estimate")


# --- the page -----------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;
max-width:980px;margin:2em auto;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.8em;
border-bottom:1px solid #ddd;padding-bottom:.2em}
.meta{color:#666;margin-top:0}
table{border-collapse:collapse;margin:.6em 0}caption{text-align:left;color:#666;
padding-bottom:.3em}
th,td{padding:.25em .7em;border-bottom:1px solid #eee;text-align:left}
th{background:#f6f6f6}.num{text-align:right;font-variant-numeric:tabular-nums}
tr.critical td{background:#fdecea;font-weight:600}
.callout{border:2px solid #d62728;background:#fdecea;border-radius:6px;padding:.7em 1em;
margin:1em 0}.callout.ok{border-color:#2e7d32;background:#e8f5e9}
.callout b{font-size:1.3em}
.note{color:#666;font-size:.92em}
.cm td.num{min-width:3em}.cm td.diag{font-weight:700}
svg{max-width:100%;height:auto;display:block;margin:.6em 0}
svg text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
footer{margin-top:3em;color:#888;font-size:.85em}
"""

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
"""The page may load nothing: no script, font, image or stylesheet from anywhere."""


def _statuses(summary: Summary) -> str:
    rows = [(status, str(summary.statuses.get(status, 0)),
             _pct(_share(summary.statuses.get(status, 0), summary.runs)))
            for status in STATUSES]
    return _table(("status", "runs", "share"), rows)


def _nodes(summary: Summary) -> str:
    if not summary.node_runs:
        return '<p class="note">No node ran.</p>'
    rows = []
    for name, n in summary.node_runs.items():
        rows.append((name, str(n), _pct(_share(summary.node_escalate[name], n)),
                     _pct(_share(summary.node_escalated[name], n)),
                     _pct(_share(summary.node_kept_local[name], n)),
                     _pct(_share(summary.node_critical[name], n))))
    critical = sum(summary.node_critical.values())
    labels = ", ".join(f"{k} {v}" for k, v in sorted(summary.critical_labels.items()))
    line = (f"Critical escalations: {critical} ({summary.critical_escalated} answered by the "
            f"planner, {critical - summary.critical_escalated} routed or kept"
            + (f"; {labels}" if labels else "") + "); never held back by a budget.")
    return (_table(("node", "runs", "wanted escalation", "escalated", "kept local",
                    "critical"), rows)
            + _escalation_chart(summary) + f"<p>{_e(line)}</p>")


def _latency(summary: Summary) -> str:
    p50 = percentile(summary.latencies_ms, 50)
    p95 = percentile(summary.latencies_ms, 95)
    if p50 is None or p95 is None:
        return '<p class="note">Latency: n/a (no finished runs).</p>'
    return (_table(("runs timed", "p50", "p95"),
                   [(str(len(summary.latencies_ms)), _ms(p50), _ms(p95))])
            + _latency_histogram(summary.latencies_ms))


def _money(summary: Summary) -> str:
    if not summary.runs_with_cost:
        return '<p class="note">Money: n/a (no cost fields in these results).</p>'
    saving = summary.saving_percent
    rows = [("planner spent", _usd(summary.planner_usd)),
            ("all-planner estimate", _usd(summary.all_planner_usd_estimate)),
            ("saving", "n/a" if saving is None else f"{saving:.1f}%"),
            ("planner calls", f"{summary.planner_calls:,}"),
            ("planner tokens", f"{summary.planner_tokens:,}"),
            ("local time", f"{summary.local_ms:,.1f} ms"),
            ("planner time", f"{summary.planner_ms:,.1f} ms")]
    caption = f"{summary.runs_with_cost} of {summary.runs} runs with costs"
    return _table(("what", "value"), rows, caption=caption) + _spend_chart(summary)


def _callouts(report: LabelReport) -> str:
    """The critical labels' recall on top of the page: the number not to lose."""
    out = []
    for c in report.classes:
        if not c.critical:
            continue
        recall = c.recall
        ok = recall is not None and recall >= 1.0
        missed = report.missed.get(c.label, [])
        listed = ", ".join(missed[:MAX_LISTED_IDS])
        more = f" (and {len(missed) - MAX_LISTED_IDS} more)" if len(missed) > MAX_LISTED_IDS \
            else ""
        out.append(
            f'<div class="callout{" ok" if ok else ""}">{_e(c.label)} recall: '
            f"<b>{_e(_pct(recall))}</b> ({c.correct} of {c.n}, node {_e(report.node)})"
            + (f"<br>missed ids: {_e(listed)}{_e(more)}" if missed else "") + "</div>")
    return "".join(out)


def _labels(report: LabelReport) -> str:
    rows = [(c.label, str(c.n), str(c.correct), _pct(c.recall)) for c in report.classes]
    classes = ["critical" if c.critical else "" for c in report.classes]
    recall = _table(("gold label", "records", "answered with it", "recall"), rows,
                    row_class=classes,
                    caption=f"labels of node {report.node}; accuracy "
                            f"{_pct(report.accuracy)} over {report.matched} records")
    head = "".join(f'<th class=num>{_e(c)}</th>' for c in report.columns)
    body = []
    for c in report.classes:
        row = report.confusion[c.label]
        cells = []
        for col in report.columns:
            n = row.get(col, 0)
            share = n / c.n if c.n else 0.0
            # Shade by the row's share: right answers green, wrong ones red.
            hue = "46,125,50" if col == c.label else "214,39,40"
            style = f' style="background:rgba({hue},{0.08 + 0.5 * share:.2f})"' if n else ""
            diag = " diag" if col == c.label else ""
            cells.append(f'<td class="num{diag}"{style}>{n}</td>')
        cls = ' class="critical"' if c.critical else ""
        body.append(f"<tr{cls}><th>{_e(c.label)}</th>{''.join(cells)}</tr>")
    confusion = ('<table class="cm"><caption>confusion: gold label (rows) by the node\'s '
                 'label (columns)</caption><thead><tr><th>gold \\ predicted</th>'
                 f"{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")
    notes = [f"{REFUSED}: the run was refused before the node answered (an input guard); "
             f"{ERROR}: the run failed; {NO_LABEL}: the node gave no label or did not run."]
    if report.missing:
        notes.append(f"{report.missing} labelled record(s) have no result in this file.")
    if report.unlabelled:
        notes.append(f"{report.unlabelled} result(s) have no gold label.")
    return recall + confusion + "".join(f'<p class="note">{_e(n)}</p>' for n in notes)


def render_html(summary: Summary, *, title: str, labels: LabelReport | None = None) -> str:
    """The whole page: statuses, nodes (with the escalation-share chart), latency (with its
    histogram), money (spend vs the all-planner estimate) and, with ``labels``, recall per
    class and confusion, critical labels first and highlighted at the top."""
    meta = f"{summary.runs} runs"
    if summary.unreadable:
        meta += f", {summary.unreadable} unreadable line(s)"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_e(_CSP)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">{_e(meta)}</p>',
    ]
    if labels is not None:
        parts.append(_callouts(labels))
    parts += ["<h2>Statuses</h2>", _statuses(summary),
              "<h2>Escalation per node</h2>", _nodes(summary),
              "<h2>Latency</h2>", _latency(summary),
              "<h2>Money</h2>", _money(summary)]
    if labels is not None:
        parts += ["<h2>Recall per class</h2>", _labels(labels)]
    parts.append("<footer>shoal report. Counts, shares, latencies, costs, labels and record "
                 "ids only: no message text and no output is read into this page.</footer>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
