"""The docs site (``mkdocs.yml``) builds with ``--strict`` (no broken link or anchor, no page left
out of the nav, no unexpanded README snippet), offline, and its graph YAML reference is the one
``tools/yaml_reference.py`` generates from ``docs/graph-schema.json``. Regenerate the page with::

    .venv/bin/python tools/yaml_reference.py
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import REPO

PAGE = REPO / "docs" / "reference" / "graph-yaml.md"
REGENERATE = ".venv/bin/python tools/yaml_reference.py"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("yaml_reference",
                                                  REPO / "tools" / "yaml_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_yaml_reference_matches_the_schema():
    generator = _generator()
    schema = json.loads((REPO / "docs" / "graph-schema.json").read_text(encoding="utf-8"))
    assert PAGE.read_text(encoding="utf-8") == generator.render(schema), (
        f"docs/reference/graph-yaml.md is out of date: regenerate it with {REGENERATE}")


def test_yaml_reference_covers_every_key_kind_and_agent():
    text = PAGE.read_text(encoding="utf-8")
    schema = json.loads((REPO / "docs" / "graph-schema.json").read_text(encoding="utf-8"))
    for key in schema["properties"]:
        assert f"| `{key}` |" in text
    for name, spec in schema["$defs"].items():
        if name.startswith("Node_"):
            assert f"{{#agent-{spec['properties']['agent']['const']}}}" in text
    for kind in schema["$defs"]["Model"]["properties"]["kind"]["anyOf"][0]["enum"]:
        assert f"{{#model-{kind}}}" in text


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    out = tmp_path_factory.mktemp("docs") / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
         "--config-file", str(REPO / "mkdocs.yml"), "--site-dir", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def test_site_builds_strict(site: Path):
    assert (site / "index.html").is_file()
    assert (site / "reference" / "graph-yaml" / "index.html").is_file()
    assert (site / "graph-schema.json").is_file()  # a static file, linked from the reference


def test_site_has_no_unexpanded_snippet_or_remote_asset(site: Path):
    for page in site.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        assert "--8&lt;--" not in html and '--8<--' not in html, page
        assert "fonts.googleapis.com" not in html, page
