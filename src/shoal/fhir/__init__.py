"""FHIR messages in and out: patient-portal messages as FHIR R4 ``Communication`` resources.

:mod:`shoal.fhir.read` turns a Bundle (JSON) or NDJSON of Communications into records, each one
validated with ``fhir.resources``; :mod:`shoal.fhir.reply` turns a run's result into the
Communication that answers it, with a masked audit extension. ``shoal run --input-format fhir
--output-format fhir`` and ``shoal serve``'s ``POST /fhir/Communication`` use both.

Needs the extra ``[fhir]`` (``fhir.resources``) to read or write a resource; importing this
package does not import it. The models are ``fhir.resources.R4B``: R4B (4.3.0) is R4's
technical correction, and its Communication, Bundle, Reference and OperationOutcome are R4's, so
R4 JSON validates unchanged; ``fhir.resources``' default package is R5, whose Communication has
no ``payload.contentString``, and no release for pydantic 2 ships R4 (4.0.1) itself.

.. versionadded:: 0.1.0
"""

from shoal.fhir.read import (
    BUNDLE,
    NDJSON,
    Envelope,
    FhirInput,
    Message,
    Problem,
    open_input,
    parse_communication,
    parse_json,
)
from shoal.fhir.reply import (
    BUNDLE_HEAD,
    BUNDLE_TAIL,
    EXTENSION_URL,
    LABEL_SYSTEM,
    NAMESPACE,
    STATUS_SYSTEM,
    bundle_entry,
    operation_outcome,
    problem_outcome,
    record_id_of,
    reply,
    reply_status,
    run_label,
)

__all__ = [
    "BUNDLE",
    "BUNDLE_HEAD",
    "BUNDLE_TAIL",
    "EXTENSION_URL",
    "Envelope",
    "FhirInput",
    "LABEL_SYSTEM",
    "Message",
    "NAMESPACE",
    "NDJSON",
    "Problem",
    "STATUS_SYSTEM",
    "bundle_entry",
    "open_input",
    "operation_outcome",
    "parse_communication",
    "parse_json",
    "problem_outcome",
    "record_id_of",
    "reply",
    "reply_status",
    "run_label",
]
