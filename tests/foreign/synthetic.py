"""Synthetic FHIR R4 "written by others" for the profile-free path: Synthea-shaped and US-Core-shaped,
written here (modelled on the published structure of those outputs, not copied), in every layout the
reader takes. `python -m tests.foreign.synthetic` writes `fixtures/foreign/synthetic/`; a test checks
that the committed files are exactly what this module makes (fixtures/foreign/README.md).

Layouts (each folder a separate input):
- `synthea-bundle/`: one transaction Bundle per patient, `urn:uuid:` fullUrls and references;
- `bulk-export/`: `Patient.000.ndjson`, `Observation.000.ndjson.gz`, `Condition.000.ndjson`, ...,
  a Bulk client's `log.ndjson` and `error/OperationOutcome.ndjson`;
- `single-json/`: one US Core resource per `.json` file, in subfolders;
- `nested-bundles/`: a collection Bundle holding a searchset (with its OperationOutcome) and a batch;
- `mixed/`: the adapter's own export of 3 Dalakas subjects (`trial/`) and a hospital's labs and
  vitals for the same Patients plus one Patient outside the trial (`hospital/`);
- `nothing/`: only resources without an SDTM domain (exit 12).
Every folder except `mixed/` needs `--study` (no ResearchSubject).
"""

from __future__ import annotations

import gzip
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from adapter.fhir_json import dumps

JSON = dict[str, Any]

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "fixtures" / "foreign" / "synthetic"

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
OBS_CAT = "http://terminology.hl7.org/CodeSystem/observation-category"
SYNTHEA_ID = "https://github.com/synthetichealth/synthea"
MRN = "http://hospital.example.org/mrn"
US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition"
NAMESPACE = uuid.UUID("6f1c3c2e-2b8e-4f55-9d7a-0f7e4a1f0c11")

# (LOINC, display, value as written, unit, UCUM code): vital signs
VITALS: list[tuple[str, str, str, str, str]] = [
    ("8302-2", "Body Height", "172.4", "cm", "cm"),
    ("29463-7", "Body Weight", "165.0", "[lb_av]", "[lb_av]"),
    ("39156-5", "Body mass index (BMI) [Ratio]", "25.18", "kg/m2", "kg/m2"),
    ("8867-4", "Heart rate", "72", "/min", "/min"),
    ("9279-1", "Respiratory rate", "14", "/min", "/min"),
    ("8310-5", "Body temperature", "98.60", "[degF]", "[degF]"),
    ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "97", "%", "%"),
]
# labs by panel: (LOINC, display, value as written, unit, UCUM code)
LABS: dict[str, list[tuple[str, str, str, str, str]]] = {
    "CBC": [
        (
            "6690-2",
            "Leukocytes [#/volume] in Blood by Automated count",
            "7.20",
            "10*3/uL",
            "10*3/uL",
        ),
        (
            "789-8",
            "Erythrocytes [#/volume] in Blood by Automated count",
            "4.61",
            "10*6/uL",
            "10*6/uL",
        ),
        ("718-7", "Hemoglobin [Mass/volume] in Blood", "13.50", "g/dL", "g/dL"),
        ("4544-3", "Hematocrit [Volume Fraction] of Blood by Automated count", "41.2", "%", "%"),
        ("787-2", "MCV [Entitic volume] by Automated count", "89.4", "fL", "fL"),
        ("785-6", "MCH [Entitic mass] by Automated count", "29.3", "pg", "pg"),
        ("786-4", "MCHC [Mass/volume] by Automated count", "32.8", "g/dL", "g/dL"),
        ("777-3", "Platelets [#/volume] in Blood by Automated count", "251", "10*3/uL", "10*3/uL"),
    ],
    "BMP": [
        ("2339-0", "Glucose [Mass/volume] in Blood", "97.3", "mg/dL", "mg/dL"),
        ("6299-2", "Urea nitrogen [Mass/volume] in Blood", "14.0", "mg/dL", "mg/dL"),
        ("38483-4", "Creatinine [Mass/volume] in Blood", "0.91", "mg/dL", "mg/dL"),
        ("2947-0", "Sodium [Moles/volume] in Blood", "140", "mmol/L", "mmol/L"),
        ("6298-4", "Potassium [Moles/volume] in Blood", "4.1", "mmol/L", "mmol/L"),
        ("2069-3", "Chloride [Moles/volume] in Blood", "103", "mmol/L", "mmol/L"),
        ("20565-8", "Carbon dioxide, total [Moles/volume] in Blood", "25", "mmol/L", "mmol/L"),
        ("49765-1", "Calcium [Mass/volume] in Blood", "9.40", "mg/dL", "mg/dL"),
    ],
    "LIPIDS": [
        ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "181.09", "mg/dL", "mg/dL"),
        ("2571-8", "Triglycerides", "120.5", "mg/dL", "mg/dL"),
        ("18262-6", "Low Density Lipoprotein Cholesterol", "101.3", "mg/dL", "mg/dL"),
        ("2085-9", "High Density Lipoprotein Cholesterol", "55.7", "mg/dL", "mg/dL"),
    ],
    "HBA1C": [("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "5.9", "%", "%")],
    "URINALYSIS": [
        ("5811-5", "Specific gravity of Urine by Test strip", "1.020", "{SG}", "{SG}"),
        ("5803-2", "pH of Urine by Test strip", "6.0", "[pH]", "[pH]"),
    ],
    "COAG": [
        ("5902-2", "Prothrombin time (PT)", "12.1", "s", "s"),
        ("6301-6", "INR in Platelet poor plasma by Coagulation assay", "1.0", "{INR}", "{INR}"),
        ("3173-2", "aPTT in Blood by Coagulation assay", "31.5", "s", "s"),
    ],
    # not in the LB table: LBTESTCD by the fallback rule (L + LOINC without its hyphen)
    "OTHER": [
        (
            "33914-3",
            "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum, Plasma or "
            "Blood by Creatinine-based formula (MDRD)",
            "88.2",
            "mL/min/{1.73_m2}",
            "mL/min/{1.73_m2}",
        )
    ],
}
URINE_CODED = [  # urinalysis results written as codes (valueCodeableConcept)
    ("5792-7", "Glucose [Mass/volume] in Urine by Test strip", "Negative"),
    ("5797-6", "Ketones [Mass/volume] in Urine by Test strip", "Trace"),
]


def uid(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "/".join(parts)))


def concept(system: str, code: str, display: str, text: str | None = None) -> JSON:
    found: JSON = {"coding": [{"system": system, "code": code, "display": display}]}
    found["text"] = text if text is not None else display
    return found


def category(code: str) -> list[JSON]:
    return [{"coding": [{"system": OBS_CAT, "code": code, "display": code}]}]


def quantity(value: str, unit: str, code: str) -> JSON:
    return {"value": Decimal(value), "unit": unit, "system": UCUM, "code": code}


def patient(pid: str, n: int, gender: str, birth: str, us_core: bool = False) -> JSON:
    resource: JSON = {"resourceType": "Patient", "id": pid}
    if us_core:
        resource["meta"] = {"profile": [f"{US_CORE}/us-core-patient"]}
    resource["extension"] = [
        {
            "url": f"{US_CORE}/us-core-race",
            "extension": [
                {
                    "url": "ombCategory",
                    "valueCoding": {
                        "system": "urn:oid:2.16.840.1.113883.6.238",
                        "code": "2106-3",
                        "display": "White",
                    },
                },
                {"url": "text", "valueString": "White"},
            ],
        },
        {
            "url": f"{US_CORE}/us-core-ethnicity",
            "extension": [
                {
                    "url": "ombCategory",
                    "valueCoding": {
                        "system": "urn:oid:2.16.840.1.113883.6.238",
                        "code": "2186-5",
                        "display": "Not Hispanic or Latino",
                    },
                },
                {"url": "text", "valueString": "Not Hispanic or Latino"},
            ],
        },
        {"url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace", "valueAddress": {}},
    ]
    resource["identifier"] = [
        {"system": SYNTHEA_ID, "value": pid},
        {
            "type": {"coding": [{"code": "MR"}], "text": "Medical Record Number"},
            "system": MRN,
            "value": f"MRN{n:05d}",
        },
    ]
    resource["name"] = [{"use": "official", "family": f"Family{n}", "given": [f"Given{n}"]}]
    resource["gender"] = gender
    resource["birthDate"] = birth
    resource["address"] = [{"city": "Springfield", "state": "MA", "country": "US"}]
    return resource


def observation(
    oid: str, subject: str, when: str, loinc: str, display: str, cat: str, **value: Any
) -> JSON:
    resource: JSON = {"resourceType": "Observation", "id": oid, "status": "final"}
    resource["category"] = category(cat)
    resource["code"] = concept(LOINC, loinc, display)
    resource["subject"] = {"reference": subject}
    resource["effectiveDateTime"] = when
    resource["issued"] = when.replace("+", ".000+") if "+" in when else when
    resource.update(value)
    return resource


def events(key: str, subject: str, day: str, study_drug: bool = True) -> Iterator[JSON]:
    """One patient's clinical record (`key` names the resources; `subject` is the reference the
    events carry: `urn:uuid:...` in a Bundle, `Patient/id` in NDJSON). Each Observation names the
    record's Encounter the same way, so that a server given the Bundle resolves every reference."""
    in_bundle = subject.startswith("urn:uuid:")
    record = list(_events(key, subject, day, study_drug))
    for resource in record:
        if resource["resourceType"] == "Observation":
            resource["encounter"] = {"reference": f"Encounter/{uid(key, 'enc')}"}
    if in_bundle:  # inside a transaction Bundle, entries name each other by their urn:uuid fullUrl
        local = {f"{r['resourceType']}/{r['id']}": f"urn:uuid:{r['id']}" for r in record}
        record = [_with_references(r, local) for r in record]
    yield from record


def _with_references(value: Any, local: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {
            k: local.get(v, v)
            if k == "reference" and isinstance(v, str)
            else _with_references(v, local)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_with_references(v, local) for v in value]
    return value


def _events(key: str, subject: str, day: str, study_drug: bool) -> Iterator[JSON]:
    when = f"{day}T09:30:00-05:00"
    yield {
        "resourceType": "Encounter",
        "id": uid(key, "enc"),
        "status": "finished",
        "class": {"code": "AMB"},
        "subject": {"reference": subject},
    }
    for loinc, display, value, unit, code in VITALS:
        yield observation(
            uid(key, loinc),
            subject,
            when,
            loinc,
            display,
            "vital-signs",
            valueQuantity=quantity(value, unit, code),
        )
    bp: JSON = observation(
        uid(key, "85354-9"), subject, when, "85354-9", "Blood Pressure", "vital-signs"
    )
    bp["component"] = [
        {
            "code": concept(LOINC, "8462-4", "Diastolic Blood Pressure"),
            "valueQuantity": quantity("81", "mm[Hg]", "mm[Hg]"),
        },
        {
            "code": concept(LOINC, "8480-6", "Systolic Blood Pressure"),
            "valueQuantity": quantity("128", "mm[Hg]", "mm[Hg]"),
        },
    ]
    yield bp
    for panel, tests in LABS.items():
        for loinc, display, value, unit, code in tests:
            lab = observation(
                uid(key, loinc),
                subject,
                when,
                loinc,
                display,
                "laboratory",
                valueQuantity=quantity(value, unit, code),
            )
            if panel == "CBC" and loinc == "718-7":
                lab["referenceRange"] = [
                    {
                        "low": quantity("12.0", "g/dL", "g/dL"),
                        "high": quantity("16.0", "g/dL", "g/dL"),
                    }
                ]
                lab["interpretation"] = [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                                "code": "N",
                            }
                        ]
                    }
                ]
            yield lab
    for loinc, display, text in URINE_CODED:
        yield observation(
            uid(key, loinc),
            subject,
            when,
            loinc,
            display,
            "laboratory",
            valueCodeableConcept={
                "coding": [{"system": SNOMED, "code": "260385009", "display": text}],
                "text": text,
            },
        )
    # a survey (no SDTM domain on this path), a value left out, a result entered in error
    yield observation(
        uid(key, "72166-2"),
        subject,
        when,
        "72166-2",
        "Tobacco smoking status",
        "social-history",
        valueCodeableConcept=concept(SNOMED, "266919005", "Never smoked tobacco"),
    )
    absent = observation(uid(key, "absent"), subject, when, "2093-3", "Cholesterol", "laboratory")
    absent["dataAbsentReason"] = {"coding": [{"code": "not-performed"}]}
    yield absent
    wrong = observation(
        uid(key, "wrong"),
        subject,
        when,
        "2345-7",
        "Glucose",
        "laboratory",
        valueQuantity=quantity("5.4", "mmol/L", "mmol/L"),
    )
    wrong["status"] = "entered-in-error"
    yield wrong
    # medications: a request (Synthea's), a statement, administrations (one of the study drug)
    yield {
        "resourceType": "MedicationRequest",
        "id": uid(key, "mr"),
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": concept(RXNORM, "314076", "lisinopril 10 MG Oral Tablet"),
        "subject": {"reference": subject},
        "authoredOn": f"{day}T09:45:00-05:00",
        "dosageInstruction": [
            {
                "sequence": 1,
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                "asNeededBoolean": False,
                "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}],
            }
        ],
    }
    yield {
        "resourceType": "MedicationStatement",
        "id": uid(key, "ms"),
        "status": "active",
        "medicationCodeableConcept": concept(RXNORM, "197361", "amlodipine 5 MG Oral Tablet"),
        "subject": {"reference": subject},
        "effectivePeriod": {"start": "2019-03-01"},
        "dosage": [{"text": "5 mg once a day", "route": concept(SNOMED, "26643006", "Oral route")}],
    }
    yield {
        "resourceType": "Medication",
        "id": uid(key, "med"),
        "code": concept(RXNORM, "1665060", "cefazolin 2000 MG Injection"),
    }
    yield {
        "resourceType": "MedicationAdministration",
        "id": uid(key, "ma"),
        "status": "completed",
        "medicationReference": {
            "reference": ("urn:uuid:" if subject.startswith("urn:uuid:") else "Medication/")
            + uid(key, "med")
        },
        "subject": {"reference": subject},
        "effectivePeriod": {"start": f"{day}T10:00:00-05:00", "end": f"{day}T10:30:00-05:00"},
        "dosage": {
            "dose": {"value": Decimal("2.0"), "unit": "g"},
            "route": concept(SNOMED, "47625008", "Intravenous route"),
        },
    }
    if study_drug:
        yield {
            "resourceType": "MedicationAdministration",
            "id": uid(key, "ma-ivig"),
            "status": "completed",
            "medicationCodeableConcept": concept(
                RXNORM, "1867520", "immune globulin 100 MG/ML Injectable Solution", "IVIG"
            ),
            "subject": {"reference": subject},
            "effectiveDateTime": f"{day}T11:00:00-05:00",
            "dosage": {"dose": {"value": Decimal("0.5"), "unit": "g/kg"}},
        }
    # conditions: a problem-list item (MH), an encounter diagnosis (MH), an adverse event (AE),
    # a refuted one (skipped)
    for code, display, cat, onset in (
        ("38341003", "Hypertension", "problem-list-item", "2015-06-11"),
        ("44054006", "Diabetes", "encounter-diagnosis", "2018-02"),
    ):
        yield {
            "resourceType": "Condition",
            "id": uid(key, code),
            "clinicalStatus": {"coding": [{"code": "active"}]},
            "verificationStatus": {"coding": [{"code": "confirmed"}]},
            "category": [{"coding": [{"code": cat}]}],
            "code": concept(SNOMED, code, display),
            "subject": {"reference": subject},
            "onsetDateTime": onset,
            "recordedDate": onset,
        }
    yield {
        "resourceType": "Condition",
        "id": uid(key, "rash"),
        "clinicalStatus": {"coding": [{"code": "resolved"}]},
        "verificationStatus": {"coding": [{"code": "confirmed"}]},
        "category": [
            {
                "coding": [
                    {"system": "http://example.org/condition-category", "code": "adverse-event"}
                ]
            }
        ],
        "severity": concept(SNOMED, "255604002", "Mild"),
        "code": concept(SNOMED, "271807003", "Eruption of skin"),
        "subject": {"reference": subject},
        "onsetDateTime": f"{day}T14:00:00-05:00",
        "abatementDateTime": "2020-02-03",
    }
    yield {
        "resourceType": "Condition",
        "id": uid(key, "refuted"),
        "verificationStatus": {"coding": [{"code": "refuted"}]},
        "code": concept(SNOMED, "195662009", "Acute viral pharyngitis"),
        "subject": {"reference": subject},
    }
    yield {
        "resourceType": "Procedure",
        "id": uid(key, "proc"),
        "status": "completed",
        "code": concept(SNOMED, "430193006", "Medication Reconciliation (procedure)"),
        "subject": {"reference": subject},
        "performedPeriod": {"start": f"{day}T09:45:00-05:00", "end": f"{day}T10:00:00-05:00"},
    }
    yield {
        "resourceType": "AdverseEvent",
        "id": uid(key, "ae"),
        "identifier": {"system": "http://hospital.example.org/ae", "value": f"AE-{key}"},
        "actuality": "actual",
        "event": concept(SNOMED, "39579001", "Anaphylaxis"),
        "subject": {"reference": subject},
        "date": f"{day}T11:20:00-05:00",
        "seriousness": {"coding": [{"code": "serious"}]},
        "severity": {"coding": [{"code": "severe"}]},
        "outcome": {"coding": [{"code": "resolved"}]},
        "suspectEntity": [
            {
                "instance": {"reference": f"MedicationAdministration/{uid(key, 'ma')}"},
                "causality": [{"assessment": {"text": "Probably related"}}],
            }
        ],
    }
    yield {
        "resourceType": "Immunization",
        "id": uid(key, "imm"),
        "status": "completed",
        "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "140"}]},
        "patient": {"reference": subject},
        "occurrenceDateTime": when,
    }


def invalid(key: str, subject: str) -> Iterator[JSON]:
    """Resources that are not valid R4 where the mapping reads (each reported and skipped)."""
    yield {  # code is one CodeableConcept in R4
        "resourceType": "Observation",
        "id": uid(key, "bad-code"),
        "status": "final",
        "category": category("laboratory"),
        "code": [concept(LOINC, "718-7", "Hemoglobin")],
        "subject": {"reference": subject},
        "valueQuantity": quantity("14.1", "g/dL", "g/dL"),
    }
    yield {  # an extension without url
        "resourceType": "Observation",
        "id": uid(key, "bad-extension"),
        "status": "final",
        "extension": [{"valueString": "no url"}],
        "category": category("vital-signs"),
        "code": concept(LOINC, "8867-4", "Heart rate"),
        "subject": {"reference": subject},
        "valueQuantity": quantity("70", "/min", "/min"),
    }
    yield {  # AdverseEvent.identifier is 0..1 in R4
        "resourceType": "AdverseEvent",
        "id": uid(key, "bad-ae"),
        "identifier": [{"value": "AE-1"}],
        "actuality": "actual",
        "event": {"text": "Headache"},
        "subject": {"reference": subject},
    }
    yield {"resourceType": "Observatoin", "id": uid(key, "bad-type"), "status": "final"}


# --- the layouts ---------------------------------------------------------------------------------------


def synthea_bundle(n: int) -> JSON:
    key = f"synthea-{n}"
    pid = uid(key, "patient")
    resources = [patient(pid, n, "female" if n % 2 else "male", f"19{60 + n}-0{n}-1{n}")]
    resources += list(events(key, f"urn:uuid:{pid}", f"2020-01-{10 + n}"))
    if n == 1:
        resources += list(invalid(key, f"urn:uuid:{pid}"))
    entries = []
    for resource in resources:
        entries.append(
            {
                "fullUrl": f"urn:uuid:{resource['id']}",
                "resource": resource,
                "request": {"method": "POST", "url": resource["resourceType"]},
            }
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def bulk_export() -> dict[str, list[JSON]]:
    by_type: dict[str, list[JSON]] = {}
    for n in (3, 4):
        key = f"bulk-{n}"
        pid = uid(key, "patient")
        for resource in [
            patient(pid, n, "male", f"1955-11-2{n}"),
            *events(key, f"Patient/{pid}", "2021-03-0" + str(n)),
        ]:
            by_type.setdefault(resource["resourceType"], []).append(resource)
    return by_type


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def ndjson(resources: list[JSON]) -> bytes:
    return b"".join(dumps(r) + b"\n" for r in resources)


def own_export(out: Path, subjects: tuple[str, ...]) -> dict[str, str]:
    """The adapter's own export (NDJSON) of the Dalakas subjects `subjects`; returns USUBJID ->
    Patient id."""
    from adapter.fhir_files import write_ndjson
    from adapter.tables import read_trial
    from mappings.sdtm import Table
    from mappings.trial import trial_to_fhir

    trial = read_trial(ROOT / "adapter" / "studies" / "dalakas1993")
    subset = {}
    for code, table in trial.items():
        rows = [r for r in table.rows if "USUBJID" not in r or r["USUBJID"] in subjects]
        subset[code] = Table(code, list(table.columns), rows)
    resources = list(trial_to_fhir(subset))
    write_ndjson(resources, out)
    return {
        r["identifier"][0]["value"]: r["id"] for r in resources if r["resourceType"] == "Patient"
    }


MIXED_SUBJECTS = ("DALAKAS1993-01-001", "DALAKAS1993-01-002", "DALAKAS1993-01-003")


def hospital(patients: dict[str, str]) -> list[JSON]:
    """A hospital's labs and a vital sign for the trial's Patients (referenced as `Patient/<id>`,
    and once logically by the trial's USUBJID identifier), and a Patient outside the trial."""
    found: list[JSON] = []
    for number, usubjid in enumerate(MIXED_SUBJECTS, start=1):
        subject = f"Patient/{patients[usubjid]}"
        reference: JSON = {"reference": subject}
        if number == 3:
            reference = {
                "identifier": {"system": "https://trialfhir.org/fhir/sid/usubjid", "value": usubjid}
            }
        for loinc, display, value, unit, code in LABS["CBC"][:3] + LABS["OTHER"]:
            lab = observation(
                uid(usubjid, loinc),
                subject,
                "1992-05-04T08:15:00+02:00",
                loinc,
                display,
                "laboratory",
                valueQuantity=quantity(value, unit, code),
            )
            lab["subject"] = reference
            found.append(lab)
        vital = observation(
            uid(usubjid, "hr"),
            subject,
            "1992-05-04T08:00:00+02:00",
            "8867-4",
            "Heart rate",
            "vital-signs",
            valueQuantity=quantity("76", "/min", "/min"),
        )
        vital["subject"] = reference
        found.append(vital)
    outsider = uid("hospital", "outsider")
    found.append(patient(outsider, 9, "female", "1970-01-01"))
    found.append(
        observation(
            uid("hospital", "outsider-glucose"),
            f"Patient/{outsider}",
            "1992-05-04",
            "2339-0",
            "Glucose",
            "laboratory",
            valueQuantity=quantity("101", "mg/dL", "mg/dL"),
        )
    )
    return found


def build(out: Path = OUT) -> list[Path]:
    """Write every layout under `out`; returns the files written."""
    files: dict[Path, bytes] = {}
    for n in (1, 2):
        files[out / "synthea-bundle" / f"patient-{n}.json"] = dumps(synthea_bundle(n)) + b"\n"
    by_type = bulk_export()
    bulk = out / "bulk-export"
    for rtype, resources in sorted(by_type.items()):
        data = ndjson(resources)
        if rtype == "Observation":
            files[bulk / f"{rtype}.000.ndjson.gz"] = gzip.compress(data, mtime=0)
        else:
            files[bulk / f"{rtype}.000.ndjson"] = data
    files[bulk / "log.ndjson"] = (
        b'{"eventId":"kickoff","eventDetail":{"exportUrl":"https://fhir.example.org/$export"}}\n'
        b'{"eventId":"export_complete","eventDetail":{"files":5,"resources":'
        + str(sum(map(len, by_type.values()))).encode()
        + b"}}\n"
    )
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "processing",
                "diagnostics": "Unable to export DocumentReference: access denied",
            }
        ],
    }
    files[bulk / "error" / "OperationOutcome.ndjson"] = ndjson([outcome])
    single = out / "single-json"
    key = "uscore-5"
    pid = uid(key, "patient")
    for resource in [
        patient(pid, 5, "female", "1981-07", us_core=True),
        *events(key, f"Patient/{pid}", "2022-08-15", False),
    ]:
        folder = (
            "patient" if resource["resourceType"] == "Patient" else resource["resourceType"].lower()
        )
        files[single / folder / f"{resource['id']}.json"] = dumps(resource) + b"\n"
    key = "nested-6"
    pid = uid(key, "patient")
    page = [patient(pid, 6, "male", "1949"), *events(key, f"Patient/{pid}", "2023-01-02", False)]
    searchset = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {
                "fullUrl": f"https://fhir.example.org/fhir/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in page[: len(page) // 2]
        ]
        + [
            {
                "resource": {
                    "resourceType": "OperationOutcome",
                    "issue": [
                        {
                            "severity": "warning",
                            "code": "incomplete",
                            "diagnostics": "Results truncated",
                        }
                    ],
                },
                "search": {"mode": "outcome"},
            }
        ],
    }
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in page[len(page) // 2 :]
        ],
    }
    collection = {
        "resourceType": "Bundle",
        "id": "nested",
        "type": "collection",
        "entry": [{"resource": searchset}, {"resource": batch}],
    }
    files[out / "nested-bundles" / "collection.json"] = dumps(collection) + b"\n"
    nothing = [
        {"resourceType": "Organization", "id": "org-1", "name": "Hospital"},
        {"resourceType": "Practitioner", "id": "pr-1"},
        {
            "resourceType": "Encounter",
            "id": "enc-1",
            "status": "finished",
            "class": {"code": "AMB"},
        },
    ]
    files[out / "nothing" / "bundle.json"] = (
        dumps(
            {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": r} for r in nothing],
            }
        )
        + b"\n"
    )
    for path, data in files.items():
        write(path, data)
    trial = out / "mixed" / "trial"
    patients = own_export(trial, MIXED_SUBJECTS)
    path = out / "mixed" / "hospital" / "labs.ndjson"
    write(path, ndjson(hospital(patients)))
    return sorted([*files, path, *trial.iterdir()])


if __name__ == "__main__":
    for written in build():
        print(written.relative_to(ROOT))
