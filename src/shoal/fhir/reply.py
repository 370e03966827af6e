"""The Communication that answers a Communication, and the OperationOutcome for one that could
not be read.

A reply is ``inResponseTo`` its input, addressed back to the sender (``recipient`` and
``sender`` swapped, ``subject`` kept), and carries:

- ``status``: ``completed`` when the graph produced text for the sender (runs ``ok``,
  ``escalated`` and ``pending_escalation``: a pending escalation is the planner's second look
  for the ledger, the reply that passed the graph is final); ``not-done`` when nothing goes back
  (``refused``: declined or held for review; ``error``; no answer), with ``statusReason`` coded
  in :data:`STATUS_SYSTEM` (``refused``, ``error``, ``no-answer``). Never ``entered-in-error``:
  that says a record should never have existed, and EHRs treat it as a retraction.
- ``payload[0].contentString``: ``RunResult.reply`` (the answer with the sender's own values
  back in place of their pseudonyms), else the output's text or ``answer``, else the run's label
  (a classifier-only graph).
- ``category`` and ``priority`` from the run's label (:func:`run_label`): the label as a coding
  in :data:`LABEL_SYSTEM`; ``stat`` for ``emergency`` or when a critical label fired (a floor or
  a red flag), ``urgent`` for ``urgent``, else ``routine``.
- the masked audit extension :data:`EXTENSION_URL` (sub-extensions ``recordId``, ``graph``,
  ``runId``, ``status``, ``label``, ``escalated``, ``critical``, ``errorCode``,
  ``errorMessage``, ``maskedText``, ``maskedReply``): the run's own facts and, only when a
  masker ran, the text as the masker left it and the graph's answer before un-masking. Never the
  raw text, the reply sent or a value of the input's references.

Every resource is validated with ``fhir.resources`` (R4B) before it is returned.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

from shoal.extras import require
from shoal.fhir.read import EVENT_STATUS, REQUEST_PRIORITY, Envelope, Problem
from shoal.graphs.results import RunResult

__all__ = ["BUNDLE_HEAD", "BUNDLE_TAIL", "CLASSIFIER_AGENTS", "EXTENSION_URL", "LABEL_SYSTEM",
           "MASKER_AGENT", "NAMESPACE", "PRIORITIES", "STATUS_SYSTEM", "bundle_entry",
           "operation_outcome", "problem_outcome", "record_id_of", "reply", "reply_status",
           "run_label"]

NAMESPACE = "https://shoal.dev/fhir"
"""shoal's FHIR definitions: ``StructureDefinition/shoal-run``, ``CodeSystem/label``,
``CodeSystem/run-status``."""
EXTENSION_URL = f"{NAMESPACE}/StructureDefinition/shoal-run"
LABEL_SYSTEM = f"{NAMESPACE}/CodeSystem/label"
STATUS_SYSTEM = f"{NAMESPACE}/CodeSystem/run-status"
CLASSIFIER_AGENTS = frozenset({"classifier", "keyword_classifier"})
"""Agents whose label is the run's label (the last of them that ran)."""
MASKER_AGENT = "privacy_masker"
PRIORITIES = {"emergency": "stat", "urgent": "urgent"}
"""Label -> ``priority``; any other label is ``routine``, and a critical label is ``stat``."""
BUNDLE_HEAD = '{"resourceType": "Bundle", "type": "collection", "entry": ['
"""The first line of a reply Bundle; each entry follows on its own line (after the first, with a
leading comma), then :data:`BUNDLE_TAIL`: a cut-off run leaves whole lines, and ``--resume``
appends to them."""
BUNDLE_TAIL = "]}"
_CODE = re.compile(r"[^\s]+(\s[^\s]+)*")
_REASONS = {
    "refused": "refused: declined or held for review, not answered automatically",
    "error": "the message could not be processed",
    "no-answer": "the graph produced no text to send",
}


def run_label(result: RunResult) -> str | None:
    """The run's label: the last classifier node's (``classifier``, ``keyword_classifier``),
    else the output's ``label``."""
    for trace in reversed(result.nodes):
        if trace.agent in CLASSIFIER_AGENTS and trace.label:
            return trace.label
    output = result.output
    if isinstance(output, dict) and isinstance(output.get("label"), str) and output["label"]:
        return str(output["label"])
    return None


def _answer(output: Any) -> str | None:
    if isinstance(output, str) and output.strip():
        return output
    if isinstance(output, dict):
        answer = output.get("answer")
        if isinstance(answer, str) and answer.strip():
            return answer
    return None


def reply_text(result: RunResult) -> str | None:
    """What goes back to the sender, or None (refused, failed, nothing produced)."""
    if result.status in ("refused", "error"):
        return None
    if result.reply:
        return result.reply
    return _answer(result.output) or run_label(result)


def reply_status(result: RunResult) -> tuple[str, str | None]:
    """The reply's ``status`` and, for ``not-done``, its reason code in :data:`STATUS_SYSTEM`."""
    if result.status in ("refused", "error"):
        return "not-done", result.status
    if reply_text(result) is None:
        return "not-done", "no-answer"
    return "completed", None


def _masked(result: RunResult) -> tuple[str | None, str | None]:
    """The text as the last masker left it and the graph's (masked) answer; both None when no
    masker ran, so that the raw text can never stand in for them."""
    masked = next((t.text for t in reversed(result.nodes)
                   if t.agent == MASKER_AGENT and t.text is not None), None)
    if masked is None:
        return None, None
    answer = _answer(result.output) if reply_status(result)[0] == "completed" else None
    return masked, answer


def audit_extension(result: RunResult, *, graph: str) -> dict[str, Any]:
    """The masked audit extension (see the module's docstring)."""
    parts: list[dict[str, Any]] = [{"url": "recordId", "valueString": result.id},
                                   {"url": "graph", "valueString": graph}]
    if result.run_id:
        parts.append({"url": "runId", "valueString": result.run_id})
    parts.append({"url": "status", "valueCode": result.status})
    label = run_label(result)
    if label is not None and _CODE.fullmatch(label):
        parts.append({"url": "label", "valueCode": label})
    parts.append({"url": "escalated", "valueBoolean": any(t.escalated for t in result.nodes)})
    critical = next((t.critical for t in result.nodes if t.critical), None)
    if critical is not None and _CODE.fullmatch(critical):
        parts.append({"url": "critical", "valueCode": critical})
    if result.error is not None:
        parts.append({"url": "errorCode", "valueCode": result.error.code})
        parts.append({"url": "errorMessage", "valueString": result.error.message})
    masked, answer = _masked(result)
    if masked is not None:
        parts.append({"url": "maskedText", "valueString": masked})
    if answer is not None:
        parts.append({"url": "maskedReply", "valueString": answer})
    return {"url": EXTENSION_URL, "extension": parts}


def _priority(result: RunResult, label: str | None) -> str | None:
    if any(t.critical for t in result.nodes):
        return "stat"
    if label is None:
        return None
    return PRIORITIES.get(label, "routine")


def _resource_id(result: RunResult) -> str:
    """A uuid (a valid FHIR id, and a ``urn:uuid:`` fullUrl in a Bundle): the run id's when it
    is one."""
    if result.run_id:
        try:
            return str(uuid.UUID(hex=result.run_id))
        except ValueError:
            pass
    return str(uuid.uuid4())


def reply(result: RunResult, envelope: Envelope, *, graph: str,
          now: dt.datetime | None = None) -> dict[str, Any]:
    """The Communication answering the input of ``result`` (FHIR JSON), validated."""
    status, reason = reply_status(result)
    label = run_label(result)
    data: dict[str, Any] = {
        "resourceType": "Communication",
        "id": _resource_id(result),
        "extension": [audit_extension(result, graph=graph)],
        "inResponseTo": [{"reference": envelope.reference, "type": "Communication"}],
        "status": status,
    }
    if reason is not None:
        data["statusReason"] = {"coding": [{"system": STATUS_SYSTEM, "code": reason}],
                                "text": _REASONS[reason]}
    if label is not None and _CODE.fullmatch(label):
        data["category"] = [{"coding": [{"system": LABEL_SYSTEM, "code": label}],
                             "text": label}]
    priority = _priority(result, label)
    if priority is not None:
        data["priority"] = priority
    if envelope.subject is not None:
        data["subject"] = envelope.subject
    if status == "completed":
        data["sent"] = (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
    if envelope.sender is not None:
        data["recipient"] = [envelope.sender]
    if envelope.recipients:
        data["sender"] = envelope.recipients[0]
    text = reply_text(result) if status == "completed" else None
    if text is not None:
        data["payload"] = [{"contentString": text}]
    return _validated("Communication", data)


def operation_outcome(message: str, *, issue: str = "invalid", severity: str = "error",
                      expression: str | None = None, extension: dict[str, Any] | None = None,
                      validate: bool = True) -> dict[str, Any]:
    """An OperationOutcome with one issue, validated (``validate=False`` only where
    ``fhir.resources`` is missing, to say so). ``message`` must not quote input."""
    entry: dict[str, Any] = {"severity": severity, "code": issue, "diagnostics": message}
    if expression:
        entry["expression"] = [expression]
    data: dict[str, Any] = {"resourceType": "OperationOutcome", "id": str(uuid.uuid4()),
                            "issue": [entry]}
    if extension is not None:
        data["extension"] = [extension]
    return _validated("OperationOutcome", data) if validate else data


def problem_outcome(result: RunResult, problem: Problem, *, graph: str) -> dict[str, Any]:
    """What a batch writes for an input that is no Communication it can answer (not JSON,
    another resource, invalid, a repeated id): an OperationOutcome naming the place, with the
    audit extension (its ``recordId`` lets ``--resume`` find it)."""
    message = result.error.message if result.error is not None else problem.reason
    expression = problem.place if problem.place.startswith("Bundle.") else None
    return operation_outcome(message, issue=problem.issue, expression=expression,
                             extension=audit_extension(result, graph=graph))


def bundle_entry(resource: dict[str, Any]) -> dict[str, Any]:
    """A reply Bundle's entry for a resource with a uuid id."""
    return {"fullUrl": f"urn:uuid:{resource['id']}", "resource": resource}


def record_id_of(resource: Any) -> str | None:
    """The input record id a written reply or outcome answers (its audit extension's
    ``recordId``), or None."""
    if not isinstance(resource, dict):
        return None
    for ext in resource.get("extension") or ():
        if isinstance(ext, dict) and ext.get("url") == EXTENSION_URL:
            for part in ext.get("extension") or ():
                if isinstance(part, dict) and part.get("url") == "recordId":
                    value = part.get("valueString")
                    return value if isinstance(value, str) else None
    return None


def _validated(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` validated as the R4B resource ``kind`` and dumped back (FHIR JSON); the codes
    with required bindings that ``fhir.resources`` leaves unchecked are checked here."""
    require("fhir", "writing FHIR resources")
    if kind == "Communication":
        from fhir.resources.R4B.communication import Communication  # optional extra [fhir]

        model: Any = Communication.model_validate(data)
        if model.status not in EVENT_STATUS or (model.priority is not None
                                                and model.priority not in REQUEST_PRIORITY):
            raise ValueError("a reply's status or priority is not an R4 code")
    else:
        from fhir.resources.R4B.operationoutcome import (  # optional extra [fhir]
            OperationOutcome,
        )

        model = OperationOutcome.model_validate(data)
    dumped: dict[str, Any] = model.model_dump(mode="json")
    return dumped
