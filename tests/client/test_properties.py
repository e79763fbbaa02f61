"""Properties of the no-I/O pieces, over generated input: query encoding, token escaping, backoff."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from hypothesis import given
from hypothesis import strategies as st

from adapter.client import RetryPolicy, token
from adapter.client._query import encode_query

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
