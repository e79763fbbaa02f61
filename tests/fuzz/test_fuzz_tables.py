"""Fuzz: SDTM tables as files (CSV text, SAS transport bytes), taken from valid trial folders and
mutated, read, and carried on through the mappings to FHIR and back.

Properties: reading ends in a trial or `TableError` (nothing else); a trial that reads writes as CSV and
reads back with the same cells; it maps to FHIR whose primitives R4 allows, and the FHIR, written and
read back as NDJSON, rebuilds the same tables; a transport file cut short reads whole or is refused.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from hypothesis import event, given
from hypothesis import strategies as st

from adapter.fhir_files import read_resources, write_ndjson
from adapter.tables import TableError, read_table, read_trial, write_trial
from mappings.sdtm import DOMAINS, Trial
from mappings.trial import fhir_to_trial, trial_to_fhir

from .mutations import (
    DALAKAS,
    SMALL,
    ByteEdit,
    CsvEdit,
    Edit,
    Recipe,
    apply_all,
    bad_primitives,
    byte_edits,
    cells,
    csv_files,
    documented,
    file_edits,
    fuzz_settings,
    known,
    run_guarded,
    undocumented,
    valid_trial,
)

SOURCES = {"sdtm_small": SMALL, "dalakas1993": DALAKAS}


def rows_as_set(trial: Trial) -> dict[str, tuple[list[str], list[list[str]]]]:
    """`cells`, rows sorted: the way back orders rows by the domain's keys (docs/mapping.md)."""
    return {code: (columns, sorted(rows)) for code, (columns, rows) in cells(trial).items()}


def assert_round_trips(trial: Trial, scratch: Path) -> None:
    """The properties of a trial that was read: CSV write -> read gives the same cells; the mappings
    give FHIR R4 allows; NDJSON write -> read -> tables gives the same cells."""
    written = scratch / "written"
    write_trial(trial, written)
    again, error = run_guarded(lambda: read_trial(written))
    assert error is None, (
        f"tables that read were written as CSV that does not read back: {error!r:.500}"
    )
    assert cells(again) == cells(trial), "CSV write -> read changed a cell"

    resources, error = run_guarded(lambda: list(trial_to_fhir(trial)))
    if error is not None:
        assert documented(error), undocumented(error)
        return
    problems = sorted(set(bad_primitives(resources)))
    assert not problems, f"a trial that reads maps to FHIR R4 does not allow: {problems[:5]}"
    fhir = scratch / "fhir"
    write_ndjson(resources, fhir)
    back, error = run_guarded(lambda: fhir_to_trial(read_resources(fhir)))
    assert error is None, f"our own FHIR does not map back: {error!r:.500}"
    assert rows_as_set(back) == rows_as_set(trial), "SDTM -> FHIR -> SDTM changed a cell"


# --- CSV ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CsvCase(Recipe):
    """A valid trial folder (`source`) with `edits` made to some of its CSV files."""

    source: str
    edits: tuple[tuple[str, Edit], ...]

    def write(self, folder: Path) -> Path:
        files = dict(csv_files(SOURCES[self.source]))
        for name, edit in self.edits:
            files[name] = apply_all(files[name], [edit])
        folder.mkdir()
        for name, data in files.items():
            (folder / name).write_bytes(data)
        return folder


@st.composite
def csv_cases(draw: st.DrawFn) -> CsvCase:
    source = draw(st.sampled_from(sorted(SOURCES)))
    files = csv_files(SOURCES[source])
    edits: list[tuple[str, Edit]] = []
    for _ in range(draw(st.integers(1, 2))):
        name = draw(st.sampled_from(sorted(files)))
        edits.append((name, draw(file_edits(len(files[name])))))
    return CsvCase(source, tuple(edits))


@fuzz_settings(150)
@known(
    # issue 8: year 0000 passes into FHIR (ResearchSubject.period.start)
    {
        "case": CsvCase(
            "sdtm_small", (("dm.csv", CsvEdit("cell", 0, 4, "year 0000", "0000-01-01")),)
        )
    },
    # issue 8: NUL passes into FHIR strings
    {"case": CsvCase("sdtm_small", (("dm.csv", CsvEdit("cell", 0, 6, "NUL", "a\x00b")),))},
)
@given(case=csv_cases())
def test_a_mutated_csv_trial_reads_or_is_refused_and_what_reads_round_trips(case: CsvCase) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = case.write(Path(tmp) / "trial")
        trial, error = run_guarded(lambda: read_trial(folder))
        event(f"read: {type(error).__name__ if error else 'a trial'}")
        if error is not None:
            assert isinstance(error, TableError), undocumented(error)
            assert error.problems, "a TableError lists its problems"
            return
        assert_round_trips(trial, Path(tmp))


# --- SAS transport (.xpt) -------------------------------------------------------------------------------------

XPT_DOMAINS = ("DM", "VS", "EX", "QS")


@cache
def xpt_bytes(domain: str) -> bytes:
    """sdtm_small's `domain` as a version 5 transport file (pyreadstat), numeric variables as SAS
    numerics."""
    import pandas as pd
    import pyreadstat

    table = valid_trial(SMALL)[domain]
    frame = pd.DataFrame({c: [row[c] for row in table.rows] for c in table.columns}, dtype=object)
    for column in table.columns:
        if column in DOMAINS[domain].numeric:
            frame[column] = pd.to_numeric(frame[column].replace("", None), errors="raise")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{domain.lower()}.xpt"
        pyreadstat.write_xport(frame, str(path), table_name=domain, file_format_version=5)
        return path.read_bytes()


@dataclass(frozen=True)
class RecordEdit(Recipe):
    """`duplicate` or `remove` the 80-byte transport record number `record`."""

    op: str
    record: int

    def apply(self, data: bytes) -> bytes:
        count = len(data) // 80
        at = (self.record % count) * 80 if count else 0
        record = data[at : at + 80]
        if self.op == "duplicate":
            return data[:at] + record + data[at:]
        return data[:at] + data[at + 80 :]


@dataclass(frozen=True)
class XptCase(Recipe):
    """sdtm_small with `domain` given as a transport file (instead of its CSV), then `edits`."""

    domain: str
    edits: tuple[ByteEdit | RecordEdit, ...]

    def write(self, folder: Path) -> Path:
        shutil.copytree(SMALL, folder)
        (folder / f"{self.domain.lower()}.csv").unlink()
        data = xpt_bytes(self.domain)
        for edit in self.edits:
            data = edit.apply(data)
        (folder / f"{self.domain.lower()}.xpt").write_bytes(data)
        return folder

    @property
    def truncated(self) -> bool:
        return any(isinstance(e, ByteEdit) and e.op == "truncate" for e in self.edits)


@st.composite
def xpt_cases(draw: st.DrawFn) -> XptCase:
    domain = draw(st.sampled_from(XPT_DOMAINS))
    size = len(xpt_bytes(domain))
    record_edits = st.builds(
        RecordEdit, st.sampled_from(["duplicate", "remove"]), st.integers(0, 200)
    )
    truncation = st.builds(ByteEdit, st.just("truncate"), st.integers(0, size))
    edit = st.one_of(byte_edits(size), record_edits, truncation)
    return XptCase(domain, tuple(draw(st.lists(edit, min_size=1, max_size=2))))


@fuzz_settings(100)
@known({"case": XptCase("EX", (ByteEdit("truncate", 2536),))})  # issue 8: cut short, rows missing
@given(case=xpt_cases())
def test_a_mutated_transport_file_reads_or_is_refused_and_a_cut_one_never_loses_rows(
    case: XptCase,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = case.write(Path(tmp) / "trial")
        trial, error = run_guarded(lambda: read_trial(folder))
        event(f"read: {type(error).__name__ if error else 'a trial'}")
        if error is not None:
            assert isinstance(error, TableError), undocumented(error)
            return
        if case.truncated and all(isinstance(e, ByteEdit) for e in case.edits):
            whole = Path(tmp) / "whole.xpt"
            whole.write_bytes(xpt_bytes(case.domain))
            expected, _ = read_table(whole, case.domain)
            assert expected is not None
            assert cells({case.domain: trial[case.domain]}) == cells({case.domain: expected}), (
                "a transport file cut short was read with rows or cells missing"
            )
        assert_round_trips(trial, Path(tmp))
