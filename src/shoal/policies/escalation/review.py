"""A person's review of answered escalations, shared by ``shoal review`` and ``shoal serve``'s
``/v1/review`` routes.

:func:`review_queue` lists the ledger entries still waiting for a person; :func:`review_label`
checks a person's label (its syntax, the entry, the node's labels), writes one record to the
hash-chained audit log and only then sets the label, which outranks the planner's. The audit log
is ``--audit-log`` (or a caller's own setting), else ``$SHOAL_AUDIT_LOG``, else ``audit.jsonl``
beside the ledger's store file (:func:`review_audit_path`).

The node's labels come from the caller (the CLI reads them from the spec, the server from the
running graph): this layer knows no agent.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from shoal.errors import ErrorCode, ShoalError
from shoal.policies.audit import AuditCheck, audit_log
from shoal.policies.escalation.ledger import LedgerEntry, LedgerStore

__all__ = ["AUDIT_ENV", "REVIEW_AGENT", "ReviewError", "check_label", "review_audit_path",
           "review_label", "review_queue"]

AUDIT_ENV = "SHOAL_AUDIT_LOG"
REVIEW_AGENT = "human_review"
"""The ``agent`` of a review's audit record."""

# Within the audit log's own rule for a decision: a label it refused would never be set.
_LABEL = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")

ReviewReason = Literal["invalid_label", "unknown_entry", "label_not_allowed"]


class ReviewError(ShoalError):
    """A review cannot be applied. ``reason`` says why: ``invalid_label`` (not a label's
    syntax), ``unknown_entry`` (no such entry for this graph) or ``label_not_allowed`` (not one
    of the node's labels). ``message`` quotes the label or id only once it passed the label or
    id syntax; ``plain`` says the same without them, for answers that must never quote a
    request (``shoal serve``)."""

    code = ErrorCode.INPUT_INVALID

    def __init__(self, message: str, *, reason: ReviewReason, plain: str | None = None) -> None:
        super().__init__(message)
        self.reason: ReviewReason = reason
        self.plain = plain if plain is not None else message


def review_audit_path(store: Path, configured: str | Path | None = None) -> Path:
    """Where reviews are audited: ``configured``, else ``$SHOAL_AUDIT_LOG``, else
    ``audit.jsonl`` beside the ledger's ``store`` file."""
    return Path(configured or os.environ.get(AUDIT_ENV) or store.parent / "audit.jsonl")


def check_label(label: str) -> str:
    """``label`` when it is a label's syntax, else :class:`ReviewError` (``invalid_label``)."""
    if not isinstance(label, str) or not _LABEL.match(label):
        raise ReviewError("label: letters, digits, '_', '.', '-' only (at most 64), starting "
                          "with a letter, a digit or '_'", reason="invalid_label")
    return label


def review_queue(ledger: LedgerStore, *, graph: str, node: str | None = None,
                 include_reviewed: bool = False) -> list[LedgerEntry]:
    """The graph's entries waiting for a person (with ``include_reviewed``, also those already
    labelled), oldest first; empty when the store file does not exist (it is not created)."""
    if not ledger.exists():
        return []
    return [e for e in ledger.entries(graph=graph, node=node)
            if include_reviewed or e.human_label is None]


def review_label(ledger: LedgerStore, entry_id: str, label: str, *, graph: str,
                 known_labels: frozenset[str] | None, audit_path: Path) -> LedgerEntry:
    """A person's ``label`` for entry ``entry_id`` of ``graph``: checked (syntax, the entry,
    ``known_labels`` of its node unless None), audited (one record, agent ``human_review``,
    decision the label, checks ``agrees_with_planner`` and ``agrees_with_local``), then set.
    Returns the updated entry; :class:`ReviewError` when the label or the entry is wrong.
    Blocking (SQLite, an fsync): call it from a thread in async code."""
    check_label(label)
    entry = ledger.entry(entry_id) if ledger.exists() else None
    if entry is None or entry.graph != graph:
        raise _unknown(entry_id, graph)
    if known_labels is not None and label not in known_labels:
        allowed = f"one of node {entry.node!r}'s labels: {', '.join(sorted(known_labels))}"
        raise ReviewError(f"label {label!r} is not {allowed}", reason="label_not_allowed",
                          plain=f"the label is not {allowed}")
    # The audit record first: a label no one can trace must not reach the training data.
    audit_log(audit_path).append(
        run_id=entry.run_id, record_id=entry.record_id, node=entry.node, agent=REVIEW_AGENT,
        decision=label, checks=[AuditCheck("agrees_with_planner", label == entry.planner_label),
                                AuditCheck("agrees_with_local", label == entry.local_label)])
    updated = ledger.set_human_label(entry_id, label)
    if updated is None:  # gone between the check and the update
        raise _unknown(entry_id, graph)
    return updated


def _unknown(entry_id: str, graph: str) -> ReviewError:
    shown = repr(entry_id) if _ID.match(entry_id) else "(id not shown)"
    return ReviewError(f"no ledger entry {shown} for graph {graph!r}", reason="unknown_entry",
                       plain=f"no ledger entry with this id for graph {graph!r}")
