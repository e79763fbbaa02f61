"""FHIR search query text: typed values, token escaping, percent-encoding (no I/O, no state).

Outside the client package, like ``adapter.fhir_json``, so that ``adapter.bundles`` (the conditional
URLs of Bundle entries, also written to files) and the client's searches use the same rules without
the files importing the client.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from functools import lru_cache
from typing import Any
from urllib.parse import quote

__all__ = [
    "SearchParams",
    "SearchValue",
    "encode_query",
    "format_search_value",
    "search_pairs",
    "token",
]

SearchValue = str | int | float | Decimal | bool | dt.date | dt.datetime
"""A typed search value: dates become ISO 8601, booleans ``true``/``false``, numbers their text."""

SearchParams = Mapping[str, SearchValue | Sequence[SearchValue]] | Sequence[tuple[str, SearchValue]]
"""Search parameters: a mapping (a sequence value repeats the parameter, i.e. AND) or ordered pairs."""


def token(system: str | None, code: str) -> str:
    """A token search value ``system|code`` with FHIR escaping of ``\\``, ``|``, ``,`` and ``$``.

    ``token(None, "x")`` is a code in any system; ``token("", "x")`` a code with no system.
    """
    escaped = [_escape(part) for part in (system, code) if part is not None]
    return "|".join(escaped) if system is not None else escaped[0]


def _escape(part: str) -> str:
    return part.replace("\\", "\\\\").replace("|", "\\|").replace(",", "\\,").replace("$", "\\$")


def format_search_value(value: SearchValue) -> str:
    """The query-string text of one typed search value (not yet percent-encoded)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def search_pairs(params: SearchParams | None) -> list[tuple[str, str]]:
    """Flatten search parameters into ordered (name, text) pairs."""
    if params is None:
        return []
    pairs: list[tuple[str, str]] = []
    items: Iterable[tuple[str, Any]] = params.items() if isinstance(params, Mapping) else params
    for name, value in items:
        if isinstance(value, list | tuple):
            pairs.extend((name, format_search_value(v)) for v in value)
        else:
            pairs.append((name, format_search_value(value)))
    return pairs


def encode_query(pairs: Iterable[tuple[str, str]]) -> str:
    """Percent-encode (name, value) pairs: ``|`` -> %7C, ``+`` -> %2B, space -> %20; ``:``, ``/`` and ``,`` kept."""
    return "&".join(f"{_quote_name(n)}={_quote_value(v)}" for n, v in pairs)


_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_.~:/,|-]*")
"""A value ``quote(value, safe=":/,")`` leaves as it is but for ``|`` (an identifier's
``system|value`` nearly always): quoted by one ``replace`` instead of urllib's per-character work."""


def _quote_value(value: str) -> str:
    """``quote(value, safe=":/,")``, the common plain case (`_PLAIN_VALUE`) without urllib."""
    if _PLAIN_VALUE.fullmatch(value) is not None:
        return value.replace("|", "%7C")
    return quote(value, safe=":/,")


@lru_cache(maxsize=512)
def _quote_name(name: str) -> str:
    """A parameter name percent-encoded (names repeat: ``identifier`` once per Bundle entry)."""
    return quote(name, safe=":.")
