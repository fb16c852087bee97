"""Deterministic ids and the client_ref pseudonym (contract.md section 6)."""

import base64
import hashlib
import hmac
import re
import uuid

import pytest

from attune_shared.ids import ATTUNE_NAMESPACE, client_ref, derived_id

KEY = b"test-pseudonym-key"


def test_client_ref_is_stable_for_the_same_inputs() -> None:
    assert client_ref(KEY, "north-01", "MRN77") == client_ref(KEY, "north-01", "MRN77")


def test_client_ref_has_the_contract_shape() -> None:
    ref = client_ref(KEY, "north-01", "MRN77")
    assert re.fullmatch(r"cr_[A-Z2-7]{26}", ref)
    assert len(ref) == 29


def test_client_ref_is_the_truncated_base32_hmac_of_clinic_and_mrn() -> None:
    digest = hmac.new(KEY, b"north-01:MRN77", hashlib.sha256).digest()
    assert client_ref(KEY, "north-01", "MRN77") == "cr_" + base64.b32encode(digest).decode()[:26]


@pytest.mark.parametrize(
    ("key", "clinic_id", "mrn"),
    [
        pytest.param(b"another-key", "north-01", "MRN77", id="key"),
        pytest.param(KEY, "south-02", "MRN77", id="clinic"),
        pytest.param(KEY, "north-01", "MRN78", id="mrn"),
        pytest.param(KEY, "north-01", "mrn77", id="mrn-case"),
    ],
)
def test_client_ref_changes_with_any_input(key: bytes, clinic_id: str, mrn: str) -> None:
    assert client_ref(key, clinic_id, mrn) != client_ref(KEY, "north-01", "MRN77")


def test_client_ref_refuses_an_empty_key() -> None:
    with pytest.raises(ValueError, match="key"):
        client_ref(b"", "north-01", "MRN77")


def test_derived_id_is_deterministic_and_a_uuid5() -> None:
    first = derived_id("care", "ehr-north", "ehr-north:000123")
    assert first == derived_id("care", "ehr-north", "ehr-north:000123")
    assert uuid.UUID(first).version == 5
    assert str(uuid.UUID(first)) == first


def test_derived_id_is_uuid5_of_the_joined_parts_under_the_fixed_namespace() -> None:
    assert derived_id("a", "b") == str(uuid.uuid5(ATTUNE_NAMESPACE, "a|b"))
    # Pinned: a changed namespace would silently change every id and defeat de-duplication on replay.
    assert derived_id("a", "b") == "427d3a40-bda0-59c2-8f10-f05d42a9fe2f"


@pytest.mark.parametrize(
    ("left", "right"),
    [
        pytest.param(("a", "b"), ("b", "a"), id="order"),
        pytest.param(("a", "b"), ("ab",), id="split"),
        pytest.param(("a|b", "c"), ("a", "b|c"), id="separator-inside-a-part"),
        pytest.param(("a\\", "b"), ("a", "\\b"), id="escape-inside-a-part"),
    ],
)
def test_derived_id_differs_for_different_parts(left: tuple[str, ...], right: tuple[str, ...]) -> None:
    assert derived_id(*left) != derived_id(*right)


def test_derived_id_needs_a_part() -> None:
    with pytest.raises(ValueError, match="at least one part"):
        derived_id()
