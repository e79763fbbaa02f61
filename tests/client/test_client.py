"""The client object: settings (CA bundle, timeout, headers), gzip, vread, context managers."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import json
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pytest_httpx import HTTPXMock

from adapter.client import AsyncFhirClient, FhirClient
from adapter.client._core import ssl_context

from .conftest import BASE, patient


def self_signed_ca(path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "trialfhir test CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_a_ca_bundle_path_is_trusted_instead_of_the_system_store(tmp_path: Path) -> None:
    context = ssl_context(str(self_signed_ca(tmp_path / "ca.pem")))
    assert isinstance(context, ssl.SSLContext)
    names = [str(c["subject"]) for c in context.get_ca_certs()]
    assert any("trialfhir test CA" in name for name in names)
    with FhirClient(BASE, verify=str(tmp_path / "ca.pem")):
        pass


def test_a_missing_ca_bundle_fails_at_construction(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        FhirClient(BASE, verify=str(tmp_path / "nope.pem"))


def test_timeout_and_extra_headers_are_applied(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{BASE}/Patient/a", json=patient("a"))
    with FhirClient(BASE, timeout=5.0, headers={"X-Request-Source": "trialfhir"}) as client:
        client.read("Patient", "a")
    request = httpx_mock.get_request()
    assert request is not None
    assert request.headers["X-Request-Source"] == "trialfhir"
    assert request.headers["Accept"] == "application/fhir+json"
    assert request.extensions["timeout"]["read"] == 5.0


def test_gzip_responses_are_decoded() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = gzip.compress(json.dumps(patient("a")).encode())
        return httpx.Response(
            200,
            stream=httpx.ByteStream(body),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/fhir+json"},
        )

    with FhirClient(BASE, transport=httpx.MockTransport(handler)) as client:
        assert client.read("Patient", "a")["id"] == "a"
    assert "gzip" in seen[0].headers["Accept-Encoding"]


def test_vread(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{BASE}/Patient/a/_history/2", json=patient("a"))
    with FhirClient(BASE) as client:
        assert client.vread("Patient", "a", "2")["id"] == "a"


def test_base_url_is_normalised_on_the_client() -> None:
    with FhirClient("http://fhir.test/fhir///") as client:
        assert client.base_url == "http://fhir.test/fhir/"


def test_the_clients_close_their_connection_pools() -> None:
    client = FhirClient(BASE)
    with client:
        pass
    assert client._http.is_closed

    async def run() -> bool:
        async with AsyncFhirClient(BASE) as aclient:
            pass
        return aclient._http.is_closed

    assert asyncio.run(run())


def test_one_httpx_client_serves_every_request(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{BASE}/Patient/a", json=patient("a"), is_reusable=True)
    with FhirClient(BASE) as client:
        first = client._http
        for _ in range(3):
            client.read("Patient", "a")
        assert client._http is first
    assert isinstance(first, httpx.Client)


def gzipped(body: bytes) -> httpx.MockTransport:
    return httpx.MockTransport(
        lambda request: httpx.Response(
            200,
            stream=httpx.ByteStream(gzip.compress(body)),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/fhir+json"},
        )
    )


def test_a_small_gzip_that_inflates_past_the_body_cap_is_refused() -> None:
    from adapter.client import ResponseTooLarge

    body = b'{"resourceType":"Patient","id":"a","text":"' + b" " * (2 << 20) + b'"}'
    assert len(gzip.compress(body)) < 10_000
    transport = gzipped(body)
    with (
        FhirClient(BASE, max_body_bytes=1 << 20, transport=transport) as client,
        pytest.raises(ResponseTooLarge),
    ):
        client.read("Patient", "a")


def test_a_gzipped_body_under_the_cap_is_read_decoded() -> None:
    transport = gzipped(b'{"resourceType":"Patient","id":"a","birthDate":"1950"}')
    with FhirClient(BASE, max_body_bytes=1 << 20, transport=transport) as client:
        assert client.read("Patient", "a")["birthDate"] == "1950"
