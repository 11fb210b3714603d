"""SASL/OAUTHBEARER logins: an access token from the identity provider's token endpoint.

The OAuth 2.0 client-credentials grant (RFC 6749, section 4.4), which is what
Kafka's own Java clients do with ``sasl.oauthbearer.token.endpoint.url``:
``CRISISWATCH_KAFKA_SASL_USERNAME`` is the client id and
``CRISISWATCH_KAFKA_SASL_PASSWORD`` its secret (sent with HTTP Basic
authentication, section 2.3.1), ``CRISISWATCH_KAFKA_SASL_OAUTH_TOKEN_URL`` the
endpoint and ``CRISISWATCH_KAFKA_SASL_OAUTH_SCOPE`` the scope, if the provider
wants one. The broker validates the token (its signature against the
provider's keys, expiry, audience); this module only obtains it.

Every Kafka client of a process (kafka-python, aiokafka, Faust) shares one
:class:`ClientCredentials` per endpoint and client, so a worker asks for one
token, and asks again only when the token is near its expiry.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

import aiokafka.conn
from aiokafka.abc import AbstractTokenProvider as AioTokenProvider
from kafka.net.sasl.oauth import AbstractTokenProvider as SyncTokenProvider

from .errors import BrokerUnavailable

if TYPE_CHECKING:
    from .settings import Settings

#: In every refusal's message, so that a start-up check knows no retry will mend it.
REFUSED = "OAuthTokenRefused"

#: A token is renewed once this share of its lifetime has passed (Kafka's Java
#: clients default to 0.8 as well: sasl.login.refresh.window.factor).
REFRESH_AT = 0.8


class OAuthError(BrokerUnavailable):
    """No access token: the endpoint refused the client, or could not be reached."""


class ClientCredentials:
    """Access tokens of one client from one token endpoint, cached until near expiry."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str = "",
        *,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 10.0,
        clock: Any = time.monotonic,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self._secret = client_secret
        self.scope = scope
        self._ssl = ssl_context
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self.fetched = 0  # tokens obtained (for tests and logs)

    def __repr__(self) -> str:  # never the secret
        return f"ClientCredentials({self.token_url!r}, client {self.client_id!r})"

    def cached(self) -> str | None:
        """The current token if it needs no renewal yet, else None."""
        if self._token is not None and self._clock() < self._renew_at:
            return self._token
        return None

    def token(self) -> str:
        """A valid access token (a cached one, or a new one from the endpoint)."""
        with self._lock:
            tok = self.cached()
            if tok is None:
                tok = self._fetch()
            return tok

    def _fetch(self) -> str:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        # RFC 6749 2.3.1: both halves form-urlencoded before the Basic encoding.
        pair = f"{urllib.parse.quote(self.client_id, safe='')}:{urllib.parse.quote(self._secret, safe='')}"
        req = urllib.request.Request(
            self.token_url,
            data=urllib.parse.urlencode(form).encode(),
            headers={
                "Authorization": "Basic " + base64.b64encode(pair.encode()).decode(),
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
            method="POST",
        )
        where = f"the OAuth token endpoint {self.token_url}"
        started = self._clock()
        try:
            with urllib.request.urlopen(req, timeout=self._timeout, context=self._ssl) as resp:
                body = resp.read()
        except urllib.error.HTTPError as exc:
            detail = _oauth_error(exc.read())
            raise OAuthError(
                f"{where} refused the client {self.client_id!r} ({REFUSED}: HTTP {exc.code}"
                + (f", {detail}" if detail else "")
                + "): check CRISISWATCH_KAFKA_SASL_USERNAME (the client id), "
                "CRISISWATCH_KAFKA_SASL_PASSWORD (its secret) and CRISISWATCH_KAFKA_SASL_OAUTH_SCOPE"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise OAuthError(f"{where} is not reachable: {reason}") from None
        try:
            doc = json.loads(body)
            tok = doc["access_token"]
            if not isinstance(tok, str) or not tok:
                raise ValueError("access_token is not a non-empty string")
            lifetime = float(doc.get("expires_in", 300))
        except (ValueError, KeyError, TypeError) as exc:
            raise OAuthError(
                f"{where} answered without a usable access token ({type(exc).__name__}: {exc})"
            ) from None
        self._token = tok
        self._renew_at = started + max(0.0, lifetime) * REFRESH_AT
        self.fetched += 1
        return tok


def _oauth_error(body: bytes) -> str:
    """``error`` and ``error_description`` of an RFC 6749 5.2 error response, if any."""
    try:
        doc = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(doc, dict):
        return ""
    parts = [str(doc[k]) for k in ("error", "error_description") if doc.get(k)]
    return ": ".join(parts)


class KafkaPythonTokens(SyncTokenProvider):
    """kafka-python's token provider (called synchronously at each connection's login)."""

    def __init__(self, creds: ClientCredentials) -> None:
        self.creds = creds

    def token(self) -> str:
        return self.creds.token()


class AioKafkaTokens(AioTokenProvider):
    """aiokafka's (and so Faust's) token provider: a renewal runs off the event loop."""

    def __init__(self, creds: ClientCredentials) -> None:
        self.creds = creds

    async def token(self) -> str:
        tok = self.creds.cached()
        if tok is not None:
            return tok
        return await asyncio.to_thread(self.creds.token)


class _OAuthAuthenticator(aiokafka.conn.OAuthAuthenticator):
    """aiokafka's OAUTHBEARER exchange with the error step of RFC 7628, section 3.2.2.

    A broker that refuses a token answers the client's first message with an
    error document (``{"status":"invalid_token"}``) and fails the login only
    when the client acknowledges it with ``%x01``. aiokafka 0.14 ignores the
    document and goes on as if logged in, so a refused token looked like a
    broker with no metadata (bootstrap "succeeded", then nothing worked). Here
    the acknowledgement is sent, and the broker's refusal is raised as
    SaslAuthenticationFailedError, like a wrong password.
    """

    _acked = False

    async def step(self, payload: bytes | None) -> tuple[bytes, bool] | None:
        if self._token_sent and payload and not self._acked:
            self._acked = True
            return b"\x01", True
        result: tuple[bytes, bool] | None = await super().step(payload)
        return result


def _install_authenticator() -> None:
    """aiokafka's connections build their authenticator from this module name at login."""
    if aiokafka.conn.OAuthAuthenticator is not _OAuthAuthenticator:
        aiokafka.conn.OAuthAuthenticator = _OAuthAuthenticator


_install_authenticator()

_SHARED: dict[tuple[str, str, str, str], ClientCredentials] = {}
_SHARED_LOCK = threading.Lock()


def credentials(settings: Settings) -> ClientCredentials:
    """The process's one :class:`ClientCredentials` for these settings."""
    url = settings.kafka_sasl_oauth_token_url
    key = (
        url,
        settings.kafka_sasl_username,
        settings.kafka_sasl_password,
        settings.kafka_sasl_oauth_scope,
    )
    with _SHARED_LOCK:
        creds = _SHARED.get(key)
        if creds is None:
            # An https endpoint is verified against the system's CAs and the broker's CA
            # file (create_default_context(cafile=...) alone would trust that file only).
            ctx = ssl.create_default_context()
            if settings.kafka_ssl_cafile:
                ctx.load_verify_locations(cafile=settings.kafka_ssl_cafile)
            creds = ClientCredentials(
                url,
                settings.kafka_sasl_username,
                settings.kafka_sasl_password,
                settings.kafka_sasl_oauth_scope,
                ssl_context=ctx,
            )
            _SHARED[key] = creds
        return creds
