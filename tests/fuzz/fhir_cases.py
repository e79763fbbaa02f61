"""FHIR-side fuzz cases: the FHIR conversion of a valid trial, changed resource by resource (JSON edits,
duplicates, drops, reordering), and the properties every way of reading FHIR back must keep.

An edit is judged against R4 without a validator, by what it does to a valid resource: a value of
another JSON type, a list where one value belongs (or the reverse), `null`, an empty string, object or
list, NaN or Infinity, a NUL or a lone surrogate, or a date element that is no longer a
FHIR date: each makes the resource invalid R4 (`makes_invalid`). The properties then say:

- invalid R4 is refused (a documented error) or leaves no trace: every row that comes back is a row
  of the original trial, and rows are missing only when the assembler reported resources it skipped;
- a change that keeps the content (reordering, blank lines, an identical duplicate) gives the same
  tables exactly; a duplicate with other content is refused as bad input (exit 3);
- whatever tables come back are written as CSV that reads back with the same cells.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from mappings.sdtm import Trial

from .mutations import (
    DATE_ELEMENTS,
    JSON,
    ODD_VALUES,
    JsonEdit,
    Raw,
    Recipe,
    json_edits,
    parse,
    to_json,
)

FHIR_DATE = re.compile(
    r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
    r"(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])"
    r"(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))?)?)?)?"
)
"""R4's dateTime (and so date and instant shapes) regex: year 0000 is not a year."""


def kind(value: Any) -> str:
    """The JSON kind of `value` as it will be written (a `Raw` by its text)."""
    if isinstance(value, Raw):
        text = value.text
        if text in ("NaN", "Infinity", "-Infinity"):
            return "not-a-number"
        return "array" if text.startswith("[") else "object" if text.startswith("{") else "number"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float) or type(value).__name__ == "DecimalText":
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    return "array"


def _bad_string(key: str, text: str) -> bool:
    if text == "" or "\x00" in text:  # other control characters: R4 says SHOULD not, so allowed
        return True
    if re.search(r"[\ud800-\udfff]", text):
        return True
    is_date = key in DATE_ELEMENTS or key.endswith(("Date", "DateTime", "Instant"))
    return is_date and FHIR_DATE.fullmatch(text) is None


def makes_invalid(document: Any, edit: JsonEdit) -> bool:
    """Whether `edit` turns the valid `document` into something R4 does not allow."""
    if edit.op in ("none", "delete") or not edit.path:
        return False
    parent = document
    for step in edit.path[:-1]:
        parent = parent[step]
    old = parent[edit.path[-1]]
    if edit.op == "wrap":
        return True
    if edit.op == "unwrap":
        return isinstance(old, list) and bool(old)
    new = edit.value
    if kind(new) in ("null", "not-a-number") or kind(new) != kind(old):
        return True
    if isinstance(new, str):
        key = next((s for s in reversed(edit.path) if isinstance(s, str)), "")
        return _bad_string(key, new)
    if isinstance(new, dict | list) and not new:
        return True
    if isinstance(new, Raw) and new.text.startswith(("[[", '{"a":')):
        return True  # nested arrays, or an object where none has a member `a`
    if isinstance(new, list) and isinstance(old, list) and old:
        return kind(new[0]) != kind(old[0])
    return False


# --- changes to a list of resources -----------------------------------------------------------------------


@dataclass(frozen=True)
class EditResource(Recipe):
    index: int
    edit: JsonEdit


@dataclass(frozen=True)
class DuplicateResource(Recipe):
    """Insert a copy of resource `index` (same type and id) right after it, with `edit` made to the
    copy (`None`: an identical copy)."""

    index: int
    edit: JsonEdit | None = None


@dataclass(frozen=True)
class DropResource(Recipe):
    index: int


@dataclass(frozen=True)
class Shuffle(Recipe):
    seed: int


Change = EditResource | DuplicateResource | DropResource | Shuffle


@dataclass(frozen=True)
class ResourceChanges(Recipe):
    """What was done to the valid resources of `source`; `apply` gives the changed documents (as Python
    values, `Raw` where JSON text was put in) and what the changes promise."""

    source: str
    changes: tuple[Change, ...]

    def apply(self, lines: tuple[bytes, ...]) -> tuple[list[Any], Expect]:
        """Edits first, then duplicates, drops and shuffles; every index names a resource of the
        valid list (so a recipe reads the same whatever the order of its changes)."""
        documents: list[Any] = [parse(line) for line in lines]
        valid_only = list(documents)  # the valid edits alone: what an invalid one must not change
        expect = Expect()
        valid_edits = False
        for change in self.changes:
            if isinstance(change, EditResource):
                at = change.index % len(documents)
                invalid = applicable(documents[at], change.edit)
                if invalid is None:
                    continue
                if invalid:
                    expect.invalid = True
                else:
                    expect.content_kept = False
                    valid_edits = True
                    if applicable(valid_only[at], change.edit) is not None:
                        valid_only[at] = _edited(valid_only[at], change.edit)
                documents[at] = _edited(documents[at], change.edit)
        if expect.invalid and valid_edits:
            expect.baseline = valid_only
        tagged: list[tuple[int, Any]] = list(enumerate(documents))
        for change in self.changes:
            if isinstance(change, DuplicateResource):
                at = next(
                    i for i, (n, _) in enumerate(tagged) if n == change.index % len(documents)
                )
                original = tagged[at][1]
                copy = deep_copy(original)
                if change.edit is not None and applicable(original, change.edit) is not None:
                    copy = _edited(original, change.edit)
                    expect.conflicting_duplicate |= to_json(copy) != to_json(original)
                tagged.insert(at + 1, (-1, copy))
        for change in self.changes:
            if isinstance(change, DropResource):
                number = change.index % len(documents)
                tagged = [(n, d) for n, d in tagged if n != number]
                expect.content_kept = False
                expect.rows_may_go = True
        result = [d for _, d in tagged]
        for change in self.changes:
            if isinstance(change, Shuffle):
                random.Random(change.seed).shuffle(result)
        return result, expect


def applicable(document: Any, edit: JsonEdit) -> bool | None:
    """None when `edit` has nothing to do in `document` (its path is not there), else whether it
    makes the document invalid R4."""
    if edit.op == "none":
        return None
    try:
        return makes_invalid(document, edit)
    except (KeyError, IndexError, TypeError):
        return None


@dataclass
class Expect:
    """What a set of changes promises about the result."""

    invalid: bool = False  # some resource is no longer valid R4
    content_kept: bool = True  # only order, blank lines or identical copies changed
    conflicting_duplicate: bool = False  # two resources with one type and id, different content
    rows_may_go: bool = False  # a resource was removed
    baseline: list[Any] | None = None
    """With both valid and invalid edits: the resources with the valid edits alone (no duplicates,
    drops or shuffles). A valid edit may change rows (a deleted element, a cell gone); the invalid
    edits must leave no trace beyond them, so rows are compared with what these resources give."""


def deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [deep_copy(v) for v in value]
    return value


def _edited(document: Any, edit: JsonEdit) -> Any:
    copy = deep_copy(document)
    try:
        return edit.apply(copy)
    except (KeyError, IndexError, TypeError):
        return copy


@st.composite
def resource_changes(draw: st.DrawFn, source: str, lines: tuple[bytes, ...]) -> ResourceChanges:
    """One to three changes: mostly an edit inside one resource."""
    changes: list[Change] = []
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.integers(0, len(lines) - 1))
        document = parse(lines[index])
        what = draw(
            st.sampled_from(["edit"] * 6 + ["duplicate", "duplicate-changed", "drop", "shuffle"])
        )
        if what == "edit":
            changes.append(EditResource(index, draw(json_edits(document))))
        elif what == "duplicate":
            changes.append(DuplicateResource(index))
        elif what == "duplicate-changed":
            changes.append(DuplicateResource(index, draw(json_edits(document))))
        elif what == "drop":
            changes.append(DropResource(index))
        else:
            changes.append(Shuffle(draw(st.integers(0, 2**16))))
    return ResourceChanges(source, tuple(changes))


# --- the properties of a result ----------------------------------------------------------------------------


def row_items(trial: Trial) -> Counter[tuple[str, tuple[tuple[str, str], ...]]]:
    """Every row of `trial` as (domain, its non-empty cells), counted: column order and empty cells
    (which a column layout may add or leave out) do not matter."""
    return Counter(
        (code, tuple(sorted((c, v) for c, v in row.items() if v != "")))
        for code, table in trial.items()
        for row in table.rows
    )


def skipped_reported(assembler: Any) -> bool:
    """Whether the assembler said it left resources out (`unrecognised`, or a `skipped` report if the
    FHIR-from-anywhere policy adds one)."""
    return bool(getattr(assembler, "unrecognised", None)) or bool(
        getattr(assembler, "skipped", None)
    )


def no_wrong_rows(
    original: Trial, result: Trial, assembler: Any, rows_may_go: bool = False
) -> str | None:
    """Why `result` (from FHIR that is not valid R4) breaks "refused or no trace", or None.
    `rows_may_go`: resources were removed from the input, so their rows are missing by design (only
    invented rows count then)."""
    before, after = row_items(original), row_items(result)
    invented = after - before
    if invented:
        (domain, _), _count = next(iter(invented.items()))
        return f"invalid FHIR became {sum(invented.values())} row(s) not in the original (first in {domain})"
    missing = before - after
    if missing and not rows_may_go and not skipped_reported(assembler):
        (domain, _), _count = next(iter(missing.items()))
        return f"{sum(missing.values())} row(s) lost without a report (first in {domain})"
    return None


def serialise(documents: list[Any]) -> bytes:
    """NDJSON of `documents` (one per line)."""
    return b"".join(to_json(d).encode("utf-8", "surrogatepass") + b"\n" for d in documents)


__all__ = [
    "JSON",
    "ODD_VALUES",
    "Change",
    "DropResource",
    "DuplicateResource",
    "EditResource",
    "Expect",
    "ResourceChanges",
    "Shuffle",
    "deep_copy",
    "kind",
    "makes_invalid",
    "no_wrong_rows",
    "resource_changes",
    "row_items",
    "serialise",
    "skipped_reported",
]
