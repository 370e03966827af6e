"""The README's Results block is generated from benchmarks/results/, not typed by hand."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_readme_results_match_the_result_files():
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "readme_results.py"),
                           "--check"], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_readme_first_screen_gives_the_two_commands():
    first_screen = "\n".join((REPO / "README.md").read_text().splitlines()[:15])
    assert "make demo" in first_screen
    assert "make test" in first_screen
