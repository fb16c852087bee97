"""One FHIR resource -> at most one contract envelope (section 2), plus the facts to remember. Pure.

The envelope is then validated exactly like one sent to POST /v1/ehr/events (attune_shared.events).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from attune_intake.domain.fhir import questionnaire
from attune_intake.domain.fhir.resolve import Context, Unusable, codes, day, instant, obj, practitioner

MR_TYPE = ("http://terminology.hl7.org/CodeSystem/v2-0203", "MR")
INTERPRETER = "http://hl7.org/fhir/StructureDefinition/patient-interpreterRequired"
ACCEPTED = ("Patient", "EpisodeOfCare", "Appointment", "Encounter", "QuestionnaireResponse")
# R4's required status value sets (fhir.resources checks types, not codes).
STATUSES = {
    "EpisodeOfCare": {"planned", "waitlist", "active", "onhold", "finished", "cancelled", "entered-in-error"},
    "Appointment": {
        "proposed",
        "pending",
        "booked",
        "arrived",
        "fulfilled",
        "cancelled",
        "noshow",
        "entered-in-error",
        "checked-in",
        "waitlist",
    },
    "Encounter": {
        "planned",
        "arrived",
        "triaged",
        "in-progress",
        "onleave",
        "finished",
        "cancelled",
        "entered-in-error",
        "unknown",
    },
    "QuestionnaireResponse": {"in-progress", "completed", "amended", "entered-in-error", "stopped"},
}


@dataclass
class Mapped:
    """What one resource gives: an envelope (or none, with a note why) and facts to remember.

    `where` names the FHIR element behind each payload field (and `items` behind each item), so an
    envelope the contract rejects is answered with the element that made it unusable.
    """

    key: str
    facts: dict[str, Any]
    envelope: dict[str, Any] | None = None
    note: str = ""
    where: dict[str, str] = field(default_factory=dict)
    items: list[str] = field(default_factory=list)

    @property
    def fingerprint(self) -> str | None:
        """The envelope's meaning without its id and time: a new version meaning the same is a no-op."""
        if self.envelope is None:
            return None
        meaning = [self.envelope["event_type"], self.envelope["clinic_id"], self.envelope["payload"]]
        return hashlib.sha256(json.dumps(meaning, sort_keys=True, default=str).encode()).hexdigest()[:32]


def version(resource: dict[str, Any]) -> str:
    """The resource's version for idempotency: meta.versionId, else meta.lastUpdated, else a digest."""
    meta = obj(resource.get("meta"))
    for name in ("versionId", "lastUpdated"):
        if isinstance(meta.get(name), str) and meta[name]:
            return str(meta[name])[:64]
    body = json.dumps(resource, sort_keys=True, separators=(",", ":")).encode()
    return "sha256-" + hashlib.sha256(body).hexdigest()[:32]


def map_resource(resource: dict[str, Any], ctx: Context) -> Mapped:
    """Map one (already schema-valid) resource, or raise Unusable naming the element."""
    kind = resource.get("resourceType")
    if kind not in ACCEPTED:
        raise Unusable(f"{kind}", f"{kind} is not a resource Attune accepts", code="not-supported")
    rid = resource.get("id")
    if not isinstance(rid, str) or not rid:
        raise Unusable(f"{kind}.id", "a resource needs an id (the idempotency key is type, id and version)")
    key = f"{kind}/{rid}"
    if kind in STATUSES and resource.get("status") not in STATUSES[kind]:
        raise Unusable(f"{kind}.status", f"status is not one of R4's {kind} status codes", "code-invalid")
    mapper = {
        "Patient": _patient,
        "EpisodeOfCare": _episode,
        "Appointment": _appointment,
        "Encounter": _encounter,
        "QuestionnaireResponse": _response,
    }[kind]
    mapped = mapper(resource, ctx, key)
    return mapped


def _envelope(
    ctx: Context,
    key: str,
    resource: dict[str, Any],
    event_type: str,
    clinic: str,
    at: datetime,
    payload: dict[str, Any],
) -> dict[str, Any]:
    return {
        "event_id": f"fhir:{key}/_history/{version(resource)}",
        "event_type": event_type,
        "schema_version": 1,
        "source": ctx.source,
        "clinic_id": clinic,
        "occurred_at": at.isoformat(),
        "payload": {k: v for k, v in payload.items() if v is not None},
    }


def _when(resource: dict[str, Any], *candidates: Any) -> datetime:
    """When it happened in the EHR: meta.lastUpdated, else the first candidate that is a dateTime, else now."""
    meta = obj(resource.get("meta"))
    for value in (meta.get("lastUpdated"), *candidates):
        found = instant(value)
        if found is not None:
            return found
    return datetime.now(UTC)


def _patient_of(ctx: Context, reference: Any, expression: str) -> tuple[str, dict[str, Any]]:
    key, facts = ctx.facts(reference, "Patient")
    if key is None:
        raise Unusable(expression, "no reference to a Patient", code="required")
    if facts is None or not facts.get("mrn"):
        raise Unusable(
            expression, "the Patient is neither in this bundle nor known to intake", code="not-found"
        )
    return key, facts


# ---------------------------------------------------------------- Patient


def _patient(resource: dict[str, Any], ctx: Context, key: str) -> Mapped:
    mrn = None
    for ident in resource.get("identifier", []):
        if not isinstance(ident, dict) or not isinstance(ident.get("value"), str):
            continue
        if ctx.config.mrn_system is not None:
            if ident.get("system") == ctx.config.mrn_system:
                mrn = ident["value"]
                break
        elif any(
            (c.get("system"), c.get("code")) == MR_TYPE
            for c in (ident.get("type") or {}).get("coding", [])
            if isinstance(c, dict)
        ):
            mrn = ident["value"]
            break
    if mrn is None:
        wanted = f"system {ctx.config.mrn_system}" if ctx.config.mrn_system else "type MR (HL7 v2-0203)"
        raise Unusable("Patient.identifier", f"no identifier with {wanted}: no MRN", code="required")
    language = None
    for comm in resource.get("communication", []):
        if isinstance(comm, dict) and comm.get("preferred") is True:
            found = codes(comm.get("language"))
            language = found[0] if found else None
            break
    interpreter = None
    for ext in resource.get("extension", []):
        if (
            isinstance(ext, dict)
            and ext.get("url") == INTERPRETER
            and isinstance(ext.get("valueBoolean"), bool)
        ):
            interpreter = ext["valueBoolean"]
    birth = resource.get("birthDate")
    org = resource.get("managingOrganization")
    clinic = None
    if org is not None or ("*" not in ctx.clinics and len(ctx.clinics) == 1):
        clinic = ctx.clinic(org, "Patient.managingOrganization")
    facts = {
        "mrn": mrn,
        "clinic_id": clinic,
        "birth_year": int(birth[:4]) if isinstance(birth, str) and birth[:4].isdigit() else None,
        "preferred_language": language,
        "interpreter_needed": interpreter,
    }
    return Mapped(
        key, facts, note="Patient recorded (it gives the MRN and referral details; no event of its own)"
    )


# ---------------------------------------------------------------- EpisodeOfCare


def _episode(resource: dict[str, Any], ctx: Context, key: str) -> Mapped:
    patient_key, patient = _patient_of(ctx, resource.get("patient"), "EpisodeOfCare.patient")
    before = ctx.known.get(key) or {}
    clinic = ctx.clinic(
        resource.get("managingOrganization"),
        "EpisodeOfCare.managingOrganization",
        patient.get("clinic_id"),
        before.get("clinic_id"),
    )
    clinician = practitioner(ctx, resource.get("careManager"))
    status = resource.get("status")
    period = obj(resource.get("period"))
    facts = {
        "patient": patient_key,
        "clinic_id": clinic,
        "clinician_id": clinician,
        "status": status,
        "referred": before.get("referred", False),
    }
    mapped = Mapped(key, facts, where={"clinician_id": "EpisodeOfCare.careManager"})
    common = {"mrn": patient["mrn"]}
    if status in ("planned", "waitlist", "active"):
        start = day(period.get("start"))
        if not before.get("referred") and start is None and not clinician:
            raise Unusable(
                "EpisodeOfCare.period.start", "a referral needs the episode's start date", "required"
            )
        if not before.get("referred") and start is not None:
            facts["referred"] = True
            mapped.where |= {
                "referred_on": "EpisodeOfCare.period.start",
                "birth_year": "Patient.birthDate",
                "preferred_language": "Patient.communication.language",
            }
            mapped.envelope = _envelope(
                ctx,
                key,
                resource,
                "client.referred",
                clinic,
                _when(resource, period.get("start")),
                {
                    **common,
                    "referred_on": start.isoformat(),
                    "clinician_id": clinician,
                    "birth_year": patient.get("birth_year"),
                    "preferred_language": patient.get("preferred_language"),
                    "interpreter_needed": patient.get("interpreter_needed"),
                },
            )
        elif clinician and clinician != before.get("clinician_id"):
            # A new care manager; or, with no period.start, an episode the EHR never referred.
            mapped.envelope = _envelope(
                ctx,
                key,
                resource,
                "clinician.assigned",
                clinic,
                _when(resource),
                {**common, "clinician_id": clinician},
            )
        else:
            mapped.note = "EpisodeOfCare unchanged for Attune (referral and care manager known)"
    elif status == "finished":
        end = day(period.get("end"))
        if end is None:
            raise Unusable("EpisodeOfCare.period.end", "a finished episode needs its end date", "required")
        reason = "other"
        for ext in resource.get("extension", []):
            if isinstance(ext, dict) and ext.get("url") == ctx.config.closure_extension:
                found = codes(ext.get("valueCoding")) or (
                    [ext["valueCode"]] if isinstance(ext.get("valueCode"), str) else []
                )
                for code in found:
                    reason = ctx.config.closure_reasons.get(code, code)
        mapped.where |= {
            "reason": f"EpisodeOfCare.extension('{ctx.config.closure_extension}')",
            "closed_on": "EpisodeOfCare.period.end",
        }
        mapped.envelope = _envelope(
            ctx,
            key,
            resource,
            "episode.closed",
            clinic,
            _when(resource, period.get("end")),
            {**common, "reason": reason, "closed_on": end.isoformat()},
        )
    else:
        mapped.note = f"EpisodeOfCare.status {status}: no Attune event"
    return mapped


# ---------------------------------------------------------------- Appointment


def _modality(ctx: Context, found: list[str]) -> str | None:
    for code in found:
        if code in ("video", "phone", "in_person"):
            return code
        if code in ctx.config.video_codes:
            return "video"
        if code in ctx.config.phone_codes:
            return "phone"
        if code in ctx.config.in_person_codes:
            return "in_person"
    return None


def _appointment(resource: dict[str, Any], ctx: Context, key: str) -> Mapped:
    participants = [p for p in resource.get("participant", []) if isinstance(p, dict)]
    patient_ref = next(
        (p.get("actor") for p in participants if (ctx.key(p.get("actor")) or "").startswith("Patient/")), None
    )
    patient_key, patient = _patient_of(ctx, patient_ref, "Appointment.participant.actor")
    before = ctx.known.get(key) or {}
    clinician = next((c for c in (practitioner(ctx, p.get("actor")) for p in participants) if c), None)
    clinician = clinician or before.get("clinician_id")
    clinic = ctx.clinic(None, "Appointment.participant", patient.get("clinic_id"), before.get("clinic_id"))
    from_ext = [
        c
        for ext in resource.get("extension", [])
        if isinstance(ext, dict) and ext.get("url") == ctx.config.modality_extension
        for c in (
            codes(ext.get("valueCoding"))
            + codes(ext.get("valueCodeableConcept"))
            + ([ext["valueCode"]] if isinstance(ext.get("valueCode"), str) else [])
        )
    ]
    modality = (
        _modality(ctx, from_ext)
        or _modality(ctx, codes(resource.get("appointmentType")))
        or _modality(ctx, codes(resource.get("serviceType")))
        or before.get("modality")
        or ctx.config.default_modality
    )
    start = instant(resource.get("start")) or (instant(before["start"]) if before.get("start") else None)
    status = resource.get("status")
    facts = {
        "patient": patient_key,
        "clinic_id": clinic,
        "clinician_id": clinician,
        "modality": modality,
        "start": start.isoformat() if start else None,
        "status": status,
    }
    mapped = Mapped(
        key,
        facts,
        where={
            "clinician_id": "Appointment.participant.actor",
            "modality": "Appointment.appointmentType",
            "scheduled_start": "Appointment.start",
        },
    )
    if status not in ("booked", "noshow", "cancelled"):
        mapped.note = f"Appointment.status {status}: no Attune event (attendance comes from the Encounter)"
        return mapped
    if clinician is None:
        raise Unusable("Appointment.participant.actor", "no participant is a Practitioner", code="required")
    common = {"mrn": patient["mrn"], "appointment_id": key.split("/", 1)[1], "clinician_id": clinician}
    if status == "booked":
        if start is None:
            raise Unusable("Appointment.start", "a booked appointment needs its start", code="required")
        mapped.envelope = _envelope(
            ctx,
            key,
            resource,
            "appointment.scheduled",
            clinic,
            _when(resource, None),
            {**common, "scheduled_start": start.isoformat(), "modality": modality},
        )
    elif status == "noshow":
        mapped.envelope = _envelope(
            ctx,
            key,
            resource,
            "session.missed",
            clinic,
            _when(resource, resource.get("start")),
            {**common, "modality": modality, "reason": "no_show"},
        )
    else:
        reason = codes(resource.get("cancelationReason"))
        who = "clinic"
        for code in reason:
            mapped_to = ctx.config.cancellation_reasons.get(code) or ctx.config.cancellation_reasons.get(
                code.split("-", 1)[0]
            )
            if mapped_to:
                who = mapped_to
                break
        at = _when(resource)
        mapped.where["cancelled_by"] = "Appointment.cancelationReason"
        if who == "late_cancel":
            mapped.envelope = _envelope(
                ctx,
                key,
                resource,
                "session.missed",
                clinic,
                at,
                {**common, "modality": modality, "reason": "late_cancel"},
            )
        else:
            notice = None
            # Notice is counted from when the EHR recorded the cancellation (meta.lastUpdated); without
            # it `at` is only when the bundle arrived, which says nothing of the notice: left unknown.
            dated = instant(obj(resource.get("meta")).get("lastUpdated")) is not None
            if start is not None and dated:
                notice = round(max(0.0, (start - at).total_seconds() / 3600), 2)
            mapped.envelope = _envelope(
                ctx,
                key,
                resource,
                "session.cancelled",
                clinic,
                at,
                {**common, "cancelled_by": who, "hours_notice": notice},
            )
    return mapped


# ---------------------------------------------------------------- Encounter


def _minutes(resource: dict[str, Any]) -> int | None:
    length = resource.get("length")
    if isinstance(length, dict) and isinstance(length.get("value"), int | float):
        unit = length.get("code") or length.get("unit")
        factor = {"h": 60, "hour": 60, "hours": 60, "s": 1 / 60, "d": 1440}.get(str(unit), 1)
        return round(length["value"] * factor)
    period = obj(resource.get("period"))
    start, end = instant(period.get("start")), instant(period.get("end"))
    if start and end and len(str(period.get("start"))) > 10:
        return round((end - start).total_seconds() / 60)
    return None


def _encounter(resource: dict[str, Any], ctx: Context, key: str) -> Mapped:
    patient_key, patient = _patient_of(ctx, resource.get("subject"), "Encounter.subject")
    before = ctx.known.get(key) or {}
    appt_refs = [a for a in resource.get("appointment", []) if isinstance(a, dict)]
    appt_key, appt = ctx.facts(appt_refs[0], "Appointment") if appt_refs else (None, None)
    appt = appt or {}
    clinician = (
        next(
            (
                c
                for c in (
                    practitioner(ctx, p.get("individual"))
                    for p in resource.get("participant", [])
                    if isinstance(p, dict)
                )
                if c
            ),
            None,
        )
        or appt.get("clinician_id")
        or before.get("clinician_id")
    )
    clinic = ctx.clinic(
        resource.get("serviceProvider"),
        "Encounter.serviceProvider",
        patient.get("clinic_id"),
        appt.get("clinic_id"),
        before.get("clinic_id"),
    )
    modality = (
        _modality(ctx, codes(resource.get("class"))) or appt.get("modality") or ctx.config.default_modality
    )
    appointment_id = (
        appt_key.split("/", 1)[1] if appt_key else before.get("appointment_id") or key.split("/", 1)[1]
    )
    status = resource.get("status")
    facts = {
        "patient": patient_key,
        "clinic_id": clinic,
        "clinician_id": clinician,
        "appointment_id": appointment_id,
        "modality": modality,
        "status": status,
    }
    mapped = Mapped(
        key,
        facts,
        where={
            "clinician_id": "Encounter.participant.individual",
            "modality": "Encounter.class",
            "duration_minutes": "Encounter.length",
        },
    )
    if status != "finished":
        mapped.note = f"Encounter.status {status}: no Attune event until finished"
        return mapped
    if clinician is None:
        raise Unusable(
            "Encounter.participant.individual", "no participant is a Practitioner", code="required"
        )
    period = obj(resource.get("period"))
    mapped.envelope = _envelope(
        ctx,
        key,
        resource,
        "session.attended",
        clinic,
        _when(resource, period.get("start")),
        {
            "mrn": patient["mrn"],
            "appointment_id": appointment_id,
            "clinician_id": clinician,
            "modality": modality,
            "duration_minutes": _minutes(resource),
        },
    )
    return mapped


# ---------------------------------------------------------------- QuestionnaireResponse


def _response(resource: dict[str, Any], ctx: Context, key: str) -> Mapped:
    status = resource.get("status")
    if status not in ("completed", "amended"):
        return Mapped(key, {"status": status}, note=f"QuestionnaireResponse.status {status}: not scored")
    patient_key, patient = _patient_of(ctx, resource.get("subject"), "QuestionnaireResponse.subject")
    name = questionnaire.instrument(resource, ctx.config)
    scores, paths = questionnaire.items(resource, name)
    _, enc = ctx.facts(resource.get("encounter"), "Encounter")
    enc = enc or {}
    appt = ctx.known.get(f"Appointment/{enc['appointment_id']}", {}) if enc.get("appointment_id") else {}
    source_key = ctx.key(resource.get("source")) or ""
    clinician = (
        practitioner(ctx, resource.get("author")) or enc.get("clinician_id") or appt.get("clinician_id")
    )
    if clinician is None:
        raise Unusable(
            "QuestionnaireResponse.author", "no Practitioner: not the author, nor the encounter's", "required"
        )
    clinic = ctx.clinic(None, "QuestionnaireResponse.subject", patient.get("clinic_id"), enc.get("clinic_id"))
    facts = {"patient": patient_key, "clinic_id": clinic, "instrument": name, "status": status}
    mapped = Mapped(
        key,
        facts,
        items=paths,
        where={
            "clinician_id": "QuestionnaireResponse.author",
            "instrument": "QuestionnaireResponse.questionnaire",
        },
    )
    mapped.envelope = _envelope(
        ctx,
        key,
        resource,
        "questionnaire.completed",
        clinic,
        _when(resource, resource.get("authored")),
        {
            "mrn": patient["mrn"],
            "response_id": key.split("/", 1)[1],
            "status": status,
            "instrument": name,
            "respondent": "clinician" if source_key.startswith("Practitioner/") else "client",
            "clinician_id": clinician,
            "appointment_id": enc.get("appointment_id"),
            "items": scores,
        },
    )
    return mapped
