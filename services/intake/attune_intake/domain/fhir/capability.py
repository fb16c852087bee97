"""The CapabilityStatement served at GET /fhir/r4/metadata: exactly what POST /fhir/r4 accepts."""

from __future__ import annotations

from typing import Any

from attune_intake.domain.fhir.config import SourceConfig
from attune_intake.domain.fhir.loinc import GAD7_PANEL, PHQ9_PANEL

_DOCS = {
    "Patient": "MRN from the identifier with the source's configured system, else the identifier typed MR "
    "(v2-0203); preferred communication.language; the patient-interpreterRequired extension; birthDate "
    "(year only). Recorded; no event of its own.",
    "EpisodeOfCare": "planned, waitlist or active (first seen, with period.start): client.referred; a new "
    "careManager later: clinician.assigned; finished (period.end, closure reason extension): episode.closed.",
    "Appointment": "booked: appointment.scheduled; noshow: session.missed (no_show); cancelled: "
    "session.cancelled with who cancelled from cancelationReason (or session.missed late_cancel). Other "
    "statuses are read and remembered, no event.",
    "Encounter": "finished: session.attended (class VR = video, AMB = in person, phone by configuration; "
    "length or period = duration). Other statuses are remembered (appointment link), no event.",
    "QuestionnaireResponse": f"completed or amended: questionnaire.completed. PHQ-9 (LOINC {PHQ9_PANEL}) and "
    f"GAD-7 (LOINC {GAD7_PANEL}) by panel and item codes; WAI-SR, SRS, ORS, PSQ by configured canonical URLs.",
}


def capability_statement(config: SourceConfig, base_url: str) -> dict[str, Any]:
    """What this endpoint accepts, for one source's configuration."""
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-07",
        "kind": "instance",
        "software": {"name": "Attune intake"},
        "implementation": {"description": "Attune FHIR R4 ingestion", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "instantiates": [],
        "rest": [
            {
                "mode": "server",
                "documentation": "POST a Bundle (batch, transaction or history) or one resource to the base; "
                "the answer is a batch-response Bundle with one OperationOutcome per entry. Nothing is read back: "
                "there are no read or search interactions.",
                "security": {
                    "description": "Bearer token with the ehr role; the token's source and clinics apply."
                },
                "resource": [
                    {
                        "type": kind,
                        "documentation": text,
                        "interaction": [{"code": "create"}, {"code": "update"}],
                        "versioning": "versioned",
                    }
                    for kind, text in _DOCS.items()
                ],
                "interaction": [{"code": "batch"}, {"code": "transaction"}],
            }
        ],
        "extension": [
            {
                "url": "http://attune.example.org/fhir/StructureDefinition/accepted-questionnaires",
                "valueString": ", ".join(
                    [f"http://loinc.org/q/{PHQ9_PANEL}", f"http://loinc.org/q/{GAD7_PANEL}"]
                    + [f"{url} ({name})" for url, name in sorted(config.questionnaires.items())]
                ),
            }
        ],
    }
