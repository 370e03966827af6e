"""``shoal draw``: a graph's picture (Mermaid text, SVG or PNG) from its spec and escalation rules,
without loading any model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shoal.cli._common import _fail, _graph_errors
from shoal.graphs.draw import FORMATS, build_diagram, render, to_mermaid
from shoal.graphs.loader import load_spec


def draw(
    graph_path: Annotated[Path, typer.Argument(metavar="GRAPH", help="Graph YAML file.")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write here instead of Mermaid on stdout: FILE.mmd (Mermaid), "
                               "FILE.svg or FILE.png (drawn with matplotlib).")] = None,
) -> None:
    """Draw a graph: its nodes (agent, model), routes with their labels, dotted escalations to
    the planner and critical labels in red. Loads no model.

    Exit codes: 0 done; 2 a bad graph file (each mistake as FILE:LINE:COL), an unknown output
    suffix, or no matplotlib for .svg/.png.
    """
    fmt = output.suffix.lower().lstrip(".") if output is not None else "mmd"
    if fmt == "mermaid":
        fmt = "mmd"
    if fmt not in FORMATS:
        _fail(f"{output}: unknown format {output.suffix if output else ''!r}: write "
              + ", ".join(f".{f}" for f in FORMATS))
        raise typer.Exit(2)
    with _graph_errors(graph_path):
        # load_spec, not Graph: the checks without building a single model.
        spec, _ = load_spec(graph_path)
    diagram = build_diagram(spec, graph_path.parent)
    if output is None:
        typer.echo(to_mermaid(diagram), nl=False)
        return
    try:
        if fmt == "mmd":
            output.write_text(to_mermaid(diagram), encoding="utf-8")
        else:
            try:
                render(diagram, output, "svg" if fmt == "svg" else "png")
            except ModuleNotFoundError as exc:
                if exc.name is None or exc.name.split(".")[0] != "matplotlib":
                    raise
                _fail(f"{output}: drawing .{fmt} needs matplotlib (pip install matplotlib); "
                      "a .mmd file or stdout needs nothing")
                raise typer.Exit(2) from None
    except OSError as exc:
        _fail(f"{output}: cannot write: {exc.strerror or exc}")
        raise typer.Exit(2) from None
    typer.echo(f"wrote {output}", err=True)
