"""Concurrent uploads (`concurrency` > 1): the dependency waves, their order on the wire, what the
error says when a chunk of a wave fails while another is in flight, Retry-After, Ctrl-C.

A real socket server on 127.0.0.1 (tests/faultserver.py) answers the transactions, so that several
are truly in flight at once; each chunk is told apart by the fullUrl of its first entry.
"""

from __future__ import annotations

import json
import signal as signal_module
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from faultserver import FaultHandler, FaultServer, capability, json_body

from adapter.client import FhirClient, RetryPolicy, TransactionFailed
from adapter.client._bundle import dependency_waves
from adapter.sources import detect
from adapter.transfer import push

FIXTURE = Path(__file__).resolve().parents[2] / "adapter" / "studies" / "dalakas1993"
CHUNK = 50

JSON = dict[str, Any]


@pytest.fixture(scope="module")
def trial() -> list[JSON]:
    return list(detect(FIXTURE).resources())


def refs(resource: Any) -> Iterator[str]:
    if isinstance(resource, dict):
        for key, value in resource.items():
            if key == "reference" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(resource, list):
        for item in resource:
            yield from refs(item)


def chunk_of_key(trial: list[JSON]) -> dict[str, int]:
    return {f"{r['resourceType']}/{r['id']}": i // CHUNK for i, r in enumerate(trial)}


def wave_of(waves: list[list[int]]) -> dict[int, int]:
    return {chunk: number for number, wave in enumerate(waves) for chunk in wave}


# --- the waves (pure) ------------------------------------------------------------------------------


def test_every_chunk_comes_in_a_wave_after_the_chunks_it_refers_to(trial: list[JSON]) -> None:
    waves = dependency_waves(trial, CHUNK, mode="conditional-update")
    where = chunk_of_key(trial)
    wave = wave_of(waves)
    assert sorted(wave) == list(range(-(-len(trial) // CHUNK)))
    assert len(waves) > 1 and any(len(w) > 1 for w in waves)  # something to run concurrently
    for index, resource in enumerate(trial):
        chunk = index // CHUNK
        needed = [where[r] for r in refs(resource) if r in where and where[r] < chunk]
        assert all(wave[n] < wave[chunk] for n in needed), (index, resource["resourceType"])
    # and no later than needed: a chunk of wave k > 0 refers to one of wave k - 1
    for chunk, number in wave.items():
        if number == 0:
            continue
        members = trial[chunk * CHUNK : (chunk + 1) * CHUNK]
        targets = {where[r] for m in members for r in refs(m) if r in where}
        assert any(wave[t] == number - 1 for t in targets), chunk


def test_a_resource_written_again_waits_for_its_first_write() -> None:
    def patient(pid: str, value: str) -> JSON:
        return {
            "resourceType": "Patient",
            "id": pid,
            "identifier": [{"system": "urn:s", "value": value}],
        }

    resources = [patient("a", "1"), patient("b", "2"), patient("c", "1")]
    assert dependency_waves(resources, 1, mode="conditional-update") == [[0, 1], [2]]
    assert dependency_waves(resources, 1, mode="update") == [[0, 1, 2]]


def test_conditional_and_absolute_references_count_forward_ones_do_not() -> None:
    base = "http://fhir.test/fhir/"
    patient = {"resourceType": "Patient", "id": "p", "identifier": [{"system": "s", "value": "1"}]}
    by_url = {
        "resourceType": "Observation",
        "id": "o1",
        "identifier": [{"system": "s", "value": "o1"}],
        "subject": {"reference": f"{base}Patient/p/_history/3"},
    }
    by_search = {
        "resourceType": "Observation",
        "id": "o2",
        "identifier": [{"system": "s", "value": "o2"}],
        "subject": {"reference": "Patient?identifier=s|1"},
    }
    forward = {
        "resourceType": "Observation",
        "id": "o3",
        "identifier": [{"system": "s", "value": "o3"}],
        "subject": {"reference": "Patient/later"},
    }
    later = {
        "resourceType": "Patient",
        "id": "later",
        "identifier": [{"system": "s", "value": "2"}],
    }
    waves = dependency_waves(
        [patient, by_url, by_search, forward, later], 1, mode="conditional-update", base_url=base
    )
    assert waves == [[0, 3, 4], [1, 2]]


# --- on the wire -----------------------------------------------------------------------------------


class Wire:
    """A transaction endpoint that logs when each chunk starts and ends, and answers it as
    `actions[chunk]` says (default: commit, as `transaction_answer` does)."""

    def __init__(self, trial: list[JSON], base: str) -> None:
        self.first = {
            f"{base}/{r['resourceType']}/{r['id']}": i // CHUNK
            for i, r in enumerate(trial)
            if i % CHUNK == 0
        }
        self.lock = threading.Lock()
        self.events: list[tuple[str, int]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.actions: dict[int, Callable[[FaultHandler, JSON], None]] = {}
        self.answered: dict[int, int] = {}  # chunk -> last status sent
        self.authorization: list[str | None] = []

    def __call__(self, handler: FaultHandler) -> None:
        sent = json.loads(handler.seen.body)
        chunk = self.first[sent["entry"][0]["fullUrl"]]
        self.authorization.append(handler.headers.get("Authorization"))
        with self.lock:
            self.events.append(("start", chunk))
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        handler.answered = 0  # type: ignore[attr-defined]  # one handler serves a kept-alive connection
        try:
            self.actions.get(chunk, commit)(handler, sent)
        finally:
            with self.lock:
                self.in_flight -= 1
                self.events.append(("end", chunk))
                self.answered[chunk] = getattr(handler, "answered", 0)

    def committed(self) -> list[int]:
        return sorted(c for c, status in self.answered.items() if status == 200)

    def started(self) -> list[int]:
        return [c for kind, c in self.events if kind == "start"]


def commit(handler: FaultHandler, sent: JSON) -> None:
    entries = [
        {
            "response": {
                "status": "201 Created",
                "location": f"{e['resource']['resourceType']}/{e['resource']['id']}/_history/1",
            }
        }
        for e in sent["entry"]
    ]
    body = {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}
    handler.send_json(200, json.dumps(body).encode())
    handler.answered = 200  # type: ignore[attr-defined]


REFUSAL = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "processing", "diagnostics": "HAPI-0550"}],
}


def refuse(handler: FaultHandler, sent: JSON) -> None:
    handler.send_json(400, json.dumps(REFUSAL).encode())
    handler.answered = 400  # type: ignore[attr-defined]


def numbers(chunks: list[int]) -> str:
    """Chunk indexes as a message counts them: from 1, in ranges (`chunks 1, 3-5`)."""
    ordered = [c + 1 for c in sorted(chunks)]
    runs: list[list[int]] = []
    for n in ordered:
        if runs and runs[-1][-1] == n - 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    parts = [str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs]
    return ("chunk " if len(ordered) == 1 else "chunks ") + ", ".join(parts)


def after(
    event: threading.Event, then: Callable[[FaultHandler, JSON], None]
) -> Callable[[FaultHandler, JSON], None]:
    """Answer only once `event` is set (bounded: 10 s), then as `then` does."""

    def action(handler: FaultHandler, sent: JSON) -> None:
        event.wait(10)
        then(handler, sent)

    return action


def signal(
    event: threading.Event, then: Callable[[FaultHandler, JSON], None]
) -> Callable[[FaultHandler, JSON], None]:
    """Set `event`, then answer as `then` does."""

    def action(handler: FaultHandler, sent: JSON) -> None:
        event.set()
        then(handler, sent)

    return action


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer(lifetime=60) as running:
        running.route("GET", "/fhir/metadata", json_body(capability()))
        yield running


def test_no_chunk_of_a_wave_starts_before_the_wave_before_it_committed(
    trial: list[JSON], server: FaultServer
) -> None:
    wire = Wire(trial, server.base)
    server.route("POST", "/fhir", wire)
    waves = dependency_waves(trial, CHUNK, mode="conditional-update", base_url=server.base + "/")
    wave = wave_of(waves)
    # the first two chunks of the big wave hold each other until both are in flight
    big = max(waves, key=len)
    both = threading.Barrier(2, timeout=10)

    def together(handler: FaultHandler, sent: JSON) -> None:
        both.wait()
        commit(handler, sent)

    wire.actions.update({big[0]: together, big[1]: together})
    with FhirClient(server.base) as client:
        summary = push(client, trial, chunk_size=CHUNK, concurrency=3)
    assert sum(sum(c.values()) for c in summary.as_dict().values()) == len(trial)
    assert summary.bundles == len(wave)
    assert sorted(wire.started()) == sorted(wave)
    ended: set[int] = set()
    for kind, chunk in wire.events:
        if kind == "end":
            ended.add(chunk)
            continue
        earlier = {c for c, n in wave.items() if n < wave[chunk]}
        assert earlier <= ended, f"chunk {chunk} started before {sorted(earlier - ended)} ended"
    assert 2 <= wire.most_in_flight <= 3


def test_a_failed_chunk_is_named_and_the_one_in_flight_with_it_reported_as_it_ended(
    trial: list[JSON], server: FaultServer
) -> None:
    wire = Wire(trial, server.base)
    server.route("POST", "/fhir", wire)
    third_started, refused = threading.Event(), threading.Event()
    # chunk 2 is refused while chunk 3 is in flight; chunk 3 commits after the refusal
    wire.actions.update(
        {
            1: after(third_started, signal(refused, refuse)),
            2: signal(third_started, after(refused, commit)),
        }
    )
    with FhirClient(server.base) as client, pytest.raises(TransactionFailed) as caught:
        push(client, trial, chunk_size=CHUNK, concurrency=2)
    message = str(caught.value)
    committed = wire.committed()
    assert caught.value.chunk == 1
    assert 0 in committed and 2 in committed and 1 not in committed
    assert "transaction failed in chunk 2 (HTTP 400): HAPI-0550" in message
    held = sum(min(CHUNK, len(trial) - c * CHUNK) for c in committed)
    assert f"{numbers(committed).capitalize()} ({held} of 759 resources) were committed" in message
    assert "chunk 2 was rolled back (a transaction is all or nothing)" in message
    total = -(-len(trial) // CHUNK)
    unsent = [c for c in range(total) if c not in wire.answered]
    assert f"{numbers(unsent)} were not sent" in message
    assert "Re-running the same upload completes it" in message
    # after the refusal, at most the chunk whose sender was already looping went out
    assert len(wire.started()) <= 4


def test_two_chunks_failing_in_one_wave_are_both_named(
    trial: list[JSON], server: FaultServer
) -> None:
    wire = Wire(trial, server.base)
    server.route("POST", "/fhir", wire)
    failed = threading.Event()
    wire.actions.update({1: after(failed, refuse), 2: signal(failed, refuse)})
    with FhirClient(server.base) as client, pytest.raises(TransactionFailed) as caught:
        push(client, trial, chunk_size=CHUNK, concurrency=2)
    message = str(caught.value)
    assert caught.value.chunk == 1  # the first of them
    assert "Chunk 1 (50 of 759 resources) was committed" in message
    assert "chunk 2 was rolled back" in message and "chunk 3 was rolled back" in message
    assert "chunks 4-" in message and "were not sent" in message


def test_retry_after_is_honoured_for_a_chunk_in_flight_with_others(
    trial: list[JSON], server: FaultServer
) -> None:
    wire = Wire(trial, server.base)
    server.route("POST", "/fhir", wire)
    throttled: list[int] = []

    def busy_once(handler: FaultHandler, sent: JSON) -> None:
        if throttled:
            commit(handler, sent)
            return
        throttled.append(1)
        handler.send_response(429)
        handler.send_header("Retry-After", "7")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    wire.actions[3] = busy_once
    waits: list[float] = []
    with FhirClient(server.base, sleep=waits.append) as client:
        summary = push(client, trial, chunk_size=CHUNK, concurrency=4)
    assert waits == [7.0]
    assert wire.started().count(3) == 2
    assert summary.bundles == -(-len(trial) // CHUNK)
    assert summary.total("created") == len(trial)


def test_a_chunk_throttled_past_the_policy_stops_the_push_and_says_what_was_committed(
    trial: list[JSON], server: FaultServer
) -> None:
    wire = Wire(trial, server.base)
    server.route("POST", "/fhir", wire)

    def busy(handler: FaultHandler, sent: JSON) -> None:
        handler.send_response(429)
        handler.send_header("Retry-After", "3600")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    wire.actions[1] = busy
    waits: list[float] = []
    retry = RetryPolicy(max_retry_after=60)
    with (
        FhirClient(server.base, sleep=waits.append, retry=retry) as client,
        pytest.raises(Exception) as caught,
    ):
        push(client, trial, chunk_size=CHUNK, concurrency=2)
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert waits and all(w == 60 for w in waits)  # capped by the policy, bounded in number
    assert wire.started().count(1) == len(waits) + 1
    assert "gave up after" in str(caught.value)
    committed = wire.committed()
    held = sum(min(CHUNK, len(trial) - c * CHUNK) for c in committed)
    assert f"{numbers(committed).capitalize()} ({held} of 759 resources) were committed" in notes
    # retries leave an earlier attempt's fate unknown (a lost answer may have been a commit)
    assert "chunk 2 may or may not have been committed" in notes
    assert 1 not in committed


def test_ctrl_c_leaves_a_report_of_what_was_committed_and_what_was_in_flight(
    trial: list[JSON], server: FaultServer
) -> None:
    wire = Wire(trial, server.base)
    server.route("POST", "/fhir", wire)
    second_started = threading.Event()

    def hold(handler: FaultHandler, sent: JSON) -> None:
        second_started.wait(10)
        commit(handler, sent)

    wire.actions[1] = hold
    # chunk 3 is never answered before the interrupt (its answer waits on an event nobody sets)
    wire.actions[2] = signal(second_started, after(threading.Event(), commit))
    done: list[int] = []

    def progress(sent: int) -> None:
        done.append(sent)
        if sent > CHUNK and len(done) == 2:  # chunk 2 committed, chunk 3 in flight: Ctrl-C
            signal_module.raise_signal(signal_module.SIGINT)

    with FhirClient(server.base, timeout=15) as client, pytest.raises(KeyboardInterrupt) as caught:
        push(client, trial, chunk_size=CHUNK, concurrency=2, progress=progress)
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert "Chunks 1-2 (100 of 759 resources) were committed" in notes
    assert "chunk 3 may or may not have been committed (interrupted while in flight)" in notes
    assert "were not sent" in notes


def test_inside_a_running_event_loop_the_sync_client_sends_one_at_a_time_and_says_so(
    trial: list[JSON], server: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio

    wire = Wire(trial, server.base)
    server.route("POST", "/fhir", wire)

    async def notebook() -> int:
        with FhirClient(server.base) as client:
            return push(client, trial, chunk_size=CHUNK, concurrency=4).bundles

    with caplog.at_level("WARNING", logger="trialfhir.client"):
        bundles = asyncio.run(notebook())
    assert bundles == -(-len(trial) // CHUNK)
    assert wire.most_in_flight == 1
    assert wire.started() == list(range(bundles))
    assert "an event loop is running in this thread" in caplog.text


def test_the_concurrent_sender_carries_the_clients_settings(
    trial: list[JSON], server: FaultServer
) -> None:
    from adapter.client import BearerAuth

    wire = Wire(trial, server.base)
    server.route("POST", "/fhir", wire)
    with FhirClient(server.base, auth=BearerAuth("s3cret")) as client:
        push(client, trial, chunk_size=CHUNK, concurrency=2)
    assert len(wire.authorization) == -(-len(trial) // CHUNK)
    assert set(wire.authorization) == {"Bearer s3cret"}


def test_a_transport_the_async_sender_cannot_use_is_refused_before_anything_is_sent(
    trial: list[JSON],
) -> None:
    import httpx

    class Recording(httpx.BaseTransport):
        def __init__(self) -> None:
            self.requests: list[httpx.Request] = []

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return httpx.Response(500)

    transport = Recording()
    with (
        FhirClient("http://fhir.test/fhir", transport=transport) as client,
        pytest.raises(ValueError, match="use concurrency=1"),
    ):
        push(client, trial, chunk_size=CHUNK, concurrency=2)
    assert transport.requests == []


def test_ctrl_c_one_at_a_time_says_what_was_committed(
    trial: list[JSON], server: FaultServer
) -> None:
    wire = Wire(trial, server.base)
    server.route("POST", "/fhir", wire)

    def progress(sent: int) -> None:
        if sent == 2 * CHUNK:  # chunk 2 committed: Ctrl-C before chunk 3 is sent
            signal_module.raise_signal(signal_module.SIGINT)

    with FhirClient(server.base) as client, pytest.raises(KeyboardInterrupt) as caught:
        push(client, trial, chunk_size=CHUNK, concurrency=1, progress=progress)
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert wire.started() == [0, 1]
    assert "Chunks 1-2 (100 of 759 resources) were committed; chunks 3-16 were not sent" in notes
    assert "may or may not" not in notes


def test_an_error_of_the_callers_progress_lets_the_chunks_in_flight_finish_and_says_so(
    trial: list[JSON], server: FaultServer
) -> None:
    wire = Wire(trial, server.base)
    server.route("POST", "/fhir", wire)

    def progress(sent: int) -> None:
        if sent >= 3 * CHUNK:
            raise ValueError("the caller's bar broke")

    with FhirClient(server.base) as client, pytest.raises(ValueError, match="bar broke") as caught:
        push(client, trial, chunk_size=CHUNK, concurrency=2, progress=progress)
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    committed = wire.committed()
    assert wire.in_flight == 0 and sorted(wire.answered) == committed
    held = sum(min(CHUNK, len(trial) - c * CHUNK) for c in committed)
    assert f"{numbers(committed).capitalize()} ({held} of 759 resources) were committed" in notes
    assert "were not sent" in notes
    assert len(wire.started()) <= 4  # chunks 1-3, and at most the one in flight with chunk 3
