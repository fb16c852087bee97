"""Valid pseudonyms for test fixtures: internal events accept only keyed pseudonyms of EHR ids.

`ap("a1")` is the pseudonym a test calls "appointment a1": stable, distinct per label and kind, and
of the exact shape intake makes (contract section 6), so fixtures stay readable.
"""

from __future__ import annotations

from attune_shared.ids import pseudonym

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
