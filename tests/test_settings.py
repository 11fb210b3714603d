from __future__ import annotations

import pytest

from streams.errors import ConfigError
from streams.settings import load_settings


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRISISWATCH_KAFKA_BOOTSTRAP", "k1:9092,k2:9093")
    monkeypatch.setenv("CRISISWATCH_PARTITIONS", "12")
    s = load_settings()
    assert s.bootstrap_servers == ["k1:9092", "k2:9093"]
    assert s.partitions == 12


@pytest.mark.parametrize(
    ("var", "value", "fragment"),
    [
        ("CRISISWATCH_PARTITIONS", "zero", "CRISISWATCH_PARTITIONS"),
        ("CRISISWATCH_KAFKA_BOOTSTRAP", "no-port-here", "host:port"),
        ("CRISISWATCH_OPEN_THRESHOLD", "1.5", "CRISISWATCH_OPEN_THRESHOLD"),
        ("CRISISWATCH_KAFKA_SECURITY_PROTOCOL", "TLS", "CRISISWATCH_KAFKA_SECURITY_PROTOCOL"),
    ],
)
def test_bad_settings_say_which_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError, match=fragment):
        load_settings()


def test_security_settings_pass_through_to_kafka_python(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRISISWATCH_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("CRISISWATCH_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("CRISISWATCH_KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("CRISISWATCH_KAFKA_SASL_PASSWORD", "s3cret")
    s = load_settings()
    cfg = s.kafka_python_config()
    assert cfg["security_protocol"] == "SASL_SSL"
    assert cfg["sasl_mechanism"] == "SCRAM-SHA-512"
    assert cfg["sasl_plain_password"] == "s3cret"
    assert "s3cret" not in repr(s)
