"""A tidy table from a FHIR search, for researchers: one row per result, through the rules of the
profile-free path (`mappings.foreign`: the VS/LB rows of Observations with their LOINC tables, MH of
Conditions, CM of MedicationRequests), so a value here is the value that path puts in its tables.

    df = search_table("https://hapi.example.org/fhir", "Observation?code=http://loinc.org|29463-7")
    table = tabulate_search(url, "Observation?category=laboratory")   # rows, report, left out
    table.write_csv("weights.csv")                                      # refuses to clobber a file

Columns (`COLUMNS`), every cell text as the mapping writes it: `subject` (the Patient as `Patient/id`),
`domain`, `testcd`, `test`, `code`, `system`, `value` (as written), `unit`, `std_value`, `std_unit`,
`date` (zone offset left out, as in every SDTM table), `source` (`Type/id` of the resource).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final

from adapter.client import AsyncFhirClient, InvalidResponse
from adapter.cohorts import (
    DEFAULT_MAX_DURATION,
    InvalidSelection,
    PullTimedOut,
    SearchQuery,
    local_id,
    parse_search,
    read_by_ids,
)
from mappings.errors import ExitCode, TrialfhirError
from mappings.foreign import COLUMNS as DOMAIN_COLUMNS
from mappings.foreign import ForeignOptions, MappingReport, map_foreign

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "COLUMNS",
    "SUPPORTED",
    "CsvOutputRefused",
    "SearchTable",
    "check_query",
    "search_table",
    "tabulate_search",
    "tabulate_search_async",
]

JSON = dict[str, Any]

COLUMNS: Final = (
    "subject",
    "domain",
    "testcd",
    "test",
    "code",
    "system",
    "value",
    "unit",
    "std_value",
    "std_unit",
    "date",
    "source",
)

SUPPORTED: Final[dict[str, tuple[str, ...]]] = {
    "Observation": ("VS", "LB"),
    "Condition": ("MH",),
    "MedicationRequest": ("CM",),
}
"""The resource types a search table takes, and the domains of the profile-free mapping its rows
come from."""

_FROM_DOMAIN: Final[dict[str, dict[str, str]]] = {
    # tidy column -> the domain's variable ("" : empty for that domain)
    "VS": {
        "testcd": "VSTESTCD", "test": "VSTEST", "code": "VSLOINC", "value": "VSORRES",
        "unit": "VSORRESU", "std_value": "VSSTRESC", "std_unit": "VSSTRESU", "date": "VSDTC",
        "source": "VSSRCID",
    },
    "LB": {
        "testcd": "LBTESTCD", "test": "LBTEST", "code": "LBLOINC", "value": "LBORRES",
        "unit": "LBORRESU", "std_value": "LBSTRESC", "std_unit": "LBSTRESU", "date": "LBDTC",
        "source": "LBSRCID",
    },
    "MH": {
        "test": "MHTERM", "code": "MHCODE", "system": "MHCODSYS", "date": "MHSTDTC",
        "source": "MHSRCID",
    },
    "CM": {
        "test": "CMTRT", "code": "CMCODE", "system": "CMCODSYS", "value": "CMDOSE",
        "unit": "CMDOSU", "date": "CMSTDTC", "source": "CMSRCID",
    },
}  # fmt: skip
LOINC: Final = "http://loinc.org"
_STUDY: Final = "SEARCH"  # the mapping needs a STUDYID to take Patients as subjects; never shown


class CsvOutputRefused(TrialfhirError):
    """The CSV file cannot be written: it exists (and `force` was not given), it is not a regular
    file, or its folder is missing or cannot be written. Nothing was changed."""

    code: ClassVar[str] = "csv_output_refused"
    exit_code: ClassVar[ExitCode] = ExitCode.OUTPUT_REFUSED

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        super().__init__(f"--out {path}: {reason}")


@dataclass
class SearchTable:
    """The rows of a search table (every cell text), the mapping report of what the search gave,
    how many resources matched, and why matches gave no row (reason -> count)."""

    resource_type: str
    rows: list[tuple[str, ...]] = field(default_factory=list)
    report: MappingReport = field(default_factory=MappingReport)
    matched: int = 0
    left_out: dict[str, int] = field(default_factory=dict)
    notes: dict[str, int] = field(default_factory=dict)
    columns: tuple[str, ...] = COLUMNS

    @property
    def tabulated(self) -> int:
        """Matches that gave at least one row."""
        return self.matched - sum(self.left_out.values())

    def to_frame(self) -> pd.DataFrame:
        """The rows as a pandas DataFrame, every column text (`pd.to_numeric(df["value"])` for
        numbers: a value such as `<5` stays as written)."""
        import pandas as pd

        return pd.DataFrame.from_records(self.rows, columns=list(self.columns))

    def write_csv(self, path: str | Path, *, force: bool = False) -> Path:
        """Write the table as CSV (UTF-8, a header, `\\n`, minimal quoting) into a temporary file
        beside `path`, then move it into place: an existing file is refused unless `force`
        (then replaced whole), and a failure leaves `path` as it was.

        Raises:
            CsvOutputRefused: `path` exists (without `force`) or is not a regular file, its folder is
                missing, or writing fails (the message names the reason).
        """
        target = Path(path)
        if os.path.lexists(target):
            if target.is_symlink() or not target.is_file():
                raise CsvOutputRefused(
                    target, "exists and is not a regular file; nothing was changed"
                )
            if not force:
                raise CsvOutputRefused(
                    target, "exists; pass --force to replace it (nothing was changed)"
                )
        folder = target.parent
        if not folder.is_dir():
            raise CsvOutputRefused(target, f"its folder {folder} does not exist")
        try:
            handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.partial-", dir=folder)
        except OSError as exc:
            raise CsvOutputRefused(
                target, f"cannot write in {folder} ({exc.strerror or exc})"
            ) from exc
        try:
            with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
                writer = csv.writer(out, lineterminator="\n")
                writer.writerow(self.columns)
                writer.writerows(self.rows)
            if force:
                os.replace(temporary, target)
            else:
                os.link(temporary, target)  # fails if a file appeared meanwhile: never clobbers
                os.unlink(temporary)
        except FileExistsError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise CsvOutputRefused(
                target, "was created by someone else meanwhile; nothing was changed"
            ) from exc
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise CsvOutputRefused(
                target, f"cannot be written ({exc.strerror or exc}); nothing was changed"
            ) from exc
        return target


def check_query(query: SearchQuery | str) -> SearchQuery:
    parsed = parse_search(query) if isinstance(query, str) else query
    if parsed.resource_type not in SUPPORTED:
        raise InvalidSelection(
            f"a search table takes {', '.join(SUPPORTED)} searches, not {parsed.resource_type}"
        )
    return parsed


async def tabulate_search_async(
    client: AsyncFhirClient,
    query: SearchQuery | str,
    *,
    page_size: int = 500,
    concurrency: int = 8,
    progress: Callable[[int], None] | None = None,
) -> SearchTable:
    """Run the search (every page), read the Patients its matches refer to (and the Medications a
    MedicationRequest refers to) by id, and map them with `mappings.foreign.map_foreign`.

    Raises:
        InvalidSelection: not a search of a supported type.
        FhirError: from the client (a refused search is `BadRequest` with the server's outcome).
    """
    parsed = check_query(query)
    await client.capabilities()
    search = client.search(parsed.resource_type).where(list(parsed.params))
    if parsed.value_of("_count") is None:
        search = search.count(page_size)
    matches: list[JSON] = []
    context: dict[str, JSON] = {}
    async for entry in search.entries():
        resource = entry.resource
        if entry.is_match:
            if resource.get("resourceType") != parsed.resource_type:
                raise InvalidResponse(
                    f"the server answered a {parsed.resource_type} search with a "
                    f"{resource.get('resourceType')}"
                )
            matches.append(resource)
            if progress is not None:
                progress(1)
        elif resource.get("resourceType") in ("Patient", "Medication") and isinstance(
            resource.get("id"), str
        ):
            context[f"{resource['resourceType']}/{resource['id']}"] = resource  # an _include
    for rtype, element in (("Patient", "subject"), ("Medication", "medicationReference")):
        wanted = sorted(
            {
                rid
                for m in matches
                if isinstance(m.get(element), dict)
                and (rid := local_id(m[element].get("reference"), client.base_url, rtype))
                and f"{rtype}/{rid}" not in context
            }
        )
        if wanted:
            found = await read_by_ids(client, rtype, wanted, concurrency)
            context.update({f"{rtype}/{rid}": r for rid, r in found.items()})
    return tabulate(parsed.resource_type, matches, list(context.values()))


def tabulate(resource_type: str, matches: Sequence[JSON], context: Sequence[JSON]) -> SearchTable:
    """The search table of `matches` (resources of `resource_type`) with the Patients and
    Medications they refer to (`context`), through `map_foreign`. Pure; sorted by subject, date,
    code, source."""
    mapping = map_foreign([*matches, *context], ForeignOptions(study=_STUDY, subjid="id"))
    dm = mapping.tables["DM"]
    usubjid, srcid = dm.columns.index("USUBJID"), dm.columns.index("DMSRCID")
    subject_of = {row[usubjid]: row[srcid] for row in dm.rows}
    rows: list[tuple[str, ...]] = []
    for domain in SUPPORTED[resource_type]:
        table = mapping.tables[domain]
        where = {name: table.columns.index(name) for name in DOMAIN_COLUMNS[domain]}
        chosen = _FROM_DOMAIN[domain]
        for row in table.rows:
            cells = {tidy: row[where[variable]] for tidy, variable in chosen.items()}
            cells["subject"] = subject_of.get(row[where["USUBJID"]], "")
            cells["domain"] = domain
            if domain in ("VS", "LB"):
                cells["system"] = LOINC
            rows.append(tuple(cells.get(c, "") for c in COLUMNS))
    at = {name: COLUMNS.index(name) for name in ("subject", "date", "code", "source")}
    rows.sort(key=lambda r: (r[at["subject"]], r[at["date"]], r[at["code"]], r[at["source"]], r))
    account = mapping.report.types.get(resource_type)
    left_out = {k: v.count for k, v in account.skipped.items()} if account else {}
    notes = {k: v.count for k, v in account.notes.items()} if account else {}
    return SearchTable(resource_type, rows, mapping.report, len(matches), left_out, notes)


def tabulate_search(
    server: str,
    query: SearchQuery | str,
    *,
    client_options: dict[str, Any] | None = None,
    max_duration: float = DEFAULT_MAX_DURATION,
    progress: Callable[[int], None] | None = None,
) -> SearchTable:
    """Synchronous front of `tabulate_search_async` on a new `AsyncFhirClient(server,
    **client_options)`, within `max_duration` seconds (`PullTimedOut`)."""
    parsed = check_query(query)  # a bad query is refused before any connection

    async def run() -> SearchTable:
        async with AsyncFhirClient(server, **(client_options or {})) as client:
            budget = asyncio.timeout(max_duration)
            try:
                async with budget:
                    return await tabulate_search_async(client, parsed, progress=progress)
            except TimeoutError as exc:
                if budget.expired():
                    raise PullTimedOut(max_duration) from exc
                raise

    return asyncio.run(run())


def search_table(
    server: str,
    query: SearchQuery | str,
    *,
    client_options: dict[str, Any] | None = None,
    max_duration: float = DEFAULT_MAX_DURATION,
) -> pd.DataFrame:
    """One call: the search table of `query` on `server` as a pandas DataFrame (`COLUMNS`, every
    cell text). `tabulate_search` gives the same rows with the report and what was left out.

        >>> df = search_table("http://localhost:8080/fhir", "Observation?code=http://loinc.org|29463-7")
        >>> df[["subject", "value", "unit", "date"]]
    """
    return tabulate_search(
        server, query, client_options=client_options, max_duration=max_duration
    ).to_frame()
