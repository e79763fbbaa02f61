"""`--engine spark`: the conversion run on Apache Spark, per subject, with the same output bytes as the
local engine.

SDTM -> FHIR: the driver reads and checks the tables exactly as the local engine does (every problem
at once, exit 3), cuts the subject-level tables into parts of whole subjects
(`adapter.engines.split_by_subject`) and hands one part to each Spark partition. Each partition runs
the mapping families over its part and serialises its resources (NDJSON line and Bundle entry, decimals
as written); the resources are range-partitioned and sorted by their place in the local stream
(`adapter.engines.part_resources`) and streamed back to the driver, which writes the files.

FHIR -> SDTM: Spark reads the raw NDJSON text (one record per line, with its file and line number);
each line is keyed by its subject (the Patient it is or points to; study-level resources share one
key) and the lines are partitioned by that key. Each partition parses its lines with the exact reader
(`adapter.fhir_json.loads_line`: written decimals and primitive extensions kept), feeds them in file
order to a `TrialAssembler` and returns its rows; the driver puts the rows together with the study
layout and sorts them as the local engine does.

Spark is imported only here (the `spark` extra); see docs/performance.md and docs/cli.md.
"""

from __future__ import annotations

import os
import sys
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from adapter.engines import (
    SECTIONS,
    SubjectPart,
    part_resources,
    split_by_subject,
    study_resources,
    subject_key,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from mappings.sdtm import Trial

__all__ = [
    "DEFAULT_MASTER",
    "FhirToSdtm",
    "SdtmToFhir",
    "fhir_to_sdtm",
    "sdtm_to_fhir",
    "spark_session",
]

DEFAULT_MASTER = "local[2]"

ROWS_PER_BUCKET = 10_000
"""SDTM -> FHIR: source rows per sorted output partition (about 13 MB of JSON with their Bundle
entries); the driver streams one partition at a time."""

BYTES_PER_PARTITION = 16 << 20
"""FHIR -> SDTM: NDJSON bytes per subject partition (its rows come back to the driver one partition at a
time)."""

Record = tuple[tuple[int, int, int], tuple[str, bytes, bytes, bytes]]


def spark_session(master: str | None = None, app: str = "trialfhir") -> SparkSession:
    """A Spark session on `master` (default `local[2]`; a cluster URL such as `spark://host:7077`).

    The workers run this interpreter locally; on a cluster the adapter's and the mappings' code is
    shipped with the job (`addPyFile`), and the workers need orjson installed."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    url = master or DEFAULT_MASTER
    builder = (
        SparkSession.builder.master(url)
        .appName(app)
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.python.worker.reuse", "true")
        # local[N]: the driver JVM is also the executor and holds the shuffled pages
        .config("spark.driver.memory", os.environ.get("TRIALFHIR_SPARK_DRIVER_MEMORY", "2g"))
    )
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    if not url.startswith("local"):
        session.sparkContext.addPyFile(str(_code_zip()))
    return session


def _code_zip() -> Path:
    """The `adapter` and `mappings` packages zipped, to ship to a cluster's workers."""
    import tempfile

    import adapter
    import mappings

    target = Path(tempfile.mkdtemp(prefix="trialfhir-code-")) / "trialfhir.zip"
    with zipfile.ZipFile(target, "w") as archive:
        for package in (adapter, mappings):
            root = Path(str(package.__file__)).parent
            for path in root.rglob("*.py"):
                archive.write(path, path.relative_to(root.parent))
    return target


# --- SDTM -> FHIR ----------------------------------------------------------------------------------


def _part_records(parts: Iterable[SubjectPart], bundle: bool = True) -> Iterator[Record]:
    """Runs in a Spark partition: every resource of its parts, serialised, keyed by its place (with
    its Bundle entry's head and tail when `bundle`, else empty)."""
    from adapter.fhir_json import dumps

    for part in parts:
        for place, resource in part_resources(part):
            yield place, (resource["resourceType"], dumps(resource), *_entry_ends(resource, bundle))


def _entry_ends(resource: dict[str, Any], bundle: bool) -> tuple[bytes, bytes]:
    """The bytes before and after the resource in its `bundle.json` entry (empty without `bundle`)."""
    if not bundle:
        return b"", b""
    from adapter.fhir_files import bundle_entry
    from adapter.fhir_json import dumps

    entry = bundle_entry(resource, "transaction")
    head = b'{"fullUrl":' + dumps(entry["fullUrl"]) + b',"resource":'
    tail = b',"request":' + dumps(entry["request"]) + b"}"
    return head, tail


class SdtmToFhir:
    """What `sdtm_to_fhir` wrote: resources per type, in the order of the stream."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}


class _Writer:
    """The local engine's files from serialised resources: `<Type>.ndjson`, and with `bundle` also
    `bundle.json` (the layout of `adapter.fhir_files.write_ndjson` and `BundleWriter`)."""

    def __init__(self, folder: Path, bundle: bool = False) -> None:
        self.folder = folder
        self.counts: dict[str, int] = {}
        self._handles: dict[str, Any] = {}
        self._bundle: Any = None
        if bundle:
            self._bundle = open(folder / "bundle.json", "wb", buffering=1 << 20)  # noqa: SIM115
            self._bundle.write(b'{"resourceType":"Bundle","type":"transaction","entry":[')
        self._separator = b"\n"

    def add(self, kind: str, line: bytes, head: bytes, tail: bytes) -> None:
        handle = self._handles.get(kind)
        if handle is None:
            handle = open(self.folder / f"{kind}.ndjson", "wb", buffering=1 << 20)  # noqa: SIM115
            self._handles[kind] = handle
            self.counts[kind] = 0
        handle.write(line + b"\n")
        self.counts[kind] += 1
        if self._bundle is not None:
            self._bundle.write(self._separator + head + line + tail)
            self._separator = b",\n"

    def close(self, complete: bool) -> None:
        for handle in self._handles.values():
            handle.close()
        if self._bundle is not None:
            if complete:
                self._bundle.write(b"\n]}\n")
            self._bundle.close()


def sdtm_to_fhir(
    spark: SparkSession,
    trial: Trial,
    out: Path,
    partitions: int | None = None,
    bundle: bool = False,
) -> dict[str, int]:
    """Write `trial` (already read and checked) as FHIR into `out`, mapped on Spark; returns the
    count per resource type. The files are the local engine's, byte for byte (`bundle`: also
    `bundle.json`, as `convert --bundle`)."""
    context = spark.sparkContext
    count = partitions or context.defaultParallelism
    parts = split_by_subject(trial, count)
    out.mkdir(parents=True, exist_ok=True)
    writer = _Writer(out, bundle)
    complete = False
    try:
        for record in _part_records_from_study(trial, bundle):
            writer.add(*record[1])
        if parts:
            offsets, total = _section_offsets(trial)
            # about ROWS_PER_BUCKET source rows per output partition: the driver holds one at a time
            buckets = max(len(parts), -(-total // ROWS_PER_BUCKET))

            def bucket(place: tuple[int, int, int]) -> int:
                return min(buckets - 1, (offsets[place[0]] + place[1]) * buckets // total)

            placed = (
                context.parallelize(parts, len(parts))
                .mapPartitions(partial(_part_records, bundle=bundle))
                .repartitionAndSortWithinPartitions(buckets, bucket)  # type: ignore[call-overload]
            )
            for _, value in placed.toLocalIterator(prefetchPartitions=True):
                writer.add(*value)
        complete = True
    finally:
        writer.close(complete)
    return writer.counts


def _part_records_from_study(trial: Trial, bundle: bool = True) -> Iterator[Record]:
    from adapter.fhir_json import dumps

    for resource in study_resources(trial):
        yield (
            (-1, 0, 0),
            (resource["resourceType"], dumps(resource), *_entry_ends(resource, bundle)),
        )


def _section_offsets(trial: Trial) -> tuple[dict[int, int], int]:
    """Where each section of the stream starts when its rows are laid end to end (for the range
    partitioner), and the total (at least 1)."""
    offsets: dict[int, int] = {}
    total = 0
    for index, (_, domain) in enumerate(SECTIONS):
        offsets[index] = total
        table = trial.get(domain)
        total += len(table.rows) if table is not None else 0
    return offsets, max(total, 1)


# --- FHIR -> SDTM ----------------------------------------------------------------------------------


def _subject_key(line: bytes) -> str:
    """The subject a resource belongs to (`adapter.engines.subject_key`), "" for unreadable text."""
    try:
        resource = orjson.loads(line)
    except orjson.JSONDecodeError:
        return ""
    return subject_key(resource) if isinstance(resource, dict) else ""


def _partition_of(key: str) -> int:
    return zlib.crc32(key.encode())


def _assemble(records: Iterable[tuple[str, tuple[int, int, bytes]]]) -> Iterator[dict[str, Any]]:
    """Runs in a Spark partition: its lines parsed exactly, fed in file order, and the rows made."""
    import json

    from adapter.fhir_json import loads_line
    from mappings.trial import TrialAssembler

    lines = sorted((value for _, value in records), key=lambda v: (v[0], v[1]))
    assembler = TrialAssembler()
    errors: list[tuple[int, int, str]] = []
    resources = 0
    for file_index, number, line in lines:
        if not line.strip():
            continue
        try:
            resource = loads_line(line)
        except (orjson.JSONDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            errors.append((file_index, number, f"not JSON: {exc}"))
            continue
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            errors.append((file_index, number, "not a FHIR resource (no resourceType)"))
            continue
        resources += 1
        assembler.add(resource)
    rows: dict[str, list[dict[str, str]]] = {}
    for reader in assembler.readers:
        for domain, found in reader.rows().items():
            rows.setdefault(domain, []).extend(found)
    yield {
        "errors": errors,
        "rows": rows,
        "columns": assembler.study.columns,
        "unrecognised": dict(assembler.unrecognised),
        "resources": resources,
    }


class _Rows:
    """A family reader that holds rows already made (by the partitions)."""

    def __init__(self, rows: dict[str, list[dict[str, str]]]) -> None:
        self._rows = rows

    def feed(self, resource: Any) -> bool:
        return False

    def rows(self) -> dict[str, list[dict[str, str]]]:
        return self._rows


class FhirToSdtm:
    """What `fhir_to_sdtm` read: the tables, the files, the resources read and those no family
    took (type -> count)."""

    def __init__(self, trial: Trial, files: list[str], resources: int, unrecognised: Counter[str]):
        self.trial = trial
        self.files = files
        self.resources = resources
        self.unrecognised = unrecognised


def ndjson_files(src: Path) -> list[Path]:
    """The NDJSON files of `src` (a folder of `.ndjson` files or one `.ndjson` file), as the local
    reader orders them.

    Raises:
        FhirFileError: `src` holds no NDJSON (Bundle files are read by the local engine only).
    """
    from adapter.fhir_files import FhirFileError

    if src.is_dir():
        files = sorted(p for p in src.iterdir() if p.is_file() and p.suffix.lower() == ".ndjson")
        if not files:
            raise FhirFileError(
                src, None, "no .ndjson files in this folder (--engine spark reads NDJSON only)"
            )
        return files
    if src.suffix.lower() != ".ndjson":
        raise FhirFileError(src, None, "not an .ndjson file (--engine spark reads NDJSON only)")
    return [src]


def fhir_to_sdtm(spark: SparkSession, src: Path, partitions: int | None = None) -> FhirToSdtm:
    """The trial's tables rebuilt on Spark from the NDJSON in `src` (the local engine's tables).

    Raises:
        FhirFileError: naming the file and line of the first line that is not a FHIR resource.
    """
    from adapter.fhir_files import FhirFileError
    from mappings.trial import TrialAssembler

    files = ndjson_files(src)
    context = spark.sparkContext
    size = sum(f.stat().st_size for f in files)
    count = partitions or max(context.defaultParallelism, -(-size // BYTES_PER_PARTITION))
    lines = None
    for index, file in enumerate(files):

        def tagged(item: tuple[bytes, int], index: int = index) -> tuple[int, int, bytes]:
            return index, item[1] + 1, item[0]

        # one partition per file unless it is large (then zipWithIndex runs one small counting job)
        text: Any = context.textFile(str(file), 1, use_unicode=False)  # bytes (stubs say str)
        numbered = text.zipWithIndex().map(tagged)
        lines = numbered if lines is None else lines.union(numbered)
    assert lines is not None
    results = (
        lines.map(lambda v: (_subject_key(v[2]), v))
        .partitionBy(count, _partition_of)
        .mapPartitions(_assemble)
        .toLocalIterator()
    )
    results = list(results)
    errors = sorted(e for result in results for e in result["errors"])
    if errors:
        file_index, number, reason = errors[0]
        raise FhirFileError(files[file_index], number, reason)
    assembler = TrialAssembler()
    for result in results:  # the first study to carry a domain wins (one partition holds them all)
        for domain, columns in result["columns"].items():
            assembler.study.columns.setdefault(domain, columns)
    merged: dict[str, list[dict[str, str]]] = {}
    unrecognised: Counter[str] = Counter()
    resources = 0
    for result in results:
        for domain, found in result["rows"].items():
            merged.setdefault(domain, []).extend(found)
        unrecognised.update(result["unrecognised"])
        resources += result["resources"]
    assembler.readers = [_Rows(merged)]
    return FhirToSdtm(assembler.tables(), [str(f) for f in files], resources, unrecognised)
