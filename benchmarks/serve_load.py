"""Bounded load on ``shoal serve`` from a second process over loopback: concurrency 1, 8 and 32.

Setup: the embedded planner (SmolLM2-135M behind a real ``llama_cpp.server``, started here with
``serve_embedded`` unless SHOAL_PLANNER_URL is set); a temporary keys file with one key made by
``shoal keys add``; ``shoal serve examples/healthcare/cascade.yaml`` started as a subprocess on a
free port of 127.0.0.1 with its default settings (``--concurrency 8``: at most 8 runs in flight,
later requests wait in the server; request log at info on stderr, kept in a temporary file), with
SHOAL_OUTBOX and SHOAL_AUDIT_LOG in a temporary directory, and its ``/readyz`` polled until it
answers 200. The server is the real thing: the whole cascade (guard, masking, triage, medical
validator, SmolLM2 reply, compliance check with its audit record, the planner when a node falls
short), behind bearer-key auth.

Load, from this process with ``httpx.AsyncClient``: a few warm-up requests (``--warmup``, not
counted: the server's first calls are slower), then for each concurrency level a fixed number of
``POST /v1/runs`` (``--requests``, default 48), at most ``concurrency`` in flight (a semaphore and
as many connections). Each level sends the same texts (examples/healthcare/data/test.jsonl in
file order, cycled) under its own unique ids (``c08-0001`` ...), so the levels differ only in
concurrency. Per request: the client-side latency (send to full response), the HTTP status, the
RunResult's status and whether its id is the one sent. Per level: wall seconds from the first
send to the last response, requests/s, latency p50 / p95 / p99 (linear interpolation; with 48
requests p99 sits next to the maximum), errors = non-200 answers, transport failures, RunResults
with status ``error`` and wrong ids (must be 0), and counts per status. After the last level the
server's own ``GET /metrics`` is scraped and its runs-by-status counter compared with what this
process sent (warm-up included).

What dominates: SmolLM2, twice. The ``answer`` node generates the reply (up to 96 tokens on the
CPU, about a second) for every message that is not refused, declined or an emergency, three in
four of the test texts; and a node in a quarter to a third of the messages asks the planner
(another SmolLM2, in its own process): triage below its calibrated threshold, or an emergency,
whose fixed reply goes out with the planner's answer attached. A planner call takes seconds (more
when the cores are busy), so those few runs take about half the server's time at concurrency 1.
Everything else (guard, masking, ONNX triage, validator, compliance check with its audit record)
is about 35 ms a run. The two cores are shared by the server, the planner and this client:
throughput is a request or so per second, concurrency helps only while the planner and the local
model can overlap, and beyond the server's 8 runs in flight it adds only queueing (client latency
grows, the server's own run latency and requests/s stay flat). To show it, each level records the
server's run latency next to the client's, the mean milliseconds per node from the RunResults'
traces, and each node's share of the server's run time, with the nodes that asked for the planner
(``escalate`` or ``escalated`` in the trace; their time is mostly the planner's) summed as
``planner``.

Run: python benchmarks/serve_load.py [--requests 48] [--levels 1,8,32] [--warmup 2];
writes benchmarks/results/serve_load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from shoal.agents.responder import ResponderConfig, personal_prompt
from shoal.graphs.loader import load_spec
from shoal.models.llamacpp import LlamaCppModel
from shoal.models.local_server import HOST, free_port, serve_embedded
from shoal.models.specs import LlamaCppModelSpec
from shoal.policies import privacy

ROOT = Path(__file__).resolve().parent.parent
GRAPH = ROOT / "examples/healthcare/cascade.yaml"
DATA = ROOT / "examples/healthcare/data/test.jsonl"
RESULTS = ROOT / "benchmarks/results"
LEVELS = (1, 8, 32)
KEY_NAME = "serve-load"
READY_TIMEOUT_S = 300.0
STOP_GRACE_S = 30.0


# --- the server under load -----------------------------------------------------------------------


def shoal_command() -> list[str]:
    """The ``shoal`` console script of this interpreter's environment."""
    script = Path(sys.executable).parent / "shoal"
    if script.is_file():
        return [str(script)]
    found = shutil.which("shoal")
    if found is None:
        raise SystemExit("no `shoal` command next to this interpreter or on PATH")
    return [found]


def add_key(shoal: Sequence[str], keys_file: Path, env: dict[str, str]) -> str:
    """``shoal keys add`` into ``keys_file``; the key is the last line it prints."""
    proc = subprocess.run([*shoal, "keys", "add", KEY_NAME, "--keys", str(keys_file)],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    lines = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"`shoal keys add` failed (exit {proc.returncode}): "
                         f"{proc.stderr.strip()[-500:]}")
    return lines[-1]


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    startup_s: float

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_bytes()[-16_384:].decode("utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def rss_mb(self) -> float | None:
        return _proc_kb(self.proc.pid, "VmRSS")

    def peak_rss_mb(self) -> float | None:
        return _proc_kb(self.proc.pid, "VmHWM")

    def stop(self) -> dict[str, Any]:
        """SIGTERM, then SIGKILL after ``STOP_GRACE_S``: the exit code and how long it took."""
        t0 = time.perf_counter()
        killed = False
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                killed = True
                self.proc.kill()
                self.proc.wait()
        return {"exit_code": self.proc.returncode, "stop_s": round(time.perf_counter() - t0, 2),
                "killed": killed}


def _proc_kb(pid: int, field: str) -> float | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return None
    found = re.search(rf"^{field}:\s+(\d+)\s+kB", text, re.MULTILINE)
    return None if found is None else round(int(found.group(1)) / 1024, 1)


def start_server(shoal: Sequence[str], options: list[str], env: dict[str, str], tmp: Path,
                 headers: dict[str, str]) -> Server:
    """``shoal serve GRAPH`` on a free port; returns once ``/readyz`` answers 200. A port taken
    between probe and bind is retried with another."""
    for attempt in range(3):
        port = free_port()
        log = tmp / f"serve-{attempt}.log"
        t0 = time.perf_counter()
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*shoal, "serve", str(GRAPH), "--host", HOST, "--port", str(port), *options],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                cwd=tmp)
        server = Server(proc, port, log, 0.0)
        deadline = t0 + READY_TIMEOUT_S
        with httpx.Client(timeout=5.0, trust_env=False, headers=headers) as client:
            while True:
                code = proc.poll()
                if code is not None:
                    tail = server.log_tail()
                    if "address already in use" in tail.lower():
                        break
                    raise SystemExit(f"shoal serve exited with code {code} while starting; "
                                     f"log tail:\n{tail}")
                with contextlib.suppress(httpx.TransportError):
                    if client.get(f"{server.url}/readyz").status_code == 200:
                        server.startup_s = round(time.perf_counter() - t0, 2)
                        return server
                if time.perf_counter() > deadline:
                    server.stop()
                    raise SystemExit(f"shoal serve not ready after {READY_TIMEOUT_S:g} s; "
                                     f"log tail:\n{server.log_tail()}")
                time.sleep(0.1)
    raise SystemExit("no free port for shoal serve after 3 attempts")


# --- load ----------------------------------------------------------------------------------------


def load_texts() -> list[str]:
    lines = DATA.read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines if line.strip()]


def requests_for(prefix: str, texts: Sequence[str], n: int) -> Iterator[tuple[str, str]]:
    for k in range(n):
        yield f"{prefix}-{k + 1:04d}", texts[k % len(texts)]


@dataclass(frozen=True)
class Outcome:
    id: str
    ms: float
    http: int | None
    """The HTTP status; None when the request failed below HTTP."""
    status: str
    """The RunResult's status, else ``http <code>`` or ``transport <ExceptionClass>``."""
    error_code: str | None
    id_matches: bool
    server_ms: float | None
    nodes: dict[str, float]
    """Milliseconds per node that did not ask for the planner."""
    planner: dict[str, float]
    """Milliseconds per node that asked for the planner (``escalate`` or ``escalated``)."""

    @property
    def failed(self) -> bool:
        return self.http != 200 or self.status == "error" or not self.id_matches


async def one(client: httpx.AsyncClient, sem: asyncio.Semaphore, rid: str, text: str
              ) -> Outcome:
    async with sem:
        t0 = time.perf_counter()
        try:
            response = await client.post("/v1/runs", json={"id": rid, "text": text})
        except httpx.HTTPError as exc:
            return Outcome(rid, (time.perf_counter() - t0) * 1000, None,
                           f"transport {type(exc).__name__}", None, False, None, {}, {})
        ms = (time.perf_counter() - t0) * 1000
    if response.status_code != 200:
        return Outcome(rid, ms, response.status_code, f"http {response.status_code}", None,
                       False, None, {}, {})
    try:
        body = response.json()
        status = str(body["status"])
    except (ValueError, KeyError, TypeError):
        return Outcome(rid, ms, 200, "http 200 without a RunResult", None, False, None, {}, {})
    error = body.get("error") or {}
    traces = [t for t in body.get("nodes") or []
              if isinstance(t, dict) and "node" in t and "latency_ms" in t]
    asked = [bool(t.get("escalated") or t.get("escalate")) for t in traces]
    nodes = {str(t["node"]): float(t["latency_ms"]) for t, a in zip(traces, asked, strict=True)
             if not a}
    planner = {str(t["node"]): float(t["latency_ms"]) for t, a in zip(traces, asked, strict=True)
               if a}
    return Outcome(rid, ms, 200, status, error.get("code") if status == "error" else None,
                   body.get("id") == rid, body.get("latency_ms"), nodes, planner)


async def level(url: str, headers: dict[str, str], texts: Sequence[str], *, prefix: str,
                n: int, concurrency: int, timeout_s: float) -> tuple[list[Outcome], float]:
    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout_s,
                                 limits=limits, trust_env=False) as client:
        t0 = time.perf_counter()
        outcomes = await asyncio.gather(*(one(client, sem, rid, text)
                                          for rid, text in requests_for(prefix, texts, n)))
        return list(outcomes), time.perf_counter() - t0


def summarize(outcomes: Sequence[Outcome], seconds: float, concurrency: int,
              server: Server) -> dict[str, Any]:
    ms = [o.ms for o in outcomes]
    server_ms = [o.server_ms for o in outcomes if o.server_ms is not None]
    per_node: dict[str, list[float]] = defaultdict(list)
    planner_ms: list[float] = []
    for o in outcomes:
        for node, node_ms in o.nodes.items():
            per_node[node].append(node_ms)
        planner_ms += o.planner.values()
    return {
        "concurrency": concurrency,
        "requests": len(outcomes),
        "seconds": round(seconds, 2),
        "rps": round(len(outcomes) / seconds, 2),
        "p50_ms": round(_pct(ms, 50), 1),
        "p95_ms": round(_pct(ms, 95), 1),
        "p99_ms": round(_pct(ms, 99), 1),
        "max_ms": round(max(ms), 1),
        "errors": sum(o.failed for o in outcomes),
        "statuses": dict(sorted(Counter(o.status for o in outcomes).items())),
        "error_codes": dict(sorted(Counter(o.error_code for o in outcomes
                                           if o.error_code is not None).items())),
        "wrong_ids": sum(o.http == 200 and not o.id_matches and o.status != "error"
                         for o in outcomes),
        "server_latency_ms": {"p50": round(_pct(server_ms, 50), 1),
                              "p95": round(_pct(server_ms, 95), 1)} if server_ms else None,
        "generated_replies": len(per_node.get("answer", [])),
        "node_ms_mean": {node: round(sum(v) / len(v), 1) for node, v in per_node.items()},
        "server_ms_share": _shares(outcomes),
        "planner_answers": len(planner_ms),
        "planner_node_ms_mean": round(sum(planner_ms) / len(planner_ms), 1)
        if planner_ms else None,
        "loadavg_1min_end": _load1(),
        "server_rss_mb_end": server.rss_mb(),
    }


async def drive(server: Server, headers: dict[str, str], texts: Sequence[str], *,
                levels: Sequence[int], n: int, warmup: int, timeout_s: float,
                console: Console) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    warm, warm_s = await level(server.url, headers, texts, prefix="warmup", n=warmup,
                               concurrency=1, timeout_s=timeout_s) if warmup else ([], 0.0)
    warm_info = {"requests": len(warm), "seconds": round(warm_s, 2),
                 "statuses": dict(Counter(o.status for o in warm)),
                 "errors": sum(o.failed for o in warm)}
    console.print(f"warm-up: {len(warm)} requests in {warm_s:.1f} s, statuses "
                  f"{warm_info['statuses']}")
    rows = []
    for c in levels:
        before = scrape_tokens(server.url, headers)
        outcomes, seconds = await level(server.url, headers, texts, prefix=f"c{c:02d}", n=n,
                                        concurrency=c, timeout_s=timeout_s)
        rows.append(summarize(outcomes, seconds, c, server))
        after = scrape_tokens(server.url, headers)
        by = {b: after[b] - before.get(b, 0) for b in sorted(after)
              if after[b] - before.get(b, 0)}
        made = sum(by.values())
        local = sum(v for b, v in by.items() if b.startswith("llamacpp:"))
        rows[-1]["generated_tokens_by_backend"] = by
        rows[-1]["generated_tokens"] = made
        rows[-1]["generated_tokens_per_s"] = round(made / seconds, 1) if seconds else None
        rows[-1]["in_process_tokens_per_s"] = round(local / seconds, 1) if seconds else None
        r = rows[-1]
        console.print(f"  concurrency {c:>2}: {n} requests in {seconds:.1f} s, {r['rps']} req/s, "
                      f"p50 {r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms, errors {r['errors']}"
                      f", statuses {r['statuses']}")
    return warm_info, rows


# --- the server's own count ----------------------------------------------------------------------


def scrape_tokens(url: str, headers: dict[str, str]) -> dict[str, int]:
    """``shoal_model_generated_tokens_total`` per backend: the server's in-process models
    (``llamacpp:...``) and the planner's answers as it reported them (``openai:...``)."""
    with httpx.Client(timeout=10.0, trust_env=False, headers=headers) as client:
        response = client.get(f"{url}/metrics")
    response.raise_for_status()
    return {str(sample.labels["backend"]): int(sample.value)
            for family in text_string_to_metric_families(response.text)
            if family.name == "shoal_model_generated_tokens"
            for sample in family.samples if sample.name.endswith("_total")}


def raw_generation(texts: Sequence[str], n: int, *, runs: int = 1) -> dict[str, Any]:
    """The responder's model alone in this process, nothing else running but the idle planner:
    the responder's own prompt (system, examples, the masked message) and token limit, one call
    after another (llama.cpp runs one at a time), ``n`` messages, ``runs`` times. Its tokens/s
    is the most the server can generate; the mean of the runs is the reference (this machine's
    rate moves by a fifth between runs minutes apart)."""
    spec = load_spec(GRAPH)[0]
    node = spec.nodes["answer"]
    config = ResponderConfig.model_validate(node.model_extra or {})
    model_spec = spec.models[str(node.model)]
    assert isinstance(model_spec, LlamaCppModelSpec)
    model = LlamaCppModel.from_spec(model_spec, GRAPH.parent)
    masked = [privacy.mask(t).masked for t in texts[:n]]

    async def run() -> tuple[int, float]:
        made, started = 0, time.perf_counter()
        for text in masked:
            out = await model.generate(personal_prompt(text),
                                       max_tokens=config.personal_max_tokens)
            made += out.usage.completion_tokens
        return made, time.perf_counter() - started

    asyncio.run(model.generate([{"role": "user", "content": "Hello"}], max_tokens=4))
    done = []
    for _ in range(runs):
        made, seconds = asyncio.run(run())
        done.append({"generated_tokens": made, "seconds": round(seconds, 2),
                     "tokens_per_s": round(made / seconds, 1)})
    return {"model": model.name, "messages": len(masked),
            "max_tokens": config.personal_max_tokens, "runs": done,
            "tokens_per_s": round(sum(r["tokens_per_s"] for r in done) / len(done), 1)}


def merge_raw(*parts: dict[str, Any]) -> dict[str, Any]:
    """Raw measurements taken at different times, as one: every run, their mean rate."""
    runs = [r for p in parts for r in p["runs"]]
    return {**parts[0], "runs": runs,
            "tokens_per_s": round(sum(r["tokens_per_s"] for r in runs) / len(runs), 1)}


def scrape_runs(url: str, headers: dict[str, str]) -> dict[str, Any]:
    """``GET /metrics``: the counter of runs labelled by ``status`` (summed per status), and
    ``shoal_escalations_total`` summed per outcome."""
    with httpx.Client(timeout=10.0, trust_env=False, headers=headers) as client:
        response = client.get(f"{url}/metrics")
    if response.status_code != 200:
        return {"http": response.status_code, "metric": None, "by_status": {}}
    found: dict[str, Counter[str]] = {}
    escalations: Counter[str] = Counter()
    for family in text_string_to_metric_families(response.text):
        if family.name == "shoal_escalations":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    escalations[sample.labels.get("outcome", "?")] += int(sample.value)
        if family.type != "counter" or "run" not in family.name:
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and "status" in sample.labels:
                found.setdefault(sample.name, Counter())[sample.labels["status"]] += int(
                    sample.value)
    esc = dict(sorted(escalations.items()))
    if not found:
        return {"http": 200, "metric": None, "by_status": {}, "escalations_by_outcome": esc}
    name = min(found, key=len)  # the plainest name: shoal_runs_total over per-node counters
    return {"http": 200, "metric": name, "by_status": dict(sorted(found[name].items())),
            "escalations_by_outcome": esc}


# --- helpers -------------------------------------------------------------------------------------


def _shares(outcomes: Sequence[Outcome]) -> dict[str, float] | None:
    """Where the server's run time went, summed over the level's runs: each node answered
    locally, ``planner`` (nodes answered by the planner) and ``other`` (the rest of the run's
    latency: graph overhead, waiting for a model lock or thread)."""
    total = sum(o.server_ms or 0.0 for o in outcomes)
    if total <= 0:
        return None
    spent: dict[str, float] = defaultdict(float)
    for o in outcomes:
        for node, ms in o.nodes.items():
            spent[node] += ms
        spent["planner"] += sum(o.planner.values())
    spent["other"] = max(total - sum(spent.values()), 0.0)
    return {k: round(v / total, 3) for k, v in sorted(spent.items(), key=lambda kv: -kv[1])}


def _pct(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), NaN for no values."""
    return float(np.percentile(values, q)) if len(values) else float("nan")


def _load1() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def report(console: Console, res: dict[str, Any]) -> None:
    t = Table(title=f"shoal serve under load: {res['graph']}, {res['requests_per_level']} "
                    "POST /v1/runs per level, loopback", title_justify="left")
    for col in ("concurrency", "requests", "s", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors",
                "statuses", "replies generated"):
        t.add_column(col, justify="left" if col == "statuses" else "right")
    for r in res["levels"]:
        t.add_row(str(r["concurrency"]), str(r["requests"]), f"{r['seconds']:.1f}",
                  f"{r['rps']:.2f}", f"{r['p50_ms']:.0f}", f"{r['p95_ms']:.0f}",
                  f"{r['p99_ms']:.0f}", str(r["errors"]),
                  ", ".join(f"{k} {v}" for k, v in r["statuses"].items()),
                  str(r["generated_replies"]))
    console.print(t)
    m = res["metrics"]
    console.print(f"/metrics {m['metric']}: {m['by_status']} (sent {m['sent_by_status']}): "
                  f"{'matches' if m['matches'] else 'DOES NOT MATCH'}")
    nodes = res["levels"][0]["node_ms_mean"] if res["levels"] else {}
    first = res["levels"][0] if res["levels"] else {}
    console.print(f"mean ms per node, planner not asked, at concurrency {first['concurrency']}: "
                  f"{nodes}; {first['planner_answers']} nodes asked the planner, mean "
                  f"{first['planner_node_ms_mean']} ms; share of the server's run time "
                  f"{first['server_ms_share']}" if nodes else "no node traces")
    console.print(f"server: ready in {res['server']['startup_s']} s, RSS peak "
                  f"{res['server']['rss_peak_mb']} MB, exit {res['server']['exit_code']} after "
                  f"SIGTERM in {res['server']['stop_s']} s; planner: {res['planner']}")
    verdict = "0 as required" if res["errors_total"] == 0 else "NOT 0"
    console.print(f"errors: {res['errors_total']} ({verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=48, help="POST /v1/runs per level")
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)),
                        help="comma-separated concurrency levels")
    parser.add_argument("--warmup", type=int, default=2,
                        help="requests sent one at a time before the levels, not counted")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds one request may take, queueing included")
    parser.add_argument("--server-concurrency", type=int, default=8,
                        help="shoal serve --concurrency: runs in flight, more requests wait")
    parser.add_argument("--no-auth", action="store_true",
                        help="run the server with --no-auth instead of a bearer key")
    parser.add_argument("--output", default=str(RESULTS / "serve_load.json"))
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    if (args.requests < 1 or args.warmup < 0 or args.server_concurrency < 1 or not levels
            or min(levels) < 1):
        parser.error("--requests, --server-concurrency and every level must be positive, "
                     "--warmup >= 0")
    console = Console(width=None if sys.stdout.isatty() else 150)
    started = time.perf_counter()
    load_start = _load1()
    texts = load_texts()
    shoal = shoal_command()

    env = dict(os.environ)
    planner_cm: contextlib.AbstractContextManager[Any]
    if env.get("SHOAL_PLANNER_URL"):
        planner_cm = contextlib.nullcontext(None)
    else:
        planner_cm = serve_embedded(warmup=True)
    with planner_cm as planner, tempfile.TemporaryDirectory(prefix="shoal-serve-load-") as t:
        tmp = Path(t)
        if planner is not None:
            env["SHOAL_PLANNER_URL"] = planner.base_url
            env["SHOAL_PLANNER_MODEL"] = planner.model_id
            console.print(f"planner: {planner.base_url} ready in {planner.startup_s:.1f} s")
        env["SHOAL_OUTBOX"] = str(tmp / "outbox.sqlite")
        env["SHOAL_AUDIT_LOG"] = str(tmp / "audit.jsonl")
        headers: dict[str, str] = {}
        if args.no_auth:
            options = ["--no-auth"]
        else:
            keys = tmp / "keys.json"
            headers["Authorization"] = f"Bearer {add_key(shoal, keys, env)}"
            options = ["--keys", str(keys)]
        options += ["--concurrency", str(args.server_concurrency)]
        console.print("the responder's model alone, before the server...")
        raw_before = raw_generation(texts, args.requests)
        server = start_server(shoal, options, env, tmp, headers)
        console.print(f"shoal serve: {server.url} ready in {server.startup_s:.1f} s")
        try:
            warm, rows = asyncio.run(drive(server, headers, texts, levels=levels,
                                           n=args.requests, warmup=args.warmup,
                                           timeout_s=args.timeout, console=console))
            scraped = scrape_runs(server.url, headers)
            peak = server.peak_rss_mb()
        finally:
            stopped = server.stop()
        console.print("the responder's model alone, after the server...")
        raw = merge_raw(raw_before, raw_generation(texts, args.requests))
        console.print(f"  {raw['tokens_per_s']} tokens/s on average "
                      f"({[r['tokens_per_s'] for r in raw['runs']]}; {raw['messages']} messages)")
        for r in rows:
            console.print(f"  concurrency {r['concurrency']:>2}: generated "
                          f"{r['generated_tokens_per_s']} tokens/s "
                          f"({r['generated_tokens_by_backend']}), in-process "
                          f"{r['in_process_tokens_per_s']} tokens/s")
        planner_name = ("embedded SmolLM2-135M-Instruct (Q4_1) behind a real llama_cpp.server "
                        "on 127.0.0.1, started by this benchmark" if planner is not None
                        else "the server at SHOAL_PLANNER_URL")
    sent: Counter[str] = Counter(warm["statuses"])
    for r in rows:
        sent.update(r["statuses"])
    runs_sent = {k: v for k, v in sorted(sent.items()) if not k.startswith(("http", "transport"))}
    runtime = time.perf_counter() - started
    results: dict[str, Any] = {
        "benchmark": "serve_load",
        "graph": "examples/healthcare/cascade.yaml",
        "planner": planner_name,
        "endpoint": "POST /v1/runs",
        "auth": "--no-auth" if args.no_auth else "bearer key from `shoal keys add`",
        "client": "httpx.AsyncClient in a second process, loopback, one connection per slot",
        "data": {"file": "examples/healthcare/data/test.jsonl", "distinct_texts": len(texts),
                 "order": "file order, cycled; the same texts at every level, unique ids"},
        "requests_per_level": args.requests,
        "server_concurrency": args.server_concurrency,
        "warmup": warm,
        "levels": rows,
        "errors_total": sum(r["errors"] for r in rows),
        "raw_generation": raw,
        # The planner here is the same SmolLM2 file in another process on the same cores, so
        # the machine's generation capacity is the raw rate, whichever process generates.
        "generation_vs_raw": {
            str(r["concurrency"]): (round(r["generated_tokens_per_s"] / raw["tokens_per_s"], 3)
                                    if r.get("generated_tokens_per_s") else None)
            for r in rows},
        "in_process_vs_raw": {
            str(r["concurrency"]): (round(r["in_process_tokens_per_s"] / raw["tokens_per_s"], 3)
                                    if r.get("in_process_tokens_per_s") else None)
            for r in rows},
        "metrics": {**scraped, "sent_by_status": runs_sent,
                    "matches": scraped["by_status"] == runs_sent},
        "server": {"startup_s": server.startup_s, "rss_peak_mb": peak, **stopped},
        "machine": {"cpu_count": os.cpu_count(), "loadavg_1min": {"start": load_start,
                                                                   "end": _load1()},
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                    "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")},
        "runtime_s": round(runtime, 1),
    }
    report(console, results)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    console.print(f"wrote {out}; runtime {runtime:.1f} s")


if __name__ == "__main__":
    main()
