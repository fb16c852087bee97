"""The simulated network as an EHR speaking FHIR R4 would send it: each envelope becomes the resource
version(s) whose mapping in intake (attune_intake.domain.fhir) gives that envelope's payload back.

Resources: one Patient per client (a new version when a referral brings new demographics), one
EpisodeOfCare per episode, one Appointment per appointment, one Encounter per attended session (a
planned one first when a questionnaire arrives before its session), one QuestionnaireResponse per
response. `meta.lastUpdated` is the envelope's occurred_at, `meta.versionId` counts each resource's
versions, and a duplicate record is sent again as the same version (so intake de-duplicates it).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from attune_cli.simulator.model import OutboundRecord

LOINC = "http://loinc.org"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
MODE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode"
MR = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}
INTERPRETER = "http://hl7.org/fhir/StructureDefinition/patient-interpreterRequired"
CANCEL = "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason"
ATTUNE = "http://attune.example.org/fhir"
CLOSURE = f"{ATTUNE}/StructureDefinition/episode-closure-reason"
MRN_SYSTEM = "urn:attune:simulator:mrn"
QUESTIONNAIRES = {
    "PHQ-9": f"{LOINC}/q/44249-1",
    "GAD-7": f"{LOINC}/q/69737-5",
    "WAI-SR": f"{ATTUNE}/Questionnaire/wai-sr",
    "SRS": f"{ATTUNE}/Questionnaire/srs",
    "ORS": f"{ATTUNE}/Questionnaire/ors",
    "PSQ": f"{ATTUNE}/Questionnaire/psq",
}
LOINC_ITEMS = {
    "PHQ-9": (
        "44250-9",
        "44255-8",
        "44259-0",
        "44254-1",
        "44251-7",
        "44258-2",
        "44252-5",
        "44253-3",
        "44260-8",
        "69722-7",
    ),
    "GAD-7": ("69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"),
}
CLASS = {  # Encounter.class and Appointment.appointmentType per modality
    "video": {"system": ACT_CODE, "code": "VR", "display": "virtual"},
    "in_person": {"system": ACT_CODE, "code": "AMB", "display": "ambulatory"},
    "phone": {"system": MODE, "code": "PHONE", "display": "telephone"},
}
WHO_CANCELLED = {"client": "pat", "clinician": "prov", "clinic": "other"}
MAX_ENTRIES = 200  # resources per bundle


def _ref(kind: str, rid: str) -> dict[str, str]:
    return {"reference": f"{kind}/{rid}"}


@dataclass
class _Client:
    patient_id: str
    clinic_id: str
    mrn: str
    demographics: dict[str, Any] = field(default_factory=dict)
    patient_version: int = 0
    episodes: int = 0
    episode_open: bool = False
    episode_start: str | None = None


@dataclass
class FhirStream:
    """Turns envelopes, in delivery order, into resources; remembers what it sent."""

    versions: Counter[str] = field(default_factory=Counter)
    clients: dict[tuple[str, str], _Client] = field(default_factory=dict)
    sent_by_event: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    encounters: set[str] = field(default_factory=set)
    modalities: dict[str, str] = field(default_factory=dict)  # appointment_id -> modality as booked

    def _client(self, clinic_id: str, mrn: str) -> _Client:
        key = (clinic_id, mrn)
        if key not in self.clients:
            digest = hashlib.sha256(f"{clinic_id}:{mrn}".encode()).hexdigest()[:20]
            self.clients[key] = _Client(f"pt-{digest}", clinic_id, mrn)
        return self.clients[key]

    def _meta(self, key: str, at: str) -> dict[str, str]:
        self.versions[key] += 1
        return {"versionId": str(self.versions[key]), "lastUpdated": at}

    def patient(self, c: _Client, at: str) -> dict[str, Any]:
        """The client's current Patient version."""
        if c.patient_version == 0:
            c.patient_version = 1
        d = c.demographics
        resource: dict[str, Any] = {
            "resourceType": "Patient",
            "id": c.patient_id,
            "meta": {"versionId": str(c.patient_version), "lastUpdated": d.get("at", at)},
            "identifier": [{"type": MR, "system": MRN_SYSTEM, "value": c.mrn}],
            "managingOrganization": _ref("Organization", c.clinic_id),
        }
        if d.get("birth_year") is not None:
            resource["birthDate"] = f"{d['birth_year']}-07-01"
        if d.get("preferred_language"):
            resource["communication"] = [
                {
                    "language": {"coding": [{"system": "urn:ietf:bcp:47", "code": d["preferred_language"]}]},
                    "preferred": True,
                }
            ]
        if d.get("interpreter_needed") is not None:
            resource["extension"] = [{"url": INTERPRETER, "valueBoolean": d["interpreter_needed"]}]
        return resource

    def convert(self, record: OutboundRecord) -> tuple[_Client, list[dict[str, Any]]] | None:
        """The resources for one valid record (the same ones again for a duplicate); None for poison."""
        if record.kind == "poison":
            return None
        env = json.loads(record.value)
        c = self._client(env["clinic_id"], env["payload"]["mrn"])
        if env["event_id"] in self.sent_by_event:
            return c, self.sent_by_event[env["event_id"]]
        resources = list(self._resources(env, c))
        self.sent_by_event[env["event_id"]] = resources
        return c, resources

    def _resources(self, env: dict[str, Any], c: _Client) -> Iterator[dict[str, Any]]:
        kind, p, at = env["event_type"], env["payload"], env["occurred_at"]
        patient = _ref("Patient", c.patient_id)
        org = _ref("Organization", c.clinic_id)
        if kind == "client.referred":
            c.demographics = {k: p.get(k) for k in ("birth_year", "preferred_language", "interpreter_needed")}
            c.demographics["at"] = at
            c.patient_version += 1
            c.episodes, c.episode_open, c.episode_start = c.episodes + 1, True, p["referred_on"]
            eoc = f"{c.patient_id}-ep{c.episodes}"
            resource = {
                "resourceType": "EpisodeOfCare",
                "id": eoc,
                "meta": self._meta(f"EpisodeOfCare/{eoc}", at),
                "status": "active",
                "patient": patient,
                "managingOrganization": org,
                "period": {"start": p["referred_on"]},
            }
            if p.get("clinician_id"):
                resource["careManager"] = _ref("Practitioner", p["clinician_id"])
            yield resource
        elif kind == "clinician.assigned":
            if not c.episode_open:  # an episode the EHR never referred: no period.start
                c.episodes, c.episode_open, c.episode_start = c.episodes + 1, True, None
            eoc = f"{c.patient_id}-ep{c.episodes}"
            resource = {
                "resourceType": "EpisodeOfCare",
                "id": eoc,
                "meta": self._meta(f"EpisodeOfCare/{eoc}", at),
                "status": "active",
                "patient": patient,
                "managingOrganization": org,
                "careManager": _ref("Practitioner", p["clinician_id"]),
            }
            if c.episode_start:
                resource["period"] = {"start": c.episode_start}
            yield resource
        elif kind == "episode.closed":
            if not c.episode_open:
                c.episodes += 1
            eoc = f"{c.patient_id}-ep{c.episodes}"
            period = {"end": p["closed_on"]} | ({"start": c.episode_start} if c.episode_start else {})
            c.episode_open, c.episode_start = False, None
            yield {
                "resourceType": "EpisodeOfCare",
                "id": eoc,
                "meta": self._meta(f"EpisodeOfCare/{eoc}", at),
                "status": "finished",
                "patient": patient,
                "managingOrganization": org,
                "period": period,
                "extension": [{"url": CLOSURE, "valueCode": p["reason"]}],
            }
        elif kind in ("appointment.scheduled", "session.missed", "session.cancelled"):
            yield self._appointment(kind, p, at, patient)
        elif kind == "session.attended":
            yield self._encounter(p, at, patient, org, "finished")
        elif kind == "questionnaire.completed":
            encounter = None
            if p.get("appointment_id"):
                encounter = f"enc-{p['appointment_id']}"
                if encounter not in self.encounters:  # the questionnaire came before its session
                    yield self._encounter(p, at, patient, org, "in-progress")
            yield self._response(p, at, patient, encounter)

    def _appointment(self, kind: str, p: dict[str, Any], at: str, patient: dict[str, str]) -> dict[str, Any]:
        aid = p["appointment_id"]
        resource: dict[str, Any] = {
            "resourceType": "Appointment",
            "id": aid,
            "meta": self._meta(f"Appointment/{aid}", at),
            "participant": [
                {"actor": patient, "status": "accepted"},
                {"actor": _ref("Practitioner", p["clinician_id"]), "status": "accepted"},
            ],
        }
        if p.get("modality"):
            resource["appointmentType"] = {"coding": [CLASS[p["modality"]]]}
            self.modalities[aid] = p["modality"]
        if kind == "appointment.scheduled":
            resource |= {"status": "booked", "start": p["scheduled_start"]}
        elif p.get("reason") == "no_show":
            resource["status"] = "noshow"
        else:
            code = "late-cancel" if p.get("reason") == "late_cancel" else WHO_CANCELLED[p["cancelled_by"]]
            resource |= {
                "status": "cancelled",
                "cancelationReason": {"coding": [{"system": CANCEL, "code": code}]},
            }
            if p.get("hours_notice") is not None:  # intake reads the notice as start - lastUpdated
                start = datetime.fromisoformat(at) + timedelta(hours=p["hours_notice"])
                resource["start"] = start.isoformat()
        return resource

    def _encounter(
        self, p: dict[str, Any], at: str, patient: dict[str, str], org: dict[str, str], status: str
    ) -> dict[str, Any]:
        eid = f"enc-{p['appointment_id']}"
        self.encounters.add(eid)
        resource: dict[str, Any] = {
            "resourceType": "Encounter",
            "id": eid,
            "meta": self._meta(f"Encounter/{eid}", at),
            "status": status,
            "subject": patient,
            "serviceProvider": org,
            "appointment": [_ref("Appointment", p["appointment_id"])],
            "participant": [{"individual": _ref("Practitioner", p["clinician_id"])}],
        }
        # Encounter.class is required: a planned session's is its appointment's modality, as booked.
        resource["class"] = CLASS[p.get("modality") or self.modalities.get(p["appointment_id"], "in_person")]
        if p.get("duration_minutes") is not None:
            resource["length"] = {
                "value": p["duration_minutes"],
                "unit": "min",
                "system": "http://unitsofmeasure.org",
                "code": "min",
            }
        return resource

    def _response(
        self, p: dict[str, Any], at: str, patient: dict[str, str], encounter: str | None
    ) -> dict[str, Any]:
        rid, instrument = p["response_id"], p["instrument"]
        codes = LOINC_ITEMS.get(instrument)
        items = []
        for i, value in enumerate(p["items"]):
            item: dict[str, Any] = {"linkId": f"/{codes[i]}" if codes else str(i + 1)}
            if value is not None:
                item["answer"] = [
                    {"valueInteger": value} if isinstance(value, int) else {"valueDecimal": value}
                ]
            items.append(item)
        resource: dict[str, Any] = {
            "resourceType": "QuestionnaireResponse",
            "id": rid,
            "meta": self._meta(f"QuestionnaireResponse/{rid}", at),
            "questionnaire": QUESTIONNAIRES[instrument],
            "status": p["status"],
            "subject": patient,
            "authored": at,
            "author": _ref("Practitioner", p["clinician_id"]),
            "source": patient if p["respondent"] == "client" else _ref("Practitioner", p["clinician_id"]),
            "item": items,
        }
        if encounter:
            resource["encounter"] = _ref("Encounter", encounter)
        return resource


def bundles(
    records: Sequence[OutboundRecord], max_entries: int = MAX_ENTRIES
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Batch Bundles in delivery order, each opening with the current Patient of every client in it;
    yields (how many records the bundle covers, the bundle). Poison records are not FHIR: left out."""
    stream = FhirStream()
    entries: list[dict[str, Any]] = []
    patients: dict[str, dict[str, Any]] = {}
    count = 0

    def bundle() -> dict[str, Any]:
        body = [*patients.values(), *entries]
        return {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [
                {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
                for r in body
            ],
        }

    for record in records:
        converted = stream.convert(record)
        if converted is not None:
            client, resources = converted
            full = len(entries) + len(patients) + len(resources) + 1 > max_entries
            # A referral's new demographics must not rewrite an earlier referral's in the same bundle.
            stale = client.patient_id in patients and patients[client.patient_id]["meta"]["versionId"] != str(
                client.patient_version
            )
            if entries and (full or stale):
                yield count, bundle()
                entries, patients, count = [], {}, 0
            patients[client.patient_id] = stream.patient(client, resources[0]["meta"]["lastUpdated"])
            entries.extend(resources)
        count += 1
    if count:
        yield count, bundle()
