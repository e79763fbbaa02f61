"""The profile-free path on public FHIR written by others (fixtures/foreign/public, see its README):
official HL7 R4 examples, a Synthea patient as NDJSON, a Synthea Bulk Data export (10 patients)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from adapter.foreign import read_foreign
from mappings.foreign import ForeignOptions, map_foreign
from mappings.foreign.codes import LB_LOINC, VS_LOINC
from tests.foreign.conftest import public


def test_official_examples_are_read_without_a_crash_and_all_accounted_for() -> None:
    found = read_foreign(public("hl7-examples"))
    assert found.problems == []
    result = map_foreign(found.resources, ForeignOptions(study="HL7"))
    report = result.report
    assert report.unbalanced() == []
    assert report.total_read == len(found.resources)
    (ae,) = [
        dict(zip(result.tables["AE"].columns, r, strict=True)) for r in result.tables["AE"].rows
    ]
    assert (ae["AESPID"], ae["AESEV"], ae["AESER"], ae["AESRCID"]) == (
        "49476534",
        "MILD",
        "N",
        "AdverseEvent/example",
    )
    vs = {
        r[-1]: dict(zip(result.tables["VS"].columns, r, strict=True))
        for r in result.tables["VS"].rows
    }
    height = vs["Observation/body-height"]
    assert (height["VSORRES"], height["VSORRESU"], height["VSSTRESU"]) == (
        "66.899999999999991",
        "in",
        "cm",
    )


def _observations_with_value(root: Path) -> list[dict[str, object]]:
    found = []
    for path in sorted(root.glob("Observation*.ndjson")):
        for line in path.read_text().splitlines():
            obs = json.loads(line)
            cats = {c.get("code") for cat in obs.get("category", []) for c in cat.get("coding", [])}
            has_value = any(k.startswith("value") for k in obs) or any(
                any(k.startswith("value") for k in c) for c in obs.get("component", [])
            )
            if cats & {"vital-signs", "laboratory"} and has_value:
                found.append(obs)
    return found


def test_synthea_vital_signs_and_labs_map_at_least_95_percent() -> None:
    root = public("synthea-ndjson")
    expected = _observations_with_value(root)
    result = map_foreign(read_foreign(root).resources, ForeignOptions(study="SYN"))
    with_value, mapped = (sum(result.report.coverage[d][i] for d in ("VS", "LB")) for i in (0, 1))
    assert with_value == len(expected) > 100
    ratio = mapped / with_value
    assert ratio >= 0.95, (
        f"{mapped} of {with_value} vital-sign and lab Observations with a value mapped"
    )
    sources = {row[-1] for d in ("VS", "LB") for row in result.tables[d].rows}
    assert sum(f"Observation/{o['id']}" in sources for o in expected) == mapped


def test_synthea_values_are_exactly_as_written_with_the_right_codes() -> None:
    root = public("synthea-ndjson")
    result = map_foreign(read_foreign(root).resources, ForeignOptions(study="SYN"))
    rows = {}
    for domain in ("VS", "LB"):
        table = result.tables[domain]
        for row in table.rows:
            cells = dict(zip(table.columns, row, strict=True))
            rows[(cells[f"{domain}SRCID"], cells[f"{domain}LOINC"])] = (domain, cells)
    raw = (root / "Observation.ndjson").read_text().splitlines()
    checked = 0
    for line in raw:
        obs = json.loads(line)
        holders = [obs, *obs.get("component", [])]
        for holder in holders:
            quantity = holder.get("valueQuantity")
            loinc = next(
                (
                    c["code"]
                    for c in holder.get("code", {}).get("coding", [])
                    if c.get("system") == "http://loinc.org"
                ),
                "",
            )
            key = (f"Observation/{obs['id']}", loinc)
            if quantity is None or key not in rows:
                continue
            domain, cells = rows[key]
            written = line.split(f'"code":"{loinc}"', 1)[1] if holder is not obs else line
            assert (
                f'"value":{cells[f"{domain}ORRES"]},' in written
                or f'"value":{cells[f"{domain}ORRES"]}}}' in written
            )
            assert cells[f"{domain}ORRESU"] == quantity["unit"]
            table = VS_LOINC if domain == "VS" else LB_LOINC
            if loinc in table:
                assert cells[f"{domain}TESTCD"] == table[loinc].testcd
            checked += 1
    assert checked > 100


def test_synthea_events_map_to_their_domains() -> None:
    result = map_foreign(
        read_foreign(public("synthea-ndjson")).resources, ForeignOptions(study="SYN")
    )
    report = result.report
    assert (
        report.types["MedicationRequest"].mapped["CM"][0] == report.types["MedicationRequest"].read
    )
    assert report.types["Condition"].mapped["MH"][0] == report.types["Condition"].read
    assert report.types["Procedure"].mapped["PR"][0] == report.types["Procedure"].read
    assert (
        report.types["Encounter"].skipped["no SDTM domain"].count == report.types["Encounter"].read
    )


def test_a_bulk_export_with_gzip_and_a_client_log_maps_every_patient() -> None:
    found = read_foreign(public("bulk-export"))
    assert [p["where"] for p in found.problems] == ["log.ndjson"]
    result = map_foreign(found.resources, ForeignOptions(study="BULK"))
    patients = sum(1 for r in found.resources if r.resource["resourceType"] == "Patient")
    assert len(result.tables["DM"].rows) == patients
    assert result.report.unbalanced() == []
    assert {"CM", "MH", "PR"} <= set(result.report.rows)


def test_output_is_independent_of_input_order_on_public_data() -> None:
    resources = read_foreign(public("synthea-ndjson")).resources
    reference = map_foreign(resources, ForeignOptions(study="SYN"))
    shuffled = list(resources)
    random.Random(7).shuffle(shuffled)
    again = map_foreign(shuffled, ForeignOptions(study="SYN"))
    assert again.tables == reference.tables
