"""Compare the views' output (as run on Pathling) with the local engine's tables, column by column, by
the exactness `adapter/views/domains.json` documents (shared by the test and the benchmark)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from mappings.sdtm import Trial


def normalise(kind: str, value: str) -> str:
    """The text a column of `kind` is compared on: `number` as a number, `date` to the date part."""
    if value == "" or kind == "exact":
        return value
    if kind == "number":
        try:
            return str(Decimal(value).normalize())
        except InvalidOperation:
            return value
    if kind == "date":
        return value.split("T", 1)[0]
    raise ValueError(f"unknown exactness {kind!r}")


def differences(
    results: dict[str, dict[str, Any]], trial: Trial, spec: dict[str, dict[str, Any]]
) -> list[str]:
    """Every cell where the views' result and the local tables differ beyond the documented
    normalisation (empty list when they agree)."""
    problems: list[str] = []
    for domain, table in trial.items():
        result = results.get(domain)
        if result is None:
            problems.append(f"{domain}: no view result")
            continue
        kinds: dict[str, str] = spec[domain]["columns"]
        columns = result["columns"]
        view_rows = [
            {c: ("" if v is None else v) for c, v in zip(columns, row, strict=True)}
            for row in result["rows"]
        ]
        local_rows = list(table.rows)
        if len(view_rows) != len(local_rows):
            problems.append(
                f"{domain}: {len(view_rows)} rows from the views, {len(local_rows)} local"
            )
            continue
        compared = [c for c in columns if c in table.columns]

        def key(
            row: dict[str, str], kinds: dict[str, str] = kinds, compared: list[str] = compared
        ) -> tuple[str, ...]:
            return tuple(normalise(kinds[c], row.get(c, "")) for c in compared)

        if spec[domain]["row_order"] == "unordered":
            view_rows.sort(key=key)
            local_rows.sort(key=key)
        for index, (got, want) in enumerate(zip(view_rows, local_rows, strict=True), start=1):
            for column in compared:
                kind = kinds[column]
                if kind == "code" and got[column] == "":
                    continue  # documented: an arm code found only in a primitive extension
                if kind == "code":
                    kind = "exact"
                if normalise(kind, got[column]) != normalise(kind, want.get(column, "")):
                    problems.append(
                        f"{domain} row {index} {column} ({kind}): views {got[column]!r}, "
                        f"local {want.get(column, '')!r}"
                    )
    return problems
