"""Search tables: `trialfhir search 'Type?query' --out FILE.csv` and `adapter.search_table(...)`, a
tidy table through the profile-free mapping rules, against canned servers (pytest-httpx) whose
bodies are written as raw JSON text so that "value as written" is checked to the digit. The live
search is in tests/integration/test_cohorts_hapi.py."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from pytest_httpx import HTTPXMock

import adapter
from adapter.cli import main
from adapter.cli._common import EXIT_NOTHING_CONVERTED, EXIT_OUTPUT_REFUSED, EXIT_USAGE
from adapter.cohorts import InvalidSelection
from adapter.fhir_json import loads
from adapter.search_tables import (
    COLUMNS,
    CsvOutputRefused,
    SearchTable,
    search_table,
    tabulate,
)

BASE = "http://fhir.test/fhir"
JSON = dict[str, Any]
CAPABILITY = (
    b'{"resourceType":"CapabilityStatement","status":"active","fhirVersion":"4.0.1",'
    b'"kind":"instance","format":["json"],"date":"2026-11-30"}'
)
HEADER = ",".join(COLUMNS)

WEIGHT_LB = """{"resourceType":"Observation","id":"w1","status":"final",
 "category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],
 "code":{"coding":[{"system":"http://loinc.org","code":"29463-7","display":"Body weight"}]},
 "subject":{"reference":"Patient/p1"},"effectiveDateTime":"2020-01-20T09:30:00+01:00",
 "valueQuantity":{"value":165.0,"unit":"lb","system":"http://unitsofmeasure.org","code":"[lb_av]"}}"""
TEMP = """{"resourceType":"Observation","id":"t1","status":"final",
 "code":{"coding":[{"system":"http://loinc.org","code":"8310-5"}],"text":"Body temperature"},
 "subject":{"reference":"http://fhir.test/fhir/Patient/p2"},"effectiveDateTime":"2020-02-01",
 "valueQuantity":{"value":98.60,"unit":"degF","system":"http://unitsofmeasure.org","code":"[degF]"}}"""
BP = """{"resourceType":"Observation","id":"bp1","status":"final",
 "code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},
 "subject":{"reference":"Patient/p1"},"effectiveDateTime":"2020-01-20",
 "component":[
  {"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":120,"unit":"mm[Hg]","system":"http://unitsofmeasure.org","code":"mm[Hg]"}},
  {"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":80,"unit":"mm[Hg]","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}"""
GLUCOSE = """{"resourceType":"Observation","id":"g1","status":"final",
 "category":[{"coding":[{"code":"laboratory"}]}],
 "code":{"coding":[{"system":"http://loinc.org","code":"2345-7"}],"text":"Glucose"},
 "subject":{"reference":"Patient/p2"},"effectiveDateTime":"2020-02-02T08:00:00Z",
 "valueQuantity":{"value":5.0,"comparator":"<","unit":"mmol/L"}}"""
NO_LOINC = """{"resourceType":"Observation","id":"x1","status":"final",
 "category":[{"coding":[{"code":"vital-signs"}]}],
 "code":{"coding":[{"system":"urn:local","code":"WT"}]},
 "subject":{"reference":"Patient/p1"},"valueQuantity":{"value":1,"unit":"kg"}}"""


def page(*entries: str, next_url: str | None = None) -> bytes:
    link = f',"link":[{{"relation":"next","url":"{next_url}"}}]' if next_url else ""
    matched = ",".join(f'{{"resource":{e},"search":{{"mode":"match"}}}}' for e in entries)
    return f'{{"resourceType":"Bundle","type":"searchset"{link},"entry":[{matched}]}}'.encode()


def patients(*ids: str) -> bytes:
    entries = ",".join(f'{{"resource":{{"resourceType":"Patient","id":"{p}"}}}}' for p in ids)
    return f'{{"resourceType":"Bundle","type":"searchset","entry":[{entries}]}}'.encode()


def fhir(content: bytes, status: int = 200) -> httpx.Response:
    return httpx.Response(
        status, content=content, headers={"Content-Type": "application/fhir+json"}
    )


def serve(
    httpx_mock: HTTPXMock, pages: dict[str, bytes], known: tuple[str, ...] = ("p1", "p2")
) -> list[httpx.Request]:
    """A server answering metadata, Patient?_id= and the Observation pages (by the `page` param)."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        path = request.url.path
        if path.endswith("/metadata"):
            return fhir(CAPABILITY)
        if path.endswith("/Patient"):
            asked = request.url.params["_id"].split(",")
            return fhir(patients(*[p for p in asked if p in known]))
        return fhir(pages[request.url.params.get("page", "1")])

    httpx_mock.add_callback(answer, is_reusable=True)
    return seen


TWO_PAGES = {
    "1": page(WEIGHT_LB, BP, NO_LOINC, next_url=f"{BASE}/Observation?page=2"),
    "2": page(TEMP, GLUCOSE),
}
EXPECTED_CSV = "\n".join(
    [
        HEADER,
        "Patient/p1,VS,DIABP,Diastolic Blood Pressure,8462-4,http://loinc.org,80,mm[Hg],80,mmHg,2020-01-20,Observation/bp1",
        "Patient/p1,VS,SYSBP,Systolic Blood Pressure,8480-6,http://loinc.org,120,mm[Hg],120,mmHg,2020-01-20,Observation/bp1",
        "Patient/p1,VS,WEIGHT,Weight,29463-7,http://loinc.org,165.0,lb,74.84,kg,2020-01-20T09:30:00,Observation/w1",
        "Patient/p2,VS,TEMP,Temperature,8310-5,http://loinc.org,98.60,degF,37.00,C,2020-02-01,Observation/t1",
        "Patient/p2,LB,GLUC,Glucose,2345-7,http://loinc.org,<5.0,mmol/L,<5.0,,2020-02-02T08:00:00,Observation/g1",
        "",
    ]
)


def test_search_writes_the_tidy_csv_with_every_value_as_written(
    tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    seen = serve(httpx_mock, TWO_PAGES)
    out = tmp_path / "obs.csv"
    result = CliRunner().invoke(
        main,
        [
            "search",
            "Observation?code=http://loinc.org|29463-7",
            "--server",
            BASE,
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8") == EXPECTED_CSV
    assert (
        "wrote 5 rows (2 subjects) from 4 of the 5 Observation resources matched" in result.output
    )
    assert (
        "left out: 1 Observation: no value with a LOINC code or a mappable value type"
        in result.output
    )
    assert [p.name for p in tmp_path.iterdir()] == ["obs.csv"]  # no temporary file left
    first = seen[1]
    assert first.url.params["code"] == "http://loinc.org|29463-7"
    assert first.url.params["_count"] == "500"
    # the subjects were read by id, once, the absolute reference on this server included
    (by_id,) = [r for r in seen if r.url.path.endswith("/Patient")]
    assert sorted(by_id.url.params["_id"].split(",")) == ["p1", "p2"]


def test_the_python_api_gives_the_same_rows_as_a_dataframe(httpx_mock: HTTPXMock) -> None:
    serve(httpx_mock, TWO_PAGES)
    assert adapter.search_table is search_table
    df = adapter.search_table(BASE, "Observation?code=http://loinc.org|29463-7")
    assert list(df.columns) == list(COLUMNS)
    rows = [",".join(r) for r in df.astype(str).itertuples(index=False, name=None)]
    assert rows == EXPECTED_CSV.splitlines()[1:]
    assert df.loc[df["source"] == "Observation/t1", "value"].item() == "98.60"


def test_a_subject_the_server_does_not_have_gives_no_row_and_is_said(httpx_mock: HTTPXMock) -> None:
    serve(httpx_mock, {"1": page(WEIGHT_LB, TEMP)}, known=("p2",))
    from adapter.search_tables import tabulate_search

    table = tabulate_search(BASE, "Observation?code=x")
    assert [r[-1] for r in table.rows] == ["Observation/t1"]
    assert table.left_out == {"subject not in the input": 1}
    assert table.matched == 2 and table.tabulated == 1


def test_conditions_and_medication_requests_map_as_mh_and_cm() -> None:
    condition = {
        "resourceType": "Condition",
        "id": "c1",
        "code": {
            "coding": [{"system": "http://snomed.info/sct", "code": "44054006"}],
            "text": "Diabetes",
        },
        "subject": {"reference": "Patient/p1"},
        "onsetDateTime": "2015-03",
    }
    request = {
        "resourceType": "MedicationRequest",
        "id": "m1",
        "status": "active",
        "intent": "order",
        "medicationReference": {"reference": "Medication/met"},
        "subject": {"reference": "Patient/p1"},
        "authoredOn": "2016-01-05",
        "dosageInstruction": [
            {"doseAndRate": [{"doseQuantity": loads(b'{"value":500.0,"unit":"mg"}')}]}
        ],
    }
    medication = {
        "resourceType": "Medication",
        "id": "met",
        "code": {
            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "860975"}],
            "text": "Metformin",
        },
    }
    person = {"resourceType": "Patient", "id": "p1"}
    mh = tabulate("Condition", [condition], [person])
    assert mh.rows == [
        (
            "Patient/p1",
            "MH",
            "",
            "Diabetes",
            "44054006",
            "http://snomed.info/sct",
            "",
            "",
            "",
            "",
            "2015-03",
            "Condition/c1",
        )
    ]
    cm = tabulate("MedicationRequest", [request], [person, medication])
    assert cm.rows == [
        (
            "Patient/p1",
            "CM",
            "",
            "Metformin",
            "860975",
            "http://www.nlm.nih.gov/research/umls/rxnorm",
            "500.0",
            "mg",
            "",
            "",
            "2016-01-05",
            "MedicationRequest/m1",
        )
    ]


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("Patient?name=x", "takes Observation, Condition, MedicationRequest"),
        ("Observation/1", "a read"),
    ],
)
def test_a_query_the_table_cannot_take_is_a_usage_error_before_any_request(
    tmp_path: Path, httpx_mock: HTTPXMock, query: str, said: str
) -> None:
    result = CliRunner().invoke(
        main, ["search", query, "--server", BASE, "--out", str(tmp_path / "t.csv")]
    )
    assert result.exit_code == EXIT_USAGE, result.output
    assert said in result.output
    assert httpx_mock.get_requests() == []
    with pytest.raises(InvalidSelection):
        search_table(BASE, query)


def test_nothing_tabulated_exits_12_and_writes_nothing(
    tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    serve(httpx_mock, {"1": page(NO_LOINC)})
    out = tmp_path / "t.csv"
    result = CliRunner().invoke(
        main, ["search", "Observation?code=x", "--server", BASE, "--out", str(out)]
    )
    assert result.exit_code == EXIT_NOTHING_CONVERTED, result.output
    assert "matched 1 Observation resources and none gave a row" in result.output
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_is_refused_before_asking_the_server_unless_force(
    tmp_path: Path, httpx_mock: HTTPXMock
) -> None:
    out = tmp_path / "mine.csv"
    out.write_text("my own work\n", encoding="utf-8")
    args = ["search", "Observation?code=x", "--server", BASE, "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == EXIT_OUTPUT_REFUSED, result.output
    assert "pass --force" in result.output
    assert out.read_text(encoding="utf-8") == "my own work\n"
    assert httpx_mock.get_requests() == []
    serve(httpx_mock, TWO_PAGES)
    result = CliRunner().invoke(main, [*args, "--force"])
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8") == EXPECTED_CSV


def test_write_csv_never_clobbers_and_leaves_nothing_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = SearchTable("Observation", [("Patient/p1",) + ("x",) * (len(COLUMNS) - 1)])
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    with pytest.raises(CsvOutputRefused, match="not a regular file"):
        table.write_csv(folder, force=True)
    with pytest.raises(CsvOutputRefused, match="does not exist"):
        table.write_csv(tmp_path / "missing" / "t.csv")
    target = tmp_path / "t.csv"
    table.write_csv(target)
    with pytest.raises(CsvOutputRefused, match="exists"):
        table.write_csv(target)
    before = target.read_bytes()

    def full_disk(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(CsvOutputRefused, match="No space left on device"):
        SearchTable("Observation", []).write_csv(target, force=True)
    assert target.read_bytes() == before  # the earlier file whole, no temporary file beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.csv", "t.csv"]
    assert target.read_text(encoding="utf-8").splitlines()[1].startswith("Patient/p1,x,")
