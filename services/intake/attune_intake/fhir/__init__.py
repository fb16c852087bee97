"""FHIR R4 ingestion: `POST /fhir/r4` maps Patient, EpisodeOfCare, Appointment, Encounter and
QuestionnaireResponse resources onto the contract's envelope (contract.md, "FHIR R4 ingestion")."""
