"""The thresholds file (validated at start) and how unreadable records are classified for the DLQ."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from attune_measures.dead_letters import Rejected, dead_letter, read_record, unscorable
from attune_measures.domain.clinic_thresholds import ThresholdBook
from attune_measures.domain.scoring import UnscorableResponse, score
from attune_measures.settings import MeasuresSettings
from attune_shared.events import DeadLetterOrigin, EpisodeOpened
from attune_shared.ids import derived_id
from attune_shared.settings import SettingsError, load_settings
from tests.support.ids import ep, ev
from tests.unit.measures_service.builders import CLIENT, srs, submitted


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "thresholds.json"
    path.write_text(json.dumps(data))
    return path


def test_defaults_without_a_file() -> None:
    settings = MeasuresSettings()
    assert settings.service_name == "measures" and settings.attune_http_port == 8082
    assert settings.database_name == "attune_measures"
    assert settings.thresholds() == ThresholdBook()


def test_clinic_overrides_apply_on_top_of_the_file_default(tmp_path: Path) -> None:
    path = write(tmp_path, {"default": {"srs_cutoff": 35}, "clinics": {"north-01": {"sd_floor_srs": 3.0}}})
    book = MeasuresSettings(attune_measures_thresholds_file=path).thresholds()
    north = book.for_clinic("north-01")
    assert (north.srs_cutoff, north.sd_floor_srs) == (35.0, 3.0)
    other = book.for_clinic("south-01")
    assert (other.srs_cutoff, other.sd_floor_srs) == (35.0, 2.0)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"clinics": {"north-01": {"sd_floor": 1}}}, "clinics.north-01: unknown threshold 'sd_floor'"),
        ({"default": {"srs_cutoff": "36"}}, "default: threshold 'srs_cutoff' must be a finite number"),
        ({"default": {"series_window": 0}}, "default: threshold 'series_window' must be between"),
        ({"defaults": {}}, "unknown top-level key(s) ['defaults']"),
        ([1, 2], "must hold a JSON object"),
    ],
)
def test_a_bad_thresholds_file_stops_the_service_with_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: object, expected: str
) -> None:
    path = write(tmp_path, data)
    monkeypatch.setenv("ATTUNE_MEASURES_THRESHOLDS_FILE", str(path))
    with pytest.raises(SettingsError) as caught:
        load_settings(MeasuresSettings)
    message = str(caught.value)
    assert "attune_measures_thresholds_file" in message and str(path) in message
    assert expected in message


def test_a_missing_or_unreadable_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings(MeasuresSettings, attune_measures_thresholds_file=tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings(MeasuresSettings, attune_measures_thresholds_file=tmp_path / "bad.json")


def _code(value: bytes | None) -> str:
    with pytest.raises(Rejected) as caught:
        read_record(value)
    return caught.value.code


def test_dead_letter_reasons() -> None:
    good = submitted(srs("s1", 36, 0))
    assert read_record(good.model_dump_json().encode()) == good
    assert _code(None) == "invalid_json"
    assert _code(b"not json {") == "invalid_json"
    assert _code(b"\xff\xfe") == "invalid_json"
    assert _code(b"[1, 2]") == "not_an_object"
    opened = EpisodeOpened(
        event_id=derived_id("x"),
        occurred_at=datetime(2026, 3, 2, tzinfo=UTC),
        source="ehr-north",
        source_event_id=ev("e1"),
        clinic_id="north-01",
        client_ref=CLIENT,
        episode_id=ep("ep_1"),
        opened_on=datetime(2026, 3, 2).date(),
    )
    assert read_record(opened.model_dump_json().encode()) == opened  # a care event, to forward
    assert _code(json.dumps({**json.loads(opened.model_dump_json()), "event_type": "x.y"}).encode()) == (
        "unexpected_event_type"
    )
    bad_items = json.loads(good.model_dump_json())
    bad_items["items"] = [9, 9, 11, 9]
    with pytest.raises(Rejected) as caught:
        read_record(json.dumps(bad_items).encode())
    assert caught.value.code == "schema_violation"
    assert caught.value.message.startswith("items")
    assert "above the SRS maximum" in caught.value.message


def test_unscorable_and_the_dead_letter_shape() -> None:
    with pytest.raises(UnscorableResponse) as caught:
        score("WAI-SR", [None, None, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4])
    rejected = unscorable(caught.value)
    assert rejected.code == "unscorable" and rejected.details[0]["loc"] == ["items", 0]
    origin = DeadLetterOrigin(topic="clinic.care.v1", partition=2, offset=17, key=CLIENT)
    now = datetime(2026, 3, 2, tzinfo=UTC)
    letter = dead_letter(b"\xff not utf-8", origin, Rejected("invalid_json", "nope"), now)
    assert letter.raw_encoding == "base64"
    again = dead_letter(b"\xff not utf-8", origin, Rejected("invalid_json", "nope"), datetime.now(UTC))
    assert letter.dlq_id == again.dlq_id  # derived from the record's position: a replay keeps it
    text = dead_letter(b"oops", origin, Rejected("invalid_json", "nope"), now)
    assert (text.raw, text.raw_encoding, text.error.code) == ("oops", None, "invalid_json")
    # A NUL is UTF-8 but no store text column takes it (PostgreSQL): kept as base64, bytes intact.
    nul = dead_letter(b"\x00garbage", origin, Rejected("invalid_json", "nope"), now)
    assert nul.raw_encoding == "base64" and base64.b64decode(nul.raw) == b"\x00garbage"
