"""Properties of the no-I/O pieces, over generated input: query encoding, token escaping, backoff."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from hypothesis import given, settings
from hypothesis import strategies as st

from adapter.client import RetryPolicy, token
from adapter.fhir_query import encode_query

CHARS = st.characters(exclude_categories=["Cs"])  # any character but lone surrogates
TEXT = st.text(alphabet=CHARS, max_size=30)
NAMES = st.text(alphabet=CHARS, min_size=1, max_size=20)


@given(st.lists(st.tuples(NAMES, TEXT), max_size=6))
def test_encoded_queries_decode_to_the_same_pairs(pairs: list[tuple[str, str]]) -> None:
    query = encode_query(pairs)
    assert parse_qsl(query, keep_blank_values=True) == pairs if pairs else query == ""


@given(st.lists(st.tuples(NAMES, TEXT), min_size=1, max_size=6))
def test_encoded_queries_hold_no_character_a_server_may_reject_or_misread(
    pairs: list[tuple[str, str]],
) -> None:
    query = encode_query(pairs)
    assert not re.search(r"[|+ #\"<>{}\[\]\\^`\s]", query)
    assert query.isascii()
    assert query.count("&") == len(pairs) - 1


def unescape_token(text: str) -> list[str]:
    parts, current, chars = [], "", iter(text)
    for ch in chars:
        if ch == "\\":
            current += next(chars)
        elif ch == "|":
            parts.append(current)
            current = ""
        else:
            current += ch
    return [*parts, current]


@given(TEXT, TEXT)
def test_token_parts_survive_fhir_escaping(system: str, code: str) -> None:
    assert unescape_token(token(system, code)) == [system, code]


@given(st.integers(min_value=0, max_value=60), st.floats(min_value=0, max_value=1))
def test_backoff_stays_within_zero_and_the_cap(retry: int, draw: float) -> None:
    policy = RetryPolicy(backoff_base=0.5, max_backoff=30.0, random=lambda: draw)
    assert 0.0 <= policy.backoff(retry) <= min(30.0, 0.5 * 2.0**retry)


# -- any answer a server can send ends in a result or InvalidResponse --------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
RESOURCE_TYPES = st.sampled_from(["Patient", "Observation", "OperationOutcome", 7, None])


def mutated_entry() -> st.SearchStrategy[object]:
    """Transaction-response and searchset entries near the real shape, with any part replaced."""
    response = st.fixed_dictionaries(
        {},
        optional={
            "status": st.sampled_from(["201 Created", "200 OK", "404", "OK", ""]) | JSON_VALUES,
            "location": st.sampled_from(["Patient/a/_history/1", "Observation/b", "x"])
            | JSON_VALUES,
            "outcome": JSON_VALUES,
        },
    )
    resource = st.fixed_dictionaries({"resourceType": RESOURCE_TYPES}, optional={"id": JSON_VALUES})
    return (
        st.fixed_dictionaries(
            {},
            optional={
                "response": response | JSON_VALUES,
                "resource": resource | JSON_VALUES,
                "search": st.fixed_dictionaries({}, optional={"mode": JSON_VALUES}) | JSON_VALUES,
            },
        )
        | JSON_VALUES
    )


BUNDLES = st.fixed_dictionaries(
    {"resourceType": st.sampled_from(["Bundle", "Patient"])},
    optional={
        "type": st.sampled_from(["transaction-response", "searchset", "batch-response"])
        | JSON_VALUES,
        "entry": st.lists(mutated_entry(), max_size=3) | JSON_VALUES,
        "link": st.lists(
            st.fixed_dictionaries({"relation": st.just("self"), "url": JSON_VALUES}), max_size=2
        )
        | JSON_VALUES,
    },
)


@settings(deadline=None, max_examples=300)
@given(BUNDLES)
def test_any_transaction_answer_is_read_or_refused(answer: dict[str, object]) -> None:
    from adapter.client import InvalidResponse, parse_bundle_response, transaction_bundle

    sent = transaction_bundle(
        [{"resourceType": "Patient", "id": "a", "identifier": [{"system": "s", "value": "1"}]}]
    )
    try:
        result = parse_bundle_response(answer, sent)
    except InvalidResponse:
        return
    assert len(result.entries) == 1  # whatever is accepted answers the one entry sent


@settings(deadline=None, max_examples=300)
@given(BUNDLES | JSON_VALUES)
def test_any_search_page_is_read_or_refused(body: object) -> None:
    from adapter.client import InvalidResponse
    from adapter.client._search import _as_page

    try:
        page = _as_page(body, 1)
    except InvalidResponse:
        return
    for entry in page.entries:
        assert isinstance(entry.resource.get("resourceType"), str)
    assert page.next_link is None or isinstance(page.next_link, str)
