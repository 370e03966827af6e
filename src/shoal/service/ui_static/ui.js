// The shoal dashboard: reads /ui/api/summary and /ui/api/review every few seconds and draws
// tables, two small SVG bar charts and a line chart of the escalation share over time. The DOM is built with textContent only.
"use strict";
(function () {
  const REFRESH_MS = 3000;
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function num(v, digits) {
    if (v === null || v === undefined) return "–";
    return digits === undefined ? String(Math.round(v)) : Number(v).toFixed(digits);
  }
  function usd(v) { return "$" + Number(v || 0).toFixed(4); }
  function ms(s) { return s === null || s === undefined ? "–" : (s * 1000).toFixed(1) + " ms"; }
  function fill(tbody, rows) {
    tbody.replaceChildren();
    for (const cells of rows) {
      const tr = document.createElement("tr");
      cells.forEach((c, i) => {
        const td = el(i === 0 && c.head ? "th" : "td", c.text !== undefined ? c.text : c,
          typeof c === "number" ? "num" : c.cls);
        if (i === 0 && c.head) td.setAttribute("scope", "row");
        tr.append(td);
      });
      tbody.append(tr);
    }
  }
  function empty(tbody, text) {
    const tr = document.createElement("tr");
    const td = el("td", text, "empty");
    td.colSpan = tbody.parentElement.tHead ? tbody.parentElement.tHead.rows[0].cells.length : 2;
    tr.append(td);
    tbody.replaceChildren(tr);
  }
  function bars(container, items, label) {
    // items: [{name, value}] drawn as horizontal bars
    const h = 20, w = 300, left = 120;
    const max = Math.max(1e-12, ...items.map((i) => i.value));
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `0 0 ${w + 60} ${Math.max(1, items.length) * h + 4}`);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", label);
    items.forEach((it, i) => {
      const y = i * h + 2;
      const t = document.createElementNS(SVG, "text");
      t.setAttribute("x", 0); t.setAttribute("y", y + 14); t.textContent = it.name;
      const r = document.createElementNS(SVG, "rect");
      r.setAttribute("x", left); r.setAttribute("y", y + 3); r.setAttribute("height", h - 8);
      r.setAttribute("width", Math.max(1, ((w - left) * it.value) / max));
      r.setAttribute("fill", it.color || "#1f6feb"); r.setAttribute("rx", 3);
      const v = document.createElementNS(SVG, "text");
      v.setAttribute("x", left + ((w - left) * it.value) / max + 6); v.setAttribute("y", y + 14);
      v.textContent = it.shown !== undefined ? it.shown : String(it.value);
      svg.append(t, r, v);
    });
    container.replaceChildren(svg);
  }
  const LINE_COLORS = ["#1f6feb", "#cf222e", "#2da44e", "#bf8700", "#8250df", "#57606a"];
  function lines(container, t) {
    // t: {bucket_s, start, runs: [n], share: {node: [share|null]}} drawn as one line per node
    const w = 360, h = 140, left = 34, bottom = 18, top = 6, n = t.runs.length;
    const x = (i) => left + ((w - left - 8) * i) / Math.max(1, n - 1);
    const y = (v) => top + (h - top - bottom) * (1 - v);
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `0 0 ${w} ${h + 18 * Object.keys(t.share).length}`);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "Escalation share per node over time");
    for (const v of [0, 0.5, 1]) {
      const g = document.createElementNS(SVG, "line");
      g.setAttribute("x1", left); g.setAttribute("x2", w - 8);
      g.setAttribute("y1", y(v)); g.setAttribute("y2", y(v)); g.setAttribute("class", "grid");
      const l = document.createElementNS(SVG, "text");
      l.setAttribute("x", 0); l.setAttribute("y", y(v) + 4); l.textContent = (100 * v) + "%";
      svg.append(g, l);
    }
    const ago = document.createElementNS(SVG, "text");
    ago.setAttribute("x", left); ago.setAttribute("y", h - 2);
    ago.textContent = `-${Math.round((n * t.bucket_s) / 60)} min`;
    const nowLabel = document.createElementNS(SVG, "text");
    nowLabel.setAttribute("x", w - 40); nowLabel.setAttribute("y", h - 2); nowLabel.textContent = "now";
    svg.append(ago, nowLabel);
    Object.keys(t.share).forEach((node, k) => {
      const color = LINE_COLORS[k % LINE_COLORS.length];
      const pts = [];
      t.share[node].forEach((v, i) => { if (v !== null) pts.push(`${x(i)},${y(v)}`); });
      const pl = document.createElementNS(SVG, "polyline");
      pl.setAttribute("points", pts.join(" ")); pl.setAttribute("fill", "none");
      pl.setAttribute("stroke", color); pl.setAttribute("stroke-width", 2);
      pl.setAttribute("data-node", node);
      const key = document.createElementNS(SVG, "text");
      key.setAttribute("x", left); key.setAttribute("y", h + 14 + 18 * k);
      key.setAttribute("fill", color); key.textContent = "— " + node;
      svg.append(pl, key);
    });
    if (!Object.keys(t.share).length) {
      const none = document.createElementNS(SVG, "text");
      none.setAttribute("x", left + 10); none.setAttribute("y", y(0.5));
      none.textContent = t.runs.some((r) => r > 0) ? "no escalation in this window" : "no run yet";
      svg.append(none);
    }
    container.replaceChildren(svg);
  }
  const COLORS = { ok: "#2da44e", escalated: "#1f6feb", pending_escalation: "#bf8700",
    refused: "#8250df", error: "#cf222e" };

  function drawSummary(s) {
    const total = s.runs.total;
    $("runs-total").textContent = num(total);
    const statuses = Object.keys(s.runs.by_status).sort();
    fill($("runs-table").tBodies[0], statuses.map((k) => [k, s.runs.by_status[k]]));
    bars($("runs-chart"), statuses.map((k) => ({ name: k, value: s.runs.by_status[k],
      color: COLORS[k] })), "Runs per status");
    const p = s.planner;
    fill($("planner-table").tBodies[0], [
      [{ head: true, text: "Planner calls" }, p.calls],
      [{ head: true, text: "Planner share (calls per run)" },
        { text: p.share === null ? "–" : (100 * p.share).toFixed(1) + " %", cls: "num" }],
      [{ head: true, text: "Planner spend" }, { text: usd(p.spend_usd), cls: "num" }],
      [{ head: true, text: "All-planner estimate" },
        { text: usd(p.all_planner_estimate_usd), cls: "num" }],
    ]);
    bars($("spend-chart"), [
      { name: "planner spend", value: p.spend_usd, shown: usd(p.spend_usd), color: "#1f6feb" },
      { name: "all-planner est.", value: p.all_planner_estimate_usd,
        shown: usd(p.all_planner_estimate_usd), color: "#8b949e" },
    ], "Planner spend against the all-planner estimate");
    lines($("share-chart"), s.timeline);
    const nodes = Object.keys(s.escalations).sort();
    if (nodes.length) {
      fill($("esc-table").tBodies[0], nodes.map((n) => {
        const e = s.escalations[n];
        return [n, e.escalated || 0, e.pending || 0, e.local || 0];
      }));
    } else empty($("esc-table").tBodies[0], "No escalation yet.");
    const lat = s.latency.recent;
    const rows = [
      [{ head: true, text: `Latency p50 (last ${lat.n} runs)` }, { text: ms(lat.p50), cls: "num" }],
      [{ head: true, text: `Latency p95 (last ${lat.n} runs)` }, { text: ms(lat.p95), cls: "num" }],
      [{ head: true, text: "Outbox pending" },
        { text: s.outbox_pending === null ? "unknown" : num(s.outbox_pending), cls: "num" }],
    ];
    const circuits = Object.keys(s.circuits).sort();
    for (const c of circuits) {
      rows.push([{ head: true, text: "Circuit " + c },
        { text: s.circuits[c].replace("_", " "), cls: "num state-" + s.circuits[c] }]);
    }
    if (!circuits.length) rows.push([{ head: true, text: "Circuits" }, { text: "none", cls: "num" }]);
    fill($("health-table").tBodies[0], rows);
    const versions = Object.keys(s.model_versions).sort();
    if (versions.length) {
      fill($("versions-table").tBodies[0], versions.map((n) => [n, s.model_versions[n]]));
    } else empty($("versions-table").tBodies[0], "No learnable node.");
    if (s.shadow.length) {
      fill($("shadow-table").tBodies[0], s.shadow.map((r) => [r.node, r.version, r.n,
        { text: r.agreement === null ? "–" : (100 * r.agreement).toFixed(1) + " %", cls: "num" }]));
    } else empty($("shadow-table").tBodies[0], "No shadow running.");
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  }

  async function post(id, label, row) {
    $("review-status").textContent = "Saving…";
    const r = await fetch("/ui/api/label", { method: "POST", credentials: "same-origin",
      headers: { "content-type": "application/json", "x-shoal-ui": "1" },
      body: JSON.stringify({ id: id, label: label }) });
    if (r.ok) {
      $("review-status").textContent = "Labelled " + label + ".";
      row.remove();
      refreshReview();
    } else {
      const body = await r.json().catch(() => ({}));
      $("review-status").textContent = "Not saved: " + ((body.error && body.error.message) || r.status);
    }
  }

  function drawReview(q) {
    $("review-total").textContent = "(" + q.total + " waiting)";
    const tbody = $("review-table").tBodies[0];
    tbody.replaceChildren();
    if (!q.data.length) { empty(tbody, "Nothing to review."); return; }
    for (const e of q.data) {
      const tr = document.createElement("tr");
      const proposed = e.planner_label || e.local_label;
      tr.append(el("td", e.node), el("td", e.text, "text"),
        el("td", (e.local_label || "–") + (e.local_confidence === null ? ""
          : " (" + Number(e.local_confidence).toFixed(2) + ")")),
        el("td", proposed || "–"));
      const td = el("td"); const box = el("div", null, "actions");
      if (proposed) {
        const ok = el("button", "Confirm " + proposed, "primary confirm");
        ok.type = "button";
        ok.addEventListener("click", () => post(e.id, proposed, tr));
        box.append(ok);
      }
      const labels = (q.labels[e.node] || []);
      if (labels.length) {
        const sel = el("select", null, "correct-label");
        sel.setAttribute("aria-label", "Correct label");
        for (const l of labels) { const o = el("option", l); o.value = l; sel.append(o); }
        const fix = el("button", "Correct", "correct"); fix.type = "button";
        fix.addEventListener("click", () => post(e.id, sel.value, tr));
        box.append(sel, fix);
      }
      td.append(box); tr.append(td); tbody.append(tr);
    }
  }

  async function getJson(path) {
    const r = await fetch(path, { credentials: "same-origin", cache: "no-store" });
    if (r.status === 401) { window.location.assign("/ui/login"); return null; }
    if (!r.ok) return { __status: r.status };
    return r.json();
  }
  async function refreshSummary() {
    const s = await getJson("/ui/api/summary");
    if (s && !s.__status) drawSummary(s);
  }
  async function refreshReview() {
    const q = await getJson("/ui/api/review");
    if (q && q.__status === 403) {
      $("review-note").textContent = "This key lacks the review scope.";
    } else if (q && !q.__status) drawReview(q);
  }
  function tick() { refreshSummary(); refreshReview(); }
  tick();
  setInterval(refreshSummary, REFRESH_MS);
  setInterval(refreshReview, 4 * REFRESH_MS);
})();
