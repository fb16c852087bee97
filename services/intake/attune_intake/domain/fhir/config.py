"""Per-source FHIR mapping configuration (the models; attune_intake.fhir.config reads the file named
by ATTUNE_FHIR_CONFIG into them, defaults otherwise).

The file is `{"defaults": {...}, "sources": {"ehr-north": {...}}}`; a source's block overrides the
defaults field by field (maps are merged, the source's entries winning). Every field is optional.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Modality = Literal["in_person", "video", "phone"]
CancelOutcome = Literal["client", "clinician", "clinic", "late_cancel"]
Closure = Literal["planned", "mutual", "unilateral", "transferred", "other"]

# HL7's appointment-cancellation-reason code system: pat* = the patient, prov* = the provider,
# everything else (equipment, room, weather, errors...) = the clinic. "late-cancel" is Attune's own
# code for a client's cancellation too late to rebook (a missed session, contract section 2).
DEFAULT_CANCELLATION: dict[str, CancelOutcome] = {
    "pat": "client",
    "prov": "clinician",
    "late-cancel": "late_cancel",
}
ATTUNE_BASE = "http://attune.example.org/fhir"
DEFAULT_QUESTIONNAIRES: dict[str, str] = {
    f"{ATTUNE_BASE}/Questionnaire/wai-sr": "WAI-SR",
    f"{ATTUNE_BASE}/Questionnaire/srs": "SRS",
    f"{ATTUNE_BASE}/Questionnaire/ors": "ORS",
    f"{ATTUNE_BASE}/Questionnaire/psq": "PSQ",
}
DEFAULT_CLOSURE_EXTENSION = f"{ATTUNE_BASE}/StructureDefinition/episode-closure-reason"
DEFAULT_MODALITY_EXTENSION = f"{ATTUNE_BASE}/StructureDefinition/appointment-modality"


class SourceConfig(BaseModel):
    """How one EHR's resources map onto Attune (every field has a default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Patient.identifier.system that holds the MRN; None: the identifier typed MR (HL7 v2-0203).
    mrn_system: str | None = None
    # Organization reference ("Organization/abc") or identifier value -> clinic_id. An organization not
    # listed maps to its own id when that id is a clinic the token covers.
    clinics: dict[str, str] = Field(default_factory=dict)
    # Appointment.cancelationReason code -> who cancelled; a code not listed falls back to its prefix
    # before the first "-" (HL7's pat-fb -> pat), then to "clinic".
    cancellation_reasons: dict[str, CancelOutcome] = Field(default_factory=lambda: dict(DEFAULT_CANCELLATION))
    # Encounter.class / Appointment.appointmentType codes meaning each modality (any code system).
    video_codes: list[str] = Field(default_factory=lambda: ["VR", "VIDEOCONF"])
    in_person_codes: list[str] = Field(default_factory=lambda: ["AMB", "FACE"])
    phone_codes: list[str] = Field(default_factory=lambda: ["PHONE"])  # HL7 v3 ParticipationMode PHONE
    default_modality: Modality = "in_person"
    modality_extension: str = DEFAULT_MODALITY_EXTENSION
    # Canonical Questionnaire URL (without |version) -> instrument, for the instruments LOINC lacks.
    questionnaires: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_QUESTIONNAIRES))
    # EpisodeOfCare has no closure reason in R4: read it from this extension (valueCode or valueCoding).
    closure_extension: str = DEFAULT_CLOSURE_EXTENSION
    closure_reasons: dict[str, Closure] = Field(default_factory=dict)


class FhirConfig(BaseModel):
    """The whole file: defaults plus per-source overrides."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    defaults: dict[str, Any] = Field(default_factory=dict)
    sources: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def for_source(self, source: str) -> SourceConfig:
        """The merged configuration of one source."""
        merged: dict[str, Any] = {}
        base = SourceConfig().model_dump()
        for layer in (self.defaults, self.sources.get(source, {})):
            for key, value in layer.items():
                if isinstance(value, dict) and isinstance(merged.get(key, base.get(key)), dict):
                    merged[key] = {**merged.get(key, base.get(key, {})), **value}
                else:
                    merged[key] = value
        return SourceConfig.model_validate(merged)

    def check(self) -> None:
        """Validate every source's merged block now (a typo stops the service at start)."""
        self.for_source("")
        for source in self.sources:
            self.for_source(source)
