"""Auth: bearer and basic stay on the FHIR origin; SMART Backend Services discovery, signed assertions,
cached tokens, one refresh for many concurrent requests, and one forced refresh after a 401."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pytest_httpx import HTTPXMock

from adapter.client import (
    AsyncFhirClient,
    AuthenticationFailed,
    BasicAuth,
    BearerAuth,
    FhirClient,
    SmartBackendAuth,
    Unauthorized,
)

from .conftest import BASE, patient

TOKEN_URL = "https://auth.test/oauth/token"
DISCOVERY_URL = f"{BASE}/.well-known/smart-configuration"
CLIENT_ID = "trialfhir-backend"
PATIENTS = re.compile(re.escape(f"{BASE}/Patient/") + ".+")


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


class TokenServer:
    """A token endpoint that verifies each assertion with the public key and hands out t1, t2, ..."""

    def __init__(self, public_key: Any, algorithm: str, *, delay: float = 0.0) -> None:
        self.public_key = public_key
        self.algorithm = algorithm
        self.delay = delay
        self.forms: list[dict[str, str]] = []
        self.claims: list[dict[str, Any]] = []
        self.headers: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def answer(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        assertion = form["client_assertion"]
        claims = jwt.decode(
            assertion, self.public_key, algorithms=[self.algorithm], audience=TOKEN_URL, leeway=3600
        )
        with self.lock:
            self.forms.append(form)
            self.claims.append(claims)
            self.headers.append(jwt.get_unverified_header(assertion))
            number = len(self.forms)
        return httpx.Response(
            200,
            json={
                "access_token": f"t{number}",
                "token_type": "bearer",
                "expires_in": 300,
                "scope": form.get("scope", ""),
            },
        )

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.delay:
            threading.Event().wait(self.delay)  # let other threads reach the lock
        return self.answer(request)

    async def async_answer(self, request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(self.delay)  # let other tasks reach the lock
        return self.answer(request)


def fhir_server(valid: set[str]) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization", "").removeprefix("Bearer ") in valid:
            return httpx.Response(200, json=patient(request.url.path.rsplit("/", 1)[-1]))
        return httpx.Response(401)

    return answer


def slow_fhir_server(valid: set[str]) -> Callable[[httpx.Request], Awaitable[httpx.Response]]:
    """The same server, answering after a pause so that concurrent requests overlap."""
    answer = fhir_server(valid)

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.01)
        return answer(request)

    return slow


def add_discovery(httpx_mock: HTTPXMock, token_url: str = TOKEN_URL) -> None:
    httpx_mock.add_response(
        url=DISCOVERY_URL,
        json={"token_endpoint": token_url, "grant_types_supported": ["client_credentials"]},
    )


@pytest.mark.parametrize("algorithm", ["RS384", "ES384"])
def test_smart_discovery_and_a_verifiable_assertion(
    httpx_mock: HTTPXMock,
    algorithm: str,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    key: Any = rsa_key if algorithm == "RS384" else ec_key
    tokens = TokenServer(key.public_key(), algorithm)
    add_discovery(httpx_mock)
    httpx_mock.add_callback(tokens, url=TOKEN_URL, method="POST")
    httpx_mock.add_callback(fhir_server({"t1"}), url=f"{BASE}/Patient/a")
    auth = SmartBackendAuth(
        CLIENT_ID,
        key,
        algorithm=algorithm,  # type: ignore[arg-type]
        scope="system/Patient.rs",
        key_id="k1",
    )
    with FhirClient(BASE, auth=auth) as client:
        assert client.read("Patient", "a")["id"] == "a"
    claims, form, header = tokens.claims[0], tokens.forms[0], tokens.headers[0]
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert claims["aud"] == TOKEN_URL
    assert 0 < claims["exp"] - claims["iat"] <= 300
    assert len(claims["jti"]) >= 16
    assert header["alg"] == algorithm and header["kid"] == "k1"
    assert form["grant_type"] == "client_credentials"
    assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assert form["scope"] == "system/Patient.rs"
    discovery = httpx_mock.get_requests(url=DISCOVERY_URL)[0]
    assert "Authorization" not in discovery.headers


def test_assertions_are_unique(rsa_key: rsa.RSAPrivateKey) -> None:
    auth = SmartBackendAuth(CLIENT_ID, rsa_key)
    first, second = (
        jwt.decode(auth.assertion(TOKEN_URL), options={"verify_signature": False}) for _ in range(2)
    )
    assert first["jti"] != second["jti"]


def test_the_token_is_cached_and_refreshed_before_expiry(
    httpx_mock: HTTPXMock, rsa_key: rsa.RSAPrivateKey
) -> None:
    now = [time.time()]
    tokens = TokenServer(rsa_key.public_key(), "RS384")
    httpx_mock.add_callback(tokens, url=TOKEN_URL, method="POST", is_reusable=True)
    httpx_mock.add_callback(fhir_server({"t1", "t2"}), url=PATIENTS, is_reusable=True)
    auth = SmartBackendAuth(
        CLIENT_ID, rsa_key, token_url=TOKEN_URL, refresh_skew=60, clock=lambda: now[0]
    )
    with FhirClient(BASE, auth=auth) as client:
        client.read("Patient", "a")
        now[0] += 200  # 100 s left: still fresh
        client.read("Patient", "b")
        assert len(tokens.forms) == 1
        now[0] += 50  # 50 s left, inside the 60 s skew: refresh first
        client.read("Patient", "c")
    assert len(tokens.forms) == 2
    assert httpx_mock.get_requests()[-1].headers["Authorization"] == "Bearer t2"


def test_many_concurrent_async_requests_share_one_token_request(
    httpx_mock: HTTPXMock, rsa_key: rsa.RSAPrivateKey
) -> None:
    tokens = TokenServer(rsa_key.public_key(), "RS384", delay=0.02)
    add_discovery(httpx_mock)
    httpx_mock.add_callback(tokens.async_answer, url=TOKEN_URL, method="POST", is_reusable=True)
    httpx_mock.add_callback(fhir_server({"t1"}), url=PATIENTS, is_reusable=True)

    async def run() -> list[str]:
        auth = SmartBackendAuth(CLIENT_ID, rsa_key)
        async with AsyncFhirClient(BASE, auth=auth) as client:
            found = await asyncio.gather(*(client.read("Patient", f"p{i}") for i in range(20)))
            return [p["id"] for p in found]

    assert len(asyncio.run(run())) == 20
    assert len(tokens.forms) == 1
    assert len(httpx_mock.get_requests(url=DISCOVERY_URL)) == 1


def test_401_forces_exactly_one_refresh_for_many_concurrent_async_requests(
    httpx_mock: HTTPXMock, rsa_key: rsa.RSAPrivateKey
) -> None:
    tokens = TokenServer(rsa_key.public_key(), "RS384", delay=0.02)
    httpx_mock.add_callback(tokens.async_answer, url=TOKEN_URL, method="POST", is_reusable=True)
    valid = {"t1"}
    httpx_mock.add_callback(slow_fhir_server(valid), url=PATIENTS, is_reusable=True)

    async def run() -> list[str]:
        auth = SmartBackendAuth(CLIENT_ID, rsa_key, token_url=TOKEN_URL)
        async with AsyncFhirClient(BASE, auth=auth) as client:
            await client.read("Patient", "warm-up")  # obtains t1
            valid.clear()
            valid.add("t2")  # the server revokes t1
            found = await asyncio.gather(*(client.read("Patient", f"p{i}") for i in range(20)))
            return [p["id"] for p in found]

    assert len(asyncio.run(run())) == 20
    assert len(tokens.forms) == 2  # t1, then exactly one refresh to t2
    for i in range(20):  # each request was rejected once with t1 and repeated once with t2
        assert len(httpx_mock.get_requests(url=f"{BASE}/Patient/p{i}")) == 2


def test_many_threads_share_one_token_request(
    httpx_mock: HTTPXMock, rsa_key: rsa.RSAPrivateKey
) -> None:
    tokens = TokenServer(rsa_key.public_key(), "RS384", delay=0.02)
    httpx_mock.add_callback(tokens, url=TOKEN_URL, method="POST", is_reusable=True)
    httpx_mock.add_callback(fhir_server({"t1"}), url=PATIENTS, is_reusable=True)
    auth = SmartBackendAuth(CLIENT_ID, rsa_key, token_url=TOKEN_URL)
    with FhirClient(BASE, auth=auth) as client, ThreadPoolExecutor(8) as pool:
        found = list(pool.map(lambda i: client.read("Patient", f"p{i}"), range(16)))
    assert len(found) == 16
    assert len(tokens.forms) == 1


def test_a_second_401_is_reported_not_looped(
    httpx_mock: HTTPXMock, rsa_key: rsa.RSAPrivateKey
) -> None:
    tokens = TokenServer(rsa_key.public_key(), "RS384")
    httpx_mock.add_callback(tokens, url=TOKEN_URL, method="POST", is_reusable=True)
    httpx_mock.add_callback(fhir_server(set()), url=f"{BASE}/Patient/a", is_reusable=True)
    auth = SmartBackendAuth(CLIENT_ID, rsa_key, token_url=TOKEN_URL)
    with FhirClient(BASE, auth=auth) as client, pytest.raises(Unauthorized):
        client.read("Patient", "a")
    assert len(tokens.forms) == 2
    assert len(httpx_mock.get_requests(url=f"{BASE}/Patient/a")) == 2


def test_a_token_endpoint_error_is_authentication_failed(
    httpx_mock: HTTPXMock, rsa_key: rsa.RSAPrivateKey
) -> None:
    httpx_mock.add_response(
        url=TOKEN_URL,
        method="POST",
        status_code=400,
        json={"error": "invalid_client", "error_description": "unknown kid"},
    )
    auth = SmartBackendAuth(CLIENT_ID, rsa_key, token_url=TOKEN_URL)
    with FhirClient(BASE, auth=auth) as client, pytest.raises(AuthenticationFailed) as info:
        client.read("Patient", "a")
    assert "invalid_client" in str(info.value) and "unknown kid" in str(info.value)


def test_a_plain_http_token_endpoint_elsewhere_is_refused(
    httpx_mock: HTTPXMock, rsa_key: rsa.RSAPrivateKey
) -> None:
    add_discovery(httpx_mock, "http://auth.test/token")
    auth = SmartBackendAuth(CLIENT_ID, rsa_key)
    with FhirClient(BASE, auth=auth) as client, pytest.raises(AuthenticationFailed):
        client.read("Patient", "a")


def test_assertion_lifetime_is_at_most_five_minutes(rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(ValueError):
        SmartBackendAuth(CLIENT_ID, rsa_key, assertion_lifetime=301)
    with pytest.raises(ValueError):
        SmartBackendAuth(CLIENT_ID, rsa_key, algorithm="HS256")  # type: ignore[arg-type]


@pytest.mark.parametrize("auth", [BearerAuth("secret-token"), BasicAuth("user", "pw")])
def test_static_credentials_go_only_to_the_fhir_origin(
    auth: httpx.Auth, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(url=f"{BASE}/Patient/a", json=patient("a"))
    with FhirClient(BASE, auth=auth) as client:
        client.read("Patient", "a")
    sent = httpx_mock.get_request()
    assert sent is not None and "Authorization" in sent.headers
    elsewhere = next(auth.sync_auth_flow(httpx.Request("GET", "http://other.test/fhir/Patient/a")))
    assert "Authorization" not in elsewhere.headers
    other_port = next(auth.sync_auth_flow(httpx.Request("GET", "http://fhir.test:8443/fhir/x")))
    assert "Authorization" not in other_port.headers


def test_auth_reprs_hide_secrets(rsa_key: rsa.RSAPrivateKey) -> None:
    assert "secret" not in repr(BearerAuth("secret"))
    assert "pw" not in repr(BasicAuth("user", "pw"))
    assert "PRIVATE" not in repr(SmartBackendAuth(CLIENT_ID, rsa_key))


def test_a_key_that_cannot_sign_the_algorithm_is_refused_at_once(
    rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    with pytest.raises(ValueError, match="ES384"):
        SmartBackendAuth(CLIENT_ID, rsa_key, algorithm="ES384")
    with pytest.raises(ValueError, match="RS384"):
        SmartBackendAuth(CLIENT_ID, ec_key, algorithm="RS384")
