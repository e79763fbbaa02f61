"""The studies the package ships, and how a command finds a study definition.

Each shipped study is a folder of this package (package data in the wheel, the same files the tests
read): its SDTM tables as CSV, its study definition `study.json` and a README. The folder's name is the
study's *name* (`dalakas1993`); the definition's `study.id` is the study's *identifier*, the STUDYID that
the FHIR mapping writes as the ResearchStudy's identifier under the project's system.

    shipped_studies() -> list[ShippedStudy]           # what `trialfhir studies` lists
    shipped_study("dalakas1993") -> ShippedStudy      # .folder, .definition_path, .identifier, .title
    study_by_identifier("DALAKAS1993") -> ShippedStudy | None   # also "<system>|DALAKAS1993"
    resolve_definition("dalakas1993" or "path/study.json") -> Path
    choose_definition(given, folder, study) -> Path   # the rule `analyze` follows

Nothing here reads the tables or parses a whole definition (`adapter.analysis.load_definition` does);
errors are `DefinitionNotFound`, one line each.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import ClassVar

from mappings.errors import ExitCode, TrialfhirError
from mappings.identity import SID_STUDY

__all__ = [
    "BUNDLED",
    "DEFINITION_FILE",
    "DefinitionNotFound",
    "ShippedStudy",
    "choose_definition",
    "resolve_definition",
    "shipped_studies",
    "shipped_study",
    "study_by_identifier",
]

BUNDLED = "dalakas1993"
"""The study `trialfhir run` takes when given no --source: the reconstructed Dalakas 1993 cohort."""

DEFINITION_FILE = "study.json"
"""The file name of a study definition inside a study folder (shipped or not)."""


class DefinitionNotFound(TrialfhirError, LookupError):
    """No study definition for what was asked: an unknown name, a missing file, an unknown study."""

    code: ClassVar[str] = "definition_not_found"
    exit_code: ClassVar[ExitCode] = ExitCode.USAGE


@dataclass(frozen=True)
class ShippedStudy:
    """A study shipped in the package: its folder of SDTM tables and its definition."""

    name: str
    identifier: str
    title: str
    folder: Path

    @property
    def definition_path(self) -> Path:
        """The study definition (`study.json` in the folder)."""
        return self.folder / DEFINITION_FILE


def _studies_dir() -> Path:
    return Path(__file__).resolve().parent


def _read_heading(folder: Path) -> ShippedStudy:
    """The name, identifier and title of a shipped study, from its definition's `study` block."""
    path = folder / DEFINITION_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DefinitionNotFound(f"{path}: the shipped definition cannot be read ({exc})") from exc
    study = raw.get("study") if isinstance(raw, dict) else None
    identifier = study.get("id") if isinstance(study, dict) else None
    title = study.get("title", "") if isinstance(study, dict) else ""
    if not isinstance(identifier, str) or not identifier or not isinstance(title, str):
        raise DefinitionNotFound(f"{path}: study.id must be a non-empty text, study.title a text")
    return ShippedStudy(name=folder.name, identifier=identifier, title=title, folder=folder)


@cache
def shipped_studies() -> tuple[ShippedStudy, ...]:
    """Every study the package ships, by name (a folder of this package holding a `study.json`)."""
    folders = sorted(p.parent for p in _studies_dir().glob(f"*/{DEFINITION_FILE}"))
    return tuple(_read_heading(folder) for folder in folders)


def _known_names() -> str:
    return ", ".join(s.name for s in shipped_studies()) or "none"


def shipped_study(name: str) -> ShippedStudy:
    """The shipped study called `name`.

    Raises:
        DefinitionNotFound: the package ships no study of that name (the message lists the names).
    """
    for study in shipped_studies():
        if study.name == name:
            return study
    raise DefinitionNotFound(f"no study named {name!r} is shipped (known: {_known_names()})")


def study_by_identifier(study: str) -> ShippedStudy | None:
    """The shipped study whose identifier is `study`: a bare STUDYID (as `pull_study` takes it, under
    the project's study identifier system) or `system|value` with the project's system; None when
    the package knows no such study (another system, another value)."""
    system, _, value = study.partition("|") if "|" in study else (SID_STUDY, "|", study)
    if system != SID_STUDY:
        return None
    return next((s for s in shipped_studies() if s.identifier == value), None)


def resolve_definition(value: str) -> Path:
    """The definition file `value` stands for: an existing file (a path wins over a name), else the
    definition of the shipped study of that name.

    Raises:
        DefinitionNotFound: neither a file nor a shipped study's name.
    """
    path = Path(value)
    if path.is_file():
        return path
    if path.is_dir():
        raise DefinitionNotFound(f"{value} is a folder, not a study definition file")
    if any(s.name == value for s in shipped_studies()):
        return shipped_study(value).definition_path
    raise DefinitionNotFound(
        f"{value!r} is neither a file nor the name of a shipped study (known: {_known_names()})"
    )


def choose_definition(given: str | None, folder: Path | None, study: str | None) -> Path:
    """The definition for an analysis: `given` (a name or a file) when given; else `study.json` in
    the input `folder`; else the shipped study whose identifier is `study` (the study asked of a
    server).

    Raises:
        DefinitionNotFound: `given` resolves to nothing, or there is nothing to choose from (the
            message says which: the folder has no study.json, or the study is not shipped).
    """
    if given is not None:
        return resolve_definition(given)
    if folder is not None:
        if (folder / DEFINITION_FILE).is_file():
            return folder / DEFINITION_FILE
        raise DefinitionNotFound(f"{folder} has no {DEFINITION_FILE}")
    if study is not None:
        found = study_by_identifier(study)
        if found is not None:
            return found.definition_path
        raise DefinitionNotFound(
            f"study {study} is not one the package ships (known: "
            + (", ".join(f"{s.identifier} ({s.name})" for s in shipped_studies()) or "none")
            + ")"
        )
    raise DefinitionNotFound("no input folder and no study to find a definition for")
