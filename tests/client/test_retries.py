"""Retries: 429 with Retry-After (seconds, HTTP date), 5xx, timeouts, budgets, and what is never retried."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils

import httpx
import pytest
from pytest_httpx import HTTPXMock

from adapter.client import (
    AsyncFhirClient,
    FhirClient,
    FhirTimeout,
    FhirTransportError,
    RetriesExhausted,
    RetryPolicy,
    ServerError,
    TooManyRequests,
    transaction_bundle,
)

from .conftest import BASE, SleepRecorder, patient

READ_URL = f"{BASE}/Patient/a"
NO_JITTER = RetryPolicy(random=lambda: 1.0)


def client(sleeps: SleepRecorder, policy: RetryPolicy = NO_JITTER) -> FhirClient:
    return FhirClient(BASE, retry=policy, sleep=sleeps)


def test_429_with_retry_after_seconds_then_success(
    httpx_mock: HTTPXMock, sleeps: SleepRecorder
) -> None:
    httpx_mock.add_response(url=READ_URL, status_code=429, headers={"Retry-After": "3"})
    httpx_mock.add_response(url=READ_URL, json=patient("a"))
    with client(sleeps) as c:
        assert c.read("Patient", "a")["id"] == "a"
    assert sleeps.calls == [3.0]


def test_429_with_retry_after_http_date_then_success(
    httpx_mock: HTTPXMock, sleeps: SleepRecorder
) -> None:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=40)
    httpx_mock.add_response(
        url=READ_URL,
        status_code=429,
        headers={"Retry-After": email.utils.format_datetime(when, usegmt=True)},
    )
    httpx_mock.add_response(url=READ_URL, json=patient("a"))
    with client(sleeps) as c:
        c.read("Patient", "a")
    assert len(sleeps.calls) == 1
    assert 30.0 < sleeps.calls[0] <= 40.0  # the date, less the second it was rounded to


def test_503_then_success_uses_exponential_backoff(
    httpx_mock: HTTPXMock, sleeps: SleepRecorder
) -> None:
    httpx_mock.add_response(url=READ_URL, status_code=503)
    httpx_mock.add_response(url=READ_URL, status_code=502)
    httpx_mock.add_response(url=READ_URL, status_code=504)
    httpx_mock.add_response(url=READ_URL, json=patient("a"))
    with client(sleeps, RetryPolicy(backoff_base=0.5, random=lambda: 1.0)) as c:
        c.read("Patient", "a")
    assert sleeps.calls == [0.5, 1.0, 2.0]


def test_full_jitter_draws_below_the_cap(httpx_mock: HTTPXMock, sleeps: SleepRecorder) -> None:
    httpx_mock.add_response(url=READ_URL, status_code=503)
    httpx_mock.add_response(url=READ_URL, json=patient("a"))
    with client(sleeps, RetryPolicy(backoff_base=2.0, random=lambda: 0.25)) as c:
        c.read("Patient", "a")
    assert sleeps.calls == [0.5]


def test_retries_exhausted_is_a_clear_error(httpx_mock: HTTPXMock, sleeps: SleepRecorder) -> None:
    for _ in range(3):
        httpx_mock.add_response(url=READ_URL, status_code=503)
    with (
        client(sleeps, RetryPolicy(max_attempts=3, random=lambda: 0.0)) as c,
        pytest.raises(RetriesExhausted) as info,
    ):
        c.read("Patient", "a")
    assert info.value.attempts == 3
    assert isinstance(info.value.last_error, ServerError)
    assert "3 attempt" in str(info.value) and "503" in str(info.value)
    assert len(sleeps.calls) == 2


def test_retry_after_beyond_the_time_budget_gives_up_without_waiting(
    httpx_mock: HTTPXMock, sleeps: SleepRecorder
) -> None:
    httpx_mock.add_response(url=READ_URL, status_code=429, headers={"Retry-After": "100"})
    with (
        client(sleeps, RetryPolicy(max_total_seconds=60, max_retry_after=300)) as c,
        pytest.raises(RetriesExhausted) as info,
    ):
        c.read("Patient", "a")
    assert info.value.reason == "time"
    assert isinstance(info.value.last_error, TooManyRequests)
    assert sleeps.calls == []


def test_total_time_bound_counts_the_waits(httpx_mock: HTTPXMock, sleeps: SleepRecorder) -> None:
    for _ in range(3):
        httpx_mock.add_response(url=READ_URL, status_code=429, headers={"Retry-After": "20"})
    with (
        client(sleeps, RetryPolicy(max_attempts=10, max_total_seconds=50)) as c,
        pytest.raises(RetriesExhausted),
    ):
        c.read("Patient", "a")
    assert sleeps.calls == [20.0, 20.0]


def test_a_timeout_is_retried_then_reported(httpx_mock: HTTPXMock, sleeps: SleepRecorder) -> None:
    httpx_mock.add_exception(httpx.ReadTimeout("slow"), url=READ_URL)
    httpx_mock.add_exception(httpx.ReadTimeout("slow"), url=READ_URL)
    with (
        client(sleeps, RetryPolicy(max_attempts=2, random=lambda: 0.0)) as c,
        pytest.raises(RetriesExhausted) as info,
    ):
        c.read("Patient", "a")
    last = info.value.last_error
    assert isinstance(last, FhirTimeout)
    assert isinstance(last.__cause__, httpx.ReadTimeout)


def test_a_timeout_without_retries_is_fhir_timeout_from_httpx(
    httpx_mock: HTTPXMock, sleeps: SleepRecorder
) -> None:
    httpx_mock.add_exception(httpx.ConnectTimeout("slow"), url=READ_URL)
    with client(sleeps, RetryPolicy.none()) as c, pytest.raises(FhirTimeout) as info:
        c.read("Patient", "a")
    assert isinstance(info.value.__cause__, httpx.ConnectTimeout)
    assert info.value.code == "timeout"


def test_connection_error_then_success(httpx_mock: HTTPXMock, sleeps: SleepRecorder) -> None:
    httpx_mock.add_exception(httpx.ConnectError("refused"), url=READ_URL)
    httpx_mock.add_response(url=READ_URL, json=patient("a"))
    with client(sleeps) as c:
        assert c.read("Patient", "a")["id"] == "a"
    assert len(sleeps.calls) == 1


def test_a_plain_create_is_never_retried(httpx_mock: HTTPXMock, sleeps: SleepRecorder) -> None:
    httpx_mock.add_response(url=f"{BASE}/Patient", method="POST", status_code=503)
    with client(sleeps) as c, pytest.raises(ServerError):
        c.create(patient("a"))
    assert sleeps.calls == []
    assert len(httpx_mock.get_requests()) == 1


def test_a_plain_create_is_not_retried_after_a_connection_error(
    httpx_mock: HTTPXMock, sleeps: SleepRecorder
) -> None:
    httpx_mock.add_exception(httpx.ReadError("reset"), url=f"{BASE}/Patient", method="POST")
    with client(sleeps) as c, pytest.raises(FhirTransportError):
        c.create(patient("a"))
    assert sleeps.calls == []


def test_a_conditional_create_is_retried(httpx_mock: HTTPXMock, sleeps: SleepRecorder) -> None:
    httpx_mock.add_response(url=f"{BASE}/Patient", method="POST", status_code=503)
    httpx_mock.add_response(
        url=f"{BASE}/Patient", method="POST", status_code=201, json=patient("a")
    )
    with client(sleeps) as c:
        assert c.create(patient("a"), if_none_exist={"identifier": "s|1"}).created
    assert len(sleeps.calls) == 1


def test_an_all_conditional_transaction_is_retried_a_plain_one_is_not(
    httpx_mock: HTTPXMock, sleeps: SleepRecorder
) -> None:
    ok = {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [{"response": {"status": "201 Created"}}],
    }
    httpx_mock.add_response(url=BASE, method="POST", status_code=503)
    httpx_mock.add_response(url=BASE, method="POST", json=ok)
    httpx_mock.add_response(url=BASE, method="POST", status_code=503)
    with client(sleeps) as c:
        c.transaction(transaction_bundle([patient("a")], mode="conditional-update"))
        assert len(sleeps.calls) == 1
        with pytest.raises(ServerError):
            c.transaction(transaction_bundle([patient("a")], mode="create"))
    assert len(sleeps.calls) == 1


def test_async_retries_use_the_injected_async_sleep(
    httpx_mock: HTTPXMock, sleeps: SleepRecorder
) -> None:
    httpx_mock.add_response(url=READ_URL, status_code=429, headers={"Retry-After": "2"})
    httpx_mock.add_response(url=READ_URL, json=patient("a"))

    async def run() -> str:
        async with AsyncFhirClient(BASE, retry=NO_JITTER, sleep=sleeps.asleep) as c:
            return str((await c.read("Patient", "a"))["id"])

    assert asyncio.run(run()) == "a"
    assert sleeps.calls == [2.0]
