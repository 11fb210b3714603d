"""A local OAuth 2.0 identity provider for the tests: the client-credentials grant,
RS256 access tokens signed with the key that deploy/kafka/kafka.sh made for its
broker (tls/oauth.key; the broker checks them against tls/jwks.json).

Real HTTP on 127.0.0.1 and real signatures (openssl), so the broker's own
validator (OAuthBearerValidatorCallbackHandler) decides whether a token is good.
"""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

#: The names kafka.sh gives its broker's validator (sasl.oauthbearer.expected.*, the key id).
AUDIENCE = "crisiswatch-kafka"
ISSUER = "crisiswatch-local-idp"
KID = "crisiswatch-local"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_jwt(key: Path, claims: dict[str, Any], kid: str = KID) -> str:
    """A compact RS256 JWS of ``claims`` (RFC 7515), signed with ``key`` by openssl."""
    header = {"alg": "RS256", "typ": "JWT", "kid": kid}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    sig = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", str(key)],
        input=signing_input.encode(),
        capture_output=True,
        check=True,
    ).stdout
    return f"{signing_input}.{b64url(sig)}"


@dataclass
class LocalIdP:
    """``with LocalIdP(key, {"client": "secret"}) as idp:`` serves ``idp.url`` (POST)."""

    key: Path
    clients: dict[str, str]
    lifetime: int = 3600
    audience: str = AUDIENCE
    issuer: str = ISSUER
    #: (client id, scope) of every token issued.
    issued: list[tuple[str, str]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/oauth2/token"

    def token_for(self, client: str, scope: str = "") -> str:
        now = int(time.time())
        claims = {
            "sub": client,
            "aud": self.audience,
            "iss": self.issuer,
            "iat": now,
            "exp": now + self.lifetime,
        }
        if scope:
            claims["scope"] = scope
        return sign_jwt(self.key, claims)

    def __enter__(self) -> LocalIdP:
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                client, secret = "", ""
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Basic "):
                    pair = base64.b64decode(auth[6:]).decode()
                    client, _, secret = (urllib.parse.unquote(x) for x in pair.partition(":"))
                if self.path != "/oauth2/token":
                    return self.reply(404, {"error": "not_found"})
                if form.get("grant_type") != ["client_credentials"]:
                    return self.reply(400, {"error": "unsupported_grant_type"})
                if idp.clients.get(client) != secret or not client:
                    return self.reply(
                        401, {"error": "invalid_client", "error_description": "bad client"}
                    )
                scope = form.get("scope", [""])[0]
                idp.issued.append((client, scope))
                tok = idp.token_for(client, scope)
                return self.reply(
                    200, {"access_token": tok, "token_type": "Bearer", "expires_in": idp.lifetime}
                )

            def reply(self, code: int, doc: dict[str, Any]) -> None:
                body = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
