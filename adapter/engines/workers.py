"""`convert --workers N`: the local engine on N processes, split by subject, with the bytes of one worker.

SDTM -> FHIR: the tables are read and checked whole first (every problem at once, nothing written
before), then cut by the Spark engine's rule (`adapter.engines.split_by_subject`, as
`part_starts` gives it for cutting the files themselves) into parts of whole subjects: at least one
per worker, more for a big trial (`BYTES_PER_PART`). Each worker (a forked process: the parts are
not copied through pipes) reads its parts' byte ranges of the CSV files, maps them and streams each
resource, as it is made, to a part file per section of the stream and resource type (NDJSON lines)
and per section (Bundle entries): the families make a section's resources in stream order, which
is checked resource by resource, so nothing is kept or sorted. The parent then lays the part files
out in stream order (`adapter.engines.SECTIONS`, then part order) and the workers copy them into
`<Type>.ndjson` and `bundle.json` at their offsets. This is the one-worker stream only when every
table keeps each subject's rows together in DM's subject order (SDTM's own sort order); a trial
whose rows interleave subjects converts on one worker.

FHIR -> SDTM: the adapter's own NDJSON (a `Patient.ndjson`, each file runs of lines ordered by
subject: the sections of the stream) is cut into buckets of whole subjects by byte ranges, found
by bisection (`_plan_ranges`; subjects dealt out by `part_starts`); each worker parses the lines
of its ranges, checks that each is of one of its subjects (the subject key of the Spark engine,
`adapter.engines.subject_key`), and feeds them in file order to its own `TrialAssembler`. Input
not ordered so (a line of another bucket's subject) goes through a first pass instead, which
writes every line to the spill file of its subject's bucket (`_spill`). The parent merges the
buckets' rows as one assembler would, sorted. Any refusal, and anything a split could change (a
resource whose byte scan and subject disagree, one id on two workers, no study layout, FHIR written
by others), makes the parent convert again on one worker: a report of bad input is always the
one-worker report, word for word.
"""

from __future__ import annotations

import array
import csv
import heapq
import io
import itertools
import multiprocessing
import operator
import os
import shutil
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

import orjson

from adapter.engines import (
    SECTIONS,
    Place,
    SubjectPart,
    part_resources,
    part_starts,
    study_resources,
    subject_key,
)
from mappings.sdtm import Table, Trial

__all__ = [
    "BYTES_PER_BUCKET",
    "BYTES_PER_PART",
    "PARTS_FOLDER",
    "Assembled",
    "Converted",
    "fhir_to_sdtm",
    "line_key",
    "sdtm_to_fhir",
]

PARTS_FOLDER = ".parts"
"""The folder, inside the staging folder, of the workers' part files (removed before the output is
finished; with the staging folder on failure or Ctrl-C)."""


def _one_worker() -> ValueError:
    """Raised where the input is not one this engine splits (or breaks a rule), caught as a
    `ValueError` (the readers' refusals are ValueErrors too): it converts on one worker, which also
    gives the exact report of what is wrong."""
    return ValueError("convert on one worker")


@dataclass
class _Plan:
    """How the SDTM files are cut: per subject-level domain its file, its header record (bytes) and
    each part's byte range; each subject's position in DM; each part's first position."""

    files: dict[str, Path]
    headers: dict[str, bytes]
    ranges: dict[str, list[tuple[int, int]]]
    order: dict[str, int]
    starts: list[int]


_plan: _Plan | None = None
_folder: Path = Path()
_bundle: bool = True


def _part_file(folder: Path, index: int, section: int, kind: str) -> Path:
    return folder / f"{index:05d}-{section:02d}-{kind}"


# --- cutting the CSV files by subject (the parent) -------------------------------------------------

_BLOCK = 1 << 14


class _CsvFile:
    """A CSV file read in small windows (never whole) and where its records start: a line start with
    an even number of quote characters before it (a quoted cell may hold line breaks; `""` counts
    twice). The quote parity before every 16 KB block is counted once, in one pass."""

    def __init__(self, handle: IO[bytes], size: int) -> None:
        self.handle = handle
        self.size = size
        self._parity: list[int] = []
        parity = 0
        self.quoted = False
        handle.seek(0)
        while chunk := handle.read(1 << 20):
            quoted = b'"' in chunk
            self.quoted = self.quoted or quoted
            for at in range(0, len(chunk), _BLOCK):
                self._parity.append(parity)
                if quoted:
                    parity ^= chunk.count(b'"', at, at + _BLOCK) & 1
        self._parity.append(parity)
        self.header_end = self.record_end(0)

    def _read(self, start: int, end: int) -> bytes:
        self.handle.seek(start)
        return self.handle.read(max(0, end - start))

    def _odd(self, position: int) -> bool:
        """Whether `position` lies inside a quoted cell."""
        if not self.quoted:
            return False
        block = position // _BLOCK
        window = self._read(block * _BLOCK, position)
        return bool((self._parity[block] + window.count(b'"')) & 1)

    def record_end(self, start: int) -> int:
        """The end (after its line break) of the record starting at `start`."""
        at = start
        while at < self.size:
            window = self._read(at, min(self.size, at + (1 << 16)))
            newline = window.find(b"\n")
            if newline < 0:
                at += len(window)
                continue
            if not self._odd(at + newline):
                return at + newline + 1
            at += newline + 1
        return self.size

    def record_at_or_after(self, position: int) -> int:
        """The first record start at or after `position` (the size when none)."""
        if position <= self.header_end:
            return self.header_end
        if self._read(position - 1, position) == b"\n" and not self._odd(position - 1):
            return position
        return self.record_end(position)

    def record(self, start: int) -> bytes:
        return self._read(start, self.record_end(start))

    def cells(self, start: int) -> list[str]:
        text = self.record(start).decode("utf-8-sig")
        for cells in csv.reader(io.StringIO(text, newline=""), strict=True):
            return cells
        return []


def _subject_column(file: _CsvFile) -> int:
    header = file.cells(0)
    if "USUBJID" not in header or len(set(header)) != len(header):
        raise _one_worker()
    return header.index("USUBJID")


def _dm_order(path: Path) -> dict[str, int]:
    """Each DM subject's position; a `ValueError` when a subject is missing or given twice."""
    order: dict[str, int] = {}
    with open(path, encoding="utf-8-sig", newline="") as handle:  # streamed
        reader = csv.reader(handle, strict=True)
        header = next(reader)
        if "USUBJID" not in header:
            raise _one_worker()
        column = header.index("USUBJID")
        for cells in reader:
            if not cells:
                continue
            usubjid = cells[column] if column < len(cells) else ""
            if not usubjid or usubjid in order:
                raise _one_worker()
            order[usubjid] = len(order)
    return order


def _cut(file: _CsvFile, column: int, order: dict[str, int], starts: list[int]) -> list[int]:
    """The byte offset where each part's records begin in a table that lists its rows in DM's
    subject order (a bisection over the bytes; the workers check the order), the size last."""

    def position(record: int) -> int:
        if record >= file.size:
            return len(order)
        cells = file.cells(record)
        found = order.get(cells[column]) if column < len(cells) else None
        if found is None:
            raise _one_worker()  # a subject DM does not have: the one-worker report says where
        return found

    bounds = [file.header_end]
    for first in starts[1:-1]:
        low, high = bounds[-1], file.size
        while (
            low < high
        ):  # the smallest byte offset whose next record belongs to this part or later
            middle = (low + high) // 2
            if position(file.record_at_or_after(middle)) >= first:
                high = middle
            else:
                low = middle + 1
        bounds.append(file.record_at_or_after(low))
    bounds.append(file.size)
    return bounds


def _plan_cut(src: Path, workers: int) -> tuple[_Plan, dict[str, Path]]:
    """How to cut the SDTM folder `src`: the subject-level CSV files by subject, the study-level
    files (returned apart) read whole by the parent.

    Raises:
        a ValueError: not CSV files alone, one per domain, with a DM listing each subject once.
    """
    from adapter.tables import domain_files
    from mappings.sdtm import DOMAINS

    found = domain_files(src)
    if "DM" not in found or any(
        len(paths) != 1 or paths[0].suffix.lower() != ".csv" for paths in found.values()
    ):
        raise _one_worker()
    files = {code: found[code][0] for code in DOMAINS if code in found}
    subject_files = {c: p for c, p in files.items() if DOMAINS[c].subject_level}
    study_files = {c: p for c, p in files.items() if not DOMAINS[c].subject_level}
    order = _dm_order(subject_files["DM"])
    if not order:
        raise _one_worker()
    size = sum(p.stat().st_size for p in subject_files.values())
    parts = workers * max(1, -(-size // (BYTES_PER_PART * workers)))
    starts = part_starts(len(order), parts)
    headers: dict[str, bytes] = {}
    ranges: dict[str, list[tuple[int, int]]] = {}
    for code, path in subject_files.items():
        size = path.stat().st_size
        if not size:
            raise _one_worker()
        with open(path, "rb") as handle:
            try:
                file = _CsvFile(handle, size)
                column = _subject_column(file)
                bounds = _cut(file, column, order, starts)
                headers[code] = file.record(0)
            except (ValueError, csv.Error, IndexError) as exc:
                raise _one_worker() from exc
        ranges[code] = list(itertools.pairwise(bounds))
    return _Plan(subject_files, headers, ranges, order, starts), study_files


BYTES_PER_PART = 2 << 20
"""SDTM -> FHIR: CSV bytes per part (about 16,000 rows of the generated cohort; a worker holds one
part's tables and serialised resources, about 80 MB)."""


# --- one part (a worker) ---------------------------------------------------------------------------


@dataclass
class _PartDone:
    """What a worker made of one part: per section the resource types in the order they first
    appear in it and per section and type the count; the part's rows per domain and STUDYIDs; or
    `failed` (the part breaks a rule, is not in DM's order, or a family made a section's resources
    out of their stream order)."""

    index: int
    failed: bool = False
    kinds: dict[int, list[str]] = field(default_factory=dict)
    counts: dict[tuple[int, str], int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    studyids: dict[str, list[str]] = field(default_factory=dict)


def _read_part(index: int) -> tuple[Trial, dict[str, list[str]]] | None:
    """Part `index`'s rows of every subject-level table, read and checked as `read_table` reads a
    file (a copy of the header and the part's records), with the STUDYIDs each names; None when a
    rule is broken or a row is not where DM's order puts it."""
    from adapter.tables import read_table

    plan = _plan
    assert plan is not None
    low, high = plan.starts[index], plan.starts[index + 1]
    order = plan.order
    trial: Trial = {}
    studyids: dict[str, list[str]] = {}
    for code, path in plan.files.items():
        start, end = plan.ranges[code][index]
        copy = _folder / f"{index:05d}-{code}.csv"
        with open(path, "rb") as source, open(copy, "wb") as target:
            target.write(plan.headers[code])
            source.seek(start)
            target.write(source.read(end - start))
        try:
            table, problems = read_table(copy, code)
        finally:
            copy.unlink()
        if table is None or problems:
            return None
        last = low
        for row in table.rows:
            found = order.get(row.get("USUBJID", ""))
            if found is None or found < last or found >= high:
                return None
            last = found
        trial[code] = table
        studyids[code] = list(dict.fromkeys(row.get("STUDYID", "") for row in table.rows))
    return trial, studyids


def _convert_part(index: int) -> _PartDone:
    """Runs in a worker: read part `index`, map it and stream each resource, as it is made, to the
    part file of its section and type (NDJSON lines) and of its section (Bundle entries).

    The part is whole subjects in table order (`_read_part` checks it), so its share of each
    section is one run of the whole stream, and the families make a section's resources in its
    stream order (per subject, in table-row order: `adapter.engines.part_resources`); the place of
    each resource is checked against the previous one of its section, and a resource out of that
    order fails the part (the conversion then runs on one worker) rather than being sorted."""
    from adapter.fhir_files import bundle_entry, dumps
    from adapter.fhir_json import default

    done = _PartDone(index)
    read = _read_part(index)
    if read is None:
        done.failed = True
        return done
    trial, done.studyids = read
    done.rows = {code: len(table.rows) for code, table in trial.items()}
    if not any(done.rows.values()):
        return done
    # rows numbered within the part: places are compared only within the part
    part = SubjectPart(trial, {code: list(range(len(t.rows))) for code, t in trial.items()})
    option = orjson.OPT_APPEND_NEWLINE
    serialise = orjson.dumps
    bundle = _bundle
    files: dict[tuple[int, str], tuple[Any, list[int]]] = {}
    entries: dict[int, IO[bytes]] = {}
    last: dict[int, Place] = {}
    handles: list[IO[bytes]] = []
    try:
        for place, resource in part_resources(part):
            section = place[0]
            previous = last.get(section)
            if previous is not None and place < previous:
                done.failed = True  # not the stream's order: one worker converts it
                return done
            last[section] = place
            kind = resource["resourceType"]
            found = files.get((section, kind))
            if found is None:
                handle = open(_part_file(_folder, index, section, kind), "wb", buffering=1 << 20)  # noqa: SIM115
                handles.append(handle)
                found = files[(section, kind)] = (handle.write, [0])
                done.kinds.setdefault(section, []).append(kind)
            write, count = found
            write(serialise(resource, default=default, option=option))
            count[0] += 1
            if bundle:
                entry = entries.get(section)
                if entry is None:
                    path = _part_file(_folder, index, section, "bundle")
                    entry = open(path, "wb", buffering=1 << 20)  # noqa: SIM115
                    entries[section] = entry
                    handles.append(entry)
                entry.write(b",\n" + dumps(bundle_entry(resource, "transaction")))
    finally:
        for opened in handles:
            opened.close()
    done.counts = {key: count[0] for key, (_, count) in files.items()}
    return done


# --- the whole conversion (the parent) -------------------------------------------------------------


@dataclass
class Converted:
    """What `sdtm_to_fhir` converted: rows read, tables read, resources written per type."""

    rows: int
    tables: int
    counts: dict[str, int]


def sdtm_to_fhir(src: Path, out: Path, workers: int, bundle: bool = True) -> Converted | None:
    """Convert the SDTM folder `src` into `out` on `workers` processes: the files one worker writes,
    byte for byte. None, with nothing left in `out`, when this engine does not split the input (XPT
    files, rows not in DM's subject order, a table given twice, no DM) or a part breaks a rule: then
    convert it on one worker (which reports every problem)."""
    global _plan, _folder, _bundle
    from adapter.tables import read_table

    try:
        plan, study_files = _plan_cut(src, workers)
    except (ValueError, csv.Error, StopIteration, OSError):  # one worker reports what is wrong
        return None
    study: Trial = {}
    for code, path in study_files.items():
        table, problems = read_table(path, code)
        if table is None or problems:
            return None
        study[code] = table
    folder = out / PARTS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    _plan, _folder, _bundle = plan, folder, bundle
    try:
        context = multiprocessing.get_context("fork")  # the plan is inherited, never pickled
        parts = len(plan.starts) - 1
        with context.Pool(min(workers, parts)) as pool:
            done = pool.map(_convert_part, range(parts), chunksize=1)
            if any(part.failed for part in done):
                return None
            skeleton = _skeleton(plan, study, done)
            if skeleton is None:
                return None
            counts = _concatenate(skeleton, out, folder, done, bundle, pool)
    finally:
        _plan = None
        shutil.rmtree(folder, ignore_errors=True)
    rows = sum(n for part in done for n in part.rows.values())
    rows += sum(len(t.rows) for t in study.values())
    return Converted(rows, len(plan.files) + len(study), counts)


def _skeleton(plan: _Plan, study: Trial, done: list[_PartDone]) -> Trial | None:
    """The whole trial as the study resources see it (every table's columns, TS and TA, the
    STUDYID of the rest), in the trial's table order; None when the tables name more than one
    STUDYID (the one-worker report says where)."""
    from mappings.sdtm import DOMAINS

    named = {v for t in study.values() for row in t.rows for v in [row.get("STUDYID", "")]}
    named.update(v for part in done for ids in part.studyids.values() for v in ids)
    if len(named - {""}) > 1:
        return None
    trial: Trial = {}
    for code in DOMAINS:
        if code in study:
            trial[code] = study[code]
        elif code in plan.files:
            with open(plan.files[code], "rb") as handle:
                header = handle.read(len(plan.headers[code])).decode("utf-8-sig")
            columns = next(csv.reader(io.StringIO(header, newline="")))
            ids = [v for part in done for v in part.studyids.get(code, [])]
            rows = [{"STUDYID": ids[0]}] if ids else []
            trial[code] = Table(code, columns, rows)
    return trial


def _concatenate(
    trial: Trial, out: Path, folder: Path, done: list[_PartDone], bundle: bool, pool: Any
) -> dict[str, int]:
    """The output files: the study resources (made here) first, then the part files in stream order,
    copied into place by the workers (each part file at its offset, `os.copy_file_range`)."""
    from adapter.fhir_files import bundle_entry, dumps
    from adapter.fhir_json import default

    counts: dict[str, int] = {}
    heads: dict[Path, bytearray] = {}
    layout: dict[Path, list[Path]] = {}

    def target(kind: str) -> Path:
        path = out / f"{kind}.ndjson"
        if path not in heads:
            heads[path], layout[path], counts[kind] = bytearray(), [], 0
        return path

    entries = out / "bundle.json"
    if bundle:
        heads[entries] = bytearray(
            b'{"resourceType":"Bundle","type":' + dumps("transaction") + b',"entry":['
        )
        layout[entries] = []
    separator = b"\n"
    for resource in study_resources(trial):
        kind = resource["resourceType"]
        heads[target(kind)] += orjson.dumps(
            resource, default=default, option=orjson.OPT_APPEND_NEWLINE
        )
        counts[kind] += 1
        if bundle:
            heads[entries] += separator + dumps(bundle_entry(resource, "transaction"))
            separator = b",\n"
    for section in range(len(SECTIONS)):
        firsts: dict[str, None] = {}  # the types in the order they first appear in (parts in order)
        for part in done:
            firsts.update(dict.fromkeys(part.kinds.get(section, ())))
        for kind in firsts:
            path = target(kind)
            for part in done:
                n = part.counts.get((section, kind))
                if n:
                    layout[path].append(_part_file(folder, part.index, section, kind))
                    counts[kind] += n
        if bundle:
            layout[entries].extend(
                _part_file(folder, part.index, section, "bundle")
                for part in done
                if section in part.kinds
            )
    jobs: list[tuple[str, str, int]] = []
    for path, sources in layout.items():
        offset = len(heads[path])
        for source in sources:
            jobs.append((str(source), str(path), offset))
            offset += source.stat().st_size
        with open(path, "wb") as handle:
            handle.write(heads[path])
            if path == entries:
                handle.seek(offset)
                handle.write(b"\n]}\n")
            else:
                handle.truncate(offset)
    jobs.sort(key=lambda job: -os.path.getsize(job[0]))  # the big ones first: even shares
    pool.map(_copy_into, jobs, chunksize=1)
    return counts


def _copy_into(job: tuple[str, str, int]) -> None:
    """Runs in a worker: copy part file `job[0]` into `job[1]` at offset `job[2]`, then remove it."""
    source, target, offset = job
    with open(source, "rb") as reader, open(target, "r+b") as writer:
        size = os.fstat(reader.fileno()).st_size
        copied = 0
        while copied < size:
            try:
                n = os.copy_file_range(
                    reader.fileno(),
                    writer.fileno(),
                    size - copied,
                    offset_src=copied,
                    offset_dst=offset + copied,
                )
            except OSError:  # not on this file system: through memory
                reader.seek(copied)
                n = os.pwrite(
                    writer.fileno(), reader.read(min(1 << 20, size - copied)), offset + copied
                )
            if n <= 0:
                raise OSError(f"{source}: could not copy into {target}")
            copied += n
    os.unlink(source)


# --- FHIR -> SDTM ------------------------------------------------------------------------------------

BYTES_PER_BUCKET = 64 << 20
"""FHIR -> SDTM: NDJSON bytes per bucket of subjects (a worker holds one bucket's rows, about 1.3
times its NDJSON size, while it sorts them)."""

_PATIENT_REFERENCE = b'"reference":"Patient/'
_PATIENT_HEAD = b'{"resourceType":"Patient","id":"'
_PATIENT_TYPE = b'"resourceType":"Patient"'


_CANNOT_SPLIT: Final = (LookupError, TypeError, AttributeError, ValueError, ArithmeticError)
"""What reading a line may raise on input of the wrong shape (the family readers' failures,
`mappings.trial`'s `_READER_FAILURES`): the bucket, or the whole split, then goes to the one-worker
path, which reports it by file, line and element."""


def line_key(line: bytes) -> str:
    """The subject key (`adapter.engines.subject_key`) of an NDJSON line, found by a byte scan when
    the line is laid out as this project writes it (the first Patient reference, or a Patient's id
    right after its type), else by parsing it. The worker that parses the line checks it."""
    at = line.find(_PATIENT_REFERENCE)
    if at >= 0:
        start = at + len(_PATIENT_REFERENCE)
        end = line.find(b'"', start)
        return line[start:end].decode("utf-8", "replace") if end >= 0 else ""
    if line.startswith(_PATIENT_HEAD):
        end = line.find(b'"', len(_PATIENT_HEAD))
        return line[len(_PATIENT_HEAD) : end].decode("utf-8", "replace") if end >= 0 else ""
    if _PATIENT_TYPE in line:
        try:
            return subject_key(orjson.loads(line))
        except orjson.JSONDecodeError:
            return ""
    return ""


@dataclass
class _BucketDone:
    """What a worker made of one bucket of subjects: for each domain the subjects in the order of
    its sorted rows with the bytes of their CSV rows, the counts a report needs, and `failed`."""

    index: int
    failed: bool = False
    misplaced: bool = False
    """(Cut by byte ranges) a line of a subject of another bucket: the input is not ordered by
    subject as the adapter writes it, and is spilled instead."""
    resources: int = 0
    columns: dict[str, list[str]] = field(default_factory=dict)
    blocks: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    unrecognised: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    ids: bytes = b""
    """A hash of each type and id the bucket took, 8 bytes each (int64), for the check across buckets."""


_ranges: list[tuple[Path, int, int]] = []
_buckets: int = 1

BYTES_PER_RANGE = 32 << 20
"""FHIR -> SDTM: NDJSON bytes a worker reads at once in the first pass (whole lines)."""

_RESEARCH_STUDY = b'"resourceType":"ResearchStudy"'


def _bucket_of(key: str) -> int:
    return zlib.crc32(key.encode()) % _buckets


def _line_ranges(files: list[Path]) -> list[tuple[Path, int, int]]:
    """The files cut into runs of whole lines of about `BYTES_PER_RANGE` bytes, in order."""
    ranges: list[tuple[Path, int, int]] = []
    for file in files:
        size = file.stat().st_size
        with open(file, "rb") as handle:
            start = 0
            while start < size:
                handle.seek(min(start + BYTES_PER_RANGE, size))
                handle.readline()
                end = min(handle.tell(), size)
                ranges.append((file, start, end))
                start = end
    return ranges


def _spill(index: int) -> None:
    """Runs in a worker (first pass): the lines of range `index` written, in order, to the spill
    file of their subject's bucket; ResearchStudy lines also to a spill every bucket reads (for the
    tables' layout)."""
    file, start, end = _ranges[index]
    with open(file, "rb") as source:
        source.seek(start)
        data = source.read(end - start)
    handles = [
        open(_folder / f"{index:05d}-{bucket:05d}", "wb", buffering=1 << 20)  # noqa: SIM115
        for bucket in range(_buckets)
    ]
    try:
        with open(_folder / f"{index:05d}-study", "wb") as study:
            writers = [h.write for h in handles]
            for line in io.BytesIO(data):  # split on \n alone, as the NDJSON reader does
                if line.isspace() or not line:
                    continue
                key = line_key(line)
                writers[_bucket_of(key)](line)
                if not key and _RESEARCH_STUDY in line:
                    study.write(line)
    finally:
        for handle in handles:
            handle.close()


def _taker(
    assembler: Any, done: _BucketDone, ids: set[int]
) -> Callable[[dict[str, Any], bytes, bytes | None], None]:
    """What a bucket does with each of its resources: to `assembler`, counted in `done`, its
    (type, id) kept in `ids` for the parent's check across buckets; FHIR written by others (or a
    Bundle) sends the input to one worker."""
    from mappings.foreign.combine import is_own

    add = assembler.add

    def take(resource: dict[str, Any], line: bytes, written: bytes | None) -> None:
        kind = resource.get("resourceType")
        if kind == "Bundle" or not isinstance(kind, str) or not is_own(resource):
            raise _one_worker()  # FHIR written by others: the one-worker path maps it
        add(resource, b"\\" in line and b"\\u00" in line, written)
        done.resources += 1
        rid = resource.get("id")
        if isinstance(rid, str):
            ids.add(hash((kind, rid)))

    return take


def _assemble_bucket(index: int) -> _BucketDone:
    """Runs in a worker (second pass): the lines spilled for bucket `index`, in file order, fed to
    a `TrialAssembler` (every ResearchStudy also to its study reader, for the layout); the rows
    sorted and written as CSV records per domain, grouped by subject."""
    from adapter.fhir_json import loads_line, loads_line_written
    from mappings.trial import TrialAssembler

    done = _BucketDone(index)
    study_bucket = _bucket_of("")
    assembler = TrialAssembler()
    ids: set[int] = set()
    take = _taker(assembler, done, ids)
    try:
        if index != study_bucket:
            for number in range(len(_ranges)):
                with open(_folder / f"{number:05d}-study", "rb") as handle:
                    for line in handle:
                        resource = loads_line(line)
                        if isinstance(resource, dict):
                            assembler.study.feed(resource)
        for number in range(len(_ranges)):
            with open(_folder / f"{number:05d}-{index:05d}", "rb", buffering=1 << 20) as handle:
                for line in handle:
                    resource, written = loads_line_written(line)
                    if not isinstance(resource, dict) or subject_key(resource) != line_key(line):
                        raise _one_worker()
                    take(resource, line, written)
        trial = assembler.tables()
    except _CANNOT_SPLIT:  # not JSON, refused (ResourceRefused is a ValueError), a wrong shape, ...
        done.failed = True
        return done
    return _finish_bucket(done, assembler, trial, ids, index == study_bucket)


def _finish_bucket(
    done: _BucketDone, assembler: Any, trial: Trial, ids: set[int], study: bool
) -> _BucketDone:
    """A bucket's tables checked against the study layout and written as CSV records (TS and TA
    only by the bucket of the study-level resources)."""
    from adapter.tables import cell_length_problems

    if not study:
        for code in ("TS", "TA"):
            if code in trial:
                trial[code].rows.clear()
    layout = assembler.study.columns
    for code, table in trial.items():
        if code not in layout or table.columns != layout[code]:
            done.failed = True  # no layout, or columns beyond it: their order is the whole input's
            return done
        if cell_length_problems(table, code):
            done.failed = True
            return done
    done.columns = {code: list(t.columns) for code, t in trial.items()}
    done.unrecognised = dict(assembler.unrecognised)
    done.duplicates = dict(assembler.duplicates)
    done.ids = array.array("q", ids).tobytes()
    index = done.index
    for code, table in trial.items():
        done.rows[code] = len(table.rows)
        if table.rows:
            done.blocks[code] = _write_blocks(table, _folder / f"{index:05d}-{code}.csv")
    return done


# --- FHIR -> SDTM cut by byte ranges (the adapter's own NDJSON, ordered by subject) ----------------

STRIDE = 1 << 18
"""FHIR -> SDTM: bytes between the lines sampled to find where a file's runs ordered by subject
begin (a run shorter than this may go unseen: then the cut is wrong, a worker sees a line of
another bucket's subject, and the input is spilled instead)."""

_Range = tuple[int, int, int, bool]
"""(file number, start byte, end byte, whether its lines are study-level: of no subject)."""


@dataclass
class _Cut:
    """How the NDJSON files are cut into buckets of whole subjects without a spill: each bucket's
    byte ranges in file order (its range of `Patient.ndjson`, file `patients`, names its subjects),
    and the ranges of study-level lines (bucket 0 assembles them; every bucket reads their
    ResearchStudies for the tables' layout). The subjects' positions are the parent's, while it
    plans: the workers do not inherit them (2 million subjects take about 300 MB)."""

    files: list[Path]
    patients: int
    ranges: list[list[_Range]]
    study: list[_Range]


_byte_cut: _Cut | None = None


def _patient_ids(lines: Iterable[bytes]) -> Iterator[str | None]:
    """The id of each Patient line as the adapter writes it (its id right after its type), None for
    a line that is not so; blank lines skipped."""
    head = len(_PATIENT_HEAD)
    for line in lines:
        if line.startswith(_PATIENT_HEAD):
            end = line.find(b'"', head)
            yield line[head:end].decode("utf-8", "replace") if end >= 0 else None
        elif not line.isspace():
            yield None


def _patient_order(path: Path) -> dict[str, int] | None:
    """Each Patient id's position in `path` (`Patient.ndjson`); None when a line is not a Patient
    as the adapter writes it."""
    order: dict[str, int] = {}
    with open(path, "rb", buffering=1 << 20) as handle:
        for found in _patient_ids(handle):
            if found is None:
                return None
            order.setdefault(found, len(order))
    return order


class _NdjsonFile:
    """An NDJSON file read a line at a time at byte offsets, each line's subject position by the
    byte scan of `line_key` (-1 for no subject, None for a subject without a Patient)."""

    def __init__(self, handle: IO[bytes], size: int, order: dict[str, int]) -> None:
        self.handle, self.size, self.order = handle, size, order

    def line_at_or_after(self, offset: int) -> int:
        if offset <= 0:
            return 0
        if offset >= self.size:
            return self.size
        self.handle.seek(offset - 1)
        self.handle.readline()
        return min(self.handle.tell(), self.size)

    def position(self, start: int) -> int | None:
        if start >= self.size:
            return len(self.order)
        self.handle.seek(start)
        key = line_key(self.handle.readline())
        return self.order.get(key) if key else -1

    def first(self, low: int, high: int, below: bool, than: int) -> int:
        """The first line start in [low, high) (`low` a line start) whose position is below `than`
        (`below`) or at least `than` (not `below`), `high` when none: a bisection over the bytes,
        right when the lines there are ordered so (a subject without a Patient counts as found)."""
        start, end = low, high
        while start < end:
            middle = (start + end) // 2
            line = self.line_at_or_after(middle)
            if line >= high:
                end = middle
                continue
            position = self.position(line)
            if position is None or (position < than) == below:
                end = middle
            else:
                start = middle + 1
        return min(self.line_at_or_after(start), high)


def _plan_ranges(files: list[Path], buckets: int) -> _Cut | None:
    """The cut of `files` into `buckets` buckets of whole subjects by byte ranges, when they look
    ordered as the adapter writes them (each file runs of lines ordered by subject, in the order of
    `Patient.ndjson`: a section of the stream after another); None when they plainly are not. The
    workers check every line (`_assemble_range`); the cut only has to be right for that check to
    pass. Subjects are dealt out as `split_by_subject` deals them (`part_starts`)."""
    named = [number for number, f in enumerate(files) if f.name == "Patient.ndjson"]
    if len(named) != 1:
        return None
    order = _patient_order(files[named[0]])
    if not order:
        return None
    starts = part_starts(len(order), buckets)
    buckets = len(starts) - 1
    ranges: list[list[_Range]] = [[] for _ in range(buckets)]
    study: list[_Range] = []
    thresholds = [0, *starts[1:-1]]
    for number, path in enumerate(files):
        size = path.stat().st_size
        if not size:
            continue
        with open(path, "rb") as handle:
            file = _NdjsonFile(handle, size, order)
            samples = sorted({file.line_at_or_after(o) for o in range(0, size, STRIDE)} - {size})
            positions = [file.position(s) for s in samples]
            if any(p is None for p in positions):
                return None  # a subject without a Patient: spilled (the check is there)
            runs = [0]
            for i in range(len(samples) - 1):
                here, there = positions[i], positions[i + 1]
                assert here is not None and there is not None
                if there < here:  # a new run begins after samples[i]
                    runs.append(file.first(samples[i], samples[i + 1], True, here))
            runs.append(size)
            for run_start, run_end in itertools.pairwise(runs):
                cuts = [run_start]
                for threshold in thresholds:
                    cuts.append(file.first(cuts[-1], run_end, False, threshold))
                cuts.append(run_end)
                if cuts[1] > cuts[0]:
                    study.append((number, cuts[0], cuts[1], True))
                for bucket in range(buckets):
                    low, high = cuts[bucket + 1], cuts[bucket + 2]
                    if high > low:
                        ranges[bucket].append((number, low, high, False))
    if study:  # the study-level lines go to bucket 0, in file order with its own
        ranges[0] = sorted([*study, *ranges[0]])
    return _Cut(files, named[0], ranges, study)


def _range_lines(path: Path, start: int, end: int) -> Iterator[bytes]:
    """The lines of `path` from byte `start` to `end` (both line starts)."""
    with open(path, "rb", buffering=1 << 20) as handle:
        handle.seek(start)
        left = end - start
        for line in handle:
            yield line
            left -= len(line)
            if left <= 0:
                return


def _assemble_range(index: int) -> _BucketDone:
    """Runs in a worker: bucket `index`'s byte ranges, in file order, fed to a `TrialAssembler`
    (the other buckets' first: every ResearchStudy of the study-level ranges to its study reader,
    for the layout), each line checked to be of a subject of this bucket (one whose Patient is in
    its range of `Patient.ndjson`; a subject there in two buckets is one id in two buckets, which
    the parent catches) or study-level in a study-level range (else `misplaced`); then as
    `_assemble_bucket`."""
    from adapter.fhir_json import loads_line, loads_line_written
    from mappings.trial import TrialAssembler

    cut = _byte_cut
    assert cut is not None
    done = _BucketDone(index)
    assembler = TrialAssembler()
    ids: set[int] = set()
    take = _taker(assembler, done, ids)
    files = cut.files
    mine: set[str | None] = set()
    for number, start, end, study in cut.ranges[index]:
        if number == cut.patients and not study:
            mine.update(_patient_ids(_range_lines(files[number], start, end)))
    mine -= {None, ""}
    try:
        if index != 0:
            for number, start, end, _ in cut.study:
                for line in _range_lines(files[number], start, end):
                    if line.isspace():
                        continue  # bucket 0 skips it too
                    resource = loads_line(line)
                    if (
                        isinstance(resource, dict)
                        and resource.get("resourceType") == "ResearchStudy"
                    ):
                        assembler.study.feed(resource)
        for number, start, end, study in cut.ranges[index]:
            for line in _range_lines(files[number], start, end):
                if line.isspace():
                    continue
                resource, written = loads_line_written(line)
                if not isinstance(resource, dict):
                    raise _one_worker()
                key = subject_key(resource)
                if (key != "") if study else (key not in mine):
                    done.misplaced = True
                    return done
                take(resource, line, written)
        trial = assembler.tables()
    except _CANNOT_SPLIT:  # not JSON, refused (ResourceRefused is a ValueError), a wrong shape, ...
        done.failed = True
        return done
    return _finish_bucket(done, assembler, trial, ids, index == 0)


def _write_blocks(table: Table, path: Path) -> list[tuple[str, int]]:
    """Write `table`'s rows as CSV records (no header), as `adapter.tables.write_table` writes them;
    returns each run of one subject's rows (its USUBJID, "" for a study-level table) and its bytes."""
    blocks: list[tuple[str, int]] = []
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    columns = table.columns
    with open(path, "wb") as handle:
        current: str | None = None
        rows: list[tuple[str, ...]] = []

        def flush() -> None:
            if current is None:
                return
            writer.writerows(rows)
            data = buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
            handle.write(data)
            blocks.append((current, len(data)))
            rows.clear()

        subject_level = table.spec.subject_level
        cells = operator.itemgetter(*columns)  # `tables()` gave every row every column
        single = len(columns) == 1
        for row in table.rows:
            usubjid = row.get("USUBJID", "") if subject_level else ""
            if usubjid != current:
                flush()
                current = usubjid
            rows.append((row[columns[0]],) if single else cells(row))
        flush()
    return blocks


@dataclass
class Assembled:
    """What `fhir_to_sdtm` converted: resources read, rows written per domain, the resources no
    family took and those read twice (type -> count)."""

    resources: int
    counts: dict[str, int]
    unrecognised: dict[str, int]
    duplicates: dict[str, int]


def fhir_to_sdtm(src: Path, out: Path, workers: int) -> Assembled | None:
    """Convert the NDJSON of `src` (a folder of `.ndjson` files or one such file) into `out` on
    `workers` processes: the CSV files one worker writes, byte for byte. None, with nothing left in
    `out`, when this engine does not split the input (gzip or Bundle files, no study layout, a line
    whose subject the byte scan misreads, one id on two buckets) or a line is refused: then convert
    it on one worker (which reports what is wrong)."""
    global _ranges, _buckets, _folder, _byte_cut
    from adapter.fhir_files import FhirFileError, resource_files

    try:
        files = resource_files(src)
    except FhirFileError:
        return None
    if not files or any(not f.name.lower().endswith(".ndjson") for f in files):
        return None
    size = sum(f.stat().st_size for f in files)
    buckets = workers * max(1, -(-size // (BYTES_PER_BUCKET * workers)))
    folder = out / PARTS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    _folder = folder
    context = multiprocessing.get_context("fork")  # the plan is inherited, never pickled
    try:
        done: list[_BucketDone] | None = None
        _byte_cut = _plan_ranges(files, buckets)
        if _byte_cut is not None:
            with context.Pool(min(workers, len(_byte_cut.ranges))) as pool:
                done = pool.map(_assemble_range, range(len(_byte_cut.ranges)), chunksize=1)
            if any(b.misplaced for b in done):  # not ordered by subject: spilled instead
                done = None
                for leftover in folder.iterdir():
                    leftover.unlink()
        if done is None:
            _ranges, _buckets = _line_ranges(files), buckets
            with context.Pool(workers) as pool:
                pool.map(_spill, range(len(_ranges)), chunksize=1)
                done = pool.map(_assemble_bucket, range(buckets), chunksize=1)
        if any(b.failed for b in done):
            return None
        if _shared_ids(done):  # one type and id in two buckets: different content (a refusal)
            return None
        counts = _merge_tables(done, out, folder)
    except _CANNOT_SPLIT:  # a line the split's own reading cannot take: one worker says why
        return None
    finally:
        _byte_cut = None
        shutil.rmtree(folder, ignore_errors=True)
    if counts is None:
        return None
    unrecognised: Counter[str] = Counter()
    duplicates: Counter[str] = Counter()
    for bucket in done:
        unrecognised.update(bucket.unrecognised)
        duplicates.update(bucket.duplicates)
    resources = sum(b.resources for b in done)
    return Assembled(resources, counts, dict(unrecognised), dict(duplicates))


def _shared_ids(done: list[_BucketDone]) -> bool:
    """Whether a type and id (by its 8-byte hash) was taken by two buckets (a hash collision only
    costs a conversion on one worker)."""
    import numpy as np

    hashes = np.concatenate([np.frombuffer(b.ids, dtype=np.int64) for b in done])
    for bucket in done:
        bucket.ids = b""
    hashes.sort()
    return bool(len(hashes) > 1 and (hashes[1:] == hashes[:-1]).any())


def _merge_tables(done: list[_BucketDone], out: Path, folder: Path) -> dict[str, int] | None:
    """Each domain's CSV file: its header, then the buckets' runs of rows merged by USUBJID (the
    first member of every domain's sort order); None when no row was made. a `ValueError` when one
    USUBJID has rows in two buckets."""
    columns = done[0].columns
    if any(b.columns != columns for b in done):
        raise _one_worker()  # every bucket read the same layout: a bug otherwise
    if not any(b.rows.get(code) for b in done for code in columns):
        return None
    counts: dict[str, int] = {}
    for code, names in columns.items():
        path = out / f"{code.lower()}.csv"
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_MINIMAL).writerow(names)
        sources = {b.index: folder / f"{b.index:05d}-{code}.csv" for b in done if code in b.blocks}
        handles = {i: open(p, "rb") for i, p in sources.items()}  # noqa: SIM115
        try:
            with open(path, "wb") as target:
                target.write(buffer.getvalue().encode("utf-8"))
                streams = [
                    [(usubjid, b.index, n) for usubjid, n in b.blocks[code]]
                    for b in done
                    if code in b.blocks
                ]
                last: tuple[str, int] | None = None
                for usubjid, index, n in heapq.merge(*streams):
                    if last is not None and last[0] == usubjid and last[1] != index:
                        raise _one_worker()
                    last = (usubjid, index)
                    target.write(handles[index].read(n))
        finally:
            for handle in handles.values():
                handle.close()
        counts[code] = sum(b.rows.get(code, 0) for b in done)
    return counts
