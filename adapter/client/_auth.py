"""Authentication as httpx.Auth flows: a static bearer token, HTTP Basic, and SMART Backend Services.

Every class here is bound by the client to its FHIR base origin and adds credentials only to requests
for that origin (scheme, host, port); a request anywhere else goes out without them.

``SmartBackendAuth`` implements SMART Backend Services (client-credentials grant with a signed JWT
assertion): it discovers the token endpoint from ``{base}/.well-known/smart-configuration`` unless
given one, caches the access token and refreshes it ``refresh_skew`` seconds before expiry, lets one
request refresh while concurrent ones wait (a threading.Lock in sync flows, an asyncio.Lock in async
ones), and on a 401 forces one refresh and repeats the request once.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, Literal

import httpx
import jwt
import orjson

from ._core import origin_of
from ._errors import AuthenticationFailed

__all__ = ["BasicAuth", "BearerAuth", "SmartBackendAuth"]

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class _OriginBoundAuth(httpx.Auth):
    """An auth that, once bound to the FHIR base, adds credentials only for the base origin."""

    _base_url: httpx.URL | None = None
    _also: frozenset[tuple[str, str, int]] = frozenset()

    def bind(self, base_url: httpx.URL) -> None:
        """Called by the client with its normalised base URL."""
        self._base_url = base_url

    def allow_origins(self, origins: frozenset[tuple[str, str, int]]) -> None:
        """Also add credentials for these (scheme, host, port) origins: hosts the user trusts
        explicitly, e.g. the file server of a Bulk Data export (``allow_token_hosts``)."""
        self._also = frozenset(origins)

    def _applies_to(self, request: httpx.Request) -> bool:
        if self._base_url is None:
            return True
        origin = origin_of(request.url)
        return origin == origin_of(self._base_url) or origin in self._also


class BearerAuth(_OriginBoundAuth):
    """A fixed bearer token (``Authorization: Bearer <token>``)."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("empty bearer token")
        self._header = f"Bearer {token}"

    def __repr__(self) -> str:
        return "BearerAuth(<token>)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._applies_to(request):
            request.headers["Authorization"] = self._header
        yield request


class BasicAuth(_OriginBoundAuth):
    """HTTP Basic credentials."""

    def __init__(self, username: str, password: str) -> None:
        raw = f"{username}:{password}".encode()
        self._header = "Basic " + base64.b64encode(raw).decode("ascii")
        self._username = username

    def __repr__(self) -> str:
        return f"BasicAuth({self._username!r}, <password>)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._applies_to(request):
            request.headers["Authorization"] = self._header
        yield request


class SmartBackendAuth(_OriginBoundAuth):
    """SMART Backend Services: client credentials with a signed JWT (RS384 or ES384).

    Args:
        client_id: the registered client id (the JWT's ``iss`` and ``sub``).
        private_key: the signing key, as PEM text/bytes or a ``cryptography`` private key object.
        algorithm: ``RS384`` or ``ES384``.
        scope: the scopes requested, e.g. ``"system/*.read"`` or ``"system/*.rs system/*.cud"``.
        key_id: the ``kid`` header naming the key in the client's JWK Set.
        token_url: the token endpoint; discovered from ``.well-known/smart-configuration`` if None.
        assertion_lifetime: seconds the assertion is valid (at most 300, as SMART requires).
        refresh_skew: refresh this many seconds before the access token expires.
        clock: seconds since the epoch (injectable for tests).
    """

    def __init__(
        self,
        client_id: str,
        private_key: str | bytes | Any,
        *,
        algorithm: Literal["RS384", "ES384"] = "RS384",
        scope: str = "system/*.read",
        key_id: str | None = None,
        token_url: str | None = None,
        assertion_lifetime: int = 300,
        refresh_skew: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if algorithm not in ("RS384", "ES384"):
            raise ValueError("SMART Backend Services signs with RS384 or ES384")
        if not 0 < assertion_lifetime <= 300:
            raise ValueError("the assertion lifetime must be 1..300 seconds")
        self.client_id = client_id
        self._key = private_key
        self.algorithm = algorithm
        self.scope = scope
        self.key_id = key_id
        self.token_url = token_url
        self.assertion_lifetime = assertion_lifetime
        self.refresh_skew = refresh_skew
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._thread_lock = threading.Lock()
        self._async_lock: asyncio.Lock | None = None
        self.token_requests = 0
        """How many token requests this instance has sent (for monitoring and tests)."""
        try:  # fail at construction, not at the first request, when key and algorithm do not fit
            self.assertion("urn:trialfhir:key-check")
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise ValueError(
                f"the private key cannot sign {algorithm}: {type(exc).__name__}"
            ) from exc

    def __repr__(self) -> str:
        return f"SmartBackendAuth(client_id={self.client_id!r}, algorithm={self.algorithm!r})"

    # -- no I/O ------------------------------------------------------------------------------------

    def _fresh(self) -> bool:
        return self._token is not None and self._clock() < self._expires_at - self.refresh_skew

    def assertion(self, token_url: str) -> str:
        """A signed client assertion for ``token_url`` (iss = sub = client_id, aud, jti, exp <= 5 min)."""
        now = int(self._clock())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": token_url,
            "jti": secrets.token_urlsafe(24),
            "iat": now,
            "exp": now + self.assertion_lifetime,
        }
        headers: dict[str, Any] = {"typ": "JWT"}
        if self.key_id is not None:
            headers["kid"] = self.key_id
        return jwt.encode(claims, self._key, algorithm=self.algorithm, headers=headers)

    def _discovery_request(self) -> httpx.Request:
        if self._base_url is None:
            raise AuthenticationFailed(
                "SMART discovery needs the FHIR base (use the auth with a client)"
            )
        url = self._base_url.join(".well-known/smart-configuration")
        return httpx.Request("GET", url, headers={"Accept": "application/json"})

    def _accept_discovery(self, response: httpx.Response) -> None:
        if response.status_code != 200:
            raise AuthenticationFailed(f"SMART discovery -> HTTP {response.status_code}")
        body = _json_object(response)
        endpoint = body.get("token_endpoint") if body else None
        if not isinstance(endpoint, str):
            raise AuthenticationFailed("SMART configuration has no token_endpoint")
        self.token_url = self._check_token_url(endpoint)

    def _check_token_url(self, url: str) -> str:
        parsed = httpx.URL(url)
        same_origin = self._base_url is not None and origin_of(parsed) == origin_of(self._base_url)
        if parsed.scheme != "https" and parsed.host not in LOOPBACK_HOSTS and not same_origin:
            raise AuthenticationFailed("refusing a token endpoint that is not https")
        return url

    def _token_request(self) -> httpx.Request:
        assert self.token_url is not None
        form = {
            "grant_type": "client_credentials",
            "scope": self.scope,
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": self.assertion(self.token_url),
        }
        self.token_requests += 1
        return httpx.Request(
            "POST", self.token_url, data=form, headers={"Accept": "application/json"}
        )

    def _accept_token(self, response: httpx.Response) -> None:
        body = _json_object(response)
        if response.status_code != 200 or not body or not isinstance(body.get("access_token"), str):
            said = ""
            if body:
                said = ": " + " ".join(
                    str(body[k]) for k in ("error", "error_description") if k in body
                )
            raise AuthenticationFailed(f"token request -> HTTP {response.status_code}{said}")
        expires_in = body.get("expires_in", 300)
        lifetime = float(expires_in) if isinstance(expires_in, int | float) else 300.0
        self._token = str(body["access_token"])
        self._expires_at = self._clock() + lifetime

    def _needs_refresh(self, rejected: str | None) -> bool:
        # After a 401 refresh only if nobody refreshed meanwhile (one refresh for many requests).
        if rejected is not None:
            return self._token == rejected
        return not self._fresh()

    # -- flows -------------------------------------------------------------------------------------

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        if not self._applies_to(request):
            yield request
            return
        rejected: str | None = None
        for attempt in range(2):
            with self._thread_lock:
                if self._needs_refresh(rejected):
                    if self.token_url is None:
                        discovery = yield self._discovery_request()
                        discovery.read()
                        self._accept_discovery(discovery)
                    answer = yield self._token_request()
                    answer.read()
                    self._accept_token(answer)
                current = self._token
            request.headers["Authorization"] = f"Bearer {current}"
            response = yield request
            if response.status_code != 401 or attempt == 1:
                return
            rejected = current

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if not self._applies_to(request):
            yield request
            return
        if self._async_lock is None:
            self._async_lock = asyncio.Lock()
        rejected: str | None = None
        for attempt in range(2):
            async with self._async_lock:
                if self._needs_refresh(rejected):
                    if self.token_url is None:
                        discovery = yield self._discovery_request()
                        await discovery.aread()
                        self._accept_discovery(discovery)
                    answer = yield self._token_request()
                    await answer.aread()
                    self._accept_token(answer)
                current = self._token
            request.headers["Authorization"] = f"Bearer {current}"
            response = yield request
            if response.status_code != 401 or attempt == 1:
                return
            rejected = current


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None
