"""The client against a real, misbehaving server on loopback (tests/faultserver.py): every loop over a
server's answers, every body read and every wait is bounded, and each refusal has its own error."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from faultserver import (
    FaultServer,
    deep_json,
    drip,
    endless_next,
    huge_body,
    json_body,
    looping_next,
    raw_body,
    searchset,
    transaction_answer,
)

from adapter.client import (
    AsyncFhirClient,
    FhirClient,
    FhirTimeout,
    InvalidResponse,
    PageLimitReached,
    PagingLoop,
    ResponseTooLarge,
    RetriesExhausted,
    RetryPolicy,
    TransactionResponseMismatch,
    UnsafeNextLink,
)

from .conftest import SleepRecorder, patient

NO_RETRY = RetryPolicy.none()


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer(lifetime=30) as running:
        yield running


# -- paging ------------------------------------------------------------------------------------------


def test_an_endless_next_chain_stops_at_the_page_cap(server: FaultServer) -> None:
    server.route("GET", "/fhir/Patient", endless_next(server.base))
    server.route("GET", "/fhir", endless_next(server.base))
    with FhirClient(server.base, max_pages=5) as client, pytest.raises(PageLimitReached) as info:
        client.search("Patient").all()
    assert info.value.limit == 5
    assert len(server.requests) == 5


def test_a_looping_next_chain_is_refused_at_the_first_repeat(server: FaultServer) -> None:
    server.route("GET", "/fhir/Patient", looping_next(server.base))
    server.route("GET", "/fhir", looping_next(server.base))
    with FhirClient(server.base) as client, pytest.raises(PagingLoop):
        client.search("Patient").all()
    # the search, offset 1, offset 0, then offset 1 again: never asked for
    assert [r.query for r in server.requests] == [
        "",
        "_getpages=endless&_getpagesoffset=1",
        "_getpages=endless&_getpagesoffset=0",
    ]


def test_an_endless_chain_is_refused_by_the_async_client_too(server: FaultServer) -> None:
    server.route("GET", "/fhir/Patient", endless_next(server.base))
    server.route("GET", "/fhir", endless_next(server.base))

    async def pull() -> list[dict[str, Any]]:
        async with AsyncFhirClient(server.base, max_pages=3) as client:
            return await client.search("Patient").all()

    with pytest.raises(PageLimitReached):
        asyncio.run(pull())
    assert len(server.requests) == 3


def test_a_next_link_to_another_origin_is_refused(server: FaultServer) -> None:
    elsewhere = "http://127.0.0.2:9/fhir?_getpages=x"
    server.route("GET", "/fhir/Patient", json_body(searchset([patient("a")], elsewhere)))
    with FhirClient(server.base) as client, pytest.raises(UnsafeNextLink):
        client.search("Patient").all()
    assert len(server.requests) == 1


# -- time ---------------------------------------------------------------------------------------------


def test_a_dripping_body_is_cut_at_the_deadline(server: FaultServer) -> None:
    # each byte comes well within the 60 s read timeout: only the deadline can stop this
    server.route("GET", "/fhir/Patient/a", drip(b'{"resourceType":"Patient"}' * 4, interval=0.2))
    with (
        FhirClient(server.base, deadline=1.0, retry=NO_RETRY) as client,
        pytest.raises(FhirTimeout) as info,
    ):
        client.read("Patient", "a")
    assert "deadline" in str(info.value)


def test_dripping_headers_are_cut_at_the_deadline(server: FaultServer) -> None:
    # the status line and headers alone take about 90 bytes, 18 s at this pace
    server.route("GET", "/fhir/Patient/a", drip(b"{}", interval=0.2, headers_too=True))
    with (
        FhirClient(server.base, deadline=1.0, retry=NO_RETRY) as client,
        pytest.raises(FhirTimeout) as info,
    ):
        client.read("Patient", "a")
    assert "deadline" in str(info.value)
    assert server.dripped < 20  # cut inside the headers, not after them


def test_one_byte_every_two_seconds_is_cut_at_the_deadline(server: FaultServer) -> None:
    server.route("GET", "/fhir/metadata", drip(b"{}" * 10, interval=2.0))
    with (
        FhirClient(server.base, deadline=0.5, retry=NO_RETRY) as client,
        pytest.raises(FhirTimeout, match="deadline"),
    ):
        client.capabilities()


def test_the_deadline_is_per_attempt_and_retries_stay_bounded(
    server: FaultServer, sleeps: SleepRecorder
) -> None:
    server.route("GET", "/fhir/Patient/a", drip(b'{"resourceType":"Patient"}', interval=0.2))
    policy = RetryPolicy(max_attempts=2, random=lambda: 0.0)
    with (
        FhirClient(server.base, deadline=0.5, retry=policy, sleep=sleeps) as client,
        pytest.raises(RetriesExhausted) as info,
    ):
        client.read("Patient", "a")
    assert info.value.attempts == 2
    assert isinstance(info.value.last_error, FhirTimeout)
    assert len(server.requests) == 2


def test_the_async_client_cuts_a_drip_at_the_deadline(server: FaultServer) -> None:
    server.route("GET", "/fhir/Patient/a", drip(b"{}" * 20, interval=0.2, headers_too=True))

    async def read() -> dict[str, Any]:
        async with AsyncFhirClient(server.base, deadline=1.0, retry=NO_RETRY) as client:
            return await client.read("Patient", "a")

    with pytest.raises(FhirTimeout, match="deadline"):
        asyncio.run(read())


# -- size ---------------------------------------------------------------------------------------------


def test_a_huge_streamed_body_is_refused_past_the_cap(server: FaultServer) -> None:
    server.route("GET", "/fhir/Patient", huge_body(8 * 1024 * 1024))
    with (
        FhirClient(server.base, max_body_bytes=1024 * 1024) as client,
        pytest.raises(ResponseTooLarge) as info,
    ):
        client.search("Patient").all()
    assert info.value.limit == 1024 * 1024
    assert "larger than 1048576 bytes" in str(info.value)


def test_a_huge_announced_body_is_refused_before_reading(server: FaultServer) -> None:
    server.route("GET", "/fhir/Patient", huge_body(8 * 1024 * 1024, announce=True))

    async def search() -> list[dict[str, Any]]:
        async with AsyncFhirClient(server.base, max_body_bytes=1024 * 1024) as client:
            return await client.search("Patient").all()

    with pytest.raises(ResponseTooLarge):
        asyncio.run(search())


def test_a_body_under_the_cap_is_read(server: FaultServer) -> None:
    server.route("GET", "/fhir/Patient", huge_body(512 * 1024))
    with FhirClient(server.base, max_body_bytes=1024 * 1024) as client:
        assert client.search("Patient").all() == []


# -- shape --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        b"<html>not json</html>",
        b"[1, 2, 3]",
        b'"a string"',
        b'{"resourceType": "Bundle", "type": "searchset", "entry": {"resource": {}}}',
        b'{"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": []}]}',
        b'{"resourceType": "Patient", "id": "a"}',
    ],
)
def test_wrong_json_is_an_invalid_response(server: FaultServer, payload: bytes) -> None:
    server.route("GET", "/fhir/Patient", raw_body(payload))
    with FhirClient(server.base) as client, pytest.raises(InvalidResponse):
        client.search("Patient").all()


@pytest.mark.parametrize("with_decimal", [False, True])
def test_json_nested_100k_deep_is_refused_not_a_recursion_error(
    server: FaultServer, with_decimal: bool
) -> None:
    server.route("GET", "/fhir/Patient", deep_json(100_000, with_decimal=with_decimal))
    with FhirClient(server.base) as client, pytest.raises(InvalidResponse, match="nested deeper"):
        client.search("Patient").all()


def test_json_deeper_than_the_limit_is_refused_and_shallower_read(server: FaultServer) -> None:
    server.route("GET", "/fhir/Patient", deep_json(300))
    server.route("GET", "/fhir/Observation", deep_json(20, with_decimal=True))
    with FhirClient(server.base) as client:
        with pytest.raises(InvalidResponse, match="nested deeper than 254"):
            client.search("Patient").all()
        (read,) = client.search("Observation").all()
    assert read["id"] == "a"


# -- transactions -------------------------------------------------------------------------------------


def test_a_short_transaction_response_is_refused_with_the_committed_chunks(
    server: FaultServer,
) -> None:
    calls: list[int] = []
    full = transaction_answer()
    short = transaction_answer(lambda entries: entries[:-1])

    def answer(handler: Any) -> None:
        calls.append(1)
        (short if len(calls) == 2 else full)(handler)

    server.route("POST", "/fhir", answer)
    resources = [patient(str(i)) for i in range(6)]
    with FhirClient(server.base) as client, pytest.raises(TransactionResponseMismatch) as info:
        client.upload(resources, chunk_size=2)
    error = info.value
    assert error.chunk == 1
    assert error.completed is not None and error.completed.total("created") == 2
    assert error.problems == ["1 entries answer the 2 sent"]
    assert "Chunk 1 (2 of 6 resources) was committed before it" in str(error)
    assert "Re-running the same upload completes it" in str(error)
    assert len(calls) == 2  # the third chunk was never sent


def test_a_location_of_another_resource_is_refused(server: FaultServer) -> None:
    def other_id(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        entries[0]["response"]["location"] = "Patient/somebody-else/_history/1"
        return entries

    server.route("POST", "/fhir", transaction_answer(other_id))
    with FhirClient(server.base) as client, pytest.raises(TransactionResponseMismatch) as info:
        client.upload([patient("a"), patient("b")], mode="update")
    assert info.value.problems == [
        "entry 0 (PUT Patient): the location has another id than the one sent"
    ]
    assert "somebody-else" not in str(info.value)
