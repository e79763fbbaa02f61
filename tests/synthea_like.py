"""Hand-written FHIR as Synthea writes it (no fetched file): a patient's transaction Bundle whose entries
refer to each other by `urn:uuid:` fullUrls and to a hospital by a conditional reference, the hospital's
batch Bundle (`POST` with `ifNoneExist`), and the same data as a Bulk Data NDJSON folder."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

JSON = dict[str, Any]
SYNTHEA = "https://github.com/synthetichealth/synthea"
LOINC = "http://loinc.org"


def _uuid(seed: str, name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{seed}/{name}"))


def patient_resources(seed: str = "p1", observations: int = 3) -> list[JSON]:
    """A Patient, an Encounter, `observations` Observations and a Condition, with ids (UUIDs) that
    the references use as `urn:uuid:`, as in a Synthea patient Bundle."""
    pid, eid = _uuid(seed, "patient"), _uuid(seed, "encounter")
    patient = {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": SYNTHEA, "value": pid}],
        "name": [{"family": f"Family-{seed}", "given": ["Given"]}],
        "gender": "female",
        "birthDate": "1970-01-01",
    }
    encounter = {
        "resourceType": "Encounter",
        "id": eid,
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": f"urn:uuid:{pid}"},
        "serviceProvider": {"reference": f"Organization?identifier={SYNTHEA}|hospital-{seed}"},
        "period": {"start": "2020-01-01T10:00:00+00:00", "end": "2020-01-01T11:00:00+00:00"},
    }
    resources: list[JSON] = [patient, encounter]
    for n in range(observations):
        resources.append(
            {
                "resourceType": "Observation",
                "id": _uuid(seed, f"obs-{n}"),
                "status": "final",
                "code": {"coding": [{"system": LOINC, "code": "29463-7"}]},
                "subject": {"reference": f"urn:uuid:{pid}"},
                "encounter": {"reference": f"urn:uuid:{eid}"},
                "effectiveDateTime": "2020-01-01T10:30:00+00:00",
                "valueQuantity": {
                    "value": 70 + n,
                    "unit": "kg",
                    "system": "http://unitsofmeasure.org",
                    "code": "kg",
                },
            }
        )
    resources.append(
        {
            "resourceType": "Condition",
            "id": _uuid(seed, "condition"),
            "subject": {"reference": f"urn:uuid:{pid}"},
            "encounter": {"reference": f"urn:uuid:{eid}"},
            "code": {"text": "Hypertension"},
        }
    )
    return resources


def transaction(resources: list[JSON]) -> JSON:
    """A Synthea-style transaction Bundle: fullUrl `urn:uuid:<id>`, `POST Type` for each entry."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{r['id']}",
                "resource": r,
                "request": {"method": "POST", "url": r["resourceType"]},
            }
            for r in resources
        ],
    }


def hospital_transaction(seed: str = "p1") -> JSON:
    """The hospital the patient's Encounter names by a conditional reference, as Synthea's
    `hospitalInformation*.json`: `POST Organization` with `ifNoneExist`."""
    oid = _uuid(seed, "hospital")
    organization = {
        "resourceType": "Organization",
        "id": oid,
        "identifier": [{"system": SYNTHEA, "value": f"hospital-{seed}"}],
        "name": f"Hospital {seed}",
    }
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{oid}",
                "resource": organization,
                "request": {
                    "method": "POST",
                    "url": "Organization",
                    "ifNoneExist": f"identifier={SYNTHEA}|hospital-{seed}",
                },
            }
        ],
    }


def hospital_batch(seed: str = "p1") -> JSON:
    """The hospital as Synthea writes `hospitalInformation*.json` with transaction Bundles on: a batch
    Bundle whose entries are conditional creates (`POST` with `ifNoneExist`)."""
    return {**hospital_transaction(seed), "type": "batch"}


def synthea_folder(
    folder: Path, seed: str = "p1", observations: int = 3, hospital: JSON | None = None
) -> Path:
    """A folder as Synthea's `fhir/` output: the patient's transaction Bundle (its name sorts first)
    and the hospital's Bundle (`hospital_batch` unless another is given)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"Ann_{seed}.json").write_text(
        json.dumps(transaction(patient_resources(seed, observations))), encoding="utf-8"
    )
    (folder / f"hospitalInformation_{seed}.json").write_text(
        json.dumps(hospital or hospital_batch(seed)), encoding="utf-8"
    )
    return folder


def ndjson_folder(folder: Path, seed: str = "p1", observations: int = 3) -> Path:
    """The patient's resources as a Bulk Data export: one file per type, plain `Type/id` references
    (the Patient's file sorts after the files that refer to it), no hospital."""
    folder.mkdir(parents=True, exist_ok=True)
    by_type: dict[str, list[JSON]] = {}
    for resource in patient_resources(seed, observations):
        text = json.dumps(resource).replace("urn:uuid:", "")
        literal = json.loads(text)
        for key in ("subject", "encounter"):
            if key in literal:
                target = literal[key]["reference"]
                kind = "Patient" if key == "subject" else "Encounter"
                literal[key]["reference"] = f"{kind}/{target}"
        literal.pop("serviceProvider", None)
        by_type.setdefault(literal["resourceType"], []).append(literal)
    for kind, resources in by_type.items():
        (folder / f"{kind}.ndjson").write_text(
            "".join(json.dumps(r) + "\n" for r in resources), encoding="utf-8"
        )
    return folder
