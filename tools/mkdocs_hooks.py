"""mkdocs hooks for the docs site (``mkdocs.yml`` ``hooks:``).

Pages include README sections with ``pymdownx.snippets`` (``--8<-- "README.md:section"``), so the
README stays the one source. Its links are written for the repository root; this rewrites them,
after the snippets are inserted, for pages at the top of ``docs/``:

- ``](docs/egress.md)`` -> ``](egress.md)``;
- ``](#serving)`` (a README section) -> the page that includes that section;
- a README section no page includes (``#results``) -> plain text naming the README;
- a file of the repository outside ``docs/`` (``](deploy/README.md)``) -> its path as text.
"""

from __future__ import annotations

import re
from typing import Any

from markdown import Extension, Markdown
from markdown.preprocessors import Preprocessor

# README anchor -> the docs page that includes its section ("" : none does).
README_ANCHORS = {
    "serving": "serving.md#serving",
    "logs": "serving.md#logs",
    "fhir-messages-in-and-out": "cli.md#fhir-messages-in-and-out",
    "results": "",
    "what-patients-receive": "",
}
_DOCS_LINK = re.compile(r"\]\(docs/")
_ANCHOR_LINK = re.compile(r"\[([^\]]+)\]\(#([a-z0-9-]+)\)")
_REPO_LINK = re.compile(
    r"(!?)\[([^\]]+)\]\(((?:benchmarks|deploy|examples|src|tests|tools)/[^)\s]*)\)")


def _anchor(match: re.Match[str]) -> str:
    text, anchor = match.group(1), match.group(2)
    if anchor not in README_ANCHORS:
        return match.group(0)
    target = README_ANCHORS[anchor]
    return f"[{text}]({target})" if target else f"{text} (in the README)"


def _repo_file(match: re.Match[str]) -> str:
    text, path = match.group(2), match.group(3)
    return f"{text} (`{path}`)" if text != path else f"`{path}`"


class _ReadmeLinks(Preprocessor):
    def run(self, lines: list[str]) -> list[str]:
        out = []
        for line in lines:
            line = _DOCS_LINK.sub("](", line)
            line = _REPO_LINK.sub(_repo_file, line)
            out.append(_ANCHOR_LINK.sub(_anchor, line))
        return out


class ReadmeLinksExtension(Extension):
    def extendMarkdown(self, md: Markdown) -> None:
        # pymdownx.snippets runs at priority 32; a lower priority runs after it.
        md.preprocessors.register(_ReadmeLinks(md), "shoal_readme_links", 31)


def on_config(config: Any) -> Any:
    config.markdown_extensions.append(ReadmeLinksExtension())
    return config
