"""Soak test: many messages through the healthcare cascade's local path, bounded concurrency.

Graph: examples/healthcare/cascade.yaml cut after ``triage`` (guard -> mask -> triage) with
escalation off, built as benchmarks/cascade.py builds its local pass (``prefix_spec``, the
escalation policy files kept with only the cut's nodes, output falling back to the guard's). Why
this path and not the whole cascade: the rest (``answer`` generating with SmolLM2 on CPU, about a
second a message, plus planner calls) would make 10,000 messages take hours, and pointing
SHOAL_PLANNER_URL at a closed port would only soak the failure path. The local path is where
every message goes (guard, Presidio masking with its per-run pseudonym vault, ONNX triage), so it
is what a long-running service holds in memory. The graph is rebuilt here rather than imported
from cascade.py so that sklearn and matplotlib do not inflate the baseline RSS.

Messages: the texts of examples/healthcare/data/{test,train,dev}.jsonl cycled with unique ids
(``soak-00001`` ...), generated lazily and fed to ``Graph.astream_batch`` (``--concurrency``,
default 8); only ids, statuses and latencies are kept, never the results.

Measured: throughput overall and per ``--window`` messages (default 1,000), also per CPU second
of this process with the 1-minute load average beside it (other work on the machine slows the
wall-clock figure much more than the CPU one); RSS (psutil if installed, else /proc/self/status
VmRSS) before the graph is built, after it is built (before the warm-up), after a warm-up of
``--warmup`` messages (the start: loading and first calls are not growth), at every window and at
the end, plus the peak; growth = (end - start) / start, and a least-squares slope over the
windows (MB per 1,000 messages) to tell a plateau from a leak. Per window also the live privacy
vaults holding values (``active_vaults()``: at most the runs in flight, so at most
``--concurrency``; 0 at the
end) and the number of objects the garbage collector tracks. Records: lost = inputs - distinct
result ids, duplicates, ids not among the inputs, counts per status (``ok`` / ``refused``
expected; errors listed by code).

Targets (from the issue): RSS growth < 10%, lost records 0.

Run: python benchmarks/soak.py [--n 10000] [--concurrency 8] [--warmup 200] [--window 1000];
writes benchmarks/results/soak.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import importlib.util
import json
import os
import platform
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from shoal.graphs.calibration import calibration_graph
from shoal.graphs.runtime import Graph
from shoal.observability import configure_logging
from shoal.policies.privacy import Vault

ROOT = Path(__file__).resolve().parent.parent
GRAPH = ROOT / "examples/healthcare/cascade.yaml"
DATA_DIR = ROOT / "examples/healthcare/data"
SPLITS = ("test", "train", "dev")
RESULTS = ROOT / "benchmarks/results"
NODE = "triage"
TARGETS = {"rss_growth_max": 0.10, "lost_max": 0}
EXPECTED_STATUSES = frozenset({"ok", "refused"})


# --- memory --------------------------------------------------------------------------------------


RSS_SOURCE = ("psutil" if importlib.util.find_spec("psutil") is not None  # not a dependency
              else "/proc/self/status VmRSS")


def rss_mb() -> float:
    if RSS_SOURCE == "psutil":
        import psutil  # type: ignore[import-untyped, unused-ignore]

        return float(psutil.Process().memory_info().rss) / 2**20
    return _proc_status_kb("VmRSS") / 1024


def peak_rss_mb() -> float | None:
    try:
        return _proc_status_kb("VmHWM") / 1024
    except (OSError, ValueError):
        return None


def _proc_status_kb(field: str) -> float:
    text = Path("/proc/self/status").read_text(encoding="ascii")
    found = re.search(rf"^{field}:\s+(\d+)\s+kB", text, re.MULTILINE)
    if found is None:
        raise ValueError(f"/proc/self/status has no {field}")
    return float(found.group(1))


def active_vaults() -> int:
    """Pseudonym vaults still holding values: a run's scope empties its vault when the run ends,
    so at most the runs in flight, and 0 after the last."""
    return sum(1 for o in gc.get_objects() if isinstance(o, Vault) and len(o))


# --- graph and messages --------------------------------------------------------------------------


def local_graph() -> Graph:
    """The cascade cut after triage, escalation off, as ``shoal calibrate --planner oracle``
    builds it (and benchmarks/cascade.py's local pass)."""
    return calibration_graph(GRAPH, NODE, "oracle")


def load_texts(splits: Sequence[str]) -> list[str]:
    texts: list[str] = []
    for split in splits:
        lines = (DATA_DIR / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
        texts += [json.loads(line)["text"] for line in lines if line.strip()]
    return texts


def messages(texts: Sequence[str], n: int, prefix: str, fed: list[int]
             ) -> Iterator[tuple[str, str]]:
    """``n`` (id, text) pairs cycling through ``texts``, made one at a time; ``fed[0]`` counts
    how many the graph has pulled."""
    width = max(5, len(str(n)))
    for k in range(n):
        fed[0] += 1
        yield f"{prefix}-{k + 1:0{width}d}", texts[k % len(texts)]


# --- the run -------------------------------------------------------------------------------------


async def soak(graph: Graph, texts: Sequence[str], *, n: int, concurrency: int, warmup: int,
               window: int, console: Console) -> dict[str, Any]:
    rss_pre_warmup = rss_mb()
    warm_fed = [0]
    t0 = time.perf_counter()
    warm_statuses: Counter[str] = Counter()
    async for result in graph.astream_batch(messages(texts, warmup, "warmup", warm_fed),
                                            concurrency=concurrency):
        warm_statuses[result.status] += 1
    warm_s = time.perf_counter() - t0
    gc.collect()  # the warm-up's garbage is not the soak's growth
    rss_start = rss_mb()
    console.print(f"warm-up: {warmup} messages in {warm_s:.1f} s; RSS {rss_pre_warmup:.1f} -> "
                  f"{rss_start:.1f} MB")

    fed = [0]
    seen: set[str] = set()
    duplicates = 0
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    latencies: list[float] = []
    windows: list[dict[str, Any]] = []
    done = 0
    load_start = _loadavg()
    cpu_start = cpu_last = time.process_time()
    start = last = time.perf_counter()
    async for result in graph.astream_batch(messages(texts, n, "soak", fed),
                                            concurrency=concurrency):
        done += 1
        if result.id in seen:
            duplicates += 1
        seen.add(result.id)
        statuses[result.status] += 1
        if result.status == "error":
            errors[str(result.error.code) if result.error else "?"] += 1
        latencies.append(float(result.latency_ms or 0.0))
        if done % window == 0 or done == n:
            now, cpu = time.perf_counter(), time.process_time()
            size = done - (windows[-1]["end"] if windows else 0)
            windows.append({
                "end": done,
                "seconds": round(now - start, 2),
                "throughput_msgs_per_s": round(size / (now - last), 1),
                "msgs_per_cpu_s": round(size / (cpu - cpu_last), 1) if cpu > cpu_last else None,
                "loadavg_1min": _load1(),
                "rss_mb": round(rss_mb(), 1),
                "active_vaults": active_vaults(),
                "gc_objects": len(gc.get_objects()),
            })
            last, cpu_last = now, cpu
            w = windows[-1]
            console.print(f"  {done:>6} msgs  {w['seconds']:>7.1f} s  "
                          f"{w['throughput_msgs_per_s']:>6.1f} msgs/s  RSS {w['rss_mb']:.1f} MB"
                          f"  vaults {w['active_vaults']}  gc objects {w['gc_objects']}  "
                          f"load {w['loadavg_1min']}")
    seconds = time.perf_counter() - start
    cpu_s = time.process_time() - cpu_start
    rss_end = rss_mb()
    inputs = fed[0]
    expected = {f"soak-{k + 1:0{max(5, len(str(n)))}d}" for k in range(n)}
    slope = _slope([w["end"] for w in windows], [w["rss_mb"] for w in windows])
    return {
        "warmup": {"messages": warm_fed[0], "seconds": round(warm_s, 1),
                   "statuses": dict(warm_statuses)},
        "seconds": round(seconds, 1),
        "throughput_msgs_per_s": round(done / seconds, 1),
        "cpu_seconds": round(cpu_s, 1),
        "msgs_per_cpu_s": round(done / cpu_s, 1) if cpu_s > 0 else None,
        "loadavg": {"start": load_start, "end": _loadavg()},
        "windows": windows,
        "rss_pre_warmup_mb": round(rss_pre_warmup, 1),
        "rss_start_mb": round(rss_start, 1),
        "rss_end_mb": round(rss_end, 1),
        "rss_growth": round((rss_end - rss_start) / rss_start, 4),
        "rss_slope_mb_per_1000": None if slope is None else round(slope * 1000, 2),
        "inputs": inputs,
        "results": done,
        "distinct_results": len(seen),
        "lost": inputs - len(seen & expected),
        "duplicates": duplicates,
        "unexpected_ids": len(seen - expected),
        "statuses": dict(sorted(statuses.items())),
        "errors": dict(sorted(errors.items())),
        "active_vaults_at_end": active_vaults(),
        "latency_ms": {"p50": round(_pct(latencies, 50), 2),
                       "p95": round(_pct(latencies, 95), 2)},
    }


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _load1() -> float | None:
    load = _loadavg()
    return None if load is None else load[0]


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    if len(xs) < 2:
        return None
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else None


def _pct(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), NaN for no values."""
    return float(np.percentile(values, q)) if len(values) else float("nan")


# --- output --------------------------------------------------------------------------------------


def report(console: Console, res: dict[str, Any]) -> dict[str, bool]:
    t = Table(title=f"soak: {res['n']} messages, concurrency {res['concurrency']}",
              title_justify="left")
    for col in ("messages", "s", "msgs/s (window)", "msgs / CPU s", "load 1 min", "RSS MB",
                "vaults", "gc objects"):
        t.add_column(col, justify="right")
    t.add_row("start", "0.0", "", "", "", f"{res['rss_start_mb']:.1f}", "", "")
    for w in res["windows"]:
        t.add_row(str(w["end"]), f"{w['seconds']:.1f}", f"{w['throughput_msgs_per_s']:.1f}",
                  str(w["msgs_per_cpu_s"]), str(w["loadavg_1min"]), f"{w['rss_mb']:.1f}",
                  str(w["active_vaults"]), str(w["gc_objects"]))
    console.print(t)
    console.print(
        f"throughput {res['throughput_msgs_per_s']} msgs/s over {res['seconds']} s "
        f"({res['msgs_per_cpu_s']} msgs per CPU second; load average {res['loadavg']}); "
        f"latency p50 "
        f"{res['latency_ms']['p50']} ms, p95 {res['latency_ms']['p95']} ms; RSS before graph "
        f"{res['rss_before_graph_mb']} MB, pre-warm-up {res['rss_pre_warmup_mb']} MB, start "
        f"{res['rss_start_mb']} MB, end {res['rss_end_mb']} MB, peak {res['rss_peak_mb']} MB; "
        f"slope {res['rss_slope_mb_per_1000']} MB / 1000 msgs")
    console.print(
        f"records: {res['inputs']} in, {res['results']} out, {res['distinct_results']} distinct, "
        f"lost {res['lost']}, duplicates {res['duplicates']}, unexpected ids "
        f"{res['unexpected_ids']}; statuses {res['statuses']}; errors {res['errors'] or 0}")
    met = {
        "rss_growth": res["rss_growth"] < TARGETS["rss_growth_max"],
        "lost": res["lost"] <= TARGETS["lost_max"],
        "statuses_ok_or_refused": set(res["statuses"]) <= EXPECTED_STATUSES,
    }
    rows = (("RSS growth (end vs start after warm-up)", f"< {TARGETS['rss_growth_max']:.0%}",
             f"{res['rss_growth']:+.2%}", met["rss_growth"]),
            ("lost records", "0", str(res["lost"]), met["lost"]),
            ("every status ok / refused", "yes", ", ".join(res["statuses"]),
             met["statuses_ok_or_refused"]))
    tt = Table(title="verdicts", title_justify="left")
    for col in ("target", "wanted", "measured", "met"):
        tt.add_column(col)
    for name, want, got, ok in rows:
        tt.add_row(name, want, got, "met" if ok else "NOT MET")
    console.print(tt)
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="messages in the soak")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=200,
                        help="messages run before the start RSS is taken")
    parser.add_argument("--window", type=int, default=1000,
                        help="messages per throughput / RSS sample")
    parser.add_argument("--splits", default=",".join(SPLITS),
                        help="comma-separated data splits whose texts are cycled")
    parser.add_argument("--output", default=str(RESULTS / "soak.json"))
    args = parser.parse_args()
    if args.n < 1 or args.concurrency < 1 or args.warmup < 0 or args.window < 1:
        parser.error("--n, --concurrency and --window must be positive, --warmup >= 0")
    configure_logging("warning")
    console = Console(width=None if sys.stdout.isatty() else 150)
    started = time.perf_counter()

    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    texts = load_texts(splits)
    rss_before_graph = rss_mb()
    graph = local_graph()
    res = asyncio.run(soak(graph, texts, n=args.n, concurrency=args.concurrency,
                           warmup=args.warmup, window=args.window, console=console))
    runtime = time.perf_counter() - started
    results: dict[str, Any] = {
        "benchmark": "soak",
        "graph": "examples/healthcare/cascade.yaml cut after triage: guard -> mask -> triage, "
                 "escalation off",
        "data": {"splits": splits, "distinct_texts": len(texts),
                 "ids": "soak-00001 ... (texts cycled)"},
        "n": args.n,
        "concurrency": args.concurrency,
        "window": args.window,
        "rss_source": RSS_SOURCE,
        "rss_before_graph_mb": round(rss_before_graph, 1),
        **res,
        "rss_peak_mb": None,
        "targets": {"wanted": TARGETS | {"statuses": sorted(EXPECTED_STATUSES)}},
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(),
                    "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")},
        "runtime_s": round(runtime, 1),
    }
    peak = peak_rss_mb()
    results["rss_peak_mb"] = None if peak is None else round(peak, 1)
    results["targets"]["met"] = report(console, results)

    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    console.print(f"wrote {out}; runtime {runtime:.1f} s")


if __name__ == "__main__":
    main()
