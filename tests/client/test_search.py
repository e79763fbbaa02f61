"""Searching and paging: HAPI _getpages links, includes, page caps, totals, foreign next links."""

from __future__ import annotations

import asyncio

import pytest
from pytest_httpx import HTTPXMock

from adapter.client import (
    AsyncFhirClient,
    FhirClient,
    InvalidResponse,
    PageLimitReached,
    PagingLoop,
    ResourceNotFound,
    UnsafeNextLink,
    token,
)

from .conftest import BASE, outcome, patient, searchset


def getpages(offset: int) -> str:
    # What HAPI emits: the link points at the server base, not at /Patient.
    return f"{BASE}?_getpages=9d7c-uuid&_getpagesoffset={offset}&_count=2&_bundletype=searchset"


def add_three_pages(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=f"{BASE}/Patient?_count=2",
        json=searchset([patient("a"), patient("b")], next_url=getpages(2)),
    )
    httpx_mock.add_response(
        url=getpages(2), json=searchset([patient("c"), patient("d")], next_url=getpages(4))
    )
    httpx_mock.add_response(url=getpages(4), json=searchset([patient("e")]))


def test_iterating_a_search_follows_every_hapi_getpages_link(httpx_mock: HTTPXMock) -> None:
    add_three_pages(httpx_mock)
    with FhirClient(BASE) as client:
        ids = [p["id"] for p in client.search("Patient").count(2)]
    assert ids == ["a", "b", "c", "d", "e"]
    urls = [str(r.url) for r in httpx_mock.get_requests()]
    assert urls[1:] == [getpages(2), getpages(4)]


def test_pages_are_fetched_lazily(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=f"{BASE}/Patient?_count=2",
        json=searchset([patient("a"), patient("b")], next_url=getpages(2)),
    )
    with FhirClient(BASE) as client:
        search = client.search("Patient").count(2)
        assert len(httpx_mock.get_requests()) == 0
        first_two = [p["id"] for _, p in zip(range(2), search, strict=False)]
    assert first_two == ["a", "b"]
    assert len(httpx_mock.get_requests()) == 1


def test_search_objects_are_immutable(httpx_mock: HTTPXMock) -> None:
    with FhirClient(BASE) as client:
        base = client.search("Patient")
        narrowed = base.where(gender="female").count(10)
    assert base.query_pairs() == []
    assert narrowed.query_pairs() == [("gender", "female"), ("_count", "10")]


def test_system_value_is_sent_percent_encoded(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(json=searchset([]))
    with FhirClient(BASE) as client:
        client.search("Patient").where(identifier=token("urn:trial:usubjid", "DM-01")).all()
    request = httpx_mock.get_request()
    assert request is not None
    assert request.url.raw_path == b"/fhir/Patient?identifier=urn:trial:usubjid%7CDM-01"


def test_chained_has_include_revinclude_summary_and_total_params(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(json=searchset([]))
    with FhirClient(BASE) as client:
        (
            client.search("Patient")
            .where({"subject:Patient.identifier": "s|1"}, general_practitioner__missing=False)
            .has("ResearchSubject:individual:study", "ResearchStudy/st")
            .include("Patient:organization")
            .revinclude("ResearchSubject:individual", iterate=True)
            .total_mode("accurate")
            .all()
        )
    request = httpx_mock.get_request()
    assert request is not None
    assert list(request.url.params.multi_items()) == [
        ("subject:Patient.identifier", "s|1"),
        ("general_practitioner:missing", "false"),
        ("_has:ResearchSubject:individual:study", "ResearchStudy/st"),
        ("_include", "Patient:organization"),
        ("_revinclude:iterate", "ResearchSubject:individual"),
        ("_total", "accurate"),
    ]


def test_included_resources_are_told_apart_from_matches(httpx_mock: HTTPXMock) -> None:
    subject = {
        "resourceType": "ResearchSubject",
        "id": "rs1",
        "individual": {"reference": "Patient/a"},
    }
    httpx_mock.add_response(json=searchset([subject], include=[patient("a")]), is_reusable=True)
    with FhirClient(BASE) as client:
        search = client.search("ResearchSubject").include("ResearchSubject:individual")
        matches = search.all()
        modes = [(e.resource["resourceType"], e.mode) for e in search.entries()]
        included = search.included()
    assert [r["id"] for r in matches] == ["rs1"]
    assert modes == [("ResearchSubject", "match"), ("Patient", "include")]
    assert [r["id"] for r in included] == ["a"]


def test_a_next_link_to_another_host_is_refused_and_never_requested(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        json=searchset(
            [patient("a")], next_url="http://evil.test/fhir?_getpages=x&_getpagesoffset=1"
        )
    )
    seen: list[str] = []
    with FhirClient(BASE, auth=None) as client, pytest.raises(UnsafeNextLink):
        for p in client.search("Patient"):
            seen.append(p["id"])
    assert seen == ["a"]
    assert all(r.url.host == "fhir.test" for r in httpx_mock.get_requests())


def test_reaching_the_page_cap_is_an_error_not_a_quiet_stop(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=f"{BASE}/Patient?_count=2",
        json=searchset([patient("a"), patient("b")], next_url=getpages(2)),
    )
    httpx_mock.add_response(
        url=getpages(2), json=searchset([patient("c"), patient("d")], next_url=getpages(4))
    )
    pages = []
    with FhirClient(BASE) as client, pytest.raises(PageLimitReached) as info:
        for page in client.search("Patient").count(2).max_pages(2).pages():
            pages.append(page)
    assert [p.number for p in pages] == [1, 2]  # the third page is never asked for
    assert len(httpx_mock.get_requests()) == 2
    assert info.value.limit == 2
    assert "more than 2 pages" in str(info.value)


def test_the_client_page_cap_applies_to_every_search(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=f"{BASE}/Patient?_count=2",
        json=searchset([patient("a"), patient("b")], next_url=getpages(2)),
    )
    with FhirClient(BASE, max_pages=1) as client, pytest.raises(PageLimitReached):
        client.search("Patient").count(2).all()


def test_a_next_link_seen_before_is_a_loop(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=f"{BASE}/Patient?_count=2", json=searchset([patient("a")], next_url=getpages(2))
    )
    httpx_mock.add_response(url=getpages(2), json=searchset([patient("b")], next_url=getpages(4)))
    httpx_mock.add_response(url=getpages(4), json=searchset([patient("c")], next_url=getpages(2)))
    with FhirClient(BASE) as client, pytest.raises(PagingLoop) as info:
        client.search("Patient").count(2).all()
    assert (info.value.page, info.value.first_seen) == (4, 2)
    assert len(httpx_mock.get_requests()) == 3


def test_a_next_link_back_to_the_first_page_is_a_loop(httpx_mock: HTTPXMock) -> None:
    first = f"{BASE}/Patient?_count=2"
    httpx_mock.add_response(url=first, json=searchset([patient("a")], next_url=first))
    with FhirClient(BASE) as client, pytest.raises(PagingLoop):
        client.search("Patient").count(2).all()
    assert len(httpx_mock.get_requests()) == 1


@pytest.mark.parametrize(
    "bundle",
    [
        {"resourceType": "Bundle", "type": "searchset", "entry": {"resource": {}}},
        {"resourceType": "Bundle", "type": "searchset", "entry": ["x"]},
        {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": "Patient"}]},
        {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": {"id": "a"}}]},
        {"resourceType": "Bundle", "type": "searchset", "link": "next"},
        {"resourceType": "Bundle", "type": "searchset", "entry": [{"search": []}]},
        ["not", "an", "object"],
    ],
)
def test_a_wrongly_shaped_page_is_an_invalid_response(
    httpx_mock: HTTPXMock, bundle: object
) -> None:
    httpx_mock.add_response(url=f"{BASE}/Patient", json=bundle)
    with FhirClient(BASE) as client, pytest.raises(InvalidResponse):
        client.search("Patient").all()


def test_limit_stops_after_n_matches(httpx_mock: HTTPXMock) -> None:
    # only the first two pages are asked for
    httpx_mock.add_response(
        url=f"{BASE}/Patient?_count=2",
        json=searchset([patient("a"), patient("b")], next_url=getpages(2)),
    )
    httpx_mock.add_response(
        url=getpages(2), json=searchset([patient("c"), patient("d")], next_url=getpages(4))
    )
    with FhirClient(BASE) as client:
        ids = [p["id"] for p in client.search("Patient").count(2).limit(3)]
    assert ids == ["a", "b", "c"]


def test_total_uses_summary_count(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=f"{BASE}/Observation?subject=Patient%2Fa&_summary=count",
        json={"resourceType": "Bundle", "type": "searchset", "total": 42},
    )
    with FhirClient(BASE) as client:
        assert client.search("Observation").where(subject="Patient/a").count(50).total() == 42


def test_total_without_bundle_total_is_an_invalid_response(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(json={"resourceType": "Bundle", "type": "searchset"})
    with FhirClient(BASE) as client, pytest.raises(InvalidResponse):
        client.search("Observation").total()


def test_search_that_finds_nothing_is_not_a_404(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{BASE}/Patient?identifier=s%7Cnone&_count=1", json=searchset([]))
    httpx_mock.add_response(url=f"{BASE}/Patient/none", status_code=404, json=outcome("not found"))
    with FhirClient(BASE) as client:
        assert client.search("Patient").where(identifier="s|none").first() is None
        with pytest.raises(ResourceNotFound):
            client.read("Patient", "none")


def test_outcome_entries_are_not_matches(httpx_mock: HTTPXMock) -> None:
    bundle = searchset([patient("a")])
    bundle["entry"].append(
        {"resource": outcome("warn", severity="warning"), "search": {"mode": "outcome"}}
    )
    httpx_mock.add_response(json=bundle)
    with FhirClient(BASE) as client:
        assert [r["resourceType"] for r in client.search("Patient")] == ["Patient"]


def test_a_page_that_is_not_a_bundle_is_reported(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(json=patient("a"))
    with FhirClient(BASE) as client, pytest.raises(InvalidResponse):
        client.search("Patient").all()


def test_async_search_pages_the_same_way(httpx_mock: HTTPXMock) -> None:
    add_three_pages(httpx_mock)

    async def run() -> list[str]:
        async with AsyncFhirClient(BASE) as client:
            return [p["id"] async for p in client.search("Patient").count(2)]

    assert asyncio.run(run()) == ["a", "b", "c", "d", "e"]


def test_async_first_and_total(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=f"{BASE}/Patient?gender=male&_count=1", json=searchset([patient("z")])
    )
    httpx_mock.add_response(
        url=f"{BASE}/Patient?gender=male&_summary=count",
        json={"resourceType": "Bundle", "type": "searchset", "total": 1},
    )

    async def run() -> tuple[str | None, int]:
        async with AsyncFhirClient(BASE) as client:
            search = client.search("Patient", gender="male")
            first = await search.first()
            return (first or {}).get("id"), await search.total()

    assert asyncio.run(run()) == ("z", 1)


def test_post_search_sends_the_query_in_a_form_body(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{BASE}/Observation/_search", method="POST", json=searchset([]))
    refs = ",".join(f"Patient/p{i}" for i in range(50))
    with FhirClient(BASE) as client:
        assert client.search("Observation").where(subject=refs).count(100).post().all() == []
    request = httpx_mock.get_request()
    assert request is not None
    assert request.url.query == b""
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.content.startswith(b"subject=Patient/p0,Patient/p1,")


def test_an_injected_transport_replaces_the_network() -> None:
    import httpx

    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json=searchset([patient("m")]))

    with FhirClient(BASE, transport=httpx.MockTransport(handler)) as client:
        assert [p["id"] for p in client.search("Patient")] == ["m"]
    assert seen == ["/fhir/Patient"]


def test_a_search_resumes_from_a_saved_next_link(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=getpages(4), json=searchset([patient("e")]))
    with FhirClient(BASE) as client:
        pages = list(client.search("Patient").resume(getpages(4), page_number=3).pages())
    assert [(p.number, [e.resource["id"] for e in p.entries]) for p in pages] == [(3, ["e"])]


def test_resuming_from_a_foreign_link_is_refused(httpx_mock: HTTPXMock) -> None:
    with FhirClient(BASE) as client, pytest.raises(UnsafeNextLink):
        client.search("Patient").resume("https://elsewhere.test/fhir?_getpages=x").all()
    assert httpx_mock.get_requests() == []
