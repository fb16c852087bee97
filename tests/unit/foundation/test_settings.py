"""Settings fail fast, and production refuses development secrets."""

from __future__ import annotations

import pytest

from attune_shared.settings import DEV_PSEUDONYM_KEY, ServiceSettings, SettingsError, load_settings


def test_defaults_are_the_contracts_local_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI", "ATTUNE_ENV", "ATTUNE_MIN_CELL_SIZE"):
        monkeypatch.delenv(var, raising=False)
    s = load_settings(ServiceSettings)
    assert s.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert s.mongodb_uri.get_secret_value() == "mongodb://127.0.0.1:27017"
    assert s.attune_env == "development"
    assert s.attune_min_cell_size == 5


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092, k2:9092")
    monkeypatch.setenv("ATTUNE_MIN_CELL_SIZE", "11")
    s = load_settings(ServiceSettings)
    assert s.kafka_bootstrap_servers == "k1:9092,k2:9092"
    assert s.attune_min_cell_size == 11


def test_production_with_the_development_key_fails_clearly(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text('{"tokens": []}')
    monkeypatch.setenv("ATTUNE_ENV", "production")
    monkeypatch.setenv("ATTUNE_TOKENS_FILE", str(tokens))
    monkeypatch.delenv("ATTUNE_PSEUDONYM_KEY", raising=False)
    with pytest.raises(SettingsError, match="ATTUNE_PSEUDONYM_KEY") as err:
        load_settings(ServiceSettings)
    assert "development key is refused in production" in str(err.value)
    monkeypatch.setenv("ATTUNE_PSEUDONYM_KEY", DEV_PSEUDONYM_KEY)
    with pytest.raises(SettingsError, match="ATTUNE_PSEUDONYM_KEY"):
        load_settings(ServiceSettings)


def test_production_with_the_development_tokens_file_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATTUNE_ENV", "production")
    monkeypatch.setenv("ATTUNE_PSEUDONYM_KEY", "x" * 40)
    monkeypatch.delenv("ATTUNE_TOKENS_FILE", raising=False)
    with pytest.raises(SettingsError, match="ATTUNE_TOKENS_FILE"):
        load_settings(ServiceSettings)


def test_production_with_real_secrets_starts(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text('{"tokens": []}')
    monkeypatch.setenv("ATTUNE_ENV", "production")
    monkeypatch.setenv("ATTUNE_PSEUDONYM_KEY", "a-long-production-secret-of-40-characters!")
    monkeypatch.setenv("ATTUNE_TOKENS_FILE", str(tokens))
    assert load_settings(ServiceSettings).attune_env == "production"


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("ATTUNE_MIN_CELL_SIZE", "0"),
        ("ATTUNE_ENV", "staging"),
        ("KAFKA_BOOTSTRAP_SERVERS", "nohostport"),
        ("ATTUNE_LOG_FORMAT", "xml"),
    ],
)
def test_bad_values_fail_naming_the_variable(monkeypatch: pytest.MonkeyPatch, var: str, value: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError, match=var.lower()):
        load_settings(ServiceSettings)
