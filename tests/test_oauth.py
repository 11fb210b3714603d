"""OAUTHBEARER tokens (streams/oauth.py) from a real local token endpoint (no broker):
the client-credentials request, caching and renewal, refusals named, settings checked.
tests/integration/test_secured_broker.py logs a worker in with them against the broker."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import faust
import pytest

from streams import oauth
from streams.app import faust_broker_credentials
from streams.errors import ConfigError
from streams.recovery import aiokafka_config
from streams.settings import Settings, load_settings
from tests.oauth_support import AUDIENCE, LocalIdP

SECRET = "oauth-secret-9f2d-never-print"


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("idp") / "oauth.key"
    subprocess.run(
        [
            "openssl",
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            str(path),
        ],
        check=True,
        capture_output=True,
    )
    return path


@pytest.fixture
def idp(key: Path) -> Iterator[LocalIdP]:
    with LocalIdP(key, {"crisiswatch": SECRET}, lifetime=100) as server:
        yield server


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    oauth._SHARED.clear()
    yield
    oauth._SHARED.clear()


def claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_a_token_is_fetched_once_and_renewed_before_it_expires(idp: LocalIdP) -> None:
    now = [1000.0]
    creds = oauth.ClientCredentials(idp.url, "crisiswatch", SECRET, "kafka", clock=lambda: now[0])
    first = creds.token()
    assert claims(first)["sub"] == "crisiswatch" and claims(first)["aud"] == AUDIENCE
    assert idp.issued == [("crisiswatch", "kafka")]  # the scope reached the endpoint
    now[0] += 79.0  # 80% of the 100 s lifetime not yet passed: the same token
    assert creds.token() == first and creds.fetched == 1
    now[0] += 2.0
    creds.token()
    assert creds.fetched == 2 and len(idp.issued) == 2
    assert SECRET not in repr(creds)


def test_every_client_of_a_process_shares_one_token(idp: LocalIdP) -> None:
    st = settings(idp.url)
    a = st.kafka_python_config()["sasl_oauth_token_provider"]
    b = aiokafka_config(st)["sasl_oauth_token_provider"]
    c = faust_broker_credentials(st)
    assert isinstance(c, faust.OAuthCredentials)
    assert a.creds is b.creds is c.oauth_cb.creds
    a.token()
    assert asyncio.run(b.token()) == a.token()
    assert len(idp.issued) == 1


def test_a_refused_client_is_named_without_its_secret(idp: LocalIdP) -> None:
    creds = oauth.ClientCredentials(idp.url, "crisiswatch", "wrong-secret")
    with pytest.raises(oauth.OAuthError) as err:
        creds.token()
    msg = str(err.value)
    assert oauth.REFUSED in msg and "HTTP 401" in msg and "invalid_client: bad client" in msg
    assert "'crisiswatch'" in msg and "wrong-secret" not in msg
    assert "CRISISWATCH_KAFKA_SASL_PASSWORD" in msg


def test_an_unreachable_endpoint_is_named() -> None:
    from streams.ports import free_port

    url = f"http://127.0.0.1:{free_port()}/token"
    with pytest.raises(oauth.OAuthError, match=r"token endpoint .* is not reachable"):
        oauth.ClientCredentials(url, "crisiswatch", SECRET, timeout=2).token()


def test_an_answer_without_a_token_is_named(idp: LocalIdP, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(idp, "token_for", lambda client, scope="": "")
    with pytest.raises(oauth.OAuthError, match="without a usable access token"):
        oauth.ClientCredentials(idp.url, "crisiswatch", SECRET).token()


def settings(url: str, **kw: str) -> Settings:
    return Settings(
        kafka_bootstrap="127.0.0.1:9094",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="OAUTHBEARER",
        kafka_sasl_username="crisiswatch",
        kafka_sasl_password=SECRET,
        kafka_sasl_oauth_token_url=url,
        **kw,
    )


def test_oauthbearer_settings_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRISISWATCH_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("CRISISWATCH_KAFKA_SASL_MECHANISM", "OAUTHBEARER")
    monkeypatch.setenv("CRISISWATCH_KAFKA_SASL_USERNAME", "crisiswatch")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert str(err.value) == (
        "invalid settings: OAUTHBEARER needs CRISISWATCH_KAFKA_SASL_OAUTH_TOKEN_URL "
        "(the identity provider's token endpoint)"
    )
    monkeypatch.setenv("CRISISWATCH_KAFKA_SASL_OAUTH_TOKEN_URL", "ftp://idp/token")
    with pytest.raises(ConfigError, match=r"CRISISWATCH_KAFKA_SASL_OAUTH_TOKEN_URL: .*http"):
        load_settings()
    monkeypatch.setenv("CRISISWATCH_KAFKA_SASL_OAUTH_TOKEN_URL", "https://idp.example/token")
    monkeypatch.delenv("CRISISWATCH_KAFKA_SASL_USERNAME")
    with pytest.raises(ConfigError, match="CRISISWATCH_KAFKA_SASL_USERNAME"):
        load_settings()
    monkeypatch.setenv("CRISISWATCH_KAFKA_SASL_MECHANISM", "SCRAM-SHA-1")
    with pytest.raises(ConfigError, match="CRISISWATCH_KAFKA_SASL_MECHANISM"):
        load_settings()


def test_the_secret_goes_only_to_the_token_endpoint(idp: LocalIdP) -> None:
    # OAUTHBEARER clients get a token provider and no password of their own.
    st = settings(idp.url)
    cfg = st.kafka_python_config()
    assert cfg["sasl_mechanism"] == "OAUTHBEARER"
    assert "sasl_plain_password" not in cfg and "sasl_plain_password" not in aiokafka_config(st)
    assert SECRET not in repr(st)


def test_an_https_endpoint_trusts_the_system_cas_and_the_brokers_ca(tmp_path: Path) -> None:
    # A public identity provider beside a broker with a private CA: trusting only the
    # broker's CA file would refuse the provider's certificate.
    ca = tmp_path / "ca.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=test CA", "-keyout", str(tmp_path / "ca.key"), "-out", str(ca)),
        ],
        check=True,
        capture_output=True,
    )
    st = settings("https://idp.example/token", kafka_ssl_cafile=str(ca))
    ctx = oauth.credentials(st)._ssl
    assert ctx is not None
    system = ssl.create_default_context().cert_store_stats()["x509_ca"]
    assert system > 0, "this machine has no system CAs to compare with"
    assert ctx.cert_store_stats()["x509_ca"] == system + 1
