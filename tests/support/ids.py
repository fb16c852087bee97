"""Valid pseudonyms for test fixtures: internal events accept only keyed pseudonyms of EHR ids.

`ap("a1")` is the pseudonym a test calls "appointment a1": stable, distinct per label and kind, and
of the exact shape intake makes (contract section 6), so fixtures stay readable.
"""

from __future__ import annotations

import re

from attune_shared.ids import (
    APPOINTMENT_REF_PATTERN,
    EPISODE_REF_PATTERN,
    EVENT_REF_PATTERN,
    RESPONSE_REF_PATTERN,
    pseudonym,
)

TEST_KEY = b"attune-test-fixtures"


def ref(kind: str, label: str) -> str:
    """The test pseudonym of kind ('event', 'appointment', 'response', 'episode') for label."""
    return pseudonym(TEST_KEY, kind, clinic_id="test", source="test", value=label)


def ev(label: str) -> str:
    """An event pseudonym (source_event_id)."""
    return ref("event", label)


def ap(label: str) -> str:
    """An appointment pseudonym."""
    return ref("appointment", label)


def rs(label: str) -> str:
    """A response pseudonym."""
    return ref("response", label)


def ep(label: str) -> str:
    """An episode id."""
    return ref("episode", label)


_PATTERNS = {
    "event": EVENT_REF_PATTERN,
    "appointment": APPOINTMENT_REF_PATTERN,
    "response": RESPONSE_REF_PATTERN,
    "episode": EPISODE_REF_PATTERN,
}


def as_ref(kind: str, label: str) -> str:
    """The pseudonym a test calls label; a value that already is a pseudonym of that kind stays as it is."""
    return label if re.fullmatch(_PATTERNS[kind], label) else ref(kind, label)


def as_event(label: str) -> str:
    """as_ref for events."""
    return as_ref("event", label)


def as_appointment(label: str) -> str:
    """as_ref for appointments ("a1")."""
    return as_ref("appointment", label)


def as_response(label: str) -> str:
    """as_ref for responses ("r1")."""
    return as_ref("response", label)


def as_episode(label: str) -> str:
    """as_ref for episodes ("ep_1")."""
    return as_ref("episode", label)
