"""Beyond one process: the same batch on the local engine and on Ray with 1 and 2 graph workers,
and the Postgres load of the shared state per escalation. Side by side in one run.

Throughput: the healthcare triage graph's local path (privacy masker -> triage classifier, no
planner) over the healthcare test split (635 messages), run three ways as the user runs it,
``shoal run --input --output`` in a subprocess:

* ``local``: this machine, one process (``--engine local``, the default concurrency);
* ``ray_1``: ``--engine ray --workers 1``: a local Ray started by the command, one graph actor
  with one CPU;
* ``ray_2``: ``--engine ray --workers 2``: two graph actors, one CPU each.

For each: the wall time of the whole command (start-up, model loads and Ray included), the time
to the first result line, and the steady rate (results written after the first line, per second
after it). Every run's statuses and labels are compared with the local run's: they must agree.
On two cores Ray's own processes (GCS, raylet, object store, the driver) share the cores with
the graph actors: the ratios say what Ray costs and gains *here*, not on a cluster.

Postgres: the triage graph with the state in a real Postgres (``SHOAL_DB``; binaries from the
``pgserver`` wheel) and a real ``llama_cpp.server`` planner, over the first ``--escalations``
messages, twice: as shipped (its calibrated thresholds) and with every message wanting the
planner (``escalate_below: 0.99``). And one graph's shared planner-share window alone: decisions
per second from 1 and 4 threads (each holds the graph's advisory lock for its transaction).
The database's own counters (``pg_stat_database``: transactions, rows inserted, updated and
read) around each run, per message and per planner call: what the shared state costs the
database.

Results: ``benchmarks/results/scale.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from shoal.models.local_server import serve_embedded

ROOT = Path(__file__).resolve().parent.parent
HEALTH = ROOT / "examples" / "healthcare"
TEST = HEALTH / "data" / "test.jsonl"
RESULTS = ROOT / "benchmarks" / "results" / "scale.json"
SHOAL = Path(sys.executable).parent / "shoal"


def triage_graph(tmp: Path, *, escalation: bool, everything: bool = False) -> Path:
    text = (HEALTH / "triage.yaml").read_text().replace(
        "path: models/triage.onnx", f"path: {HEALTH / 'models' / 'triage.onnx'}").replace(
        "policies: [policies/triage-calibrated.yaml]",
        f"policies: [{HEALTH / 'policies' / 'triage-calibrated.yaml'}]")
    if everything:
        text = text.replace(f"policies: [{HEALTH / 'policies' / 'triage-calibrated.yaml'}]",
                            "policies: []").replace("escalate_below: 0.5",
                                                    "escalate_below: 0.99")
    if not escalation:
        text = text[:text.index("\nescalation:")] + "\n"
    path = tmp / ("escalating.yaml" if escalation else "local.yaml")
    path.write_text(text)
    return path


def messages(limit: int | None = None) -> list[dict[str, str]]:
    rows = [json.loads(line) for line in TEST.read_text().splitlines() if line.strip()]
    return [{"id": r["id"], "text": r["text"]} for r in rows[:limit]]


def timed_run(args: list[str], output: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run ``shoal run ...`` and watch its output file: wall time, first line, steady rate."""
    started = time.perf_counter()
    process = subprocess.Popen([str(SHOAL), "run", *args, "--output", str(output),
                                "--no-progress"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    first_s: float | None = None
    first_lines = 0
    while process.poll() is None:
        if first_s is None and output.exists():
            lines = output.read_text().count("\n")
            if lines:
                first_s, first_lines = time.perf_counter() - started, lines
        time.sleep(0.05)
    wall = time.perf_counter() - started
    stderr = process.stderr.read() if process.stderr else ""
    if process.returncode != 0:
        raise SystemExit(f"shoal run {' '.join(args)} failed:\n{stderr[-3000:]}")
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    if first_s is None:
        first_s, first_lines = wall, len(rows)
    steady = ((len(rows) - first_lines) / (wall - first_s)
              if wall > first_s and len(rows) > first_lines else None)
    return {"records": len(rows), "wall_s": round(wall, 2), "first_result_s": round(first_s, 2),
            "msg_per_s_overall": round(len(rows) / wall, 2),
            "msg_per_s_steady": round(steady, 2) if steady else None,
            "_rows": rows}


def outcome(row: dict[str, Any]) -> tuple[Any, ...]:
    output = row.get("output")
    return row["id"], row["status"], output.get("label") if isinstance(output, dict) else None


def throughput(tmp: Path, console: Console, env: dict[str, str]) -> dict[str, Any]:
    graph = triage_graph(tmp, escalation=False)
    data = tmp / "in.jsonl"
    rows = messages()
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    runs: dict[str, Any] = {}
    for name, extra in (("local", []), ("ray_1", ["--engine", "ray", "--workers", "1"]),
                        ("ray_2", ["--engine", "ray", "--workers", "2"])):
        console.print(f"{name}: {len(rows)} messages...")
        runs[name] = timed_run([str(graph), "--input", str(data), *extra], tmp / f"{name}.jsonl",
                               env)
        console.print(f"  {runs[name]['wall_s']} s, steady {runs[name]['msg_per_s_steady']} "
                      "msg/s")
    reference = [outcome(r) for r in runs["local"]["_rows"]]
    for run in runs.values():
        run["same_statuses_and_labels_as_local"] = [outcome(r) for r in run.pop("_rows")] == (
            reference)
    local = runs["local"]
    for name in ("ray_1", "ray_2"):
        run = runs[name]
        run["wall_ratio_vs_local"] = round(local["wall_s"] / run["wall_s"], 3)
        if run["msg_per_s_steady"] and local["msg_per_s_steady"]:
            run["steady_ratio_vs_local"] = round(
                run["msg_per_s_steady"] / local["msg_per_s_steady"], 3)
    if runs["ray_1"]["msg_per_s_steady"] and runs["ray_2"]["msg_per_s_steady"]:
        runs["ray_2_vs_ray_1_steady"] = round(
            runs["ray_2"]["msg_per_s_steady"] / runs["ray_1"]["msg_per_s_steady"], 3)
    return runs


def pg_counters(url: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted, "
            "tup_fetched, tup_returned FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
        conn.execute("SELECT pg_stat_clear_snapshot()")
    assert row is not None
    keys = ("xact_commit", "xact_rollback", "tup_inserted", "tup_updated", "tup_deleted",
            "tup_fetched", "tup_returned")
    return dict(zip(keys, (int(v) for v in row), strict=True))


def pg_run(graph: Path, data: Path, out: Path, env: dict[str, str], url: str
           ) -> dict[str, Any]:
    """One ``shoal run`` against the database ``url``; its results and what it cost the
    database (counter deltas of pg_stat_database around it)."""
    time.sleep(1.0)  # the statistics collector reports at most every 500 ms
    before = pg_counters(url)
    run = timed_run([str(graph), "--input", str(data)], out, {**env, "SHOAL_DB": url})
    time.sleep(1.0)
    after = pg_counters(url)
    results = run.pop("_rows")
    delta = {k: after[k] - before[k] for k in before}
    delta["xact_commit"] -= 1  # the counter query of `before` is a transaction too
    decisions = sum(1 for r in results for node in r["nodes"] if node.get("reason")
                    and node["node"] != "mask")
    wanted = sum(1 for r in results for node in r["nodes"] if node.get("escalate"))
    calls = sum(1 for r in results for node in r["nodes"] if node.get("escalated"))
    n = len(results)
    return {"messages": n, "escalations_wanted": wanted, "planner_calls": calls,
            "statuses": {st: sum(1 for r in results if r["status"] == st)
                         for st in sorted({r["status"] for r in results})},
            "wall_s": run["wall_s"], "counters_delta": delta,
            "per_message": {k: round(v / n, 2) for k, v in delta.items()},
            "per_planner_call": ({k: round(v / calls, 2) for k, v in delta.items()}
                                 if calls else None),
            "_decisions_with_reason": decisions}


def _decide_many(budget: Any, n: int) -> None:
    for _ in range(n):
        budget.decide(True)


def budget_ceiling(url: str, n: int = 1200) -> dict[str, Any]:
    """Decisions per second on one graph's shared planner-share window, from 1 and 4 threads:
    each decision holds the graph's advisory lock for its transaction, so this bounds the
    decisions per second of that graph for the whole cluster (on this database)."""
    from concurrent.futures import ThreadPoolExecutor

    from shoal.policies.escalation.budget import BudgetSpec
    from shoal.policies.escalation.budget_postgres import SharedShareBudget

    out: dict[str, Any] = {}
    for threads in (1, 4):
        budget = SharedShareBudget(BudgetSpec(max_share=0.5, window=200), url=url,
                                   graph=f"bench-{threads}")
        budget.decide(False)  # migrations and the pool's first connection: not counted
        each = n // threads
        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(_decide_many, [budget] * threads, [each] * threads))
        elapsed = time.perf_counter() - started
        out[f"threads_{threads}"] = {"decisions": each * threads,
                                     "per_s": round(each * threads / elapsed, 1),
                                     "ms_each": round(elapsed / (each * threads) * 1000, 3)}
    return out


def postgres_load(tmp: Path, console: Console, env: dict[str, str], n: int) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs, without XDG_RUNTIME_DIR
        import pgserver

        server = pgserver.get_server(tmp / "pg", cleanup_mode="stop")
    try:
        import psycopg

        admin = str(server.get_uri())
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE scale")
        url = admin.replace("/postgres?", "/scale?", 1)
        rows = messages(n)
        data = tmp / "pg_in.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
        shipped = triage_graph(tmp, escalation=True)
        (tmp / "shipped.yaml").write_text(shipped.read_text())
        every = triage_graph(tmp, escalation=True, everything=True)
        # The first run creates the tables (migrations): not counted.
        warm = tmp / "warm.jsonl"
        warm.write_text(data.read_text().splitlines(keepends=True)[0])
        timed_run([str(every), "--input", str(warm)], tmp / "warm_out.jsonl",
                  {**env, "SHOAL_DB": url})
        out: dict[str, Any] = {}
        for name, graph in (("as_shipped", tmp / "shipped.yaml"), ("every_message", every)):
            console.print(f"postgres, {name}: {len(rows)} messages...")
            out[name] = pg_run(graph, data, tmp / f"pg_{name}.jsonl", env, url)
            out[name].pop("_decisions_with_reason")
        out["budget_decisions"] = budget_ceiling(url)
        out["note"] = ("pg_stat_database of the run's database around each run: every statement "
                       "outside an explicit transaction is one transaction (autocommit). "
                       "as_shipped: the triage graph with its calibrated thresholds; "
                       "every_message: escalate_below 0.99, so every message wants the planner "
                       "(max_share 0.5 over a window of 200 decisions refuses none of 40). "
                       "budget_decisions: SharedShareBudget.decide alone, in threads of one "
                       "process: one transaction under the graph's advisory lock each, so "
                       "decisions of one graph are serialised across every process")
        return out
    finally:
        with contextlib.suppress(Exception):
            server.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--escalations", type=int, default=40,
                        help="messages sent to the planner for the Postgres measurement")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 150)
    started = time.perf_counter()
    load_start = round(os.getloadavg()[0], 2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
    with tempfile.TemporaryDirectory(prefix="shoal-scale-") as t:
        tmp = Path(t)
        env["SHOAL_OUTBOX"] = str(tmp / "outbox.sqlite")
        env["SHOAL_AUDIT_LOG"] = str(tmp / "audit.jsonl")
        runs = throughput(tmp, console, env)
        pg: dict[str, Any] | None = None
        if not args.skip_postgres:
            with serve_embedded(warmup=True) as planner:
                env["SHOAL_PLANNER_URL"] = planner.base_url
                env["SHOAL_PLANNER_MODEL"] = planner.model_id
                pg = postgres_load(tmp, console, env, args.escalations)
    result = {
        "benchmark": "scale",
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_1min": {"start": load_start, "end": round(os.getloadavg()[0], 2)},
                    "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")},
        "versions": {"ray": version("ray"), "shoal": version("shoal")},
        "graph": "examples/healthcare/triage.yaml's local path (masker -> triage), no planner",
        "data": "examples/healthcare/data/test.jsonl (635 messages)",
        "throughput": runs, "postgres": pg,
        "seconds": round(time.perf_counter() - started, 1),
    }
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    table = Table(title="the same batch, three engines (wall time includes start-up)")
    for column in ("engine", "wall s", "first result s", "steady msg/s", "vs local",
                   "same results"):
        table.add_column(column)
    for name in ("local", "ray_1", "ray_2"):
        run = runs[name]
        table.add_row(name, str(run["wall_s"]), str(run["first_result_s"]),
                      str(run["msg_per_s_steady"]), str(run.get("steady_ratio_vs_local", 1.0)),
                      str(run["same_statuses_and_labels_as_local"]))
    console.print(table)
    if pg is not None:
        for name in ("as_shipped", "every_message"):
            run = pg[name]
            console.print(f"postgres, {name}: {run['messages']} messages, "
                          f"{run['planner_calls']} planner calls; per message "
                          f"{run['per_message']}")
        console.print(f"shared budget decisions: {pg['budget_decisions']}")
    console.print(f"results: {args.output}")


if __name__ == "__main__":
    main()
