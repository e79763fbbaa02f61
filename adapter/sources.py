"""What an input is, decided in one place: an SDTM folder, FHIR files (an NDJSON folder or file, a
folder of Bundles, one Bundle file) or a study on a FHIR server. Every command asks here.

    source = detect(path)                    # "sdtm" when the folder holds domain tables, else "fhir"
    source = detect(path, want="fhir")       # convert --to sdtm: read it as FHIR files, whatever it is
    source = on_server(url, "DALAKAS1993", client_options)

    source.trial()       # the trial's tables (SDTM read and checked, or FHIR mapped back)
    source.resources()   # the trial as FHIR resources (SDTM mapped, FHIR files read, the study pulled)
    source.label         # what was read, for messages and reports ("SDTM folder x", "FHIR files y")

The rules (docs/architecture.md):
- a folder with domain tables (`dm.csv`, `ae.xpt`, ...: `adapter.tables.domain_files`) is SDTM;
- otherwise it is FHIR files: its `.ndjson` files when it has any (a Bulk Data export folder: the
  `error/` subfolder and any manifest beside them are not read), else its Bundle `.json` files; the
  study definition (`study.json`) and hidden files (the output manifest `.trialfhir-manifest.json`)
  are never data (`adapter.fhir_files.resource_files`, the one listing);
- a file is FHIR (`.ndjson`, or a `.json` Bundle or resource).

FHIR files may hold the adapter's own resources, FHIR written by others (an EHR or Bulk Data export,
Synthea), or both; which, is known only by reading them, so it is no `kind` but decided here while
reading (`Source.read_fhir`, docs/foreign-fhir.md "Mixed folders"):
- the strict reader (`adapter.fhir_files`) goes first and hands the adapter's own resources
  (`mappings.foreign.combine.is_own`: an identifier system, url or profile under
  https://trialfhir.org/fhir/) to the `TrialAssembler`, all or nothing, as always; when every
  resource is its own, that is the whole answer (byte for byte what it always was);
- when it meets a resource written by others, or a file it refuses (a Bulk client's `log.ndjson`,
  an `error/` folder, a line that is not JSON), the input is read again by the tolerant reader
  (`adapter.foreign.read_foreign`): own resources still go to the assembler (a refused one still
  stops everything, naming file and line), the others through the profile-free mapping
  (`mappings.foreign`), skipped and reported one by one; the tables are combined
  (`mappings.foreign.combine`). A file the strict reader refuses in an input of only own
  resources is still refused (exit 3).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from adapter.fhir_files import FhirFileError, ReadStats, read_resources, read_trial_resources
from adapter.fhir_files import resource_files as fhir_data_files
from adapter.tables import domain_files, read_trial
from mappings.foreign import ForeignMapping, ForeignOptions, ForeignResource
from mappings.foreign.combine import OWN_PREFIX, is_own
from mappings.trial import ResourceRefused, TrialAssembler, fhir_to_trial, trial_to_fhir

if TYPE_CHECKING:
    from mappings.sdtm import Trial

__all__ = [
    "FhirFiles",
    "FhirReading",
    "Source",
    "SourceKind",
    "detect",
    "fhir_data_files",
    "kind_of",
    "on_server",
]

JSON = dict[str, Any]
SourceKind = Literal["sdtm", "fhir", "server"]


@dataclass(frozen=True)
class Source:
    """An input and how to read it. Nothing is read until `trial()`, `resources()` or `assemble()`."""

    kind: SourceKind
    label: str
    """What it is and where, for messages ("SDTM folder x", "FHIR folder y", "URL (study ID)");
    never a password (the server URL is shown without its credentials)."""
    path: Path | None = None
    server: str | None = field(default=None, repr=False)  # may carry credentials: never shown
    study: str | None = None
    client_options: dict[str, Any] = field(default_factory=dict, repr=False)
    foreign: ForeignOptions = field(default_factory=ForeignOptions)
    """How FHIR written by others is mapped (`--study`, `--subjid`, `--study-drug`)."""

    def files(self) -> list[Path]:
        """The files that are read as data ([] for a server; FhirFileError when a FHIR folder has
        none)."""
        if self.path is None:
            return []
        if self.kind == "sdtm":
            return [p for paths in domain_files(self.path).values() for p in paths]
        return fhir_data_files(self.path)

    def trial(self) -> Trial:
        """The trial's tables.

        Raises:
            TableError: an SDTM folder breaks the rules (every problem at once).
            FhirFileError: a FHIR file or resource cannot be read (file, line, entry, element).
            StudyNotFound, FhirError: from the pull of a study on a server.
        """
        if self.kind == "sdtm":
            assert self.path is not None
            return read_trial(self.path)
        if self.kind == "fhir":
            return self.read_fhir().trial
        return fhir_to_trial(self.resources())

    def read_fhir(
        self,
        stats: ReadStats | None = None,
        wrap: Callable[[Iterator[JSON]], Iterator[JSON]] | None = None,
        before_others: Callable[[], None] | None = None,
    ) -> FhirReading:
        """FHIR files read as this module's docstring says: the adapter's own resources by its
        lossless path, the rest profile-free (`self.foreign`), the tables combined. `before_others`
        is called once the input is known to hold FHIR written by others, before the tolerant reader
        holds it whole (the CLI's memory estimate for that path).

        Raises:
            FhirFileError: a file the strict reader refuses in an input of only own resources, or an
                own resource the assembler refuses (file, line, entry, element).
            ResourceRefused: from `TrialAssembler.tables()`.
        """
        if self.kind != "fhir" or self.path is None:
            raise ValueError(f"{self.label}: not FHIR files")
        stats = stats if stats is not None else ReadStats()

        others = False

        def own_only(resources: Iterator[JSON]) -> Iterator[JSON]:
            nonlocal others
            for resource in resources:
                # `is_own`'s first rule inlined (the adapter's resources carry their own identifier
                # system first): the whole rule runs only for the others
                identifiers = resource.get("identifier")
                if type(identifiers) is list and identifiers:
                    first = identifiers[0]
                    system = first.get("system") if type(first) is dict else None
                    if type(system) is str and system.startswith(OWN_PREFIX):
                        yield resource
                        continue
                if not is_own(resource):
                    others = True
                    return  # the tolerant reader reads every file again: the strict pass stops
                yield resource

        failure: FhirFileError | None = None
        try:
            assembler = read_trial_resources(
                self.path, stats, lambda rs: own_only(wrap(rs) if wrap is not None else rs)
            )
        except FhirFileError as exc:
            if isinstance(exc.__cause__, ResourceRefused):
                raise  # an own resource refused: all or nothing, as always
            failure = exc
        else:
            if not others:
                return FhirReading(assembler.tables(), assembler, None, stats)
        if before_others is not None:
            before_others()
        return _read_mixed(self.path, self.foreign, stats, failure)

    def assemble(
        self,
        stats: ReadStats | None = None,
        wrap: Callable[[Iterator[JSON]], Iterator[JSON]] | None = None,
    ) -> TrialAssembler:
        """FHIR files fed to a `TrialAssembler` (what it took, left out and saw twice), with what was
        read counted in `stats`; `wrap` may wrap the stream (a progress bar)."""
        if self.kind != "fhir" or self.path is None:
            raise ValueError(f"{self.label}: not FHIR files")
        return read_trial_resources(self.path, stats, wrap)

    def resources(self) -> Iterable[JSON]:
        """The trial as FHIR resources. An SDTM folder is read and checked in full first (a bad table
        raises `TableError` before anything is yielded); FHIR files come as a `FhirFiles` (iterating
        it again reads the files again, so an upload can check everything before sending); a study on
        a server is pulled (all of it, then returned)."""
        if self.kind == "sdtm":
            return trial_to_fhir(self.trial())
        if self.kind == "fhir":
            assert self.path is not None
            return FhirFiles(self.path)
        from adapter.transfer import pull_study

        assert self.server is not None and self.study is not None
        return pull_study(self.server, self.study, client_options=self.client_options).resources


@dataclass
class FhirReading:
    """What FHIR files gave: the `trial` (own tables with the profile-free rows added), the
    `assembler` of the own resources (what it left out and read twice), the profile-free `mapping`
    (None when every resource was the adapter's own: then nothing changed from the strict path), and
    the strict reader's `stats`."""

    trial: Trial
    assembler: TrialAssembler
    mapping: ForeignMapping | None
    stats: ReadStats

    @property
    def origin(self) -> Literal["own", "foreign", "mixed"]:
        if self.mapping is None:
            return "own"
        return "mixed" if self.mapping.report.own else "foreign"


def _handed_over(entries: list[ForeignResource]) -> Iterator[ForeignResource]:
    """`entries` one by one, the list held only until the last is taken."""
    yield from entries


def _read_mixed(
    path: Path, options: ForeignOptions, stats: ReadStats, failure: FhirFileError | None
) -> FhirReading:
    """The tolerant reading of a folder that holds FHIR written by others (or that the strict reader
    refused): own resources to a fresh `TrialAssembler` (a refusal still stops everything), the
    others to `map_foreign`, the tables combined."""
    from dataclasses import replace

    from adapter.foreign import read_foreign
    from mappings.foreign import map_foreign
    from mappings.foreign.combine import combine, subjects_of, trial_subject_keys

    found = read_foreign(path)
    stats.resources = len(found.resources)
    own: list[ForeignResource] = []
    others: list[ForeignResource] = []
    for entry in found.resources:  # each resource looked at once
        (own if is_own(entry.resource) else others).append(entry)
    found.resources = []  # held by `own` and `others` only: the others go once they are mapped
    if failure is not None and all(e.resource.get("resourceType") == "Bundle" for e in others):
        raise failure  # only the adapter's own resources: its files are read all or nothing
    assembler = TrialAssembler()
    for entry in own:
        try:
            assembler.add(entry.resource, check_strings=True)
        except ResourceRefused as exc:
            raise FhirFileError(entry.where, None, str(exc)) from exc
    keys = trial_subject_keys(entry.resource for entry in own)
    handed = _handed_over(others)
    del others  # the mapping lets the parsed resources go once its rows are built
    mapping = map_foreign(handed, replace(options, trial_subjects=keys))
    mapping.report.input_problems = found.problems
    mapping.report.not_data = found.not_data
    mapping.report.server_messages = found.messages
    joined = subjects_of(mapping.tables)  # trial subjects the hospital rows joined, and its own
    mapping.report.subjects = len(joined)
    mapping.report.study = ", ".join(sorted({study for study, _ in joined})) or mapping.report.study
    for entry in own:
        kind = str(entry.resource.get("resourceType"))
        mapping.report.own[kind] = mapping.report.own.get(kind, 0) + 1
    return FhirReading(combine(assembler.tables(), mapping.tables), assembler, mapping, stats)


class FhirFiles:
    """The resources of FHIR files, read again each time it is iterated: an upload reads it once to
    check every line and resource before the first write, then again to send it, so a big folder is
    never held in memory whole."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __iter__(self) -> Iterator[JSON]:
        return read_resources(self.path)


def detect(path: str | Path, want: Literal["sdtm", "fhir"] | None = None) -> Source:
    """What `path` holds: SDTM tables or FHIR files (the rules: this module's docstring). `want`
    forces the reading (a command told what its input is); it is then checked when read.

    Raises:
        FhirFileError: `path` does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise FhirFileError(path, None, "no such file or folder")
    kind = want or ("sdtm" if kind_of(path) == "sdtm" else "fhir")
    if kind == "sdtm":
        return Source("sdtm", f"SDTM folder {path}", path)
    shape = "folder" if path.is_dir() else "file"
    return Source("fhir", f"FHIR {shape} {path}", path)


def kind_of(path: Path) -> Literal["sdtm", "fhir"] | None:
    """What `path` looks like by its file names (nothing is read): "sdtm" for a folder with domain
    tables, "fhir" for a file or a folder with FHIR files, None for anything else."""
    if path.is_dir():
        if domain_files(path):
            return "sdtm"
        try:
            fhir_data_files(path)
        except FhirFileError:
            return "fhir" if _holds_fhir_files(path) else None
        return "fhir"
    return "fhir" if path.is_file() else None


FHIR_SUFFIXES = (".ndjson", ".ndjson.gz", ".json", ".json.gz", ".jsonl", ".jsonl.gz")
LOOK_LIMIT = 10_000
"""Entries `kind_of` looks at in a folder's subfolders for a FHIR file (the tolerant reader's
layouts: a folder of single-resource `.json` files in subfolders, a Bulk export's `error/`)."""


def _holds_fhir_files(path: Path) -> bool:
    """Whether a FHIR file (`FHIR_SUFFIXES`, not hidden) lies in `path`'s subfolders (at most
    `LOOK_LIMIT` entries are looked at)."""
    for seen, found in enumerate(path.rglob("*")):
        if seen >= LOOK_LIMIT:
            return False
        if found.name.lower().endswith(FHIR_SUFFIXES) and not found.name.startswith("."):
            return found.is_file()
    return False


def on_server(server: str, study: str, client_options: dict[str, Any], shown: str) -> Source:
    """A study on a FHIR server, by its identifier (`STUDYID` or `system|value`); `shown` is the
    server as messages may show it (without credentials)."""
    return Source(
        "server",
        f"{shown} (study {study})",
        server=server,
        study=study,
        client_options=client_options,
    )
