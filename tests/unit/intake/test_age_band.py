"""The age band: its boundaries, unknown when the year is absent or impossible, and that only the
band (never the birth year) leaves intake on client.referred. (FHIR's Patient.birthDate becomes the
same envelope's birth_year, so it goes through the same canonical mapping.)"""

from __future__ import annotations

import json
from datetime import date

import pytest

from attune_intake.domain.age import age_band
from attune_intake.domain.canonical import Pseudonymiser, canonicalise
from attune_intake.domain.episodes import ClientState
from attune_intake.domain.validation import parse_envelope
from attune_shared.events import ClientReferred
from attune_shared.ids import client_ref
from tests.support.ehr import BASE, Ehr, encode

ON = date(2026, 3, 2)


@pytest.mark.parametrize(
    ("birth_year", "band"),
    [
        (2026, "<18"),  # age 0
        (2009, "<18"),  # 17
        (2008, "18-25"),  # 18
        (2001, "18-25"),  # 25
        (2000, "26-40"),  # 26
        (1986, "26-40"),  # 40
        (1985, "41-64"),  # 41
        (1962, "41-64"),  # 64
        (1961, "65+"),  # 65
        (1900, "65+"),
        (None, None),  # absent: unknown
        (2027, None),  # born after the referral: a data error, unknown
    ],
)
def test_band_boundaries(birth_year: int | None, band: str | None) -> None:
    assert age_band(birth_year, ON) == band


def test_the_band_is_taken_at_the_referral_date_not_today() -> None:
    assert age_band(2008, date(2025, 12, 31)) == "<18"
    assert age_band(2008, date(2026, 1, 1)) == "18-25"


def _referred(payload_changes: dict[str, object]) -> ClientReferred:
    env = Ehr().referred("north-01", "MRN-1", BASE)
    env["payload"] |= payload_changes
    key = b"k" * 32
    state = ClientState(client_ref=client_ref(key, "north-01", "MRN-1"), clinic_id="north-01")
    out = canonicalise(parse_envelope(encode(env)), state, Pseudonymiser(key))
    referred = [e for e in out.events if isinstance(e, ClientReferred)]
    assert len(referred) == 1
    return referred[0]


def test_client_referred_carries_the_band_and_never_the_year() -> None:
    event = _referred({"birth_year": 1961, "preferred_language": "pt-BR", "interpreter_needed": True})
    assert (event.age_band, event.preferred_language, event.interpreter_needed) == ("65+", "pt-BR", True)
    text = json.dumps(event.model_dump(mode="json"))
    assert "birth_year" not in text and "1961" not in text


def test_a_referral_without_a_birth_year_has_an_unknown_band() -> None:
    assert _referred({"birth_year": None}).age_band is None


def test_a_fhir_patients_birth_date_becomes_the_same_band() -> None:
    """FHIR ingestion: Patient.birthDate (1974) and EpisodeOfCare.period.start (2026-03-02) give a
    client.referred envelope whose canonical event carries 41-64 and no year."""
    from tests.unit.intake.test_fhir_mapping import VALID, bundle, fixture, run

    result = run(bundle(*(fixture(n) for n in VALID)))
    env = next(e for e, _ in result.envelopes if e.event_type == "client.referred")
    key = b"k" * 32
    state = ClientState(client_ref=client_ref(key, env.clinic_id, "12345"), clinic_id=env.clinic_id)
    out = canonicalise(env, state, Pseudonymiser(key))
    referred = next(e for e in out.events if isinstance(e, ClientReferred))
    assert referred.age_band == "41-64" and referred.preferred_language == "nl-BE"
    assert "1974" not in json.dumps(referred.model_dump(mode="json"))
