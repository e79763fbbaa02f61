"""`--engine spark` writes the local engine's bytes, both ways: on the shipped cohort and on a generated
cohort of 200 subjects, both with the clinical domains (LB, AE, MH) added; and the per-subject split
itself rebuilds the local stream exactly."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from adapter.cli.convert_cmd import _fhir_to_sdtm, _sdtm_to_fhir
from adapter.engines import ordered_parts, split_by_subject
from adapter.fhir_files import FhirFileError
from adapter.fhir_json import dumps
from adapter.sources import detect
from adapter.tables import read_trial, write_trial
from mappings.sdtm import Table
from mappings.trial import trial_to_fhir
from tests.spark.conftest import SHIPPED

CLINICAL = {"LB", "AE", "MH"}


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if not p.name.startswith(".")}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from adapter.testing.cohort import generate_scaled, write_csv_folder

    folder = tmp_path_factory.mktemp("cohort200")
    write_csv_folder(generate_scaled(200, 20261130, clinical=True), folder)
    return folder


@pytest.mark.parametrize("parts", [1, 2, 5, 40])
def test_the_parts_merged_by_place_are_the_local_stream(parts: int, shipped_clinical: Path) -> None:
    trial = read_trial(shipped_clinical)
    assert set(trial) >= CLINICAL
    rng = random.Random(parts)  # rows of the subjects interleaved: the places must still sort
    shuffled = {
        d: Table(t.domain, t.columns, rng.sample(t.rows, len(t.rows)))
        if t.spec.subject_level
        else t
        for d, t in trial.items()
    }
    for tables in (trial, shuffled):
        local = [dumps(r) for r in trial_to_fhir(tables)]
        split = split_by_subject(tables, parts)
        assert len(split) == min(parts, 15)
        assert [dumps(r) for r in ordered_parts(tables, split)] == local


def test_each_subject_is_whole_in_one_part(shipped_clinical: Path) -> None:
    trial = read_trial(shipped_clinical)
    seen: dict[str, int] = {}
    for index, part in enumerate(split_by_subject(trial, 4)):
        for table in part.trial.values():
            for row in table.rows:
                assert seen.setdefault(row["USUBJID"], index) == index


def both_ways_local(src: Path, out: Path) -> tuple[Path, Path]:
    fhir, sdtm = out / "local-fhir", out / "local-sdtm"
    fhir.mkdir()
    sdtm.mkdir()
    _sdtm_to_fhir(src, detect(src, want="sdtm"), fhir, validate=False, bundle=True)
    _fhir_to_sdtm(fhir, detect(fhir, want="fhir"), sdtm, validate=False)
    return fhir, sdtm


@pytest.mark.parametrize("cohort", ["shipped", "generated"])
def test_spark_writes_the_local_bytes_both_ways(
    spark: Any, cohort: str, generated: Path, shipped_clinical: Path, tmp_path: Path
) -> None:
    """Both cohorts with LB, AE and MH (the CLI test below runs the shipped cohort as it is)."""
    from adapter.engines.spark import fhir_to_sdtm, sdtm_to_fhir

    src = shipped_clinical if cohort == "shipped" else generated
    local_fhir, local_sdtm = both_ways_local(src, tmp_path)
    spark_fhir = tmp_path / "spark-fhir"
    counts = sdtm_to_fhir(spark, read_trial(src), spark_fhir, partitions=4, bundle=True)
    assert files(spark_fhir) == files(local_fhir)
    assert sum(counts.values()) == sum(1 for _ in (local_fhir / "bundle.json").open()) - 2
    result = fhir_to_sdtm(spark, local_fhir, partitions=4)
    assert result.unrecognised == {}
    assert set(result.trial) >= CLINICAL
    assert {"AdverseEvent.ndjson", "Condition.ndjson"} <= set(files(spark_fhir))
    write_trial(result.trial, tmp_path / "spark-sdtm")
    assert files(tmp_path / "spark-sdtm") == files(local_sdtm)
    assert files(local_sdtm) == {  # and both are the source tables, byte for byte
        name: data for name, data in files(src).items() if name.endswith(".csv")
    }
    if cohort == "generated":
        assert len(result.trial["DM"].rows) == 200


def test_a_bad_line_is_named_by_file_and_line(spark: Any, tmp_path: Path) -> None:
    from adapter.engines.spark import fhir_to_sdtm

    fhir, _ = both_ways_local(SHIPPED, tmp_path)
    lines = (fhir / "Observation.ndjson").read_bytes().splitlines(keepends=True)
    lines[6] = b'{"resourceType": "Observation", "id": \n'
    lines[9] = b"[1, 2]\n"
    (fhir / "Observation.ndjson").write_bytes(b"".join(lines))
    with pytest.raises(FhirFileError) as raised:
        fhir_to_sdtm(spark, fhir)
    assert (raised.value.path, raised.value.line) == (str(fhir / "Observation.ndjson"), 7)
    assert raised.value.reason.startswith("not JSON")


def test_the_command_line_takes_engine_spark(tmp_path: Path, spark: Any) -> None:
    """The CLI wiring, in this process (the session is the fixture's: `getOrCreate`): the same files
    as the local engine, SDTM -> FHIR and back, and the summary lines."""
    from click.testing import CliRunner

    from adapter.cli import main

    runner = CliRunner()
    local = runner.invoke(main, ["convert", str(SHIPPED), "--out", str(tmp_path / "local"),
                                 "--bundle"])  # fmt: skip
    assert local.exit_code == 0, local.output
    to_fhir = runner.invoke(main, ["convert", str(SHIPPED), "--out", str(tmp_path / "f"),
                                   "--engine", "spark", "--spark-master", "local[2]",
                                   "--bundle"])  # fmt: skip
    assert to_fhir.exit_code == 0, to_fhir.output
    assert "742 rows in 11 tables -> 759 resources" in to_fhir.output
    assert files(tmp_path / "f") == files(tmp_path / "local")
    assert "bundle.json" in files(tmp_path / "f")
    back = runner.invoke(main, ["convert", str(tmp_path / "f"), "--to", "sdtm", "--out",
                                str(tmp_path / "s"), "--engine", "spark"])  # fmt: skip
    assert back.exit_code == 0, back.output
    assert "759 resources -> 742 rows" in back.output
    for name in ("ts", "ta", "dm", "se", "vs", "ex", "cm", "qs", "rs", "pr", "mi"):
        assert (tmp_path / "s" / f"{name}.csv").read_bytes() == (
            SHIPPED / f"{name}.csv"
        ).read_bytes()
    bad = runner.invoke(main, ["convert", str(SHIPPED), "--to", "sdtm", "--out",
                               str(tmp_path / "x"), "--engine", "spark"])  # fmt: skip
    assert bad.exit_code == 3 and "no .ndjson files" in bad.output
    assert not (tmp_path / "x").exists()


def test_spark_master_alone_and_validate_are_usage_errors(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from adapter.cli import main

    runner = CliRunner()
    alone = runner.invoke(main, ["convert", str(SHIPPED), "--out", str(tmp_path / "a"),
                                 "--spark-master", "local[2]"])  # fmt: skip
    assert alone.exit_code == 2 and "--engine spark" in alone.output
    both = runner.invoke(main, ["convert", str(SHIPPED), "--out", str(tmp_path / "b"),
                                "--engine", "spark", "--validate"])  # fmt: skip
    assert both.exit_code == 2 and "--validate" in both.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
