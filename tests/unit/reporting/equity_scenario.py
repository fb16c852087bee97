"""scenario.py's story with the clients' referral attributes added, for the equity view.

north-01:
  A  referred (pt-BR, interpreter, born 26-40) only after the first session a1 (a late referral);
  B  en-GB, no interpreter, 18-25;
  C  "EN" with neither interpreter need nor age band sent;
  D  no referral at all (every attribute unknown);
  E  referred Jan 2 (pt, interpreter, 65+), then again Feb 1 with language es only: language es,
     interpreter and age band still from the first referral (each attribute's latest sent value).
south-01: F en, no interpreter, 41-64.

Main modalities (episode figures): A video, B phone, C video, D in_person, E video; F phone.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from attune_shared.events import ClientReferred
from tests.unit.reporting.builders import Stream, at
from tests.unit.reporting.scenario import N, S, build

REFERRALS: dict[str, list[tuple[str, str, dict[str, Any]]]] = {
    # client: [(clinic, day, attributes)], each placed in the client's stream after `AFTER[client]` events
    "A": [
        (N, "2026-01-05", {"preferred_language": "pt-BR", "interpreter_needed": True, "age_band": "26-40"})
    ],
    "B": [
        (N, "2026-01-06", {"preferred_language": "en-GB", "interpreter_needed": False, "age_band": "18-25"})
    ],
    "C": [(N, "2026-01-20", {"preferred_language": "EN"})],
    "E": [
        (N, "2026-01-02", {"preferred_language": "pt", "interpreter_needed": True, "age_band": "65+"}),
        (N, "2026-02-01", {"preferred_language": "es"}),
    ],
    "F": [(S, "2026-01-10", {"preferred_language": "en", "interpreter_needed": False, "age_band": "41-64"})],
}


def referral(
    s: Stream, clinic: str, client: str, day: str, attrs: dict[str, Any], hour: str = "07:00"
) -> Any:
    """A client.referred care event of the client's episode ep<client>."""
    event = ClientReferred(
        referred_on=date.fromisoformat(day),
        clinician_id=None,
        **attrs,
        **s._common(clinic, client, f"ep{client}", at(f"{day} {hour}")),
    )
    s.events.append(event)
    return event


def build_equity() -> list[Any]:
    """Every event: scenario.build()'s, each client's referrals inserted into its own sequence
    (A's after its first attended session; the others' first)."""
    events = build()
    s = Stream(source="ehr-referrals")
    out = list(events)
    for client, referrals in REFERRALS.items():
        made = [referral(s, clinic, client, day, attrs) for clinic, day, attrs in referrals]
        mine = [i for i, e in enumerate(out) if getattr(e, "client_ref", None) == made[0].client_ref]
        if client == "A":  # after a1's attendance: the language is known only after the first session
            from attune_shared.events import SessionAttended

            first = next(i for i in mine if isinstance(out[i], SessionAttended))
            at_index = first + 1
        else:
            at_index = mine[0]
        for offset, event in enumerate(made):
            out.insert(at_index + offset, event)
    return out
