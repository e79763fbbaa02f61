"""Hand-written FHIR R4 for the profile-free path: one trial subject with hospital data around it.

Written here (not copied from anywhere) so that every rule has a resource that exercises it: exact
decimals (`98.60`, `13.50`), US customary units, a panel, a LOINC outside the LB table, an
AdverseEvent whose identifier is one object, contained and referenced Medications, and resources that
must be skipped (entered-in-error, refuted, not-done, potential, not valid R4, subjects outside the study).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from adapter.fhir_json import loads

PUBLIC = Path(__file__).resolve().parents[2] / "fixtures" / "foreign" / "public"

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def _obs(
    oid: str,
    loinc: str,
    value: str,
    category: str = "vital-signs",
    subject: str = "urn:uuid:p1",
    when: str = "2020-01-20T09:30:00+01:00",
    extra: str = "",
) -> str:
    return f"""{{"resourceType": "Observation", "id": "{oid}", "status": "final",
      "category": [{{"coding": [{{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                 "code": "{category}"}}]}}],
      "code": {{"coding": [{{"system": "{LOINC}", "code": "{loinc}"}}], "text": "test {loinc}"}},
      "subject": {{"reference": "{subject}"}}, "effectiveDateTime": "{when}"{value}{extra}}}"""


def _qty(value: str, unit: str, code: str) -> str:
    return f', "valueQuantity": {{"value": {value}, "unit": "{unit}", "system": "{UCUM}", "code": "{code}"}}'


ENTRIES = [
    """{"resourceType": "ResearchStudy", "id": "st1", "status": "active",
        "identifier": [{"system": "urn:example:studies", "value": "STUDY-X"}]}""",
    """{"resourceType": "ResearchSubject", "id": "rs1", "status": "on-study",
        "identifier": [{"system": "urn:example:subjects", "value": "STUDY-X-001"}],
        "study": {"reference": "ResearchStudy/st1"}, "individual": {"reference": "urn:uuid:p1"},
        "assignedArm": "IVIG", "actualArm": "IVIG", "period": {"start": "2020-01-15"}}""",
    """{"resourceType": "Patient", "id": "p1",
        "identifier": [{"value": "no-system"}, {"system": "urn:example:mrn", "value": "MRN-1"}],
        "gender": "female", "birthDate": "1960-03-02", "deceasedDateTime": "2021-06-01T10:00:00Z",
        "address": [{"country": "NL"}],
        "extension": [
          {"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race", "extension": [
            {"url": "ombCategory", "valueCoding": {"system": "urn:oid:2.16.840.1.113883.6.238", "code": "2106-3"}},
            {"url": "ombCategory", "valueCoding": {"system": "urn:oid:2.16.840.1.113883.6.238", "code": "2054-5"}}]},
          {"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity", "extension": [
            {"url": "ombCategory", "valueCoding": {"system": "urn:oid:2.16.840.1.113883.6.238", "code": "2186-5"}}]}]}""",
    """{"resourceType": "Patient", "id": "p2", "gender": "male", "birthDate": "1970"}""",
    _obs("weight", "29463-7", _qty("165.0", "lb", "[lb_av]")),
    _obs("temp", "8310-5", _qty("98.60", "F", "[degF]")),
    _obs("height", "8302-2", _qty("70", "in", "[in_i]")),
    _obs(
        "bp",
        "85354-9",
        "",
        extra=""", "component": [
        {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
         "valueQuantity": {"value": 120, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
        {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
         "valueQuantity": {"value": 80, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}]""",
    ),
    _obs("hr-error", "8867-4", _qty("61", "/min", "/min")).replace('"final"', '"entered-in-error"'),
    _obs(
        "glucose",
        "2345-7",
        _qty("95", "mg/dL", "mg/dL"),
        "laboratory",
        extra=""",
        "referenceRange": [{"low": {"value": 70, "unit": "mg/dL"}, "high": {"value": 99, "unit": "mg/dL"}}],
        "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "N"}]}]""",
    ),
    _obs("hgb", "718-7", _qty("13.50", "g/dL", "g/dL"), "laboratory"),
    _obs("ldh", "2532-0", _qty("180", "U/L", "U/L"), "laboratory"),
    _obs("urine-color", "5778-6", ', "valueCodeableConcept": {"text": "Yellow"}', "laboratory"),
    _obs(
        "other-patient", "2345-7", _qty("101", "mg/dL", "mg/dL"), "laboratory", subject="Patient/p2"
    ),
    _obs("nobody", "2345-7", _qty("88", "mg/dL", "mg/dL"), "laboratory", subject="Patient/zzz"),
    """{"resourceType": "Observation", "id": "bad-code", "status": "final",
        "code": [{"text": "an array where R4 has one CodeableConcept"}], "subject": {"reference": "urn:uuid:p1"}}""",
    """{"resourceType": "AdverseEvent", "id": "ae1", "actuality": "actual",
        "identifier": {"system": "urn:example:ae", "value": "AE-7"},
        "event": {"coding": [{"system": "http://snomed.info/sct", "code": "271807003", "display": "Eruption of skin"}],
                  "text": "rash on the left forearm"},
        "subject": {"reference": "urn:uuid:p1"}, "date": "2020-02-03T14:00:00+01:00",
        "seriousness": {"coding": [{"code": "serious"}]}, "severity": {"coding": [{"code": "moderate"}]},
        "outcome": {"coding": [{"code": "resolved"}]},
        "suspectEntity": [{"instance": {"reference": "Medication/m1"},
                           "causality": [{"assessment": {"text": "Probably-Likely"}}]}]}""",
    """{"resourceType": "AdverseEvent", "id": "ae-potential", "actuality": "potential",
        "event": {"text": "possible fall"}, "subject": {"reference": "urn:uuid:p1"}}""",
    """{"resourceType": "Condition", "id": "c1",
        "verificationStatus": {"coding": [{"code": "confirmed"}]},
        "category": [{"coding": [{"code": "problem-list-item"}]}],
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "396230008", "display": "Dermatomyositis"}]},
        "subject": {"reference": "urn:uuid:p1"}, "onsetDateTime": "2018-05", "abatementDateTime": "2019",
        "recordedDate": "2018-06-01"}""",
    """{"resourceType": "Condition", "id": "c-refuted",
        "verificationStatus": {"coding": [{"code": "refuted"}]}, "code": {"text": "lupus"},
        "subject": {"reference": "urn:uuid:p1"}}""",
    """{"resourceType": "Procedure", "id": "pr1", "status": "completed",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "70871006", "display": "Muscle biopsy"}]},
        "subject": {"reference": "urn:uuid:p1"}, "bodySite": [{"text": "left quadriceps"}],
        "performedPeriod": {"start": "2020-01-16T08:00:00+01:00", "end": "2020-01-16T08:40:00+01:00"}}""",
    """{"resourceType": "Procedure", "id": "pr-not-done", "status": "not-done", "code": {"text": "MRI"},
        "subject": {"reference": "urn:uuid:p1"}}""",
    """{"resourceType": "Medication", "id": "m1",
        "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "8640", "display": "prednisone"}]}}""",
    """{"resourceType": "MedicationRequest", "id": "mr1", "status": "active", "intent": "order",
        "medicationReference": {"reference": "Medication/m1"}, "subject": {"reference": "urn:uuid:p1"},
        "authoredOn": "2020-01-15",
        "dosageInstruction": [{"text": "60 mg daily", "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d",
            "boundsPeriod": {"start": "2020-01-16", "end": "2020-03-01"}}},
          "route": {"text": "oral"},
          "doseAndRate": [{"doseQuantity": {"value": 60, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}}]}]}""",
    """{"resourceType": "MedicationStatement", "id": "ms1", "status": "active",
        "contained": [{"resourceType": "Medication", "id": "med", "code": {"text": "Calcium carbonate 500 mg"}}],
        "medicationReference": {"reference": "#med"}, "subject": {"reference": "urn:uuid:p1"},
        "effectivePeriod": {"start": "2019-11"}}""",
    """{"resourceType": "MedicationAdministration", "id": "ma1", "status": "completed",
        "medicationCodeableConcept": {"text": "IV immunoglobulin"}, "subject": {"reference": "urn:uuid:p1"},
        "effectiveDateTime": "2020-01-16T10:00:00+01:00",
        "dosage": {"dose": {"value": 2.0, "unit": "g/kg"}, "route": {"text": "intravenous"}}}""",
    """{"resourceType": "Encounter", "id": "e1", "status": "finished", "class": {"code": "AMB"}}""",
]


def _bundle_text() -> str:
    entries = []
    for text in ENTRIES:
        resource = loads(text)
        full_url = "urn:uuid:p1" if resource.get("id") == "p1" else f"urn:uuid:{resource['id']}"
        entries.append(f'{{"fullUrl": "{full_url}", "resource": {text}}}')
    # the last five entries ride in a nested collection Bundle
    inner = ", ".join(entries[-5:])
    outer = ", ".join(entries[:-5])
    nested = f'{{"resource": {{"resourceType": "Bundle", "id": "inner", "type": "collection", "entry": [{inner}]}}}}'
    return f'{{"resourceType": "Bundle", "id": "outer", "type": "transaction", "entry": [{outer}, {nested}]}}'


BUNDLE_TEXT = _bundle_text()


@pytest.fixture
def bundle() -> dict[str, Any]:
    parsed: dict[str, Any] = loads(BUNDLE_TEXT)
    return parsed


def public(name: str) -> Path:
    path = PUBLIC / name
    if not path.is_dir() or not any(path.iterdir()):
        pytest.skip(
            f"public fixture {name} not present (fixtures/foreign/README.md says how to get it)"
        )
    return path
