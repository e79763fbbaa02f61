"""Fuzz: a FHIR server's answers (pytest-httpx), from real HAPI recordings and from a fake server that
holds the FHIR conversion of a valid trial, changed: bodies edited (every type swap, deep nesting, cut
short, not JSON), statuses swapped, `next` links looping or pointing elsewhere.

Properties: a search, a transaction and a whole `pull_study` end in a result or an error of the
client's documented tree (`FhirError`, `StudyNotFound`: the classes the CLI maps to exit codes);
every loop over pages ends (the fake server stops answering after `MAX_REQUESTS` and that is a
failure: the client was about to loop for ever); a transaction result has one entry per entry sent;
pulled resources assemble into tables or a documented error, as from files (test_fuzz_fhir_files).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from pytest_httpx import HTTPXMock

from adapter.client import FhirClient, RetryPolicy
from adapter.transfer import EVENT_TYPES, PATIENT_TYPES, pull_study
from mappings.identity import SID_STUDY

from .fhir_cases import Expect, deep_copy, makes_invalid
from .mutations import (
    RECORDED,
    SMALL,
    ByteEdit,
    JsonEdit,
    Recipe,
    byte_edits,
    documented,
    fuzz_settings,
    json_edits,
    known,
    parse,
    run_guarded,
    to_json,
    undocumented,
    valid_resources,
    valid_trial,
)
from .test_fuzz_fhir_files import assert_tables_hold

BASE = "http://fhir.test/fhir"
MAX_REQUESTS = 60
"""More requests than any case needs (a pull of sdtm_small makes 14): past this the client is looping."""

STATUSES = (
    200,
    201,
    204,
    301,
    400,
    401,
    403,
    404,
    409,
    410,
    412,
    422,
    429,
    500,
    502,
    503,
    504,
    599,
)
NO_RETRY_STATUSES = tuple(s for s in STATUSES if s not in (429, 502, 503, 504))

pytestmark = pytest.mark.httpx_mock(
    assert_all_responses_were_requested=False, can_send_already_matched_responses=True
)


class EndlessRequests(Exception):
    """The fake server's answer to request number MAX_REQUESTS + 1: the client does not stop."""


@dataclass(frozen=True)
class Answer(Recipe):
    """How the answer to the requests `target` names is changed: `edit` (a JSON edit of its body),
    `status`, `bytes` (a byte edit of the body text), `next` (the page's `next` link replaced by one to
    `self`, `first`, `other-origin`, `relative` or `garbage`)."""

    target: str
    how: str
    edit: JsonEdit | None = None
    status: int = 200
    byte_edit: ByteEdit | None = None
    link: str = ""


def changed_body(answer: Answer | None, body: Any, url: str, first_url: str) -> tuple[int, bytes]:
    """The status and body bytes the fake server sends for `body` under `answer`."""
    if answer is None:
        return 200, to_json(body).encode()
    if answer.how == "edit" and answer.edit is not None:
        return 200, to_json(answer.edit.apply(deep_copy(body))).encode()
    if answer.how == "status":
        return answer.status, to_json(body).encode()
    if answer.how == "bytes" and answer.byte_edit is not None:
        return 200, answer.byte_edit.apply(to_json(body).encode())
    if answer.how == "next" and isinstance(body, dict):
        target = {
            "self": url,
            "first": first_url,
            "other-origin": "http://elsewhere.test/fhir?page=2",
            "relative": "?_getpages=x&_getpagesoffset=2",
            "garbage": "http://[::1",
        }[answer.link]
        kept = [
            k
            for k in body.get("link", [])
            if not (isinstance(k, dict) and k.get("relation") == "next")
        ]
        links = [*kept, {"relation": "next", "url": target}]  # in place of the page's own
        return 200, to_json({**body, "link": links}).encode()
    return 200, to_json(body).encode()


@st.composite
def answers(
    draw: st.DrawFn, target: str, body: Any, statuses: tuple[int, ...] = STATUSES
) -> Answer:
    how = draw(st.sampled_from(["edit", "edit", "edit", "status", "bytes", "next"]))
    if how == "edit":
        return Answer(target, how, edit=draw(json_edits(body)))
    if how == "status":
        return Answer(target, how, status=draw(st.sampled_from(statuses)))
    if how == "bytes":
        return Answer(target, how, byte_edit=draw(byte_edits(len(to_json(body)))))
    link = draw(st.sampled_from(["self", "first", "other-origin", "relative", "garbage"]))
    return Answer(target, how, link=link)


@dataclass
class FakeServer:
    """Answers by a function of the request, counts requests, stops the endless."""

    respond: Callable[[httpx.Request], httpx.Response]
    requests: int = 0
    urls: list[str] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        self.urls.append(str(request.url))
        if self.requests > MAX_REQUESTS:
            raise EndlessRequests(f"request {self.requests}: {request.method} {request.url}")
        return self.respond(request)


def arm(httpx_mock: HTTPXMock, server: FakeServer) -> None:
    httpx_mock.reset()
    httpx_mock.add_callback(server, is_reusable=True, is_optional=True)


def fhir_response(status: int, content: bytes) -> httpx.Response:
    return httpx.Response(
        status, content=content, headers={"content-type": "application/fhir+json"}
    )


def assert_bounded(server: FakeServer, error: BaseException | None) -> None:
    assert not isinstance(error, EndlessRequests), (
        f"the client kept requesting ({server.requests} requests, last {server.urls[-1][:120]})"
    )


# --- a search over recorded pages -------------------------------------------------------------------------


def recording(name: str) -> list[dict[str, Any]]:
    exchanges: list[dict[str, Any]] = json.loads((RECORDED / f"{name}.json").read_text())[
        "exchanges"
    ]
    return exchanges


PAGES = recording("searchset_paging")


def same_url(url: str) -> tuple[str, tuple[tuple[str, tuple[str, ...]], ...]]:
    """A URL as the fake server matches it: path and query parameters, in any order or encoding."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    return parts.path, tuple(sorted((k, tuple(v)) for k, v in query.items()))


@st.composite
def search_answers(draw: st.DrawFn) -> Answer:
    page = draw(st.integers(0, len(PAGES) - 1))
    return draw(answers(f"page {page + 1}", PAGES[page]["response"]["body"]))


@fuzz_settings(60)
@known(  # issue 8: page loops, UnsafeNextLink and InvalidResponse without exit codes
    {"answer": Answer("page 3", "next", link="self")},
    {"answer": Answer("page 3", "next", link="first")},
    {"answer": Answer("page 3", "next", link="other-origin")},
    {"answer": Answer("page 2", "bytes", byte_edit=ByteEdit("truncate", 10))},
)
@given(answer=search_answers())
def test_a_search_over_changed_pages_ends_in_resources_or_a_documented_error(
    httpx_mock: HTTPXMock, answer: Answer
) -> None:
    first_url = PAGES[0]["request"]["url"]
    pages = {
        same_url(e["request"]["url"]): (n, e["response"]["body"]) for n, e in enumerate(PAGES, 1)
    }

    def respond(request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if same_url(url) not in pages:
            outcome = {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "not-found"}],
            }
            return fhir_response(404, to_json(outcome).encode())
        number, body = pages[same_url(url)]
        changed = answer if answer.target == f"page {number}" else None
        return fhir_response(*changed_body(changed, body, url, first_url))

    server = FakeServer(respond)
    arm(httpx_mock, server)
    query = parse_qs(urlsplit(first_url).query)
    retry = RetryPolicy(max_attempts=2, random=lambda: 0.0)
    with FhirClient(BASE, retry=retry, sleep=lambda _: None) as client:
        search = client.search("Organization").where(identifier=query["identifier"][0])
        found, error = run_guarded(lambda: search.count(2).sort("_id").all())
    event(f"search: {type(error).__name__ if error else 'resources'}")
    assert_bounded(server, error)
    if error is not None:
        assert documented(error), undocumented(error)
        return
    assert isinstance(found, list) and all(isinstance(r, dict) for r in found)
    if answer.how == "next" and answer.link in ("self", "first"):
        pytest.fail(
            f"a `next` link back to {answer.link} was followed into a quiet stop, not an error"
        )


# --- a transaction over a recorded answer -------------------------------------------------------------------

TRANSACTION = recording("transaction_conditional_first")[0]


@fuzz_settings(60)
@known(  # issue 8 (5): a transaction answer short of entries; a wrongly shaped one
    {"answer": Answer("transaction", "edit", edit=JsonEdit(("entry", 1), "delete"))},
    {"answer": Answer("transaction", "edit", edit=JsonEdit(("entry",), "replace", "null", None))},
    {"answer": Answer("transaction", "edit", edit=JsonEdit(("entry",), "replace", "true", True))},
)
@given(answer=answers("transaction", TRANSACTION["response"]["body"]))
def test_a_changed_transaction_answer_is_a_result_entry_for_entry_or_a_documented_error(
    httpx_mock: HTTPXMock, answer: Answer
) -> None:
    body = TRANSACTION["response"]["body"]

    def respond(request: httpx.Request) -> httpx.Response:
        return fhir_response(*changed_body(answer, body, str(request.url), BASE))

    server = FakeServer(respond)
    arm(httpx_mock, server)
    sent = TRANSACTION["request"]["body"]
    retry = RetryPolicy(max_attempts=2, random=lambda: 0.0)
    with FhirClient(BASE, retry=retry, sleep=lambda _: None) as client:
        result, error = run_guarded(lambda: client.transaction(sent))
    event(f"transaction: {type(error).__name__ if error else 'result'}")
    assert_bounded(server, error)
    if error is not None:
        assert documented(error), undocumented(error)
        return
    assert len(result.entries) == len(sent["entry"]), (
        f"a transaction answer with {len(result.entries)} entries for {len(sent['entry'])} sent was accepted"
    )


# --- a whole pull from a fake server holding a valid trial ---------------------------------------------------


def trial_server_state() -> dict[str, list[dict[str, Any]]]:
    """sdtm_small's resources by type (as the fake server stores them)."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for line in valid_resources(SMALL):
        resource = parse(line)
        by_type.setdefault(resource["resourceType"], []).append(resource)
    return by_type


STORE = trial_server_state()
PULLED_TYPES = ("ResearchStudy", "ResearchSubject", *PATIENT_TYPES, *EVENT_TYPES)


def searchset(matches: list[Any], included: list[Any] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    entries = [{"resource": r, "search": {"mode": "match"}} for r in matches]
    entries += [{"resource": r, "search": {"mode": "include"}} for r in included]
    return {"resourceType": "Bundle", "type": "searchset", "total": len(matches), "entry": entries}


def trial_search(request: httpx.Request) -> tuple[str, dict[str, Any]]:
    """The resource type searched and the valid searchset the fake server answers with."""
    parts = urlsplit(str(request.url))
    resource_type = parts.path.rsplit("/", 1)[-1]
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    resources = STORE.get(resource_type, [])
    if resource_type == "ResearchStudy":
        return resource_type, searchset(resources)
    if resource_type == "ResearchSubject":
        return resource_type, searchset(resources, STORE.get("Patient", []))
    wanted = set(query.get("subject", "").split(","))
    found = [r for r in resources if (r.get("subject") or {}).get("reference") in wanted]
    return resource_type, searchset(found)


def valid_answers() -> dict[str, dict[str, Any]]:
    """The valid searchset for each type a pull asks for (the edit targets)."""
    answers_by_type: dict[str, dict[str, Any]] = {}
    patients = ",".join(f"Patient/{p['id']}" for p in STORE["Patient"])
    for resource_type in PULLED_TYPES:
        request = httpx.Request("GET", f"{BASE}/{resource_type}?subject={patients}")
        answers_by_type[resource_type] = trial_search(request)[1]
    return answers_by_type


VALID_ANSWERS = valid_answers()


@st.composite
def pull_answers(draw: st.DrawFn, statuses: tuple[int, ...] = STATUSES) -> Answer | None:
    if draw(st.integers(0, 9)) == 0:
        return None  # the unchanged server: the pull must give the trial back
    target = draw(st.sampled_from(PULLED_TYPES))
    return draw(answers(target, VALID_ANSWERS[target], statuses))


def trial_server(answer: Answer | None) -> FakeServer:
    def respond(request: httpx.Request) -> httpx.Response:
        resource_type, body = trial_search(request)
        changed = answer if answer is not None and answer.target == resource_type else None
        return fhir_response(*changed_body(changed, body, str(request.url), str(request.url)))

    return FakeServer(respond)


def expectation(answer: Answer | None) -> Expect:
    expect = Expect()
    if answer is None:
        return expect
    edit = answer.edit if answer.how == "edit" else None
    if edit is not None and makes_invalid(VALID_ANSWERS[answer.target], edit):
        expect.invalid = True
        return expect
    expect.content_kept = False
    expect.rows_may_go = True
    return expect


def null_in_first_resource(*path: str | int) -> JsonEdit:
    return JsonEdit(("entry", 0, "resource", *path), "replace", "null", None)


@fuzz_settings(40)
@known(  # issue 8: wrongly shaped FHIR, page loops; searchsets of the wrong shape, or entries dropped
    {"answer": Answer("ResearchStudy", "edit", edit=null_in_first_resource("arm"))},
    {"answer": Answer("ResearchStudy", "next", link="self")},
    {"answer": Answer("ResearchStudy", "edit", edit=JsonEdit(("entry",), "replace", "true", True))},
    {"answer": Answer("ResearchSubject", "edit", edit=JsonEdit(("entry", 0, "resource"), "wrap"))},
    {
        "answer": Answer(
            "Observation", "edit", edit=JsonEdit(("entry", 0, "resource"), "replace", "true", True)
        )
    },
)
@given(answer=pull_answers())
def test_a_pull_from_a_changed_server_ends_in_resources_that_assemble_or_a_documented_error(
    httpx_mock: HTTPXMock, answer: Answer | None
) -> None:
    server = trial_server(answer)
    arm(httpx_mock, server)
    options: dict[str, Any] = {"retry": RetryPolicy(max_attempts=2, random=lambda: 0.0)}

    async def no_wait(_: float) -> None:
        return None

    options["sleep"] = no_wait
    result, error = run_guarded(
        lambda: pull_study(BASE, f"{SID_STUDY}|DALAKAS1993", client_options=options)
    )
    event(f"pull: {type(error).__name__ if error else 'resources'}")
    assert_bounded(server, error)
    if error is not None:
        assert documented(error), undocumented(error)
        return
    if answer is None:
        assert len(result.resources) == sum(len(v) for k, v in STORE.items() if k != "CodeSystem")
    with tempfile.TemporaryDirectory() as scratch:
        assert_tables_hold(
            list(result.resources), valid_trial(SMALL), expectation(answer), Path(scratch)
        )
