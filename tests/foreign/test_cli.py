"""`trialfhir convert --to sdtm` and `analyze` on FHIR written by others, through the library and the
command line (a subprocess, as a user runs it), over the committed synthetic fixtures
(fixtures/foreign/synthetic/, made by tests/foreign/synthetic.py)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

from adapter.foreign import read_foreign
from adapter.sources import detect, kind_of
from mappings.foreign import ForeignOptions, map_foreign
from mappings.foreign.combine import is_own, trial_subject_keys
from tests.foreign import synthetic

FIXTURES = synthetic.OUT
LAYOUTS = ("synthea-bundle", "bulk-export", "single-json", "nested-bundles")


class Result(NamedTuple):
    code: int
    out: str
    err: str


def run(*args: str | Path) -> Result:
    env = {**os.environ, "TRIALFHIR_NO_PROGRESS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "adapter.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return Result(done.returncode, done.stdout, done.stderr)


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_committed_fixtures_are_what_the_generator_makes(tmp_path: Path) -> None:
    written = synthetic.build(tmp_path)
    committed = sorted(p for p in FIXTURES.rglob("*") if p.is_file())
    assert [p.relative_to(tmp_path) for p in written] == [
        p.relative_to(FIXTURES) for p in committed
    ]
    for made, kept in zip(written, committed, strict=True):
        assert made.read_bytes() == kept.read_bytes(), kept


# --- the library -------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_resource_is_accounted_for_and_vitals_and_labs_map(layout: str) -> None:
    found = read_foreign(FIXTURES / layout)
    mapping = map_foreign(found.resources, ForeignOptions(study="SYN01"))
    report = mapping.report
    assert report.unbalanced() == []
    assert report.total_read == len(found.resources)
    assert sum(a.read for a in report.types.values()) == sum(
        a.mapped_resources + a.skipped_resources for a in report.types.values()
    )
    assert report.coverage_ratio() >= 0.95
    assert report.coverage["VS"][0] > 0 and report.coverage["LB"][0] > 0
    for domain in ("DM", "VS", "LB", "CM", "AE", "MH", "PR"):
        assert mapping.tables[domain].rows, domain


def _table(layout: str, domain: str, **options: object) -> list[dict[str, str]]:
    found = read_foreign(FIXTURES / layout)
    mapping = map_foreign(found.resources, ForeignOptions(study="SYN01", **options))  # type: ignore[arg-type]
    table = mapping.tables[domain]
    return [dict(zip(table.columns, row, strict=True)) for row in table.rows]


def test_vital_signs_keep_values_as_written_and_convert_units_exactly() -> None:
    vs = _table("synthea-bundle", "VS")
    by_test = {
        r["VSTESTCD"]: r for r in vs if r["USUBJID"].endswith(synthetic.uid("synthea-1", "patient"))
    }
    assert sorted(by_test) == [
        "BMI",
        "DIABP",
        "HEIGHT",
        "HR",
        "OXYSAT",
        "RESP",
        "SYSBP",
        "TEMP",
        "WEIGHT",
    ]
    temp, weight = by_test["TEMP"], by_test["WEIGHT"]
    assert (temp["VSORRES"], temp["VSORRESU"], temp["VSSTRESN"], temp["VSSTRESU"]) == (
        "98.60",
        "[degF]",
        "37.00",
        "C",
    )
    assert (weight["VSORRES"], weight["VSSTRESN"], weight["VSSTRESU"]) == ("165.0", "74.84", "kg")
    assert by_test["SYSBP"]["VSORRES"] == "128" and by_test["SYSBP"]["VSSTRESU"] == "mmHg"
    assert by_test["SYSBP"]["VSSRCID"] == by_test["DIABP"]["VSSRCID"]  # both from the panel
    assert by_test["HR"]["VSDTC"] == "2020-01-11T09:30:00"  # the zone offset left out


def test_labs_of_every_panel_map_with_their_test_codes_and_the_fallback() -> None:
    lb = _table("bulk-export", "LB")
    codes = {r["LBTESTCD"] for r in lb}
    cbc = {"WBC", "RBC", "HGB", "HCT", "MCV", "MCH", "MCHC", "PLAT"}
    bmp = {"GLUC", "BUN", "CREAT", "SODIUM", "K", "CL", "CO2", "CA"}
    assert (
        cbc
        | bmp
        | {"CHOL", "TRIG", "LDL", "HDL", "HBA1C", "SPGRAV", "PH", "KETONES", "PT", "INR", "APTT"}
        <= codes
    )
    hgb = next(r for r in lb if r["LBTESTCD"] == "HGB")
    assert (hgb["LBORRES"], hgb["LBORRESU"], hgb["LBSTRESN"], hgb["LBSTRESU"]) == (
        "13.50",
        "g/dL",
        "135.0",
        "g/L",
    )
    assert (hgb["LBORNRLO"], hgb["LBORNRHI"], hgb["LBNRIND"], hgb["LBLOINC"]) == (
        "12.0",
        "16.0",
        "NORMAL",
        "718-7",
    )
    egfr = next(r for r in lb if r["LBLOINC"] == "33914-3")
    assert egfr["LBTESTCD"] == "L339143" and egfr["LBORRES"] == "88.2"
    ketones = next(r for r in lb if r["LBTESTCD"] == "KETONES")
    assert ketones["LBORRES"] == "Trace" and ketones["LBSTRESN"] == ""


def test_medications_conditions_procedures_and_adverse_events() -> None:
    cm = _table("synthea-bundle", "CM", study_drugs=("1867520",))
    assert sorted({r["CMTRT"] for r in cm}) == [
        "amlodipine 5 MG Oral Tablet",
        "cefazolin 2000 MG Injection",
        "lisinopril 10 MG Oral Tablet",
    ]
    request = next(r for r in cm if r["CMTRT"].startswith("lisinopril"))
    assert (request["CMDOSFRQ"], request["CMDOSE"], request["CMCODE"]) == ("QD", "1", "314076")
    ex = _table("synthea-bundle", "EX", study_drugs=("1867520",))
    assert {(r["EXTRT"], r["EXDOSE"], r["EXDOSU"]) for r in ex} == {("IVIG", "0.5", "g/kg")}
    mh = _table("synthea-bundle", "MH")
    assert {(r["MHTERM"], r["MHCAT"]) for r in mh} == {
        ("Hypertension", "problem-list-item"),
        ("Diabetes", "encounter-diagnosis"),
    }
    ae = _table("synthea-bundle", "AE")
    by_term = {r["AETERM"]: r for r in ae}
    assert sorted(by_term) == ["Anaphylaxis", "Eruption of skin"]
    event = by_term["Anaphylaxis"]
    assert (event["AESER"], event["AESEV"], event["AEOUT"], event["AEREL"]) == (
        "Y",
        "SEVERE",
        "RECOVERED/RESOLVED",
        "Probably related",
    )
    rash = by_term["Eruption of skin"]  # a Condition with category adverse-event
    assert rash["AESRCID"].startswith("Condition/")
    assert (rash["AESEV"], rash["AEOUT"], rash["AEENDTC"]) == (
        "MILD",
        "RECOVERED/RESOLVED",
        "2020-02-03",
    )
    pr = _table("synthea-bundle", "PR")
    assert {r["PRCODE"] for r in pr} == {"430193006"}


def test_invalid_r4_resources_are_reported_and_skipped_and_the_rest_goes_on() -> None:
    found = read_foreign(FIXTURES / "synthea-bundle")
    report = map_foreign(found.resources, ForeignOptions(study="SYN01")).report
    reasons = {
        (rtype, reason) for rtype, account in report.types.items() for reason in account.skipped
    }
    assert (
        "Observation",
        "not valid R4: Observation.code: expected one value (0..1), not an array",
    ) in reasons
    assert (
        "Observation",
        "not valid R4: Observation.extension.url: missing (every extension needs a url, R4 1..1)",
    ) in reasons
    assert (
        "AdverseEvent",
        "not valid R4: AdverseEvent.identifier: expected one value (0..1), not an array",
    ) in reasons
    assert ("Observatoin", "not valid R4: resourceType: not an R4 resource type") in reasons
    assert report.total_rows > 90


def test_an_extension_part_without_url_is_reported() -> None:
    patient = synthetic.patient("p9", 9, "female", "1970")
    del patient["extension"][0]["extension"][0]["url"]
    report = map_foreign([patient], ForeignOptions(study="S")).report
    reason = "not valid R4: Patient.extension.extension.url: missing (every extension needs a url, R4 1..1)"
    assert report.types["Patient"].skipped[reason].count == 1


def test_the_own_resources_are_told_from_the_others() -> None:
    found = read_foreign(FIXTURES / "mixed")
    own = [e.resource for e in found.resources if is_own(e.resource)]
    others = [e.resource for e in found.resources if not is_own(e.resource)]
    assert {r["resourceType"] for r in others} == {"Observation", "Patient"}
    assert len(own) == sum(1 for f in (FIXTURES / "mixed" / "trial").iterdir() for _ in f.open())
    keys = trial_subject_keys(own)
    assert set(keys.values()) == {("DALAKAS1993", s) for s in synthetic.MIXED_SUBJECTS}
    assert (
        f"identifier|https://trialfhir.org/fhir/sid/usubjid|{synthetic.MIXED_SUBJECTS[2]}" in keys
    )


def test_kind_of_finds_fhir_in_subfolders() -> None:
    assert kind_of(FIXTURES / "single-json") == "fhir"
    trial = detect(FIXTURES / "single-json", want="fhir").trial()
    assert trial["DM"].rows == []  # no study given: no subject (the report says why)


# --- the command line --------------------------------------------------------------------------------


def test_convert_a_synthea_bundle_writes_the_tables_the_report_and_a_summary(
    tmp_path: Path,
) -> None:
    out = tmp_path / "sdtm"
    done = run(
        "convert", FIXTURES / "synthea-bundle", "--to", "sdtm", "--study", "SYN01", "--out", out
    )
    assert done.code == 0, done.err
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        ".trialfhir-manifest.json",
        "ae.csv",
        "cm.csv",
        "dm.csv",
        "ex.csv",
        "lb.csv",
        "mapping-report.json",
        "mapping-report.md",
        "mh.csv",
        "pr.csv",
        "vs.csv",
    ]
    report = json.loads((out / "mapping-report.json").read_text())
    for rtype, account in report["resource_types"].items():
        assert account["mapped"] + account["skipped"] == account["read"], rtype
        assert f"  {rtype}: read {account['read']}, mapped {account['mapped']}" in done.out
    assert report["totals"]["read"] == 114 and report["totals"]["rows"] == sum(
        len(rows(out / f"{d}.csv")) for d in ("dm", "vs", "lb", "cm", "ae", "mh", "pr", "ex")
    )
    assert "(written by others)" in done.out
    dm = rows(out / "dm.csv")
    assert [r["SUBJID"] for r in dm] == sorted(
        synthetic.uid(f"synthea-{n}", "patient") for n in (1, 2)
    )
    assert {r["RACE"] for r in dm} == {"WHITE"} and {r["COUNTRY"] for r in dm} == {"USA"}


def test_convert_chooses_subjid_and_study_drug(tmp_path: Path) -> None:
    out = tmp_path / "sdtm"
    done = run(
        "convert",
        FIXTURES / "bulk-export",
        "--to",
        "sdtm",
        "--study",
        "SYN01",
        "--out",
        out,
        "--subjid",
        f"system:{synthetic.MRN}",
        "--study-drug",
        "IVIG",
    )
    assert done.code == 0, done.err
    assert [r["USUBJID"] for r in rows(out / "dm.csv")] == ["SYN01-MRN00003", "SYN01-MRN00004"]
    assert [r["EXTRT"] for r in rows(out / "ex.csv")] == ["IVIG", "IVIG"]
    report = json.loads((out / "mapping-report.json").read_text())
    assert (
        report["server_messages"][0]["message"]
        == "Unable to export DocumentReference: access denied"
    )
    assert any(p["where"] == "log.ndjson" for p in report["input_problems"])
    again = run(
        "convert", FIXTURES / "bulk-export", "--to", "sdtm", "--study", "SYN01", "--out", out
    )
    assert again.code == 11 and "--force" in again.err
    forced = run(
        "convert",
        FIXTURES / "bulk-export",
        "--to",
        "sdtm",
        "--study",
        "SYN01",
        "--out",
        out,
        "--force",
    )
    assert forced.code == 0, forced.err
    assert [r["USUBJID"] for r in rows(out / "dm.csv")] == sorted(  # replaced: default SUBJID
        f"SYN01-{synthetic.uid(f'bulk-{n}', 'patient')}" for n in (3, 4)
    )


def test_nothing_mapped_exits_12_with_the_report_alone(tmp_path: Path) -> None:
    out = tmp_path / "sdtm"
    done = run("convert", FIXTURES / "nothing", "--to", "sdtm", "--study", "SYN01", "--out", out)
    assert done.code == 12
    assert "nothing mapped" in done.err and "Organization: read 1, mapped 0" in done.err
    assert sorted(p.name for p in out.iterdir()) == [
        ".trialfhir-manifest.json",
        "mapping-report.json",
        "mapping-report.md",
    ]
    assert json.loads((out / "mapping-report.json").read_text())["totals"]["rows"] == 0


def test_without_a_study_the_patients_are_no_subjects_and_the_hint_says_study(
    tmp_path: Path,
) -> None:
    done = run("convert", FIXTURES / "single-json", "--to", "sdtm", "--out", tmp_path / "o")
    assert done.code == 12
    assert "pass --study STUDYID" in done.err
    assert "no STUDYID" in done.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--subjid", "mrn"), "give identifier, id or system:<uri>"),
        (("--subjid", "system:"), "give identifier, id or system:<uri>"),
        (("--study", ""), "--study: give a STUDYID"),
        (("--study-drug", "X", "--engine", "spark"), "local engine only"),
    ],
)
def test_bad_options_are_usage_errors(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    done = run("convert", FIXTURES / "nothing", "--to", "sdtm", "--out", tmp_path / "o", *args)
    assert done.code == 2 and message in done.err, done.err
    assert not (tmp_path / "o").exists()


def test_foreign_options_only_go_with_to_sdtm(tmp_path: Path) -> None:
    done = run("convert", "adapter/studies/dalakas1993", "--study", "X", "--out", tmp_path / "o")
    assert done.code == 2 and "--study: only with --to sdtm" in done.err


def test_a_mixed_folder_links_hospital_rows_to_the_trial_subjects(tmp_path: Path) -> None:
    own_only, mixed = tmp_path / "own", tmp_path / "mixed"
    assert run("convert", FIXTURES / "mixed" / "trial", "--to", "sdtm", "--out", own_only).code == 0
    done = run("convert", FIXTURES / "mixed", "--to", "sdtm", "--out", mixed)
    assert done.code == 0, done.err
    assert "(mixed: own and others')" in done.out and "own profile" in done.out
    own_files = {p.name for p in own_only.iterdir()} - {".trialfhir-manifest.json"}
    for name in sorted(own_files - {"vs.csv"}):  # domains without hospital rows: byte for byte
        assert (mixed / name).read_bytes() == (own_only / name).read_bytes(), name
    own_vs, mixed_vs = rows(own_only / "vs.csv"), rows(mixed / "vs.csv")
    own_columns = list(own_vs[0])
    assert [{c: r[c] for c in own_columns} for r in mixed_vs if not r["VSSRCID"]] == own_vs
    hospital = [r for r in mixed_vs if r["VSSRCID"]]
    assert sorted(r["USUBJID"] for r in hospital) == list(synthetic.MIXED_SUBJECTS)
    for row in hospital:  # numbered on after the subject's own rows
        highest = max(int(r["VSSEQ"]) for r in own_vs if r["USUBJID"] == row["USUBJID"])
        assert int(row["VSSEQ"]) == highest + 1
        assert (row["VSTESTCD"], row["VSORRES"], row["VSSTRESU"]) == ("HR", "76", "beats/min")
    lb = rows(mixed / "lb.csv")
    assert sorted({r["USUBJID"] for r in lb}) == list(
        synthetic.MIXED_SUBJECTS
    )  # 3rd: by identifier
    assert [r["LBSEQ"] for r in lb if r["USUBJID"] == synthetic.MIXED_SUBJECTS[0]] == [
        "1",
        "2",
        "3",
        "4",
    ]
    report = json.loads((mixed / "mapping-report.json").read_text())
    assert report["own_resources"]["Patient"] == 3
    # the subjects the hospital rows belong to: the three trial subjects they joined
    assert (report["subjects"], report["study"]) == (len(synthetic.MIXED_SUBJECTS), "DALAKAS1993")
    assert f"; {len(synthetic.MIXED_SUBJECTS)} subjects, 15 rows" in done.out
    skipped = report["resource_types"]["Patient"]["skipped_by_reason"]
    assert list(skipped) == ["not a study subject: no ResearchSubject points at it"]


def test_an_own_export_keeps_its_strict_path(tmp_path: Path) -> None:
    """A resource of the adapter's own profile that is refused stops everything, even beside
    hospital data (all or nothing), naming the file and line."""
    src = tmp_path / "src"
    src.mkdir()
    for path in (FIXTURES / "mixed" / "trial").iterdir():
        (src / path.name).write_bytes(path.read_bytes())
    (src / "labs.ndjson").write_bytes(
        (FIXTURES / "mixed" / "hospital" / "labs.ndjson").read_bytes()
    )
    lines = (src / "Patient.ndjson").read_text().splitlines()
    lines[1] = (
        lines[1].replace('"gender":"', '"gender":["').replace('","birthDate"', '"],"birthDate"', 1)
    )
    (src / "Patient.ndjson").write_text("\n".join(lines) + "\n")
    done = run("convert", src, "--to", "sdtm", "--out", tmp_path / "o")
    assert done.code == 3, done.err
    assert "Patient.ndjson, line 2" in done.err and "Patient.gender" in done.err
    assert not (tmp_path / "o").exists()


def test_analyze_on_foreign_data_says_what_each_endpoint_lacks(tmp_path: Path) -> None:
    done = run(
        "analyze", FIXTURES / "single-json", "--definition", "dalakas1993", "--out", tmp_path / "a"
    )
    assert done.code == 13, done.err
    assert "no endpoint can be computed" in done.err
    assert "E1:" in done.err and "E8:" in done.err
    assert (tmp_path / "a" / "results.json").exists()
    # every resource accounted for, as `convert --to sdtm` accounts for it: the same report
    assert (
        run(
            "convert",
            FIXTURES / "single-json",
            "--to",
            "sdtm",
            "--study",
            "DALAKAS1993",
            "--out",
            tmp_path / "c",
        ).code
        == 0
    )
    for name in ("mapping-report.json", "mapping-report.md"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "c" / name).read_bytes(), name
    report = json.loads((tmp_path / "a" / "mapping-report.json").read_text())
    assert report["totals"]["read"] == report["totals"]["mapped"] + report["totals"]["skipped"] > 0
    assert f"read {report['totals']['read']} resources" in done.out


def test_analyze_on_the_adapters_own_fhir_writes_no_mapping_report(tmp_path: Path) -> None:
    done = run(
        "analyze",
        FIXTURES / "mixed" / "trial",
        "--definition",
        "dalakas1993",
        "--out",
        tmp_path / "a",
    )
    assert done.code == 0, done.err
    assert (tmp_path / "a" / "results.json").exists()
    assert not (tmp_path / "a" / "mapping-report.json").exists()
    assert "Mapping:" not in done.out


def test_a_broken_line_in_others_fhir_is_reported_and_the_rest_goes_on(tmp_path: Path) -> None:
    """What the strict reader refuses in the adapter's own files (tests/test_hostile_files.py) is
    reported in FHIR written by others, with file and line, and the rest is mapped."""
    src = tmp_path / "src"
    src.mkdir()
    lines = (FIXTURES / "bulk-export" / "Patient.000.ndjson").read_bytes()
    (src / "Patient.ndjson").write_bytes(
        lines
        + b'{"resourceType":"Observation","valueQuantity":{"value":NaN}}\n'
        + b"[" * 300
        + b"\n"
    )
    out = tmp_path / "out"
    done = run("convert", src, "--to", "sdtm", "--study", "SYN01", "--out", out)
    assert done.code == 0, done.err
    problems = json.loads((out / "mapping-report.json").read_text())["input_problems"]
    assert [p["where"] for p in problems] == ["Patient.ndjson, line 3", "Patient.ndjson, line 4"]
    assert len(rows(out / "dm.csv")) == 2


def test_an_adverse_event_takes_its_term_from_its_resulting_condition() -> None:
    patient = synthetic.patient("p1", 1, "female", "1970")
    condition = {
        "resourceType": "Condition",
        "id": "c1",
        "code": synthetic.concept(synthetic.SNOMED, "25064002", "Headache"),
        "subject": {"reference": "Patient/p1"},
    }
    event = {
        "resourceType": "AdverseEvent",
        "id": "ae1",
        "actuality": "actual",
        "subject": {"reference": "Patient/p1"},
        "resultingCondition": [{"reference": "Condition/c1"}],
        "date": "2021-02-03",
    }
    mapping = map_foreign([condition, event, patient], ForeignOptions(study="S"))
    table = mapping.tables["AE"]
    [row] = [dict(zip(table.columns, r, strict=True)) for r in table.rows]
    assert (row["AETERM"], row["AECODE"], row["AESRCID"]) == (
        "Headache",
        "25064002",
        "AdverseEvent/ae1",
    )
    assert mapping.tables["MH"].rows == []  # the Condition is the event's, not a row of its own
    assert mapping.report.types["Condition"].mapped == {"AE": [1, 0]}
    assert mapping.report.unbalanced() == []


def test_combine_numbers_hospital_rows_after_the_own_ones_and_orders_them() -> None:
    from mappings.foreign import Table as ForeignTable
    from mappings.foreign.combine import combine
    from mappings.sdtm import Table

    own = {
        "VS": Table(
            "VS",
            ["STUDYID", "DOMAIN", "USUBJID", "VSSEQ", "VSTESTCD"],
            [
                {
                    "STUDYID": "S",
                    "DOMAIN": "VS",
                    "USUBJID": "S-2",
                    "VSSEQ": "1",
                    "VSTESTCD": "WEIGHT",
                },
                {
                    "STUDYID": "S",
                    "DOMAIN": "VS",
                    "USUBJID": "S-2",
                    "VSSEQ": "10",
                    "VSTESTCD": "WEIGHT",
                },
            ],
        )
    }
    columns = ("STUDYID", "DOMAIN", "USUBJID", "VSSEQ", "VSTESTCD", "VSSRCID")
    foreign = {
        "VS": ForeignTable(
            "VS",
            columns,
            [
                ("S", "VS", "S-1", "1", "HR", "Observation/a"),
                ("S", "VS", "S-2", "1", "HR", "Observation/b"),
            ],
        ),
        "LB": ForeignTable("LB", ("STUDYID",), []),
    }
    trial = combine(own, foreign)
    assert "LB" not in trial  # no hospital row, and an own trial: no empty table added
    vs = trial["VS"]
    assert vs.columns == list(columns)
    assert [(r["USUBJID"], r["VSSEQ"], r["VSSRCID"]) for r in vs.rows] == [
        ("S-1", "1", "Observation/a"),
        ("S-2", "1", ""),
        ("S-2", "10", ""),
        ("S-2", "11", "Observation/b"),
    ]
    assert own["VS"].columns == ["STUDYID", "DOMAIN", "USUBJID", "VSSEQ", "VSTESTCD"]  # not changed


def test_validate_checks_own_resources_and_leaves_others_to_their_report(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run(
        "convert",
        FIXTURES / "synthea-bundle",
        "--to",
        "sdtm",
        "--study",
        "S",
        "--validate",
        "--out",
        out,
    )
    assert done.code == 0, done.err  # its resources that are not valid R4 are in the report
    report = json.loads((out / "mapping-report.json").read_text())
    assert (
        "not valid R4: resourceType: not an R4 resource type"
        in report["resource_types"]["Observatoin"]["skipped_by_reason"]
    )


def test_the_mapped_tables_go_the_own_way_and_back_byte_for_byte(tmp_path: Path) -> None:
    """The profile-free tables are trial tables: SDTM -> FHIR (own profile) -> SDTM gives them back
    byte for byte, --SRCID included (docs/foreign-fhir.md, "Tables")."""
    sdtm, fhir, back = tmp_path / "sdtm", tmp_path / "fhir", tmp_path / "back"
    first = run(
        "convert", FIXTURES / "synthea-bundle", "--to", "sdtm", "--study", "S", "--out", sdtm
    )
    assert first.code == 0, first.err
    assert run("convert", sdtm, "--out", fhir).code == 0
    again = run("convert", fhir, "--to", "sdtm", "--out", back)
    assert again.code == 0 and "written by others" not in again.out  # all own now
    for table in sorted(sdtm.glob("*.csv")):
        assert (back / table.name).read_bytes() == table.read_bytes(), table.name


def test_a_hospital_patient_given_a_trial_subjects_usubjid_is_refused_by_name(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "mixed"
    shutil.copytree(FIXTURES / "mixed", folder)
    stranger = {"resourceType": "Patient", "id": "stranger", "gender": "female"}
    enrolment = {  # the hospital's own research record, numbered like the trial's subject 001
        "resourceType": "ResearchSubject",
        "id": "enrolment",
        "identifier": [{"system": "urn:example:enrolment", "value": "DALAKAS1993-01-001"}],
        "status": "on-study",
        "study": {"reference": "ResearchStudy/elsewhere"},
        "individual": {"reference": "Patient/stranger"},
    }
    (folder / "hospital" / "patients.ndjson").write_text(
        "".join(json.dumps(r) + "\n" for r in (stranger, enrolment))
    )
    out = tmp_path / "out"
    done = run("convert", folder, "--to", "sdtm", "--study", "DALAKAS1993", "--out", out)
    assert done.code == 3, done.err
    assert "Patient/stranger" in done.err and "USUBJID" in done.err
    assert "01-001" not in done.err  # sources, never the values
    assert not out.exists()
    # under another study identifier the two are told apart, and the same folder converts
    done = run("convert", folder, "--to", "sdtm", "--study", "HOSP", "--out", out)
    assert done.code == 0, done.err
    assert "Patient/stranger" in (out / "dm.csv").read_text()


def test_workers_hand_a_mixed_folder_to_the_one_worker_path_and_write_the_same_bytes(
    tmp_path: Path,
) -> None:
    flat = tmp_path / "flat"  # one folder of NDJSON, as the split takes an own export
    flat.mkdir()
    hospital = FIXTURES / "mixed" / "hospital" / "labs.ndjson"
    for file in [*(FIXTURES / "mixed" / "trial").iterdir(), hospital]:
        shutil.copy(file, flat / file.name)
    outputs = []
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}"
        done = run("convert", flat, "--to", "sdtm", "--workers", workers, "--out", out)
        assert done.code == 0, done.err
        outputs.append({p.name: p.read_bytes() for p in out.iterdir()})
    assert outputs[0] == outputs[1]
    assert b"Observation/" in outputs[1]["vs.csv"]  # the hospital's rows, named by their source
    assert b"Observation/" in outputs[1]["lb.csv"]


def test_fhir_written_by_others_is_held_whole_so_its_memory_estimate_is_its_own(
    tmp_path: Path,
) -> None:
    from adapter.cli.convert_cmd import FOREIGN_MEMORY_PER_BYTE, GZIP_EXPANSION, MEMORY_PER_BYTE
    from adapter.foreign import input_files

    src = FIXTURES / "bulk-export"
    size = sum(
        p.stat().st_size * (GZIP_EXPANSION if p.name.endswith(".gz") else 1)
        for p in input_files(src)
    )
    between = (MEMORY_PER_BYTE["sdtm"] + FOREIGN_MEMORY_PER_BYTE) / 2  # above the streamed estimate
    limit = f"{size * between / 1e9:.9f}"
    out = tmp_path / "out"
    done = run(
        "convert", src, "--to", "sdtm", "--study", "SYN01", "--max-memory", limit, "--out", out
    )
    assert done.code == 3, done.err
    assert "written by others" in done.err and f"{FOREIGN_MEMORY_PER_BYTE} x the input" in done.err
    assert not out.exists()
    limit = f"{size * (FOREIGN_MEMORY_PER_BYTE + 1) / 1e9:.9f}"
    done = run(
        "convert", src, "--to", "sdtm", "--study", "SYN01", "--max-memory", limit, "--out", out
    )
    assert done.code == 0, done.err
