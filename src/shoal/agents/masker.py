"""The ``privacy_masker`` agent: replaces identifiers in the working text before any model sees it.

Every later node reads the masked text (``AgentResult.text``). Pseudonyms come from the run's
vault (``ctx.scope.vault``), so ``[NAME_1]`` is the same person in every node of a run and can be
reversed locally on the way back; the vault ends with the run's scope.

Confidence rule: masking is recall first, so a span the detector is unsure of is masked anyway
and the risk left is over-masking, not a leak. Spans scored below the pack's ``ambiguous_below``
(default 0.5) are "ambiguous"; confidence is ``1 - 0.5 * ambiguous / masked`` (1.0 when nothing is
ambiguous or nothing was found, never below 0.5). A node's ``escalate_below`` on a masker would
hand the planner only the masked text.

presidio and spaCy are imported when the detector is first built, not when this module is imported.

Outputs carry labels, offsets, replacements and scores, never the replaced values.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from shoal.agents.base import Agent, AgentConfig, AgentContext, AgentResult, register
from shoal.errors import InputError, ShoalError
from shoal.models.batching import BatchSettings
from shoal.policies import privacy

__all__ = ["MaskerConfig", "PrivacyMasker", "confidence_for", "mask_records", "mask_text"]

_MODES = privacy.MODES


class MaskerConfig(AgentConfig):
    pack: str = "hipaa_safe_harbor"
    """A built-in pack name or a path to a pack YAML."""
    mode: str = "pseudonymize"
    """``pseudonymize`` ([NAME_1], reversible in-run), ``redact`` ([NAME]) or ``hash``."""
    score_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    """Detector scores below this are not masked; default: the pack's (low: recall first)."""
    timeout_s: float | None = Field(default=None, gt=0)
    batch: BatchSettings | None = None
    """How concurrent messages share one spaCy ``nlp.pipe`` (default: up to 32, 2 ms)."""

    @field_validator("mode")
    @classmethod
    def _mode(cls, value: str) -> str:
        if value not in _MODES:
            raise ValueError(f"mode must be one of {', '.join(_MODES)}")
        return value


def confidence_for(entities: list[dict[str, Any]], ambiguous_below: float) -> float:
    """The masker's confidence: see the module docstring."""
    if not entities:
        return 1.0
    ambiguous = sum(1 for e in entities if e["score"] < ambiguous_below)
    return round(1.0 - 0.5 * ambiguous / len(entities), 4)


class PrivacyMasker(Agent):
    """Masks the working text with a policy pack (default: HIPAA Safe Harbor's 18 identifiers)."""

    name = "privacy_masker"
    Config = MaskerConfig
    extra = "privacy"
    config: MaskerConfig

    async def run(self, ctx: AgentContext) -> AgentResult:
        detector = await privacy.adetector(self.config.pack,
                                           score_threshold=self.config.score_threshold,
                                           batch=self.config.batch)
        result = await detector.amask(ctx.text, mode=self.config.mode,  # type: ignore[arg-type]
                                      vault=ctx.scope.vault,
                                      timeout_s=self.config.timeout_s)
        confidence = confidence_for(result.entities, detector.pack.ambiguous_below)
        ambiguous = sum(1 for e in result.entities if e["score"] < detector.pack.ambiguous_below)
        return AgentResult(
            text=result.masked,
            output={"entities": result.entities, "masked": result.masked},
            confidence=confidence,
            label=None,
            reason=f"masked {len(result.entities)} span(s), {ambiguous} ambiguous",
        )


def mask_text(text: str, pack: str = "hipaa_safe_harbor", mode: str = "pseudonymize", *,
              id: str = "text", score_threshold: float | None = None) -> dict[str, Any]:
    """Mask one text for the CLI: ``{"id", "masked", "entities": [...]}``.

    Each call uses a fresh vault: pseudonyms are consistent within the text only.
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {', '.join(_MODES)}")
    result = privacy.detector(pack, score_threshold=score_threshold).mask(
        text, mode=mode)
    return {"id": id, "masked": result.masked, "entities": result.entities}


def mask_records(
    input_path: str | Path,
    output_path: str | Path,
    pack: str = "hipaa_safe_harbor",
    mode: str = "pseudonymize",
    *,
    score_threshold: float | None = None,
) -> dict[str, int]:
    """Mask a JSONL file of ``{"id", "text"}`` records into another JSONL file.

    Every input line gives one output line, in order. A bad line becomes
    ``{"id", "error": {"code", "message"}}`` whose message names ``FILE:LINE`` and the id (never
    the text); the rest still run. Returns ``{"records", "masked", "errors"}``.
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {', '.join(_MODES)}")
    detector = privacy.detector(pack, score_threshold=score_threshold)
    counts = {"records": 0, "masked": 0, "errors": 0}
    source = str(input_path)
    with Path(output_path).open("w", encoding="utf-8") as out:
        for line_no, record_id, text, problem in _read_records(Path(input_path)):
            counts["records"] += 1
            if problem is not None:
                error = InputError(problem, record_id=record_id, where=f"{source}:{line_no}")
                row: dict[str, Any] = {"id": record_id, "error": {
                    "code": str(error.code), "message": error.message}}
                counts["errors"] += 1
            else:
                assert text is not None
                try:
                    result = detector.mask(text, mode=mode)
                except ShoalError as exc:
                    row = {"id": record_id, "error": {
                        "code": str(exc.code),
                        "message": f"{source}:{line_no}: record {record_id!r}: {exc.message}"}}
                    counts["errors"] += 1
                else:
                    row = {"id": record_id, "masked": result.masked, "entities": result.entities}
                    counts["masked"] += 1
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return counts


def _read_records(path: Path) -> Iterator[tuple[int, str, str | None, str | None]]:
    """(line, id, text, problem) per non-blank line; ``problem`` never quotes the line."""
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            fallback = f"line-{line_no}"
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                yield line_no, fallback, None, f"not valid JSON ({exc.msg} at column {exc.colno})"
                continue
            if not isinstance(data, dict):
                yield line_no, fallback, None, "a record must be a JSON object"
                continue
            raw_id = data.get("id", fallback)
            record_id = str(raw_id) if isinstance(raw_id, str | int) else fallback
            text = data.get("text")
            if not isinstance(text, str):
                yield line_no, record_id, None, "missing a string 'text' field"
                continue
            yield line_no, record_id, text, None


register(PrivacyMasker.name, PrivacyMasker)
