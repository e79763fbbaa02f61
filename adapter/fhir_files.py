"""FHIR resources on disk: NDJSON folders (the Bulk Data layout) and Bundle files, read and written
without losing a decimal's written precision (the JSON codec itself, `dumps`, `loads`, `DecimalText`
and the fast number guard, is `adapter.fhir_json`, shared with the client, and re-exported here).


Writing: `dumps` is orjson with `Decimal` emitted as its text (`Decimal("74.50")` -> `74.50`).
`write_ndjson` streams one `<Type>.ndjson` per resource type; `write_bundle` streams a transaction (or
batch / collection) Bundle whose entries follow the one Bundle rule, `adapter.bundles` (the client's).

Reading: `read_resources` takes an NDJSON folder, one `.ndjson` file, a Bundle JSON file or a folder of
Bundle files. Each line (or Bundle file) is parsed by orjson unless a cheap byte scan finds a number whose
float would not print as written (`74.50`, `1E+3`, 16 or more digits, `0.00001`, `-0`); such text is
parsed with `json.loads(parse_float=DecimalText)`, a `Decimal` that also remembers its exact text
(integers stay ints, except `-0` and those beyond 64 bits, which become `DecimalText` too).
Every number therefore comes back either as an int, as a float whose `repr` is the written text, or as a
`DecimalText`. Errors (`FhirFileError`) name the file and line. Formats: docs/files.md.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar, Literal

import orjson

from adapter import bundles
from adapter.fhir_json import (
    DecimalText,
    JSONDecodeErrors,
    JSONNotANumber,
    JSONTooDeep,
    check_depth,
    dumps,
    exact_loads,
    has_suspect_number,
    loads,
    loads_line_written,
)
from adapter.fhir_json import default as _default
from adapter.studies import DEFINITION_FILE
from mappings.errors import ExitCode, Problem, TrialfhirError

if TYPE_CHECKING:
    from mappings.trial import TrialAssembler

__all__ = [
    "BUNDLE_ENTRY_MODE",
    "MAX_BUNDLE_NESTING",
    "BundleWriter",
    "DecimalText",
    "FhirFileError",
    "ReadStats",
    "bundle_entry",
    "dumps",
    "entry_request",
    "loads",
    "read_resources",
    "read_trial_resources",
    "resource_files",
    "write_bundle",
    "write_ndjson",
]

JSON = dict[str, Any]
BundleType = Literal["transaction", "batch", "collection"]


class FhirFileError(TrialfhirError):
    """A FHIR file cannot be read: `path`, 1-based `line` (None for a whole file) and `reason`."""

    code: ClassVar[str] = "bad_fhir_file"
    exit_code: ClassVar[ExitCode] = ExitCode.BAD_INPUT

    def __init__(self, path: Path | str, line: int | None, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = self.path if line is None else f"{self.path}, line {line}"
        super().__init__(f"{where}: {reason}")

    @property
    def problems(self) -> list[Problem]:
        """The refusal as the one `Problem` type (its `row` is the line), like `TableError.problems`."""
        return [Problem(self.path, self.line, None, self.reason)]


# --- decimals: the codec (and its fast guard) lives in adapter.fhir_json, shared with the client ---


# --- writing ---------------------------------------------------------------------------------------


def _write_default(value: object) -> orjson.Fragment:
    """`adapter.fhir_json.default` (a `Decimal` as its text), its common case first: orjson calls it
    for every decimal of every resource written (about 300,000 at 1,000 subjects)."""
    if type(value) is Decimal and value.is_finite():
        return orjson.Fragment(str(value).encode())
    return _default(value)  # a Decimal subclass, an infinite one, or anything else: its rules


def write_ndjson(
    resources: Iterable[JSON], folder: str | Path, bundle: BundleWriter | None = None
) -> dict[str, int]:
    """Stream `resources` into `folder/<resourceType>.ndjson` (one resource per line, files created as
    types appear, existing ones replaced); returns the count per resource type. With `bundle`, each
    resource also goes into that Bundle, serialised once for both files."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    handles: dict[str, IO[bytes]] = {}
    counts: dict[str, int] = {}
    option = orjson.OPT_APPEND_NEWLINE
    dumps_line = orjson.dumps
    try:
        for resource in resources:
            resource_type = resource["resourceType"]
            handle = handles.get(resource_type)
            if handle is None:
                handle = open(root / f"{resource_type}.ndjson", "wb", buffering=1 << 20)  # noqa: SIM115
                handles[resource_type] = handle
                counts[resource_type] = 0
            written = dumps_line(resource, default=_write_default, option=option)
            handle.write(written)
            counts[resource_type] += 1
            if bundle is not None:
                bundle.add_written(resource, written)
    finally:
        for handle in handles.values():
            handle.close()
    return counts


BUNDLE_ENTRY_MODE: Literal["update", "conditional-update", "conditional-create"] = (
    "conditional-update"
)
"""How a written transaction Bundle's entries write their resource, as `trialfhir push` does:
`conditional-update` = `PUT Type?identifier=system|value` carrying our id (HAPI keeps the id and a
second load changes nothing: docs/hapi.md); `conditional-create` = `POST Type` with `ifNoneExist`;
`update` = `PUT Type/<id>`. A canonical resource without a business identifier (the project
CodeSystem) is matched on its `url` (and `version`), as the client does."""


def entry_request(resource: JSON) -> JSON:
    """The `request` of the written Bundle's entry for `resource`: `adapter.bundles.entry_request` (the
    rule the client uses too) in `BUNDLE_ENTRY_MODE`; a resource with neither a business identifier
    nor a canonical url is written by id (`PUT Type/<id>`).

    Raises:
        ValueError: the resource can be written neither way (no type, or no id either).
    """
    plain = _plain_conditional_update(resource)
    if plain is not None:
        return plain
    request = bundles.entry_request(resource, BUNDLE_ENTRY_MODE)
    if isinstance(request, str):
        request = bundles.entry_request(resource, "update")
        if isinstance(request, str):
            raise ValueError(f"cannot write this resource in a Bundle{request}")
    return request


_PLAIN_TOKEN_PART = re.compile(r"[A-Za-z0-9_.~:/-]+")
"""An identifier system or value that neither token escaping (`\\ | , $`) nor percent-encoding
changes: the common case (every identifier the mappings make)."""


def _plain_conditional_url(resource: JSON) -> str | None:
    """The `url` of `bundles.entry_request(resource, "conditional-update")` when the resource's FIRST
    identifier has a plain (`_PLAIN_TOKEN_PART`) system and value and its type is ASCII letters,
    built without the general path's escaping and quoting (the per-entry cost of the Bundle
    `convert` writes; nothing in it needs JSON escaping either); None otherwise (then the general
    path decides)."""
    if BUNDLE_ENTRY_MODE != "conditional-update":
        return None
    identifiers = resource.get("identifier")
    if type(identifiers) is not list or not identifiers:
        return None
    first = identifiers[0]
    if type(first) is not dict:
        return None
    system, value, rt = first.get("system"), first.get("value"), resource.get("resourceType")
    if type(system) is not str or type(value) is not str or type(rt) is not str:
        return None
    plain_system = _PLAIN_SYSTEMS.get(system)
    if plain_system is None:
        plain_system = _PLAIN_TOKEN_PART.fullmatch(system) is not None
        if len(_PLAIN_SYSTEMS) < _PLAIN_SYSTEMS_KEPT:
            _PLAIN_SYSTEMS[system] = plain_system
    if (
        not plain_system
        or _PLAIN_TOKEN_PART.fullmatch(value) is None
        or not (rt.isascii() and rt.isalpha())
    ):
        return None
    return f"{rt}?identifier={system}%7C{value}"


_PLAIN_SYSTEMS: dict[str, bool] = {}
"""Identifier system -> whether `_PLAIN_TOKEN_PART` takes it whole: a trial's resources share a few
dozen systems, so each is matched once (at most `_PLAIN_SYSTEMS_KEPT` kept; others matched each time)."""
_PLAIN_SYSTEMS_KEPT = 1024


def _plain_conditional_update(resource: JSON) -> JSON | None:
    """`bundles.entry_request(resource, "conditional-update")` by `_plain_conditional_url`, or None."""
    url = _plain_conditional_url(resource)
    return None if url is None else {"method": "PUT", "url": url}


_LOWER_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
"""An id that `bundles.full_url` writes as `urn:uuid:<id>` (our ids)."""


def bundle_entry(resource: JSON, bundle_type: BundleType = "transaction") -> JSON:
    """One Bundle entry (`adapter.bundles.bundle_entry`): `fullUrl` `urn:uuid:<id>` (our ids are
    lower-case UUIDs; any other id gets a name-based UUID of `Type/id`), the resource, and for a
    transaction or batch its `request` (`entry_request`)."""
    request = None if bundle_type == "collection" else entry_request(resource)
    return bundles.bundle_entry(resource, request)


class BundleWriter:
    """Streams a Bundle JSON file, one entry per line: `with BundleWriter(path) as w: w.add(r)`.

    `counts` holds the number of entries per resource type. The file is complete (valid JSON) only
    once the writer is closed."""

    def __init__(self, path: str | Path, type: BundleType = "transaction") -> None:
        self.path = Path(path)
        self.type: BundleType = type
        self.counts: dict[str, int] = {}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle: IO[bytes] = open(self.path, "wb", buffering=1 << 20)  # noqa: SIM115
        self._handle.write(b'{"resourceType":"Bundle","type":' + dumps(type) + b',"entry":[')
        self._separator = b"\n"

    def add(self, resource: JSON) -> None:
        self._handle.write(self._separator)
        self._handle.write(dumps(bundle_entry(resource, self.type)))
        self._separator = b",\n"
        resource_type = str(resource.get("resourceType"))
        self.counts[resource_type] = self.counts.get(resource_type, 0) + 1

    def add_written(self, resource: JSON, written: bytes) -> None:
        """`add(resource)` when `written` is already `dumps(resource)` (a trailing newline allowed):
        the same bytes as `add` writes (`adapter.bundles.bundle_entry`: `fullUrl`, `resource`, then
        `request`), without serialising the resource a second time."""
        if self.type == "collection":
            tail = b"}"
        else:
            url = _plain_conditional_url(resource)
            if url is not None:
                tail = b',"request":{"method":"PUT","url":"' + url.encode() + b'"}}'
            else:
                tail = b',"request":' + orjson.dumps(entry_request(resource)) + b"}"
        rid = resource.get("id")
        if type(rid) is str and _LOWER_UUID.fullmatch(rid) is not None:
            full_url = rid.encode()
        else:  # urn:uuid:<hex> either way: nothing to escape
            full_url = bundles.full_url(resource).removeprefix("urn:uuid:").encode()
        self._handle.write(
            b"".join(
                (
                    self._separator,
                    b'{"fullUrl":"urn:uuid:',
                    full_url,
                    b'","resource":',
                    written[:-1] if written[-1:] == b"\n" else written,
                    tail,
                )
            )
        )
        self._separator = b",\n"
        resource_type = str(resource.get("resourceType"))
        self.counts[resource_type] = self.counts.get(resource_type, 0) + 1

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.write(b"\n]}\n")
            self._handle.close()

    def __enter__(self) -> BundleWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:  # leave the file visibly unfinished (no closing `]}`): never a silently short Bundle
            self._handle.close()


def write_bundle(
    resources: Iterable[JSON], path: str | Path, type: BundleType = "transaction"
) -> dict[str, int]:
    """Stream `resources` into one Bundle JSON file of `type` (one entry per line); returns the count
    per resource type."""
    with BundleWriter(path, type) as writer:
        for resource in resources:
            writer.add(resource)
    return writer.counts


# --- reading ---------------------------------------------------------------------------------------

MAX_BUNDLE_NESTING = 8
"""How many Bundles deep a resource may sit (a Bundle in a Bundle's entry is level 2). A Bundle's
entries are read through at every level up to this bound; deeper nesting is refused (`FhirFileError`)
rather than dropped. (JSON deeper than `adapter.fhir_json.MAX_DEPTH` levels is refused before parsing.)"""


@dataclass
class ReadStats:
    """What `read_resources` went through: files, resources yielded, OperationOutcome entries of
    searchsets skipped, and where the resource yielded last comes from (`where()`, for errors about
    it found later, e.g. by the trial assembler)."""

    files: list[str] = field(default_factory=list)
    resources: int = 0
    outcomes_skipped: int = 0
    bundles_nested: int = 0
    """Bundles found inside a Bundle (or on an NDJSON line) and read through."""
    line: int | None = None
    """1-based line of the resource yielded last (None when the file was parsed whole)."""
    entry: str = ""
    """Its Bundle entry ("Bundle entry 3", "Bundle entry 3 > entry 1"), "" for a resource on its own."""
    suspect: bool = False
    """Its text holds `\\u00` (an escaped control character?): worth a full look at its strings
    (`TrialAssembler.add(..., check_strings=True)`)."""
    written: bytes | None = None
    """Its compact JSON as orjson writes it, when its NDJSON line was exactly that (None otherwise):
    the trial assembler's duplicate digest without serialising it again."""

    def where(self, reason: str) -> FhirFileError:
        """A `FhirFileError` about the resource yielded last: its file, line and entry, then `reason`."""
        file = self.files[-1] if self.files else "?"
        return FhirFileError(file, self.line, f"{self.entry}: {reason}" if self.entry else reason)


def read_resources(path: str | Path, stats: ReadStats | None = None) -> Iterator[JSON]:
    """Every resource in `path`: a folder of `.ndjson` files (then other files there are ignored), a
    folder of Bundle `.json` files, one `.ndjson` file, or one `.json` file (a Bundle, whose entries'
    resources are yielded, or a single resource). A Bundle found as an entry's resource or on an
    NDJSON line is read through the same way, up to `MAX_BUNDLE_NESTING` levels.

    Raises:
        FhirFileError: naming the file and line of the first text that is not a FHIR resource (or
            JSON too deep, `NaN`, a Bundle nested too deep).
    """
    stats = stats if stats is not None else ReadStats()
    yield from read_files(resource_files(Path(path)), stats)


def read_files(files: Iterable[Path], stats: ReadStats | None = None) -> Iterator[JSON]:
    """Every resource in `files` (each an `.ndjson` file, or a `.json` Bundle or resource), read as
    `read_resources` reads them: for a caller that chose the files itself (`analyze` leaves out
    `study.json`).

    Raises:
        FhirFileError: as `read_resources`."""
    stats = stats if stats is not None else ReadStats()
    for file in files:
        stats.files.append(str(file))
        stats.line = None
        stats.entry = ""
        if _is_ndjson(file):
            yield from _read_ndjson(file, stats)
        else:
            yield from _read_json(file, stats)


_SUSPECT_TEXT = b"\\u00"


def read_trial_resources(
    path: str | Path,
    stats: ReadStats | None = None,
    wrap: Callable[[Iterator[JSON]], Iterator[JSON]] | None = None,
) -> TrialAssembler:
    """Every resource of `path` (as `read_resources` reads them) fed to a `TrialAssembler`, whose
    `tables()` are the trial; `wrap` may wrap the stream of resources (a progress bar).

    Raises:
        FhirFileError: a file cannot be read, or a resource is refused by the assembler (a wrongly
            shaped element, a string where a number belongs, the same type and id with different
            content, a control character, the year 0000): naming file, line, entry and element.
    """
    stats = stats if stats is not None else ReadStats()
    resources = read_resources(path, stats)
    return assemble(wrap(resources) if wrap is not None else resources, stats)


def assemble(resources: Iterable[JSON], stats: ReadStats) -> TrialAssembler:
    """`resources`, read from files by `read_resources` or `read_files` with `stats`, fed to a
    `TrialAssembler` (as `read_trial_resources` does: `run` and `analyze` read their FHIR folders
    through it, so a refusal names file and line as `convert`'s does).

    Raises:
        FhirFileError: a file cannot be read, or the assembler refuses a resource: naming file, line,
            entry and element. (Resources not read from a file: the `ResourceRefused` itself.)
    """
    from mappings.trial import ResourceRefused, TrialAssembler

    assembler = TrialAssembler()
    add = assembler.add
    for resource in resources:
        try:
            add(resource, stats.suspect, stats.written)
        except ResourceRefused as exc:
            if not stats.files:
                raise
            raise stats.where(str(exc)) from exc
    return assembler


def resource_files(path: Path) -> list[Path]:
    """The files `read_resources(path)` reads, in order: a file itself; in a folder its `.ndjson`
    (and `.ndjson.gz`) files when it has any (subfolders, e.g. a Bulk export's `error/`, are not read), else its `.json`
    files. Never data: hidden files (the output manifest `.trialfhir-manifest.json`) and the study
    definition `study.json`. The one listing of FHIR files (`adapter.sources` decides the rest).

    Raises:
        FhirFileError: no such file or folder, or a folder without `.ndjson` or `.json` files.
    """
    if path.is_dir():
        files = sorted(
            p
            for p in path.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.name != DEFINITION_FILE
        )
        ndjson = [p for p in files if _is_ndjson(p)]
        if ndjson:
            return ndjson
        bundles = [p for p in files if p.suffix.lower() == ".json"]
        if not bundles:
            raise FhirFileError(path, None, "no .ndjson or .json files in this folder")
        return bundles
    if not path.exists():
        raise FhirFileError(path, None, "no such file or folder")
    return [path]


def _not_json(
    file: Path, line: int | None, exc: ValueError, what: str = "not JSON"
) -> FhirFileError:
    if isinstance(exc, JSONTooDeep | JSONNotANumber):
        return FhirFileError(file, line, f"{what}: {exc.msg}")
    return FhirFileError(file, line, f"{what}: {exc}")


def _is_ndjson(file: Path) -> bool:
    """An NDJSON file by its name: `.ndjson`, or `.ndjson.gz` (gzip, as Bulk Data servers may send)."""
    name = file.name.lower()
    return name.endswith(".ndjson") or name.endswith(".ndjson.gz")


def _read_ndjson(file: Path, stats: ReadStats) -> Iterator[JSON]:
    if file.name.lower().endswith(".gz"):
        yield from _read_gzip_ndjson(file, stats)
        return
    with open(file, "rb", buffering=1 << 20) as handle:
        yield from _ndjson_lines(file, handle, stats)


def _read_gzip_ndjson(file: Path, stats: ReadStats) -> Iterator[JSON]:
    """A gzipped NDJSON file, decompressed as it is read; a broken or cut-off archive is a
    `FhirFileError` naming the file (and the last line read from it)."""
    stats.line = None
    try:
        with gzip.open(file, "rb") as handle:
            yield from _ndjson_lines(file, handle, stats)
    except (OSError, EOFError, zlib.error) as exc:
        where = f" after line {stats.line}" if stats.line else ""
        raise FhirFileError(file, None, f"not a readable gzip file{where}: {exc}") from exc


def _ndjson_lines(file: Path, handle: Iterable[bytes], stats: ReadStats) -> Iterator[JSON]:
    parse = loads_line_written
    for number, line in enumerate(handle, start=1):
        if line.isspace() or not line:
            continue
        try:
            resource, written = parse(line)
        except JSONDecodeErrors as exc:
            raise _not_json(file, number, exc) from exc
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            raise FhirFileError(file, number, "not a FHIR resource (no resourceType)")
        stats.line = number
        stats.suspect = b"\\" in line and _SUSPECT_TEXT in line  # memchr first: fast
        if resource["resourceType"] == "Bundle":
            stats.bundles_nested += 1
            yield from _bundle_resources(resource, stats, file, number, "Bundle", 1)
            continue
        stats.entry = ""
        stats.resources += 1
        stats.written = written
        yield resource
        stats.written = None


_STREAMED_HEAD = re.compile(rb'\{"resourceType":"Bundle","type":"[a-z-]+","entry":\[\r?\n')
"""The first line of a Bundle as `write_bundle` lays it out: then one entry per line, `]}` last."""


def _read_json(file: Path, stats: ReadStats) -> Iterator[JSON]:
    try:
        with open(file, "rb") as handle:
            first = handle.readline()
            if _STREAMED_HEAD.fullmatch(first):
                yield from _read_streamed_bundle(file, handle, stats)
                return
    except OSError as exc:
        raise FhirFileError(file, None, f"cannot read: {exc.strerror or exc}") from exc
    try:
        raw = file.read_bytes()
        document = loads(raw)
    except JSONDecodeErrors as exc:
        raise _not_json(file, getattr(exc, "lineno", None), exc) from exc
    except OSError as exc:
        raise FhirFileError(file, None, f"cannot read: {exc.strerror or exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("resourceType"), str):
        raise FhirFileError(file, None, "not a FHIR resource or Bundle (no resourceType)")
    stats.line = None
    stats.suspect = _SUSPECT_TEXT in raw
    del raw
    if document["resourceType"] != "Bundle":
        stats.entry = ""
        stats.resources += 1
        yield document
        return
    yield from _bundle_resources(document, stats, file, None, "Bundle", 1)


def _read_streamed_bundle(file: Path, handle: IO[bytes], stats: ReadStats) -> Iterator[JSON]:
    """The entries of a Bundle written by `write_bundle`, one line at a time (a Bundle of 200,000
    entries is never all in memory). Any other layout is read whole by `_read_json`."""
    suspect = has_suspect_number
    closed = False
    for number, line in enumerate(handle, start=2):
        text = line.rstrip(b"\r\n")
        if closed or text == b"]}":
            if closed and text.strip():
                raise FhirFileError(file, number, "text after the end of the Bundle")
            closed = True
            continue
        if text.endswith(b","):
            text = text[:-1]
        if not text.strip():
            continue
        try:
            check_depth(text)
            entry = exact_loads(text) if suspect(text) else orjson.loads(text)
        except JSONDecodeErrors as exc:
            raise _not_json(file, number, exc, "not a Bundle entry") from exc
        stats.line = number
        stats.suspect = b"\\" in text and _SUSPECT_TEXT in text
        yield from _entry_resources(entry, stats, file, number, "Bundle entry", 1)
    if not closed:
        raise FhirFileError(file, None, "the Bundle never ends (no closing `]}`): cut off?")


def _bundle_resources(
    bundle: JSON, stats: ReadStats, file: Path, line: int | None, where: str, level: int
) -> Iterator[JSON]:
    """The resources of every entry of `bundle` (a Bundle at nesting `level`, 1 = outermost)."""
    entries = bundle.get("entry")
    if entries is None:
        return
    if not isinstance(entries, list):
        raise FhirFileError(file, line, f"{where}: Bundle.entry is not a list")
    prefix = "Bundle entry" if where == "Bundle" else f"{where} > entry"
    for index, entry in enumerate(entries, start=1):
        yield from _entry_resources(entry, stats, file, line, f"{prefix} {index}", level)


def _entry_resources(
    entry: Any, stats: ReadStats, file: Path, line: int | None, where: str, level: int
) -> Iterator[JSON]:
    """The resource of one Bundle entry (a Bundle's own entries' when it is a Bundle); nothing for an
    entry without one (a DELETE, a response without a body) and for a searchset's OperationOutcome
    (counted)."""
    if not isinstance(entry, dict):
        raise FhirFileError(file, line, f"{where}: not a Bundle entry (an object)")
    resource = entry.get("resource")
    if resource is None:
        return
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        raise FhirFileError(file, line, f"{where}: not a FHIR resource")
    kind = resource["resourceType"]
    if kind == "OperationOutcome":
        search = entry.get("search")
        if isinstance(search, dict) and search.get("mode") == "outcome":
            stats.outcomes_skipped += 1
            return
    if kind == "Bundle":
        if level >= MAX_BUNDLE_NESTING:
            reason = f"a Bundle nested more than {MAX_BUNDLE_NESTING} Bundles deep"
            raise FhirFileError(file, line, f"{where}: {reason}")
        stats.bundles_nested += 1
        yield from _bundle_resources(resource, stats, file, line, where, level + 1)
        return
    stats.line = line
    stats.entry = where
    stats.resources += 1
    yield resource
