"""Cohort pulls and search tables against a live HAPI FHIR server: a few Patients, Observations, a
Condition and a Group uploaded, then `trialfhir pull --patient / --group / --search` and `trialfhir
search`, checked against what was uploaded (every `Type/id`, every value as written)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from adapter import cohorts
from adapter.cli import main
from adapter.client import FhirClient
from adapter.fhir_json import loads

pytestmark = pytest.mark.hapi

JSON = dict[str, Any]

RESOURCES = """[
 {"resourceType":"Patient","id":"coh-a","gender":"female","birthDate":"1961-04"},
 {"resourceType":"Patient","id":"coh-b","gender":"male"},
 {"resourceType":"Patient","id":"coh-c"},
 {"resourceType":"Observation","id":"coh-a-wt","status":"final",
  "category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],
  "code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}],"text":"Body weight"},
  "subject":{"reference":"Patient/coh-a"},"effectiveDateTime":"2021-03-04T08:15:00+01:00",
  "valueQuantity":{"value":165.0,"unit":"lb","system":"http://unitsofmeasure.org","code":"[lb_av]"}},
 {"resourceType":"Observation","id":"coh-b-wt","status":"final",
  "code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},
  "subject":{"reference":"Patient/coh-b"},"effectiveDateTime":"2021-03-05",
  "valueQuantity":{"value":70.50,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}},
 {"resourceType":"Observation","id":"coh-b-temp","status":"final",
  "code":{"coding":[{"system":"http://loinc.org","code":"8310-5"}]},
  "subject":{"reference":"Patient/coh-b"},"effectiveDateTime":"2021-03-05",
  "valueQuantity":{"value":98.60,"unit":"degF","system":"http://unitsofmeasure.org","code":"[degF]"}},
 {"resourceType":"Observation","id":"coh-c-wt","status":"final",
  "code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},
  "subject":{"reference":"Patient/coh-c"},"effectiveDateTime":"2021-03-06",
  "valueQuantity":{"value":80,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}},
 {"resourceType":"Condition","id":"coh-a-dm","code":{"coding":[{"system":"http://snomed.info/sct","code":"44054006"}],"text":"Diabetes"},
  "subject":{"reference":"Patient/coh-a"},"onsetDateTime":"2015-03"},
 {"resourceType":"Group","id":"coh-g","type":"person","actual":true,
  "member":[{"entity":{"reference":"Patient/coh-a"}},{"entity":{"reference":"Patient/coh-c"},"inactive":true}]}
]"""


@pytest.fixture(scope="module")
def server(hapi_clean_base_url: str) -> Iterator[str]:
    resources = loads(RESOURCES.encode())
    with FhirClient(hapi_clean_base_url) as client:
        summary = client.upload(resources, chunk_size=50, mode="update")
        assert summary.failed == []
    yield hapi_clean_base_url


def pulled(folder: Path) -> set[str]:
    found = set()
    for path in folder.glob("*.ndjson"):
        for line in path.read_text(encoding="utf-8").splitlines():
            resource = json.loads(line)
            assert path.name == f"{resource['resourceType']}.ndjson"
            found.add(f"{resource['resourceType']}/{resource['id']}")
    return found


A_AND_B = {
    "Patient/coh-a",
    "Patient/coh-b",
    "Observation/coh-a-wt",
    "Observation/coh-b-wt",
    "Observation/coh-b-temp",
    "Condition/coh-a-dm",
}


def test_pull_by_patient_uses_everything_on_hapi(server: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["pull", "--server", server, "--patient", "coh-a,coh-b", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "Patient/$everything for each of the 2 patients" in result.output
    assert pulled(out) == A_AND_B


def test_pull_by_patient_with_per_type_searches_gives_the_same(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cohorts, "_offers_everything", lambda capabilities: False)
    result = cohorts.pull_cohort(server, patients=["coh-a", "coh-b"], out=tmp_path / "out")
    assert "per-type searches" in result.notes[0]
    assert pulled(tmp_path / "out") == A_AND_B
    typed = cohorts.pull_cohort(server, patients=["coh-b"], types=["Condition"])
    assert {f"{r['resourceType']}/{r['id']}" for r in typed.resources} == {"Patient/coh-b"}


def test_pull_by_group_takes_its_active_members(server: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["pull", "--server", server, "--group", "coh-g", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert pulled(out) == {
        "Group/coh-g",
        "Patient/coh-a",
        "Observation/coh-a-wt",
        "Condition/coh-a-dm",
    }
    assert "left out: 1 Group members marked inactive" in result.output


def test_pull_by_search_with_include(server: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "pull", "--server", server, "--out", str(out),
            "--search", "Observation?code=http://loinc.org|29463-7",
            "--include", "Observation:patient",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert pulled(out) == {
        "Observation/coh-a-wt",
        "Observation/coh-b-wt",
        "Observation/coh-c-wt",
        "Patient/coh-a",
        "Patient/coh-b",
        "Patient/coh-c",
    }
    unknown = CliRunner().invoke(
        main,
        ["pull", "--server", server, "--patient", "coh-a,coh-zz", "--out", str(tmp_path / "x")],
    )
    assert unknown.exit_code == 6, unknown.output


def test_search_table_from_hapi_keeps_every_value_as_written(server: str, tmp_path: Path) -> None:
    out = tmp_path / "obs.csv"
    result = CliRunner().invoke(
        main,
        [
            "search",
            "Observation?subject=Patient/coh-a,Patient/coh-b",
            "--server",
            server,
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8").splitlines() == [
        "subject,domain,testcd,test,code,system,value,unit,std_value,std_unit,date,source",
        "Patient/coh-a,VS,WEIGHT,Weight,29463-7,http://loinc.org,165.0,lb,74.84,kg,2021-03-04T08:15:00,Observation/coh-a-wt",
        "Patient/coh-b,VS,WEIGHT,Weight,29463-7,http://loinc.org,70.50,kg,70.50,kg,2021-03-05,Observation/coh-b-wt",
        "Patient/coh-b,VS,TEMP,Temperature,8310-5,http://loinc.org,98.60,degF,37.00,C,2021-03-05,Observation/coh-b-temp",
    ]
    from adapter import search_table

    conditions = search_table(server, "Condition?subject=Patient/coh-a")
    assert conditions[["subject", "test", "code", "date"]].values.tolist() == [
        ["Patient/coh-a", "Diabetes", "44054006", "2015-03"]
    ]


def test_study_pull_leaves_out_an_unlinked_event_by_its_true_reason_and_all_events_keeps_it(
    server: str, tmp_path: Path
) -> None:
    from adapter.sources import detect
    from adapter.transfer import NOT_LINKED, pull_study, push
    from mappings.identity import SID_USUBJID

    study = Path(__file__).resolve().parents[2] / "adapter" / "studies" / "dalakas1993"
    with FhirClient(server) as client:
        push(client, detect(study).resources())
        (subject,) = (
            client.search("Patient").where(identifier=f"{SID_USUBJID}|DALAKAS1993-01-001").all()
        )
        hospital = loads(
            b'{"resourceType":"Observation","id":"coh-hospital","status":"final",'
            b'"code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},'
            b'"valueQuantity":{"value":131.0,"unit":"lb"}}'
        )
        hospital["subject"] = {"reference": f"Patient/{subject['id']}"}
        client.update(hospital)
    linked = pull_study(server, "DALAKAS1993")
    assert linked.left_out == {NOT_LINKED: 1}
    every = pull_study(server, "DALAKAS1993", all_events=True)
    assert every.left_out == {}
    extra = {f"{r['resourceType']}/{r['id']}" for r in every.resources} - {
        f"{r['resourceType']}/{r['id']}" for r in linked.resources
    }
    assert extra == {"Observation/coh-hospital"}
    result = CliRunner().invoke(
        main, ["pull", "--server", server, "--study", "DALAKAS1993", "--out", str(tmp_path / "s")]
    )
    assert result.exit_code == 0, result.output
    assert f"left out: 1 {NOT_LINKED}" in result.output
    assert "other studies" not in result.output
