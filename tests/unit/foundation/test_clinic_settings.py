"""The per-clinic settings loader both measures and alerts read their threshold files with."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from attune_shared.clinic_settings import (
    ClinicSettings,
    ClinicSettingsError,
    load_clinic_settings,
    parse_clinic_settings,
)


@dataclasses.dataclass(frozen=True)
class Limits:
    """A stand-in for a service's settings: its own schema, its own validation."""

    window: int = 3
    cutoff: float = 36.0

    def with_overrides(self, overrides: Mapping[str, Any]) -> Limits:
        for key, value in overrides.items():
            if key not in ("window", "cutoff"):
                raise ValueError(f"unknown setting {key!r}")
            if key == "window" and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"'window' must be an integer, got {value!r}")
        return dataclasses.replace(self, **overrides)


class Contact(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")


SETTING = "ATTUNE_TEST_FILE"


def load(path: Path | None) -> ClinicSettings[Limits]:
    return load_clinic_settings(path, setting=SETTING, base=Limits(), apply=Limits.with_overrides)


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "clinics.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def error(tmp_path: Path, data: object) -> str:
    path = write(tmp_path, data)
    with pytest.raises(ClinicSettingsError) as caught:
        load(path)
    message = str(caught.value)
    assert message.startswith(f"{SETTING} {path}: "), message  # every error names the file
    return message.removeprefix(f"{SETTING} {path}: ")


def test_no_file_gives_every_clinic_the_built_in_values() -> None:
    settings = load(None)
    assert settings.for_clinic("north-01") == Limits() and dict(settings.clinics) == {}


def test_a_clinic_applies_on_top_of_the_default_which_applies_on_top_of_the_built_in_values(
    tmp_path: Path,
) -> None:
    settings = load(write(tmp_path, {"default": {"cutoff": 35}, "clinics": {"north-01": {"window": 6}}}))
    assert settings.for_clinic("north-01") == Limits(window=6, cutoff=35)
    assert settings.default == Limits(window=3, cutoff=35)


def test_an_unknown_clinic_gets_the_default(tmp_path: Path) -> None:
    settings = load(write(tmp_path, {"default": {"window": 5}, "clinics": {"north-01": {"window": 6}}}))
    assert settings.for_clinic("south-01") == Limits(window=5)
    assert settings.for_clinic("") == Limits(window=5)


def test_an_empty_object_means_the_built_in_values(tmp_path: Path) -> None:
    assert load(write(tmp_path, {})) == ClinicSettings(Limits())


def test_comments_are_allowed_at_every_level_and_ignored(tmp_path: Path) -> None:
    data = {
        "_comment": "network values agreed in March",
        "default": {"_comment": "the SRS cut-off of the norms", "cutoff": 35},
        "clinics": {"_comment": "pilots", "north-01": {"_comment": "small groups", "window": 6}},
    }
    settings = load(write(tmp_path, data))
    assert set(settings.clinics) == {"north-01"}
    assert settings.for_clinic("north-01") == Limits(window=6, cutoff=35)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"_comment": 3}, "_comment: a comment must be a string, not a number"),
        ({"default": {"_comment": ["a"]}}, "default._comment: a comment must be a string, not an array"),
        ({"clinics": {"n": {"_comment": None}}}, "clinics.n._comment: a comment must be a string, not null"),
        ({"_note": "x"}, "unknown top-level key(s) ['_note']"),  # only _comment is a comment
    ],
)
def test_a_comment_that_is_not_a_string_or_another_underscore_key_is_refused(
    tmp_path: Path, data: object, expected: str
) -> None:
    assert expected in error(tmp_path, data)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"default": {"window": "6"}}, "default: 'window' must be an integer, got '6'"),
        (
            {"clinics": {"north-01": {"window": 2.5}}},
            "clinics.north-01: 'window' must be an integer, got 2.5",
        ),
        ({"clinics": {"north-01": {"windw": 2}}}, "clinics.north-01: unknown setting 'windw'"),
        ({"default": []}, "default: must be an object of setting -> value, not an array"),
        ({"default": None}, "default: must be an object of setting -> value, not null"),
        (
            {"clinics": {"north-01": 5}},
            "clinics.north-01: must be an object of setting -> value, not a number",
        ),
        ({"clinics": []}, "clinics: must be an object of clinic id -> settings, not an array"),
        ({"clinics": {"north 01": {}}}, 'clinics: "north 01" is not a clinic id'),
        ({"defaults": {}}, 'unknown top-level key(s) [\'defaults\']; expected "default" and/or "clinics"'),
        ([1, 2], 'the file must hold a JSON object with "default" and/or "clinics", not an array'),
    ],
)
def test_a_wrong_key_or_type_names_the_key_and_the_fault(tmp_path: Path, data: object, expected: str) -> None:
    assert expected in error(tmp_path, data)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{\n  "default": {"window": 3,}\n}', "line 2 column 27: cannot read JSON (Expecting property name"),
        ("", "line 1 column 1: cannot read JSON (Expecting value)"),
        ('{"clinics": {"a": {}, "a": {"window": 4}}}', 'cannot read JSON (the key "a" appears twice'),
        ('{"default": {"cutoff": NaN}}', "cannot read JSON (NaN is not a JSON number)"),
    ],
)
def test_a_bad_file_names_the_line_or_the_fault(tmp_path: Path, text: str, expected: str) -> None:
    assert error(tmp_path, text).startswith(expected)


def test_a_missing_or_undecodable_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ClinicSettingsError, match=f"{SETTING} .*absent.json: cannot read the file"):
        load(tmp_path / "absent.json")
    (tmp_path / "latin1.json").write_bytes(b'{"_comment": "caf\xe9"}')
    with pytest.raises(ClinicSettingsError, match="cannot read the file"):
        load(tmp_path / "latin1.json")


def test_a_file_without_default_when_the_service_allows_none() -> None:
    def contact(_: Contact, entry: Mapping[str, Any]) -> Contact:
        return Contact.model_validate(entry)

    base = Contact(email="none@example.org")
    read = parse_clinic_settings(
        {"clinics": {"n": {"email": "a@b.example"}}}, base=base, apply=contact, allow_default=False
    )
    assert read.for_clinic("n").email == "a@b.example" and read.for_clinic("s") == base
    with pytest.raises(
        ClinicSettingsError, match=r"unknown top-level key\(s\) \['default'\]; expected \"clinics\""
    ):
        parse_clinic_settings({"default": {}}, base=base, apply=contact, allow_default=False)
    # A pydantic error is reported at its own location below the clinic's key.
    with pytest.raises(ClinicSettingsError, match=r"^clinics\.n\.email: String should match pattern"):
        parse_clinic_settings(
            {"clinics": {"n": {"email": "x"}}}, base=base, apply=contact, allow_default=False
        )


def test_the_settings_are_read_only(tmp_path: Path) -> None:
    settings = load(write(tmp_path, {"clinics": {"north-01": {}}}))
    with pytest.raises(TypeError):
        settings.clinics["south-01"] = Limits()  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.default = Limits()  # type: ignore[misc]
