"""``shoal mask``: mask personal data in one text or a JSONL file."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from shoal.cli._common import _fail
from shoal.errors import ShoalError


class MaskMode(StrEnum):
    pseudonymize = "pseudonymize"
    redact = "redact"
    hash = "hash"


def mask(
    text: Annotated[str | None, typer.Option("--text", "-t", help="One text to mask.")] = None,
    input_path: Annotated[
        Path | None, typer.Option("--input", "-i", help="JSONL of {\"id\", \"text\"} lines.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Where to write masked JSONL.")
    ] = None,
    pack: Annotated[str, typer.Option(help="Policy pack: a built-in name or a YAML path.")]
    = "hipaa_safe_harbor",
    mode: Annotated[MaskMode, typer.Option(help="Replacement style.")] = MaskMode.pseudonymize,
) -> None:
    """Mask personal data: prints/writes {"id", "masked", "entities"} per input."""
    from shoal.agents.masker import (  # startup: the masker loads only when `shoal mask` runs
        mask_records,
        mask_text,
    )

    if (text is None) == (input_path is None):
        _fail("give exactly one of --text or --input")
        raise typer.Exit(2)
    if input_path is not None and output is None:
        _fail("--input needs --output")
        raise typer.Exit(2)
    if input_path is not None and not input_path.is_file():
        _fail(f"{input_path}: no such file")
        raise typer.Exit(2)
    try:
        if text is not None:
            typer.echo(json.dumps(mask_text(text, pack, mode.value), ensure_ascii=False))
            return
        assert input_path is not None
        assert output is not None
        counts = mask_records(input_path, output, pack, mode.value)
    except ShoalError as exc:
        _fail(exc.message)
        raise typer.Exit(2) from None
    _fail(f"{counts['records']} record(s): {counts['masked']} masked, {counts['errors']} "
          f"error(s); results: {output}")
