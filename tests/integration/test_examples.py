"""The examples run as a user would run them: the installed console script and the SDK script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

QUICKSTART = REPO / "examples" / "quickstart"
SHOAL = Path(sys.executable).parent / "shoal"

pytestmark = pytest.mark.integration


def test_console_script_runs_the_quickstart_batch(tmp_path: Path):
    out = tmp_path / "out.jsonl"
    proc = subprocess.run(
        [str(SHOAL), "run", str(QUICKSTART / "graph.yaml"), "--input",
         str(QUICKSTART / "messages.jsonl"), "--output", str(out), "--no-progress"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    inputs = [line for line in (QUICKSTART / "messages.jsonl").read_text().splitlines()
              if line.strip()]
    assert len(lines) == len(inputs)
    by_id = {r["id"]: r for r in lines}
    assert by_id["q03"]["output"].startswith("If this is an emergency")
    assert by_id["line-12"]["status"] == "error"
    assert by_id["q02"]["nodes"][0]["label"] == "prescription_refill"
    assert "latency per run" in proc.stderr


def test_sdk_example_runs():
    proc = subprocess.run([sys.executable, str(QUICKSTART / "sdk.py")], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "sdk-2: ok: If this is an emergency" in proc.stdout
    assert "sdk-4: error: record 'sdk-4': text is empty" in proc.stdout
