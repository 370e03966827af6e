"""What a retrain reads: the node's base data and the ledger's labels, as the node sees them.

:func:`node_data` runs labelled records through the graph up to the node (the masked text, in
the healthcare graphs; :mod:`shoal.graphs.node_inputs`). :func:`ledger_rows` turns the ledger's
answered escalations into training rows: a person's label over the planner's, one row per
distinct text (the latest label wins; disagreements are counted), labels outside the node's set
left out and counted.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shoal.errors import LearningError
from shoal.graphs.node_inputs import node_inputs
from shoal.graphs.results import Record
from shoal.models.onnx import file_sha256
from shoal.policies.escalation import LedgerEntry

__all__ = ["LedgerRows", "NodeData", "concat_node_data", "ledger_rows", "node_data", "rows_sha256",
           "text_key"]


@dataclass(frozen=True)
class NodeData:
    """Labelled inputs of one node: its input text, gold label and fold group per record."""

    source: str
    """The file they came from (its name)."""
    sha256: str
    """The file's sha256 (lineage: which data a version saw)."""
    ids: list[str]
    texts: list[str]
    labels: list[str]
    groups: list[str]
    skipped: int = 0
    """Records that failed before the node (a refusal does not stop them here)."""


def concat_node_data(parts: Sequence[NodeData]) -> NodeData:
    """Several base files as one: sources joined with ``+``, and a sha256 over each file's
    (in order), so a version's lineage still names exactly the data it saw."""
    if len(parts) == 1:
        return parts[0]
    seen: set[str] = set()
    for part in parts:
        clash = seen.intersection(part.ids)
        if clash:
            raise LearningError(f"{part.source}: record id {sorted(clash)[0]!r} is also in an "
                             "earlier learn.train file; ids must be unique across them")
        seen.update(part.ids)
    digest = hashlib.sha256("".join(p.sha256 for p in parts).encode()).hexdigest()
    return NodeData(source=" + ".join(p.source for p in parts), sha256=digest,
                    ids=[i for p in parts for i in p.ids],
                    texts=[t for p in parts for t in p.texts],
                    labels=[x for p in parts for x in p.labels],
                    groups=[g for p in parts for g in p.groups],
                    skipped=sum(p.skipped for p in parts))


def text_key(text: str) -> str:
    """A stable name for a text (its sha256, 16 hex digits): the order and the fold group of a
    ledger row, the same in every run."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def rows_sha256(texts: Iterable[str], labels: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for text, label in zip(texts, labels, strict=True):
        digest.update(json.dumps([text, label]).encode())
    return digest.hexdigest()


async def node_data(graph_path: str | Path, node: str, records: Sequence[Record], *,
                    file: str | Path, groups: Sequence[str] | None = None,
                    on_result: Callable[[], object] | None = None) -> NodeData:
    """``records`` (with gold labels) as ``node`` reads them, refused ones included (the
    node's model learns those kinds too); ``groups`` (one per record, e.g.
    a message family) keep near-duplicates in one fold of a router's training."""
    inputs = await node_inputs(graph_path, node, records, past_refusals=True,
                               on_result=on_result)
    group_of = dict(zip((r.id for r in records), groups or [r.id for r in records],
                        strict=True))
    kept = [r for r in records if r.id in inputs.texts]
    return NodeData(source=Path(file).name,
                    sha256=file_sha256(Path(file)),
                    ids=[r.id for r in kept], texts=[inputs.texts[r.id] for r in kept],
                    labels=[r.label or "" for r in kept], groups=[group_of[r.id] for r in kept],
                    skipped=len(records) - len(kept))


@dataclass(frozen=True)
class LedgerRows:
    ids: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    """``human`` or ``planner``, per row."""
    duplicates: int = 0
    """Entries folded into another of the same text."""
    conflicts: int = 0
    """Texts whose entries disagreed about the label (the person's, else the latest, won)."""
    outside: int = 0
    """Entries whose label is not one of the node's (left out)."""
    unlabelled: int = 0

    def counts(self) -> dict[str, int]:
        return dict(Counter(self.sources))


def ledger_rows(entries: Iterable[LedgerEntry], labels: Sequence[str]) -> LedgerRows:
    """One training row per distinct text among ``entries`` (oldest first): a person's label
    outranks the planner's; among equals the latest wins. Rows come ordered by
    :func:`text_key`."""
    known = set(labels)
    chosen: dict[str, LedgerEntry] = {}
    seen: dict[str, set[str]] = {}
    duplicates = outside = unlabelled = 0
    for e in entries:
        label = e.label
        if label is None:
            unlabelled += 1
            continue
        if label not in known:
            outside += 1
            continue
        seen.setdefault(e.text, set()).add(label)
        before = chosen.get(e.text)
        if before is not None:
            duplicates += 1
            if before.source == "human" and e.source != "human":
                continue
        chosen[e.text] = e
    # A fixed order (by the text's hash), not the ledger's: concurrent runs finish in any order,
    # and the same labels must train the same model (and fall into the same folds).
    rows = sorted(chosen.values(), key=lambda e: text_key(e.text))
    return LedgerRows(ids=[e.id for e in rows], texts=[e.text for e in rows],
                      labels=[e.label or "" for e in rows],
                      sources=[e.source or "planner" for e in rows], duplicates=duplicates,
                      conflicts=sum(len(v) > 1 for v in seen.values()), outside=outside,
                      unlabelled=unlabelled)
