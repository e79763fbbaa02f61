"""`convert --workers N` (adapter.engines.workers): the same bytes as one worker both ways, the same
report of bad input, part files cleaned up, and the problem list of a bad table capped."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import adapter.engines.workers as workers
from adapter.cli import main
from adapter.cli._common import MANIFEST
from adapter.testing.cohort import generate_scaled, write_csv_folder

DATA = Path(__file__).parent / "data"
DALAKAS = Path(__file__).resolve().parents[1] / "adapter" / "studies" / "dalakas1993"


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, ["convert", *map(str, args)])


def files(folder: Path) -> dict[str, bytes]:
    """Every file of an output folder but its manifest."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


def siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir())


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated cohort of 220 subjects (about 51,000 rows) as CSV."""
    folder = tmp_path_factory.mktemp("cohort") / "sdtm"
    write_csv_folder(generate_scaled(220, 20261130), folder)
    return folder


@pytest.fixture(scope="module")
def cohort_fhir(cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cohort-fhir") / "fhir"
    result = run(cohort, "--out", out, "--workers", "1", "--bundle")
    assert result.exit_code == 0, result.output
    return out


def both_ways(src: Path, tmp_path: Path, *options: str) -> tuple[Result, Result, Path, Path]:
    one, two = tmp_path / "one", tmp_path / "two"
    first = run(src, "--out", one, "--workers", "1", *options)
    second = run(src, "--out", two, "--workers", "2", *options)
    return first, second, one, two


# --- the same bytes --------------------------------------------------------------------------------


@pytest.mark.parametrize("src", [DALAKAS, DATA / "sdtm_clinical", DATA / "sdtm_small"])
def test_sdtm_to_fhir_on_two_workers_writes_the_bytes_of_one(src: Path, tmp_path: Path) -> None:
    first, second, one, two = both_ways(src, tmp_path, "--bundle")
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert first.stdout.replace(str(one), "OUT") == second.stdout.replace(str(two), "OUT")
    assert files(one) == files(two)
    assert "bundle.json" in files(two)
    direct = tmp_path / "direct"
    direct.mkdir()
    assert workers.sdtm_to_fhir(src, direct, 2) is not None  # split, not handed to one worker
    assert files(direct) == files(one)


def test_a_cohort_of_220_subjects_is_cut_into_parts_and_written_the_same(
    cohort: Path, cohort_fhir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "parts"
    out.mkdir()
    done = workers.sdtm_to_fhir(cohort, out, 2)
    assert done is not None  # cut by subject, not handed back to one worker
    assert len(list((cohort / "dm.csv").read_text().splitlines())) == 221
    assert files(out) == files(cohort_fhir)
    assert not (out / workers.PARTS_FOLDER).exists()
    result = run(cohort, "--out", tmp_path / "cli", "--workers", "3", "--bundle")
    assert result.exit_code == 0, result.output
    assert files(tmp_path / "cli") == files(cohort_fhir)


def test_more_parts_than_workers_give_the_same_bytes(
    cohort: Path, cohort_fhir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workers, "BYTES_PER_PART", 500_000)  # about ten parts on two workers
    out = tmp_path / "out"
    out.mkdir()
    assert workers.sdtm_to_fhir(cohort, out, 2) is not None
    assert files(out) == files(cohort_fhir)


@pytest.mark.parametrize("option", [[], ["--no-bundle"]], ids=["default", "--no-bundle"])
def test_without_bundle_the_ndjson_alone_is_written(
    option: list[str], cohort: Path, cohort_fhir: Path, tmp_path: Path
) -> None:
    first, second, one, two = both_ways(cohort, tmp_path, *option)
    assert first.exit_code == 0 and second.exit_code == 0
    expected = {k: v for k, v in files(cohort_fhir).items() if k != "bundle.json"}
    assert "bundle.json" in files(cohort_fhir)
    assert files(one) == files(two) == expected


def test_rows_that_interleave_subjects_convert_on_one_worker(tmp_path: Path) -> None:
    src = tmp_path / "sdtm"
    shutil.copytree(DALAKAS, src)
    lines = (src / "vs.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    (src / "vs.csv").write_text(lines[0] + "".join(reversed(lines[1:])), encoding="utf-8")
    parts = tmp_path / "parts"
    parts.mkdir()
    assert workers.sdtm_to_fhir(src, parts, 2) is None
    assert list(parts.iterdir()) == []
    first, second, one, two = both_ways(src, tmp_path)
    assert first.exit_code == second.exit_code == 0
    assert files(one) == files(two)


def test_fhir_to_sdtm_on_two_workers_writes_the_bytes_of_one(
    cohort: Path, cohort_fhir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workers, "BYTES_PER_BUCKET", 4_000_000)  # more buckets than workers
    monkeypatch.setattr(workers, "BYTES_PER_RANGE", 3_000_000)  # several line ranges per file
    monkeypatch.setattr(workers, "STRIDE", 50_000)  # runs found between closer samples
    paths = spy_paths(monkeypatch)
    out = tmp_path / "buckets"
    out.mkdir()
    done = workers.fhir_to_sdtm(cohort_fhir, out, 2)
    assert done is not None
    assert paths == ["ranges"]  # the adapter's own NDJSON is cut by byte ranges, not spilled
    assert sum(done.counts.values()) > 40_000
    assert not (out / workers.PARTS_FOLDER).exists()
    first, second, one, two = both_ways(cohort_fhir, tmp_path, "--to", "sdtm")
    assert first.exit_code == second.exit_code == 0, first.output + second.output
    assert first.stdout.replace(str(one), "OUT") == second.stdout.replace(str(two), "OUT")
    assert files(one) == files(two) == files(out)
    assert files(two) == files(cohort)  # and the round trip holds, byte for byte


def spy_paths(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Which ways `fhir_to_sdtm` split its input, in order: "ranges" (cut by byte ranges),
    "no ranges" (the files plainly not ordered so), "spill" (the first pass over every line)."""
    seen: list[str] = []
    plan, lines = workers._plan_ranges, workers._line_ranges

    def planned(files: list[Path], buckets: int) -> object:
        cut = plan(files, buckets)
        seen.append("ranges" if cut is not None else "no ranges")
        return cut

    def spilled(files: list[Path]) -> object:
        seen.append("spill")
        return lines(files)

    monkeypatch.setattr(workers, "_plan_ranges", planned)
    monkeypatch.setattr(workers, "_line_ranges", spilled)
    return seen


def observation_lines(folder: Path) -> list[bytes]:
    return (folder / "Observation.ndjson").read_bytes().splitlines(keepends=True)


def test_files_not_ordered_by_subject_are_spilled_and_give_the_bytes_of_one(
    cohort_fhir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shuffled = tmp_path / "fhir"
    shutil.copytree(cohort_fhir, shuffled)
    lines = observation_lines(shuffled)
    (shuffled / "Observation.ndjson").write_bytes(b"".join([*lines[1::2], *lines[::2]]))
    paths = spy_paths(monkeypatch)
    out = tmp_path / "split"
    out.mkdir()
    assert workers.fhir_to_sdtm(shuffled, out, 2) is not None  # split, by the spill
    assert paths in (["ranges", "spill"], ["no ranges", "spill"])
    first, second, one, two = both_ways(shuffled, tmp_path, "--to", "sdtm")
    assert first.exit_code == second.exit_code == 0, first.output + second.output
    assert files(one) == files(two) == files(out)


def test_a_subject_split_across_two_files_is_cut_by_byte_ranges(
    cohort: Path, cohort_fhir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import orjson

    split = tmp_path / "fhir"
    shutil.copytree(cohort_fhir, split)
    lines = observation_lines(split)
    middle = len(lines) // 2
    subject = orjson.loads(lines[middle])["subject"]["reference"]
    assert (
        orjson.loads(lines[middle - 1])["subject"]["reference"] == subject
    )  # cut inside a subject
    (split / "Observation.ndjson").write_bytes(b"".join(lines[:middle]))
    with open(split / "ResearchStudy.ndjson", "ab") as study:
        study.write(b"\n")  # a blank line among the study-level lines: skipped by every bucket
    (split / "Observation2.ndjson").write_bytes(b"".join(lines[middle:]))  # read right after it
    paths = spy_paths(monkeypatch)
    out = tmp_path / "split-out"
    out.mkdir()
    assert workers.fhir_to_sdtm(split, out, 2) is not None
    assert paths == ["ranges"]
    assert files(out) == files(cohort)  # the same rows as from one file, byte for byte
    result = run(split, "--to", "sdtm", "--out", tmp_path / "one", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert files(tmp_path / "one") == files(out)


def test_fhir_written_by_others_among_ordered_lines_goes_to_one_worker(
    cohort_fhir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import orjson

    mixed = tmp_path / "fhir"
    shutil.copytree(cohort_fhir, mixed)
    lines = observation_lines(mixed)
    own = orjson.loads(lines[10])
    other = {  # a hospital's Observation of the same subject: no identifier or extension of ours
        "resourceType": "Observation",
        "id": "hospital-1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": own["subject"],
        "effectiveDateTime": "1991-03-21",
        "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org"},
    }
    lines.insert(11, orjson.dumps(other) + b"\n")  # in its subject's place: the cut holds
    (mixed / "Observation.ndjson").write_bytes(b"".join(lines))
    paths = spy_paths(monkeypatch)
    out = tmp_path / "split"
    out.mkdir()
    assert workers.fhir_to_sdtm(mixed, out, 2) is None  # one worker maps FHIR written by others
    assert paths == ["ranges"] and list(out.iterdir()) == []
    first, second, one, two = both_ways(mixed, tmp_path, "--to", "sdtm")
    assert first.exit_code == second.exit_code, first.output + second.output
    assert first.stderr == second.stderr
    assert files(one) == files(two)


def test_a_patient_given_twice_far_apart_gives_the_bytes_of_one(
    cohort_fhir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first Patient again at the end of `Patient.ndjson`: whichever bucket the cut gives it
    to, its subject is never split (two buckets naming it are one id in two buckets: one worker)."""
    twice = tmp_path / "fhir"
    shutil.copytree(cohort_fhir, twice)
    patients = (twice / "Patient.ndjson").read_bytes()
    (twice / "Patient.ndjson").write_bytes(patients + patients.splitlines(keepends=True)[0])
    for stride in (workers.STRIDE, 4096):  # the second run of one line unseen, then seen
        monkeypatch.setattr(workers, "STRIDE", stride)
        (tmp_path / str(stride)).mkdir()
        first, second, one, two = both_ways(twice, tmp_path / str(stride), "--to", "sdtm")
        assert first.exit_code == second.exit_code == 0, first.output + second.output
        assert first.stderr == second.stderr
        assert "identical resources read again, taken once: Patient 1" in second.stderr
        assert files(one) == files(two)


def test_resources_made_out_of_their_stream_order_send_a_part_to_one_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parts stream each resource to its place as it is made: a family that made a section's
    resources in another order (a change of the mappings) is caught, not written out of order."""
    from adapter.engines import part_resources

    def reversed_resources(part: object) -> object:
        return reversed(list(part_resources(part)))  # type: ignore[arg-type]

    monkeypatch.setattr(workers, "part_resources", reversed_resources)
    out = tmp_path / "out"
    out.mkdir()
    assert workers.sdtm_to_fhir(DATA / "sdtm_clinical", out, 2) is None
    assert list(out.iterdir()) == []
    first, second, one, two = both_ways(DATA / "sdtm_clinical", tmp_path)
    assert first.exit_code == second.exit_code == 0
    assert files(one) == files(two)


@pytest.mark.parametrize("src", [DALAKAS, DATA / "sdtm_clinical"])
def test_fhir_to_sdtm_of_the_fixtures(src: Path, tmp_path: Path) -> None:
    fhir = tmp_path / "fhir"
    assert run(src, "--out", fhir, "--workers", "1").exit_code == 0
    first, second, one, two = both_ways(fhir, tmp_path, "--to", "sdtm")
    assert first.exit_code == second.exit_code == 0
    assert first.stderr == second.stderr
    assert files(one) == files(two)
    direct = tmp_path / "direct"
    direct.mkdir()
    assert workers.fhir_to_sdtm(fhir, direct, 2) is not None
    assert files(direct) == files(one)


# --- bad input: the report of one worker ------------------------------------------------------------


def break_cohort(src: Path, tmp_path: Path) -> Path:
    broken = tmp_path / "broken"
    shutil.copytree(src, broken)
    cm = (broken / "cm.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    cells = cm[-3].split(",")
    cells[-1] = "2026-13-45\n"  # CMENDTC of a late subject: not a date
    cm[-3] = ",".join(cells)
    (broken / "cm.csv").write_text("".join(cm), encoding="utf-8")
    dm = (broken / "dm.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    (broken / "dm.csv").write_text("".join([*dm, dm[5]]), encoding="utf-8")  # a subject twice
    return broken


def test_bad_tables_get_the_report_of_one_worker(cohort: Path, tmp_path: Path) -> None:
    broken = break_cohort(cohort, tmp_path)
    first, second, one, two = both_ways(broken, tmp_path)
    assert first.exit_code == second.exit_code == 3
    assert first.stderr == second.stderr
    assert "subject already in DM" in second.stderr
    assert not one.exists() and not two.exists()
    assert siblings(one) == ["broken"]


def test_a_bad_line_gets_the_report_of_one_worker(cohort_fhir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "fhir"
    shutil.copytree(cohort_fhir, broken)
    path = broken / "Observation.ndjson"
    lines = path.read_bytes().splitlines(keepends=True)
    lines[len(lines) // 2] = lines[len(lines) // 2].replace(b'"status":', b'"status":[1],"x":', 1)
    lines[-2] = b"{not json\n"
    path.write_bytes(b"".join(lines))
    first, second, one, two = both_ways(broken, tmp_path, "--to", "sdtm")
    assert first.exit_code == second.exit_code == 3
    assert first.stderr == second.stderr
    assert "Observation.ndjson, line" in second.stderr
    assert not one.exists() and not two.exists()


@pytest.mark.parametrize("index, path", [(1, ("arm", 0)), (2, ())])
def test_an_element_of_the_wrong_shape_gets_the_report_of_one_worker(
    index: int, path: tuple[str | int, ...], tmp_path: Path
) -> None:
    """A wrong shape the family readers refuse with a TypeError (an `extension` that is `true`, not an
    array: on the ResearchStudy's arm, on a Patient) is reported as one worker reports it. (The fuzz
    suite once saw such a TypeError escape a worker; it did not reproduce, and the split now treats
    every failure of the readers' family, not only ValueError, as "convert on one worker".)"""
    from adapter.fhir_files import dumps
    from adapter.tables import read_trial
    from mappings.trial import trial_to_fhir

    resources = list(trial_to_fhir(read_trial(DATA / "sdtm_small")))
    element: Any = resources[index]
    for step in path:
        element = element[step]
    element["extension"] = True
    broken = tmp_path / "fhir"
    broken.mkdir()
    (broken / "resources.ndjson").write_bytes(b"".join(dumps(r) + b"\n" for r in resources))
    first, second, one, two = both_ways(broken, tmp_path, "--to", "sdtm")
    assert not isinstance(second.exception, TypeError), second.exception
    assert first.exit_code == second.exit_code == 3, second.output
    assert first.stderr == second.stderr
    assert f"resources.ndjson, line {index + 1}" in second.stderr
    assert not one.exists() and not two.exists()


# --- part files cleaned up ----------------------------------------------------------------------------


def test_an_interrupted_run_leaves_no_part_files(
    cohort: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Path] = []

    def interrupted(trial, out, folder, done, bundle, pool):  # type: ignore[no-untyped-def]
        seen.extend(folder.iterdir())
        raise KeyboardInterrupt

    monkeypatch.setattr(workers, "_concatenate", interrupted)
    out = tmp_path / "out"
    result = run(cohort, "--out", out, "--workers", "2")
    assert result.exit_code != 0
    assert seen  # the workers had written their parts
    assert not out.exists()
    assert siblings(out) == []


def test_a_full_disk_in_a_worker_is_exit_11_and_leaves_nothing(
    cohort_fhir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(table: object, path: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(workers, "_write_blocks", full)  # runs in the (forked) worker
    out = tmp_path / "sdtm"
    result = run(cohort_fhir, "--to", "sdtm", "--out", out, "--workers", "2")
    assert result.exit_code == 11, result.output
    assert "No space left on device" in result.stderr
    assert not out.exists() and siblings(out) == []


def test_workers_go_with_the_local_engine(tmp_path: Path) -> None:
    result = run(DALAKAS, "--out", tmp_path / "o", "--workers", "2", "--engine", "spark")
    assert result.exit_code == 2
    assert "--workers" in result.stderr
    result = run(DALAKAS, "--out", tmp_path / "o", "--workers", "0")
    assert result.exit_code == 2


# --- the problem list is capped -----------------------------------------------------------------------


def test_a_table_broken_on_every_row_lists_the_first_problems_and_counts_the_rest(
    cohort: Path, tmp_path: Path
) -> None:
    from adapter.tables import MAX_PROBLEMS

    broken = tmp_path / "broken"
    shutil.copytree(cohort, broken)
    cm = (broken / "cm.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    header = cm[0].rstrip("\n").split(",")
    column = header.index("CMDOSE")
    rows = []
    for line in cm[1:]:
        cells = line.rstrip("\n").split(",")
        cells[column] = "lots"
        rows.append(",".join(cells) + "\n")
    (broken / "cm.csv").write_text(cm[0] + "".join(rows), encoding="utf-8")
    first, second, _, _ = both_ways(broken, tmp_path)
    assert first.exit_code == second.exit_code == 3
    assert first.stderr == second.stderr
    lines = second.stderr.strip().splitlines()
    assert lines[0] == f"Error: {len(rows)} problems in the trial tables:"
    assert len(lines) == 1 + MAX_PROBLEMS + 1
    assert lines[1].endswith("cm.csv, row 1, CMDOSE: 'lots' is not a number")
    assert lines[MAX_PROBLEMS].startswith(f"{broken / 'cm.csv'}, row {MAX_PROBLEMS}, CMDOSE")
    not_shown = len(rows) - MAX_PROBLEMS
    assert lines[-1] == f"... and {not_shown} more not shown (the first {MAX_PROBLEMS} are listed)"


def test_the_capped_checks_keep_the_first_problems_by_row() -> None:
    from adapter.tables import MAX_PROBLEMS, TableError, _check_table
    from mappings.sdtm import Table

    rows = [
        {"STUDYID": "S", "DOMAIN": "VS", "USUBJID": "S-1", "VSSEQ": str(i)} for i in range(1000)
    ]
    for row in rows[::-1][: MAX_PROBLEMS * 3]:
        row["DOMAIN"] = "XX"
        row["VSSEQ"] = "x"
    table = Table("VS", ["STUDYID", "DOMAIN", "USUBJID", "VSSEQ"], rows)
    whole = _check_table(table, "vs.csv")
    capped = _check_table(table, "vs.csv", capped=True)
    assert len(whole) > 6 * MAX_PROBLEMS  # two per broken row, and the missing columns
    assert list(capped) == list(whole[:MAX_PROBLEMS])
    assert capped.dropped == len(whole) - MAX_PROBLEMS
    error = TableError(list(capped), capped.dropped)
    assert str(error).splitlines()[0] == f"{len(whole)} problems in the trial tables:"


def test_one_id_in_two_buckets_is_reported_as_by_one_worker(
    cohort_fhir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zlib

    import orjson

    broken = tmp_path / "fhir"
    shutil.copytree(cohort_fhir, broken)
    path = broken / "Observation.ndjson"
    lines = path.read_bytes().splitlines(keepends=True)
    first = orjson.loads(lines[0])
    patient = first["subject"]["reference"].rpartition("/")[2]
    ids = [
        orjson.loads(line)["id"] for line in (broken / "Patient.ndjson").read_bytes().splitlines()
    ]
    monkeypatch.setattr(workers, "BYTES_PER_BUCKET", 10**12)  # two buckets on two workers
    other = next(i for i in ids if zlib.crc32(i.encode()) % 2 != zlib.crc32(patient.encode()) % 2)
    copy = dict(first, subject={"reference": f"Patient/{other}"})  # same id, another subject
    path.write_bytes(b"".join([*lines, orjson.dumps(copy) + b"\n"]))
    out = tmp_path / "parts"
    out.mkdir()
    assert workers.fhir_to_sdtm(broken, out, 2) is None
    assert list(out.iterdir()) == []
    first_run, second_run, _, _ = both_ways(broken, tmp_path, "--to", "sdtm")
    assert first_run.exit_code == second_run.exit_code == 3
    assert first_run.stderr == second_run.stderr
    assert "same type and id but different content" in second_run.stderr
