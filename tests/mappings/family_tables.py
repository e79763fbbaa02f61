"""What the event-family tests share: tables written inline, and the round-trip check of one family."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import orjson

from mappings.sdtm import DOMAINS, Table, Trial

JSON = dict[str, Any]
Validate = Callable[[dict[str, Any]], None]

FREE_TEXT = 'Perifascicular atrophy, "marked"; fibre Ø reduced'
"""Free text with a comma, double quotes and non-ASCII: it must survive every trip."""


def table(domain: str, columns: str, *rows: str) -> Table:
    """A table from `|`-separated cells (so free text may hold commas)."""
    names = columns.split()
    return Table(domain, names, [dict(zip(names, r.split("|"), strict=True)) for r in rows])


def written(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """The cells a reader gives back: every non-empty one."""
    return [{k: v for k, v in row.items() if v != ""} for row in rows]


def by_key(rows: list[dict[str, str]], seq: str) -> list[dict[str, str]]:
    return sorted(rows, key=lambda r: (r["USUBJID"], int(r[seq])))


class FamilyReader(Protocol):
    def feed(self, resource: JSON) -> bool: ...

    def rows(self) -> dict[str, list[dict[str, str]]]: ...


def assert_family_round_trips(
    to_fhir: Callable[[Trial], Iterator[JSON] | Iterable[JSON]],
    reader: FamilyReader,
    trial: Trial,
    domains: Iterable[str],
) -> list[JSON]:
    """Map `trial` with one family and read it back with its reader: every row of the family's
    `domains` comes back with the same non-empty cells, the reader takes every resource, and nothing
    else comes back (other tables in `trial`, such as VS for doses, are inputs only)."""
    resources = list(to_fhir(trial))
    for resource in resources:
        assert reader.feed(resource)
    back = reader.rows()
    owned = [d for d in domains if d in trial]
    for domain in owned:
        seq = DOMAINS[domain].seq or ""
        assert by_key(back.get(domain, []), seq) == by_key(written(trial[domain].rows), seq)
    assert set(back) <= set(owned)
    return resources


def assert_reading_leaves_resources_untouched(resources: list[JSON], reader: FamilyReader) -> None:
    """Reading back changes no resource, and no two resources share their identifier list (so a
    caller editing one cannot change another)."""
    before = orjson.dumps(resources, default=str)
    for resource in resources:
        reader.feed(resource)
    reader.rows()
    assert orjson.dumps(resources, default=str) == before
    identifiers = [id(r["identifier"]) for r in resources]
    assert len(set(identifiers)) == len(resources)
