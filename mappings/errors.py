"""The root of every error trialfhir raises, the exit codes they carry, and the one `Problem` type.

A leaf module: it imports nothing but the standard library, so every layer can import it, the FHIR
client included (the one import the client makes from `mappings`; docs/decisions.md says why).

Every error class derives from `TrialfhirError` (keeping a builtin base where callers catch one:
`ValueError`, `LookupError`) and declares two class attributes of its own:

- `code`: a short snake_case string, stable across releases, listed in docs/cli.md ("Error codes") and
  kept in step with the classes by a test, so a caller branches on it rather than on a message;
- `exit_code`: the command line's exit status for it (`ExitCode`; the table is in docs/cli.md and in
  adapter/cli/_common.py), so the CLI reads the status from the error instead of keeping a second table.

Bad input is reported as data: every `Problem` at once (file, row or line, variable or element, reason).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

__all__ = ["ExitCode", "Problem", "TrialfhirError"]


class ExitCode(IntEnum):
    """The exit statuses of `trialfhir` (meanings in docs/cli.md)."""

    DONE = 0
    UNEXPECTED = 1
    USAGE = 2
    BAD_INPUT = 3
    SERVER_REFUSED = 4
    AUTH = 5
    NOT_FOUND = 6
    UNREACHABLE = 7
    TRANSACTION = 8
    FHIR_VERSION = 9
    SERVER_ANSWER = 10
    OUTPUT_REFUSED = 11
    NOTHING_CONVERTED = 12
    NOTHING_COMPUTABLE = 13


@dataclass(frozen=True)
class Problem:
    """One broken rule: where (file, 1-based row or line, variable or element) and why.

    `row` is None for a whole file, `variable` None for a whole row; a study definition's problems name
    the JSON path of the element (`endpoints.E1.tests`) as their `variable`."""

    file: str
    row: int | None
    variable: str | None
    reason: str

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
        if self.variable:
            where += f", {self.variable}"
        return f"{where}: {self.reason}"


class TrialfhirError(Exception):
    """Base of every error trialfhir raises on purpose; anything else escaping is a bug (exit 1)."""

    code: ClassVar[str] = "trialfhir_error"
    exit_code: ClassVar[ExitCode] = ExitCode.UNEXPECTED
