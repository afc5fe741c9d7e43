"""SASL/OAUTHBEARER for the Faust (aiokafka) consumer: OIDC client-credentials tokens, cached until near expiry.

The confluent-kafka clients get the same from librdkafka itself (``sasl.oauthbearer.method=oidc``, see
:func:`streams.kafka.confluent_conf`); this is the aiokafka side, which only takes a token provider.

A token is fetched with the client-credentials grant (RFC 6749 4.4): ``POST <oauth_token_endpoint>`` with
``grant_type=client_credentials`` (and ``scope``), the client id and secret as HTTP Basic credentials -
what librdkafka sends. It is reused until shortly before it expires (``expires_in`` of the response, else
the JWT's ``exp`` claim). Error messages name the endpoint and the HTTP status, never the secret or token.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import ssl
import time
from typing import Any

import httpx
from aiokafka.abc import AbstractTokenProvider
from faust.auth import OAuthCredentials as _FaustOAuthCredentials

from streams.config import SaslSettings
from streams.errors import FatalError
from streams.urls import safe_url

# refresh this long before the token expires (capped at a fifth of its lifetime)
REFRESH_MARGIN_S = 60.0
DEFAULT_LIFETIME_S = 300.0


class OAuthTokenError(FatalError):
    """No token from the OAuth token endpoint, so Kafka cannot be authenticated against; the message
    carries no secret."""


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT (not verified: only for its ``exp``/``sub``); {} when it is not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (ValueError, binascii.Error):
        return {}
    return claims if isinstance(claims, dict) else {}


class ClientCredentialsTokenProvider(AbstractTokenProvider):
    """aiokafka token provider: an access token from the client-credentials grant, cached until near expiry."""

    def __init__(
        self,
        token_endpoint: str,
        client_id: str,
        client_secret: str,
        scope: str | None = None,
        *,
        timeout_s: float = 10.0,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.token_endpoint = token_endpoint
        self.client_id = client_id
        self._client_secret = client_secret
        self.scope = scope
        self.timeout_s = timeout_s
        self._verify = verify
        self._token: str | None = None
        self._refresh_at = 0.0  # monotonic
        self._lock: asyncio.Lock | None = None
        self.fetches = 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.token_endpoint} client_id={self.client_id}>"

    async def token(self) -> str:
        if self._token is not None and time.monotonic() < self._refresh_at:
            return self._token
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one fetch for the connections that all ask at once
            if self._token is None or time.monotonic() >= self._refresh_at:
                self._token, lifetime = await self._fetch()
                margin = min(REFRESH_MARGIN_S, lifetime / 5)
                self._refresh_at = time.monotonic() + max(0.0, lifetime - margin)
            return self._token

    async def _fetch(self) -> tuple[str, float]:
        data = {"grant_type": "client_credentials"}
        if self.scope:
            data["scope"] = self.scope
        where = f"OAuth token endpoint {safe_url(self.token_endpoint)}"
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s, verify=self._verify) as client:
                resp = await client.post(
                    self.token_endpoint,
                    data=data,
                    auth=httpx.BasicAuth(self.client_id, self._client_secret),
                    headers={"Accept": "application/json"},
                )
        except httpx.HTTPError as exc:
            raise OAuthTokenError(f"{where}: {type(exc).__name__}: {exc}") from None
        self.fetches += 1
        if resp.status_code != 200:
            raise OAuthTokenError(f"{where} answered HTTP {resp.status_code} for client_id {self.client_id!r}")
        try:
            body = resp.json()
            token = body["access_token"]
            if not isinstance(token, str) or not token:
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise OAuthTokenError(f"{where}: the response has no access_token") from None
        lifetime: float | None = None
        expires_in = body.get("expires_in")
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) and expires_in > 0:
            lifetime = float(expires_in)
        else:
            exp = jwt_claims(token).get("exp")
            if isinstance(exp, int | float) and not isinstance(exp, bool):
                lifetime = float(exp) - time.time()
        if lifetime is None:
            lifetime = DEFAULT_LIFETIME_S
        if lifetime <= 0:
            raise OAuthTokenError(f"{where} returned an expired token")
        return token, lifetime


class OAuthCredentials(_FaustOAuthCredentials):
    """Faust ``broker_credentials`` for SASL/OAUTHBEARER (SASL_SSL when an SSL context is given)."""

    def __init__(self, sasl: SaslSettings, ssl_context: ssl.SSLContext | None = None) -> None:
        if not (sasl.oauth_token_endpoint and sasl.oauth_client_id and sasl.oauth_client_secret):
            raise ValueError("OAUTHBEARER needs oauth_token_endpoint, oauth_client_id and oauth_client_secret")
        provider = ClientCredentialsTokenProvider(
            sasl.oauth_token_endpoint,
            sasl.oauth_client_id,
            sasl.oauth_client_secret.get_secret_value(),
            sasl.oauth_scope,
        )
        super().__init__(oauth_cb=provider, ssl_context=ssl_context)

    @property
    def provider(self) -> ClientCredentialsTokenProvider:
        cb: ClientCredentialsTokenProvider = self.oauth_cb
        return cb


__all__ = ["ClientCredentialsTokenProvider", "OAuthCredentials", "OAuthTokenError", "jwt_claims"]
