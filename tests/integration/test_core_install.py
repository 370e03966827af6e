"""``pip install shoal`` with no extras, in a fresh venv, used from outside the checkout: the
quickstart validates and runs, none of the extras' libraries is installed, and a graph that needs
one is refused with the agent's FILE:LINE:COL, the extra's name and the command that installs it.

What is installed is the wheel file that ``make dist`` would build: ``python -m build`` (sdist,
then the wheel from the sdist, with build isolation) on a copy of the checkout (pyproject.toml,
README.md, src/), so that building writes no build/ or egg-info into it. ``shoal_dist`` builds
once per session and tests/integration/test_wheel_contents.py lists the same two archives; one
venv serves every test of this module (building and installing take a minute or two; pip's cache
is used).
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]

QUICKSTART = REPO / "examples" / "quickstart"
INSTALL_TIMEOUT_S = 1200
RUN_TIMEOUT_S = 120
# Never part of a build: caches, byte code, setuptools' metadata, editor and OS dot-files.
JUNK = ("__pycache__", "*.pyc", "*.pyo", "*.egg-info", ".*")
# Libraries of the extras [privacy], [llamacpp], [serve] and [train]: none may come with the core.
EXTRA_MODULES = ("presidio_analyzer", "spacy", "llama_cpp", "fastapi", "sklearn")

# What examples/quickstart/graph.yaml does with examples/quickstart/messages.jsonl: id -> (status,
# triage's label, the node that answered). Line 12 is broken JSON on purpose; q07 and q11 match no
# keyword, so triage falls back to "other" and flags them, but the graph has no planner.
EXPECTED: dict[str, tuple[str, str | None, str | None]] = {
    "q01": ("ok", "appointment", "reply"),
    "q02": ("ok", "prescription_refill", "reply"),
    "q03": ("ok", "emergency", "urgent"),
    "q04": ("ok", "billing", "reply"),
    "q05": ("ok", "appointment", "reply"),
    "q06": ("ok", "prescription_refill", "reply"),
    "q07": ("ok", "other", "reply"),
    "q08": ("ok", "appointment", "reply"),
    "q09": ("ok", "billing", "reply"),
    "q10": ("ok", "emergency", "urgent"),
    "q11": ("ok", "other", "reply"),
    "line-12": ("error", None, None),
    "q13": ("ok", "prescription_refill", "reply"),
    "q14": ("ok", "billing", "reply"),
    "q15": ("ok", "emergency", "urgent"),
    "q16": ("ok", "billing", "reply"),
}

PRIVACY_GRAPH = """\
shoal: 1
name: needs-privacy
nodes:
  mask:
    agent: privacy_masker
  reply:
    agent: template_reply
    default: "Thanks, we will get back to you."
edges:
  - mask -> reply
"""


@dataclass(frozen=True)
class ShoalDist:
    sdist: Path  # shoal-VERSION.tar.gz
    wheel: Path  # shoal-VERSION-py3-none-any.whl, built from the sdist
    package: Path  # the copy of src/shoal they were built from (the checkout may change meanwhile)


def is_junk(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in JUNK)


def source_files(root: Path) -> set[str]:
    """Every file under ``root`` (its path relative to ``root``, POSIX), caches and dot-files
    excepted: what a build of it must ship."""
    return {path.relative_to(root).as_posix() for path in root.rglob("*")
            if path.is_file() and not any(is_junk(part) for part in path.relative_to(root).parts)}


@pytest.fixture(scope="session")
def shoal_dist(tmp_path_factory: pytest.TempPathFactory) -> ShoalDist:
    """The sdist and the wheel, built as ``make dist`` builds them, once per session."""
    if importlib.util.find_spec("build") is None:
        pytest.fail("python -m build is missing from the dev venv: pip install -e '.[dev]'")
    root = tmp_path_factory.mktemp("shoal-dist")
    source = root / "shoal-src"
    source.mkdir()
    shutil.copy2(REPO / "pyproject.toml", source)
    shutil.copy2(REPO / "README.md", source)
    for licence in REPO.glob("LICEN[CS]E*"):
        shutil.copy2(licence, source)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns(*JUNK))

    out = root / "dist"
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}
    proc = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(source)],
                          cwd=root, env=env, capture_output=True, text=True,
                          timeout=INSTALL_TIMEOUT_S, check=False)
    assert proc.returncode == 0, f"python -m build failed:\n{proc.stdout}\n{proc.stderr}"
    sdists, wheels = sorted(out.glob("*.tar.gz")), sorted(out.glob("*.whl"))
    assert len(sdists) == len(wheels) == 1, sorted(p.name for p in out.iterdir())
    return ShoalDist(sdist=sdists[0], wheel=wheels[0], package=source / "src" / "shoal")


@dataclass(frozen=True)
class CoreVenv:
    python: Path
    shoal: Path
    prefix: Path
    workdir: Path  # outside the checkout; holds a copy of examples/quickstart
    env: dict[str, str]

    def run(self, args: Sequence[str | Path]) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(a) for a in args], cwd=self.workdir, env=self.env,
                              capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False)


def _clean_env(venv: Path) -> dict[str, str]:
    """The caller's environment minus anything that would let the checkout's shoal (or the dev
    venv's packages) leak into the new venv's interpreter."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV",
                        "PYTHONUSERBASE", "PIP_REQUIRE_VIRTUALENV"}}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    env["VIRTUAL_ENV"] = str(venv)
    env["PYTHONNOUSERSITE"] = "1"
    return env


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory: pytest.TempPathFactory, shoal_dist: ShoalDist) -> CoreVenv:
    root = tmp_path_factory.mktemp("core-install")
    venv = root / "venv"
    env = _clean_env(venv)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env,
                   timeout=RUN_TIMEOUT_S)
    python = venv / "bin" / "python"
    # The wheel file itself, never the source tree: a data file the wheel lacks fails here.
    pip = subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(shoal_dist.wheel)],
                         cwd=root, env=env, capture_output=True, text=True,
                         timeout=INSTALL_TIMEOUT_S, check=False)
    assert pip.returncode == 0, f"pip install of the core failed:\n{pip.stdout}\n{pip.stderr}"

    workdir = root / "work"
    shutil.copytree(QUICKSTART, workdir, ignore=shutil.ignore_patterns("results*.jsonl"))
    (workdir / "privacy.yaml").write_text(PRIVACY_GRAPH, encoding="utf-8")
    assert not workdir.resolve().is_relative_to(REPO)
    return CoreVenv(python=python, shoal=venv / "bin" / "shoal", prefix=venv, workdir=workdir,
                    env=env)


def test_the_core_install_is_light(core_venv: CoreVenv) -> None:
    code = ("import importlib.util, json, shoal, sys; "
            "print(json.dumps({'shoal': shoal.__file__, 'prefix': sys.prefix, 'found': "
            "{m: importlib.util.find_spec(m) is not None for m in sys.argv[1:]}}))")
    proc = core_venv.run([core_venv.python, "-c", code, *EXTRA_MODULES])
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    # The installed copy is the one imported, not the checkout's src/.
    assert Path(seen["prefix"]).resolve() == core_venv.prefix.resolve()
    assert Path(seen["shoal"]).resolve().is_relative_to(core_venv.prefix.resolve())
    assert seen["found"] == dict.fromkeys(EXTRA_MODULES, False)


def test_the_quickstart_validates(core_venv: CoreVenv) -> None:
    proc = core_venv.run([core_venv.shoal, "validate", "graph.yaml"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "graph 'quickstart'" in proc.stdout


def test_the_quickstart_runs(core_venv: CoreVenv) -> None:
    proc = core_venv.run([core_venv.shoal, "run", "graph.yaml", "--input", "messages.jsonl",
                          "--output", "out.jsonl", "--no-progress"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    inputs = [line for line in (core_venv.workdir / "messages.jsonl").read_text().splitlines()
              if line.strip()]
    results = [json.loads(line)
               for line in (core_venv.workdir / "out.jsonl").read_text().splitlines()]
    assert len(results) == len(inputs) == len(EXPECTED)
    got = {r["id"]: (r["status"], r["nodes"][0]["label"] if r["nodes"] else None,
                     r["nodes"][-1]["node"] if r["nodes"] else None) for r in results}
    assert got == EXPECTED
    by_id = {r["id"]: r for r in results}
    assert by_id["line-12"]["error"]["code"] == "input_invalid"
    assert by_id["q03"]["output"].startswith("If this is an emergency")
    assert [by_id[i]["nodes"][0]["escalate"] for i in ("q07", "q11")] == [True, True]
    assert not any(n["escalated"] for r in results for n in r["nodes"])


def test_a_graph_needing_an_extra_names_it(core_venv: CoreVenv) -> None:
    lines = PRIVACY_GRAPH.splitlines()
    line = next(i for i, text in enumerate(lines, 1) if "agent: privacy_masker" in text)
    col = lines[line - 1].index("privacy_masker") + 1
    proc = core_venv.run([core_venv.shoal, "validate", "privacy.yaml"])
    said = proc.stdout + proc.stderr
    assert proc.returncode == 2, said
    assert f"privacy.yaml:{line}:{col}:" in said
    assert "[privacy]" in said
    assert "pip install 'shoal[privacy]'" in said


def test_every_data_file_is_installed(core_venv: CoreVenv, shoal_dist: ShoalDist) -> None:
    # What the code loads at run time (packs, policies, lexicons, models, py.typed), as the
    # installed package's resources: every non-.py file under src/shoal.
    wanted = sorted(f for f in source_files(shoal_dist.package) if not f.endswith(".py"))
    code = ("import importlib.resources, json, sys; root = importlib.resources.files('shoal'); "
            "print(json.dumps([f for f in sys.argv[1:] if not root.joinpath(f).is_file()]))")
    proc = core_venv.run([core_venv.python, "-c", code, *wanted])
    assert proc.returncode == 0, proc.stderr
    assert wanted and json.loads(proc.stdout) == []
