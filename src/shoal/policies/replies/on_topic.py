"""On topic: is a reply about the message it answers? MiniLM similarity against a floor.

A reply is on topic when its cosine similarity (sentence embeddings, L2-normalised) to the best
of its references reaches ``floor``. The references are the patient's message and, for a
templated reply, the class's template: a reviewed acknowledgement is on topic by construction, a
model's free text must earn it. The floor is not a guess: :func:`choose_floor` picks it on
pairs from a split the models never trained on: the model's sentence with the message it was
written for (matched) and with other messages (mismatched); the floor lets at most 5% of
mismatched pairs through. The healthcare example's floor comes from
``benchmarks/replies.py --calibrate`` on the dev split.

Failures name the score and the floor, never the text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from shoal.models.base import Embedder
from shoal.models.onnx import OnnxEmbedder
from shoal.policies.replies.checker import ExtraCheck, ReplyContext, ReplyFailure

__all__ = ["OnTopic", "OnTopicFloor", "OnTopicSpec", "choose_floor"]


@dataclass(frozen=True, slots=True)
class OnTopicFloor:
    """A floor chosen on paired scores, with what it keeps and lets through there."""

    floor: float
    on_topic_kept: float
    """Share of matched pairs (a reply with its own message) at or above the floor."""
    off_topic_passed: float
    """Share of mismatched pairs (a reply with another message) at or above the floor."""
    n_on: int
    n_off: int


def choose_floor(matched: Sequence[float], mismatched: Sequence[float], *,
                 max_off: float = 0.05) -> OnTopicFloor:
    """The lowest floor that lets through at most ``max_off`` of the mismatched pairs (a reply
    scored against a message it does not answer), with the share of matched pairs it keeps.

    Matched pairs are not all on topic (a small model's reply can miss its own message), so the
    floor is set by what must not pass, and the kept share is reported, not targeted.
    """
    if not matched or not mismatched:
        raise ValueError("choose_floor needs matched and mismatched scores")
    if not 0.0 <= max_off < 1.0:
        raise ValueError(f"max_off must be in [0, 1), got {max_off}")
    on = np.asarray(matched, dtype=np.float64)
    off = np.sort(np.asarray(mismatched, dtype=np.float64))
    # Past the k-th largest mismatched score, where k is the number allowed through.
    allowed = int(np.floor(max_off * len(off) + 1e-9))
    floor = float(np.nextafter(off[len(off) - 1 - allowed], np.inf))
    floor = float(np.ceil(floor * 1e4) / 1e4)
    return OnTopicFloor(floor=floor, on_topic_kept=float((on >= floor).mean()),
                        off_topic_passed=float((off >= floor).mean()), n_on=len(on),
                        n_off=len(off))


class OnTopic:
    """Scores replies against references with an :class:`~shoal.models.Embedder` (MiniLM)."""

    def __init__(self, embedder: Embedder, floor: float) -> None:
        if not -1.0 <= floor <= 1.0:
            raise ValueError(f"an on-topic floor is a cosine similarity in [-1, 1], got {floor}")
        self.embedder = embedder
        self.floor = floor

    async def score(self, reply: str, references: Sequence[str], *,
                    timeout_s: float | None = None) -> float:
        """The best cosine similarity of ``reply`` to any of ``references``."""
        refs = [r for r in references if r.strip()]
        if not reply.strip() or not refs:
            return -1.0
        vectors = np.asarray(await self.embedder.embed([reply, *refs], timeout_s=timeout_s),
                             dtype=np.float32)
        return float((vectors[1:] @ vectors[0]).max())

    def check(self, score: float) -> ExtraCheck:
        """The check for :func:`~shoal.policies.replies.check_reply`'s ``extra``, with the score
        already measured (embedding is async; the checker is not)."""
        floor = self.floor

        def on_topic(_ctx: ReplyContext) -> list[ReplyFailure]:
            if score >= floor:
                return []
            return [ReplyFailure("on_topic", "off_topic",
                                 f"similarity {score:.2f} to the message and template is below "
                                 f"the floor {floor:.2f}")]

        return on_topic


class OnTopicSpec(BaseModel):
    """An on-topic check as config (``on_topic: {floor: 0.31}``): the responder's sentence and
    the compliance checker's ``reply_fit`` both take one."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    floor: float = Field(ge=-1.0, le=1.0)
    """Chosen on the dev split (``benchmarks/replies.py --calibrate``), not by hand."""
    embedder: str = "minilm-l6-int8"
    """An embedded embedder (catalog name), loaded once per process."""

    def build(self) -> OnTopic:
        return OnTopic(OnnxEmbedder(model=self.embedder), self.floor)
