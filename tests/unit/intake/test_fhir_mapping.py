"""FHIR R4 ingestion: HL7-shaped fixtures map onto contract envelopes; unusable ones name the element."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from attune_intake.domain.fhir.capability import capability_statement
from attune_intake.domain.fhir.config import FhirConfig, SourceConfig
from attune_intake.domain.fhir.ingest import BadRequest, Outcome, ingest
from attune_intake.domain.fhir.resolve import Context
from attune_intake.fhir.config import load_config

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "fhir"
KEY = b"k" * 32
NOW = datetime(2026, 3, 10, tzinfo=UTC)
NORTH = frozenset({"north-01", "north-02"})
CONFIG = FhirConfig(defaults={"clinics": {"Organization/1": "north-01"}})
VALID = (
    "patient-example",
    "episodeofcare-example",
    "appointment-example",
    "encounter-example",
    "questionnaireresponse-phq9-lhcforms",
    "questionnaireresponse-gad7-ordinal",
)


def fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return loaded


def bundle(*resources: dict[str, Any], kind: str = "batch") -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [
            {"fullUrl": f"http://ehr.example/fhir/{r['resourceType']}/{r.get('id')}", "resource": r}
            for r in resources
        ],
    }


def context(
    clinics: frozenset[str] = NORTH,
    config: SourceConfig | None = None,
    *,
    known: dict[str, dict[str, Any]] | None = None,
    **named: dict[str, Any],
) -> Context:
    """A north token's context; `Patient_example=facts` is what intake remembers of Patient/example."""
    return Context(
        source="ehr-north",
        clinics=clinics,
        config=config or CONFIG.for_source("ehr-north"),
        known={**(known or {}), **{k.replace("_", "/", 1): v for k, v in named.items()}},
    )


def run(doc: dict[str, Any], ctx: Context | None = None) -> Outcome:
    return ingest(doc, ctx or context(), KEY, NOW)


def payloads(result: Outcome) -> dict[str, dict[str, Any]]:
    return {env.event_type: json.loads(raw)["payload"] for env, raw in result.envelopes}


PATIENT_FACTS = {
    "mrn": "12345",
    "clinic_id": "north-01",
    "birth_year": 1974,
    "preferred_language": "nl-BE",
    "interpreter_needed": True,
}


def test_hl7_examples_in_one_batch_map_onto_the_envelopes() -> None:
    result = run(bundle(*(fixture(n) for n in VALID)))
    statuses = [e["response"]["status"] for e in result.bundle()["entry"]]
    assert statuses == ["200 OK"] + ["201 Created"] * 5
    assert result.dead == []
    got = payloads(result)
    assert got["client.referred"] == {
        "mrn": "12345",
        "referred_on": "2026-03-02",
        "clinician_id": "c-17",
        "birth_year": 1974,
        "preferred_language": "nl-BE",
        "interpreter_needed": True,
    }
    assert got["appointment.scheduled"] == {
        "mrn": "12345",
        "appointment_id": "example",
        "clinician_id": "c-17",
        "scheduled_start": "2026-03-09T09:00:00+01:00",
        "modality": "video",
    }
    assert got["session.attended"] == {
        "mrn": "12345",
        "appointment_id": "example",
        "clinician_id": "c-17",
        "modality": "video",
        "duration_minutes": 50,
    }
    envs = {env.event_type: env for env, _ in result.envelopes}
    assert {e.clinic_id for e in envs.values()} == {"north-01"}
    assert {e.source for e in envs.values()} == {"ehr-north"}
    assert envs["appointment.scheduled"].event_id == "fhir:Appointment/example/_history/1"
    remembered = result.remember["Patient/example"]
    assert {k: remembered[k] for k in PATIENT_FACTS} == PATIENT_FACTS
    assert remembered["version"] == 1 and remembered["updated"] == "2026-03-02T09:00:00+01:00"


def test_an_older_version_than_intake_has_changes_nothing() -> None:
    first = run(bundle(fixture("patient-example"), fixture("encounter-example")))
    old = fixture("encounter-example") | {"meta": {"versionId": "1"}, "status": "in-progress"}
    again = run(old, context(known=dict(first.remember)))
    assert again.envelopes == [] and again.remember == {}
    assert "older version" in again.bundle()["entry"][0]["response"]["outcome"]["issue"][0]["diagnostics"]


def test_phq9_in_lhc_forms_shape_gives_items_in_published_order_with_the_difficulty_item() -> None:
    result = run(
        bundle(fixture("questionnaireresponse-phq9-lhcforms")), context(Patient_example=PATIENT_FACTS)
    )
    ((_, raw),) = result.envelopes
    payload = json.loads(raw)["payload"]
    # LL358-3 answers: LA6568-5=0, LA6569-3=1, LA6570-1=2, LA6571-9=3; the total (44261-6) is read past.
    assert payload["instrument"] == "PHQ-9"
    assert payload["items"] == [1, 2, 0, 3, 1, 0, 2, 0, 0, 1]
    assert payload["respondent"] == "client" and payload["response_id"] == "phq9-example"
    assert "appointment_id" not in payload  # the Encounter is unknown here: no appointment link


def test_gad7_by_plain_linkid_and_ordinal_value_extension() -> None:
    result = run(fixture("questionnaireresponse-gad7-ordinal"), context(Patient_example=PATIENT_FACTS))
    payload = payloads(result)["questionnaire.completed"]
    assert payload["instrument"] == "GAD-7" and payload["status"] == "amended"
    assert payload["items"] == [1, 2, 0, 1, 3, 0, 1]


def test_nested_lhc_forms_group_and_item_definitions_are_read() -> None:
    # R4's QuestionnaireResponse.item has no `code` (Questionnaire.item does): `definition` names the item.
    qr = fixture("questionnaireresponse-phq9-lhcforms")
    group: dict[str, Any] = {"linkId": "/44249-1", "item": []}
    for item in qr["item"][:9]:
        code = item["linkId"].strip("/")
        group["item"].append(
            {"linkId": f"q{code}", "definition": f"http://loinc.org/{code}", "answer": item["answer"]}
        )
    qr["item"] = [group]
    qr["questionnaire"] = "Questionnaire/phq-9-local"
    result = run(qr, context(Patient_example=PATIENT_FACTS))
    assert payloads(result)["questionnaire.completed"]["items"] == [1, 2, 0, 3, 1, 0, 2, 0, 0]


INVALID = [
    (
        "invalid-qr-wrong-loinc-item",
        "QuestionnaireResponse.item[3].linkId",
        "invalid",
        "LOINC 69725-0 is not an item of PHQ-9",
    ),
    (
        "invalid-qr-out-of-range",
        "QuestionnaireResponse.item[8].answer[0]",
        "invalid",
        "value 4 is above the PHQ-9 maximum 3",
    ),
    (
        "invalid-qr-unknown-questionnaire",
        "QuestionnaireResponse.questionnaire",
        "not-supported",
        "not a questionnaire Attune scores",
    ),
    ("invalid-qr-missing-subject", "QuestionnaireResponse.subject", "required", "no reference to a Patient"),
]


@pytest.mark.parametrize(("name", "expression", "code", "text"), INVALID, ids=[i[0] for i in INVALID])
def test_unusable_resources_answer_an_operation_outcome_and_are_dead_lettered(
    name: str, expression: str, code: str, text: str
) -> None:
    resource = fixture(name)
    result = run(bundle(fixture("patient-example"), resource))
    entry = result.bundle()["entry"][1]["response"]
    assert entry["status"] == "422 Unprocessable Entity"
    (issue,) = entry["outcome"]["issue"]
    assert issue["severity"] == "error" and issue["code"] == code
    assert issue["expression"] == [expression]
    assert text in issue["diagnostics"]
    (letter,) = result.dead
    assert letter.error.code == "fhir_unusable"
    assert letter.error.details == [{"loc": [expression], "msg": issue["diagnostics"]}]
    assert json.loads(letter.raw) == resource  # kept whole, for a replay after the fix
    assert result.envelopes == []


def test_patient_without_an_mrn_names_the_identifier() -> None:
    patient = fixture("patient-example")
    patient["identifier"][0]["type"]["coding"][0]["code"] = "SS"
    result = run(patient)
    (issue,) = result.bundle()["entry"][0]["response"]["outcome"]["issue"]
    assert issue["expression"] == ["Patient.identifier"] and issue["code"] == "required"


def test_mrn_by_the_identifier_system_configured_for_the_source() -> None:
    patient = fixture("patient-example")
    patient["identifier"].append({"system": "https://north.example/mrn", "value": "N-777"})
    config = FhirConfig(sources={"ehr-north": {"mrn_system": "https://north.example/mrn"}}).for_source(
        "ehr-north"
    )
    result = run(patient, context(frozenset({"north-01"}), config))
    assert result.remember["Patient/example"]["mrn"] == "N-777"
    assert result.remember["Patient/example"]["clinic_id"] == "north-01"  # the token's only clinic


def test_references_resolve_from_what_intake_already_knows() -> None:
    appt = fixture("appointment-example")
    result = run(appt, context(Patient_example=PATIENT_FACTS))
    assert payloads(result)["appointment.scheduled"]["mrn"] == "12345"
    unknown = run(appt)
    (issue,) = unknown.bundle()["entry"][0]["response"]["outcome"]["issue"]
    assert issue["expression"] == ["Appointment.participant.actor"] and issue["code"] == "not-found"


def _appointment(status: str, reason: str | None = None, **extra: Any) -> dict[str, Any]:
    appt = fixture("appointment-example")
    appt["status"] = status
    appt["meta"] = {"versionId": "2", "lastUpdated": "2026-03-08T09:00:00+01:00"}
    if reason:
        appt["cancelationReason"] = {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason",
                    "code": reason,
                }
            ]
        }
    return appt | extra


@pytest.mark.parametrize(
    ("status", "reason", "event_type", "expected"),
    [
        ("noshow", None, "session.missed", {"reason": "no_show", "modality": "video"}),
        ("cancelled", "pat-fb", "session.cancelled", {"cancelled_by": "client", "hours_notice": 24.0}),
        ("cancelled", "prov-hosp", "session.cancelled", {"cancelled_by": "clinician", "hours_notice": 24.0}),
        ("cancelled", "maint", "session.cancelled", {"cancelled_by": "clinic", "hours_notice": 24.0}),
        ("cancelled", "late-cancel", "session.missed", {"reason": "late_cancel", "modality": "video"}),
    ],
)
def test_appointment_status_and_who_cancelled(
    status: str, reason: str | None, event_type: str, expected: dict[str, Any]
) -> None:
    result = run(_appointment(status, reason), context(Patient_example=PATIENT_FACTS))
    payload = payloads(result)[event_type]
    assert {k: payload[k] for k in expected} == expected
    assert result.envelopes[0][0].event_id == "fhir:Appointment/example/_history/2"


def test_a_cancellation_without_meta_last_updated_has_no_hours_notice() -> None:
    # Without the EHR's time of the change only the arrival time is known, which says nothing of
    # the notice the client gave: unknown, never 0 hours.
    appt = _appointment("cancelled", "pat-fb")
    del appt["meta"]["lastUpdated"]
    result = run(appt, context(Patient_example=PATIENT_FACTS))
    payload = payloads(result)["session.cancelled"]
    assert payload["cancelled_by"] == "client" and payload.get("hours_notice") is None


def test_appointment_statuses_without_an_attune_event_are_recorded_not_rejected() -> None:
    result = run(_appointment("proposed"), context(Patient_example=PATIENT_FACTS))
    assert result.envelopes == [] and result.dead == []
    assert result.bundle()["entry"][0]["response"]["status"] == "200 OK"


@pytest.mark.parametrize(("code", "modality"), [("AMB", "in_person"), ("VR", "video"), ("PHONE", "phone")])
def test_encounter_class_gives_the_modality(code: str, modality: str) -> None:
    enc = fixture("encounter-example")
    enc["class"]["code"] = code
    result = run(enc, context(Patient_example=PATIENT_FACTS))
    assert payloads(result)["session.attended"]["modality"] == modality


def test_phone_class_is_configurable_per_source() -> None:
    enc = fixture("encounter-example")
    enc["class"] = {"system": "http://north.example/class", "code": "TEL"}
    config = FhirConfig(sources={"ehr-north": {"phone_codes": ["TEL"]}}).for_source("ehr-north")
    result = run(enc, context(config=config, Patient_example=PATIENT_FACTS))
    assert payloads(result)["session.attended"]["modality"] == "phone"


def test_a_new_version_meaning_the_same_publishes_nothing_and_the_same_version_the_same_id() -> None:
    first = run(bundle(fixture("patient-example"), fixture("encounter-example")))
    known = dict(first.remember)
    again = run(bundle(fixture("encounter-example")), context(known=known))
    assert again.envelopes == []
    assert again.bundle()["entry"][0]["response"]["status"] == "200 OK"
    # Without what intake remembered, the same version gives the same event id (the pipeline de-duplicates).
    replay = run(bundle(fixture("patient-example"), fixture("encounter-example")))
    assert [e.event_id for e, _ in replay.envelopes] == [e.event_id for e, _ in first.envelopes]


def test_version_falls_back_to_last_updated() -> None:
    enc = fixture("encounter-example")
    enc["meta"] = {"lastUpdated": "2026-03-09T10:05:00+01:00"}
    result = run(enc, context(Patient_example=PATIENT_FACTS))
    assert result.envelopes[0][0].event_id == "fhir:Encounter/example/_history/2026-03-09T10:05:00+01:00"


def test_episode_closure_reason_from_the_configured_extension() -> None:
    eoc = fixture("episodeofcare-example")
    eoc["status"] = "finished"
    eoc["period"]["end"] = "2026-06-01"
    eoc["extension"] = [
        {
            "url": "http://attune.example.org/fhir/StructureDefinition/episode-closure-reason",
            "valueCoding": {"system": "http://north.example/closure", "code": "dna"},
        }
    ]
    config = FhirConfig(sources={"ehr-north": {"closure_reasons": {"dna": "unilateral"}}}).for_source(
        "ehr-north"
    )
    result = run(eoc, context(config=config, Patient_example=PATIENT_FACTS))
    assert payloads(result)["episode.closed"] == {
        "mrn": "12345",
        "reason": "unilateral",
        "closed_on": "2026-06-01",
    }


def test_a_new_care_manager_is_a_clinician_assignment() -> None:
    eoc = fixture("episodeofcare-example")
    known: dict[str, dict[str, Any]] = {
        "EpisodeOfCare/example": {
            "patient": "Patient/example",
            "clinic_id": "north-01",
            "clinician_id": "c-17",
            "referred": True,
        }
    }
    eoc["careManager"] = {"reference": "Practitioner/c-22"}
    eoc["meta"]["versionId"] = "2"
    result = run(eoc, context(known=known, Patient_example=PATIENT_FACTS))
    assert payloads(result) == {"clinician.assigned": {"mrn": "12345", "clinician_id": "c-22"}}


def test_a_clinic_outside_the_token_is_forbidden_and_not_dead_lettered() -> None:
    patient = fixture("patient-example")
    patient["managingOrganization"] = {"reference": "Organization/2"}
    config = FhirConfig(defaults={"clinics": {"Organization/2": "south-01"}}).for_source("ehr-north")
    result = run(patient, context(config=config))
    response = result.bundle()["entry"][0]["response"]
    assert response["status"] == "403 Forbidden"
    assert response["outcome"]["issue"][0]["code"] == "forbidden"
    assert result.dead == [] and result.remember == {}


def test_an_unmapped_organization_names_the_element() -> None:
    patient = fixture("patient-example")
    patient["managingOrganization"] = {"reference": "Organization/unknown-org"}
    result = run(patient)
    (issue,) = result.bundle()["entry"][0]["response"]["outcome"]["issue"]
    assert issue["expression"] == ["Patient.managingOrganization"]
    assert result.dead[0].error.code == "fhir_unusable"


@pytest.mark.parametrize(
    ("field", "value", "expression", "code"),
    [
        ("status", "maybe", "Appointment.status", "code-invalid"),
        ("start", "next tuesday", "Appointment.start", "structure"),
        ("colour", "red", "Appointment.colour", "structure"),
    ],
)
def test_schema_errors_name_the_element(field: str, value: Any, expression: str, code: str) -> None:
    appt = fixture("appointment-example") | {field: value}
    result = run(appt, context(Patient_example=PATIENT_FACTS))
    (issue,) = result.bundle()["entry"][0]["response"]["outcome"]["issue"]
    assert issue["expression"] == [expression] and issue["code"] == code
    assert result.dead[0].error.code == "fhir_unusable"


def test_history_bundle_with_a_subscription_status_and_unaccepted_types() -> None:
    status = {
        "resourceType": "Parameters",
        "id": "notification",
        "parameter": [{"name": "type", "valueCode": "event-notification"}],
    }
    observation = {"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "x"}}
    result = run(bundle(status, fixture("patient-example"), observation, kind="history"))
    statuses = [e["response"]["status"] for e in result.bundle()["entry"]]
    assert statuses == ["200 OK", "200 OK", "422 Unprocessable Entity"]
    with pytest.raises(BadRequest):
        run(bundle(fixture("patient-example"), kind="searchset"))
    with pytest.raises(BadRequest):
        run({"hello": "world"})


def test_answers_never_carry_the_mrn_or_the_ehr_ids() -> None:
    result = run(bundle(*(fixture(n) for n in VALID), *(fixture(n) for n, *_ in INVALID)))
    text = json.dumps(result.bundle())
    for phi in ("12345", "phq9-example", "gad7-example", '"example"', "Chalmers", "1974"):
        assert phi not in text
    for letter in result.dead:
        assert "12345" not in letter.error.message


def test_capability_statement_lists_exactly_the_accepted_resources() -> None:
    cap = capability_statement(SourceConfig(), "http://intake/fhir/r4")
    (rest,) = cap["rest"]
    assert [r["type"] for r in rest["resource"]] == [
        "Patient",
        "EpisodeOfCare",
        "Appointment",
        "Encounter",
        "QuestionnaireResponse",
    ]
    assert cap["fhirVersion"] == "4.0.1"


def test_config_file_merges_source_blocks_over_defaults(tmp_path: Path) -> None:
    path = tmp_path / "fhir.json"
    path.write_text(
        json.dumps(
            {
                "defaults": {"clinics": {"Organization/1": "north-01"}},
                "sources": {
                    "ehr-north": {
                        "clinics": {"Organization/2": "north-02"},
                        "questionnaires": {"https://north.example/Q/srs": "SRS"},
                    }
                },
            }
        )
    )
    config = load_config(path).for_source("ehr-north")
    assert config.clinics == {"Organization/1": "north-01", "Organization/2": "north-02"}
    assert config.questionnaires["https://north.example/Q/srs"] == "SRS"
    assert "http://attune.example.org/fhir/Questionnaire/wai-sr" in config.questionnaires
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"sources": {"x": {"default_modality": "carrier pigeon"}}}))
    with pytest.raises(ValueError):
        load_config(bad)


def test_configured_instrument_items_in_document_order() -> None:
    qr = copy.deepcopy(fixture("questionnaireresponse-gad7-ordinal"))
    qr["questionnaire"] = "http://attune.example.org/fhir/Questionnaire/srs|3"
    qr["status"] = "completed"
    qr["item"] = [
        {"linkId": str(i + 1), "answer": [{"valueDecimal": v}]} for i, v in enumerate([9.5, 8, 10, 7.2])
    ]
    result = run(qr, context(Patient_example=PATIENT_FACTS))
    assert payloads(result)["questionnaire.completed"]["items"] == [9.5, 8, 10, 7.2]
    assert payloads(result)["questionnaire.completed"]["instrument"] == "SRS"


def test_the_readme_example_bundle_maps_without_an_unusable_entry() -> None:
    doc = json.loads((FIXTURES.parents[2] / "docs" / "examples" / "fhir-bundle.json").read_text())
    result = run(doc, context(config=FhirConfig().for_source("ehr-north")))
    assert result.dead == []
    assert [env.event_type for env, _ in result.envelopes] == [
        "client.referred",
        "appointment.scheduled",
        "session.attended",
        "questionnaire.completed",
    ]
    assert {env.clinic_id for env, _ in result.envelopes} == {"north-01"}
