"""The no-I/O core: base URLs, query encoding, paging-link origin checks, Retry-After, backoff."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from adapter.client import (
    FhirVersionMismatch,
    RetryPolicy,
    UnsafeNextLink,
    parse_retry_after,
    token,
)
from adapter.client._core import ClientCore, normalise_base_url
from adapter.fhir_query import encode_query, search_pairs


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://h/fhir", "http://h/fhir/"),
        ("http://h/fhir/", "http://h/fhir/"),
        ("  https://H.example:8443/base//  ", "https://h.example:8443/base/"),
        ("http://h", "http://h/"),
    ],
)
def test_base_url_is_normalised_to_one_trailing_slash(given: str, expected: str) -> None:
    assert str(normalise_base_url(given)) == expected


@pytest.mark.parametrize("bad", ["ftp://h/fhir", "/fhir", "http://h/fhir?x=1", "http://h/fhir#f"])
def test_base_url_must_be_plain_http(bad: str) -> None:
    with pytest.raises(ValueError):
        normalise_base_url(bad)


def test_pipe_plus_and_space_are_percent_encoded() -> None:
    query = encode_query(
        [("identifier", "urn:trial:usubjid|DM 001"), ("date", "ge2020-01-01T10:00:00+01:00")]
    )
    assert query == ("identifier=urn:trial:usubjid%7CDM%20001&date=ge2020-01-01T10:00:00%2B01:00")


def test_modifiers_in_names_stay_readable() -> None:
    assert encode_query([("_has:Observation:patient:code", "a,b")]) == (
        "_has:Observation:patient:code=a,b"
    )


def test_token_escapes_fhir_special_characters() -> None:
    assert token("urn:sys", "a|b,c$d\\e") == "urn:sys|a\\|b\\,c\\$d\\\\e"
    assert token(None, "x") == "x"
    assert token("", "x") == "|x"


def test_typed_search_values() -> None:
    pairs = search_pairs(
        {"birthdate": dt.date(1990, 4, 1), "active": True, "_count": 10, "code": ["a", "b"]}
    )
    assert pairs == [
        ("birthdate", "1990-04-01"),
        ("active", "true"),
        ("_count", "10"),
        ("code", "a"),
        ("code", "b"),
    ]


def test_hapi_getpages_link_is_followed_exactly_as_given() -> None:
    core = ClientCore("http://h:8080/fhir")
    link = "http://h:8080/fhir?_getpages=3f1c&_getpagesoffset=20&_count=20&_bundletype=searchset"
    assert str(core.resolve_link(link)) == link


def test_relative_next_link_resolves_against_the_base() -> None:
    core = ClientCore("http://h:8080/fhir")
    assert str(core.resolve_link("Patient?page=2")) == "http://h:8080/fhir/Patient?page=2"


@pytest.mark.parametrize(
    "link",
    [
        "http://evil.test/fhir?_getpages=x",
        "https://h:8080/fhir?_getpages=x",  # other scheme
        "http://h:9090/fhir?_getpages=x",  # other port
        "//evil.test/fhir?x=1",  # scheme-relative
    ],
)
def test_next_link_to_another_origin_is_refused(link: str) -> None:
    core = ClientCore("http://h:8080/fhir")
    with pytest.raises(UnsafeNextLink) as info:
        core.resolve_link(link)
    assert "_getpages" not in str(info.value) and "x=1" not in str(info.value)


def test_default_ports_count_as_the_same_origin() -> None:
    core = ClientCore("https://h/fhir")
    assert core.resolve_link("https://h:443/fhir?p=2").host == "h"


def test_retry_after_in_seconds_and_as_http_date() -> None:
    now = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_backoff_is_exponential_with_full_jitter() -> None:
    top = RetryPolicy(backoff_base=0.5, max_backoff=4.0, random=lambda: 1.0)
    assert [top.backoff(n) for n in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    bottom = RetryPolicy(random=lambda: 0.0)
    assert bottom.backoff(3) == 0.0


@pytest.mark.parametrize("version", ["4.0.0", "4.0.1", "4.0"])
def test_r4_versions_are_accepted(version: str) -> None:
    assert ClientCore.check_fhir_version({"fhirVersion": version}) == version


@pytest.mark.parametrize("version", ["3.0.2", "4.3.0", "5.0.0", None])
def test_other_versions_are_refused(version: str | None) -> None:
    with pytest.raises(FhirVersionMismatch):
        ClientCore.check_fhir_version({"fhirVersion": version})


def test_ids_and_types_cannot_inject_paths() -> None:
    core = ClientCore("http://h/fhir")
    with pytest.raises(ValueError):
        core.read("Patient", "../metadata")
    with pytest.raises(ValueError):
        core.read("Patient/x", "1")
    assert core.read("Patient", "dm-001.a").url == httpx.URL("http://h/fhir/Patient/dm-001.a")


@pytest.mark.parametrize("bad_id", ["abc\n", "a/b", "", "x" * 65, "a b", "a?b"])
def test_bad_ids_are_refused(bad_id: str) -> None:
    with pytest.raises(ValueError):
        ClientCore("http://h/fhir").read("Patient", bad_id)
